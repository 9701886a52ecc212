"""The report's numbers next to the paper's: points-to-X% and accuracy tables, and the paper's findings checked with
paired per-seed differences and a bootstrap interval (a finding "holds" only when the interval excludes 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from batchbald.analysis.curves import accuracy_curves, experiment_marks, run_label_steps, trial_mark
from batchbald.analysis.figure_groups import RunGroup, load_groups
from batchbald.analysis.paper_numbers import INF, NAN, PAPER_ACCURACY, PAPER_MARKS, PAPER_ROWS, Quartiles

MIN_PAIRS = 5  # fewer paired seeds than this never make a verdict "holds"
BOOTSTRAP_RESAMPLES = 10_000


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


def threshold_table(df: pd.DataFrame, groups: tuple[RunGroup, ...] | None = None) -> pd.DataFrame:
    """Points-to-threshold marks of every experiment in ``df`` (one profile) next to the paper's numbers.

    Thresholds: those of the experiment's group (85/90/95 for the repetition ablation, 90/95 otherwise);
    EMNIST (never near 90%) gets none. ``groups``: default the repository's configs/figures.yaml.
    """
    groups = load_groups() if groups is None else groups
    thresholds_of = {}
    for group in groups:
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


# ----------------------------------------------------------------------------------------------------------
# Paired per-seed comparisons


def per_seed(df: pd.DataFrame, experiment: str, measure: str, threshold: float = 0.90) -> dict[int, tuple[float, bool]]:
    """seed -> (value, censored) for one experiment's finished runs.

    measure: "points" (points to `threshold` by the paper's rule; a run that never reached it counts as its last
    labelled size, a lower bound, censored=True), "final_accuracy", or "final_entropy" (of all acquired labels).
    """
    runs = df[(df["experiment"] == experiment) & (df["status"] == "finished")]
    out = {}
    for _, run in runs.groupby("run_dir", sort=True):
        run = run.sort_values("round")
        seed = int(run["seed"].iloc[0])
        if measure == "points":
            mark = trial_mark(run["labelled_size"], run["test_accuracy"], threshold, int(run["batch_size"].iloc[0]))
            out[seed] = (float(run["labelled_size"].iloc[-1]), True) if mark == INF else (mark, False)
        elif measure == "final_accuracy":
            out[seed] = (float(run["test_accuracy"].iloc[-1]), False)
        elif measure == "final_entropy":
            _, entropies = run_label_steps(run, int(run["num_classes"].iloc[0]))
            if len(entropies):
                out[seed] = (float(entropies[-1]), False)
        else:
            raise ValueError(f"unknown measure {measure!r}")
    return out


@dataclass(frozen=True)
class Paired:
    """Per-seed differences first − second, their median and a percentile-bootstrap 95% interval of the median."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    censored: tuple[bool, ...]
    median: float
    low: float
    high: float

    @property
    def n(self) -> int:
        return len(self.diffs)


