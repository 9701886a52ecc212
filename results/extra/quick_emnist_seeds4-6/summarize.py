"""Final accuracy and acquired-label entropy per seed: the committed quick EMNIST runs (seeds 1-3) and these (4-6).

Run from the repository root: python results/extra/quick_emnist_seeds4-6/summarize.py
"""
import glob, json, pandas as pd
rows = []
for f in sorted(glob.glob("results/runs/quick/emnist_b*/seed*/rounds.csv")
                + glob.glob("results/extra/quick_emnist_seeds4-6/*/seed*/rounds.csv")):
    d = pd.read_csv(f)
    m = json.load(open(f.replace("rounds.csv", "run.json")))
    rows.append(dict(experiment=m["experiment"], seed=m["seed"], accuracy=round(d.test_accuracy.iloc[-1], 4),
                     label_entropy=round(d.label_entropy.iloc[-1], 3), commit=m["git_commit"][:7] + ("+dirty" if "dirty" in m["git_commit"] else "")))
t = pd.DataFrame(rows).sort_values(["seed", "experiment"])
print(t.to_string(index=False))
print()
print("medians over seeds 1-6 (pandas median):")
print(t.groupby("experiment")[["accuracy", "label_entropy"]].median().to_string())
