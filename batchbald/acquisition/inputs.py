"""What an acquisition function may ask for besides the pool's MC log-probs: it names an input by a parameter of that
name, and the loop computes only the inputs some function asks for (built-ins and user functions alike).

    def my_scores(log_probs_N_K_C, target_log_probs_M_K_C): ...          # a per-point score with targets
    def my_batch(log_probs_N_K_C, batch_size, *, pool_features_N_D, seed): ...   # a batch function with features

Besides these inputs a batch function may name `seed` and `num_samples` (batchbald.acquisition.dispatch).
"""

from __future__ import annotations

import inspect

INPUTS = {
    "target_log_probs_M_K_C": "log-probs of the EPIG target points under the same K masks as the pool",
    "pool_features_N_D": "penultimate features of the deterministic net (dropout off) for the pool",
    "labelled_features_L_D": "penultimate features of the deterministic net for the labelled set",
    "pool_probs_N_C": "class probabilities of the deterministic net for the pool",
    "pool_grad_embeddings_N_E": "BADGE's last-layer gradient embeddings (p − e_ŷ) ⊗ h of the pool, E = C·D",
}
INPUT_NAMES = tuple(INPUTS)
FEATURE_INPUTS = ("pool_features_N_D", "labelled_features_L_D", "pool_probs_N_C", "pool_grad_embeddings_N_E")


def requested_inputs(fn) -> tuple[str, ...]:
    """The INPUTS that fn's signature names, in INPUTS order (a **kwargs function asks for none)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    return tuple(name for name in INPUT_NAMES if name in params)


def needs_targets(fn) -> bool:
    return "target_log_probs_M_K_C" in requested_inputs(fn)


def needs_features(fn) -> bool:
    """True if fn asks for anything of the deterministic net (features, probabilities, gradient embeddings)."""
    return any(name in FEATURE_INPUTS for name in requested_inputs(fn))
