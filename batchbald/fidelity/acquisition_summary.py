"""Summaries of the acquisition replay (.acquisition_replay): per group and variant, how our batch compares
with the logged one on the same labelled set. Rows: results/fidelity/acquisition/<group>.csv, one per (run, round,
side); Δ = accuracy(L_r ∪ A_ours) − accuracy(L_r ∪ A_logged), trial means, the same trial seeds on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from batchbald.fidelity.summary import GROUP_INFO
from batchbald.fidelity.variants import run_bootstrap_ci

STEP = ["setting", "run", "round"]


def load_rows(root: str | Path) -> pd.DataFrame:
    """Every row under root, with `setting` = the folder it came from: "default" for <group>.csv, else the variant
    folder's name (scoring_<rule>, models<n>, ...)."""
    root = Path(root)
    paths = sorted(root.glob("*.csv")) + sorted(root.glob("*/*.csv")) if root.is_dir() else []
    frames = []
    for path in paths:
        if path.name != "summary.csv":
            frame = pd.read_csv(path)
            frame["setting"] = "default" if path.parent == root else path.parent.name
            frames.append(frame)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(df):
        df["scoring_rule"] = df["scoring_rule"].fillna(df["rule"]) if "scoring_rule" in df else df["rule"]
    return df


def paired(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, run, round, our variant) with the logged side beside it."""
    logged = df[df["side"] == "logged"]
    ours = df[df["side"] != "logged"]
    pair = ours.merge(logged, on=["group", *STEP], suffixes=("", "_logged"))
    pair["delta"] = pair["accuracy"] - pair["accuracy_logged"]
    pair["mi_gap"] = pair["joint_mi"] - pair["joint_mi_logged"]  # < 0: the logged batch scores higher under our model
    return pair


def _median_rank(ranks: pd.Series) -> float:
    values = [r for text in ranks for r in json.loads(text)]
    return float(np.median(values)) if values else float("nan")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per (group, variant): steps, runs, median and mean Δ with a run-resampled 95% interval of the median, mean
    joint MI ours / logged, share of steps where the logged batch has the higher joint MI, mean overlap, digit
    repeats (in the batch, of the labelled set) ours / logged, median BALD rank of the logged picks."""
    rows = []
    for (group, setting, side), g in paired(df).groupby(["group", "setting", "side"], sort=False):
        by_run = [g.loc[g["run"] == run, "delta"].to_numpy() for run in g["run"].unique()]
        lo, hi = run_bootstrap_ci(by_run, np.median)
        rows.append(
            {
                "group": group,
                "variant": side,
                "setting": setting,
                "scoring_rule": g["scoring_rule"].iloc[0],
                "steps": len(g),
                "runs": g["run"].nunique(),
                "rounds": f"{g['round'].min()}–{g['round'].max()}",
                "median_delta": float(g["delta"].median()),
                "ci_low": lo,
                "ci_high": hi,
                "mean_delta": float(g["delta"].mean()),
                "joint_mi": float(g["joint_mi"].mean()),
                "joint_mi_logged": float(g["joint_mi_logged"].mean()),
                "logged_mi_higher": float((g["mi_gap"] < 0).mean()),
                "overlap": float(g["overlap_with_logged"].mean()),
                "repeats_in_batch": int(g["repeats_in_batch"].sum()),
                "repeats_in_batch_logged": int(g["repeats_in_batch_logged"].sum()),
                "repeats_of_labelled": int(g["repeats_of_labelled"].sum()),
                "repeats_of_labelled_logged": int(g["repeats_of_labelled_logged"].sum()),
                "label_entropy": float(g["label_entropy"].mean()),
                "label_entropy_logged": float(g["label_entropy_logged"].mean()),
                "logged_bald_rank": _median_rank(g["bald_ranks_logged"]),
            }
        )
    return pd.DataFrame(rows)


EARLY_LABELS = 100  # the by-size table's split: L_r of at most this many labels is "early"


