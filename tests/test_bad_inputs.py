"""Bad-input corpus: every case ends with one line and exit code 2 (or a warning and a finished run), never a
traceback, and never loses a finished round. Cases: config values, config group names, output directories, user
parts, missing and corrupt data, damaged run state, non-finite values, a crashing wandb."""

from __future__ import annotations

import json
import math
import textwrap

import pandas as pd
import pytest
import torch

from batchbald.acquisition import select
from batchbald.loop import LoopState, RoundRecord, save_checkpoint
from tests.fakedata import write_emnist_split
from tests.test_driver import run, tiny

NAN_SCORES = textwrap.dedent(
    """
    import torch

    CALLS = [0]


    def nan_later(log_probs_N_K_C):
        CALLS[0] += 1  # call 1: the check before any work; call 2: round 0; call 3: round 1 -> NaN
        scores = log_probs_N_K_C.exp().mean(1).amax(1).neg()
        return scores * float("nan") if CALLS[0] >= 3 else scores
    """
)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


CONFIG_CASES = [
    ("budget=0", "budget must be an integer >= 1, got 0"),
    ("budget=abc", "budget must be an integer >= 1, got 'abc'"),
    ("seed=-1", "seed must be an integer in [0, 9223372036854775807], got -1"),
    ("mc_samples=0", "mc_samples must be an integer >= 1"),
    ("acquisition.batch_size=0", "acquisition.batch_size must be an integer >= 1"),
    ("acquisition.batch_size=100", "acquisition.batch_size (100) must not exceed budget (6)"),
    ("device=tpu", "device must be one of auto, cpu, cuda"),
    ("wandb.mode=sometimes", "wandb.mode must be one of offline, online, disabled"),
    ("target_accuracy=1.5", "target_accuracy must be null or a number in (0, 1]"),
    ("train.lr=-1", "train.lr must be a finite number > 0"),
    ("train.lr=nan", "train.lr must be a finite number > 0, got nan"),
    ("dataset.noise_std=inf", "dataset.noise_std must be a finite number >= 0, got inf"),
    ("seed=99999999999999999999", "seed must be an integer in [0, 9223372036854775807], got 99999999999999999999"),
    ("train.validation_set=test", "train.validation_set must be one of heldout, labelled"),
    ("train.validation_samples=-1", "train.validation_samples must be an integer >= 0, got -1"),
    ("acquisition.stochastic=gibbs", "acquisition.stochastic must be null or one of power, softmax, softrank"),
    ("acquisition.coldness=-1", "acquisition.coldness must be a finite number >= 0"),
    ("dataset.noise_std=-1", "dataset.noise_std must be a finite number >= 0"),
    ("threads=0", "threads must be an integer >= 1"),
    ("+dataset.validation_draw=first", "dataset.validation_draw must be one of fresh, paper, got 'first'"),
    ("+train.sampler=shuffle", "train.sampler must be one of iid, balanced, got 'shuffle'"),
    ("acquisition.target.set=elsewhere", "acquisition.target.set must be one of heldout, pool, got 'elsewhere'"),
    ("acquisition.target.size=-5", "acquisition.target.size must be an integer >= 0, got -5"),
    ("acquisition.target.size=nan", "acquisition.target.size must be an integer >= 0, got nan"),
    ("acquisition.target.per_round=0", "acquisition.target.per_round must be an integer >= 1, got 0"),
    ("acquisition.target.size=1000", "acquisition.target.size=1000 must be smaller than the 380 pool points"),
    (
        "acquisition.target.size=377",
        "budget (6) is larger than the pool (3 points after the initial set and 20 validation points and 377 EPIG "
        "targets); lower budget, dataset.validation_size or acquisition.target.size",
    ),
    ("acquisition=no_such_method", "acquisition=no_such_method is not a config in configs/acquisition/; choose one of"),
    ("experiment=nope", "experiment=nope is not a config in configs/experiment/"),
    ("profile=fast", "profile=fast is not a config in configs/profile/; choose one of paper, quick"),
    ("hydra.run.dir=/dev/null/x", "hydra.run.dir=/dev/null/x: cannot create a directory there"),
    ("acquisition._target_=nopkg.fn", "acquisition._target_=nopkg.fn: cannot import nopkg.fn"),
    ("model._target_=torch.nn.Linear", "model._target_=torch.nn.Linear: building it failed"),
    ("budget=100000", "budget (100000) is larger than the pool"),
    ("dataset.split=nosuchsplit", "error: EMNIST"),
    (
        "dataset.train_subset_per_class=500",
        "dataset.train_subset_per_class=500 but class 0 has only 100 train items (allowed: 1 to 100, or null for all)",
    ),
]


