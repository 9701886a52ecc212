"""Read finished (and unfinished) active-learning runs and aggregate them the way the paper did.

A run is a directory holding ``rounds.csv`` (one row per AL round) and ``run.json`` (config and metadata);
see the contracts file. ``load_runs`` turns a tree of runs into one tidy DataFrame, one row per (run, round).
``write_tables`` writes it and its summaries as CSV. The rest works on that DataFrame: .curves (threshold
marks, SPEC §5, and curves), .checks (tables and findings vs the paper), .paper_numbers.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd

from batchbald.analysis.checks import accuracy_table, threshold_table
from batchbald.analysis.curves import accuracy_curves
from batchbald.analysis.figure_groups import RunGroup, load_groups

INF = math.inf
NAN = math.nan

ROUND_COLUMNS = (
    "round",
    "labelled_size",
    "test_accuracy",
    "test_nll",
    "test_nll_per_mask",
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
        for group in load_groups():
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
