"""One active-learning run: `python experiments/run.py [overrides]`; sweeps with `-m`.

Re-running the same command in the same output directory resumes after the last finished round.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.append(os.getcwd())  # `_target_`s of your own modules: installed, on PYTHONPATH, or in the current directory
# Before torch loads: kernels pinned to the AVX2 baseline (same numbers on any x86-64 machine with AVX2; opt out with
# BATCHBALD_CPU_ISA=native), bitwise-stable MKL, cuBLAS's deterministic workspace. See batchbald/numerics.py.
from batchbald.numerics import pin_cpu_isa  # noqa: E402  (imports no torch)

pin_cpu_isa()

from batchbald.config import ConfigError, check_sizes, target_settings, validate_config  # noqa: E402
from batchbald.data import DataError, load_dataset, make_splits  # noqa: E402
from batchbald.data.factory import FactoryError  # noqa: E402

IGNORED_FOR_RESUME = ("progress", "wandb", "threads", "scoring_batch_size", "device")
DATA_LOCATION_KEYS = ("root", "files")  # where the data lives on this machine: not part of a portable fingerprint


PROFILE_BOOKKEEPING = ("seeds", "seeds_by_experiment")  # which seeds a sweep runs; no run's numerics


def fingerprint(config: dict, *, portable: bool = False) -> str:
    """What must match for a run to resume. `portable` also ignores where the data lives (dataset.root), for a run
    resumed from its committed rounds.csv on another machine."""
    kept = {k: v for k, v in config.items() if k not in IGNORED_FOR_RESUME}
    if portable and isinstance(kept.get("dataset"), dict):
        kept["dataset"] = {k: v for k, v in kept["dataset"].items() if k not in DATA_LOCATION_KEYS}
    if isinstance(kept.get("profile"), dict):
        kept["profile"] = {k: v for k, v in kept["profile"].items() if k not in PROFILE_BOOKKEEPING}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


_LOCKS = []  # open lock files, held until the process exits


def _lock_run_dir(out_dir: Path) -> None:
    """One process per run directory: a second one stops at once instead of racing the first over its files."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    handle = open(out_dir / "run.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"{out_dir} is in use by {holder}; wait for it to finish or use another output directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
    handle.flush()
    _LOCKS.append(handle)


def _read_run_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        return meta
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path} is damaged ({type(e).__name__}: {str(e)[:80]}); rounds.csv keeps the finished rounds: delete "
            "run.json to resume from the checkpoint"
        ) from None


# run.json `numerics` a resumed run must share (gpu: None on CPU)
NUMERICS_FOR_RESUME = ("torch", "cpu_isa_setting", "gpu")


def _committed_rounds(out_dir: Path, config: dict, device, meta: dict | None) -> list | None:
    """The finished rounds of a run whose checkpoint is gone (a fresh clone has only the committed rounds.csv and
    run.json, read as `meta`), checked against this run's config and numerics; None when there is a checkpoint or
    no rounds.csv."""
    from batchbald import numerics
    from batchbald.tracking import read_rounds

    csv = out_dir / "rounds.csv"
    if (out_dir / "checkpoint.pt").exists() or not csv.exists():
        return None
    if meta is None:
        raise ConfigError(
            f"{csv} has no run.json beside it, so its config cannot be checked; restore run.json, or delete "
            "rounds.csv to rerun the run from its start"
        )
    if fingerprint(meta.get("config") or {}, portable=True) != fingerprint(config, portable=True):
        raise ConfigError(
            f"{csv} was written by a run with a different config (see run.json); use another output directory, or "
            "delete rounds.csv and run.json to rerun the run from its start"
        )
    then, now = meta.get("numerics") or {}, numerics.record(device)
    differ = [k for k in NUMERICS_FOR_RESUME if then.get(k) != now.get(k)]
    if differ:
        was, has = (", ".join(f"{k}={n.get(k)}" for k in differ) for n in (then, now))
        raise ConfigError(
            f"{csv} was written with {was} but this run has {has}: resuming would mix their numerics; resume it "
            "where it started, or use another output directory"
        )
    try:
        return read_rounds(csv)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{csv} cannot be read ({type(e).__name__}: {str(e)[:100]}); delete it to rerun") from None


