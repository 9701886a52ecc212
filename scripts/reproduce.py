"""Run every group that figures 10-15 need (Hydra multirun), then redraw figures, tables and REPORT.md.

    python scripts/reproduce.py --profile quick --jobs 2            # figures 10-15 (about 1 h 50 min, 2-core CPU)
    python scripts/reproduce.py --profile quick --seeds 1 2 3       # the same on 3 seeds (53 min; no verdicts)
    python scripts/reproduce.py --profile quick --jobs 2 --table1   # + the MNIST Table 1 groups (~50 min more)
    python scripts/reproduce.py --profile quick --baselines --experiments rmnist_epig ...   # baselines (README)
    python scripts/reproduce.py --profile paper                     # everything, Table 1 included
    python scripts/reproduce.py                                      # auto: paper on a GPU box, else quick

On a CUDA box the local launcher packs --runs-per-gpu runs on every GPU (each run's GPU memory is bounded: scoring
1 GiB, BatchBALD 1 GiB, plus its data), jobs spread over the GPUs by job number.

Seeds: the profile's `seeds`, except the experiments listed in its `seeds_by_experiment` (the quick profile gives
the ones its paired verdicts compare 6 seeds); experiments that share a seed list run in one Hydra multirun.
Runs land in results/runs/<profile>/<experiment>/seed<seed>/. Finished runs are skipped and interrupted ones resume
from their checkpoint (or, on a fresh clone, from their committed rounds.csv), so re-running only does what is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from batchbald.analysis.figure_groups import experiments_to_run, load_groups  # noqa: E402


def torch_gpus() -> int:
    """Usable CUDA GPUs (0 when torch or the driver cannot use any)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch, broken driver: no GPU
        return 0


def seed_plan(experiments: list[str], profile, seeds: list[int] | None) -> list[tuple[list[int], list[str]]]:
    """(seeds, experiments) per Hydra multirun: experiments that share a seed list run together, most seeds first.
    `seeds` (the command line) overrides the profile's `seeds` and `seeds_by_experiment` for every experiment."""
    if seeds:
        return [(list(seeds), list(experiments))]
    by_experiment = profile.get("seeds_by_experiment") or {}
    unknown = sorted(set(by_experiment) - {p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml")})
    if unknown:
        sys.exit(
            f"error: configs/profile/{profile.name}.yaml seeds_by_experiment names no experiment: "
            f"{', '.join(unknown)} (experiments are configs/experiment/*.yaml)"
        )
    plan: dict[tuple[int, ...], list[str]] = {}
    for e in experiments:
        plan.setdefault(tuple(by_experiment.get(e, profile.seeds)), []).append(e)
    return sorted(((list(k), v) for k, v in plan.items()), key=lambda kv: -len(kv[0]))


def sweep(args, experiments: list[str], seeds: list[int], threads: int, sweep_dir: Path) -> int:
    """One Hydra multirun over experiments x seeds; its exit code (0 on --dry-run, which only prints it)."""
    cmd = [
        sys.executable,
        str(REPO / "experiments" / "run.py"),
        "-m",
        f"experiment={','.join(experiments)}",
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
    return 0 if args.dry_run else subprocess.call(cmd, cwd=REPO)


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
    parser.add_argument(
        "--beyond", action="store_true", help="also the beyond-the-paper groups of configs/figures.yaml (PowerBALD)"
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also the baseline groups (EPIG, BADGE, CoreSet, margin, least confidence; Fashion-MNIST)",
    )
    parser.add_argument(
        "--seeds", nargs="*", type=int, default=None, help="these seeds for every experiment (default: the profile's)"
    )
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
    table1 = args.profile == "paper" if args.table1 is None else args.table1
    sets = ("figures",) + (("table1",) if table1 else ()) + (("beyond",) if args.beyond else ())
    sets += ("baselines",) if args.baselines else ()
    groups = args.experiments or experiments_to_run(load_groups(), sets)  # configs/figures.yaml
    threads = args.threads or max(1, (len(__import__("os").sched_getaffinity(0)) // max(args.jobs, 1)))
    sweep_dir = (REPO / args.runs_root).resolve() / args.profile
    code = 0
    for seeds, experiments in seed_plan(groups, profile, args.seeds):
        code = max(code, sweep(args, experiments, seeds, threads, sweep_dir))
    if code != 0:
        print(f"some runs failed (exit {code}); re-run the same command to resume what is missing", file=sys.stderr)
    if args.dry_run:
        return
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
