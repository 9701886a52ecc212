"""Replay the paper's official runs with our training: per logged round, retrain on the logged labelled set.

    python scripts/replay.py --group rmnist_w_noise_independent_bald_k10_b10 --rounds 10 --trials 2
    python scripts/replay.py --group mnist_w_noise_independent_bald_k10_b10 --validation-set labelled --jobs 2
    python scripts/replay.py --group rmnist_w_noise_multibald_bald_k10_b10 --ours rmnist_batchbald --trials 2
                                               # the same training on our own paper-profile runs' labelled sets
    python scripts/replay.py --report          # tables, figure and summary from what results/fidelity holds

Rows go to results/fidelity/<validation_set>/<group>.csv (one per run, round and trial, with the logged accuracy,
NLL and epochs beside ours); re-running skips the rows already there, so a killed replay resumes. The logs are
read from --logs (default: $BATCHBALD_OFFICIAL_LOGS, else ../shared/paper/official_logs beside the repository);
they are the JSON export of BlackHC/BatchBALD's laaos_results/paper/ (see that folder's README).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from batchbald.fidelity import summary as fidelity  # noqa: E402
from batchbald.fidelity.replay import ReplayError, load_log, official_logs_dir, replay_setting  # noqa: E402
from batchbald.tracking import cpu_model, git_commit  # noqa: E402
from batchbald.train import VALIDATION_SETS, parse_rule  # noqa: E402

DEFAULT_GROUPS = (  # the committed set: the main runs behind Figs 2/10/11 and Table 1, and the 0-reps ablation
    "rmnist_w_noise_independent_bald_k10_b10",
    "rmnist_w_noise_multibald_bald_k10_b10",
    "mnist_independent_bald_k100_b10",
    "mnist_multibald_bald_k100_b10",
    "mnist_w_noise_independent_bald_k10_b10",
)


def _worker(job: dict) -> dict:
    """One (run, round, trial) in a fresh process: one thread, its own copy of the dataset (cached per process)."""
    import torch

    from batchbald.fidelity import replay

    torch.set_num_threads(1)
    cache = _worker.__dict__.setdefault("cache", {})
    key = (job["log"], job.get("ours_name"), job["noise_seed"])
    if key not in cache:
        if len(cache) >= 4:  # a few datasets per process (one per run: its noise), oldest out
            cache.pop(next(iter(cache)))
        group = _load_group(job)
        setting = replay.replay_setting(group)
        cache[key] = (group, setting, replay.load_replay_dataset(setting, job["data_root"], job["noise_seed"]))
    group, setting, dataset = cache[key]
    run = group.runs[job["run_index"]]
    logged = run.rounds[job["round"]]
    seed = replay.trial_seed(run.seed, logged.index, job["trial"])
    validation = replay.validation_indices(len(dataset.train), setting.validation_size, run.ever_labelled, seed)
    results = replay.replay_round(
        dataset, setting, logged.labelled, tuple(job["rules"]), validation=validation, seed=seed
    )
    return [
        {
            "group": group.group,
            "run": run.name,
            "seed": run.seed,
            "round": logged.index,
            "labelled_size": len(logged.labelled),
            "trial": job["trial"],
            "validation_set": rule,
            "logged_accuracy": logged.accuracy,
            "logged_nll": logged.nll,
            "logged_epochs": logged.epochs,
            "accuracy": r.accuracy,
            "nll": r.nll,
            "nll_per_mask": r.nll_per_mask,
            "accuracy_log_mean": r.accuracy_log_mean,
            "epochs": r.epochs,
            "train_seconds": round(r.train_seconds, 2),
            "eval_seconds": round(r.eval_seconds, 2),
            "hardware": job["hardware"],
            "git_commit": job["git_commit"],
        }
        for rule, r in results.items()
    ]


def _load_group(job: dict, logged=None):
    """The logged group of a job (`logged` when already read), or our own runs of an experiment (--ours) under that
    group's settings."""
    from batchbald.data import PAPER_INITIAL_MNIST_INDICES
    from batchbald.fidelity import replay

    logged = logged or replay.load_log(job["log"])
    if not job.get("ours_name"):
        return logged
    return replay.load_our_runs(job["ours_dirs"], logged, PAPER_INITIAL_MNIST_INDICES, job["ours_name"])


def output_csv(out: Path, rule: str, group: str) -> Path:
    return out / rule / f"{group}.csv"


