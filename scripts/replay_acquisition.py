"""Acquisition replay of the paper's official runs: from a logged labelled set, our batch against the logged batch.

    python scripts/replay_acquisition.py --group rmnist_w_noise_multibald_bald_k10_b10 --rounds 4-12 --trials 2
    python scripts/replay_acquisition.py --group rmnist_w_noise_multibald_bald_k10_b10 --seeds 211889 --rounds 4-6
    python scripts/replay_acquisition.py --report       # summary.md, summary.csv, delta.png from the rows there

Rows go to results/fidelity/acquisition/<group>.csv, one per (run, round, side: logged or one of --variants);
re-running skips the (run, round) steps already there, so a killed replay resumes. BatchBALD groups (multibald) are
replayed with our BatchBALD under each --variants (joint_mi.CONFIGURATIONS), BALD groups with BALD. The
scoring model stops early as the paper profile does for that group (main groups: the labelled set scored with the
K-sample MC prediction; ablation groups: the held-out set). One thread, one process (no --jobs: pool scoring of a
full Repeated MNIST pool uses the memory of one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from batchbald.acquisition.joint_mi import CONFIGURATIONS  # noqa: E402
from batchbald.fidelity import acquisition_summary as acquisition_fidelity  # noqa: E402
from batchbald.fidelity.acquisition_replay import replay_acquisition_round  # noqa: E402
from batchbald.fidelity.replay import (  # noqa: E402
    ReplayError,
    load_log,
    load_replay_dataset,
    official_logs_dir,
    replay_setting,
)
from batchbald.fidelity.summary import GROUP_INFO  # noqa: E402
from batchbald.tracking import cpu_model, git_commit  # noqa: E402
from batchbald.train import SAMPLERS  # noqa: E402
from scripts.replay import append_row, rule_argument  # noqa: E402

DEFAULT_GROUPS = ("rmnist_w_noise_multibald_bald_k10_b10", "rmnist_w_noise_independent_bald_k10_b10")


def load_group(logs: Path, name: str):
    group = load_log(logs / f"{name}.json")
    setting = replay_setting(group)
    return group, setting, group.runs[0].args


def acquisition_of(args: dict) -> str:
    method, kind = str(args.get("acquisition_method", "")), str(args.get("type", ""))
    if method.endswith("multibald") and kind.endswith("bald"):
        return "batchbald"
    if method.endswith("independent") and kind.endswith(".bald"):
        return "bald"
    raise ReplayError(f"acquisition replay covers BatchBALD and BALD groups, not {method} {kind}")


def rounds_of(text: str) -> range:
    first, _, last = text.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise argparse.ArgumentTypeError(f"--rounds takes N or N-M (round indices), got {text!r}")
    return range(int(first), int(last or first) + 1)


def output_csv(
    out: Path, group: str, scoring_rule: str | None, other_models: int = 0, scoring_sampler: str = "iid"
) -> Path:
    """<out>/<group>.csv for the default replay; variants in subfolders: scoring_<rule>/ (how the scoring model
    stops), sampler_<sampler>/ (how it visits the labelled set), models<n>/ (n models of ours per step)."""
    parts = (
        ([f"scoring_{scoring_rule}"] if scoring_rule else [])
        + ([f"sampler_{scoring_sampler}"] if scoring_sampler != "iid" else [])
        + ([f"models{1 + other_models}"] if other_models else [])
    )
    return (out / "_".join(parts) if parts else out) / f"{group}.csv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group", nargs="+", default=list(DEFAULT_GROUPS))
    p.add_argument("--rounds", type=rounds_of, default=rounds_of("4-12"), help="logged round indices, N-M")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="only the logged runs of these seeds")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(CONFIGURATIONS), choices=CONFIGURATIONS)
    p.add_argument("--num-samples", type=int, default=None, help="BatchBALD's M (default: the paper's)")
    p.add_argument(
        "--other-models",
        type=int,
        default=0,
        help="more models of ours per step (other seeds), each acquiring a side <variant>_model<j>: our own spread",
    )
    p.add_argument(
        "--scoring-rule",
        type=rule_argument,
        default=None,
        help="early stopping of the model that scores the pool (heldout, labelled, labelled_mc<k>); default: the "
        "group's paper-profile rule, which the trial models always use. Rows go to <out>/scoring_<rule>/ then",
    )
    p.add_argument(
        "--scoring-sampler",
        choices=SAMPLERS,
        default="iid",
        help="how the scoring model's epochs visit the labelled set: iid (ours, default) or balanced (the released "
        "code's randperm %% n); rows go to <out>/sampler_<sampler>/ then",
    )
    p.add_argument("--logs", type=Path, default=official_logs_dir(), help="folder of the official JSON logs")
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("BATCHBALD_DATA", REPO / "data")))
    p.add_argument("--out", type=Path, default=REPO / "results" / "fidelity" / "acquisition")
    p.add_argument("--report", action="store_true", help="only write summary.md, summary.csv and delta.png")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        try:
            for path in acquisition_fidelity.write_report(args.out):
                print(f"wrote {path}")
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    import torch

    torch.set_num_threads(1)
    provenance = {"hardware": f"{cpu_model()}, 1 thread", "git_commit": git_commit(REPO)}
    try:
        plans = []
        for name in args.group:
            group, setting, logged_args = load_group(args.logs, name)
            acquisition = acquisition_of(logged_args)
            K = int(logged_args["num_inference_samples"])
            rule = f"labelled_mc{K}" if GROUP_INFO.get(group.group, ("", "main"))[1] == "main" else "heldout"
            plans.append((group, setting, acquisition, K, rule))
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for group, setting, acquisition, K, rule in plans:
        csv = output_csv(args.out, group.group, args.scoring_rule, args.other_models, args.scoring_sampler)
        done = set()
        if csv.exists():
            prev = pd.read_csv(csv)
            done = set(zip(prev["run"], prev["round"]))
        runs = [r for r in group.runs if args.seeds is None or r.seed in args.seeds]
        for run in runs:
            todo = [r for r in args.rounds if r + 1 < len(run.rounds) and (run.name, r) not in done]
            if not todo:
                continue
            dataset = load_replay_dataset(setting, args.data_root, run.seed)
            for r in todo:
                t0 = time.perf_counter()
                variants = tuple(args.variants) if acquisition == "batchbald" else ("bald",)
                rows = replay_acquisition_round(
                    dataset,
                    setting,
                    run,
                    r,
                    rule=rule,
                    scoring_rule=args.scoring_rule,
                    scoring_sampler=args.scoring_sampler,
                    acquisition=acquisition,
                    mc_samples=K,
                    num_samples=args.num_samples,
                    variants=variants,
                    other_models=args.other_models,
                    trials=args.trials,
                )
                for row in rows:  # rows of older code may lack a column: append_row then fills it in empty
                    append_row(csv, {**row, "group": group.group, **provenance})
                summary = ", ".join(f"{row['side']} {row['accuracy']:.4f} (MI {row['joint_mi']:.3f})" for row in rows)
                print(
                    f"{run.name} round {r} (L={rows[0]['labelled_size']}): {summary}, {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
