"""Final accuracy and acquired-label entropy per seed: the committed quick EMNIST runs (seeds 1-3) and these (4-6).

Run from the repository root: python results/extra/quick_emnist_seeds4-6/summarize.py
"""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from batchbald.results import load_runs  # noqa: E402

df = pd.concat([load_runs("results/runs/quick"), load_runs("results/extra/quick_emnist_seeds4-6")])
df = df[df["experiment"].isin(["emnist_bald", "emnist_batchbald"])]
last = df.sort_values("round").groupby(["experiment", "seed"]).tail(1)
t = pd.DataFrame(
    {
        "experiment": last["experiment"],
        "seed": last["seed"],
        "accuracy": last["test_accuracy"].round(4),
        "label_entropy": last["label_entropy"].round(3),
        "commit": last["git_commit"].str.replace(r"^(\w{7})\w*", r"\1", regex=True),
    }  # short hash (+dirty)
).sort_values(["seed", "experiment"])
print(t.to_string(index=False))
print()
print("medians over seeds 1-6 (pandas median):")
print(t.groupby("experiment")[["accuracy", "label_entropy"]].median().to_string())
