"""Tests for batchbald.analysis.results: SPEC §5 marks, loading runs in the contract format, curves, acceptance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batchbald.analysis import checks, curves, paper_numbers
from batchbald.analysis import figure_groups as FG
from batchbald.analysis import results as R

INF = math.inf


# ------------------------------------------------------------------------------------------ fake run writer
# Also used by tests/test_plots.py (loaded by path).


def write_run(
    root: Path,
    *,
    profile: str,
    experiment: str,
    seed: int,
    sizes,
    accuracies,
    batch_size: int = 10,
    dataset: str = "repeated_mnist",
    acquisition: str = "bald",
    num_classes: int = 10,
    labels=None,
    status: str = "finished",
    elapsed: float = 60.0,
    notes: str | None = None,
    description: str | None = None,
    with_json: bool = True,
) -> Path:
    """One run directory in the contract format: rounds.csv (JSON list columns) and run.json.

    ``labels``: per round, the labels of the batch acquired after that round (default: cycling classes).
    """
    run_dir = Path(root) / profile / experiment / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(num_classes, dtype=int)
    rows, next_index = [], 0
    for i, (size, acc) in enumerate(zip(sizes, accuracies)):
        batch = (
            [int(v) for v in labels[i]]
            if labels is not None
            else [(next_index + j) % num_classes for j in range(batch_size)]
        )
        indices = list(range(next_index, next_index + len(batch)))
        next_index += len(batch)
        counts += np.bincount(np.asarray(batch, dtype=int), minlength=num_classes)
        p = counts[counts > 0] / counts.sum() if counts.sum() else np.zeros(0)
        rows.append(
            {
                "round": i,
                "labelled_size": size,
                "test_accuracy": acc,
                "test_nll": 1 - acc,
                "epochs": 5,
                "acquired_indices": json.dumps(indices),
                "acquired_labels": json.dumps(batch),
                "acquisition_scores": json.dumps([0.5] * len(batch)),
                "label_entropy": float(-(p * np.log(p)).sum()) if len(p) else 0.0,
                "class_counts": json.dumps(counts.tolist()),
                "train_seconds": 1.0,
                "score_seconds": 0.5,
                "select_seconds": 0.1,
                "eval_seconds": 0.2,
            }
        )
    pd.DataFrame(rows, columns=list(R.ROUND_COLUMNS)).to_csv(run_dir / "rounds.csv", index=False)
    if with_json:
        config = {
            "experiment": experiment,
            "profile": profile,
            "seed": seed,
            "budget": 300,
            "mc_samples": 10,
            "dataset": {
                "name": dataset,
                "repetitions": 3,
                "split": "balanced",
                "description": description
                or {
                    "repeated_mnist": "Repeated MNIST (3 copies)",
                    "emnist": "EMNIST stand-in (split 'standin')",
                    "mnist": "MNIST",
                }[dataset],
            },
            "acquisition": {"name": acquisition, "batch_size": batch_size, "num_samples": 1000},
        }
        if notes:
            config["profile_notes"] = notes
        meta = {
            "config": config,
            "seed": seed,
            "git_commit": "abc",
            "torch_version": "2",
            "device": "cpu",
            "hardware": "Fake CPU",
            "start_time": "2026-01-01T00:00:00",
            "end_time": "2026-01-01T00:01:00",
            "status": status,
            "experiment": experiment,
            "group": f"{profile}-{experiment}",
            "elapsed_seconds": elapsed,
        }
        (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir


def curve(sizes, tau: float, top: float = 0.97, base: float = 0.6, start: float = 20):
    return [round(top - (top - base) * math.exp(-(s - start) / tau), 4) for s in sizes]


RMNIST_TAU = {
    "rmnist_rep0_bald": 60,
    "rmnist_rep1_bald": 80,
    "rmnist_rep2_bald": 120,
    "rmnist_rep4_bald": 150,
    "rmnist_rep4_batchbald": 40,
    "rmnist_batchbald": 45,
    "rmnist_var_ratios": 55,
    "rmnist_mean_std": 90,
    "rmnist_random": 80,
}
MNIST_TAU = {"mnist_batchbald_b10": 30, "mnist_bald_b10": 50, "mnist_bald_b1": 30}


def make_profile(
    root: Path,
    profile: str = "quick",
    *,
    batchbald_better: bool = True,
    skip=(),
    seeds=(1, 2, 3),
    notes: str | None = "quick: 2 seeds, pool subset",
) -> Path:
    """A whole profile of crafted runs; BatchBALD wins everywhere (or loses everywhere)."""
    taus = dict(RMNIST_TAU)
    if not batchbald_better:  # BatchBALD slower than BALD; BALD not monotone in repetitions
        taus.update(rmnist_batchbald=200, rmnist_rep4_batchbald=200, rmnist_rep2_bald=50, rmnist_rep4_bald=40)
    for experiment, tau in taus.items():
        if experiment in skip:
            continue
        b = 5 if experiment == "rmnist_random" else 10
        acq = experiment.split("_", 1)[1].replace("rep0_", "").replace("rep1_", "").replace("rep2_", "")
        for seed in seeds:
            sizes = list(range(20, 301, b))
            write_run(
                root,
                profile=profile,
                experiment=experiment,
                seed=seed,
                sizes=sizes,
                batch_size=b,
                accuracies=curve(sizes, tau * (1 + 0.05 * seed)),
                acquisition=acq,
                notes=notes,
            )
    emnist = {"emnist_batchbald": (80, "spread"), "emnist_bald": (120, "narrow"), "emnist_random": (100, "random")}
    if not batchbald_better:
        emnist = {"emnist_batchbald": (140, "narrow"), "emnist_bald": (80, "spread"), "emnist_random": (100, "random")}
    for experiment, (tau, kind) in emnist.items():
        if experiment in skip:
            continue
        for seed in seeds:
            sizes = list(range(0, 100, 5))
            rng = np.random.default_rng(seed)
            if kind == "spread":
                labels = [[(5 * i + j) % 47 for j in range(5)] for i in range(len(sizes))]
            elif kind == "narrow":
                labels = [list(rng.integers(0, 8, 5)) for _ in sizes]
            else:
                labels = [list(rng.integers(0, 47, 5)) for _ in sizes]
            write_run(
                root,
                profile=profile,
                experiment=experiment,
                seed=seed,
                sizes=sizes,
                batch_size=5,
                dataset="emnist",
                num_classes=47,
                labels=labels,
                acquisition=experiment.split("_")[1],
                accuracies=curve(sizes, tau, top=0.6, base=0.02, start=0),
                notes=notes,
            )
    mnist = dict(MNIST_TAU) if batchbald_better else {**MNIST_TAU, "mnist_batchbald_b10": 70}
    for experiment, tau in mnist.items():
        if experiment in skip:
            continue
        b = 1 if experiment.endswith("_b1") else 10
        for seed in seeds:
            sizes = list(range(20, 171, b))
            write_run(
                root,
                profile=profile,
                experiment=experiment,
                seed=seed,
                sizes=sizes,
                batch_size=b,
                dataset="mnist",
                accuracies=curve(sizes, tau * (1 + 0.05 * seed)),
                acquisition=experiment.split("_")[1],
                notes=notes,
            )
    return root


# ------------------------------------------------------------------------------------------ SPEC §5 marks


def test_trial_mark_is_size_minus_b():
    sizes = [20, 30, 40, 50, 60]
    accs = [0.6, 0.8, 0.89, 0.91, 0.95]
    assert curves.trial_mark(sizes, accs, 0.90, 10) == 40  # first eval >= 0.9 at 50 -> 50 - 10
    assert curves.trial_mark(sizes, accs, 0.95, 10) == 50  # equality counts
    assert curves.trial_mark(sizes, accs, 0.80, 10) == 20
    assert curves.trial_mark(sizes, accs, 0.96, 10) == INF
    assert curves.trial_mark(sizes, accs, 0.50, 10) == 10  # already at the first evaluation: 20 - b
    # EMNIST: 0-based sizes, b=5
    assert curves.trial_mark([0, 5, 10, 15], [0.02, 0.1, 0.3, 0.4], 0.3, 5) == 5
    # order of the input does not matter
    assert curves.trial_mark(sizes[::-1], accs[::-1], 0.90, 10) == 40


def test_expand_per_point_assigns_each_evaluation_back_to_the_previous_one():
    points, values = curves.expand_per_point([20, 30, 40], [0.5, 0.7, 0.9], 10)
    assert points.tolist() == list(range(11, 41))
    assert values.tolist() == [0.5] * 10 + [0.7] * 10 + [0.9] * 10
    with pytest.raises(ValueError):
        curves.expand_per_point([20, 20], [0.5, 0.6], 10)


def _trial_reaching(mark: float, b: int = 10, threshold: float = 0.9):
    """A trial whose first evaluation >= threshold is at mark + b (never, if mark is inf)."""
    sizes = list(range(20, 301, b))
    return sizes, [threshold + 0.01 if s >= mark + b else threshold - 0.05 for s in sizes]


def test_points_to_threshold_nearest_percentile_and_inf():
    marks = [250, 290, 260, INF, 280, INF]
    result = curves.points_to_threshold([_trial_reaching(m) for m in marks], 0.9, 10)
    # sorted: 250 260 280 290 inf inf; nearest: index 1.25 -> 1, 2.5 -> 2, 3.75 -> 4
    assert (result.q25, result.median, result.q75) == (260, 280, INF)  # App. D, BALD 2 reps, 90%
    assert result.n_trials == 6
    assert result.marks == tuple(float(m) for m in marks)
    assert result.median != 285  # linear interpolation would give 285


def test_points_to_threshold_reproduces_table1_batchbald_row():
    # Table 1, BatchBALD b=10 K=100: 90% at 70/90/110, 95% at 190/200/230.
    trials = []
    for m90, m95 in [(70, 190), (60, 180), (90, 200), (100, 230), (110, 240), (130, 210)]:
        sizes = list(range(20, 301, 10))
        accs = [0.80 if s < m90 + 10 else (0.92 if s < m95 + 10 else 0.955) for s in sizes]
        trials.append((sizes, accs))
    r90 = curves.points_to_threshold(trials, 0.90, 10)
    r95 = curves.points_to_threshold(trials, 0.95, 10)
    assert (r90.q25, r90.median, r90.q75) == paper_numbers.PAPER_MARKS["mnist_batchbald_b10"][0.90]
    assert (r95.q25, r95.median, r95.q75) == paper_numbers.PAPER_MARKS["mnist_batchbald_b10"][0.95]


def test_points_to_threshold_all_never_and_empty():
    result = curves.points_to_threshold([_trial_reaching(INF)] * 3, 0.9, 10)
    assert (result.q25, result.median, result.q75) == (INF, INF, INF)
    empty = curves.points_to_threshold([], 0.9, 10)
    assert empty.n_trials == 0 and math.isnan(empty.median)
    with pytest.raises(ValueError):
        curves.points_to_threshold([([20], [0.5])], 0.9)  # no batch size


def test_paper_reference_data_is_consistent():
    for group in FG.GROUPS:
        if group.run in ("beyond", "baselines"):  # experiments beyond the paper have no paper numbers
            continue
        for experiment, _ in group.members:
            assert experiment in paper_numbers.PAPER_ROWS
            for t in group.thresholds:
                assert t in paper_numbers.PAPER_MARKS[experiment], (experiment, t)
    assert paper_numbers.PAPER_MARKS["rmnist_rep4_bald"][0.90] == (240, 300, INF)
    assert paper_numbers.PAPER_ACCURACY["emnist_batchbald"].final[1] == 0.517


# ------------------------------------------------------------------------------------------ loading


def test_load_runs_reads_contract_format(tmp_path):
    write_run(
        tmp_path,
        profile="quick",
        experiment="rmnist_batchbald",
        seed=7,
        sizes=[20, 30, 40],
        accuracies=[0.6, 0.7, 0.8],
        acquisition="batchbald",
        notes="pool 10k",
    )
    write_run(
        tmp_path,
        profile="quick",
        experiment="rmnist_batchbald",
        seed=3,
        sizes=[20, 30],
        accuracies=[0.6, 0.75],
        status="running",
    )
    write_run(
        tmp_path,
        profile="paper",
        experiment="emnist_bald",
        seed=1,
        sizes=[0, 5],
        accuracies=[0.02, 0.1],
        dataset="emnist",
        num_classes=47,
        batch_size=5,
    )
    write_run(
        tmp_path, profile="quick", experiment="rmnist_random", seed=1, sizes=[20], accuracies=[0.6], with_json=False
    )
    (tmp_path / "quick" / "empty" / "seed1").mkdir(parents=True)  # no rounds.csv: skipped
    df = R.load_runs(tmp_path)
    assert len(df) == 3 + 2 + 2 + 1
    for col in R.ROUND_COLUMNS + R.META_COLUMNS:
        assert col in df.columns, col
    run = df[df["seed"] == 7].sort_values("round")
    assert run["acquired_labels"].iloc[0] == list(range(10))
    assert isinstance(run["class_counts"].iloc[-1], list)
    first = run.iloc[0]
    assert (first["experiment"], first["profile"], first["dataset"], first["acquisition"]) == (
        "rmnist_batchbald",
        "quick",
        "repeated_mnist",
        "batchbald",
    )
    assert (first["batch_size"], first["mc_samples"], first["hardware"], first["device"]) == (10, 10, "Fake CPU", "cpu")
    assert first["elapsed_seconds"] == 60.0 and first["profile_notes"] == "pool 10k"
    assert first["dataset_description"] == "Repeated MNIST (3 copies)"
    assert set(df.loc[df["seed"] == 3, "status"]) == {"running"}
    emnist = df[df["dataset"] == "emnist"]
    assert emnist["num_classes"].iloc[0] == 47 and emnist["labelled_size"].tolist() == [0, 5]
    bare = df[df["experiment"] == "rmnist_random"].iloc[0]  # no run.json: names from the path
    assert (bare["status"], bare["profile"], bare["seed"]) == ("unknown", "quick", 1)
    assert bare["elapsed_seconds"] == pytest.approx(1.8)  # sum of the round timings


def test_load_runs_empty_root(tmp_path):
    df = R.load_runs(tmp_path / "nothing")
    assert df.empty and "test_accuracy" in df.columns


def test_points_to_threshold_from_frame_and_unfinished_runs(tmp_path):
    for seed, m in enumerate([100, 120, 140]):
        sizes, accs = _trial_reaching(m)
        write_run(tmp_path, profile="quick", experiment="x", seed=seed, sizes=sizes, accuracies=accs)
    sizes, accs = _trial_reaching(INF)
    write_run(tmp_path, profile="quick", experiment="x", seed=9, sizes=sizes[:5], accuracies=accs[:5], status="running")
    df = R.load_runs(tmp_path)
    marks, left_out = curves.experiment_marks(df, "x", 0.9)
    assert (marks.q25, marks.median, marks.q75, marks.n_trials, left_out) == (100, 120, 140, 3, 1)
    # counting the running run as never reached would change the result
    assert curves.points_to_threshold(df, 0.9).n_trials == 4


def test_write_tables(tmp_path):
    make_profile(tmp_path / "runs", skip=("rmnist_mean_std",), seeds=(1, 2))
    df = R.load_runs(tmp_path / "runs")
    paths = R.write_tables(df, tmp_path / "results")
    names = {p.name for p in paths}
    assert {
        "fig10_rmnist_repetitions.csv",
        "fig11_rmnist_others.csv",
        "emnist.csv",
        "runs.csv",
        "curves.csv",
        "thresholds.csv",
        "accuracy.csv",
    } <= names
    assert all(p.parent == tmp_path / "results" / "quick" / "tables" for p in paths)
    back = pd.read_csv(tmp_path / "results" / "quick" / "tables" / "emnist.csv")
    first = back[(back["experiment"] == "emnist_batchbald") & (back["round"] == 0)]
    assert json.loads(first["acquired_labels"].iloc[0]) == [0, 1, 2, 3, 4]
    thresholds = pd.read_csv(tmp_path / "results" / "quick" / "tables" / "thresholds.csv")
    assert set(thresholds.loc[thresholds["experiment"] == "rmnist_rep0_bald", "threshold"]) == {0.85, 0.9, 0.95}


# ------------------------------------------------------------------------------------------ curves


def _frame(trials, status=None):
    rows = []
    for i, (sizes, accs) in enumerate(trials):
        for s, a in zip(sizes, accs):
            rows.append(
                {
                    "experiment": "e",
                    "profile": "p",
                    "run_dir": f"r{i}",
                    "labelled_size": s,
                    "test_accuracy": a,
                    "status": (status or {}).get(i, "finished"),
                }
            )
    return pd.DataFrame(rows)


def test_accuracy_curves_pads_early_stopped_runs():
    df = _frame(
        [
            ([20, 30, 40, 50], [0.5, 0.6, 0.7, 0.8]),
            ([20, 30], [0.7, 0.96]),  # stopped early at the target accuracy
            ([20, 30, 40, 50], [0.4, 0.5, 0.6, 0.9]),
        ]
    )
    c = curves.accuracy_curves(df, "e")
    assert c["labelled_size"].tolist() == [20, 30, 40, 50]
    assert c["median"].tolist() == pytest.approx([0.5, 0.6, 0.7, 0.9])  # padded 0.96 counts at 40 and 50
    assert c["n_trials"].tolist() == [3, 3, 3, 3]
    assert c["n_observed"].tolist() == [3, 3, 2, 2]
    assert c.loc[3, "q75"] == pytest.approx(np.percentile([0.8, 0.96, 0.9], 75))


def test_accuracy_curves_does_not_pad_running_runs():
    df = _frame([([20, 30, 40], [0.5, 0.6, 0.7]), ([20], [0.9])], status={1: "running"})
    c = curves.accuracy_curves(df, "e")
    assert c["n_trials"].tolist() == [2, 1, 1]
    assert c["median"].tolist() == pytest.approx([0.7, 0.6, 0.7])


def test_accuracy_curves_needs_one_profile():
    df = pd.concat([_frame([([20], [0.5])]), _frame([([20], [0.7])]).assign(profile="q", run_dir="x")])
    with pytest.raises(ValueError):
        curves.accuracy_curves(df, "e")
    assert curves.accuracy_curves(df, "e", profile="q")["median"].tolist() == [0.7]


def test_label_entropy_steps_natural_log():
    run = pd.DataFrame(
        {
            "round": [0, 1, 2],
            "acquired_labels": [[0, 1], [2, 3], []],
            "acquired_indices": [[1, 2], [3, 4], []],
            "label_entropy": [9.0, 9.0, 9.0],
        }
    )
    steps, ent = curves.run_label_steps(run, 4)
    assert steps.tolist() == [1, 2]
    assert ent.tolist() == pytest.approx([math.log(2), math.log(4)])
    assert curves.run_label_counts(run, 5).tolist() == [1, 1, 1, 1, 0]


# ------------------------------------------------------------------------------------------ acceptance


def _verdicts(df):
    return {c.key: c.passed for c in checks.acceptance_checks(df)}


def test_acceptance_when_batchbald_is_better(tmp_path):
    df = R.load_runs(make_profile(tmp_path, seeds=(1, 2, 3, 4, 5, 6)))
    assert _verdicts(df) == {"a": True, "b": True, "c": True, "d": True}
    found = {c.key: c for c in checks.acceptance_checks(df)}
    assert found["a"].verdict == "holds" and "per-seed differences (BatchBALD − BALD) 1: " in found["a"].detail
    assert "95% bootstrap interval" in found["c"].detail


def test_acceptance_with_three_seeds_is_not_a_verdict(tmp_path):
    """Three seeds in the paper's direction: same direction, but never 'holds' (too few pairs to tell)."""
    found = {c.key: c for c in checks.acceptance_checks(R.load_runs(make_profile(tmp_path)))}
    assert all(c.passed is None for c in found.values())
    assert found["a"].verdict == "not shown at this scale (n=3 < 5 seeds)"


