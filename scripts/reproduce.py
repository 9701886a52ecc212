"""Run every group that figures 10-15 need (Hydra multirun), then redraw figures, tables and REPORT.md.

    python scripts/reproduce.py --profile quick --jobs 2            # figures 10-15 (53 min on a 2-core CPU)
    python scripts/reproduce.py --profile quick --jobs 2 --table1   # + the MNIST Table 1 groups (~50 min more)
    python scripts/reproduce.py --profile paper                     # everything, Table 1 included
    python scripts/reproduce.py                                      # auto: paper on a GPU box, else quick

On a CUDA box the local launcher packs --runs-per-gpu runs on every GPU (each run's GPU memory is bounded: scoring
1 GiB, BatchBALD 1 GiB, plus its data), jobs spread over the GPUs by job number.

Runs land in results/runs/<profile>/<experiment>/seed<seed>/. Finished runs are skipped and interrupted ones resume
from their checkpoint, so re-running after a crash only does what is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]

# Slowest first, so parallel workers finish together.
FIGURE_GROUPS = [
    "emnist_batchbald",
    "emnist_bald",
    "emnist_random",  # figs 13, 14, 15
    "rmnist_rep4_batchbald",
    "rmnist_batchbald",  # figs 10, 11
    "rmnist_rep4_bald",
    "rmnist_rep2_bald",
    "rmnist_rep1_bald",
    "rmnist_rep0_bald",  # fig 10
    "rmnist_var_ratios",
    "rmnist_mean_std",
    "rmnist_random",  # fig 11
]
TABLE1_GROUPS = ["mnist_bald_b1", "mnist_batchbald_b10", "mnist_bald_b10"]  # b=1: 10x the rounds, so first


def torch_gpus() -> int:
    """Usable CUDA GPUs (0 when torch or the driver cannot use any)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch, broken driver: no GPU
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--profile",
        default="auto",
        choices=["auto", "paper", "quick"],
        help="auto (default): paper when a CUDA GPU is usable, else quick",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="parallel local jobs (default: --runs-per-gpu x GPUs on CUDA, else 2)"
    )
    parser.add_argument("--runs-per-gpu", type=int, default=8, help="runs packed on one GPU (default 8)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job (default: cores / jobs)")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--experiments", nargs="*", default=None, help="subset of groups (default: figures 10-15)")
    parser.add_argument(
        "--table1",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the MNIST Table 1 groups (default: yes for the paper profile, no for quick)",
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="default: the profile's seeds")
    parser.add_argument("--launcher", default="local", help="hydra/launcher config (local, slurm, submitit_local)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs-root", default="results/runs", help="runs go to <runs-root>/<profile>/...")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra command and stop")
    parser.add_argument("extra", nargs="*", help="further Hydra overrides")
    args = parser.parse_args()

    gpus = torch_gpus()
    if args.profile == "auto":
        args.profile = "paper" if gpus else "quick"
        why = (
            f"{gpus} CUDA GPU(s) usable"
            if gpus
            else "no usable CUDA GPU: the paper profile takes days on a CPU (PROFILE=paper to insist)"
        )
        print(f"profile: {args.profile} ({why})", flush=True)
    if args.jobs is None:
        args.jobs = args.runs_per_gpu * gpus if gpus and args.device in ("auto", "cuda") else 2
    profile = OmegaConf.load(REPO / "configs" / "profile" / f"{args.profile}.yaml")
    seeds = args.seeds or list(profile.seeds)
    table1 = args.profile == "paper" if args.table1 is None else args.table1
    groups = args.experiments or (TABLE1_GROUPS if table1 else []) + FIGURE_GROUPS
    threads = args.threads or max(1, (len(__import__("os").sched_getaffinity(0)) // max(args.jobs, 1)))
    sweep_dir = (REPO / args.runs_root).resolve() / args.profile
    cmd = [
        sys.executable,
        str(REPO / "experiments" / "run.py"),
        "-m",
        f"experiment={','.join(groups)}",
        f"seed={','.join(map(str, seeds))}",
        f"profile={args.profile}",
        f"dataset.root={Path(args.data_root).resolve()}",
        f"device={args.device}",
        f"threads={threads}",
        "progress=false",
        f"hydra/launcher={args.launcher}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${experiment_name}/seed${seed}",
        *args.extra,
    ]
    if args.launcher == "local":
        cmd.append(f"hydra.launcher.n_jobs={args.jobs}")
    print(" ".join(cmd), flush=True)
    if args.dry_run:
        return
    code = subprocess.call(cmd, cwd=REPO)
    if code != 0:
        print(f"some runs failed (exit {code}); re-run the same command to resume what is missing", file=sys.stderr)
    if not args.no_figures:
        # results/runs relative to the repository, as `make figures` passes it: the tables record run_dir as given
        subprocess.check_call(
            [
                sys.executable,
                str(REPO / "scripts" / "make_figures.py"),
                "--runs",
                args.runs_root,
                "--data-root",
                args.data_root,
            ],
            cwd=REPO,
        )
    sys.exit(code)


if __name__ == "__main__":
    main()
