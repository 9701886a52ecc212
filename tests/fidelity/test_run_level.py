"""Run-level comparison with the official logs (batchbald.fidelity.run_level): repeats, marks, Δacc, the
permutation test, on hand-built runs and logs."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batchbald.analysis import results as R
from batchbald.data import PAPER_INITIAL_MNIST_INDICES as INITIAL
from batchbald.fidelity import run_level as RL

_spec = importlib.util.spec_from_file_location(
    "_fake_runs_rl", Path(__file__).parents[1] / "analysis" / "test_results.py"
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

LOG_GROUP = "rmnist_w_noise_multibald_bald_k10_b10"  # the logs of rmnist_batchbald


def test_wasted_labels_counts_other_copies_and_in_batch_repeats():
    # 2 is a copy of 60_002's image; 120_002 a third copy; 7 and 60_007 another pair: 3 repeats among 6
    order = [2, 5, 60_002, 7, 120_002, 60_007, 9]
    assert RL.wasted_labels(order, cap=6) == 3
    assert RL.wasted_labels(order, cap=7) == 3
    assert RL.wasted_labels(order, cap=8) is None  # fewer labels than the cap: not counted
    assert RL.wasted_labels(list(range(10)), cap=10) == 0


def _brute_p(ours, logged):
    pooled = [*ours, *logged]
    u = lambda a, b: sum((x > y) + 0.5 * (x == y) for x in a for y in b)  # noqa: E731
    obs = u(ours, logged)
    hits = total = 0
    for c in itertools.permutations(range(len(pooled))):  # every ordering: the same share as every split
        a = [pooled[i] for i in c[: len(ours)]]
        b = [pooled[i] for i in c[len(ours) :]]
        hits += u(a, b) >= obs
        total += 1
    return hits / total


@pytest.mark.parametrize(
    "ours, logged",
    [([2], [1]), ([3, 4], [1, 2]), ([math.inf], [1, math.inf]), ([140, 150], [120, 130, 140]), ([1, 2], [3, 4])],
)
def test_later_p_value_against_every_ordering(ours, logged):
    assert RL.later_p_value(ours, logged) == pytest.approx(_brute_p(ours, logged))


def test_later_p_value_known_values_and_empty_sides():
    assert RL.later_p_value([3, 4], [1, 2]) == pytest.approx(1 / 6)  # the one split with both high values
    assert RL.later_p_value([1, 2], [3, 4]) == 1.0
    assert math.isnan(RL.later_p_value([], [1, 2]))
    assert math.isnan(RL.later_p_value([1], []))
    assert math.isnan(RL.later_p_value([1] * 10, [2] * 30, max_splits=1000))  # too many splits: not computed


def _write_log(root: Path, runs: dict[int, tuple[list[float], list[list[int]]]]) -> None:
    """One official-format log: per seed, accuracies per round and the batch chosen after each round."""
    out = []
    for seed, (accuracies, batches) in runs.items():
        its = [
            {"num_epochs": 4, "test_metrics": {"accuracy": a, "nll": 1.0}, "chosen_samples": batch}
            for a, batch in zip(accuracies, batches)
        ]
        out.append({"run": f"run_{seed}", "args": {"seed": seed}, "initial_samples": list(INITIAL), "iterations": its})
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{LOG_GROUP}.json").write_text(json.dumps({"group": LOG_GROUP, "runs": out}))


def _fresh(start: int, n: int = 10) -> list[int]:
    return list(range(start, start + n))


def test_run_level_end_to_end_on_built_runs_and_logs(tmp_path):
    sizes = list(range(20, 181, 10))  # 17 rounds: 20 .. 180 labels
    ours_acc = [0.5 + 0.025 * i + 1e-9 for i in range(17)]  # first >= 0.9 at size 20 + 16*10 = 180 -> mark 170
    log_acc = [0.5 + 0.04 * i + 1e-9 for i in range(17)]  # first >= 0.9 at round 10 (0.90), size 120 -> mark 110
    # ours: batch 0 repeats initial image INITIAL[0] (another copy) and itself in-batch; the rest fresh
    ours_batches = [[INITIAL[0] + 60_000, 100_000, 160_000, *_fresh(1_000, 7)]]
    ours_batches += [_fresh(42_000 + 10 * i) for i in range(16)]
    log_batches = [[INITIAL[1] + 120_000, *_fresh(3_000, 9)]] + [_fresh(44_000 + 10 * i) for i in range(16)]
    logs = tmp_path / "logs"
    _write_log(logs, {211889: (log_acc, log_batches), 5: ([0.95] * 17, [_fresh(5_000 + 10 * i) for i in range(17)])})
    runs = tmp_path / "runs"
    for seed in (211889, 1):  # seed 1 has no logged run: left out
        run_dir = fake.write_run(
            runs, profile="paper", experiment="rmnist_batchbald", seed=seed, sizes=sizes, accuracies=ours_acc
        )
        rounds = pd.read_csv(run_dir / "rounds.csv")
        rounds["acquired_indices"] = [json.dumps(b) for b in ours_batches]
        rounds.to_csv(run_dir / "rounds.csv", index=False)
    # 100_000 and 160_000 are copies of image 40_000: one repeat in the batch, plus the copy of INITIAL[0]
    frame = RL.run_level(R.load_runs(runs), logs_root=logs)
    assert frame["seed"].tolist() == [211889]
    row = frame.iloc[0]
    assert (row.mark90, row.mark90_logged) == (170.0, 110.0)
    expected = np.mean([ours_acc[i] - log_acc[i] for i in range(17) if 60 <= sizes[i] <= 160])
    assert row.mean_delta == pytest.approx(expected)
    assert (row.wasted, row.wasted_logged) == (2, 1)
    lines = RL.markdown(frame, logs_root=logs)
    assert "170 / 110" in lines[2] and "(2 / 1)" in lines[2]
    assert "0.333 (10, 110)" in lines[2]  # ours 170 vs logged {10, 110}: 1 of the 3 splits puts 170 on our side
    section = RL.report_section(R.load_runs(runs), logs_root=logs)
    assert section[0].startswith("### Run level") and any("`rmnist_batchbald`" in line for line in section)


def test_run_level_without_logs_or_paper_runs_is_empty(tmp_path):
    runs = tmp_path / "runs"
    fake.write_run(
        runs, profile="quick", experiment="rmnist_batchbald", seed=211889, sizes=[20, 30], accuracies=[0.5, 0.6]
    )
    assert RL.report_section(R.load_runs(runs), logs_root=tmp_path / "nologs") == []
    assert RL.run_level(R.load_runs(runs), logs_root=tmp_path / "nologs").empty
