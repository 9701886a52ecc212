"""What a run records: rounds.csv and run.json in its output directory, and the same metrics to wandb."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
import uuid
import warnings
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from batchbald import numerics
from batchbald.loop import RoundRecord

LIST_COLUMNS = ("acquired_indices", "acquired_labels", "acquisition_scores", "class_counts")


class LoadMeter:
    """Average number of cores busy with *other* processes during a measurement (/proc/stat minus our own CPU)."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self):
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return (sum(values[:8]) - idle) / self.tick

    def __enter__(self):
        times = os.times()
        self.start = (time.perf_counter(), self._busy(), times.user + times.system)
        return self

    def __exit__(self, *exc):
        times = os.times()
        wall, busy, own = time.perf_counter(), self._busy(), times.user + times.system
        if busy is None or self.start[1] is None:
            self.foreign = float("nan")
        else:
            self.foreign = max(0.0, ((busy - self.start[1]) - (own - self.start[2])) / max(wall - self.start[0], 1e-9))
        return False


def git_commit(repo: Path) -> str:
    """HEAD's hash, "+dirty" when tracked code or configs differ from it.

    results/ (data) and Markdown files (docs, such as a README edited while a sweep runs) do not count.
    """
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)results",
                ":(exclude,glob)**/*.md",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def rounds_frame(records: list[RoundRecord]) -> pd.DataFrame:
    df = pd.DataFrame([asdict(r) for r in records])
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = df[col].map(json.dumps)
    return df


