"""Per-run curves and the paper's "points to reach X%" marks, over a `batchbald.analysis.results.load_runs` frame.

Threshold marks follow the paper's counting rule (SPEC §5); curves are quartiles over trials per labelled-set size
(accuracy) or per acquisition step (entropy of the acquired labels).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INF = math.inf
NAN = math.nan


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
