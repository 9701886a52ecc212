"""Run level: our paper-profile runs against the official runs of the same seeds, whole trajectories.

The acquisition replay (.acquisition_replay) asks what one step from the paper's state is worth; this module asks
where whole runs part: per (experiment, seed) with a logged run of that seed, the points to reach 90% (Table 1's
rule) ours and logged, the mean accuracy difference at the labelled sizes both evaluated in [60, 160] (ours − logged),
and the labels wasted on repeated digits: labelled points at or below `CAP` labels whose MNIST image (Repeated-MNIST
position mod 60,000) is already labelled, i.e. another noisy copy. Both sides start from the paper's fixed 20
initial points (SPEC §2), so repeats are counted the same way on both.

    frame = run_level(load_runs("results/runs/paper"))   # one row per (experiment, seed)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from batchbald.analysis import official_logs
from batchbald.analysis.curves import trial_mark
from batchbald.data import PAPER_INITIAL_MNIST_INDICES
from batchbald.fidelity.acquisition_replay import MNIST_TRAIN_SIZE

CAP = 150  # labelled points counted for repeats (every run of both sides reaches it before stopping)
DELTA_SIZES = (60, 160)  # labelled sizes averaged for the accuracy difference (the first measurement)
THRESHOLD = 0.90


def wasted_labels(labelled_in_order: list[int], cap: int = CAP, copy_size: int = MNIST_TRAIN_SIZE) -> int | None:
    """Among the first `cap` labelled positions, how many repeat an MNIST image already labelled (None: fewer)."""
    if len(labelled_in_order) < cap:
        return None
    first = labelled_in_order[:cap]
    return len(first) - len({i % copy_size for i in first})


def our_labelled(rounds: pd.DataFrame) -> list[int]:
    """The fixed 20 initial points, then every batch in the order it was acquired."""
    out = list(PAPER_INITIAL_MNIST_INDICES)
    for batch in rounds.sort_values("round")["acquired_indices"]:
        out += [int(i) for i in batch]
    return out


def logged_labelled(run) -> list[int]:
    """The logged run's labelled positions in the order labelled (its last round's set; load_log keeps order)."""
    return list(run.rounds[-1].labelled) if run.rounds else []


def later_p_value(ours: list[float], logged: list[float], max_splits: int = 200_000) -> float:
    """One-sided exact permutation p-value that `ours` reach the threshold later than `logged`: the share of the
    ways to split the pooled marks into groups of these sizes whose Mann-Whitney U (pairs ours > logged, ties 1/2;
    never = inf) is at least the observed one. nan when either side is empty or there are too many splits."""
    n = len(ours)
    pooled = [*ours, *logged]
    if not ours or not logged or math.comb(len(pooled), n) > max_splits:
        return float("nan")

    def u(a, b):
        return sum((x > y) + 0.5 * (x == y) for x in a for y in b)

    observed = u(ours, logged)
    splits = [
        u([pooled[i] for i in c], [pooled[i] for i in range(len(pooled)) if i not in c])
        for c in itertools.combinations(range(len(pooled)), n)
    ]
    return float(np.mean([s >= observed - 1e-9 for s in splits]))


def logged_marks(experiment: str, batch_size: int, logs_root=None) -> list[float]:
    """Points to THRESHOLD of every logged run of the experiment's group (all seeds)."""
    group = official_logs.logged_group(experiment, logs_root)
    runs = group.runs if group else ()
    return [
        trial_mark([len(r.labelled) for r in run.rounds], [r.accuracy for r in run.rounds], THRESHOLD, batch_size)
        for run in runs
    ]


def _mean_delta(ours: pd.Series, logged: dict[int, float]) -> float:
    lo, hi = DELTA_SIZES
    diffs = [acc - logged[size] for size, acc in ours.items() if lo <= size <= hi and size in logged]
    return float(np.mean(diffs)) if diffs else float("nan")


