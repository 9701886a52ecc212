"""Read finished (and unfinished) active-learning runs and aggregate them the way the paper did.

A run is a directory holding ``rounds.csv`` (one row per AL round) and ``run.json`` (config and metadata);
see the contracts file. ``load_runs`` turns a tree of runs into one tidy DataFrame, one row per (run, round).
Everything else here works on that DataFrame: threshold marks (SPEC §5), accuracy / label-entropy curves,
the paper's reference numbers (SPEC §9) and the acceptance checks used by ``scripts/make_figures.py``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

INF = math.inf
NAN = math.nan

ROUND_COLUMNS = (
    "round",
    "labelled_size",
    "test_accuracy",
    "test_nll",
    "epochs",
    "acquired_indices",
    "acquired_labels",
    "acquisition_scores",
    "label_entropy",
    "class_counts",
    "train_seconds",
    "score_seconds",
    "select_seconds",
    "eval_seconds",
)
LIST_COLUMNS = ("acquired_indices", "acquired_labels", "acquisition_scores", "class_counts")
TIMING_COLUMNS = ("train_seconds", "score_seconds", "select_seconds", "eval_seconds")
META_COLUMNS = (
    "experiment",
    "profile",
    "seed",
    "dataset",
    "dataset_description",
    "acquisition",
    "batch_size",
    "mc_samples",
    "num_samples",
    "repetitions",
    "split",
    "budget",
    "num_classes",
    "run_dir",
    "hardware",
    "device",
    "elapsed_seconds",
    "status",
    "group",
    "profile_notes",
    "git_commit",
)
DEFAULT_NUM_CLASSES = {"mnist": 10, "repeated_mnist": 10, "emnist": 47}


# ----------------------------------------------------------------------------------------------------------
# Run groups (which experiments feed which figure / table) and the paper's numbers (SPEC §9)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunGroup:
    """Experiments shown together: ``members`` are (experiment name, display label) in colour order."""

    key: str
    title: str
    dataset_label: str
    members: tuple[tuple[str, str], ...]
    thresholds: tuple[float, ...]


GROUPS: tuple[RunGroup, ...] = (
    RunGroup(
        "fig10_rmnist_repetitions",
        "RMNIST repetition ablation (App. D, Fig 10)",
        "Repeated MNIST",
        (
            ("rmnist_rep0_bald", "BALD, 0 reps"),
            ("rmnist_rep1_bald", "BALD, 1 rep"),
            ("rmnist_rep2_bald", "BALD, 2 reps"),
            ("rmnist_rep4_bald", "BALD, 4 reps"),
            ("rmnist_rep4_batchbald", "BatchBALD, 4 reps"),
        ),
        (0.85, 0.90, 0.95),
    ),
    RunGroup(
        "fig11_rmnist_others",
        "RMNIST, other acquisition functions (App. E, Fig 11)",
        "Repeated MNIST",
        (
            ("rmnist_batchbald", "BatchBALD"),
            ("rmnist_rep2_bald", "BALD"),
            ("rmnist_var_ratios", "Var Ratios"),
            ("rmnist_mean_std", "Mean STD"),
            ("rmnist_random", "Random (b=5)"),
        ),
        (0.90, 0.95),
    ),
    RunGroup(
        "emnist",
        "EMNIST (App. G, Figs 13-15)",
        "EMNIST",
        (("emnist_batchbald", "BatchBALD"), ("emnist_bald", "BALD"), ("emnist_random", "Random")),
        (),
    ),
    RunGroup(
        "table1_mnist",
        "MNIST (Table 1)",
        "MNIST",
        (("mnist_batchbald_b10", "BatchBALD b=10"), ("mnist_bald_b10", "BALD b=10"), ("mnist_bald_b1", "BALD b=1")),
        (0.90, 0.95),
    ),
)
GROUPS_BY_KEY = {g.key: g for g in GROUPS}

Quartiles = tuple[float, float, float]  # (q25, median, q75); nan where the paper gives only the median

# Our experiment name -> where its paper row comes from.
PAPER_ROWS: dict[str, str] = {
    "mnist_batchbald_b10": "Table 1: BatchBALD (b=10, K=100)",
    "mnist_bald_b10": "Table 1: BALD (b=10, K=100)",
    "mnist_bald_b1": "NB: BALD (b=1, K=100)",
    "rmnist_rep0_bald": "App. D: BALD, 0 reps",
    "rmnist_rep1_bald": "App. D: BALD, 1 rep",
    "rmnist_rep2_bald": "App. D / Fig 2: BALD, 2 reps (= RMNIST)",
    "rmnist_rep4_bald": "App. D: BALD, 4 reps",
    "rmnist_rep4_batchbald": "App. D: BatchBALD, 4 reps",
    "rmnist_batchbald": "Fig 2 / App. E: BatchBALD",
    "rmnist_random": "Fig 2 / App. E: Random (b=5)",
    "rmnist_var_ratios": "App. E: Var Ratios",
    "rmnist_mean_std": "App. E: Mean STD",
    "emnist_batchbald": "Fig 7/13: BatchBALD",
    "emnist_bald": "Fig 7/13: BALD",
    "emnist_random": "Fig 13: Random",
}

# Points-to-threshold marks (SPEC §9, computed with the §5 rule), q25/median/q75; inf = never reached.
PAPER_MARKS: dict[str, dict[float, Quartiles]] = {
    "mnist_batchbald_b10": {0.90: (70, 90, 110), 0.95: (190, 200, 230)},
    "mnist_bald_b10": {0.90: (120, 120, 170), 0.95: (250, 250, INF)},
    "mnist_bald_b1": {0.90: (85, 96, 101), 0.95: (197, 206, 226)},
    "rmnist_rep0_bald": {0.85: (70, 90, 100), 0.90: (120, 120, 160), 0.95: (250, 270, 290)},
    "rmnist_rep1_bald": {0.85: (80, 100, 130), 0.90: (160, 160, 190), 0.95: (INF, INF, INF)},
    "rmnist_rep2_bald": {0.85: (140, 170, 180), 0.90: (260, 280, INF), 0.95: (INF, INF, INF)},
    "rmnist_rep4_bald": {0.85: (130, 160, 200), 0.90: (240, 300, INF), 0.95: (INF, INF, INF)},
    "rmnist_rep4_batchbald": {0.85: (50, 60, 70), 0.90: (90, 100, 110), 0.95: (250, 260, 270)},
    "rmnist_batchbald": {0.90: (120, 120, 130), 0.95: (260, 260, 280)},
    "rmnist_random": {0.90: (185, 195, 225), 0.95: (INF, INF, INF)},
    "rmnist_var_ratios": {0.90: (110, 110, 230), 0.95: (INF, INF, INF)},
    "rmnist_mean_std": {0.90: (180, 190, 200), 0.95: (INF, INF, INF)},
}
# Table 1's reference row (Gal et al. 2017, not rerun by the paper): one number per threshold.
PAPER_GAL_2017 = {0.90: 145, 0.95: 335}
# Other numbers in the paper's logs without an experiment of ours (SPEC §9, App. D "also in the logs").
PAPER_EXTRA_MARKS = {
    "rmnist_rep1_batchbald": {0.90: (80, 90, 100)},
    "rmnist_rep1_random": {0.90: (150, 160, 170)},
    "rmnist_rep4_random": {0.90: (140, 140, 180)},
}


@dataclass(frozen=True)
class PaperAccuracy:
    """Paper test accuracy at 100 and 200 labelled points and at the end (``final_size`` points)."""

    at_100: Quartiles
    at_200: Quartiles
    final: Quartiles
    final_size: int


PAPER_ACCURACY: dict[str, PaperAccuracy] = {
    "mnist_batchbald_b10": PaperAccuracy((0.883, 0.896, 0.901), (0.946, 0.947, 0.948), (0.954, 0.959, 0.961), 280),
    "mnist_bald_b10": PaperAccuracy((NAN, 0.861, NAN), (NAN, 0.920, NAN), (NAN, 0.944, NAN), 280),
    "mnist_bald_b1": PaperAccuracy((NAN, 0.891, NAN), (NAN, 0.938, NAN), (NAN, 0.961, NAN), 295),
    "rmnist_batchbald": PaperAccuracy((NAN, 0.884, NAN), (NAN, 0.925, NAN), (NAN, 0.950, NAN), 280),
    "rmnist_rep2_bald": PaperAccuracy((NAN, 0.771, NAN), (NAN, 0.856, NAN), (NAN, 0.891, NAN), 280),
    "rmnist_random": PaperAccuracy((NAN, 0.814, NAN), (NAN, 0.881, NAN), (NAN, 0.910, NAN), 280),
    "emnist_batchbald": PaperAccuracy((NAN, 0.306, NAN), (NAN, 0.419, NAN), (NAN, 0.517, NAN), 295),
    "emnist_random": PaperAccuracy((NAN, 0.285, NAN), (NAN, 0.417, NAN), (NAN, 0.482, NAN), 295),
    "emnist_bald": PaperAccuracy((NAN, 0.255, NAN), (NAN, 0.378, NAN), (NAN, 0.453, NAN), 295),
}
# Final acquired-label entropy on EMNIST (Fig 8/14, nats, median at acquisition 60).
PAPER_FINAL_LABEL_ENTROPY = {"emnist_batchbald": 3.79, "emnist_bald": 3.72, "emnist_random": 3.785}


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def _get(cfg: dict, dotted: str, default=None):
    """Look up ``a.b.c`` in a nested dict (or a flat dict with dotted keys)."""
    if not isinstance(cfg, dict):
        return default
    if dotted in cfg:
        return cfg[dotted]
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _name(value):
    """Config entries that are Hydra groups may be dicts with a ``name``; return the plain name."""
    if isinstance(value, dict):
        return value.get("name")
    return value


def _parse_list(value):
    if isinstance(value, (list, dict)):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    text = str(value).strip()
    if not text:
        return []
    return json.loads(text)


def _elapsed(meta: dict, rounds: pd.DataFrame) -> float:
    value = meta.get("elapsed_seconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        start = datetime.fromisoformat(str(meta["start_time"]))
        end = datetime.fromisoformat(str(meta["end_time"]))
        return (end - start).total_seconds()
    except (KeyError, ValueError, TypeError):
        pass
    cols = [c for c in TIMING_COLUMNS if c in rounds]
    return float(rounds[cols].apply(pd.to_numeric, errors="coerce").sum().sum()) if cols else NAN


def _run_metadata(run_dir: Path, root: Path, meta: dict, rounds: pd.DataFrame) -> dict:
    cfg = meta.get("config") or {}
    parts = run_dir.relative_to(root).parts if run_dir != root else ()
    experiment = (
        _name(meta.get("experiment"))
        or _name(cfg.get("experiment"))
        or cfg.get("experiment_name")
        or (parts[-2] if len(parts) >= 2 else run_dir.name)
    )
    profile = _name(cfg.get("profile")) or meta.get("profile") or (parts[-3] if len(parts) >= 3 else "unknown")
    seed = meta.get("seed", cfg.get("seed"))
    if seed is None:
        match = re.search(r"seed(\d+)", run_dir.name)
        seed = int(match.group(1)) if match else -1
    dataset = _name(_get(cfg, "dataset.name")) or _name(cfg.get("dataset"))
    notes = _get(cfg, "profile_notes") or _get(cfg, "profile.notes") or _get(cfg, "profile.profile_notes")
    num_classes = _get(cfg, "dataset.num_classes")
    if num_classes is None and "class_counts" in rounds and len(rounds):
        last = rounds["class_counts"].iloc[-1]
        if isinstance(last, list) and last:
            num_classes = len(last)
    if num_classes is None:
        num_classes = DEFAULT_NUM_CLASSES.get(str(dataset), 10)
    return {
        "experiment": str(experiment),
        "profile": str(profile),
        "seed": int(seed),
        "dataset": dataset,
        "dataset_description": _get(cfg, "dataset.description") or dataset,
        "acquisition": _name(_get(cfg, "acquisition.name")) or _name(cfg.get("acquisition")),
        "batch_size": _get(cfg, "acquisition.batch_size"),
        "mc_samples": _get(cfg, "mc_samples"),
        "num_samples": _get(cfg, "acquisition.num_samples"),
        "repetitions": _get(cfg, "dataset.repetitions"),
        "split": _get(cfg, "dataset.split"),
        "budget": _get(cfg, "budget"),
        "num_classes": int(num_classes),
        "run_dir": str(run_dir),
        "hardware": meta.get("hardware"),
        "device": meta.get("device"),
        "elapsed_seconds": _elapsed(meta, rounds),
        "status": meta.get("status", "unknown") if meta else "unknown",
        "group": meta.get("group"),
        "profile_notes": str(notes) if notes else None,
        "git_commit": meta.get("git_commit"),
    }


def _read_run(run_dir: Path, root: Path) -> pd.DataFrame:
    rounds = pd.read_csv(run_dir / "rounds.csv")
    for col in ROUND_COLUMNS:
        if col not in rounds:
            rounds[col] = NAN
    for col in LIST_COLUMNS:
        rounds[col] = [_parse_list(v) for v in rounds[col]]
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    info = _run_metadata(run_dir, root, meta, rounds)
    if info["batch_size"] is None:  # infer b from the acquired batches
        sizes = [len(v) for v in rounds["acquired_indices"] if len(v)]
        info["batch_size"] = max(sizes) if sizes else None
    rounds = rounds.sort_values("round", kind="stable").reset_index(drop=True)
    for key, value in info.items():
        rounds[key] = [value] * len(rounds)
    return rounds


def load_runs(root: str | Path) -> pd.DataFrame:
    """All runs under ``root`` (searched recursively) as one tidy frame, one row per (run, round).

    Columns: the rounds.csv columns (JSON list columns parsed into lists) plus ``META_COLUMNS``. Directories
    without rounds.csv are skipped; unfinished runs are kept with their ``status`` ("running", "failed",
    "unknown" when run.json is missing). Runs that cannot be read are skipped with a warning and listed in
    ``df.attrs["skipped_runs"]`` as (run_dir, reason).
    """
    root = Path(root)
    frames, skipped = [], []
    for csv_path in sorted(root.rglob("rounds.csv")) if root.exists() else []:
        try:
            frame = _read_run(csv_path.parent, root)
        except Exception as exc:  # one bad run must not hide the others
            skipped.append((str(csv_path.parent), f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"skipping run {csv_path.parent}: {exc}", stacklevel=2)
            continue
        if len(frame) == 0:
            skipped.append((str(csv_path.parent), "no rounds yet"))
            continue
        frames.append(frame)
    columns = list(ROUND_COLUMNS) + list(META_COLUMNS)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    df = df[columns + [c for c in df.columns if c not in columns]]
    df.attrs["skipped_runs"] = skipped
    return df


def write_tables(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write tidy CSVs to ``<out_dir>/<profile>/tables/`` for every profile in ``df``; return the paths.

    One ``<group>.csv`` per run group in ``GROUPS`` (per-round rows, list columns as JSON), ``other.csv`` for
    experiments in no group, plus summaries: ``runs.csv`` (one row per run), ``curves.csv`` (accuracy
    quartiles per labelled size), ``thresholds.csv`` (points-to-threshold marks vs the paper) and
    ``accuracy.csv`` (accuracy at 100 / 200 / final vs the paper).
    """
    written = []
    for profile, pdf in df.groupby("profile", sort=True):
        tables = Path(out_dir) / str(profile) / "tables"
        tables.mkdir(parents=True, exist_ok=True)
        flat = pdf.copy()
        for col in LIST_COLUMNS:
            flat[col] = [json.dumps(v) for v in flat[col]]
        grouped = set()
        for group in GROUPS:
            names = [e for e, _ in group.members]
            part = flat[flat["experiment"].isin(names)]
            grouped.update(names)
            if len(part):
                written.append(_to_csv(part, tables / f"{group.key}.csv"))
        rest = flat[~flat["experiment"].isin(grouped)]
        if len(rest):
            written.append(_to_csv(rest, tables / "other.csv"))
        written.append(_to_csv(run_summary(pdf), tables / "runs.csv"))
        curves = [accuracy_curves(pdf, e).assign(experiment=e) for e in sorted(pdf["experiment"].unique())]
        written.append(_to_csv(pd.concat(curves, ignore_index=True), tables / "curves.csv"))
        written.append(_to_csv(threshold_table(pdf), tables / "thresholds.csv"))
        written.append(_to_csv(accuracy_table(pdf), tables / "accuracy.csv"))
    return written


