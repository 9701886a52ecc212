"""Summaries of official-log replays (`scripts/replay.py`): ours-on-their-labelled-sets vs their logged numbers.

Rows live in ``<root>/<validation_set>/<group>.csv``, one per (run, round, trial). The per-round difference of a
run is the mean over its trials of (our accuracy − logged accuracy); a group's verdict uses the median of those
differences over all (run, round) pairs and a bootstrap interval of that median (runs resampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from batchbald.fidelity.variants import MIN_EPOCHS, rule_dirs, run_bootstrap_ci, variants_section
from batchbald.train import VALIDATION_SETS

# Official log group -> (display name, which training regime its logs show, paper figures/tables it feeds).
GROUP_INFO: dict[str, tuple[str, str, str]] = {
    "rmnist_w_noise_independent_bald_k10_b10": ("RMNIST BALD", "main", "Figs 2, 10, 11"),
    "rmnist_w_noise_multibald_bald_k10_b10": ("RMNIST BatchBALD", "main", "Figs 2, 11"),
    "rmnist_w_noise_independent_random_k10_b5": ("RMNIST random (b=5)", "main", "Figs 2, 11"),
    "mnist_independent_bald_k100_b10": ("MNIST BALD b=10", "main", "Table 1"),
    "mnist_multibald_bald_k100_b10": ("MNIST BatchBALD b=10", "main", "Table 1"),
    "mnist_independent_bald_k100_b1": ("MNIST BALD b=1", "main", "Table 1"),
    "mnist_w_noise_independent_bald_k10_b10": ("BALD, 0 reps (ablation)", "ablation", "Fig 10"),
    "repeated_mnist_w_noise2_independent_bald_k10_b10": ("BALD, 1 rep (ablation)", "ablation", "Fig 10"),
    "repeated_mnist_w_noise5_independent_bald_k10_b10": ("BALD, 4 reps (ablation)", "ablation", "Fig 10"),
    "repeated_mnist_w_noise5_multibald_bald_k10_b10": ("BatchBALD, 4 reps (ablation)", "ablation", "Fig 10"),
    "rmnist_w_noise_independent_variation_ratios_k10_b10": ("RMNIST Var Ratios", "ablation", "Fig 11"),
    "rmnist_w_noise_independent_mean_stddev_k10_b10": ("RMNIST Mean STD", "ablation", "Fig 11"),
}
MATCH_TOLERANCE = 0.01  # |median per-round accuracy difference| within this counts as matching the log


@dataclass
class GroupSummary:
    group: str
    validation_set: str
    runs: int
    rounds: int  # (run, round) pairs
    trials: float  # training trials per (run, round), mean (uneven while a replay is under way)
    median_diff: float
    diff_ci: tuple[float, float]  # bootstrap 95% interval of the median difference (runs resampled)
    mean_diff: float
    share_higher: float  # (run, round) pairs where ours is above the log
    epochs_ours: float
    epochs_logged: float
    at_min_ours: float  # share of trainings that stopped at the minimum (4 epochs)
    at_min_logged: float
    nll_ours: float
    nll_logged: float
    # trainings that also recorded the mean of the K test masks' own NLLs (replays from cdca75e on): its mean, the
    # logged NLL of the same rows, and the median per-row difference from the log of both our NLL statistics
    per_mask_rows: int = 0
    nll_per_mask_ours: float = math.nan
    nll_per_mask_logged: float = math.nan
    nll_per_mask_median_diff: float = math.nan
    nll_median_diff: float = math.nan
    # and the accuracy of the geometric-mean prediction (argmax mean_k log p_k), where recorded (from fcebd83 on)
    log_mean_rows: int = 0
    acc_log_mean_median_diff: float = math.nan
    acc_median_diff_same_rows: float = math.nan

    @property
    def matches(self) -> bool:
        return abs(self.median_diff) <= MATCH_TOLERANCE


def load_replays(root: str | Path) -> pd.DataFrame:
    """Every replay row under root/<stopping rule>/ (as written by scripts/replay.py; root/tables/ holds the derived
    tables and is not read); empty frame when there are none."""
    frames = [pd.read_csv(p) for folder in rule_dirs(root) for p in sorted(folder.glob("*.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def per_round(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (validation_set, group, run, round): trial means of ours, the logged values, the difference."""
    keys = ["validation_set", "group", "run", "seed", "round", "labelled_size"]
    out = df.groupby(keys, as_index=False).agg(
        accuracy=("accuracy", "mean"),
        nll=("nll", "mean"),
        epochs=("epochs", "mean"),
        trials=("trial", "count"),
        logged_accuracy=("logged_accuracy", "first"),
        logged_nll=("logged_nll", "first"),
        logged_epochs=("logged_epochs", "first"),
    )
    out["diff"] = out["accuracy"] - out["logged_accuracy"]
    return out