def _check_command_line(argv: list[str]) -> str | None:
    """What is wrong with the command line before Hydra composes it (None if nothing): config group options that do
    not exist and output directories that cannot be created. Hydra's own messages for these are several lines."""
    configs = REPO / "configs"
    for arg in argv:
        key, eq, value = arg.lstrip("+~").partition("=")
        if not eq or "(" in value or "$" in value:  # sweeps like range(...), interpolations: left to Hydra
            continue
        if (configs / key).is_dir() and not key.startswith("hydra"):  # hydra/launcher: plugins add options
            options = sorted(p.stem for p in (configs / key).glob("*.yaml"))
            for option in filter(None, value.split(",")):
                if option != "null" and option not in options:
                    return f"{key}={option} is not a config in configs/{key}/; choose one of {', '.join(options)}"
        if key in ("hydra.run.dir", "hydra.sweep.dir"):
            path = Path(value).absolute()
            existing = next(p for p in (path, *path.parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                return f"{key}={value}: cannot create a directory there ({existing} is not a writable directory)"
    return None


def _job_index() -> int:
    """This job's number in a multirun (0 for a single run): spreads local jobs over the GPUs of a box."""
    try:
        return int(HydraConfig.get().job.num or 0)
    except Exception:  # noqa: BLE001 - a single run has no job number (MissingMandatoryValue)
        return 0


def _plugins(config: dict):
    """The acquisition callable and the model factory their `_target_`s name, the acquisition checked on a small
    case (the model is checked once the data is loaded). One-line ConfigError naming the key and the path."""
    import functools

    from batchbald.plugins import check_acquisition, import_target

    acq, model = config["acquisition"], config["model"]
    try:
        fn = import_target(acq["_target_"])
        check_acquisition(fn, stochastic=acq.get("stochastic"), num_samples=acq.get("num_samples"))
    except ValueError as e:
        raise ConfigError(f"acquisition._target_={acq['_target_']}: {e}") from None
    factory = _callable_target("model", model["_target_"])
    kwargs = {k: v for k, v in model.items() if k not in ("_target_", "name")}
    return fn, functools.partial(factory, **kwargs)


def _callable_target(key: str, path: str):
    """The callable `<key>._target_` names; a one-line ConfigError naming the key and the path if it is not one."""
    from batchbald.plugins import import_target

    try:
        target = import_target(path)
    except ValueError as e:
        raise ConfigError(f"{key}._target_={path}: {e}") from None
    if not callable(target):
        raise ConfigError(f"{key}._target_={path}: {target!r} is not callable")
    return target


def _dataset_factory(ds: dict):
    """The factory `dataset._target_` names and the keys it gets (None, {} for the built-ins)."""
    from batchbald.data.factory import factory_kwargs

    if ds.get("_target_") is None:
        return None, {}
    factory = _callable_target("dataset", ds["_target_"])
    return factory, factory_kwargs(ds, factory)


def _check_model(config: dict, factory, dataset, acquisition_fn) -> None:
    from batchbald.acquisition.inputs import needs_features
    from batchbald.plugins import check_model

    try:
        from batchbald.models import build_model

        model = build_model(factory, dataset.num_classes, tuple(dataset.train.x.shape[1:]))
        path = check_model(model, dataset.num_classes, dataset.test.x[:2], features=needs_features(acquisition_fn))
    except ValueError as e:
        raise ConfigError(f"model._target_={config['model']['_target_']}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the factory itself failed (bad keyword, ...)
        raise ConfigError(f"model._target_={config['model']['_target_']}: building it failed: {e}") from None
    if path == "generic":
        print(
            f"[{config['experiment_name']}] model {config['model']['name']} has no fast consistent-MC-dropout path: "
            f"scoring and evaluation run K={config['mc_samples']} masked forward passes per chunk (slower)",
            file=sys.stderr,
        )


def run(cfg: DictConfig) -> float | None:
    import torch

    from batchbald.loop import AcquisitionError, CheckpointError, LoopConfig, run_loop
    from batchbald.tracking import RunRecorder
    from batchbald.train import TrainConfig, resolve_device

    config = OmegaConf.to_container(cfg, resolve=True)
    validate_config(config)
    acquisition_fn, model_factory = _plugins(config)
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    try:
        device = resolve_device(config["device"], job_index=_job_index())
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if device.type == "cuda":
        from batchbald.numerics import configure_cuda

        configure_cuda(tf32=bool(config.get("cuda_tf32", False)))
    out_dir = Path(HydraConfig.get().runtime.output_dir)

    _lock_run_dir(out_dir)
    run_json = out_dir / "run.json"
    previous = _read_run_json(run_json) if run_json.exists() else None
    if previous and previous.get("status") == "finished":
        print(f"{out_dir}: already finished, nothing to do")
        return None

    ds = config["dataset"]
    factory, factory_kwargs = _dataset_factory(ds)
    try:
        dataset = load_dataset(
            ds["name"],
            ds["root"],
            repetitions=ds["repetitions"],
            split=ds["split"],
            noise_std=ds["noise_std"],
            seed=config["seed"],
            train_subset_per_class=ds["train_subset_per_class"],
            test_subset=ds["test_subset"],
            factory=factory,
            factory_kwargs=factory_kwargs,
        )
    except FactoryError as e:
        raise ConfigError(f"dataset._target_={ds['_target_']}: {e}") from None
    except ValueError as e:  # a subset larger than the data, ...: the data files themselves raise DataError
        key = str(e).split("=")[0]
        raise ConfigError(f"dataset.{e}" if key in ds else str(e)) from None
    from batchbald.acquisition.inputs import needs_targets

    target = target_settings(config["acquisition"]) if needs_targets(acquisition_fn) else None
    target_size = target["size"] if target and target["set"] == "heldout" else 0
    try:
        splits = make_splits(
            dataset,
            initial=ds["initial"],
            validation_size=ds["validation_size"],
            seed=config["seed"],
            target_size=target_size,
            validation_draw=ds.get("validation_draw", "fresh"),
        )
    except ValueError as e:
        key = str(e).split("=")[0]
        raise ConfigError(f"acquisition.target.size{str(e)[len(key) :]}" if key == "target_size" else str(e)) from None
    check_sizes(config["budget"], len(splits.pool), ds["validation_size"], target_size)
    _check_model(config, model_factory, dataset, acquisition_fn)

    config["dataset"]["description"] = dataset.description
    config["profile_notes"] = config["profile"]["notes"]
    acq = config["acquisition"]
    loop_cfg = LoopConfig(
        seed=config["seed"],
        budget=config["budget"],
        mc_samples=config["mc_samples"],
        acquisition=acquisition_fn,
        batch_size=acq["batch_size"],
        num_samples=acq["num_samples"],
        stochastic=acq.get("stochastic"),
        coldness=float(acq.get("coldness", 1.0)),
        **({"target_set": target["set"], "target_per_round": target["per_round"]} if target else {}),
        model=model_factory,
        train=TrainConfig(**config["train"]),
        target_accuracy=config["target_accuracy"],
        scoring_batch_size=config["scoring_batch_size"],
        progress=config["progress"],
    )
    finished_rounds = _committed_rounds(out_dir, config, device, previous)  # the recorder rewrites run.json
    recorder = RunRecorder(
        out_dir, config, device=device, repo=REPO, wandb_cfg=config["wandb"], classes=dataset.classes
    )

    def on_round(records):
        recorder.log_round(records)
        r = records[-1]
        msg = (
            f"[{config['experiment_name']} seed={config['seed']}] round {r.round}: labelled {r.labelled_size}, "
            f"acc {r.test_accuracy:.4f}, nll {r.test_nll:.3f}, epochs {r.epochs}, label entropy "
            f"{r.label_entropy:.3f}, train {r.train_seconds:.1f}s score {r.score_seconds:.1f}s "
            f"select {r.select_seconds:.1f}s eval {r.eval_seconds:.1f}s"
        )
        from tqdm.auto import tqdm

        tqdm.write(msg)

    try:
        records = run_loop(
            dataset,
            splits,
            loop_cfg,
            device,
            checkpoint=out_dir / "checkpoint.pt",
            fingerprint=fingerprint(config),
            on_round=on_round,
            finished_rounds=finished_rounds,
        )
    except (CheckpointError, AcquisitionError) as e:
        recorder.finish("failed")
        raise ConfigError(str(e)) from None
    except BaseException:
        recorder.finish("failed")
        raise
    recorder.log_round(records, to_wandb=False)  # the last round went to wandb already (no duplicate step)
    recorder.finish("finished")
    return records[-1].test_accuracy


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        return run(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    problem = _check_command_line(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
