"""The active-learning loop end to end on small generated data, with every acquisition function."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch

from batchbald.acquisition import ACQUISITION_NAMES
from batchbald.data import make_splits
from batchbald.loop import AcquisitionError, LoopConfig, label_entropy, run_loop
from batchbald.train import TrainConfig
from tests.fakedata import tensor_dataset

CPU = torch.device("cpu")
TRAIN = TrainConfig(epoch_samples=128, max_epochs=3, patience=2)


def config(acquisition="batchbald", **kw) -> LoopConfig:
    base = dict(
        seed=3,
        budget=9,
        mc_samples=4,
        acquisition=acquisition,
        batch_size=4,
        model="mnist_cnn",
        train=TRAIN,
        num_samples=64,
    )
    base.update(kw)
    return LoopConfig(**base)


TARGETS = {"epig": {"target_set": "pool", "target_per_round": 5}}  # these splits hold no target set out


@pytest.fixture(scope="module")
def data():
    dataset = tensor_dataset()
    return dataset, make_splits(dataset, initial=1, validation_size=20, seed=0)


@pytest.mark.parametrize("acquisition", ACQUISITION_NAMES)
def test_loop_records_agree_with_each_other(data, acquisition):
    dataset, splits = data
    rounds = run_loop(dataset, splits, config(acquisition, **TARGETS.get(acquisition, {})), CPU)
    # budget 9 in batches of 4: acquire 4, 4, 1, then evaluate the final set without acquiring
    assert [len(r.acquired_indices) for r in rounds] == [4, 4, 1, 0]
    assert [r.labelled_size for r in rounds] == [4, 8, 12, 13]
    acquired = [i for r in rounds for i in r.acquired_indices]
    assert len(set(acquired)) == 9 and set(acquired) <= set(splits.pool)
    labels = dataset.train.y
    seen = torch.zeros(dataset.num_classes, dtype=torch.long)
    for r in rounds:
        assert r.acquired_labels == labels[r.acquired_indices].tolist()
        assert len(r.acquisition_scores) == len(r.acquired_indices)
        seen += torch.bincount(torch.tensor(r.acquired_labels, dtype=torch.long), minlength=dataset.num_classes)
        assert r.class_counts == seen.tolist()
        assert r.label_entropy == pytest.approx(label_entropy(seen))
        assert 0 <= r.test_accuracy <= 1 and r.test_nll > 0 and r.epochs >= 1
        assert r.test_nll_per_mask >= r.test_nll  # Jensen
        assert min(r.train_seconds, r.eval_seconds, r.score_seconds, r.select_seconds) >= 0


def test_label_entropy():
    assert label_entropy(torch.tensor([0, 0, 0])) == 0.0
    assert label_entropy(torch.tensor([5, 0, 0])) == 0.0
    assert label_entropy(torch.tensor([2, 2, 2, 2])) == pytest.approx(math.log(4))


def test_target_accuracy_stops_early(data):
    dataset, splits = data
    rounds = run_loop(dataset, splits, config("bald", budget=40, target_accuracy=0.01), CPU)
    assert len(rounds) == 1 and rounds[0].acquired_indices == []


def test_same_seed_same_acquisitions_other_seed_differs(data):
    dataset, splits = data
    a = run_loop(dataset, splits, config(), CPU)
    b = run_loop(dataset, splits, config(), CPU)
    c = run_loop(dataset, splits, config(seed=4), CPU)
    strip = lambda rs: [{k: v for k, v in asdict(r).items() if not k.endswith("seconds")} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)
    assert [r.acquired_indices for r in a] != [r.acquired_indices for r in c]


def test_killed_run_resumes_to_the_same_result(data, tmp_path):
    dataset, splits = data
    full = run_loop(dataset, splits, config(budget=12), CPU)

    class Killed(Exception):
        pass

    def kill_after_round_2(records):
        if len(records) == 2:
            raise Killed

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        run_loop(dataset, splits, config(budget=12), CPU, checkpoint=ckpt, fingerprint="f", on_round=kill_after_round_2)
    resumed = run_loop(dataset, splits, config(budget=12), CPU, checkpoint=ckpt, fingerprint="f")
    strip = lambda rs: [{k: v for k, v in asdict(r).items() if not k.endswith("seconds")} for r in rs]  # noqa: E731
    assert strip(resumed) == strip(full)
    with pytest.raises(ValueError, match="different config"):
        run_loop(dataset, splits, config(budget=12), CPU, checkpoint=ckpt, fingerprint="other")


def test_run_resumed_from_its_rounds_csv_alone_continues_bit_for_bit(data, tmp_path):
    """3 rounds, the checkpoint lost, resumed from the rows of rounds.csv: the same 5 rounds as an uninterrupted run."""
    from batchbald.tracking import read_rounds, rounds_frame

    dataset, splits = data
    cfg = config(budget=16)  # 4 batches of 4, then the final evaluation: 5 rounds
    full = run_loop(dataset, splits, cfg, CPU)
    assert len(full) == 5

    class Killed(Exception):
        pass

    def kill_after_round_3(records):
        if len(records) == 3:
            rounds_frame(records).to_csv(tmp_path / "rounds.csv", index=False)
            raise Killed

    with pytest.raises(Killed):
        run_loop(dataset, splits, cfg, CPU, on_round=kill_after_round_3)
    strip = lambda rs: [{k: v for k, v in asdict(r).items() if not k.endswith("seconds")} for r in rs]  # noqa: E731
    committed = read_rounds(tmp_path / "rounds.csv")
    assert strip(committed) == strip(full[:3])  # every number read back exactly
    resumed = run_loop(dataset, splits, cfg, CPU, checkpoint=tmp_path / "none.pt", finished_rounds=committed)
    assert strip(resumed) == strip(full)


def test_rows_that_this_config_could_not_have_written_are_refused(data):
    from batchbald.loop import CheckpointError, state_from_rounds

    dataset, splits = data
    cfg = config(budget=16)
    rows = run_loop(dataset, splits, config(budget=8), CPU)[:2]
    assert (
        state_from_rounds(rows, splits, dataset, cfg).labelled
        == splits.initial + rows[0].acquired_indices + rows[1].acquired_indices
    )
    bad = [
        (replace(rows[1], round=5), "row 1: round is 5, expected 1"),
        (replace(rows[1], labelled_size=99), "row 1: labelled_size is 99"),
        (replace(rows[1], acquired_indices=rows[0].acquired_indices), "row 1: index .* was acquired in an earlier row"),
        (replace(rows[1], acquired_indices=[splits.initial[0]] + rows[1].acquired_indices[1:]), "not in this seed"),
        (
            replace(rows[1], acquired_indices=rows[1].acquired_indices[:2]),
            "2 points acquired where this config acquires 4",
        ),
        (replace(rows[1], class_counts=[0] * dataset.num_classes), "row 1: class_counts differ"),
    ]
    for row, message in bad:
        with pytest.raises(CheckpointError, match=message):
            state_from_rounds([rows[0], row], splits, dataset, cfg)


def test_checkpoint_rounds_from_before_the_per_mask_nll_load(tmp_path):
    from batchbald.loop import LoopState, RoundRecord, load_checkpoint, save_checkpoint

    ckpt = tmp_path / "checkpoint.pt"
    old = RoundRecord(0, 20, 0.5, 1.2, 4, [3], [1], [0.1], 0.0, [0, 1], 1.0, 1.0, 1.0, 1.0)
    save_checkpoint(ckpt, LoopState(labelled=[1], pool=[2, 3], rounds=[old]), "f")
    raw = torch.load(ckpt, weights_only=True)
    raw["rounds"] = [{k: v for k, v in asdict(old).items() if k != "test_nll_per_mask"}]  # an older checkpoint
    torch.save(raw, ckpt)
    (loaded,) = load_checkpoint(ckpt, "f").rounds
    assert loaded.test_nll == 1.2 and math.isnan(loaded.test_nll_per_mask)


def test_checkpoint_from_other_numerics_is_refused(tmp_path):
    from batchbald.loop import CheckpointError, LoopState, load_checkpoint, save_checkpoint

    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, LoopState(labelled=[1], pool=[2, 3]), "f", "NVIDIA H200, torch 2.11.0+cu130")
    with pytest.raises(CheckpointError, match="written on NVIDIA H200, torch 2.11.0.*this run is on cpu, torch"):
        load_checkpoint(ckpt, "f", "cpu, torch 2.14.1")
    assert load_checkpoint(ckpt, "f", "NVIDIA H200, torch 2.11.0+cu130").pool == [2, 3]


def test_zero_initial_points_first_round_uses_untrained_model(data):
    dataset, _ = data
    splits = make_splits(dataset, initial=0, validation_size=20, seed=0)
    rounds = run_loop(dataset, splits, config("random", budget=4), CPU)
    assert rounds[0].labelled_size == 0 and rounds[0].epochs == 0
    assert rounds[1].labelled_size == 4


def test_loop_with_power_bald_is_seeded(data):
    dataset, splits = data
    a = run_loop(dataset, splits, config("bald", stochastic="power", coldness=1.0), CPU)
    b = run_loop(dataset, splits, config("bald", stochastic="power", coldness=1.0), CPU)
    assert [r.acquired_indices for r in a] == [r.acquired_indices for r in b]
    picked = [i for r in a for i in r.acquired_indices]
    assert len(picked) == len(set(picked)) == 9


def test_epig_with_a_held_out_target_set(data):
    dataset, plain = data
    splits = make_splits(dataset, initial=1, validation_size=20, seed=0, target_size=40)
    assert splits.initial == plain.initial and splits.validation == plain.validation  # the rest as without targets
    assert set(splits.target).isdisjoint(splits.pool) and set(splits.target) | set(splits.pool) == set(plain.pool)
    assert torch.bincount(dataset.train.y[splits.target]).tolist() == [10, 10, 10, 10]  # class-balanced
    cfg = config("epig", target_per_round=8)
    rounds = run_loop(dataset, splits, cfg, CPU)
    acquired = [i for r in rounds for i in r.acquired_indices]
    assert len(acquired) == 9 and set(acquired) <= set(splits.pool)  # targets are never labelled
    assert [r.acquired_indices for r in run_loop(dataset, splits, cfg, CPU)] == [r.acquired_indices for r in rounds]
    with pytest.raises(AcquisitionError, match="holds none out"):
        run_loop(dataset, plain, cfg, CPU)
