"""Stopping-score variants in the replay: the labelled-set rule scored by the deterministic net vs by MC dropout.

Replay rows under ``<root>/<rule>/<group>.csv`` for rules with an MC suffix (``labelled_mc1``: one dropout mask per
validation pass; ``labelled_mc10``/``labelled_mc100``: the run's K-sample MC prediction, as the test sampler
predicts) are compared, per group, with the deterministic rules on exactly the (run, round, trial) trainings that
every rule of the group has: the training draws are the same under every rule (`train_model_rules`), so the
rules differ only in when they stop.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from batchbald.train import VALIDATION_SETS, parse_rule

MIN_EPOCHS = 4  # patience 3: best at epoch 1, then 3 epochs without improvement
TRAINING = ["group", "run", "round", "trial"]


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
    """Per (group, rule), for groups with an MC rule, over the trainings every rule of the group has: median and mean
    Δacc (ours − logged), mean epochs and share at the minimum (ours and logged), median per-mask NLL − logged."""
    rows = []
    for group, g in df.groupby("group", sort=False):
        rules = list(dict.fromkeys(g["validation_set"]))
        if not any(parse_rule(r)[1] for r in rules):
            continue
        common = g[g.groupby(TRAINING)["validation_set"].transform("nunique") == len(rules)]
        for rule in rules:
            r = common[common["validation_set"] == rule]
            diff = r["accuracy"] - r["logged_accuracy"]
            pm = r["nll_per_mask"] - r["logged_nll"] if "nll_per_mask" in r else pd.Series(dtype=float)
            rows.append(
                {
                    "group": group,
                    "rule": rule,
                    "trainings": len(r),
                    "runs": r["run"].nunique(),
                    "median_diff": diff.median(),
                    "mean_diff": diff.mean(),
                    "epochs_ours": r["epochs"].mean(),
                    "epochs_logged": r["logged_epochs"].mean(),
                    "at4_ours": (r["epochs"] == MIN_EPOCHS).mean(),
                    "at4_logged": (r["logged_epochs"] == MIN_EPOCHS).mean(),
                    "nll_per_mask_median_diff": pm.median(),
                }
            )
    return pd.DataFrame(rows)


def variants_section(df: pd.DataFrame, names: dict[str, tuple]) -> list[str]:
    """Markdown: the paired comparison of stopping rules per group ([] when no MC rule was replayed)."""
    table = paired(df)
    if table.empty:
        return []
    lines = [
        "### Stopping-score variants (paired: the same trainings under every rule)",
        "",
        "| logs | early stopping on | trainings (runs) | median Δacc | mean Δacc | epochs ours / logged | "
        "at 4 epochs ours / logged | per-mask NLL − logged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = list(names)
    table = table.sort_values(
        "group", kind="stable", key=lambda g: g.map(lambda x: order.index(x) if x in order else len(order))
    )
    for r in table.itertuples():  # (a stable sort: each group's rules keep their folder order)
        name = names.get(r.group, (r.group,))[0]
        nll = "n/a" if pd.isna(r.nll_per_mask_median_diff) else f"{r.nll_per_mask_median_diff:+.2f}"
        lines.append(
            f"| {name} | {r.rule} | {r.trainings} ({r.runs}) | {r.median_diff:+.3f} | {r.mean_diff:+.3f} | "
            f"{r.epochs_ours:.2f} / {r.epochs_logged:.2f} | {r.at4_ours:.0%} / {r.at4_logged:.0%} | "
            f"{nll} |"
        )
    lines += [
        "",
        "`labelled`: the labelled set scored by the deterministic net (dropout off); `labelled_mc1`: by one fresh "
        "MC-dropout mask per validation pass; `labelled_mc10`/`labelled_mc100`: by the run's K-sample MC prediction "
        "(the paper's test-time predictor). Each MC rule draws its masks from its own generator, so the training "
        "draws are the same under every rule. Per-mask NLL − logged: median over the rows that recorded it "
        "(n/a: none did; the deterministic rules recorded it from their second trial on).",
        "",
    ]
    return lines