def plan(args) -> list[dict]:
    """One job per (run, round, trial) with a row missing for any of the requested validation sets."""
    jobs = []
    provenance = {"hardware": f"{cpu_model()}, 1 thread", "git_commit": git_commit(REPO)}
    for name in args.group:
        log = args.logs / f"{name}.json"
        group = load_log(log)
        if args.ours:
            provenance["ours_name"], provenance["ours_dirs"] = f"ours_{args.ours}", _our_run_dirs(args)
            group = _load_group({"log": str(log), **provenance}, logged=group)
        replay_setting(group)  # fails early, with its reason, for groups we cannot replay (EMNIST)
        done = {}
        for rule in args.validation_set:
            path = output_csv(args.out, rule, group.group)
            prev = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["run", "round", "trial"])
            done[rule] = set(zip(prev["run"], prev["round"], prev["trial"]))
        runs = group.runs if args.seeds is None else [r for r in group.runs if r.seed in args.seeds]
        for rnd_index in range(args.rounds):
            for run in runs:
                if rnd_index >= len(run.rounds):
                    continue
                rnd = run.rounds[rnd_index]
                for trial in range(args.trials):
                    missing = [r for r in args.validation_set if (run.name, rnd.index, trial) not in done[r]]
                    if missing:
                        jobs.append(
                            {
                                "log": str(log),
                                "run_index": group.runs.index(run),
                                "round": rnd.index,
                                "trial": trial,
                                "rules": missing,
                                "data_root": str(args.data_root),
                                "noise_seed": run.seed,
                                "group_index": args.group.index(name),
                                **provenance,
                            }
                        )
    # round by round across the groups too, so that a replay stopped early covers every group and run
    return sorted(jobs, key=lambda j: (j["round"], j["group_index"]))


def _our_run_dirs(args) -> list[str]:
    dirs = sorted(str(p.parent) for p in (args.runs_root / args.ours).glob("seed*/rounds.csv"))
    if args.seeds is not None:
        dirs = [d for d in dirs if int(Path(d).name.removeprefix("seed")) in args.seeds]
    if not dirs:
        raise ReplayError(f"no runs of {args.ours} under {args.runs_root} (seeds: {args.seeds or 'all'})")
    return dirs


def append_row(path: Path, row: dict) -> None:
    """Append one row; a row with columns the file lacks (older replays) rewrites it with those columns empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame([row])
    if path.exists():
        columns = pd.read_csv(path, nrows=0).columns  # the header only; the rows are read when it must grow
        if set(new.columns) - set(columns):
            pd.concat([pd.read_csv(path), new], ignore_index=True).to_csv(path, index=False)
            return
        new = new.reindex(columns=columns)
    new.to_csv(path, mode="a", header=not path.exists(), index=False)


def rule_argument(name: str) -> str:
    try:
        parse_rule(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", nargs="+", default=list(DEFAULT_GROUPS), help="official log groups (file stems)")
    parser.add_argument("--logs", type=Path, default=official_logs_dir(), help="folder of the official JSON logs")
    parser.add_argument("--rounds", type=int, default=10, help="first N logged rounds of every run (default 10)")
    parser.add_argument("--trials", type=int, default=2, help="training trials per round (default 2)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="only these runs (logged seeds)")
    parser.add_argument(
        "--validation-set",
        nargs="+",
        default=list(VALIDATION_SETS),
        type=rule_argument,
        metavar="RULE",
        help="stopping rules: heldout (the held-out validation set; released code), labelled (the labelled set), "
        "either with _mc<k> (scored by the k-sample MC-dropout prediction instead of the deterministic net, "
        "e.g. labelled_mc10); several share one training run per trial (default: heldout labelled)",
    )
    parser.add_argument(
        "--ours",
        metavar="EXPERIMENT",
        help="retrain on our own runs' labelled sets instead of the logged ones (runs under --runs-root/EXPERIMENT, "
        "settings of the one --group the experiment reproduces; rows to --out, default results/fidelity/own_states)",
    )
    parser.add_argument("--runs-root", type=Path, default=REPO / "results" / "runs" / "paper")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (one thread each)")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("BATCHBALD_DATA", REPO / "data")))
    parser.add_argument("--out", type=Path, default=None, help="default results/fidelity (--ours: its own_states/)")
    parser.add_argument("--report", action="store_true", help="only write tables, figure and summary.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ours and len(args.group) != 1:
        print(
            "error: --ours needs exactly one --group: the official group whose settings the runs follow",
            file=sys.stderr,
        )
        return 2
    if args.out is None:
        args.out = REPO / "results" / "fidelity" / ("own_states" if args.ours else "")
    if args.report:
        try:
            written = fidelity.write_report(args.out)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        return 0
    try:
        jobs = plan(args)
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(jobs)} trainings to do (validation sets: {', '.join(args.validation_set)})", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_worker, job) for job in jobs]
        for i, future in enumerate(as_completed(futures), 1):
            for row in future.result():
                append_row(output_csv(args.out, row["validation_set"], row["group"]), row)
                print(
                    f"[{i}/{len(jobs)}] {row['run']} round {row['round']} trial {row['trial']} "
                    f"{row['validation_set']}: acc {row['accuracy']:.4f} (logged {row['logged_accuracy']:.4f}), "
                    f"epochs {row['epochs']} (logged {row['logged_epochs']}), "
                    f"{row['train_seconds'] + row['eval_seconds']:.0f} s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