def test_paired_differences_and_bootstrap():
    first = {s: (float(v), False) for s, v in zip(range(1, 7), (10, 20, 30, 40, 50, 60))}
    second = {s: (float(v), False) for s, v in zip(range(1, 8), (15, 26, 33, 47, 52, 69, 0))}  # seed 7 unpaired
    p = checks.paired(first, second)
    assert p.seeds == (1, 2, 3, 4, 5, 6) and p.diffs == (-5, -6, -3, -7, -2, -9)
    assert p.median == -5.5 and -9 <= p.low <= p.median <= p.high <= -2
    # the interval is the 2.5/97.5 percentiles of resampled medians: reproduce it by brute force
    rng = np.random.default_rng(0)
    diffs = np.array(p.diffs)
    medians = np.median(diffs[rng.integers(0, 6, size=(checks.BOOTSTRAP_RESAMPLES, 6))], axis=1)
    assert (p.low, p.high) == tuple(np.percentile(medians, [2.5, 97.5]))
    assert checks.verdict(p, paper_sign=-1) == (True, "holds")
    assert checks.verdict(p, paper_sign=1) == (False, "reversed")
    mixed = checks.paired(first, {s: (v + (12 if s % 2 else -12), c) for s, (v, c) in first.items()})
    assert mixed.low < 0 < mixed.high
    assert checks.verdict(mixed, paper_sign=-1) == (None, "not shown at this scale (interval includes 0)")
    three = checks.paired({s: first[s] for s in (1, 2, 3)}, second)
    assert checks.verdict(three, paper_sign=-1) == (None, "not shown at this scale (n=3 < 5 seeds)")
    assert checks.verdict(checks.paired({}, second), paper_sign=1) == (None, "no paired seeds")


