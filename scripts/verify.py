#!/usr/bin/env python
"""Rerun the first rounds of a committed run and check that they come out identical (`make verify`).

    python scripts/verify.py                                              # results/runs/quick/rmnist_batchbald/seed1
    python scripts/verify.py --run results/runs/quick/emnist_bald/seed2 --rounds 2

The rerun uses the run's experiment, seed and profile (its run.json) with the budget cut to --rounds rounds, on the
CPU with the recorded thread count; its resolved config must equal the recorded one (else it says which keys
differ and stops). Compared exactly: labelled size, test accuracy and NLL, epochs of every rerun round, and the
acquired indices, labels and scores of every round but the rerun's last. Exit 0: identical; 1: a difference
(printed); 2: the run cannot be rerun here.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN = REPO / "results" / "runs" / "quick" / "rmnist_batchbald" / "seed1"
SAME_EVERY_ROUND = ["labelled_size", "test_accuracy", "test_nll", "epochs"]
SAME_BUT_LAST = ["acquired_indices", "acquired_labels", "acquisition_scores"]
NOT_COMPARED = ("budget", "dataset.root", "device", "threads", "progress", "wandb", "profile_notes")


def _flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _compared(cfg: dict) -> dict:
    return {k: v for k, v in _flat(cfg).items() if not k.startswith(NOT_COMPARED) and k != "dataset.description"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="a committed run directory")
    parser.add_argument("--rounds", type=int, default=3, help="rounds to rerun (default 3)")
    parser.add_argument("--data-root", type=Path, default=REPO / "data")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the run's, else 1)")
    args = parser.parse_args(argv)

    try:
        meta = json.loads((args.run / "run.json").read_text())
        committed = pd.read_csv(args.run / "rounds.csv")
    except (OSError, ValueError) as e:
        print(f"error: {args.run} is not a readable run ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    cfg = meta["config"]
    b = int(cfg["acquisition"]["batch_size"])
    rounds = max(1, min(args.rounds, len(committed)))
    recorded = (meta.get("numerics") or {}).get("threads")
    match = re.search(r"(\d+) torch threads", str(meta.get("hardware", "")))
    threads = args.threads or recorded or (int(match.group(1)) if match else 1)
    overrides = [
        f"experiment={meta['experiment']}",
        f"seed={meta['seed']}",
        f"profile={cfg['profile']['name']}",
        f"budget={(rounds - 1) * b or b}",
    ]
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        defaults = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    old, new = _compared(cfg), _compared(defaults)
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    added = [k for k in differ if k not in old]  # keys the code gained after the run was made
    differ = [k for k in differ if k in old]
    if differ:
        print(
            f"error: the run's config is not its experiment's defaults; differing keys: {', '.join(differ)}",
            file=sys.stderr,
        )
        return 2
    if added:
        print("keys added since the run (rerun values): " + ", ".join(f"{k}={new[k]!r}" for k in added))
    print(
        f"rerunning {rounds} round(s) of {args.run} (seed {meta['seed']}, {threads} thread(s), commit "
        f"{meta.get('git_commit', '?')} on {meta.get('hardware', '?')})",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rerun"
        cmd = [sys.executable, str(REPO / "experiments" / "run.py"), *overrides]
        cmd += [f"dataset.root={args.data_root.resolve()}", "device=cpu", f"threads={threads}", "progress=false"]
        cmd += ["wandb.mode=disabled", f"hydra.run.dir={out}"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"error: the rerun failed: {last}", file=sys.stderr)
            return 2
        rerun = pd.read_csv(out / "rounds.csv")

    problems = []
    for r in range(min(rounds, len(rerun))):
        columns = SAME_EVERY_ROUND + (SAME_BUT_LAST if r < rounds - 1 else [])
        diff = [c for c in columns if str(rerun.loc[r, c]) != str(committed.loc[r, c])]
        print(f"round {r}: " + ("identical" if not diff else "DIFFERENT in " + ", ".join(diff)))
        problems += [(r, c, committed.loc[r, c], rerun.loc[r, c]) for c in diff]
    for r, c, a, b_ in problems[:6]:
        print(f"  round {r} {c}: committed {str(a)[:80]} vs rerun {str(b_)[:80]}")
    if problems:
        print("not identical: see README 'Numerics: what identical means' (CPU kernels, threads, torch version)")
        return 1
    print(f"identical: {rounds} round(s) reproduce the committed run exactly")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
