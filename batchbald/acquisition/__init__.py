"""Acquisition: which pool points to label next, from the pool's MC-dropout log-probs `log_probs_N_K_C`.

- `dispatch`: the public `select` and the registry of built-ins (user functions by `_target_` take the same path);
- `scores`: per-point scores (BALD, entropy, variation ratios, mean STD) and top-k;
- `joint_mi`: BatchBALD, the greedy maximiser of the batch's joint mutual information;
- `stochastic`: power / softmax / softrank sampling of per-point scores.
Configs name built-ins as `batchbald.acquisition.<function>`.
"""

from batchbald.acquisition.dispatch import *  # noqa: F403 - the public names, listed in dispatch.__all__
from batchbald.acquisition.dispatch import __all__, label  # noqa: F401