def _to_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def run_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: metadata, rounds, last labelled size and accuracy."""
    meta = [c for c in META_COLUMNS if c in df]
    rows = []
    for _, run in df.groupby("run_dir", sort=True):
        run = run.sort_values("labelled_size")
        row = {c: run[c].iloc[0] for c in meta}
        row.update(
            rounds=len(run),
            last_labelled_size=run["labelled_size"].iloc[-1],
            last_accuracy=run["test_accuracy"].iloc[-1],
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=meta + ["rounds", "last_labelled_size", "last_accuracy"])


# ----------------------------------------------------------------------------------------------------------
# Points to threshold (SPEC §5)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdMarks:
    """Quartiles over trials of the points needed to reach a threshold (inf = never reached)."""

    q25: float
    median: float
    q75: float
    n_trials: int
    marks: tuple[float, ...] = field(default=())  # per trial, input order
    threshold: float = NAN


def expand_per_point(
    sizes: Sequence[float], accuracies: Sequence[float], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """One accuracy per labelled-set size: size n gets the accuracy of the first evaluation at a size >= n.

    Evaluation i covers the sizes after the previous evaluation up to its own size; the first evaluation
    covers the ``batch_size`` sizes up to its own (as if one batch earlier there had been an evaluation).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if len(sizes) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    previous = np.concatenate([[sizes[0] - batch_size], sizes[:-1]])
    counts = sizes - previous
    if np.any(counts <= 0):
        raise ValueError(f"labelled sizes must increase, got {sizes.tolist()}")
    points = np.arange(previous[0] + 1, sizes[-1] + 1)
    return points, np.repeat(accuracies, counts)


