"""Benchmark our BatchBALD selection against batchbald_redux 2.0.5 and baal 2.1.0, side by side in one process.

    python scripts/benchmark_acquisition.py            # 4 default cases (~10 min with redux on a 2-core CPU)
    python scripts/benchmark_acquisition.py --full     # + N=10^4 (with redux) and N=6·10^4, 176,908 (ours alone)

Writes results/benchmarks/acquisition.md (hardware, date, CPU load check, one row per case). Inputs: the generator
recipe of PEER_SPEED.md with seed 0. The peers are optional: a missing one is reported as "not installed".
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # redux draws tqdm bars
# Idle OpenMP threads sleep instead of spinning (read by libgomp when torch loads; ours and the peers alike). On a
# shared 2-core box a spinning thread steals the core its partner needs: with another busy process, default (spinning)
# 2-thread runs were 10x slower here for ours and redux alike. Set OMP_WAIT_POLICY=ACTIVE to measure the default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from batchbald.acquisition import batchbald_batch  # noqa: E402
from batchbald.tracking import LoadMeter  # noqa: E402
from scripts.benchmark_acquisition_report import fmt_timing, write_report  # noqa: E402
from scripts.benchmark_inputs import (  # noqa: E402
    DEFAULT_CASES,
    FULL_CASES,
    OURS_ALONE_CASES,  # noqa: E402
    GiB,
    floor_seconds,
    hardware,
    loadavg,
    make_log_probs,
    measure_throughput,
    mem_available,
)
from scripts.benchmark_output import output_path  # noqa: E402

# ------------------------------------------------------------------------------------------------------------------
# runners


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)
    indices: list[int] | None = None
    scores: list[float] | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def median(self):
        return statistics.median(self.seconds) if self.seconds else float("nan")


def timed(fn, timing: Timing, sync=None):
    gc.collect()
    with LoadMeter() as meter:
        t0 = time.perf_counter()
        result = fn()
        if sync:
            sync()
        seconds = time.perf_counter() - t0
    timing.seconds.append(seconds)
    timing.foreign.append(meter.foreign)
    return result


def run_ours(lp, case, repeats, prune=True, device="cpu", threads=None) -> Timing:
    """One warm-up, then `repeats` timed runs (the warm-up is kept as the only run when it took over 30 s)."""
    N, K, C, b, M = case
    timing = Timing()
    x = lp.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else None
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result = timed(lambda: batchbald_batch(x, b, num_samples=M, seed=0, prune=prune), timing, sync)
        if timing.seconds[0] < 30 and repeats > 0:
            timing.seconds.clear()
            timing.foreign.clear()
            for _ in range(repeats):
                result = timed(lambda: batchbald_batch(x, b, num_samples=M, seed=0, prune=prune), timing, sync)
    finally:
        torch.set_num_threads(default_threads)
    timing.indices, timing.scores = result.batch.indices, result.batch.scores
    timing.extra["steps"] = result.steps
    return timing


class AddressSpaceLimit:
    """Caps this process's address space so that an oversized allocation fails with "can't allocate memory"
    (which toma turns into a smaller chunk) instead of waking the OOM killer."""

    def __init__(self, extra_bytes):
        self.extra = extra_bytes

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        try:
            vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (vm + self.extra, self.old[1]))
        except (OSError, ValueError, IndexError):
            pass
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_AS, self.old)
        return False


def run_redux(lp, case, repeats, budget) -> Timing:
    N, K, C, b, M = case
    timing = Timing()
    try:
        from batchbald_redux.batchbald import get_batchbald_batch
    except ImportError:
        timing.note = "not installed"
        return timing
    for _ in range(max(1, repeats)):
        torch.manual_seed(0)
        with AddressSpaceLimit(budget):
            try:
                result = timed(lambda: get_batchbald_batch(lp, b, M, dtype=torch.double), timing)
            except (RuntimeError, MemoryError) as error:
                timing.note = f"failed: {str(error).splitlines()[0][:80]}"
                timing.seconds.clear()
                return timing
        timing.indices, timing.scores = list(result.indices), list(result.scores)
    timing.note = f"address space capped at +{budget / GiB:.0f} GiB (toma halves its 1024-candidate chunk on failure)"
    return timing


def run_baal(lp, case, repeats, budget) -> Timing:
    N, K, C, b, M = case
    timing = Timing()
    try:
        from baal.active.heuristics import BatchBALD
    except ImportError:
        timing.note = "not installed"
        return timing
    need = 3 * N * M * C * 8  # whole-pool [N, M, C] float64 product plus two temporaries
    if need > budget:
        timing.note = f"not run: needs ≈{need / GiB:.0f} GiB (whole-pool N·M·C array), budget {budget / GiB:.0f} GiB"
        return timing
    probs_N_C_K = np.ascontiguousarray(np.exp(lp.numpy()).transpose(0, 2, 1))
    heuristic = BatchBALD(num_samples=b - 1, num_draw=M // K)  # BALD pick + b−1 greedy steps = b points
    for _ in range(max(1, repeats)):
        np.random.seed(0)
        torch.manual_seed(0)
        ranks, scores = timed(lambda: heuristic.get_ranks(probs_N_C_K), timing)
    picked = [int(i) for i in ranks[:b] if scores[i] != 0]
    timing.indices = picked
    timing.note = f"num_draw={M // K} (M={M // K * K}); returns a re-ranked set"
    return timing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also the N=10^4 case and the two large ours-alone cases")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours after one warm-up (median)")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="timed runs of each peer (slow: default 1)")
    parser.add_argument("--no-redux", action="store_true")
    parser.add_argument("--no-baal", action="store_true")
    parser.add_argument(
        "--case",
        action="append",
        default=None,
        metavar="N,K,C,b,M",
        help="run only these cases (repeatable), e.g. --case 500,20,10,6,1000",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: a new results/benchmarks/acquisition-<date>.md (never a committed one)",
    )
    args = parser.parse_args(argv)
    try:
        args.out = output_path(args.out, "acquisition", REPO)
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)

    cases = DEFAULT_CASES + (FULL_CASES if args.full else [])
    ours_alone = OURS_ALONE_CASES if args.full else []
    if args.case:
        cases, ours_alone = [tuple(int(v) for v in c.split(",")) for c in args.case], []
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    info = hardware()
    print(f"hardware: {info}", flush=True)
    rates = measure_throughput([c[1] for c in cases + ours_alone])
    print("throughput: " + ", ".join(f"{k}={v / 1e9:.2f} G/s" for k, v in rates.items()), flush=True)
    baseline_budget = int(min(12 * GiB, max(2 * GiB, mem_available() - 3 * GiB)))
    baal_budget = int(min(8 * GiB, 0.5 * mem_available()))

    rows = []
    for case in cases + ours_alone:
        N, K, C, b, M = case
        alone = case in ours_alone
        print(f"\ncase N={N} K={K} C={C} b={b} M={M}", flush=True)
        lp = torch.from_numpy(make_log_probs(N, K, C))
        floor = floor_seconds(case, rates)
        ours = run_ours(lp, case, args.repeats)
        print(f"  ours {fmt_timing(ours)} picks {ours.indices}", flush=True)
        single = Timing(note="–")
        if torch.get_num_threads() > 1:
            single = run_ours(lp, case, args.repeats, threads=1)
            print(f"  ours, 1 thread {fmt_timing(single)}", flush=True)
        limit = 60 if args.full else 5
        full_eval = Timing(note=f"skipped (floor > {limit} s)")
        if floor <= limit:
            full_eval = run_ours(lp, case, 1 if floor > 2 else args.repeats, prune=False)
            print(f"  ours, full evaluation {fmt_timing(full_eval)}", flush=True)
        cuda = Timing(note="no CUDA device")
        if torch.cuda.is_available():
            cuda = run_ours(lp, case, args.repeats, device="cuda")
            print(f"  ours on CUDA {fmt_timing(cuda)}", flush=True)
        redux = Timing(note="ours alone (case too large for the peers here)" if alone else "disabled")
        if not alone and not args.no_redux:
            redux = run_redux(lp, case, args.baseline_repeats, baseline_budget)
            print(f"  redux {fmt_timing(redux)} picks {redux.indices} {redux.note}", flush=True)
        baal = Timing(note="ours alone" if alone else "disabled")
        if not alone and not args.no_baal:
            baal = run_baal(lp, case, args.baseline_repeats, baal_budget)
            print(f"  baal {fmt_timing(baal)} picks {baal.indices} {baal.note}", flush=True)
        rows.append((case, floor, ours, single, full_eval, cuda, redux, baal))
        del lp
        gc.collect()

    finished = dt.datetime.now(dt.timezone.utc)
    load_after = loadavg()
    write_report(args, info, rates, rows, started, finished, load_before, load_after, baseline_budget, baal_budget)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
