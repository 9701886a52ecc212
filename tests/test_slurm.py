"""Sweeps on a real SLURM cluster (scripts/slurm_cluster.sh start): the submitit launcher gives the same runs as
local ones, and a job requeued mid-run (`scontrol requeue`, as on preemption) resumes to the same result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.test_driver import REPO, run, tiny, without_times


def _cluster_state() -> str | None:
    """None when a SLURM cluster takes jobs here, else why not."""
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch not found): run scripts/slurm_cluster.sh start"
    status = subprocess.run([str(REPO / "scripts" / "slurm_cluster.sh"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        return "the SLURM cluster is not running: scripts/slurm_cluster.sh start"
    return None


_WHY_NOT = _cluster_state()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))]

SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=cpu",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20",
]


def test_multirun_on_slurm_equals_local_runs(root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run(
        [
            "-m",
            *tiny(root, "wandb.mode=disabled", "seed=0,1"),
            *SLURM,
            f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=seed${seed}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in sweep.glob("seed*")) == ["seed0", "seed1"]
    assert list(sweep.glob(".submitit/*/*_submitted.pkl")), "the runs did not go through SLURM"
    for seed in (0, 1):
        local = tmp_path / f"local{seed}"
        proc = run(tiny(root, "wandb.mode=disabled", f"seed={seed}", f"hydra.run.dir={local}"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        on_slurm = sweep / f"seed{seed}"
        assert json.loads((on_slurm / "run.json").read_text())["status"] == "finished"
        pd.testing.assert_frame_equal(without_times(on_slurm / "rounds.csv"), without_times(local / "rounds.csv"))


def _job_ids() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-u", os.environ.get("USER", "root"), "-o", "%i"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_requeued_job_resumes_to_the_uninterrupted_result(root, tmp_path):
    """`scontrol requeue` kills the running job and queues it again; the rerun resumes from the checkpoint."""
    args = tiny(root, "wandb.mode=disabled", "budget=24", "seed=3", "train.epoch_samples=2048")  # ~1 s per round
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    before = set(_job_ids())
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "experiments" / "run.py"),
            "-m",
            *args,
            *SLURM,
            f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=run",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = sweep / "run" / "rounds.csv"
    deadline = time.time() + 240
    while time.time() < deadline and not (rounds.exists() and len(pd.read_csv(rounds)) >= 2):
        time.sleep(0.2)
    assert rounds.exists(), "the job never wrote a round"
    done_before = len(pd.read_csv(rounds))
    jobs = [j for j in _job_ids() if j not in before]
    assert len(jobs) == 1, jobs
    subprocess.run(["scontrol", "requeue", jobs[0]], check=True, timeout=60)
    # SLURM holds a requeued job back for a few minutes (Reason=BeginTime); let it start again at once
    for _ in range(600):  # it first completes (srun waits up to KillWait for the step), then pends
        state = subprocess.run(["squeue", "-h", "-j", jobs[0], "-o", "%T"], capture_output=True, text=True).stdout
        if "PENDING" in state:
            subprocess.run(["scontrol", "update", f"jobid={jobs[0]}", "StartTime=now"], check=True, timeout=60)
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    meta = json.loads((sweep / "run" / "run.json").read_text())
    assert meta["status"] == "finished" and meta.get("resumed_at"), "the requeued job did not resume"
    assert done_before < 9  # it was interrupted before the end (9 rounds in all)
    local = tmp_path / "local"
    proc = run([*args, f"hydra.run.dir={local}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    pd.testing.assert_frame_equal(without_times(rounds), without_times(local / "rounds.csv"))
