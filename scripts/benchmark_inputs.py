"""Inputs, machine facts and the cost model of the BatchBALD selection benchmark (scripts/benchmark_acquisition.py):
the PEER_SPEED.md log-prob recipe, hardware and load, measured float64 throughput, and the work floor per case."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
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
from batchbald.tracking import cpu_model, git_commit  # noqa: E402

DEFAULT_CASES = [
    (1000, 20, 10, 10, 10000),
    (2000, 100, 10, 10, 40000),
    (2000, 10, 47, 5, 40000),
    (1000, 20, 10, 40, 10000),
]
FULL_CASES = [(10000, 20, 10, 10, 10000)]
OURS_ALONE_CASES = [(60000, 20, 10, 10, 40000), (176908, 10, 10, 10, 40000)]
GiB = 1 << 30


def make_log_probs(N, K, C, seed=0):
    """PEER_SPEED.md recipe: float64 [N, K, C] log-probabilities (shared preference, then per-sample noise)."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((N, 1, C)) * 2.0
    noise = rng.standard_normal((N, K, C)) * 1.0
    logits = shared + noise
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def hardware() -> dict:
    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "git_commit": git_commit(REPO),
    }
    try:
        mem = Path("/proc/meminfo").read_text().split()
        info["ram_gib"] = round(int(mem[mem.index("MemTotal:") + 1]) / (1 << 20), 1)
    except OSError:
        pass
    info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    for package in ("batchbald_redux", "toma", "baal"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def mem_available() -> int:
    try:
        fields = Path("/proc/meminfo").read_text().split()
        return int(fields[fields.index("MemAvailable:") + 1]) * 1024
    except (OSError, ValueError):
        return 8 * GiB


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ------------------------------------------------------------------------------------------------------------------
# machine throughput for the floor


def _best_time(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure_throughput(Ks) -> dict:
    """Multiply-adds per second of the GEMM shape the algorithm needs, [rows·C... ] probs[B·C, K] @ table[K, R] in
    float64 (best of a few block widths, per K), and float64 natural logarithms per second on a cache-resident
    buffer (torch.log, the thread count in use)."""
    rates = {}
    R = 10000
    table = torch.rand(max(Ks), R, dtype=torch.float64)
    for K in sorted(set(Ks)):
        best = 0.0
        rows = table[:K].contiguous()
        for width in (50, 200, 1000):
            a = torch.rand(width, K, dtype=torch.float64)
            out = torch.empty(width, R, dtype=torch.float64)
            seconds = _best_time(lambda: torch.matmul(a, rows, out=out))
            best = max(best, width * R * K / seconds)
        rates[f"mac_K{K}"] = best
    x = torch.rand(1 << 19, dtype=torch.float64) + 1e-3
    y = torch.empty_like(x)
    rates["log"] = x.numel() / _best_time(lambda: torch.log(x, out=y), repeats=20)
    return rates


def table_rows(C, M, i):
    return C**i if C**i <= M else M


def floor_seconds(case, rates) -> float:
    """Unavoidable work of a full evaluation: per step (N−i)·M_i·K·C multiply-adds and (N−i)·M_i·C logarithms."""
    N, K, C, b, M = case
    total = 0.0
    for i in range(b):
        pairs = (N - i) * table_rows(C, M, i) * C
        total += pairs * K / rates[f"mac_K{K}"] + pairs / rates["log"]
    return total


def exact_prefix(case) -> int:
    N, K, C, b, M = case
    return sum(1 for i in range(b) if C**i <= M)
