"""`experiments/run.py` through Hydra, as users run it: single runs, resume, sweeps, wandb, bad values."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
COLUMNS = [
    "round",
    "labelled_size",
    "test_accuracy",
    "test_nll",
    "epochs",
    "acquired_indices",
    "acquired_labels",
    "acquisition_scores",
    "label_entropy",
    "class_counts",
    "train_seconds",
    "score_seconds",
    "select_seconds",
    "eval_seconds",
    "test_nll_per_mask",
]


def tiny(root: Path, *extra: str) -> list[str]:
    return [
        "dataset=emnist",
        "model=emnist_cnn",
        "dataset.split=tiny",
        f"dataset.root={root}",
        "dataset.validation_size=20",
        "dataset.test_subset=null",
        "acquisition=batchbald",
        "acquisition.batch_size=3",
        "acquisition.num_samples=64",
        "budget=6",
        "mc_samples=3",
        "train.epoch_samples=256",
        "train.max_epochs=3",
        "threads=1",
        "progress=false",
        "device=cpu",
        *extra,
    ]


def run(args: list[str], env_extra: dict | None = None, cwd: Path = REPO, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "experiments" / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def wandb_records(path: Path) -> list[dict]:
    """The records of a .wandb log, read back with wandb's own reader (`wandb leet inspect --json`)."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def without_times(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=[c for c in COLUMNS if c.endswith("seconds")])


