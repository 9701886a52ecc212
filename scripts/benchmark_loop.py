"""Time the model side of the active-learning loop and write results/benchmarks/loop.md.

    python scripts/benchmark_loop.py --scoring-only   # MC-dropout scoring, ours vs the plain K-pass (CPU: ~15 min)
    python scripts/benchmark_loop.py                  # + one paper-settings round per dataset (train/score/select/eval)

Scoring: `mc_log_probs` (fast exact path) against `forward_masked` (input replicated K times), same random inputs
already on the device, same weights and masks, K=10 and 100, both CNNs; fixed input sizes on CPU (0.2-0.6 s per call
of ours on a 2-core box), doubled on CUDA until one call of ours takes 0.25 s; rounds over all cases (on CPU 60, each
in a fresh process of its own, run one after another; 10 in one process on CUDA), each timing one back-to-back pair
per case, the pair's order alternating;
speedup = total reference seconds / total seconds of ours over all pairs, also the median of the paired ratios and the
best-time ratio (fastest reference call / fastest call of ours; `--raw` keeps every call's seconds); the reference runs
with 128 replicated rows a chunk on CPU, its fastest chunk size among a few on CUDA. Rounds:
`scripts/benchmark_round.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchbald.numerics import configure_cuda, pin_cpu_isa  # noqa: E402  (imports no torch)

# The kernels the loop runs: experiments/run.py pins them the same way (AVX2 unless BATCHBALD_CPU_ISA=native).
CPU_ISA = pin_cpu_isa()

import torch  # noqa: E402

from batchbald.models import (  # noqa: E402
    build_model,
    default_scoring_batch_size,
    draw_masks,
    forward_masked,
    mc_log_probs,
)
from batchbald.tracking import LoadMeter, cpu_model, git_commit  # noqa: E402
from batchbald.train import resolve_device  # noqa: E402
from scripts.benchmark_output import output_path  # noqa: E402
from scripts.benchmark_round import ROUNDS, bench_round, fmt_value, rounds_markdown, timed  # noqa: E402

SCORING_CASES = [
    ("mnist_cnn", 10, 10, 512),
    ("mnist_cnn", 10, 100, 128),
    ("emnist_cnn", 47, 10, 512),
    ("emnist_cnn", 47, 100, 64),
]  # model, classes, K, images (on CPU: about 0.2-0.6 s a call of ours, 1-2.5 s of the reference; CUDA: doubled)
# Reference chunk sizes tried, in replicated rows (images x K); the reference keeps its fastest. On CPU one fixed size,
# the pick in 34 of 44 choices among 128/512/2048 rows (11 runs): the choice, made on a few timed calls, flipped between
# runs and with it the reference's speed by up to 1.5x (results/benchmarks/scoring_stability/README.md).
REFERENCE_ROWS = {"cpu": (128,), "cuda": (2048, 8192, 32768)}
# On CUDA, scoring inputs are doubled from the case's size until one call of ours takes this long, up to MAX_IMAGES.
# On CPU the sizes stay fixed: throughput depends on the size, so sizes chosen by timing made two runs incomparable.
MIN_CALL_SECONDS = 0.25
MAX_IMAGES = 1 << 16
# Timed rounds (one pair per case each): short pairs spread over the whole run rather than each case in a window of
# its own. On CPU each round runs in a fresh process: the 2-core VM runs a whole process fast or slow (the host
# decides), so a benchmark's spread is that of the count of slow processes in it. 5 processes: runs differed by up to
# 40%, 30 processes by up to 16% (a bootstrap of those 60 put 30 processes at 10% agreement in ~70% of pairs, 60 in
# ~92%), and the first two runs of 60 agreed within 7.6%; see results/benchmarks/scoring_stability/README.md.
ROUNDS_BY_DEVICE = {"cpu": 60, "cuda": 10}
PROCESSES_BY_DEVICE = {"cpu": 60, "cuda": 1}


def hardware(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "logical cpus": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu kernels": f"{torch.backends.cpu.get_cpu_capability()} (BATCHBALD_CPU_ISA={CPU_ISA}, as the loop)",
        "device": str(device),
        "python": platform.python_version(),
        "code (git commit)": git_commit(REPO),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def measured(fn, *args) -> dict:
    """fn(*args) as a row, with the cores other processes kept busy meanwhile (``foreign``)."""
    with LoadMeter() as meter:
        row = fn(*args)
    return {**row, "foreign": meter.foreign}


def prepare_scoring(name, num_classes, k, n, device, calibrate: bool, check: bool = True) -> dict:
    """Ours and the reference as two calls on the same n random images already on the device (as the loop keeps
    the pool there), same weights and masks; the reference with its fastest chunk. check: compare the two outputs
    (max_abs_diff; else None and the reference is warmed up on its first and last chunk only, which saves a full
    reference call in each of the CPU benchmark's many processes)."""
    torch.manual_seed(0)
    model = build_model(name, num_classes).to(device).eval()
    masks = draw_masks(model, k, torch.Generator().manual_seed(0))

    def inputs(n):
        return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)

    x = inputs(n)
    mc_log_probs(model, x, masks)  # warm-up
    while calibrate and n < MAX_IMAGES and timed(lambda: mc_log_probs(model, x, masks), device) < MIN_CALL_SECONDS:
        n *= 2
        x = inputs(n)

    def ours():
        return mc_log_probs(model, x, masks)

    def reference(chunk):
        return torch.cat([forward_masked(model, x[i : i + chunk], masks) for i in range(0, n, chunk)])

    chunks = sorted({max(1, min(n, rows // k)) for rows in REFERENCE_ROWS[device.type]})
    if calibrate:
        ours()  # warm-up on the final size
    if len(chunks) == 1:
        chunk = chunks[0]
    else:
        trial = {c: statistics.median(timed(lambda c=c: reference(c), device) for _ in range(3)) for c in chunks}
        chunk = min(trial, key=trial.get)
    if not check:
        for start in {0, (n - 1) // chunk * chunk}:  # warm-up: every shape the reference's chunks take
            forward_masked(model, x[start : start + chunk], masks)
    return {
        "model": name,
        "K": k,
        "images": n,
        "ref_chunk": chunk,
        "ours_chunk": default_scoring_batch_size(model, k),
        "ours": ours,
        "reference": lambda: reference(chunk),
        "max_abs_diff": (ours() - reference(chunk)).abs().max().item() if check else None,
    }


def bench_scoring(cases: list[dict], rounds: int, device, first_round: int = 0) -> list[dict]:
    """Round-robin over the cases: each round times one (reference, ours) pair per case, the pair's order
    alternating between rounds, so every case samples the machine over the whole benchmark rather than in one
    window of its own (the guest's speed drifts over minutes, and our memory-bound calls feel it more than the
    reference's). first_round: the benchmark-wide number of this process's first round, so that the order keeps
    alternating across processes of one round each."""
    times = [{"ref": [], "ours": [], "ref_first": []} for _ in cases]
    for r in range(first_round, first_round + rounds):
        for case, t in zip(cases, times):
            ref_first = r % 2 == 0
            t["ref_first"].append(ref_first)
            order = ("reference", "ours") if ref_first else ("ours", "reference")
            for which in order:
                t["ref" if which == "reference" else "ours"].append(timed(case[which], device))
    return [scoring_row(case, t) for case, t in zip(cases, times)]


def scoring_row(case: dict, t: dict) -> dict:
    """One case's row from its paired call times t = {"ref": [s, ...], "ours": [s, ...]}."""
    ratios = sorted(r / o for r, o in zip(t["ref"], t["ours"]))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    ref_s, ours_s = statistics.median(t["ref"]), statistics.median(t["ours"])
    keep = ("model", "K", "images", "ref_chunk", "ours_chunk", "max_abs_diff", "foreign")
    return {
        **{key: case[key] for key in keep if key in case},
        "ref_s": ref_s,
        "ours_s": ours_s,
        # Pairs alternate their order and run back to back, so drift cancels in the totals too; a mix of the box's
        # fast and slow spells moves this ratio smoothly, where the median of the ratios jumps between the spells.
        "speedup": sum(t["ref"]) / sum(t["ours"]),
        "median_ratio": statistics.median(ratios),
        "speedup_iqr": (quartiles[0], quartiles[2]),
        "best_speedup": min(t["ref"]) / min(t["ours"]),  # timeit's rule: the fastest call is the least disturbed
        "times": t,
        "ours_tput": case["images"] * case["K"] / ours_s,
        "ref_tput": case["images"] * case["K"] / ref_s,
    }


def scoring_in_processes(args) -> list[dict]:
    """The scoring comparison in args.processes fresh processes one after another, args.rounds pairs per case split
    evenly among them, every statistic over the pooled pairs: a process can run one code slower from its first call
    to its last (run12 in results/benchmarks/scoring_stability/), and a benchmark in one process is at its mercy."""
    processes = args.processes
    rounds = args.rounds // processes
    runs = []
    with tempfile.TemporaryDirectory(prefix="bb-bench-") as tmp:
        for i in range(processes):
            raw = Path(tmp) / f"process{i}.json"
            cmd = [sys.executable, __file__, "--scoring-only", "--processes", "1", "--rounds", str(rounds)]
            cmd += ["--first-round", str(i * rounds)] + ([] if i == 0 else ["--no-check"])
            cmd += ["--device", args.device, "--out", str(Path(tmp) / f"process{i}.md"), "--raw", str(raw)]
            cmd += (["--threads", str(args.threads)] if args.threads else []) + (["--smoke"] if args.smoke else [])
            child = subprocess.run(cmd, capture_output=True, text=True)
            if child.returncode != 0:
                tail = (child.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise SystemExit(f"error: scoring process {i + 1}/{processes} failed: {tail}")
            runs.append(json.loads(raw.read_text())["scoring"])
            speedups = ", ".join(f"{r['model']} K={r['K']} {r['speedup']:.2f}x" for r in runs[-1])
            print(f"scoring process {i + 1}/{processes} ({rounds} rounds): {speedups}", flush=True)
    rows = []
    for per_process in zip(*runs):
        times = {key: [s for r in per_process for s in r["times"][key]] for key in ("ref", "ours", "ref_first")}
        row = scoring_row(per_process[0], times)
        row["process_speedups"] = [r["speedup"] for r in per_process]
        row["max_abs_diff"] = per_process[0]["max_abs_diff"]  # compared in the first process
        row["foreign"] = max(r["foreign"] for r in per_process)
        rows.append(row)
    return rows


def reference_rows_text(device: str) -> str:
    rows = REFERENCE_ROWS[device.split(":")[0]]
    if len(rows) == 1:
        return f"{rows[0]} replicated rows (fixed)"
    return f"the fastest among {', '.join(str(r) for r in rows)} replicated rows"


def processes_text(args) -> str:
    if args.processes == 1:
        return ""
    per = args.rounds // args.processes
    return (
        f"; the rounds ran in {args.processes} fresh processes one after another ({per} each; each process's own "
        "speedup listed, for more than 10 their median and range: a process can run one code slower throughout)"
    )


def fmt_processes(speedups: list[float]) -> str:
    """Each process's speedup, or for many processes their median and range (all of them are in --raw)."""
    if len(speedups) <= 10:
        return ", ".join(f"{x:.2f}" for x in speedups) or "-"
    return f"median {statistics.median(speedups):.2f}, {min(speedups):.2f}-{max(speedups):.2f} ({len(speedups)})"


def write_markdown(path: Path, info: dict, scoring: list[dict], rounds: list[dict] | None, args, loads) -> None:
    lines = [
        "# Loop benchmark (models side)",
        "",
        f"Date (UTC): {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M')}",
        f"Command: `python scripts/benchmark_loop.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}"]
    worst = max((r["foreign"] for r in scoring + (rounds or []) if not math.isnan(r["foreign"])), default=math.nan)
    lines += [
        f"- foreign load (cores kept busy by other processes, /proc/stat minus this process; worst case): {worst:.2f}"
    ]
    if worst > 0.3:
        lines += [
            "",
            "Note: other processes were using the CPU during this run (foreign load above). On this kind of "
            "2-core VM timings move several-fold with foreign load (shared/paper/PEER_SPEED.md); "
            "`--threads 1` is the least sensitive setting. Repeat on an idle machine for reference numbers.",
        ]
    if args.smoke:
        lines += ["", "**SMOKE RUN: tiny settings, the numbers mean nothing.**"]
    lines += [
        "",
        "## MC-dropout scoring: `mc_log_probs` vs `forward_masked`",
        "",
        "Same random inputs, weights and K consistent masks; "
        f"{args.rounds} rounds over all cases, each timing one back-to-back pair (reference call, our call; the "
        "order alternating) per case; times are medians over the rounds, the speedup is the ratio of the total "
        "times (all reference calls / all calls of ours), beside it the paired ratios' (reference / ours) median and "
        "interquartile range and the best-time ratio (fastest reference call / fastest call of ours)"
        f"{processes_text(args)}; the reference's "
        f"chunk: {reference_rows_text(info['device'])}; ours uses its "
        "default chunk. Throughput counts images x MC samples per second. Foreign load during the rounds: "
        f"{scoring[0]['foreign']:.2f}.",
        "",
        "| model | K | images | ref chunk | ours chunk | ref s | ours s | speedup | paired ratios: median (IQR) "
        "| best-time ratio | per process | ours samples/s | ref samples/s | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scoring:
        per_process = fmt_processes(r.get("process_speedups", []))
        lines.append(
            f"| {r['model']} | {r['K']} | {r['images']} | {r['ref_chunk']} | {r['ours_chunk']} | "
            f"{r['ref_s']:.3f} | {r['ours_s']:.3f} | **{r['speedup']:.2f}x** | "
            f"{r['median_ratio']:.2f} ({r['speedup_iqr'][0]:.2f}-{r['speedup_iqr'][1]:.2f}) | "
            f"{r['best_speedup']:.2f}x | {per_process} | {r['ours_tput']:,.0f} | {r['ref_tput']:,.0f} | "
            f"{fmt_value(r['max_abs_diff'], '.1e')} |"
        )
    if rounds is not None:
        lines += rounds_markdown(rounds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def default_data_root() -> Path:
    from batchbald.data import find_shared_data

    repo_data = REPO / "data"
    if (repo_data / "MNIST").is_dir():
        return repo_data
    return find_shared_data() or repo_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scoring-only", action="store_true", help="only the scoring comparison (CPU: about 15 min)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: a new results/benchmarks/loop-<date>.md (never a committed one)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed pairs per scoring case (default: 60 on CPU, 10 on CUDA)"
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: ./data, else the shared data)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings to check the script runs; use with --out")
    parser.add_argument("--raw", type=Path, default=None, help="also write every timed scoring call here (JSON)")
    parser.add_argument(
        "--processes", type=int, default=None, help="fresh processes the scoring pairs are split among (CPU: 60)"
    )
    parser.add_argument("--first-round", type=int, default=0, help=argparse.SUPPRESS)  # set for the processes
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)  # outputs compared in process 1
    args = parser.parse_args(argv)
    for name in ("rounds", "processes", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    try:
        args.out = output_path(args.out, "loop", REPO)
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        configure_cuda()  # as the loop: TF32 off, deterministic kernels
    info = hardware(device)
    load_start = load_average()
    print(f"hardware: {info}; load average {load_start}", flush=True)

    args.rounds = args.rounds or (1 if args.smoke else ROUNDS_BY_DEVICE[device.type])
    args.processes = args.processes or (1 if args.smoke else PROCESSES_BY_DEVICE[device.type])
    if args.processes > 1:
        args.rounds = math.ceil(args.rounds / args.processes) * args.processes
        scoring = scoring_in_processes(args)
    else:
        specs = [(m, c, k, 8) for m, c, k, _ in SCORING_CASES] if args.smoke else SCORING_CASES
        calibrate = device.type == "cuda" and not args.smoke  # fixed sizes on CPU (see MIN_CALL_SECONDS)
        check = not args.no_check
        cases = [prepare_scoring(name, classes, k, n, device, calibrate, check) for name, classes, k, n in specs]
        with LoadMeter() as meter:
            scoring = bench_scoring(cases, args.rounds, device, args.first_round)
        for r in scoring:
            r["foreign"] = meter.foreign
    for r in scoring:
        print(
            f"scoring model={r['model']} K={r['K']} speedup={r['speedup']:.2f} (paired ratios: median "
            f"{r['median_ratio']:.2f}, interquartile {r['speedup_iqr'][0]:.2f}-{r['speedup_iqr'][1]:.2f}; best-time "
            f"ratio {r['best_speedup']:.2f}; "
            f"ours {r['ours_tput']:,.0f} vs reference "
            f"{r['ref_tput']:,.0f} images*samples/s; max abs diff {fmt_value(r['max_abs_diff'], '.1e')})",
            flush=True,
        )

    rounds = None
    if not args.scoring_only:
        root = args.data or default_data_root()
        rounds = []
        for spec in ROUNDS:
            r = measured(bench_round, spec, root, device, args.smoke)
            rounds.append(r)
            if "train_s" in r:
                print(
                    f"round dataset={r['dataset']} K={r['K']} b={r['b']} train={fmt_value(r['train_s'])}s "
                    f"({r['epochs']} epochs) score={fmt_value(r['score_s'])}s select={fmt_value(r['select_s'])}s "
                    f"eval={fmt_value(r['eval_s'])}s test_acc={r['test_accuracy']:.3f} {r['note']}",
                    flush=True,
                )
            else:
                print(f"round dataset={r['dataset']} {r['note']}", flush=True)

    if args.raw:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        args.raw.write_text(
            json.dumps({"hardware": info, "processes": args.processes, "scoring": scoring}, indent=1) + "\n"
        )
    loads = (load_start, load_average())
    write_markdown(args.out, info, scoring, rounds, args, loads)
    print(f"load average at end {loads[1]}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