def by_size(df: pd.DataFrame) -> pd.DataFrame:
    """Per (group, variant) with at least two labelled sizes: mean Δ at each labelled size L_r (steps), and the mean
    Δ with a run-resampled 95% interval over the steps with L_r ≤ EARLY_LABELS and above it."""
    rows = []
    for (group, setting, side), g in paired(df).groupby(["group", "setting", "side"], sort=False):
        if g["labelled_size"].nunique() < 2:
            continue
        row = {"group": group, "setting": setting, "variant": side}
        for size, s in g.groupby("labelled_size"):
            row[int(size)] = f"{s['delta'].mean():+.3f} ({len(s)})"
        for name, part in (
            ("early", g[g["labelled_size"] <= EARLY_LABELS]),
            ("late", g[g["labelled_size"] > EARLY_LABELS]),
        ):
            by_run = [part.loc[part["run"] == run, "delta"].to_numpy() for run in part["run"].unique()]
            lo, hi = run_bootstrap_ci(by_run, np.mean)
            row[name] = f"{part['delta'].mean():+.4f} [{lo:+.4f}, {hi:+.4f}] ({len(part)})" if len(part) else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def by_size_markdown(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    sizes = sorted(c for c in table.columns if isinstance(c, int))
    header = ["logs", "replay", "our acquisition", *[f"L={n}" for n in sizes]]
    header += [f"mean Δ, L ≤ {EARLY_LABELS} [95% CI] (steps)", f"mean Δ, L > {EARLY_LABELS} [95% CI] (steps)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.to_dict("records"):
        cells = [GROUP_INFO.get(r["group"], (r["group"],))[0], r["setting"], r["variant"]]
        cells += [r.get(n) if isinstance(r.get(n), str) else "" for n in sizes] + [r["early"], r["late"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


BY_SIZE_TEXT = (
    "By labelled-set size: mean Δacc over the steps from each L_r (steps in brackets), and over the steps from at most "
    f"{EARLY_LABELS} labels and from more (the split was chosen after seeing the per-size means in the figure)."
)


HEADER = [
    "logs",
    "replay",
    "our acquisition",
    "scoring model stops on",
    "steps (runs; rounds)",
    "median Δacc [95% CI]",
    "mean Δacc",
    "joint MI ours / logged (logged higher)",
    "overlap",
    "repeats in batch ours / logged",
    "repeats of labelled ours / logged",
    "label entropy ours / logged",
    "median BALD rank of logged picks",
]


def markdown(summary: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in summary.itertuples():
        cells = [
            GROUP_INFO.get(r.group, (r.group,))[0],
            r.setting,
            r.variant,
            r.scoring_rule,
            f"{r.steps} ({r.runs}; {r.rounds})",
            f"{r.median_delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
            f"{r.mean_delta:+.4f}",
            f"{r.joint_mi:.3f} / {r.joint_mi_logged:.3f} ({r.logged_mi_higher:.0%})",
            f"{r.overlap:.1f}",
            f"{r.repeats_in_batch} / {r.repeats_in_batch_logged}",
            f"{r.repeats_of_labelled} / {r.repeats_of_labelled_logged}",
            f"{r.label_entropy:.2f} / {r.label_entropy_logged:.2f}",
            f"{r.logged_bald_rank:.0f}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pair = paired(df)
    groups = list(dict.fromkeys(pair["group"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        g = pair[pair["group"] == group]
        for j, ((setting, side), s) in enumerate(g.groupby(["setting", "side"], sort=False)):
            jitter = (j - 0.5) * 1.5
            ax.scatter(s["labelled_size"] + jitter, s["delta"], s=12, alpha=0.5)
            med = s.groupby("labelled_size")["delta"].median()
            ax.plot(med.index + jitter, med.values, marker="o", label=f"{side} ({setting}): median")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(GROUP_INFO.get(group, (group,))[0], fontsize=10)
        ax.set_xlabel("labelled set L_r (size)")
        ax.set_ylabel("acc(L_r ∪ ours) − acc(L_r ∪ logged)")
        ax.legend(fontsize=7)
    fig.suptitle("Acquisition replay: one step from the paper's logged state (trial means)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(root: str | Path) -> list[Path]:
    """summary.csv, summary.md and delta.png under root from the rows there."""
    root = Path(root)
    df = load_rows(root)
    if df.empty:
        raise FileNotFoundError(f"no acquisition-replay rows under {root}: run scripts/replay_acquisition.py first")
    summary = summarize(df)
    summary.to_csv(root / "summary.csv", index=False)
    provenance = (
        ", ".join(sorted(set(df["hardware"].astype(str))))
        + "; commits "
        + ", ".join(sorted(set(df["git_commit"].astype(str))))
    )
    text = [
        "# Acquisition replay",
        "",
        "From the paper's own labelled set L_r (official logs), our model acquires a batch; T models are trained on "
        "L_r ∪ A_ours and on L_r ∪ A_logged with the same trial seeds and tested on the full test set. "
        "Δacc = ours − logged (trial means); the interval resamples whole runs. Diagnostics under our round-r model: "
        "joint MI I(y_1..y_b; ω) of each batch (exact or 200k-sample estimate, same draws for both), overlap with "
        "the logged batch, picks repeating an MNIST digit (another Repeated-MNIST copy) of the batch or the "
        "labelled set.",
        "",
        *markdown(summary),
        "",
        BY_SIZE_TEXT,
        "",
        *by_size_markdown(by_size(df)),
        "",
        f"Rows: {len(df)} ({df.groupby(['group', *STEP]).ngroups} steps). Hardware and code: {provenance}.",
        "",
        "![Δacc per step](delta.png)",
        "",
    ]
    (root / "summary.md").write_text("\n".join(text))
    figure(df, root / "delta.png")
    return [root / "summary.csv", root / "summary.md", root / "delta.png"]


def report_section(root: str | Path, report_dir: str | Path) -> list[str]:
    """REPORT.md's acquisition-replay subsection of "Fidelity to the official logs" ([] without rows)."""
    import os

    root = Path(root)
    df = load_rows(root)
    if df.empty:
        return []
    lines = [
        "### Acquisition replay (`make replay-acquisition`)",
        "",
        "From a logged round's labelled set L_r our model acquires a batch; models trained on L_r ∪ A_ours and on "
        "L_r ∪ A_logged (same trial seeds) are tested on the full test set. Δacc = ours − logged, trial means; the "
        "interval resamples whole runs. `replay`: default (the paper-profile scoring rule), scoring_<rule> (another "
        "stopping rule for the scoring model), models<n> (n of our models per step: our own spread). Diagnostics "
        "under our round-r model.",
        "",
        *markdown(summarize(df)),
        "",
        BY_SIZE_TEXT,
        "",
        *by_size_markdown(by_size(df)),
        "",
    ]
    png = root / "delta.png"
    if png.exists():
        lines += [f"![Acquisition replay: Δacc per step]({os.path.relpath(png, report_dir)})", ""]
    return lines