def read_rounds(path: Path) -> list[RoundRecord]:
    """The rows of a rounds.csv as RoundRecords, numbers exactly as written (parsed from their text by Python); rows
    from before test_nll_per_mask existed get NaN there."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    names = {f.name: f.type for f in fields(RoundRecord)}
    missing = [n for n in names if n not in df and n != "test_nll_per_mask"]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
    records = []
    for row in df.to_dict("records"):
        values = {}
        for name, kind in names.items():
            text = row.get(name, "")
            if name in LIST_COLUMNS:
                values[name] = json.loads(text) if text else []
            else:
                values[name] = int(text) if kind == "int" else float(text) if text else math.nan
        records.append(RoundRecord(**values))
    return records


class RunRecorder:
    """Writes rounds.csv / run.json after every round and mirrors the metrics to wandb (never fatal)."""

    def __init__(
        self, out_dir: Path, config: dict, *, device: torch.device, repo: Path, wandb_cfg: dict, classes: list[str]
    ):
        self.out_dir = out_dir
        self.classes = classes
        self.run_json = out_dir / "run.json"
        previous = json.loads(self.run_json.read_text()) if self.run_json.exists() else {}
        self._t0 = time.perf_counter()
        self._elapsed_before = float(previous.get("elapsed_seconds", 0.0)) if previous else 0.0
        self.meta = {
            "experiment": config.get("experiment_name"),
            "group": wandb_cfg.get("group"),
            "seed": config.get("seed"),
            "config": config,
            "git_commit": git_commit(repo),
            "torch_version": torch.__version__,
            "device": str(device),
            "hardware": hardware(device),
            "numerics": numerics.record(device),
            "start_time": previous.get("start_time", _now()),
            "resumed_at": previous.get("resumed_at", []) + ([_now()] if previous else []),
            "end_time": None,
            "elapsed_seconds": self._elapsed_before,
            "status": "running",
        }
        write_json_atomic(self.run_json, self.meta)
        self._wandb = _start_wandb(out_dir, config, wandb_cfg)
        self._wandb_last_round = -1  # rounds up to this one went to wandb in this process

    def log_round(self, records: list[RoundRecord], *, to_wandb: bool = True) -> None:
        tmp = self.out_dir / "rounds.csv.tmp"
        rounds_frame(records).to_csv(tmp, index=False)
        os.replace(tmp, self.out_dir / "rounds.csv")
        self.meta["elapsed_seconds"] = self._elapsed_before + time.perf_counter() - self._t0
        write_json_atomic(self.run_json, self.meta)
        if to_wandb:
            # every round this process has not logged yet: after a resume that includes the rounds of the killed
            # session, whose wandb writer may not have flushed them (wandb keeps one record per step)
            for record in records:
                if record.round > self._wandb_last_round and self._wandb is not None:
                    self._wandb_log(record)
                    self._wandb_last_round = record.round

    def finish(self, status: str) -> None:
        self.meta.update(
            status=status, end_time=_now(), elapsed_seconds=self._elapsed_before + time.perf_counter() - self._t0
        )
        write_json_atomic(self.run_json, self.meta)
        if self._wandb is not None:
            try:
                self._wandb.finish(exit_code=0 if status == "finished" else 1)
            except Exception as e:  # noqa: BLE001 - wandb must never stop a run
                warnings.warn(f"wandb finish failed: {e}")

    def _wandb_log(self, r: RoundRecord) -> None:
        try:
            import numpy as np
            import wandb

            counts = np.asarray(r.class_counts)
            table = wandb.Table(data=[[c, int(n)] for c, n in zip(self.classes, counts)], columns=["class", "count"])
            self._wandb.log(
                {
                    "labelled_size": r.labelled_size,
                    "test_accuracy": r.test_accuracy,
                    "test_nll": r.test_nll,
                    "test_nll_per_mask": r.test_nll_per_mask,
                    "epochs": r.epochs,
                    "label_entropy": r.label_entropy,
                    "acquired": int(counts.sum()),
                    "train_seconds": r.train_seconds,
                    "score_seconds": r.score_seconds,
                    "select_seconds": r.select_seconds,
                    "eval_seconds": r.eval_seconds,
                    "class_histogram": wandb.Histogram(np_histogram=(counts, np.arange(len(counts) + 1))),
                    "class_counts": wandb.plot.bar(table, "class", "count", title="Acquired labels per class"),
                },
                step=r.round,
            )
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"wandb logging failed, continuing without it: {e}")
            self._wandb = None


def flat_config(config: dict) -> dict:
    """The keys one filters and groups runs by in a dashboard, flat."""
    acq, ds, train = config.get("acquisition", {}), config.get("dataset", {}), config.get("train", {})
    return {
        "experiment": config.get("experiment_name"),
        "seed": config.get("seed"),
        "profile": (config.get("profile") or {}).get("name"),
        "dataset": ds.get("name"),
        "repetitions": ds.get("repetitions"),
        "split": ds.get("split"),
        "acquisition": acq.get("name"),
        "stochastic": acq.get("stochastic"),
        "coldness": acq.get("coldness"),
        "batch_size": acq.get("batch_size"),
        "K": config.get("mc_samples"),
        "M": acq.get("num_samples"),
        "budget": config.get("budget"),
        "validation_set": train.get("validation_set"),
        "model": (config.get("model") or {}).get("name"),
    }


def _start_wandb(out_dir: Path, config: dict, wandb_cfg: dict):
    mode = wandb_cfg.get("mode", "offline")
    if mode == "disabled":
        return None
    try:
        import wandb

        run_id_file = out_dir / "wandb_id.txt"
        run_id = run_id_file.read_text().strip() if run_id_file.exists() else uuid.uuid4().hex[:12]
        run_id_file.write_text(run_id)
        run = wandb.init(
            project=wandb_cfg.get("project"),
            group=wandb_cfg.get("group"),
            tags=list(wandb_cfg.get("tags") or []),
            name=f"{config.get('experiment_name')}-seed{config.get('seed')}",
            config={**flat_config(config), "full": config},
            dir=str(out_dir),
            mode=mode,
            id=run_id,
            resume="allow",
            settings=wandb.Settings(console="off", silent=True),
        )
        # curves against the labelled-set size, as the paper's figures
        run.define_metric("labelled_size")
        run.define_metric("*", step_metric="labelled_size")
        return run
    except Exception as e:  # noqa: BLE001 - a wandb failure never stops a run
        warnings.warn(f"wandb could not start ({' '.join(str(e).split())}); continuing without it")
        return None
