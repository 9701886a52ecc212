"""Checks a resolved run config (a plain dict) before any work, with one line per problem."""

from __future__ import annotations

import math
import re

from batchbald.acquisition import ACQUISITIONS, SCORE_NAMES
from batchbald.acquisition.stochastic import STOCHASTIC_MODES
from batchbald.data.splits import VALIDATION_DRAWS
from batchbald.models import MODELS
from batchbald.train import SAMPLERS, VALIDATION_SETS

DATASETS = ("mnist", "repeated_mnist", "emnist")
# The built-ins' `_target_`s: the configs name them, and a run without `_target_` gets its built-in's.
ACQUISITION_TARGETS = {name: f"batchbald.acquisition.{fn.__name__}" for name, fn in ACQUISITIONS.items()}
MODEL_TARGETS = {name: f"batchbald.models.{cls.__name__}" for name, cls in MODELS.items()}
DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A bad config value; the message says what is wrong and what is allowed."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


SEED_MAX = 2**63 - 1  # torch generators take signed 64-bit seeds


def _positive_int(cfg: dict, key: str, value, minimum: int = 1, maximum: int | None = None) -> None:
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        allowed = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{key} must be an integer {allowed}, got {value!r}")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve_targets(cfg: dict) -> None:
    """Give acquisition and model their `_target_` and `name` (in place): a built-in named without `_target_` gets
    its target; a user target (not a built-in) gets its last path component as name unless one was set."""
    for key, builtins in (("acquisition", ACQUISITION_TARGETS), ("model", MODEL_TARGETS)):
        node, choices = cfg[key], ", ".join(builtins)
        target, name = node.get("_target_"), node.get("name")
        if target is None:
            if name not in builtins:
                raise ConfigError(f"{key}.name must be one of {choices}, or set {key}._target_=module.attribute")
            node["_target_"] = builtins[name]
        elif not isinstance(target, str) or not target.strip():
            raise ConfigError(f"{key}._target_ must be a dotted path module.attribute, got {target!r}")
        elif target in builtins.values():
            builtin = next(n for n, t in builtins.items() if t == target)
            if name is not None and name != builtin:
                raise ConfigError(
                    f"{key}.name={name!r} does not match {key}._target_={target} (the built-in {builtin!r}); choose a "
                    f"built-in with {key}=<{choices}>, or your own with {key}._target_=module.attribute"
                )
            node["name"] = builtin
        elif name is None or name in builtins:
            node["name"] = target.rsplit(".", 1)[-1]


