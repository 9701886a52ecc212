"""`make device-check` on the CPU (DEVICE_CHECK_CPU=1, a generated dataset) and `make device-import` of its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fakedata import write_emnist_split

REPO = Path(__file__).resolve().parents[1]
TINY = (
    "dataset=emnist model=emnist_cnn dataset.split=tiny dataset.validation_size=20 dataset.test_subset=null "
    "dataset.train_subset_per_class=null acquisition.num_samples=64 acquisition.batch_size=3 budget=6 mc_samples=3 "
    "train.epoch_samples=256 train.max_epochs=3"
)
RUN = Path("quick/rmnist_batchbald/seed1")


def device_check(tmp: Path, out: Path, runs: Path) -> str:
    env = {
        **os.environ,
        "DEVICE_CHECK_CPU": "1",
        "DEVICE_CHECK_SECONDS": "300",
        "DEVICE_CHECK_RUNS": str(runs),
        "DEVICE_CHECK_EXTRA": TINY,
        "DATA": str(tmp / "data"),
        "OUT": str(out),
        "PYTHON": sys.executable,
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/device_check.sh")], env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def import_files(source: Path, tmp: Path) -> subprocess.CompletedProcess:
    args = [str(source), "--results", str(tmp / "results"), "--resume", str(tmp / "resume")]
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/device_import.py"), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("device")
    write_emnist_split(tmp / "data", "tiny")
    log = device_check(tmp, tmp / "out1", tmp / "runs")
    return tmp, log


def test_the_check_runs_every_step_and_sends_back_few_files(checked):
    tmp, log = checked
    out = tmp / "out1"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["bench.log", "benchmark-loop.md", "cuda-tests.log", "device-check.log", "env.txt", "runs.tar.gz"]
    )
    assert len(names) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # the device tool's limits
    steps = [line.split(" (")[0][3:] for line in log.splitlines() if line.startswith("== ")]
    steps = [s.split(":")[0] for s in steps if not s.startswith("installing")]  # wheels: only where .whl/ exists
    assert steps == ["environment", "cuda tests", "scoring benchmark", "quick-profile runs", "done"]
    assert "quick/rmnist_batchbald/seed1: finished, 3 rounds" in log
    assert "SMOKE RUN" in (out / "benchmark-loop.md").read_text()
    with tarfile.open(out / "runs.tar.gz") as tar:
        members = {Path(m.name).relative_to(".") for m in tar.getmembers() if m.isfile()}
    assert {RUN / "rounds.csv", RUN / "run.json", RUN / "checkpoint.pt"} <= members


def test_import_places_runs_checkpoints_and_logs_and_keeps_other_runs(checked):
    tmp, _ = checked
    first = import_files(tmp / "out1", tmp)
    assert first.returncode == 0, first.stdout + first.stderr
    placed = tmp / "results" / "runs" / RUN
    assert (placed / "rounds.csv").read_text() == (tmp / "runs" / RUN / "rounds.csv").read_text()
    assert not (placed / "checkpoint.pt").exists() and (tmp / "resume" / RUN / "checkpoint.pt").exists()
    assert len(list((tmp / "results" / "benchmarks").glob("device_check_*.md"))) == 1
    assert [p.name for p in (tmp / "results" / "device").iterdir()] and "checkpoints:" in first.stdout

    # another run of that seed already in results (a committed CPU run, say) is never overwritten
    meta = json.loads((placed / "run.json").read_text())
    (placed / "run.json").write_text(json.dumps({**meta, "device": "cuda", "start_time": "2026-01-01T00:00:00"}))
    (placed / "rounds.csv").write_text("committed\n")
    again = import_files(tmp / "out1", tmp)
    assert again.returncode == 0 and f"kept {placed}" in again.stdout
    assert (placed / "rounds.csv").read_text() == "committed\n"


def test_a_second_check_carrying_the_imported_runs_continues_them(checked):
    tmp, _ = checked
    if not (tmp / "resume" / RUN).exists():
        import_files(tmp / "out1", tmp)
    before = (tmp / "resume" / RUN / "rounds.csv").read_text()
    log = device_check(tmp, tmp / "out2", tmp / "resume")
    assert "quick/rmnist_batchbald/seed1: finished, 3 rounds" in log
    assert (tmp / "resume" / RUN / "rounds.csv").read_text() == before  # finished rounds are not redone


def test_import_refuses_a_folder_without_device_check_files(tmp_path):
    proc = import_files(tmp_path, tmp_path)
    assert proc.returncode == 2 and proc.stdout.startswith("error: no device-check files in")
    assert "Traceback" not in proc.stdout + proc.stderr