def trial_mark(sizes: Sequence[float], accuracies: Sequence[float], threshold: float, batch_size: int) -> float:
    """SPEC §5 mark of one trial: (first expanded size with accuracy >= threshold) - 1, inf if never.

    For evenly spaced evaluations this is (labelled size of the first evaluation >= threshold) - b.
    """
    order = np.argsort(np.asarray(sizes, dtype=np.float64), kind="stable")
    points, values = expand_per_point(np.asarray(sizes)[order], np.asarray(accuracies)[order], batch_size)
    hits = np.flatnonzero(values >= threshold)
    return float(points[hits[0]] - 1) if len(hits) else INF


def points_to_threshold(trials, threshold: float, batch_size: int | None = None) -> ThresholdMarks:
    """Points needed to reach ``threshold`` accuracy, quartiles over trials (SPEC §5, Table 1 rule).

    ``trials``: an iterable of (labelled_sizes, accuracies) pairs, one per trial, or a ``load_runs`` frame
    holding one experiment (trials = run_dir; ``batch_size`` then defaults to its batch_size column).
    Each trial's mark is ``trial_mark``; quartiles use ``np.percentile(..., method="nearest")`` over trials,
    with inf for trials that never reach the threshold. No trials -> nan quartiles, n_trials 0.
    """
    if isinstance(trials, pd.DataFrame):
        frame = trials
        if batch_size is None:
            values = pd.to_numeric(frame["batch_size"], errors="coerce").dropna().unique()
            if len(values) != 1:
                raise ValueError(f"need one batch size, frame has {values.tolist()}")
            batch_size = int(values[0])
        trials = [
            (run["labelled_size"].to_numpy(), run["test_accuracy"].to_numpy())
            for _, run in frame.groupby("run_dir", sort=True)
        ]
    if batch_size is None:
        raise ValueError("batch_size is required for (sizes, accuracies) trials")
    marks = tuple(trial_mark(s, a, threshold, batch_size) for s, a in trials)
    if not marks:
        return ThresholdMarks(NAN, NAN, NAN, 0, (), threshold)
    q25, q50, q75 = np.percentile(np.asarray(marks, dtype=np.float64), [25, 50, 75], method="nearest")
    return ThresholdMarks(float(q25), float(q50), float(q75), len(marks), marks, threshold)