def test_single_run_writes_results_and_wandb(root, tmp_path):
    out = tmp_path / "run"
    proc = run(tiny(root, f"hydra.run.dir={out}", "wandb.mode=offline"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(out / "rounds.csv")
    assert list(df.columns) == COLUMNS
    assert df["labelled_size"].tolist() == [0, 3, 6]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "finished" and meta["seed"] == 0 and meta["torch_version"]
    assert meta["config"]["dataset"]["split"] == "tiny" and meta["git_commit"] and meta["end_time"]
    assert meta["device"] == "cpu" and meta["elapsed_seconds"] > 0
    numerics = meta["numerics"]
    assert numerics["cpu_capability"] and numerics["threads"] == 1 and numerics["mkl_cbwr"]
    assert numerics["cpu_isa_setting"] == "avx2" and numerics["torch"] == meta["torch_version"]
    assert "round 2: labelled 6" in proc.stdout + proc.stderr
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    records = wandb_records(runs[0])
    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    assert {"glob_name": "*", "step_metric": "labelled_size"}.items() <= {**metrics[-1]}.items()
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["_step"] for h in history] == [0, 1, 2]  # one record per round, no duplicate
    assert [h["labelled_size"] for h in history] == [0, 3, 6]
    assert [round(h["test_accuracy"], 6) for h in history] == [round(a, 6) for a in df["test_accuracy"]]
    assert history[-1]["class_histogram.values"] == json.loads(df["class_counts"].iloc[-1])
    run_record = next(r["run"] for r in records if r["type"] == "run")
    assert run_record["display_name"] == "default-seed0" and run_record["run_group"] == "default"
    flat = run_record["config"]["update"]
    assert (flat["acquisition"], flat["K"], flat["M"], flat["batch_size"], flat["seed"]) == ("batchbald", 3, 64, 3, 0)

    again = run(tiny(root, f"hydra.run.dir={out}", "wandb.mode=offline"))
    assert again.returncode == 0 and "already finished" in again.stdout


def test_mc_scored_labelled_stopping_from_the_command_line(root, tmp_path):
    out = tmp_path / "run"
    extra = ("train.validation_set=labelled", "train.validation_samples=3", "wandb.mode=disabled")
    proc = run(tiny(root, f"hydra.run.dir={out}", *extra))
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["train"]["validation_samples"] == 3
    assert pd.read_csv(out / "rounds.csv")["labelled_size"].tolist() == [0, 3, 6]


@pytest.mark.parametrize("from_committed_files", [False, True], ids=["checkpoint", "rounds_csv"])
def test_killed_run_resumes_and_matches_an_uninterrupted_one(root, tmp_path, from_committed_files):
    """Resumed from its checkpoint, or on a "fresh clone" that has only the committed rounds.csv and run.json (and
    the data elsewhere): the rounds are identical to the uninterrupted run's."""
    args = tiny(root, "budget=27", "wandb.mode=disabled")
    full = run(args + [f"hydra.run.dir={tmp_path / 'full'}"])
    assert full.returncode == 0, full.stderr[-2000:]

    out = tmp_path / "killed"
    env = {**os.environ, "WANDB_SILENT": "true"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "experiments" / "run.py"), *args, f"hydra.run.dir={out}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "rounds.csv").exists() and len(pd.read_csv(out / "rounds.csv")) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(pd.read_csv(out / "rounds.csv")) < 10, "the run finished before it could be killed"
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    killed = pd.read_csv(out / "rounds.csv")
    if from_committed_files:
        fresh, data = tmp_path / "fresh", tmp_path / "data_elsewhere"
        fresh.mkdir()
        for name in ("rounds.csv", "run.json"):
            shutil.copy(out / name, fresh / name)
        shutil.copytree(root, data)
        out, args = fresh, [a if not a.startswith("dataset.root=") else f"dataset.root={data}" for a in args]

    resumed = run(args + [f"hydra.run.dir={out}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pd.testing.assert_frame_equal(without_times(out / "rounds.csv"), without_times(tmp_path / "full" / "rounds.csv"))
    assert json.loads((out / "run.json").read_text())["resumed_at"]
    # resumed, not rerun: the killed session's rounds keep their own timings
    resumed_rows = pd.read_csv(out / "rounds.csv").head(len(killed))
    assert resumed_rows["train_seconds"].tolist() == killed["train_seconds"].tolist()


def test_committed_rounds_that_do_not_fit_stop_with_one_line(root, tmp_path):
    """A run stopped after 2 rounds, resumed from rounds.csv + run.json alone: rows another config, seed or torch
    wrote, or rows edited by hand, stop before any training with one line; rounds.csv stays as it was."""
    done = tmp_path / "done"
    assert run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={done}")).returncode == 0
    meta = json.loads((done / "run.json").read_text())
    rows = pd.read_csv(done / "rounds.csv", dtype=str, keep_default_na=False).head(2)  # the text as written

    def stopped_run(name, edit_rows=None, edit_meta=None):
        out = tmp_path / name
        out.mkdir()
        frame = rows.copy()
        if edit_rows:
            edit_rows(frame)
        frame.to_csv(out / "rounds.csv", index=False)
        (out / "run.json").write_text(json.dumps({**meta, "status": "running", **(edit_meta or {})}))
        return out

    def swap_labels(f):
        f.loc[1, "acquired_labels"] = json.dumps([(v + 1) % 4 for v in json.loads(f.loc[1, "acquired_labels"])])

    cases = {
        "other_seed": (stopped_run("other_seed"), ["seed=1"], "written by a run with a different config"),
        "other_torch": (
            stopped_run("other_torch", edit_meta={"numerics": {**meta["numerics"], "torch": "2.0.0"}}),
            [],
            "was written with torch=2.0.0 but this run has torch=",
        ),
        "index_not_in_pool": (
            stopped_run("index_not_in_pool", lambda f: f.__setitem__("acquired_indices", ["[999999, 1, 2]"] * 2)),
            [],
            "rounds.csv row 0: index 999999 is not in this seed's pool",
        ),
        "labels_edited": (stopped_run("labels_edited", swap_labels), [], "rounds.csv row 1: acquired_labels differ"),
    }
    for name, (out, extra, message) in cases.items():
        before = (out / "rounds.csv").read_text()
        proc = run(tiny(root, "wandb.mode=disabled", f"hydra.run.dir={out}", *extra))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (name, proc.stderr[-1500:])
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (name, proc.stderr)
        assert (out / "rounds.csv").read_text() == before, name
        assert not (out / "checkpoint.pt").exists(), name  # stopped before any round was trained


def test_killed_and_resumed_run_continues_its_wandb_history(root, tmp_path):
    """Kill a run with offline wandb mid-run and resume it: one wandb run id, history steps in order, none twice,
    and together they hold every round of rounds.csv (a round is checkpointed before it is logged)."""
    out = tmp_path / "killed"
    args = tiny(root, "budget=27", "wandb.mode=offline", f"hydra.run.dir={out}")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "experiments" / "run.py"), *args],
        cwd=REPO,
        env={**os.environ, "WANDB_SILENT": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "rounds.csv").exists() and len(pd.read_csv(out / "rounds.csv")) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(pd.read_csv(out / "rounds.csv"))
    assert killed_at < 10, "the run finished before it could be killed"
    resumed = run(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logs = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    run_id = (out / "wandb_id.txt").read_text().strip()
    assert len(logs) == 2 and all(log.name == f"run-{run_id}.wandb" for log in logs)  # one run, two sessions
    rounds = pd.read_csv(out / "rounds.csv").set_index("round")
    for i, log in enumerate(logs):
        history = [r["history"]["item"] for r in wandb_records(log) if r["type"] == "history"]
        steps = [h["_step"] for h in history]
        assert steps == sorted(set(steps)), steps  # in order, no step twice
        assert [h["labelled_size"] for h in history] == rounds.loc[steps, "labelled_size"].tolist()
        assert [round(h["test_accuracy"], 6) for h in history] == [
            round(a, 6) for a in rounds.loc[steps, "test_accuracy"]
        ]
        if i == len(logs) - 1:  # the resumed session holds every round, those of the killed session included
            assert steps == list(rounds.index), steps


def test_damaged_checkpoint_is_one_line_and_keeps_the_rounds(root, tmp_path):
    out = tmp_path / "damaged"
    args = tiny(root, "budget=27", "wandb.mode=disabled", f"hydra.run.dir={out}")
    env = {**os.environ, "WANDB_SILENT": "true"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "experiments" / "run.py"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "rounds.csv").exists() and len(pd.read_csv(out / "rounds.csv")) >= 2):
        time.sleep(0.02)
    # a second process on the same directory stops at once, naming the first
    second = run(args)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"is in use by pid {proc.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rounds_before = (out / "rounds.csv").read_text()
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # truncated, as by a full disk
    damaged = run(args)
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr
    assert "checkpoint.pt is damaged" in damaged.stderr and "delete the checkpoint" in damaged.stderr
    assert len(damaged.stderr.strip().splitlines()) == 1
    assert (out / "rounds.csv").read_text() == rounds_before  # no finished round lost


@pytest.mark.parametrize("launcher", ["local", "submitit_local"])
def test_multirun_sweeps(root, tmp_path, launcher):
    sweep = tmp_path / launcher
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "local" else []
    proc = run(
        [
            "-m",
            *tiny(
                root,
                "seed=1,2",
                "wandb.mode=disabled",
                f"hydra/launcher={launcher}",
                f"hydra.sweep.dir={sweep}",
                "hydra.sweep.subdir=seed${seed}",
            ),
            *extra,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (pd.read_csv(sweep / f"seed{s}" / "rounds.csv") for s in (1, 2))
    assert len(a) == len(b) == 3
    assert a["acquired_indices"].tolist() != b["acquired_indices"].tolist()


@pytest.mark.parametrize(
    "override, message",
    [
        ("budget=0", "error: budget must be an integer >= 1, got 0"),
        ("acquisition.batch_size=0", "error: acquisition.batch_size must be an integer >= 1"),
        ("budget=100000", "error: budget (100000) is larger than the pool"),
        ("dataset.split=nosuchsplit", "error: EMNIST"),
    ],
)
def test_bad_values_stop_before_work_with_one_line(root, tmp_path, override, message):
    proc = run(tiny(root, f"hydra.run.dir={tmp_path / 'x'}", "wandb.mode=disabled", override))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "rounds.csv").exists()


def test_unknown_group_option_is_one_line(root, tmp_path):
    proc = run(tiny(root, f"hydra.run.dir={tmp_path / 'x'}", "acquisition=no_such_method"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    options = sorted(p.stem for p in (REPO / "configs" / "acquisition").glob("*.yaml"))
    assert {"bald", "batchbald", "margin", "least_confidence"} <= set(options)
    assert proc.stderr.strip().splitlines() == [
        "error: acquisition=no_such_method is not a config in configs/acquisition/; choose one of " + ", ".join(options)
    ]


def test_missing_data_is_one_clear_message(tmp_path):
    proc = run(
        tiny(tmp_path / "empty", f"hydra.run.dir={tmp_path / 'x'}", "wandb.mode=disabled", "dataset.split=balanced")
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "emnist-balanced" in proc.stderr and str(tmp_path / "empty") in proc.stderr


@pytest.mark.parametrize(
    "argv, first_groups, has_table1",
    [
        (["--profile", "paper"], "experiment=emnist_batchbald,emnist_bald,emnist_random,mnist_bald_b1,", True),
        (["--profile", "quick"], "experiment=emnist_batchbald,", False),
        (
            ["--profile", "quick", "--table1"],
            "experiment=emnist_batchbald,emnist_bald,emnist_random,",
            True,
        ),
        (["--profile", "paper", "--no-table1"], "experiment=emnist_batchbald,", False),
    ],
)
def test_reproduce_runs_table1_groups_by_profile(argv, first_groups, has_table1):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/reproduce.py"), *argv, "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    sweeps = _dry_run_sweeps(out)
    first = next(part for part in out.split() if part.startswith("experiment="))
    assert first.startswith(first_groups)
    experiments = {e for _, exps in sweeps for e in exps}
    assert ("mnist_bald_b1" in experiments) == has_table1
    assert "rmnist_random" in experiments  # the figure groups are always there (configs/figures.yaml)
    assert not any("power_bald" in e for e in experiments)  # beyond the paper: only with --beyond
    seeds_of = {e: seeds for seeds, exps in sweeps for e in exps}
    assert sum(len(exps) for _, exps in sweeps) == len(seeds_of)  # every experiment in one sweep only
    if "paper" in argv:
        assert len(sweeps) == 1 and len(sweeps[0][0]) == 6  # the paper's 6 seeds everywhere
    else:  # the quick profile's 3 seeds, and 6 where its paired verdicts compare
        assert seeds_of["rmnist_random"] == [1, 2, 3] and seeds_of["rmnist_rep1_bald"] == [1, 2, 3]
        for e in ("rmnist_batchbald", "rmnist_rep2_bald", "rmnist_rep0_bald", "rmnist_rep4_bald", "emnist_bald"):
            assert seeds_of[e] == [1, 2, 3, 4, 5, 6]
        if has_table1:
            assert seeds_of["mnist_bald_b10"] == [1, 2, 3, 4, 5, 6] and seeds_of["mnist_bald_b1"] == [1, 2, 3]


def _dry_run_sweeps(out: str) -> list[tuple[list[int], list[str]]]:
    """(seeds, experiments) of each Hydra multirun that `reproduce.py --dry-run` printed."""
    sweeps = []
    for line in out.splitlines():
        parts = line.split()
        exps = [p for p in parts if p.startswith("experiment=")]
        if exps:
            seeds = next(p for p in parts if p.startswith("seed=")).removeprefix("seed=").split(",")
            sweeps.append(([int(x) for x in seeds], exps[0].removeprefix("experiment=").split(",")))
    return sweeps


def test_reproduce_seeds_on_the_command_line_apply_to_every_experiment():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/reproduce.py"), "--profile", "quick", "--seeds", "7", "8", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    sweeps = _dry_run_sweeps(out)
    assert len(sweeps) == 1 and sweeps[0][0] == [7, 8] and "emnist_bald" in sweeps[0][1]


def test_quick_profile_gives_every_verdict_pair_enough_seeds(tmp_path):
    """Each experiment a paired verdict compares gets >= MIN_PAIRS seeds from the quick profile."""
    from batchbald.analysis import checks

    sys.path.insert(0, str(REPO / "scripts"))
    from omegaconf import OmegaConf
    from reproduce import seed_plan

    profile = OmegaConf.load(REPO / "configs" / "profile" / "quick.yaml")
    compared = [
        "rmnist_batchbald", "rmnist_rep2_bald", "rmnist_rep0_bald", "rmnist_rep4_bald", "emnist_batchbald",
        "emnist_bald", "mnist_batchbald_b10", "mnist_bald_b10", "rmnist_power_bald", "emnist_power_bald",
        "rmnist_epig", "rmnist_badge", "rmnist_coreset", "rmnist_margin", "rmnist_var_ratios", "emnist_epig",
        "emnist_badge", "emnist_coreset", "emnist_margin", "emnist_least_confidence",
    ]  # fmt: skip
    plan = seed_plan(compared + ["rmnist_mean_std"], profile, None)
    seeds_of = {e: seeds for seeds, exps in plan for e in exps}
    assert all(len(seeds_of[e]) >= checks.MIN_PAIRS for e in compared)
    assert len(seeds_of["rmnist_mean_std"]) == 3
    bad = OmegaConf.create({"name": "x", "seeds": [1], "seeds_by_experiment": {"no_such_experiment": [1, 2]}})
    with pytest.raises(SystemExit, match="seeds_by_experiment names no experiment: no_such_experiment"):
        seed_plan(["rmnist_random"], bad, None)


def test_reproduce_beyond_adds_the_powerbald_groups():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/reproduce.py"), "--profile", "quick", "--beyond", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    experiments = next(part for part in out.split() if part.startswith("experiment=")).split("=")[1].split(",")
    assert {"emnist_power_bald", "rmnist_power_bald", "rmnist_batchbald"} <= set(experiments)
    assert len(experiments) == len(set(experiments))  # shared members run once


def test_reproduce_without_a_profile_picks_by_hardware():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/reproduce.py"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    import torch

    if torch.cuda.is_available():
        assert out.startswith("profile: paper (") and "profile=paper" in out
    else:
        assert out.startswith("profile: quick (no usable CUDA GPU") and "profile=quick" in out
        assert "hydra.launcher.n_jobs=2" in out