def summarize(df: pd.DataFrame) -> list[GroupSummary]:
    """One summary per (group, validation set) present in the replay rows."""
    rounds = per_round(df)
    out = []
    for (rule, group), r in rounds.groupby(["validation_set", "group"], sort=False):
        raw = df[(df["validation_set"] == rule) & (df["group"] == group)]
        by_run = [g["diff"].to_numpy() for _, g in r.groupby("run")]
        out.append(
            GroupSummary(
                group=group,
                validation_set=rule,
                runs=r["run"].nunique(),
                rounds=len(r),
                trials=float(r["trials"].mean()),
                median_diff=float(r["diff"].median()),
                diff_ci=run_bootstrap_ci(by_run, np.median),
                mean_diff=float(r["diff"].mean()),
                share_higher=float((r["diff"] > 0).mean()),
                epochs_ours=float(raw["epochs"].mean()),
                epochs_logged=float(r["logged_epochs"].mean()),
                at_min_ours=float((raw["epochs"] == MIN_EPOCHS).mean()),
                at_min_logged=float((r["logged_epochs"] == MIN_EPOCHS).mean()),
                nll_ours=float(raw["nll"].mean()),
                nll_logged=float(r["logged_nll"].mean()),
                **mask_statistics(raw),
            )
        )
    order = list(GROUP_INFO)
    out.sort(key=lambda s: (order.index(s.group) if s.group in order else len(order), s.validation_set))
    return out


def mask_statistics(raw: pd.DataFrame) -> dict:
    """The per-mask NLL and geometric-mean accuracy comparisons over the rows that recorded them (GroupSummary's
    fields of those names); empty when none did."""
    if "nll_per_mask" not in raw:
        return {}
    pm = raw.dropna(subset=["nll_per_mask"])
    if pm.empty:
        return {}
    out = {
        "per_mask_rows": len(pm),
        "nll_per_mask_ours": float(pm["nll_per_mask"].mean()),
        "nll_per_mask_logged": float(pm["logged_nll"].mean()),
        "nll_per_mask_median_diff": float((pm["nll_per_mask"] - pm["logged_nll"]).median()),
        "nll_median_diff": float((pm["nll"] - pm["logged_nll"]).median()),
    }
    if "accuracy_log_mean" in raw:
        lm = raw.dropna(subset=["accuracy_log_mean"])
        if not lm.empty:
            out["log_mean_rows"] = len(lm)
            out["acc_log_mean_median_diff"] = float((lm["accuracy_log_mean"] - lm["logged_accuracy"]).median())
            out["acc_median_diff_same_rows"] = float((lm["accuracy"] - lm["logged_accuracy"]).median())
    return out


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per (validation set, group, labelled size): quartiles over runs of our (trial-mean) and the logged accuracy."""
    rounds = per_round(df)
    q = rounds.groupby(["validation_set", "group", "labelled_size"])
    frame = q.agg(runs=("run", "nunique")).reset_index()
    for col in ("accuracy", "logged_accuracy", "epochs", "logged_epochs", "diff"):
        for name, p in (("q25", 0.25), ("median", 0.5), ("q75", 0.75)):
            frame[f"{col}_{name}"] = q[col].quantile(p).to_numpy()
    return frame


def summary_frame(summaries: list[GroupSummary]) -> pd.DataFrame:
    rows = []
    for s in summaries:
        name, regime, feeds = GROUP_INFO.get(s.group, (s.group, "?", ""))
        rows.append(
            {
                "group": s.group,
                "name": name,
                "log_regime": regime,
                "feeds": feeds,
                "validation_set": s.validation_set,
                "runs": s.runs,
                "rounds": s.rounds,
                "trials": s.trials,
                "median_diff": round(s.median_diff, 4),
                "ci_low": round(s.diff_ci[0], 4),
                "ci_high": round(s.diff_ci[1], 4),
                "mean_diff": round(s.mean_diff, 4),
                "share_higher": round(s.share_higher, 3),
                "epochs_ours": round(s.epochs_ours, 2),
                "epochs_logged": round(s.epochs_logged, 2),
                "at4_ours": round(s.at_min_ours, 3),
                "at4_logged": round(s.at_min_logged, 3),
                "nll_ours": round(s.nll_ours, 3),
                "nll_logged": round(s.nll_logged, 3),
                "per_mask_rows": s.per_mask_rows,
                "nll_per_mask_ours": round(s.nll_per_mask_ours, 3),
                "nll_per_mask_logged": round(s.nll_per_mask_logged, 3),
                "nll_per_mask_median_diff": round(s.nll_per_mask_median_diff, 3),
                "nll_median_diff_same_rows": round(s.nll_median_diff, 3),
                "log_mean_rows": s.log_mean_rows,
                "acc_log_mean_median_diff": round(s.acc_log_mean_median_diff, 4),
                "acc_median_diff_same_rows": round(s.acc_median_diff_same_rows, 4),
                "matches": s.matches,
            }
        )
    return pd.DataFrame(rows)


NLL_NOTE = (
    "Which statistic the logs recorded. Log-mean NLL and mean-probability accuracy: the prediction "
    "log(mean over the K masks of p), as the paper defines it and the released code computes it (the columns "
    "above). Per-mask NLL: the mean over the K masks of each mask's own NLL, i.e. the NLL of the prediction "
    "mean_k log p_k; geometric-mean accuracy: argmax of that prediction. Recorded by replays from commits "
    "cdca75e (NLL) and fcebd83 (accuracy) on, so only on the trainings counted; medians of per-training "
    "differences from the log."
)


def mask_statistics_section(summaries: list[GroupSummary]) -> list[str]:
    """Which test statistic the logs recorded: a table of both NLLs and both accuracies against the log, then
    NLL_NOTE ([] when no replay recorded them)."""
    rows = [s for s in summaries if s.per_mask_rows]
    if not rows:
        return []
    lines = [
        "| logs | early stopping on | trainings | NLL − logged: log-mean / per-mask | "
        "Δacc: mean-probability / geometric-mean prediction (trainings) |",
        "|---|---|---|---|---|",
    ]
    for s in rows:
        name = GROUP_INFO.get(s.group, (s.group,))[0]
        acc = (
            f"{s.acc_median_diff_same_rows:+.3f} / {s.acc_log_mean_median_diff:+.3f} ({s.log_mean_rows})"
            if s.log_mean_rows
            else "not recorded"
        )
        lines.append(
            f"| {name} | {s.validation_set} | {s.per_mask_rows} | "
            f"{s.nll_median_diff:+.2f} / {s.nll_per_mask_median_diff:+.2f} | {acc} |"
        )
    return [*lines, "", NLL_NOTE, ""]


def deterministic(summaries: list[GroupSummary]) -> list[GroupSummary]:
    """The summaries of the two protocols (held-out and labelled set, dropout off); MC-scored rules are compared in
    fidelity_variants' paired table instead."""
    return [s for s in summaries if s.validation_set in VALIDATION_SETS]