def experiment_marks(df: pd.DataFrame, experiment: str, threshold: float) -> tuple[ThresholdMarks, int]:
    """``points_to_threshold`` for one experiment of a ``load_runs`` frame.

    Runs still running (or failed) that have not reached the threshold are left out, since their mark is
    unknown rather than inf; returns (marks, number of runs left out).
    """
    runs = df[df["experiment"] == experiment]
    if runs.empty:
        return ThresholdMarks(NAN, NAN, NAN, 0, (), threshold), 0
    keep, left_out = [], 0
    for run_dir, run in runs.groupby("run_dir", sort=True):
        reached = (run["test_accuracy"] >= threshold).any()
        if run["status"].iloc[0] in ("running", "failed") and not reached:
            left_out += 1
        else:
            keep.append(run_dir)
    kept = runs[runs["run_dir"].isin(keep)]
    if kept.empty:
        return ThresholdMarks(NAN, NAN, NAN, 0, (), threshold), left_out
    return points_to_threshold(kept, threshold), left_out


# ----------------------------------------------------------------------------------------------------------
# Curves
# ----------------------------------------------------------------------------------------------------------


def _pad_matrix(series: list[tuple[np.ndarray, np.ndarray, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """Put each trial's (x, y, pad) on the union of x: forward-filled inside, last value after its end when
    ``pad``, nan before its start (and after its end when not ``pad``)."""
    grid = np.unique(np.concatenate([x for x, _, _ in series])) if series else np.zeros(0)
    matrix = np.full((len(series), len(grid)), np.nan)
    for i, (x, y, pad) in enumerate(series):
        idx = np.searchsorted(x, grid, side="right") - 1  # last own point at or before each grid x
        valid = idx >= 0
        if not pad:
            valid &= grid <= x[-1]
        matrix[i, valid] = y[idx[valid]]
    return grid, matrix


def _quartile_frame(grid: np.ndarray, matrix: np.ndarray, x_name: str, observed: np.ndarray) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
        q25, q50, q75 = (np.nanpercentile(matrix, q, axis=0) if matrix.size else np.zeros(0) for q in (25, 50, 75))
    return pd.DataFrame(
        {
            x_name: grid,
            "q25": q25,
            "median": q50,
            "q75": q75,
            "n_trials": (~np.isnan(matrix)).sum(axis=0) if matrix.size else np.zeros(0, int),
            "n_observed": observed,
        }
    )


def _filter(df: pd.DataFrame, experiment: str, profile: str | None) -> pd.DataFrame:
    runs = df[df["experiment"] == experiment]
    if profile is not None:
        runs = runs[runs["profile"] == profile]
    elif runs["profile"].nunique() > 1:
        raise ValueError(f"{experiment}: runs of several profiles {sorted(runs['profile'].unique())}; pass profile")
    return runs


def accuracy_curves(df: pd.DataFrame, experiment: str, *, profile: str | None = None) -> pd.DataFrame:
    """Test-accuracy quartiles over trials per labelled-set size (columns labelled_size, q25, median, q75,
    n_trials, n_observed).

    Trials that stopped early (target accuracy reached) are padded with their last value up to the largest
    size any trial reached, as the paper's notebooks did; ``n_observed`` counts trials actually evaluated at
    that size, ``n_trials`` those that contribute after padding. Runs still running or failed are not
    padded. Quartiles: ``np.nanpercentile`` with linear interpolation.
    """
    runs = _filter(df, experiment, profile)
    series = []
    for _, run in runs.groupby("run_dir", sort=True):
        run = run.dropna(subset=["test_accuracy"]).sort_values("labelled_size")
        if len(run):
            series.append(
                (
                    run["labelled_size"].to_numpy(np.float64),
                    run["test_accuracy"].to_numpy(np.float64),
                    run["status"].iloc[0] not in ("running", "failed"),
                )
            )
    grid, matrix = _pad_matrix(series)
    observed = np.array([sum(int(g in set(x)) for x, _, _ in series) for g in grid], dtype=int)
    frame = _quartile_frame(grid, matrix, "labelled_size", observed)
    frame["labelled_size"] = frame["labelled_size"].astype(int)
    return frame


def label_entropy(counts: Sequence[float]) -> float:
    """Entropy (nats) of the empirical distribution given by class counts."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return NAN
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def run_label_steps(run: pd.DataFrame, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(acquisition step 1.., entropy of all labels acquired up to and including that step) for one run.

    Computed from ``acquired_labels`` (natural log); rounds that acquired nothing are skipped. If no labels
    were logged, falls back to the ``label_entropy`` column.
    """
    run = run.sort_values("round")
    counts = np.zeros(num_classes)
    entropies = []
    for labels in run["acquired_labels"]:
        if len(labels):
            counts += np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]
            entropies.append(label_entropy(counts))
    if not entropies:
        has_batch = [len(v) > 0 for v in run["acquired_indices"]]
        column = pd.to_numeric(run["label_entropy"], errors="coerce")[has_batch].dropna()
        entropies = column.tolist()
    return np.arange(1, len(entropies) + 1, dtype=np.float64), np.asarray(entropies, dtype=np.float64)


def label_entropy_curves(df: pd.DataFrame, experiment: str, *, profile: str | None = None) -> pd.DataFrame:
    """Entropy of the acquired labels per acquisition step, quartiles over trials (columns step, q25, median,
    q75, n_trials, n_observed); early-stopped trials padded with their last value like ``accuracy_curves``."""
    runs = _filter(df, experiment, profile)
    series = []
    for _, run in runs.groupby("run_dir", sort=True):
        steps, ent = run_label_steps(run, int(run["num_classes"].iloc[0]))
        if len(steps):
            series.append((steps, ent, run["status"].iloc[0] not in ("running", "failed")))
    grid, matrix = _pad_matrix(series)
    observed = np.array([sum(int(g <= x[-1]) for x, _, _ in series) for g in grid], dtype=int)
    frame = _quartile_frame(grid, matrix, "step", observed)
    frame["step"] = frame["step"].astype(int)
    return frame


def run_label_counts(run: pd.DataFrame, num_classes: int) -> np.ndarray:
    """Counts per class of all labels acquired in one run (from acquired_labels, else last class_counts)."""
    labels = [label for batch in run.sort_values("round")["acquired_labels"] for label in batch]
    if labels:
        return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]
    last = run.sort_values("round")["class_counts"].iloc[-1]
    if isinstance(last, dict):
        out = np.zeros(num_classes, dtype=np.int64)
        for key, value in last.items():
            out[int(key)] = value
        return out
    return np.asarray(last if len(last) else np.zeros(num_classes), dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# Tables vs the paper and acceptance checks
# ----------------------------------------------------------------------------------------------------------


def experiment_info(df: pd.DataFrame, experiment: str) -> dict:
    """Trials, status counts, hardware, devices and total compute seconds of one experiment."""
    runs = df[df["experiment"] == experiment].drop_duplicates("run_dir")
    status = runs["status"].value_counts().to_dict()
    return {
        "n_runs": len(runs),
        "status": {str(k): int(v) for k, v in status.items()},
        "hardware": sorted({str(h) for h in runs["hardware"].dropna()}),
        "device": sorted({str(d) for d in runs["device"].dropna()}),
        "compute_seconds": float(pd.to_numeric(runs["elapsed_seconds"], errors="coerce").sum()),
        "seeds": sorted(int(s) for s in runs["seed"]),
    }


def threshold_table(df: pd.DataFrame) -> pd.DataFrame:
    """Points-to-threshold marks of every experiment in ``df`` (one profile) next to the paper's numbers.

    Thresholds: those of the experiment's group (85/90/95 for the repetition ablation, 90/95 otherwise);
    EMNIST (never near 90%) gets none.
    """
    thresholds_of = {}
    for group in GROUPS:
        for experiment, _ in group.members:
            thresholds_of.setdefault(experiment, set()).update(group.thresholds)
    rows = []
    for experiment in sorted(df["experiment"].unique()):
        dataset = str(df.loc[df["experiment"] == experiment, "dataset"].iloc[0])
        default = () if dataset == "emnist" else (0.90, 0.95)
        for threshold in sorted(thresholds_of.get(experiment, default)):
            marks, left_out = experiment_marks(df, experiment, threshold)
            paper = PAPER_MARKS.get(experiment, {}).get(threshold, (NAN, NAN, NAN))
            rows.append(
                {
                    "experiment": experiment,
                    "threshold": threshold,
                    "q25": marks.q25,
                    "median": marks.median,
                    "q75": marks.q75,
                    "n_trials": marks.n_trials,
                    "left_out_unfinished": left_out,
                    "paper_q25": paper[0],
                    "paper_median": paper[1],
                    "paper_q75": paper[2],
                    "paper_row": PAPER_ROWS.get(experiment, ""),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "threshold",
            "q25",
            "median",
            "q75",
            "n_trials",
            "left_out_unfinished",
            "paper_q25",
            "paper_median",
            "paper_q75",
            "paper_row",
        ],
    )


def accuracy_at(curve: pd.DataFrame, size: int) -> tuple[Quartiles, int | None]:
    """Quartiles of a curve at the largest evaluated size <= ``size`` and that size (None if none)."""
    rows = curve[curve["labelled_size"] <= size]
    if rows.empty:
        return (NAN, NAN, NAN), None
    row = rows.iloc[-1]
    return (float(row["q25"]), float(row["median"]), float(row["q75"])), int(row["labelled_size"])


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy quartiles at 100, 200 labelled points and at the final size, next to the paper."""
    rows = []
    for experiment in sorted(df["experiment"].unique()):
        curve = accuracy_curves(df, experiment)
        if curve.empty:
            continue
        paper = PAPER_ACCURACY.get(experiment)
        final_size = int(curve["labelled_size"].iloc[-1])
        for label, target in (("100", 100), ("200", 200), ("final", final_size)):
            (q25, q50, q75), size = accuracy_at(curve, target)
            if label != "final" and size is not None and size != target and target > final_size:
                (q25, q50, q75), size = (NAN, NAN, NAN), None  # budget never got there
            ref = getattr(paper, f"at_{label}" if label != "final" else "final") if paper else (NAN, NAN, NAN)
            rows.append(
                {
                    "experiment": experiment,
                    "at": label,
                    "labelled_size": size,
                    "q25": q25,
                    "median": q50,
                    "q75": q75,
                    "paper_q25": ref[0],
                    "paper_median": ref[1],
                    "paper_q75": ref[2],
                    "paper_size": (paper.final_size if label == "final" else target) if paper else None,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "at",
            "labelled_size",
            "q25",
            "median",
            "q75",
            "paper_q25",
            "paper_median",
            "paper_q75",
            "paper_size",
        ],
    )


@dataclass(frozen=True)
class Check:
    """One acceptance check: ``passed`` is None when the data to decide it is missing."""

    key: str
    claim: str
    passed: bool | None
    detail: str


def _fmt_points(value: float) -> str:
    return "∞" if value == INF else ("n/a" if math.isnan(value) else f"{value:g}")


def _fewer_points_check(
    df: pd.DataFrame, present: set[str], key: str, claim: str, pair, *, paper: str, beside=()
) -> Check:
    """Does ``pair[0]`` need fewer points than ``pair[1]`` to reach 90% (median marks)? ``pair`` and ``beside`` hold
    (experiment, label); ``beside`` members that have runs are reported in the detail, not judged."""
    missing = [e for e, _ in pair if e not in present]
    if missing:
        return Check(key, claim, None, "missing runs: " + ", ".join(missing))
    first, second = (experiment_marks(df, e, 0.90)[0] for e, _ in pair)
    passed = bool(first.median < second.median) if first.n_trials and second.n_trials else None
    shown = [(label, marks) for (_, label), marks in zip(pair, (first, second))]
    shown += [(label, experiment_marks(df, e, 0.90)[0]) for e, label in beside if e in present]
    parts = [f"{label} {_fmt_points(m.median)} (n={m.n_trials})" for label, m in shown]
    detail = f"median points to 90%: {parts[0]} vs " + ", ".join(parts[1:]) + f"; paper {paper}"
    if first.median == INF and second.median == INF:
        detail += "; neither reached 90%"
    return Check(key, claim, passed, detail)


def acceptance_checks(df: pd.DataFrame) -> list[Check]:
    """The paper's findings, checked on ``df`` (one profile):

    (a) on RMNIST BatchBALD needs fewer points than BALD to reach 90% (median marks, BALD = 2 reps);
    (b) BALD needs more points to reach 90% as repetitions grow (medians non-decreasing over 0/1/2/4 reps
        and larger at the most than at the fewest repetitions present; at least two present);
    (c) on EMNIST BatchBALD's final acquired-label entropy and final accuracy are at least BALD's (medians);
    (d) Table 1: on MNIST BatchBALD b=10 needs fewer points than BALD b=10 to reach 90% (BALD b=1 shown beside).
    """
    present = set(df["experiment"].unique())
    checks = []

    checks.append(
        _fewer_points_check(
            df,
            present,
            "a",
            "On RMNIST, BatchBALD needs fewer points than BALD to reach 90% accuracy",
            (("rmnist_batchbald", "BatchBALD"), ("rmnist_rep2_bald", "BALD")),
            paper="120 vs 280",
        )
    )

    claim = "BALD needs more points to reach 90% as the number of repetitions grows"
    reps = [(r, f"rmnist_rep{r}_bald") for r in (0, 1, 2, 4)]
    have = [(r, e) for r, e in reps if e in present]
    missing = [e for _, e in reps if e not in present]
    if len(have) >= 2:
        medians = [(r, experiment_marks(df, e, 0.90)[0].median) for r, e in have]
        values = [m for _, m in medians]
        passed = bool(all(a <= b for a, b in zip(values, values[1:])) and values[-1] > values[0])
        detail = (
            "median points to 90% by repetitions: "
            + ", ".join(f"{r} rep{'' if r == 1 else 's'} {_fmt_points(m)}" for r, m in medians)
            + "; paper 0: 120, 1: 160, 2: 280, 4: 300"
        )
        if missing:
            detail += "; missing runs: " + ", ".join(missing)
    else:
        passed, detail = None, "missing runs: " + ", ".join(missing)
    checks.append(Check("b", claim, passed, detail))

    claim = "On EMNIST, BatchBALD's final acquired-label entropy and final accuracy are at least BALD's"
    need = ["emnist_batchbald", "emnist_bald"]
    if all(e in present for e in need):
        ent = {e: label_entropy_curves(df, e) for e in need}
        acc = {e: accuracy_curves(df, e) for e in need}
        if any(c.empty for c in list(ent.values()) + list(acc.values())):
            passed, detail = None, "no acquired labels or accuracies logged"
        else:
            e_bb, e_bald = (float(ent[e]["median"].iloc[-1]) for e in need)
            a_bb, a_bald = (float(acc[e]["median"].iloc[-1]) for e in need)
            passed = bool(e_bb >= e_bald and a_bb >= a_bald)
            detail = (
                f"final label entropy (nats) BatchBALD {e_bb:.3f} vs BALD {e_bald:.3f} (step "
                f"{int(ent[need[0]]['step'].iloc[-1])} vs {int(ent[need[1]]['step'].iloc[-1])}); "
                f"final accuracy {a_bb:.3f} vs {a_bald:.3f} (at {int(acc[need[0]]['labelled_size'].iloc[-1])}"
                f" vs {int(acc[need[1]]['labelled_size'].iloc[-1])} points); paper 3.79 vs 3.72, .517 vs .453"
            )
    else:
        passed, detail = None, "missing runs: " + ", ".join(e for e in need if e not in present)
    checks.append(Check("c", claim, passed, detail))

    checks.append(
        _fewer_points_check(
            df,
            present,
            "d",
            "On MNIST (Table 1), BatchBALD b=10 needs fewer points than BALD b=10 to reach 90% accuracy",
            (("mnist_batchbald_b10", "BatchBALD b=10"), ("mnist_bald_b10", "BALD b=10")),
            paper="90 vs 120, b=1 96",
            beside=(("mnist_bald_b1", "BALD b=1"),),
        )
    )
    return checks


def profile_notes(df: pd.DataFrame, profile: str) -> list[tuple[str, list[str]]]:
    """(note, experiments that recorded it) for each distinct run.json ``profile_notes`` of a profile, in order.

    A profile's notes can change between sweeps (say, a larger EMNIST pool); runs keep the text they ran under, so a
    report lists each version with the experiments it applies to.
    """
    rows = df[(df["profile"] == profile) & df["profile_notes"].notna()]
    rows = rows[rows["profile_notes"].astype(str).str.strip() != ""]
    return [
        (str(note), sorted(part["experiment"].unique())) for note, part in rows.groupby("profile_notes", sort=False)
    ]


def iter_group_frames(df: pd.DataFrame, group: RunGroup) -> Iterable[tuple[str, str, pd.DataFrame]]:
    """(experiment, label, rows) for each member of ``group`` that has rows in ``df``."""
    for experiment, label in group.members:
        rows = df[df["experiment"] == experiment]
        if len(rows):
            yield experiment, label, rows