def run_level(df: pd.DataFrame, logs_root=None) -> pd.DataFrame:
    """One row per (experiment, seed) of `df` (load_runs frame, one profile) with a logged run of the same seed."""
    rows = []
    for (experiment, seed), g in df.groupby(["experiment", "seed"], sort=True):
        group = official_logs.logged_group(experiment, logs_root)
        logged = [r for r in group.runs if r.seed == int(seed)] if group else []
        if not logged:
            continue
        run = logged[0]
        b = int(g["batch_size"].iloc[0])
        ours_curve = g.set_index("labelled_size")["test_accuracy"].astype(float)
        log_curve = {len(r.labelled): float(r.accuracy) for r in run.rounds}
        ours_mark = trial_mark(ours_curve.index, ours_curve.values, THRESHOLD, b)
        log_mark = trial_mark(list(log_curve), list(log_curve.values()), THRESHOLD, b)
        rows.append(
            {
                "experiment": experiment,
                "seed": int(seed),
                "status": str(g["status"].iloc[0]),
                "batch_size": b,
                "mark90": ours_mark,
                "mark90_logged": log_mark,
                "mean_delta": _mean_delta(ours_curve, log_curve),
                "wasted": wasted_labels(our_labelled(g)),
                "wasted_logged": wasted_labels(logged_labelled(run)),
            }
        )
    return pd.DataFrame(rows)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return "never" if value == float("inf") else f"{value:.0f}"


def markdown(frame: pd.DataFrame, label=lambda e: f"`{e}`", logs_root=None) -> list[str]:
    """One line per experiment: per-seed marks, mean Δacc and wasted labels, ours / logged, and the permutation
    p-value that our finished runs reach 90% later than all the logged runs of the group."""
    header = [
        "run",
        "seeds",
        f"points to {THRESHOLD:.0%} ours / logged, per seed",
        f"mean Δacc at {DELTA_SIZES[0]}–{DELTA_SIZES[1]} labels, per seed",
        f"repeated digits in the first {CAP} labels ours / logged (total)",
        f"our finished runs later to {THRESHOLD:.0%} than all logged runs: p (logged marks)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for experiment, g in frame.groupby("experiment", sort=False):
        running = g["status"] != "finished"
        seeds = ", ".join(f"{s}" + (" (running)" if r else "") for s, r in zip(g["seed"], running))
        marks = ", ".join(f"{_fmt(a)} / {_fmt(b)}" for a, b in zip(g["mark90"], g["mark90_logged"]))
        deltas = ", ".join(f"{d:+.3f}" for d in g["mean_delta"])
        both = g.dropna(subset=["wasted", "wasted_logged"])
        wasted = (
            ", ".join(f"{int(a)} / {int(b)}" for a, b in zip(both["wasted"], both["wasted_logged"]))
            + f" ({int(both['wasted'].sum())} / {int(both['wasted_logged'].sum())})"
            if len(both)
            else "—"
        )
        every_log = logged_marks(experiment, int(g["batch_size"].iloc[0]), logs_root)
        p = later_p_value(list(g.loc[~running, "mark90"]), every_log)
        later = f"{p:.3f} ({', '.join(_fmt(m) for m in sorted(every_log))})" if not np.isnan(p) else "—"
        cells = [label(experiment), seeds, marks, deltas, wasted, later]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_section(df: pd.DataFrame, label=lambda e: f"`{e}`", logs_root=None) -> list[str]:
    """REPORT.md's run-level subsection of "Fidelity to the official logs" ([] without paper runs of logged seeds)."""
    paper = df[df["profile"].isin(official_logs.PROFILES_WITH_LOGS)] if "profile" in df else df
    frame = run_level(paper, logs_root)
    if frame.empty:
        return []
    return [
        "### Run level: our paper-profile runs against the logged runs of the same seeds",
        "",
        f"Whole trajectories, seed by seed (a seed names a run; both start from the paper's 20 initial points). "
        f"Points to {THRESHOLD:.0%}: Table 1's rule. Mean Δacc: ours − logged at the labelled sizes both evaluated in "
        f"{DELTA_SIZES[0]}–{DELTA_SIZES[1]}. Repeated digits: labelled points among the first {CAP} whose MNIST image "
        "is already labelled (another noisy copy: a wasted label). p: exact one-sided permutation test (Mann–Whitney "
        "U) that our finished runs reach 90% later than all the group's logged runs (every seed).",
        "",
        *markdown(frame, label, logs_root),
        "",
    ]