def markdown_table(summaries: list[GroupSummary]) -> list[str]:
    lines = [
        "| logs | regime | early stopping on | runs × rounds × trials | median Δacc [95% CI] | ours higher | "
        "epochs ours / logged | at 4 epochs ours / logged | NLL ours / logged | within ±0.01 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        name, regime, feeds = GROUP_INFO.get(s.group, (s.group, "?", ""))
        lines.append(
            f"| {name} ({feeds}) | {regime} | {s.validation_set} | {s.runs} × {s.rounds / max(s.runs, 1):.3g} × "
            f"{s.trials:.3g} | {s.median_diff:+.3f} [{s.diff_ci[0]:+.3f}, {s.diff_ci[1]:+.3f}] | "
            f"{s.share_higher:.0%} | {s.epochs_ours:.1f} / {s.epochs_logged:.1f} | "
            f"{s.at_min_ours:.0%} / {s.at_min_logged:.0%} | {s.nll_ours:.2f} / {s.nll_logged:.2f} | "
            f"{'yes' if s.matches else 'no'} |"
        )
    return lines


def figure(df: pd.DataFrame):
    """Accuracy (top) and epochs (bottom) against labelled size, one column per group: the logged median and
    quartiles over runs beside ours under each validation set."""
    import matplotlib.pyplot as plt

    c = curves(df[df["validation_set"].isin(VALIDATION_SETS)])
    groups = [g for g in GROUP_INFO if g in set(c["group"])] + sorted(set(c["group"]) - set(GROUP_INFO))
    fig, axes = plt.subplots(2, len(groups), figsize=(3.6 * len(groups), 6.4), squeeze=False, sharex="col")
    colors = {"heldout": "C0", "labelled": "C3"}
    for j, group in enumerate(groups):
        g = c[c["group"] == group]
        first = g[g["validation_set"] == g["validation_set"].iloc[0]]
        for row, col, label in ((0, "accuracy", "test accuracy"), (1, "epochs", "training epochs")):
            ax = axes[row][j]
            ax.plot(first["labelled_size"], first[f"logged_{col}_median"], "k--", label="official log")
            ax.fill_between(
                first["labelled_size"], first[f"logged_{col}_q25"], first[f"logged_{col}_q75"], color="k", alpha=0.1
            )
            for rule, r in g.groupby("validation_set"):
                ax.plot(
                    r["labelled_size"], r[f"{col}_median"], color=colors.get(rule, "C2"), label=f"ours, stop on {rule}"
                )
                ax.fill_between(
                    r["labelled_size"], r[f"{col}_q25"], r[f"{col}_q75"], color=colors.get(rule, "C2"), alpha=0.15
                )
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.set_ylabel(label)
            if row == 1:
                ax.set_xlabel("labelled set size")
        name, regime, _ = GROUP_INFO.get(group, (group, "?", ""))
        axes[0][j].set_title(f"{name}\n(logs: {regime} runs)", fontsize=9)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "Replay of the official logs: our training on each logged labelled set (median and quartiles over runs)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def report_section(root: str | Path, report_dir: str | Path) -> list[str]:
    """REPORT.md's "Fidelity to the official logs" section from the replay rows under root ([] when none)."""
    import os

    root = Path(root)
    df = load_replays(root)
    if df.empty:
        return []
    summaries = summarize(df)
    lines = [
        "## Fidelity to the official logs",
        "",
        "`scripts/replay.py` retrains our model on exactly the labelled set of each logged round of the paper's "
        "official runs and evaluates it as the paper does (full test set, the run's K MC samples); early "
        "stopping on the held-out validation set (the released code; our default) and on the labelled set "
        "share one training run per trial. Δacc = ours − logged per (run, round), median over pairs, bootstrap "
        '95% interval over runs. README "Training protocol" says what follows from it.',
        "",
        *markdown_table(deterministic(summaries)),
        "",
    ]
    lines += mask_statistics_section(deterministic(summaries))
    lines += variants_section(df, GROUP_INFO)
    png = root / "replay.png"
    if png.exists():
        lines += [f"![Replay of the official logs]({os.path.relpath(png, report_dir)})", ""]
    summary = root / "summary.md"
    if summary.exists():
        lines += [
            f"Details, tables and provenance: [{os.path.relpath(summary, report_dir)}]"
            f"({os.path.relpath(summary, report_dir)}).",
            "",
        ]
    return lines


def write_report(root: str | Path) -> list[Path]:
    """tables/{summary,rounds,curves}.csv, replay.png/.pdf and summary.md under root."""
    root = Path(root)
    df = load_replays(root)
    if df.empty:
        raise FileNotFoundError(f"no replay rows under {root}; run scripts/replay.py first")
    tables = root / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    summaries = summarize(df)
    written = []
    for name, frame in (("summary", summary_frame(summaries)), ("rounds", per_round(df)), ("curves", curves(df))):
        path = tables / f"{name}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        written.append(path)
    fig = figure(df)
    for ext in ("png", "pdf"):
        path = root / f"replay.{ext}"
        fig.savefig(
            path,
            dpi=150 if ext == "png" else 300,
            bbox_inches="tight",
            metadata={"CreationDate": None} if ext == "pdf" else None,
        )
        written.append(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    # one training per (run, round, trial) and code commit: rules replayed together shared it, later ones did not
    trainings = df.drop_duplicates(["group", "run", "round", "trial", *(["git_commit"] if "git_commit" in df else [])])
    hardware = ", ".join(sorted(set(df["hardware"].astype(str)))) if "hardware" in df else "unknown"
    commits = ", ".join(sorted(set(df["git_commit"].astype(str)))) if "git_commit" in df else "unknown"
    lines = [
        "# Replay of the official logs (generated by `scripts/replay.py --report`)",
        "",
        "Each row: our model trained on exactly the labelled set of a logged round, evaluated on the full test "
        "set with the run's K MC-dropout samples (K ≤ 100), against the accuracy, NLL and epochs the official "
        "log records for that round. Δacc = ours − logged, averaged over trials per (run, round); the median is "
        "over all (run, round) pairs; the interval resamples runs.",
        "",
        *markdown_table(deterministic(summaries)),
        "",
        *mask_statistics_section(deterministic(summaries)),
        *variants_section(df, GROUP_INFO),
        f"Rows: {len(df)}; {trainings['train_seconds'].sum() / 3600:.1f} CPU-hours of training (a training "
        "shared by several stopping rules counted once), "
        f"{df['eval_seconds'].sum() / 3600:.1f} of evaluation); hardware: {hardware}; code: {commits}.",
        "",
    ]
    path = root / "summary.md"
    path.write_text("\n".join(lines))
    written.append(path)
    return written