def paired(first: dict[int, tuple[float, bool]], second: dict[int, tuple[float, bool]]) -> Paired:
    """Pair two experiments' runs by seed (same seed: same initial set, pool and noise) and bootstrap the median."""
    seeds = tuple(sorted(set(first) & set(second)))
    diffs = np.array([first[s][0] - second[s][0] for s in seeds], dtype=np.float64)
    censored = tuple(first[s][1] or second[s][1] for s in seeds)
    if not len(diffs):
        return Paired((), (), (), NAN, NAN, NAN)
    rng = np.random.default_rng(0)
    medians = np.median(diffs[rng.integers(0, len(diffs), size=(BOOTSTRAP_RESAMPLES, len(diffs)))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return Paired(seeds, tuple(float(d) for d in diffs), censored, float(np.median(diffs)), float(low), float(high))


def verdict(p: Paired, paper_sign: int) -> tuple[bool | None, str]:
    """(passed, words): "holds" when the interval excludes 0 on the paper's side, "reversed" when it excludes 0 on
    the other side (both need >= MIN_PAIRS seeds), else "not shown at this scale"."""
    if p.n == 0:
        return None, "no paired seeds"
    if p.n < MIN_PAIRS:
        return None, f"not shown at this scale (n={p.n} < {MIN_PAIRS} seeds)"
    if min(paper_sign * p.low, paper_sign * p.high) > 0:
        return True, "holds"
    if max(paper_sign * p.low, paper_sign * p.high) < 0:
        return False, "reversed"
    return None, "not shown at this scale (interval includes 0)"


def paired_text(p: Paired, unit: str, fmt: str, paper_sign: int = 0) -> str:
    diffs = ", ".join(
        f"{s}: {'≤' if c and d < 0 else ('≥' if c and d > 0 else '')}{d:{fmt}}"
        for s, d, c in zip(p.seeds, p.diffs, p.censored)
    )
    interval = f"[{p.low:{fmt}}, {p.high:{fmt}}]"
    agree = (
        f"; {sum(paper_sign * d > 0 for d in p.diffs)} of {p.n} seeds in the paper's direction" if paper_sign else ""
    )
    text = f"per-seed differences{unit} {diffs}{agree}; median {p.median:{fmt}}, 95% bootstrap interval {interval}"
    if any(p.censored):
        text += " (≤/≥: a run never reached 90% and counts as its budget, so the difference is a bound)"
    return text


# ----------------------------------------------------------------------------------------------------------
# Acceptance checks


@dataclass(frozen=True)
class Check:
    """One of the paper's findings checked on our runs: ``passed`` True (holds), False (does not), None (cannot
    tell: missing runs, too few seeds, or an interval that includes 0); ``verdict`` says which in words."""

    key: str
    claim: str
    passed: bool | None
    detail: str
    verdict: str = ""


def _fmt_points(value: float) -> str:
    return "∞" if value == INF else ("n/a" if math.isnan(value) else f"{value:g}")


def _points_check(df, present, key, claim, pair, *, paper: str, beside=()) -> Check:
    """``pair[0]`` needs fewer points than ``pair[1]`` to reach 90%: paired per-seed differences, medians beside."""
    missing = [e for e, _ in pair if e not in present]
    if missing:
        return Check(key, claim, None, "missing runs: " + ", ".join(missing), "not checked")
    shown = [(label, experiment_marks(df, e, 0.90)[0]) for e, label in (*pair, *[b for b in beside if b[0] in present])]
    medians = ", ".join(f"{label} {_fmt_points(m.median)} (n={m.n_trials})" for label, m in shown)
    p = paired(per_seed(df, pair[0][0], "points"), per_seed(df, pair[1][0], "points"))
    passed, words = verdict(p, paper_sign=-1)
    detail = f"median points to 90%: {medians}; paper {paper}. " + paired_text(
        p, f" ({pair[0][1]} − {pair[1][1]})", "g", paper_sign=-1
    )
    return Check(key, claim, passed, detail, words)


def acceptance_checks(df: pd.DataFrame) -> list[Check]:
    """The paper's findings, checked on ``df`` (one profile) by paired per-seed differences:

    (a) on RMNIST BatchBALD needs fewer points than BALD (2 reps) to reach 90%;
    (b) BALD needs more points to reach 90% with the most repetitions present than with the fewest (paired; the
        medians over 0/1/2/4 reps are shown, and a non-monotone order is said);
    (c) on EMNIST BatchBALD's final acquired-label entropy and final accuracy are above BALD's (both must hold);
    (d) Table 1: on MNIST BatchBALD b=10 needs fewer points than BALD b=10 to reach 90% (BALD b=1 shown beside).
    """
    present = set(df["experiment"].unique())
    checks = [
        _points_check(
            df,
            present,
            "a",
            "On RMNIST, BatchBALD needs fewer points than BALD to reach 90% accuracy",
            (("rmnist_batchbald", "BatchBALD"), ("rmnist_rep2_bald", "BALD")),
            paper="120 vs 280",
        )
    ]

    claim = "BALD needs more points to reach 90% as the number of repetitions grows"
    have = [(r, f"rmnist_rep{r}_bald") for r in (0, 1, 2, 4) if f"rmnist_rep{r}_bald" in present]
    if len(have) >= 2:
        medians = ", ".join(
            f"{r} rep{'' if r == 1 else 's'} {_fmt_points(experiment_marks(df, e, 0.90)[0].median)}" for r, e in have
        )
        (r_hi, most), (r_lo, fewest) = have[-1], have[0]
        p = paired(per_seed(df, most, "points"), per_seed(df, fewest, "points"))
        passed, words = verdict(p, paper_sign=1)
        values = [experiment_marks(df, e, 0.90)[0].median for _, e in have]
        if not all(a <= b for a, b in zip(values, values[1:])):
            words += "; the medians do not rise monotonically with repetitions"
        detail = (
            f"median points to 90% by repetitions: {medians}; paper 0: 120, 1: 160, 2: 280, 4: 300. "
            + paired_text(p, f" ({r_hi} − {r_lo} reps)", "g", paper_sign=1)
        )
        checks.append(Check("b", claim, passed, detail, words))
    else:
        checks.append(Check("b", claim, None, "fewer than two repetition groups have runs", "not checked"))

    claim = "On EMNIST, BatchBALD's final acquired-label entropy and final accuracy are above BALD's"
    need = ("emnist_batchbald", "emnist_bald")
    if all(e in present for e in need):
        parts, results = [], []
        for measure, name, paper, fmt in (
            ("final_entropy", "final label entropy (nats)", "3.79 vs 3.72", ".3f"),
            ("final_accuracy", "final accuracy", ".517 vs .453", ".3f"),
        ):
            p = paired(*(per_seed(df, e, measure) for e in need))
            results.append(verdict(p, paper_sign=1))
            medians = [np.median([v for v, _ in per_seed(df, e, measure).values()] or [NAN]) for e in need]
            parts.append(
                f"{name}: median BatchBALD {medians[0]:{fmt}} vs BALD {medians[1]:{fmt}} (paper {paper}), "
                + paired_text(p, "", "+.3f", paper_sign=1)
                + f" → {results[-1][1]}"
            )
        flags = [r[0] for r in results]
        passed = True if all(f is True for f in flags) else (False if any(f is False for f in flags) else None)
        words = "holds" if passed else ("reversed" if passed is False else "not shown at this scale")
        checks.append(Check("c", claim, passed, "; ".join(parts), words))
    else:
        missing = ", ".join(e for e in need if e not in present)
        checks.append(Check("c", claim, None, "missing runs: " + missing, "not checked"))

    checks.append(
        _points_check(
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
