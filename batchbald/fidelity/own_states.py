"""Are our trajectories' labelled sets worse than the paper's? The training replay on both, side by side.

`scripts/replay.py --ours EXPERIMENT` retrains on our own runs' labelled sets (rows in results/fidelity/own_states/
<rule>/ours_<experiment>.csv) with the training and the trial seeds that the training replay used on the logged
labelled sets of the same seed and round (results/fidelity/<rule>/<group>.csv). Paired row by row (seed, round,
trial), the difference is the value of our state against the paper's at that labelled size, with training noise
shared; our run's own model is trial 0 (the loop seeds its round model as the replay seeds trial 0), so trial 0 on
our sets gives back what our runs recorded, a check of the pairing (to the last digits when the runs were made by
an earlier commit whose arithmetic differs slightly).

    frame = paired(own_rows, logged_rows)     # one row per (seed, round, trial)
    lines = report_section(Path("results/fidelity"))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from batchbald.analysis import official_logs
from batchbald.fidelity.variants import run_bootstrap_ci

FOLDER = "own_states"
KEYS = ["seed", "round", "trial", "validation_set"]


def paired(own: pd.DataFrame, logged: pd.DataFrame) -> pd.DataFrame:
    """Rows of both replays at the same (seed, round, trial, rule) and labelled size: `state_delta` = accuracy on
    our set − on the logged set; `run_delta` = what our run recorded − what the logged run recorded."""
    cols = [*KEYS, "labelled_size", "accuracy", "logged_accuracy"]
    both = own[cols].merge(logged[cols], on=KEYS, suffixes=("_own", "_log"))
    both = both[both["labelled_size_own"] == both["labelled_size_log"]].rename(
        columns={"labelled_size_own": "labelled_size"}
    )
    both["state_delta"] = both["accuracy_own"] - both["accuracy_log"]
    both["run_delta"] = both["logged_accuracy_own"] - both["logged_accuracy_log"]
    both["trial0_gap"] = (both["accuracy_own"] - both["logged_accuracy_own"]).where(both["trial"] == 0)
    return both.drop(columns="labelled_size_log").reset_index(drop=True)


def _by_seed(frame: pd.DataFrame, column: str) -> list[np.ndarray]:
    return [g[column].to_numpy() for _, g in frame.groupby("seed")]


def markdown(frame: pd.DataFrame, name: str) -> list[str]:
    """Per labelled size: mean state Δ and mean recorded Δ over the paired rows; then both over every size after
    the shared initial set, with 95% intervals resampling whole seeds, trial 0's |Δ| to what our runs recorded, and
    the state Δ per seed."""
    sizes = sorted(frame["labelled_size"].unique())
    per_size = frame.groupby("labelled_size")
    lines = [
        "| " + " | ".join([name, *(f"L={s}" for s in sizes)]) + " |",
        "|" + "---|" * (len(sizes) + 1),
        "| state Δ (trials) | "
        + " | ".join(f"{per_size.get_group(s)['state_delta'].mean():+.3f}" for s in sizes)
        + " |",
        "| recorded Δ (runs) | "
        + " | ".join(f"{per_size.get_group(s).drop_duplicates('seed')['run_delta'].mean():+.3f}" for s in sizes)
        + " |",
    ]
    later = frame[frame["labelled_size"] > frame["labelled_size"].min()]
    runs = later.drop_duplicates(["seed", "round"])
    state, state_ci = later["state_delta"].mean(), run_bootstrap_ci(_by_seed(later, "state_delta"), np.mean)
    run, run_ci = runs["run_delta"].mean(), run_bootstrap_ci(_by_seed(runs, "run_delta"), np.mean)
    gaps = frame["trial0_gap"].dropna().abs()
    lines += [
        "",
        f"After the shared initial set ({len(later)} paired trainings, {later['seed'].nunique()} seeds, "
        f"L = {later['labelled_size'].min()}–{later['labelled_size'].max()}): state Δ {state:+.4f} "
        f"[{state_ci[0]:+.4f}, {state_ci[1]:+.4f}]; what the runs recorded at the same sizes, Δ {run:+.4f} "
        f"[{run_ci[0]:+.4f}, {run_ci[1]:+.4f}]. Trial 0 on our sets against our run's recorded accuracy: "
        f"|Δ| median {gaps.median():.4f}, max {gaps.max():.4f} over {len(gaps)} rounds. State Δ per seed: "
        + ", ".join(f"{seed} {d:+.3f}" for seed, d in later.groupby("seed")["state_delta"].mean().items())
        + ".",
    ]
    return lines


def report_section(fidelity_root: Path) -> list[str]:
    """REPORT.md lines for every own-state replay that has logged-set rows to pair with ([] when none)."""
    fidelity_root = Path(fidelity_root)
    blocks = []
    for path in sorted((fidelity_root / FOLDER).glob("*/ours_*.csv")):
        rule, experiment = path.parent.name, path.stem.removeprefix("ours_")
        group = official_logs.LOG_GROUPS.get(experiment)
        logged_path = fidelity_root / rule / f"{group}.csv"
        if group is None or not logged_path.exists():
            continue
        frame = paired(pd.read_csv(path), pd.read_csv(logged_path))
        if not frame.empty:
            blocks += [*markdown(frame, f"`{experiment}` vs `{group}` ({rule})"), ""]
    if not blocks:
        return []
    return [
        "### Our states against the paper's: the training replay on both",
        "",
        "Our runs' labelled sets and the logged runs' sets of the same seed and round, retrained with the same "
        "training and trial seeds (`scripts/replay.py --ours`; " + f"`results/fidelity/{FOLDER}/`). State Δ: mean "
        "accuracy on our set − on the logged set (paired trials); recorded Δ: our run's model − the logged run's "
        "model at that size. A negative state Δ means our trajectories reach worse labelled sets, whatever model "
        "is then trained on them.",
        "",
        *blocks,
    ]