@pytest.mark.parametrize("override, message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_values_and_names(root, tmp_path, override, message):
    out = tmp_path / "run"
    extra = (
        ["acquisition=power_bald"] if override.startswith(("acquisition.stochastic", "acquisition.coldness")) else []
    ) + (["acquisition=epig"] if override.startswith("acquisition.target") else [])
    line = _one_error_line(run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}", *extra, override)))
    assert message in line
    assert not (out / "rounds.csv").exists()


def test_missing_data(tmp_path):
    line = _one_error_line(run(tiny(tmp_path / "empty", "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'r'}")))
    assert str(tmp_path / "empty") in line and "emnist-tiny" in line


def test_corrupt_data_file(root, tmp_path):
    data = tmp_path / "data"
    write_emnist_split(data, "tiny", n_train=400, n_test=60, num_classes=4)
    images = next((data / "EMNIST" / "raw").glob("*train-images*"))
    images.write_bytes(images.read_bytes()[:300])  # truncated download
    line = _one_error_line(run(tiny(data, "wandb.mode=disabled", f"hydra.run.dir={tmp_path / 'r'}")))
    assert f"{images} is not a readable gzip file" in line and "provide it again" in line


def _started_run(out, rounds_csv: str = "round,labelled_size\n0,0\n"):
    out.mkdir(parents=True)
    (out / "rounds.csv").write_text(rounds_csv)
    return rounds_csv


def test_damaged_run_json_keeps_the_rounds(root, tmp_path):
    out = tmp_path / "run"
    before = _started_run(out)
    (out / "run.json").write_text("{garbage")
    line = _one_error_line(run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}")))
    assert "run.json is damaged" in line and "delete run.json" in line
    assert (out / "rounds.csv").read_text() == before


def test_damaged_checkpoint_keeps_the_rounds(root, tmp_path):
    out = tmp_path / "run"
    before = _started_run(out)
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a real zip")
    line = _one_error_line(run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}")))
    assert "checkpoint.pt is damaged" in line and "rounds.csv keeps the finished rounds" in line
    assert (out / "rounds.csv").read_text() == before


def test_checkpoint_of_another_config(root, tmp_path):
    out = tmp_path / "run"
    before = _started_run(out)
    record = RoundRecord(0, 0, 0.5, 1.0, 3, [1], [0], [0.1], 0.0, [1, 0, 0, 0], 0.0, 0.0, 0.0, 0.0)
    save_checkpoint(out / "checkpoint.pt", LoopState([1], [2, 3], [1], [record]), "another config")
    line = _one_error_line(run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}")))
    assert "was written by a run with a different config" in line
    assert (out / "rounds.csv").read_text() == before


def test_non_finite_scores_mid_run_keep_the_finished_rounds(root, tmp_path):
    (tmp_path / "nanpkg.py").write_text(NAN_SCORES)
    out = tmp_path / "run"
    proc = run(
        tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}", "acquisition._target_=nanpkg.nan_later"),
        env_extra={"PYTHONPATH": str(tmp_path)},
    )
    line = _one_error_line(proc)
    assert line.startswith("error: round 1: acquisition failed: nanpkg.nan_later returned NaN or infinite scores")
    assert pd.read_csv(out / "rounds.csv")["round"].tolist() == [0]  # round 0 is kept
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "log_probs, message",
    [
        (torch.full((4, 2, 3), math.nan), "contains NaN or infinite values"),
        (torch.randn(4, 2, 3), "is not normalised"),  # logits, not log-probabilities
        (torch.zeros(4, 3), "must have 3 dimensions [N, K, C]"),
    ],
)
def test_bad_log_probs_in_the_library(log_probs, message):
    with pytest.raises(ValueError) as err:
        select("bald", log_probs, 2)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_crashing_wandb_is_a_warning_and_the_run_finishes(root, tmp_path):
    out = tmp_path / "run"
    env = {"WANDB_INIT_TIMEOUT": "5", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40}
    proc = run(tiny(root, "wandb.mode=online", f"hydra.run.dir={out}"), env_extra=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "UserWarning: wandb could not start" in proc.stderr and "continuing without it" in proc.stderr
    assert len(pd.read_csv(out / "rounds.csv")) == 3
