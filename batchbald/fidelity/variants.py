"""Stopping-score variants in the replay: the labelled-set rule scored by the deterministic net vs by MC dropout.

Replay rows under ``<root>/<rule>/<group>.csv`` for rules with an MC suffix (``labelled_mc1``: one dropout mask per
validation pass; ``labelled_mc10``/``labelled_mc100``: the run's K-sample MC prediction, as the test sampler
predicts) are compared, per group and MC rule, with the deterministic rules on exactly the (run, round, trial)
trainings that the MC rule and every deterministic rule of the group have: the training draws are the same under
every rule (`train_model_rules`), so the rules differ only in when they stop. Each MC rule is paired on its own set,
so a rule replayed for more trials is not cut down to the trials of another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from batchbald.train import VALIDATION_SETS, parse_rule

MIN_EPOCHS = 4  # patience 3: best at epoch 1, then 3 epochs without improvement
TRAINING = ["group", "run", "round", "trial"]
BASELINE = "labelled"  # the rule every other one is paired against, training by training


def rule_dirs(root: str | Path) -> list[Path]:
    """Folders of replay rows under root: the deterministic rules first, then MC rules by name."""
    found = []
    for path in Path(root).iterdir() if Path(root).is_dir() else ():
        try:
            base, k = parse_rule(path.name)
        except ValueError:
            continue  # tables/ and anything else that is not a rule
        found.append(((k > 0, VALIDATION_SETS.index(base), k), path))
    return [path for _, path in sorted(found)]


def paired(df: pd.DataFrame) -> pd.DataFrame:
    """Per (group, MC rule, rule): over the trainings that the MC rule (``paired_set``) and every deterministic rule of
    the group have, median and mean Δacc (ours − logged), mean epochs and share at the minimum (ours and logged),
    median per-mask NLL − logged. Groups without an MC rule give no rows."""
    rows = []
    for group, g in df.groupby("group", sort=False):
        rules = list(dict.fromkeys(g["validation_set"]))
        deterministic = [r for r in rules if not parse_rule(r)[1]]
        for mc_rule in (r for r in rules if parse_rule(r)[1]):
            sub = g[g["validation_set"].isin([*deterministic, mc_rule])]
            common = sub[sub.groupby(TRAINING)["validation_set"].transform("nunique") == len(deterministic) + 1]
            for rule in [*deterministic, mc_rule]:
                rows.append(
                    {"group": group, "paired_set": mc_rule, "rule": rule, **_stats(common, rule), **_vs(common, rule)}
                )
    return pd.DataFrame(rows)


def run_bootstrap_ci(values_by_run: list[np.ndarray], statistic, *, reps: int = 2000, seed: int = 0) -> tuple:
    """95% percentile interval of statistic(pooled values), resampling whole runs with replacement."""
    k = len(values_by_run)
    if k == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    stats = [statistic(np.concatenate([values_by_run[i] for i in rng.integers(0, k, k)])) for _ in range(reps)]
    return (float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5)))


def _vs(common: pd.DataFrame, rule: str) -> dict:
    """Accuracy of rule − the baseline rule's on each shared training: mean, a 95% interval resampling whole runs,
    and the share of trainings where the two stop at a different epoch (NaN for the baseline itself)."""
    if rule == BASELINE or BASELINE not in set(common["validation_set"]):
        return {"vs_mean": np.nan, "vs_ci": (np.nan, np.nan), "vs_moved": np.nan}
    pair = common[common["validation_set"] == rule].merge(
        common[common["validation_set"] == BASELINE], on=TRAINING, suffixes=("", "_base")
    )
    diff = (pair["accuracy"] - pair["accuracy_base"]).to_numpy()
    by_run = [diff[(pair["run"] == run).to_numpy()] for run in pair["run"].unique()]
    return {
        "vs_mean": diff.mean(),
        "vs_ci": run_bootstrap_ci(by_run, np.mean),
        "vs_moved": (pair["epochs"] != pair["epochs_base"]).mean(),
    }


def _stats(common: pd.DataFrame, rule: str) -> dict:
    r = common[common["validation_set"] == rule]
    diff = r["accuracy"] - r["logged_accuracy"]
    pm = r["nll_per_mask"] - r["logged_nll"] if "nll_per_mask" in r else pd.Series(dtype=float)
    return {
        "trainings": len(r),
        "runs": r["run"].nunique(),
        "trials": r["trial"].nunique(),
        "median_diff": diff.median(),
        "mean_diff": diff.mean(),
        "epochs_ours": r["epochs"].mean(),
        "epochs_logged": r["logged_epochs"].mean(),
        "at4_ours": (r["epochs"] == MIN_EPOCHS).mean(),
        "at4_logged": (r["logged_epochs"] == MIN_EPOCHS).mean(),
        "nll_per_mask_median_diff": pm.median(),
    }


def variants_section(df: pd.DataFrame, names: dict[str, tuple]) -> list[str]:
    """Markdown: the paired comparison of stopping rules per group ([] when no MC rule was replayed)."""
    table = paired(df)
    if table.empty:
        return []
    lines = [
        "### Stopping-score variants (paired: the same trainings under every rule)",
        "",
        "| logs | paired on the trainings of | early stopping on | trainings (runs, trials) | median Δacc | "
        "mean Δacc | epochs ours / logged | at 4 epochs ours / logged | per-mask NLL − logged | "
        f"acc − {BASELINE}, same training: mean [95% CI] (stops elsewhere) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(names)
    table = table.sort_values(
        "group", kind="stable", key=lambda g: g.map(lambda x: order.index(x) if x in order else len(order))
    )
    for r in table.itertuples():  # (a stable sort: each group's rules keep their folder order)
        name = names.get(r.group, (r.group,))[0]
        nll = "n/a" if pd.isna(r.nll_per_mask_median_diff) else f"{r.nll_per_mask_median_diff:+.2f}"
        vs = (
            "—" if pd.isna(r.vs_mean) else f"{r.vs_mean:+.4f} [{r.vs_ci[0]:+.4f}, {r.vs_ci[1]:+.4f}] ({r.vs_moved:.0%})"
        )
        lines.append(
            f"| {name} | {r.paired_set} | {r.rule} | {r.trainings} ({r.runs}, {r.trials}) | {r.median_diff:+.3f} | "
            f"{r.mean_diff:+.3f} | "
            f"{r.epochs_ours:.2f} / {r.epochs_logged:.2f} | {r.at4_ours:.0%} / {r.at4_logged:.0%} | "
            f"{nll} | {vs} |"
        )
    lines += [
        "",
        "`labelled`: the labelled set scored by the deterministic net (dropout off); `labelled_mc1`: by one fresh "
        "MC-dropout mask per validation pass; `labelled_mc10`/`labelled_mc100`: by the run's K-sample MC prediction "
        "(the paper's test-time predictor). Each MC rule draws its masks from its own generator, so the training "
        "draws are the same under every rule. Per-mask NLL − logged: median over the rows that recorded it "
        "(n/a: none did; the deterministic rules recorded it from their second trial on). The last column pairs each "
        f"rule with `{BASELINE}` training by training (the interval resamples whole runs; in brackets after it, the "
        f"share of trainings where the two rules stop at different epochs).",
        "",
    ]
    return lines
