"""Replaying the official logs: log parsing, settings, one replayed round on small data, summaries, the script."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from batchbald.data import PAPER_INITIAL_MNIST_INDICES, find_shared_data
from batchbald.fidelity import replay
from batchbald.fidelity import summary as fidelity
from batchbald.fidelity.variants import run_bootstrap_ci
from tests.fakedata import tensor_dataset

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def args(dataset="DatasetEnum.mnist_w_noise", **kw):
    base = {
        "seed": 7,
        "dataset": dataset,
        "num_inference_samples": 10,
        "batch_size": 64,
        "epoch_samples": 128,
        "epochs": 6,
        "early_stopping_patience": 3,
        "validation_set_size": 12,
    }
    base.update(kw)
    return base


def write_log(path: Path, group="mnist_w_noise_independent_bald_k10_b10", runs=None) -> Path:
    runs = runs or [
        {
            "run": f"{group}_7",
            "args": args(),
            "initial_samples": [0, 1, 2, 3],
            "iterations": [
                {"num_epochs": 4, "test_metrics": {"accuracy": 0.5, "nll": 1.5}, "chosen_samples": [10, 11]},
                {"num_epochs": 5, "test_metrics": {"accuracy": 0.6, "nll": 1.2}, "chosen_samples": [12, 13]},
                {"num_epochs": 7, "test_metrics": {"accuracy": 0.7, "nll": 1.0}, "chosen_samples": [14]},
            ],
        }
    ]
    path.write_text(json.dumps({"group": group, "source": "test", "runs": runs}))
    return path


def test_load_log_accumulates_the_labelled_set(tmp_path):
    group = replay.load_log(write_log(tmp_path / "g.json"))
    run = group.runs[0]
    assert run.seed == 7 and len(run.rounds) == 3
    assert [r.labelled for r in run.rounds] == [(0, 1, 2, 3), (0, 1, 2, 3, 10, 11), (0, 1, 2, 3, 10, 11, 12, 13)]
    assert [(r.accuracy, r.nll, r.epochs) for r in run.rounds] == [(0.5, 1.5, 4), (0.6, 1.2, 5), (0.7, 1.0, 7)]
    assert run.ever_labelled == frozenset({0, 1, 2, 3, 10, 11, 12, 13, 14})  # the last batch too


def test_b1_logs_name_their_single_pick_as_an_int(tmp_path):
    runs = [
        {
            "run": "b1_7",
            "args": args(),
            "initial_samples": [0, 1],
            "iterations": [
                {"num_epochs": 4, "test_metrics": {"accuracy": 0.5, "nll": 1.5}, "chosen_samples": 10},
                {"num_epochs": 4, "test_metrics": {"accuracy": 0.6, "nll": 1.4}, "chosen_samples": 11},
            ],
        }
    ]
    group = replay.load_log(write_log(tmp_path / "b1.json", group="b1", runs=runs))
    assert [r.labelled for r in group.runs[0].rounds] == [(0, 1), (0, 1, 10)]


def test_settings_follow_the_logged_args(tmp_path):
    setting = replay.replay_setting(replay.load_log(write_log(tmp_path / "g.json")))
    assert (setting.dataset, setting.repetitions, setting.validation_size, setting.test_samples) == (
        "repeated_mnist",
        0,
        12,
        10,
    )
    assert (setting.train.epoch_samples, setting.train.max_epochs, setting.train.patience) == (128, 6, 3)
    big_k = write_log(
        tmp_path / "k.json",
        runs=[
            {
                "run": "r",
                "args": args("DatasetEnum.mnist", num_inference_samples=200),
                "initial_samples": [],
                "iterations": [],
            }
        ],
    )
    setting = replay.replay_setting(replay.load_log(big_k))
    assert setting.dataset == "mnist" and setting.repetitions is None and setting.test_samples == 100


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not an official-log JSON file"),
        (json.dumps({"group": "g"}), "not an official-log JSON file"),
        (
            json.dumps({"group": "g", "runs": [{"run": "r", "args": {}, "initial_samples": [], "iterations": [{}]}]}),
            "not an official-log JSON file",
        ),
    ],
)
def test_malformed_logs_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(replay.ReplayError, match=message):
        replay.load_log(path)
    with pytest.raises(replay.ReplayError, match="not found"):
        replay.load_log(tmp_path / "missing.json")


def test_emnist_and_unknown_datasets_are_refused(tmp_path):
    for dataset, message in (
        ("DatasetEnum.emnist", "EMNIST balanced train split"),
        ("DatasetEnum.cinic10", "'cinic10' is not one of"),
    ):
        log = write_log(
            tmp_path / "e.json", runs=[{"run": "r", "args": args(dataset), "initial_samples": [], "iterations": []}]
        )
        with pytest.raises(replay.ReplayError, match=message):
            replay.replay_setting(replay.load_log(log))


def test_validation_draw_avoids_labelled_points_and_is_seeded():
    excluded = frozenset(range(0, 100, 3))
    a = replay.validation_indices(100, 20, excluded, seed=1)
    assert len(a) == 20 and len(set(a.tolist())) == 20 and not set(a.tolist()) & excluded
    assert torch.equal(a, replay.validation_indices(100, 20, excluded, seed=1))
    assert not torch.equal(a, replay.validation_indices(100, 20, excluded, seed=2))
    with pytest.raises(replay.ReplayError, match="larger than the 66 unlabelled points"):
        replay.validation_indices(100, 67, excluded, seed=1)


def test_replay_round_trains_and_evaluates_under_both_rules():
    ds = tensor_dataset(n_train=120, n_test=40, num_classes=4)
    setting = replay.ReplaySetting("fake", None, 16, 5, replay.TrainConfig(epoch_samples=512, max_epochs=6))
    labelled = tuple(range(12))
    validation = replay.validation_indices(len(ds.train), 16, frozenset(labelled), seed=3)
    out = replay.replay_round(ds, setting, labelled, ("heldout", "labelled"), validation=validation, seed=5)
    assert set(out) == {"heldout", "labelled"}
    for r in out.values():
        assert 0.0 <= r.accuracy <= 1.0 and math.isfinite(r.nll) and 1 <= r.epochs <= 6 and r.train_seconds > 0
    assert out["labelled"].epochs == 4  # 12 easy points are fitted in the first epoch
    again = replay.replay_round(ds, setting, labelled, ("labelled",), validation=validation, seed=5)["labelled"]
    assert (again.accuracy, again.nll, again.epochs) == (
        out["labelled"].accuracy,
        out["labelled"].nll,
        out["labelled"].epochs,
    )


def fake_rows(rule, diffs, epochs, group="rmnist_w_noise_independent_bald_k10_b10"):
    rows = []
    for run, (run_diffs, run_epochs) in enumerate(zip(diffs, epochs)):
        for rnd, (d, e) in enumerate(zip(run_diffs, run_epochs)):
            for trial, jitter in enumerate((-0.01, 0.01)):
                rows.append(
                    {
                        "group": group,
                        "run": f"r{run}",
                        "seed": run,
                        "round": rnd,
                        "labelled_size": 20 + 10 * rnd,
                        "trial": trial,
                        "validation_set": rule,
                        "logged_accuracy": 0.7,
                        "logged_nll": 2.0,
                        "logged_epochs": 4,
                        "accuracy": 0.7 + d + jitter,
                        "nll": 1.5,
                        "epochs": e,
                        "train_seconds": 10.0,
                        "eval_seconds": 5.0,
                        "hardware": "cpu",
                        "git_commit": "abc",
                    }
                )
    return rows


def test_summary_uses_per_round_trial_means_and_the_median_over_rounds():
    df = pd.DataFrame(
        fake_rows("heldout", [[0.05, 0.03, 0.04], [0.02, 0.06, 0.05]], [[8, 7, 9], [6, 4, 8]])
        + fake_rows("labelled", [[0.0, 0.005, -0.005], [0.01, -0.01, 0.0]], [[4] * 3, [4, 4, 5]])
    )
    by_rule = {s.validation_set: s for s in fidelity.summarize(df)}
    held, lab = by_rule["heldout"], by_rule["labelled"]
    assert held.runs == 2 and held.rounds == 6 and held.trials == 2
    assert held.median_diff == pytest.approx(np.median([0.05, 0.03, 0.04, 0.02, 0.06, 0.05]))
    assert held.share_higher == 1.0 and not held.matches
    assert held.diff_ci[0] <= held.median_diff <= held.diff_ci[1]
    assert lab.matches and lab.median_diff == pytest.approx(0.0, abs=1e-12)
    assert held.epochs_ours == pytest.approx(42 / 6) and held.at_min_ours == pytest.approx(1 / 6)
    assert lab.at_min_ours == pytest.approx(5 / 6) and lab.at_min_logged == 1.0 and lab.epochs_logged == 4


def test_report_files_and_the_script(tmp_path):
    from scripts import replay as script

    out = tmp_path / "fidelity"
    for rule, diffs, epochs in (("heldout", [[0.05, 0.04]], [[8, 9]]), ("labelled", [[0.0, 0.01]], [[4, 4]])):
        (out / rule).mkdir(parents=True)
        pd.DataFrame(fake_rows(rule, diffs, epochs)).to_csv(out / rule / "rmnist.csv", index=False)
    assert script.main(["--report", "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "RMNIST BALD" in summary and "| main | labelled |" in summary and "+0.045" in summary
    assert (out / "replay.png").stat().st_size > 0 and (out / "tables" / "summary.csv").exists()
    assert script.main(["--report", "--out", str(out)]) == 0  # again: its own tables are not read back as rows
    assert (out / "summary.md").read_text().split("generated")[-1] == summary.split("generated")[-1]
    assert script.main(["--report", "--out", str(tmp_path / "empty")]) == 2


def test_each_variant_rule_is_paired_with_the_deterministic_rules_on_its_own_trainings(tmp_path):
    from batchbald.fidelity import variants as fv
    from scripts import replay as script

    out = tmp_path / "fidelity"
    rows = {
        "labelled": fake_rows("labelled", [[0.0, 0.01, 0.02]], [[4, 4, 4]]),
        "labelled_mc10": fake_rows("labelled_mc10", [[0.01, 0.03, 0.5]], [[4, 6, 9]]),
        "labelled_mc1": fake_rows("labelled_mc1", [[0.02, 0.02, 0.02]], [[5, 5, 5]]),
        "heldout": fake_rows("heldout", [[0.05, 0.04, 0.06]], [[8, 9, 7]]),
    }
    rows["labelled_mc10"] = [r for r in rows["labelled_mc10"] if (r["round"], r["trial"]) != (2, 1)]  # one missing
    rows["labelled_mc1"] = [r for r in rows["labelled_mc1"] if r["trial"] == 0]  # replayed for one trial only
    for rule, rule_rows in rows.items():
        (out / rule).mkdir(parents=True)
        pd.DataFrame(rule_rows).to_csv(out / rule / "rmnist.csv", index=False)
    (out / "not_a_rule").mkdir()
    assert [p.name for p in fv.rule_dirs(out)] == ["heldout", "labelled", "labelled_mc1", "labelled_mc10"]
    table = fv.paired(fidelity.load_replays(out))
    blocks = {k: b.set_index("rule") for k, b in table.groupby("paired_set")}
    assert list(blocks["labelled_mc1"].index) == ["heldout", "labelled", "labelled_mc1"]
    assert set(blocks["labelled_mc1"]["trainings"]) == {3} and set(blocks["labelled_mc1"]["trials"]) == {1}
    # round 2 trial 1 is missing under labelled_mc10: left out of its block, and only of its block
    assert set(blocks["labelled_mc10"]["trainings"]) == {5} and set(blocks["labelled_mc10"]["trials"]) == {2}
    mc = blocks["labelled_mc10"].loc["labelled_mc10"]
    # diffs per training: 0.01±0.01 (2), 0.03±0.01 (2), 0.49 (trial 0 of round 2 only)
    assert mc["median_diff"] == pytest.approx(0.02) and mc["mean_diff"] == pytest.approx((0.02 + 0.06 + 0.49) / 5)
    assert mc["epochs_ours"] == pytest.approx((4 + 4 + 6 + 6 + 9) / 5) and mc["at4_ours"] == pytest.approx(0.4)
    # paired with labelled training by training: +0.01 (2), +0.02 (2), +0.48; stops elsewhere in rounds 1 and 2
    assert mc["vs_mean"] == pytest.approx((0.02 + 0.04 + 0.48) / 5) and mc["vs_moved"] == pytest.approx(0.6)
    assert mc["vs_ci"] == pytest.approx((mc["vs_mean"], mc["vs_mean"]))  # one run: every resample is the same
    assert blocks["labelled_mc1"].loc["labelled_mc1", "vs_mean"] == pytest.approx((0.02 + 0.01 + 0.0) / 3)
    assert np.isnan(blocks["labelled_mc10"].loc["labelled", "vs_mean"])
    assert blocks["labelled_mc10"].loc["labelled", "at4_ours"] == 1.0
    assert blocks["labelled_mc10"].loc["heldout", "at4_logged"] == 1.0
    assert script.main(["--report", "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "Stopping-score variants" in summary
    assert "| RMNIST BALD | labelled_mc10 | labelled_mc10 | 5 (1, 2) | +0.020 |" in summary
    assert "| RMNIST BALD | labelled_mc1 | labelled | 3 (1, 1) | " in summary
    main_table = summary.split("Stopping-score variants")[0]
    assert "labelled_mc10" not in main_table  # the protocols' table keeps the two deterministic rules
    assert fv.paired(pd.DataFrame(rows["labelled"] + rows["heldout"])).empty  # no MC rule: no comparison


def test_script_refuses_emnist_logs_before_any_work(tmp_path, capsys):
    from scripts import replay as script

    write_log(
        tmp_path / "emnist_x.json",
        group="emnist_x",
        runs=[{"run": "r", "args": args("DatasetEnum.emnist"), "initial_samples": [], "iterations": []}],
    )
    assert script.main(["--group", "emnist_x", "--logs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: group emnist_x: EMNIST") and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(find_shared_data() is None, reason="needs the real MNIST files from the shared data folder")
def test_script_replays_one_logged_round_and_resumes(tmp_path):
    from batchbald.data import prepare_from
    from scripts import replay as script

    root = tmp_path / "data"
    prepare_from(find_shared_data(), root, symlink=True)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    initial = list(PAPER_INITIAL_MNIST_INDICES)
    write_log(
        log_dir / "mnist_tiny.json",
        group="mnist_tiny",
        runs=[
            {
                "run": "mnist_tiny_7",
                "args": args("DatasetEnum.mnist", epoch_samples=256, validation_set_size=256, num_inference_samples=2),
                "initial_samples": initial,
                "iterations": [{"num_epochs": 4, "test_metrics": {"accuracy": 0.6, "nll": 2.0}, "chosen_samples": [5]}],
            }
        ],
    )
    argv = [
        "--group",
        "mnist_tiny",
        "--logs",
        str(log_dir),
        "--out",
        str(tmp_path / "out"),
        "--data-root",
        str(root),
        "--rounds",
        "1",
        "--trials",
        "1",
    ]
    assert script.main(argv) == 0
    rows = pd.concat([pd.read_csv(p) for p in sorted((tmp_path / "out").glob("*/mnist_tiny.csv"))])
    assert sorted(rows["validation_set"]) == ["heldout", "labelled"]
    assert (rows["labelled_size"] == 20).all() and (rows["logged_accuracy"] == 0.6).all()
    assert rows["accuracy"].between(0.2, 1.0).all()
    assert (rows["nll_per_mask"] >= rows["nll"]).all()
    assert script.plan(script.build_parser().parse_args(argv)) == []  # resumed: nothing left to do

    # --ours: the same training on our own run's labelled sets; a run of the same seed from the same 20 points
    # trains with the same seeds, so it reproduces the logged-set row of that trial exactly
    write_our_run(tmp_path / "runs" / "tiny" / "seed7", [[5]], initial_size=20)
    ours = [
        *argv[:4],
        "--ours",
        "tiny",
        "--runs-root",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "own"),
        *argv[6:],
    ]
    ours += ["--validation-set", "labelled"]
    assert script.main(ours) == 0
    own = pd.read_csv(tmp_path / "own" / "labelled" / "ours_tiny.csv")
    assert list(own["run"]) == ["ours_tiny_7"] and list(own["logged_accuracy"]) == [0.5]  # what our run recorded
    logged = rows[rows["validation_set"] == "labelled"].iloc[0]
    assert own["accuracy"].iloc[0] == logged["accuracy"] and own["epochs"].iloc[0] == logged["epochs"]


def test_report_section_for_results_md(tmp_path):
    root = tmp_path / "results" / "fidelity"
    assert fidelity.report_section(root, tmp_path / "results") == []
    (root / "labelled").mkdir(parents=True)
    pd.DataFrame(fake_rows("labelled", [[0.0, 0.01]], [[4, 4]])).to_csv(root / "labelled" / "g.csv", index=False)
    (root / "replay.png").write_bytes(b"png")
    lines = fidelity.report_section(root, tmp_path / "results")
    text = "\n".join(lines)
    assert lines[0] == "## Fidelity to the official logs"
    assert "| RMNIST BALD (Figs 2, 10, 11) | main | labelled | 1 × 2 × 2 |" in text
    assert "(fidelity/replay.png)" in text


def test_append_row_adds_new_columns_to_older_tables(tmp_path):
    from scripts import replay as script

    path = tmp_path / "g.csv"
    script.append_row(path, {"run": "a", "round": 0, "nll": 1.0})
    script.append_row(path, {"run": "a", "round": 1, "nll": 2.0, "nll_per_mask": 3.0})  # a column the file lacks
    script.append_row(path, {"round": 2, "run": "b", "nll": 4.0, "nll_per_mask": 5.0})  # another column order
    rows = pd.read_csv(path)
    assert list(rows["run"]) == ["a", "a", "b"] and list(rows["nll"]) == [1.0, 2.0, 4.0]
    assert rows["nll_per_mask"].isna().tolist() == [True, False, False] and rows["nll_per_mask"].iloc[2] == 5.0


def test_per_mask_nll_is_summarised_over_the_rows_that_have_it():
    df = pd.DataFrame(fake_rows("labelled", [[0.0, 0.0, 0.0]], [[4, 4, 4]]))  # nll 1.5, logged 2.0 everywhere
    assert fidelity.summarize(df)[0].per_mask_rows == 0  # older replays: no column
    df["nll_per_mask"] = np.where(df["trial"] == 1, [2.5, 2.1, 1.9, 2.2, 2.4, 2.6][: len(df)], np.nan)
    s = fidelity.summarize(df)[0]
    assert s.per_mask_rows == 3 and s.nll_per_mask_logged == 2.0
    assert s.nll_per_mask_median_diff == pytest.approx(np.median([2.1, 2.2, 2.6]) - 2.0)
    assert s.nll_median_diff == pytest.approx(-0.5) and s.nll_per_mask_ours == pytest.approx((2.1 + 2.2 + 2.6) / 3)
    table = "\n".join(fidelity.mask_statistics_section([s]))
    assert "| 3 | -0.50 / +0.20 | not recorded |" in table
    df["accuracy_log_mean"] = np.where(df["trial"] == 1, df["accuracy"] + 0.02, np.nan)
    s = fidelity.summarize(df)[0]
    assert s.log_mean_rows == 3 and s.acc_log_mean_median_diff == pytest.approx(s.acc_median_diff_same_rows + 0.02)
    assert fidelity.mask_statistics_section([]) == []


def test_script_refuses_an_unknown_stopping_rule(capsys):
    from scripts import replay as script

    with pytest.raises(SystemExit) as stop:
        script.main(["--validation-set", "labelled", "labelled_mc0"])
    assert stop.value.code == 2
    assert "unknown stopping rule 'labelled_mc0'" in capsys.readouterr().err


def test_run_bootstrap_resamples_whole_runs():
    """Two runs, [0, 0] and [1]: a resample pools whole runs, so its mean is 0, 1/3 or 1 (never 1/2)."""
    runs = [np.array([0.0, 0.0]), np.array([1.0])]
    assert run_bootstrap_ci(runs, np.mean) == (0.0, 1.0)
    means = run_bootstrap_ci(runs, np.mean, reps=1)
    assert means[0] in (0.0, 1 / 3, 1.0)
    assert run_bootstrap_ci([np.array([0.5, 0.5])] * 3, np.median) == (0.5, 0.5)
    assert all(np.isnan(run_bootstrap_ci([], np.mean)))


def write_our_run(folder: Path, batches: list[list[int]], initial_size: int = 4) -> Path:
    """A rounds.csv as the loop writes it (tracking.rounds_frame), one row per batch."""
    from batchbald.loop import RoundRecord
    from batchbald.tracking import rounds_frame

    folder.mkdir(parents=True)
    size, records = initial_size, []
    for r, batch in enumerate(batches):
        records.append(
            RoundRecord(r, size, 0.5 + r / 10, 1.0, 4 + r, batch, [0] * len(batch), [], 0.0, [], 1.0, 0.0, 0.0, 0.0)
        )
        size += len(batch)
    rounds_frame(records).to_csv(folder / "rounds.csv", index=False)
    return folder


def test_our_runs_become_a_group_with_the_logged_settings(tmp_path):
    like = replay.load_log(write_log(tmp_path / "g.json"))
    a = write_our_run(tmp_path / "runs" / "seed11", [[10, 11], [20, 21], []])
    b = write_our_run(tmp_path / "runs" / "seed12", [[30, 31]])
    group = replay.load_our_runs([a, b], like, [0, 1, 2, 3], "ours_x")
    assert group.group == "ours_x" and [r.name for r in group.runs] == ["ours_x_11", "ours_x_12"]
    run = group.runs[0]
    assert run.seed == 11 and run.args == like.runs[0].args
    assert [r.labelled for r in run.rounds] == [(0, 1, 2, 3), (0, 1, 2, 3, 10, 11), (0, 1, 2, 3, 10, 11, 20, 21)]
    assert [r.accuracy for r in run.rounds] == [0.5, 0.6, 0.7] and [r.epochs for r in run.rounds] == [4, 5, 6]
    assert run.ever_labelled == {0, 1, 2, 3, 10, 11, 20, 21}
    assert replay.replay_setting(group) == replay.replay_setting(like)


def test_our_runs_that_do_not_add_up_stop_with_one_line(tmp_path):
    like = replay.load_log(write_log(tmp_path / "g.json"))
    bad = write_our_run(tmp_path / "seed5", [[10, 11], [20]])
    rows = pd.read_csv(bad / "rounds.csv")
    rows.loc[1, "labelled_size"] = 7  # 4 initial + 2 acquired = 6
    rows.to_csv(bad / "rounds.csv", index=False)
    with pytest.raises(replay.ReplayError, match=r"seed5/rounds.csv: round 1 does not follow"):
        replay.load_our_runs([bad], like, [0, 1, 2, 3], "ours")
    (tmp_path / "seedx").mkdir()
    with pytest.raises(replay.ReplayError, match="is not a run's rounds.csv"):
        replay.load_our_runs([tmp_path / "seedx"], like, [0, 1, 2, 3], "ours")
