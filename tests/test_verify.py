"""`make verify`: the first rounds of a committed run, rerun from its run.json, come out identical."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from batchbald.data import find_shared_data, prepare_from
from scripts import verify

COMMITTED = verify.DEFAULT_RUN  # results/runs/quick/rmnist_batchbald/seed1


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    if find_shared_data() is None:
        pytest.skip("needs the real MNIST files from the shared data folder")
    root = tmp_path_factory.mktemp("data")
    prepare_from(find_shared_data(), root, symlink=True)
    return root


def test_committed_run_reproduces(data_root, capsys):
    assert verify.main(["--rounds", "2", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "round 0: identical" in out and "round 1: identical" in out


def test_a_changed_result_is_reported(data_root, tmp_path, capsys):
    run = tmp_path / "seed1"
    shutil.copytree(COMMITTED, run)
    rounds = pd.read_csv(run / "rounds.csv")
    rounds.loc[0, "test_accuracy"] += 0.001
    rounds.to_csv(run / "rounds.csv", index=False)
    assert verify.main(["--run", str(run), "--rounds", "1", "--data-root", str(data_root)]) == 1
    assert "round 0: DIFFERENT in test_accuracy" in capsys.readouterr().out


def test_unusable_runs_stop_with_one_line(tmp_path, capsys):
    assert verify.main(["--run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} is not a readable run")
    run = tmp_path / "custom"
    shutil.copytree(COMMITTED, run)
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["mc_samples"] = 7  # not what experiment=rmnist_batchbald gives
    (run / "run.json").write_text(json.dumps(meta))
    assert verify.main(["--run", str(run), "--rounds", "1", "--data-root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err  # found before any rerun: no data was needed
    assert err.strip() == "error: the run's config is not its experiment's defaults; differing keys: mc_samples"