def test_acceptance_when_batchbald_is_worse(tmp_path):
    df = R.load_runs(make_profile(tmp_path, batchbald_better=False, seeds=(1, 2, 3, 4, 5, 6)))
    assert _verdicts(df) == {"a": False, "b": False, "c": False, "d": False}
    found = {c.key: c for c in checks.acceptance_checks(df)}
    assert found["a"].verdict == "reversed" and "0 of 6 seeds in the paper's direction" in found["a"].detail
    assert found["b"].verdict.startswith("reversed; the medians do not rise monotonically")


def test_acceptance_with_missing_runs(tmp_path):
    df = R.load_runs(
        make_profile(
            tmp_path,
            skip=(
                "rmnist_batchbald",
                "emnist_bald",
                "rmnist_rep1_bald",
                "rmnist_rep2_bald",
                "rmnist_rep4_bald",
                "mnist_bald_b10",
            ),
        )
    )
    found = {c.key: c for c in checks.acceptance_checks(df)}
    assert found["a"].passed is None and "rmnist_batchbald" in found["a"].detail
    assert found["b"].passed is None
    assert found["c"].passed is None and "emnist_bald" in found["c"].detail
    assert found["d"].passed is None and "mnist_bald_b10" in found["d"].detail


def test_threshold_and_accuracy_tables(tmp_path):
    df = R.load_runs(make_profile(tmp_path, seeds=(1,)))
    th = checks.threshold_table(df)
    row = th[(th["experiment"] == "rmnist_batchbald") & (th["threshold"] == 0.9)].iloc[0]
    sizes = list(range(20, 301, 10))
    expected = curves.trial_mark(sizes, curve(sizes, 45 * 1.05), 0.9, 10)
    assert row["median"] == expected and (row["paper_median"], row["n_trials"]) == (120, 1)
    assert "emnist_bald" not in set(th["experiment"])
    acc = checks.accuracy_table(df)
    final = acc[(acc["experiment"] == "emnist_bald") & (acc["at"] == "final")].iloc[0]
    assert (final["labelled_size"], final["paper_median"], final["paper_size"]) == (95, 0.453, 295)
    at200 = acc[(acc["experiment"] == "emnist_bald") & (acc["at"] == "200")].iloc[0]
    assert math.isnan(at200["median"])  # budget never got to 200
