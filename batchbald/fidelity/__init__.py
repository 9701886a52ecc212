"""Fidelity to the paper's official run logs (../shared/paper/official_logs).

- `replay`: reading the logs, and retraining our model on a logged round's labelled set (training fidelity);
- `summary`, `variants`: the training replay's tables, figure and stopping-rule comparison (results/fidelity/);
- `acquisition_replay`, `acquisition_summary`: from a logged labelled set, our batch against the logged batch
  (acquisition fidelity, results/fidelity/acquisition/);
- `run_level`: our paper-profile runs against the logged runs of the same seeds, whole trajectories (REPORT);
- `own_states`: the training replay on our runs' labelled sets against the logged sets (results/fidelity/own_states/).
"""

from batchbald.fidelity.replay import LoggedGroup, LoggedRound, LoggedRun, ReplayError, load_log, replay_round

__all__ = ["LoggedGroup", "LoggedRound", "LoggedRun", "ReplayError", "load_log", "replay_round"]