def validate_config(cfg: dict) -> None:
    """Raise ConfigError for the first bad value found (after `resolve_targets`, which it applies)."""
    resolve_targets(cfg)
    ds, acq, train = cfg["dataset"], cfg["acquisition"], cfg["train"]
    builtin_acquisition = acq["_target_"] in ACQUISITION_TARGETS.values()
    target = ds.get("_target_")
    if target is not None and (not isinstance(target, str) or "." not in target.strip(".")):
        raise ConfigError(f"dataset._target_ must be a dotted path module.factory, got {target!r}")
    if target is None and ds["name"] not in DATASETS:
        raise ConfigError(
            f"dataset.name must be one of {', '.join(DATASETS)}, or set dataset._target_=module.factory, "
            f"got {ds['name']!r}"
        )
    if cfg["device"] not in DEVICES and not re.fullmatch(r"cuda:\d+", str(cfg["device"])):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or cuda:<index>, got {cfg['device']!r}")
    if cfg["wandb"]["mode"] not in WANDB_MODES:
        raise ConfigError(f"wandb.mode must be one of {', '.join(WANDB_MODES)}, got {cfg['wandb']['mode']!r}")
    _positive_int(cfg, "seed", cfg["seed"], minimum=0, maximum=SEED_MAX)
    _positive_int(cfg, "budget", cfg["budget"])
    _positive_int(cfg, "mc_samples", cfg["mc_samples"], minimum=2 if acq["name"] == "mean_std" else 1)
    _positive_int(cfg, "acquisition.batch_size", acq["batch_size"])
    if acq["batch_size"] > cfg["budget"]:
        raise ConfigError(f"acquisition.batch_size ({acq['batch_size']}) must not exceed budget ({cfg['budget']})")
    if acq.get("stochastic") is not None:
        if acq["stochastic"] not in STOCHASTIC_MODES:
            raise ConfigError(
                f"acquisition.stochastic must be null or one of {', '.join(STOCHASTIC_MODES)}, "
                f"got {acq['stochastic']!r}"
            )
        if builtin_acquisition and acq["name"] not in SCORE_NAMES:
            raise ConfigError(
                f"acquisition.stochastic needs a per-point score ({', '.join(SCORE_NAMES)}), "
                f"got acquisition.name={acq['name']!r}"
            )
    c = acq.get("coldness", 1.0)
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c < float("inf"):
        raise ConfigError(f"acquisition.coldness must be a finite number >= 0, got {c!r}")
    if acq.get("num_samples") is not None:
        _positive_int(cfg, "acquisition.num_samples", acq["num_samples"])
    _check_target(acq.get("target"))
    t = cfg["target_accuracy"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1):
        raise ConfigError(f"target_accuracy must be null or a number in (0, 1], got {t!r}")
    _positive_int(cfg, "dataset.repetitions", ds["repetitions"], minimum=0)
    _positive_int(cfg, "dataset.validation_size", ds["validation_size"], minimum=0)
    if ds["initial"] != "paper":
        _positive_int(cfg, "dataset.initial", ds["initial"], minimum=0)
    if ds["initial"] == "paper" and ds["name"] == "emnist":
        raise ConfigError("dataset.initial='paper' is the fixed MNIST set; for emnist use a per-class count (0 = none)")
    for key in ("train_subset_per_class", "test_subset"):
        if ds.get(key) is not None:
            _positive_int(cfg, f"dataset.{key}", ds[key])
    if ds.get("validation_draw", "fresh") not in VALIDATION_DRAWS:
        raise ConfigError(
            f"dataset.validation_draw must be one of {', '.join(VALIDATION_DRAWS)}, got {ds['validation_draw']!r}"
        )
    if not _finite(ds["noise_std"]) or ds["noise_std"] < 0:
        raise ConfigError(f"dataset.noise_std must be a finite number >= 0, got {ds['noise_std']!r}")
    for key in ("batch_size", "epoch_samples", "max_epochs", "patience"):
        _positive_int(cfg, f"train.{key}", train[key])
    if train.get("validation_set", "heldout") not in VALIDATION_SETS:
        raise ConfigError(
            f"train.validation_set must be one of {', '.join(VALIDATION_SETS)}, got {train['validation_set']!r}"
        )
    _positive_int(cfg, "train.validation_samples", train.get("validation_samples", 0), minimum=0)
    if train.get("sampler", "iid") not in SAMPLERS:
        raise ConfigError(f"train.sampler must be one of {', '.join(SAMPLERS)}, got {train['sampler']!r}")
    if not _finite(train["lr"]) or train["lr"] <= 0:
        raise ConfigError(f"train.lr must be a finite number > 0, got {train['lr']!r}")
    if cfg.get("scoring_batch_size") is not None:
        _positive_int(cfg, "scoring_batch_size", cfg["scoring_batch_size"])
    if cfg.get("threads") is not None:
        _positive_int(cfg, "threads", cfg["threads"])


TARGET_SETS = ("heldout", "pool")
DEFAULT_TARGET = {"set": "heldout", "size": 1000, "per_round": 100}  # EPIG's targets when a config names none


def target_settings(acq: dict) -> dict:
    """acquisition.target with the defaults filled in (for functions that name target_log_probs_M_K_C)."""
    return {**DEFAULT_TARGET, **(acq.get("target") or {})}


def _check_target(target) -> None:
    if target is None:
        return
    if not isinstance(target, dict) or set(target) - set(DEFAULT_TARGET):
        raise ConfigError(f"acquisition.target must be a mapping with keys {', '.join(DEFAULT_TARGET)}, got {target!r}")
    t = {**DEFAULT_TARGET, **target}
    if t["set"] not in TARGET_SETS:
        raise ConfigError(f"acquisition.target.set must be one of {', '.join(TARGET_SETS)}, got {t['set']!r}")
    _positive_int({}, "acquisition.target.size", t["size"], minimum=0)
    if t["per_round"] is not None:
        _positive_int({}, "acquisition.target.per_round", t["per_round"])
    elif t["set"] == "pool":
        raise ConfigError(
            "acquisition.target.per_round must be an integer >= 1 with target.set=pool (every pool point as a "
            "target makes EPIG quadratic in the pool)"
        )
    if t["set"] == "heldout" and t["size"] < 1:
        raise ConfigError("acquisition.target.size must be >= 1 with target.set=heldout (the held-out target set)")


def check_sizes(budget: int, pool_size: int, validation_size: int, target_size: int = 0) -> None:
    """Checks that need the data: the budget must fit in the pool."""
    held = f"{validation_size} validation points" + (f" and {target_size} EPIG targets" if target_size else "")
    if pool_size == 0:
        raise ConfigError(f"the pool is empty after the initial set and {held}; lower dataset.validation_size")
    if budget > pool_size:
        raise ConfigError(
            f"budget ({budget}) is larger than the pool ({pool_size} points after the initial set and {held}); "
            "lower budget, dataset.validation_size" + (" or acquisition.target.size" if target_size else "")
        )
