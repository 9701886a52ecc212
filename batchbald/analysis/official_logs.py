"""The paper's own runs beside ours: which official log group each experiment reproduces, the logs' accuracy curves
(median and quartiles over runs per labelled size) and their points-to-X% marks, all runs or the seeds we ran.

The logs are the JSON export of BlackHC/BatchBALD's laaos_results/paper/ (../shared/paper/official_logs/, or
$BATCHBALD_OFFICIAL_LOGS); without them every function here returns nothing and figures and tables go without.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from batchbald.analysis.curves import ThresholdMarks, points_to_threshold
from batchbald.fidelity.replay import LoggedGroup, ReplayError, load_log, official_logs_dir

# Our experiment -> the official log group with the same dataset, acquisition, K and b. EMNIST is left out: the logs
# ran on EMNIST balanced, our EMNIST runs on a stand-in split.
LOG_GROUPS: dict[str, str] = {
    "mnist_batchbald_b10": "mnist_multibald_bald_k100_b10",
    "mnist_bald_b10": "mnist_independent_bald_k100_b10",
    "mnist_bald_b1": "mnist_independent_bald_k100_b1",
    "rmnist_rep0_bald": "mnist_w_noise_independent_bald_k10_b10",
    "rmnist_rep1_bald": "repeated_mnist_w_noise2_independent_bald_k10_b10",
    "rmnist_rep2_bald": "rmnist_w_noise_independent_bald_k10_b10",
    "rmnist_rep4_bald": "repeated_mnist_w_noise5_independent_bald_k10_b10",
    "rmnist_rep4_batchbald": "repeated_mnist_w_noise5_multibald_bald_k10_b10",
    "rmnist_batchbald": "rmnist_w_noise_multibald_bald_k10_b10",
    "rmnist_random": "rmnist_w_noise_independent_random_k10_b5",
    "rmnist_var_ratios": "rmnist_w_noise_independent_variation_ratios_k10_b10",
    "rmnist_mean_std": "rmnist_w_noise_independent_mean_stddev_k10_b10",
}
PROFILES_WITH_LOGS = ("paper",)  # the profiles whose protocol the logs ran (the quick profile's pools are reduced)


@functools.lru_cache(maxsize=32)
def _group(path: str) -> LoggedGroup | None:
    try:
        return load_log(path)
    except ReplayError:
        return None


def logged_group(experiment: str, root: str | Path | None = None) -> LoggedGroup | None:
    """The official runs behind an experiment, or None (no mapping, or the logs are not here)."""
    name = LOG_GROUPS.get(experiment)
    if name is None:
        return None
    path = Path(root or official_logs_dir()) / f"{name}.json"
    return _group(str(path)) if path.exists() else None


def _trials(group: LoggedGroup, seeds=None) -> list[tuple[np.ndarray, np.ndarray]]:
    runs = [r for r in group.runs if seeds is None or r.seed in set(seeds)]
    return [
        (np.array([len(x.labelled) for x in r.rounds], dtype=float), np.array([x.accuracy for x in r.rounds]))
        for r in runs
    ]


def log_curves(experiment: str, root: str | Path | None = None) -> pd.DataFrame:
    """labelled_size, median, q25, q75, n over the logged runs at each labelled size that at least half of them
    reached (runs stop at 95% accuracy or their budget); empty without logs."""
    group = logged_group(experiment, root)
    columns = ["labelled_size", "median", "q25", "q75", "n"]
    if group is None:
        return pd.DataFrame(columns=columns)
    trials = _trials(group)
    by_size: dict[float, list[float]] = {}
    for sizes, accuracies in trials:
        for size, accuracy in zip(sizes, accuracies):
            by_size.setdefault(float(size), []).append(float(accuracy))
    rows = []
    for size in sorted(by_size):
        values = np.array(by_size[size])
        if len(values) >= max(2, len(trials) / 2):
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            rows.append({"labelled_size": size, "median": q50, "q25": q25, "q75": q75, "n": len(values)})
    return pd.DataFrame(rows, columns=columns)


def log_marks(
    experiment: str, threshold: float, batch_size: int, *, seeds=None, root: str | Path | None = None
) -> ThresholdMarks | None:
    """Points-to-threshold quartiles of the logged runs (only those of `seeds` when given), by the same rule as
    ours (curves.points_to_threshold); None without logs or without a logged run of those seeds. Every logged run
    starts from the same 20 initial points as ours; a seed names the run (its RNG cannot be reproduced here), so
    "same seeds" pairs names, not random draws. Only the main RMNIST groups ran our paper profile's seeds."""
    group = logged_group(experiment, root)
    if group is None:
        return None
    trials = _trials(group, seeds)
    return points_to_threshold(trials, threshold, batch_size) if trials else None
