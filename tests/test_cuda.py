"""CUDA path (run by `make device-check` on a GPU box; skipped here without one).

CUDA numerics are configured as runs configure them (batchbald.numerics.configure_cuda: TF32 off, deterministic
algorithms, cuBLAS workspace pinned before CUDA starts).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from batchbald import numerics
from batchbald.acquisition import batchbald_batch
from batchbald.data import make_splits
from batchbald.loop import LoopConfig, run_loop
from batchbald.models import build_model, draw_masks, mc_log_probs
from batchbald.train import TrainConfig
from tests.fakedata import tensor_dataset

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
GPU = torch.device("cuda")


@pytest.fixture(autouse=True, scope="module")
def cuda_numerics():
    numerics.pin_cpu_isa()
    numerics.configure_cuda()


@pytest.mark.parametrize("name, classes", [("mnist_cnn", 10), ("emnist_cnn", 47)])
def test_pool_scores_on_cuda_equal_cpu(name, classes):
    torch.manual_seed(0)
    model = build_model(name, classes).eval()
    x = torch.randn(300, 1, 28, 28)
    masks = draw_masks(model, 10, torch.Generator().manual_seed(1))
    cpu = mc_log_probs(model, x, masks)
    gpu = mc_log_probs(model.to(GPU), x, masks.to(GPU)).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)


@pytest.mark.parametrize("num_samples", [10**6, 400])  # exact all the way; sampled after 2 picks (C=10, K=8)
def test_batchbald_picks_identical_on_cpu_and_cuda(num_samples):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2000, 8, 10)) * 3
    lp = torch.from_numpy(logits).log_softmax(-1)
    cpu = batchbald_batch(lp, 10, num_samples=num_samples, seed=5).batch
    gpu = batchbald_batch(lp.to(GPU), 10, num_samples=num_samples, seed=5).batch
    assert gpu.indices == cpu.indices
    np.testing.assert_allclose(gpu.scores, cpu.scores, rtol=0, atol=1e-9)


def _config(**kw):
    base = dict(
        seed=3,
        budget=12,
        mc_samples=4,
        acquisition="batchbald",
        batch_size=4,
        model="mnist_cnn",
        train=TrainConfig(epoch_samples=128, max_epochs=3, patience=2),
        num_samples=64,
    )
    base.update(kw)
    return LoopConfig(**base)


def _strip(rounds):
    return [{k: v for k, v in asdict(r).items() if not k.endswith("seconds")} for r in rounds]


def test_loop_twice_on_cuda_gives_identical_acquisitions():
    dataset = tensor_dataset()
    splits = make_splits(dataset, initial=1, validation_size=20, seed=0)
    a = run_loop(dataset, splits, _config(), GPU)
    b = run_loop(dataset, splits, _config(), GPU)
    assert _strip(a) == _strip(b)


def test_resume_on_cuda_equals_an_uninterrupted_run(tmp_path):
    dataset = tensor_dataset()
    splits = make_splits(dataset, initial=1, validation_size=20, seed=0)
    full = run_loop(dataset, splits, _config(), GPU)

    class Killed(Exception):
        pass

    def kill(records):
        if len(records) == 2:
            raise Killed

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        run_loop(dataset, splits, _config(), GPU, checkpoint=ckpt, fingerprint="f", on_round=kill)
    resumed = run_loop(dataset, splits, _config(), GPU, checkpoint=ckpt, fingerprint="f")
    assert _strip(resumed) == _strip(full)
