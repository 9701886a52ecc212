"""How often would two scoring benchmarks agree within 10%? Re-sample the processes of two committed runs.

    python results/benchmarks/scoring_stability/bootstrap.py

Each benchmark is drawn as n processes picked at random (with replacement) from the pooled processes of a pair of
runs, every process with all its timed pairs; two such benchmarks "agree" when all four cases' speedups (ratio of
total times, or median of the paired ratios) lie within 10% of their mean. Assumes processes are independent: runs on
this VM also drift between each other, so real pairs agree less often than this says.
"""

import json
import random
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def process_blocks(names: list[str]) -> list[list[list[tuple[float, float]]]]:
    """Per case, the processes of the named runs, each a list of (reference s, ours s) pairs."""
    runs = [json.loads((HERE / f"{name}.json").read_text()) for name in names]
    cases = []
    for per_run in zip(*(run["scoring"] for run in runs)):
        blocks = []
        for run, row in zip(runs, per_run):
            pairs = list(zip(row["times"]["ref"], row["times"]["ours"]))
            per = len(pairs) // run["processes"]
            blocks += [pairs[i : i + per] for i in range(0, len(pairs), per)]
        cases.append(blocks)
    return cases


def speedup(blocks, statistic: str) -> float:
    pairs = [pair for block in blocks for pair in block]
    if statistic == "ratio of totals":
        return sum(r for r, _ in pairs) / sum(o for _, o in pairs)
    return statistics.median(r / o for r, o in pairs)


def agreement(cases, n: int, statistic: str, trials: int = 4000, seed: int = 0) -> tuple[float, float]:
    """(share of benchmark pairs agreeing within 10% in all cases, median worst gap)."""
    rng = random.Random(seed)
    worst = []
    for _ in range(trials):
        gaps = []
        for blocks in cases:
            a, b = (speedup(rng.choices(blocks, k=n), statistic) for _ in range(2))
            gaps.append(abs(a - b) / ((a + b) / 2))
        worst.append(max(gaps))
    return sum(w < 0.10 for w in worst) / trials, statistics.median(worst)


if __name__ == "__main__":
    designs = [
        ("run15+run16 (5 processes x 6 pairs)", ["run15", "run16"], [5]),
        ("run18+run19 (30 processes x 1 pair)", ["run18", "run19"], [30, 60, 90]),
    ]
    for title, names, sizes in designs:
        cases = process_blocks(names)
        for statistic in ("ratio of totals", "median of paired ratios"):
            for n in sizes:
                share, gap = agreement(cases, n, statistic)
                print(
                    f"{title}: {n} processes, {statistic}: agree within 10% in {share:.0%}, median worst gap {gap:.0%}"
                )
