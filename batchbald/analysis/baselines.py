"""REPORT "Beyond the paper": the baseline groups (configs/figures.yaml `run: baselines`): every method's points to
90% (groups with a threshold) or final label entropy, final accuracy, selection and scoring seconds, and its paired
per-seed difference from the group's BatchBALD with a bootstrap interval of the median; then a reference line."""

from __future__ import annotations

import math

import pandas as pd

from batchbald.analysis import checks, curves
from batchbald.analysis.markdown import fmt_acc, fmt_quartiles, table

# Computed by us from BlackHC/active_learning_redux's committed logs (../shared/paper/BASELINES.md §8), in *their*
# setting: Repeated MNIST x4, K=100, 5 seeds, 20 initial labels; labels to reach 90% (batch size in brackets).
REDUX_SETTING = "Repeated MNIST x4, K=100, 5 seeds (active_learning_redux's committed logs, computed by us)"
REDUX_POINTS_TO_90 = {
    "margin (10)": 86,
    "PowerBALD (10)": 104,
    "BatchBALD (5)": 105,
    "random (10)": 150,
    "BADGE (10)": 158,
    "variation ratios (10)": 194,
    "BALD (10)": 260,
}


def median_seconds(rows: pd.DataFrame, column: str) -> float:
    """Median over rounds that acquired a batch of one timing column."""
    acquired = rows[[len(v) > 0 for v in rows["acquired_indices"]]]
    values = pd.to_numeric(acquired[column], errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def _versus(df: pd.DataFrame, e: str, reference: str, points: bool) -> str:
    """'median [low, high] (n), better|worse|not shown' of e − reference, paired by seed."""
    measure = "points" if points else "final_accuracy"
    p = checks.paired(checks.per_seed(df, e, measure), checks.per_seed(df, reference, measure))
    if p.n == 0:
        return "no paired seeds"
    fmt = "+.0f" if points else "+.3f"
    text = f"{p.median:{fmt}} [{p.low:{fmt}}, {p.high:{fmt}}] (n={p.n}{', bounds' if any(p.censored) else ''})"
    sign = -1 if points else 1  # fewer points, or higher accuracy, is better
    passed, words = checks.verdict(p, sign)
    return text + ", " + {True: "better", False: "worse"}.get(passed, words.replace("not shown at this scale", "tie"))


def baselines_section(df: pd.DataFrame, groups, infos: dict) -> list[str]:
    lines = []
    for group in groups:
        if group.run != "baselines" or not any(e in infos for e, _ in group.members):
            continue
        points = bool(group.thresholds)
        reference = next((e for e, _ in group.members if "batchbald" in e), None)
        third = "points to 90%" if points else "final label entropy"
        versus = f"− BatchBALD, {'points to 90%' if points else 'final accuracy'}"
        header = ["method", "n", third, "final accuracy", "select s/round", "score s/round", versus]
        rows = []
        for e, label in group.members:
            if e not in infos:
                rows.append([f"{label} (`{e}`)", 0] + ["no runs"] * 5)
                continue
            part = df[df["experiment"] == e]
            finished = part[part["status"] == "finished"]
            if finished.empty:
                rows.append([f"{label} (`{e}`)", infos[e]["n_runs"]] + ["running"] * 5)
                continue
            acc = curves.accuracy_curves(df, e).iloc[-1]
            final = (
                f"{fmt_acc(acc['median'])} ({fmt_acc(acc['q25'])}–{fmt_acc(acc['q75'])}) @{int(acc['labelled_size'])}"
            )
            if points:
                m = curves.experiment_marks(df, e, 0.90)[0]
                mark = fmt_quartiles(m.q25, m.median, m.q75)
            else:
                ent = curves.label_entropy_curves(df, e).iloc[-1]
                mark = f"{ent['median']:.3f} ({ent['q25']:.3f}–{ent['q75']:.3f})"
            seconds = [f"{median_seconds(finished, c):.2f}" for c in ("select_seconds", "score_seconds")]
            vs = "—" if e == reference or reference not in infos else _versus(df, e, reference, points)
            rows.append([f"{label} (`{e}`)", infos[e]["n_runs"], mark, final, *seconds, vs])
        lines += [f"#### {group.title}", ""] + table(header, rows) + [""]
        lines += [
            "Quartiles over seeds (q25/median/q75). Last column: the method minus BatchBALD paired by seed, median "
            "and 95% bootstrap interval of the median; better/worse when the interval excludes 0 with at least "
            f"{checks.MIN_PAIRS} pairs, else tie"
            + (" (bounds: a run never reached 90% and counts as its budget)" if points else "")
            + ". Seconds: median over rounds on the 2-core box; runs made while other jobs loaded it are slower.",
            "",
        ]
        if points and group.dataset_label == "Repeated MNIST":
            nums = ", ".join(f"{k} {v}" for k, v in REDUX_POINTS_TO_90.items())
            lines += [f"Reference, their setting ({REDUX_SETTING}): labels to 90% {nums}. Not our setting.", ""]
    return lines
