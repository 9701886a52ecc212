"""The acquisition replay: joint-MI diagnostic against brute force, digit repeats, the logs' index space, BatchBALD's
configuration variants, one replayed round end to end on generated data, and the script."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from batchbald.acquisition.joint_mi import batchbald_batch
from batchbald.acquisition.scores import bald_scores
from batchbald.fidelity import acquisition_replay as AR
from batchbald.fidelity.replay import LoggedRound, LoggedRun, ReplaySetting
from batchbald.train import TrainConfig
from tests.fakedata import tensor_dataset

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def random_log_probs(B, K, C, seed=0, sharpness=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharpness * torch.randn(B, K, C, generator=g, dtype=torch.float64), dim=2)


def test_joint_mi_matches_the_definition_summed_term_by_term(monkeypatch):
    lp = random_log_probs(4, 5, 3)
    brute = AR.brute_force_joint_mi(lp)
    assert AR.joint_mutual_information(lp) == pytest.approx(brute, abs=1e-10)  # exact regime
    assert 0 <= brute <= torch.log(torch.tensor(5.0)).item() + 1e-12  # I(y; ω) ≤ H(ω) = log K
    assert AR.joint_mutual_information(lp[:1]) == pytest.approx(float(bald_scores(lp[:1])[0]), abs=1e-12)  # one point
    monkeypatch.setattr(AR, "EXACT_CONFIGURATIONS", 0)  # force the Monte Carlo estimate
    sampled = AR.joint_mutual_information(lp, num_samples=400_000, seed=1)
    assert sampled == pytest.approx(brute, abs=0.01)
    assert AR.joint_mutual_information(lp, num_samples=400_000, seed=1) == sampled  # seeded


def test_digit_repeats_count_other_copies_of_the_same_mnist_image():
    batch = [5, 60_005, 7, 120_007, 9, 11, 60_009, 180_000 + 11, 3, 60_003]
    out = AR.digit_repeats(batch, labelled=[3, 120_000], copy_size=60_000)
    # repeats of an earlier pick: 60005, 120007, 60009, 180011, 60003; of the labelled set: 3 and 60003
    assert out == {"in_batch": 5, "of_labelled": 2, "late_in_batch": 1}  # 60009 (pos 7) repeats 9 (pos 5)


def test_bald_ranks():
    assert AR.bald_ranks(torch.tensor([0.1, 0.9, 0.5, 0.9]), [1, 3, 2, 0]) == [1, 1, 3, 4]


def test_repeated_mnist_position_i_is_mnist_image_i_mod_60000(tmp_path):
    """The logs index Repeated MNIST as consecutive copies of MNIST's training set (the released code concatenates
    the copies); ours does the same, so a logged index names the same digit here."""
    from batchbald.data import find_shared_data, load_dataset, prepare_from

    root = tmp_path / "data"
    prepare_from(find_shared_data(), root, symlink=True)
    mnist = load_dataset("mnist", root, download=False)
    rmnist = load_dataset("repeated_mnist", root, repetitions=2, noise_std=0.0, download=False)
    assert len(rmnist.train) == 3 * AR.MNIST_TRAIN_SIZE
    for i in (0, 59_999, 60_000, 138_490, 179_999):
        j = i % AR.MNIST_TRAIN_SIZE
        assert torch.equal(rmnist.train.x[i], mnist.train.x[j]) and rmnist.train.y[i] == mnist.train.y[j]


def test_redrawn_configurations_match_nested_until_the_second_sampled_step_and_both_estimate_the_joint():
    lp = random_log_probs(40, 4, 3, seed=2, sharpness=1.0)
    M = 36  # exact while 3^i ≤ 36 (steps 1-3), sampled from step 4 (the 5th pick, 81 > 36)
    nested = batchbald_batch(lp, 6, num_samples=M, seed=5, configurations="nested")
    redrawn = batchbald_batch(lp, 6, num_samples=M, seed=5, configurations="redrawn")
    first_sampled = next(s.step for s in nested.steps if s.regime == "sampled")
    k = first_sampled + 1  # the first sampled pick uses the same fresh draw in both
    assert nested.batch.indices[:k] == redrawn.batch.indices[:k]
    assert nested.batch.scores[:k] == redrawn.batch.scores[:k]
    assert nested.batch.scores[k] != redrawn.batch.scores[k]  # then independent draws: another estimate
    big = 4 * 50_000
    for variant in ("nested", "redrawn"):
        result = batchbald_batch(lp, 6, num_samples=big, seed=5, configurations=variant)
        exact = AR.brute_force_joint_mi(lp[result.batch.indices])
        assert result.batch.scores[-1] == pytest.approx(exact, abs=0.02), variant
    with pytest.raises(ValueError, match="configurations must be one of nested, redrawn"):
        batchbald_batch(lp, 2, configurations="fresh")


LOGGED_ARGS = {
    "num_inference_samples": 3,
    "acquisition_method": "AcquisitionMethod.multibald",
    "type": "AcquisitionFunction.bald",
}


def tiny_run(dataset, batch=4):
    """A made-up 'logged' run on generated data: 4 initial points, then two batches of `batch`."""
    ys = dataset.train.y
    initial = [int((ys == c).nonzero()[0]) for c in range(dataset.num_classes)]
    rest = [i for i in range(len(ys)) if i not in initial]
    labelled = [tuple(initial), tuple(initial + rest[:batch]), tuple(initial + rest[: 2 * batch])]
    rounds = tuple(LoggedRound(i, lab, 0.5 + 0.1 * i, 1.0, 3) for i, lab in enumerate(labelled))
    return LoggedRun("tiny_7", 7, {}, rounds, frozenset(labelled[-1]))


def test_one_replayed_round_end_to_end_on_generated_data():
    dataset = tensor_dataset(n_train=240, n_test=60, num_classes=4)
    setting = ReplaySetting("repeated_mnist", 0, 20, 3, TrainConfig(epoch_samples=128, max_epochs=3, patience=2))
    run = tiny_run(dataset)
    rows = AR.replay_acquisition_round(
        dataset,
        setting,
        run,
        1,
        rule="labelled_mc3",
        acquisition="batchbald",
        mc_samples=3,
        num_samples=12,  # 4 classes: exact for 1 pick (4 ≤ 12), sampled from the third pick on
        variants=("nested", "redrawn"),
        other_models=1,
        trials=2,
    )
    assert [r["side"] for r in rows] == ["logged", "nested", "redrawn", "nested_model2"]
    logged = rows[0]
    assert json.loads(logged["batch"]) == list(run.rounds[2].labelled[8:]) and logged["overlap_with_logged"] == 4
    assert logged["labelled_size"] == 8 and logged["logged_next_accuracy"] == pytest.approx(0.7)
    for r in rows:
        batch = json.loads(r["batch"])
        assert len(batch) == 4 and not set(batch) & set(run.rounds[1].labelled)
        assert 0 <= r["accuracy"] <= 1 and r["accuracy"] == pytest.approx(
            (r["accuracy_trial0"] + r["accuracy_trial1"]) / 2
        )
        assert r["joint_mi"] >= -1e-9 and sum(json.loads(r["class_counts"])) == 4
        assert all(rank >= 1 for rank in json.loads(r["bald_ranks"]))
    assert rows[1]["greedy_scores"] != "[]" and json.loads(rows[1]["bald_ranks"])[0] == 1  # pick 1 is BALD's top
    again = AR.replay_acquisition_round(
        dataset, setting, run, 1, rule="labelled_mc3", acquisition="bald", mc_samples=3, variants=("bald",), trials=1
    )
    assert [r["side"] for r in again] == ["logged", "bald"]
    assert json.loads(again[1]["bald_ranks"]) == [1, 2, 3, 4]


def test_the_script_replays_a_slice_resumes_and_reports(tmp_path, monkeypatch):
    from scripts import replay_acquisition as script

    dataset = tensor_dataset(n_train=240, n_test=60, num_classes=4)
    setting = ReplaySetting("repeated_mnist", 0, 20, 3, TrainConfig(epoch_samples=128, max_epochs=3, patience=2))
    run = tiny_run(dataset)
    from batchbald.fidelity.replay import LoggedGroup

    group = LoggedGroup("rmnist_w_noise_multibald_bald_k10_b10", (run,))
    monkeypatch.setattr(script, "load_group", lambda logs, name: (group, setting, LOGGED_ARGS))
    monkeypatch.setattr(script, "load_replay_dataset", lambda setting, root, seed: dataset)
    out = tmp_path / "acq"
    argv = ["--group", group.group, "--rounds", "0-1", "--trials", "1", "--out", str(out), "--num-samples", "12"]
    assert script.main(argv) == 0
    rows = pd.read_csv(out / f"{group.group}.csv")
    assert sorted(set(rows["round"])) == [0, 1] and set(rows["side"]) == {"logged", "nested", "redrawn"}
    assert set(rows["hardware"].notna()) == {True} and rows["git_commit"].notna().all()
    assert script.main(argv) == 0  # resumed: nothing new
    assert len(pd.read_csv(out / f"{group.group}.csv")) == len(rows)
    # rows written by older code without a column: the resumed replay rewrites the file with it, empty there
    rows[rows["round"] == 0].drop(columns=["scoring_rule"]).to_csv(out / f"{group.group}.csv", index=False)
    assert script.main(argv) == 0
    again = pd.read_csv(out / f"{group.group}.csv")
    assert len(again) == len(rows) and again["scoring_rule"].isna().sum() == (rows["round"] == 0).sum()
    variant = argv[:3] + ["1", *argv[4:], "--scoring-rule", "heldout", "--variants", "nested"]
    assert script.main(variant) == 0  # the scoring model stops on the held-out set; the trials as before
    rows_heldout = pd.read_csv(out / "scoring_heldout" / f"{group.group}.csv")
    assert set(rows_heldout["scoring_rule"]) == {"heldout"} and set(rows_heldout["rule"]) == {"labelled_mc3"}
    assert script.main(["--report", "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "RMNIST BatchBALD" in summary and "redrawn" in summary and (out / "delta.png").exists()
    assert "| RMNIST BatchBALD | scoring_heldout | nested | heldout | 1 (1; 1–1) |" in summary
    from batchbald.fidelity.acquisition_summary import report_section

    section = report_section(out, tmp_path)
    assert section[0] == "### Acquisition replay (`make replay-acquisition`)" and "![Acquisition replay" in section[-2]
    with pytest.raises(SystemExit):
        script.build_parser().parse_args(["--scoring-rule", "validation"])


def test_by_size_table_means_each_labelled_size_and_splits_early_from_late():
    from batchbald.fidelity.acquisition_summary import EARLY_LABELS, by_size, by_size_markdown

    rows = []
    # two runs, steps from 60 and 110 labels; ours − logged: run a −0.02 / +0.01, run b −0.04 / +0.03
    for run, deltas in (("a", (-0.02, 0.01)), ("b", (-0.04, 0.03))):
        for r, (size, delta) in enumerate(zip((60, 110), deltas)):
            for side, acc in (("logged", 0.8), ("nested", 0.8 + delta)):
                rows.append(
                    dict(group="rmnist_w_noise_multibald_bald_k10_b10", setting="default", run=run, round=r,
                         side=side, accuracy=acc, joint_mi=1.0, labelled_size=size)
                )  # fmt: skip
    table = by_size(pd.DataFrame(rows))
    assert EARLY_LABELS == 100 and len(table) == 1
    row = table.iloc[0]
    assert row[60] == "-0.030 (2)" and row[110] == "+0.020 (2)"
    assert row["early"].startswith("-0.0300 [-0.0400, -0.0200] (2)")  # the interval resamples the two runs
    assert row["late"].startswith("+0.0200 [+0.0100, +0.0300] (2)")
    lines = by_size_markdown(table)
    assert lines[0].split(" | ")[3:5] == ["L=60", "L=110"] and "RMNIST BatchBALD" in lines[2]
    one_size = pd.DataFrame([r for r in rows if r["labelled_size"] == 60])
    assert by_size(one_size).empty and by_size_markdown(by_size(one_size)) == []
