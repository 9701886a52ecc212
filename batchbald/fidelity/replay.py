"""Replay the paper's official runs: retrain on each logged round's labelled set and compare with the log.

The official logs (BlackHC/BatchBALD, `laaos_results/paper/`, as JSON: `load_log`) record, per active-learning
round, the labelled set a model was trained on (initial points + every batch chosen before), its number of
training epochs and its test accuracy / NLL. Training our model on exactly that labelled set and evaluating it as
the paper does (full test set, K = min(K, 100) MC-dropout samples) separates our training protocol from
everything else in the loop (acquisition, scoring, pool).

    group = load_log("rmnist_w_noise_independent_bald_k10_b10.json")
    setting = replay_setting(group)                       # dataset and training settings from the logged args
    dataset = load_replay_dataset(setting, root, seed)
    results = replay_round(dataset, setting, run.rounds[3].labelled, ("heldout", "labelled"), validation=..., seed=...)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from batchbald.data import Dataset, load_dataset
from batchbald.models import build_model
from batchbald.tracking import read_rounds
from batchbald.train import TrainConfig, evaluate, train_model_rules

# The logs' DatasetEnum names -> (our dataset, extra copies). "w_noise" datasets add N(0, 0.1²) per element.
LOG_DATASETS: dict[str, tuple[str, int | None]] = {
    "mnist": ("mnist", None),
    "mnist_w_noise": ("repeated_mnist", 0),
    "repeated_mnist_w_noise2": ("repeated_mnist", 1),
    "repeated_mnist_w_noise": ("repeated_mnist", 2),
    "repeated_mnist_w_noise5": ("repeated_mnist", 4),
}
TEST_SAMPLES_CAP = 100  # the official test evaluator uses min(K, 100) MC samples


class ReplayError(ValueError):
    """A log cannot be replayed here (the message says why)."""


@dataclass(frozen=True)
class LoggedRound:
    index: int
    labelled: tuple[int, ...]  # training-set positions the round's model was trained on
    accuracy: float
    nll: float
    epochs: int


@dataclass(frozen=True)
class LoggedRun:
    name: str
    seed: int
    args: dict
    rounds: tuple[LoggedRound, ...]
    ever_labelled: frozenset[int]  # every position the run labelled (kept out of our validation draw)


@dataclass(frozen=True)
class LoggedGroup:
    group: str
    runs: tuple[LoggedRun, ...]


@dataclass(frozen=True)
class ReplaySetting:
    """What the logged args say about data and training (identical for every run of a group)."""

    dataset: str
    repetitions: int | None
    validation_size: int
    test_samples: int
    train: TrainConfig


@dataclass
class ReplayResult:
    accuracy: float
    nll: float  # of the MC prediction log(mean_k p_k)
    nll_per_mask: float  # mean over the K test masks of each mask's NLL
    accuracy_log_mean: float  # accuracy of the geometric-mean prediction argmax mean_k log p_k
    epochs: int
    train_seconds: float
    eval_seconds: float


def _enum_value(text: str) -> str:
    return str(text).split(".")[-1]


def official_logs_dir() -> Path:
    """Where the official logs are: $BATCHBALD_OFFICIAL_LOGS, else shared/paper/official_logs beside the repository."""
    default = Path(__file__).resolve().parents[3] / "shared" / "paper" / "official_logs"
    return Path(os.environ.get("BATCHBALD_OFFICIAL_LOGS", default))


def load_log(path: str | Path) -> LoggedGroup:
    """One group's official runs from its JSON file (format: the logs' README)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        runs = []
        for run in raw["runs"]:
            labelled = list(run["initial_samples"])
            rounds = []
            for i, it in enumerate(run["iterations"]):
                metrics = it["test_metrics"]
                rounds.append(
                    LoggedRound(
                        i, tuple(labelled), float(metrics["accuracy"]), float(metrics["nll"]), int(it["num_epochs"])
                    )
                )
                chosen = it["chosen_samples"]
                labelled += [chosen] if isinstance(chosen, int) else list(chosen)  # b = 1 logs hold one int
            runs.append(
                LoggedRun(run["run"], int(run["args"]["seed"]), dict(run["args"]), tuple(rounds), frozenset(labelled))
            )
        return LoggedGroup(str(raw["group"]), tuple(runs))
    except FileNotFoundError:
        raise ReplayError(f"official log {path} not found") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReplayError(f"{path} is not an official-log JSON file ({type(e).__name__}: {e})") from None


def load_our_runs(run_dirs: list[str | Path], like: LoggedGroup, initial: list[int], name: str) -> LoggedGroup:
    """Our own runs (each folder's rounds.csv) as a group of "logged" runs, so that the training replay can retrain
    on our labelled sets exactly as on the paper's: round r's set is `initial` + every batch acquired before r, its
    accuracy, NLL and epochs are what our run recorded. The logged args (dataset and training) are those of `like`,
    the official group the experiment reproduces; a run's seed is its folder's `seed<N>`."""
    if not like.runs:
        raise ReplayError(f"group {like.group} has no runs to take the settings from")
    runs = []
    for folder in map(Path, run_dirs):
        path = folder / "rounds.csv"
        try:
            seed = int(folder.name.removeprefix("seed"))
            records = sorted(read_rounds(path), key=lambda r: r.round)
        except (OSError, ValueError, KeyError) as e:
            raise ReplayError(f"{path} is not a run's rounds.csv ({type(e).__name__}: {e})") from None
        labelled, rounds = list(initial), []
        for i, r in enumerate(records):
            if r.round != i or r.labelled_size != len(labelled):
                raise ReplayError(f"{path}: round {r.round} does not follow from the rounds before it")
            rounds.append(LoggedRound(i, tuple(labelled), r.test_accuracy, r.test_nll, r.epochs))
            labelled += r.acquired_indices
        runs.append(LoggedRun(f"{name}_{seed}", seed, dict(like.runs[0].args), tuple(rounds), frozenset(labelled)))
    return LoggedGroup(name, tuple(runs))


def replay_setting(group: LoggedGroup) -> ReplaySetting:
    """Dataset and training settings of a group, from its logged args; ReplayError for groups we cannot replay."""
    if not group.runs:
        raise ReplayError(f"group {group.group} has no runs")
    args = group.runs[0].args
    name = _enum_value(args["dataset"])
    if name.startswith("emnist"):
        raise ReplayError(
            f"group {group.group}: EMNIST logs index the official EMNIST balanced train split, whose "
            "images are not available here (only the stand-in split is); it cannot be replayed"
        )
    if name not in LOG_DATASETS:
        raise ReplayError(f"group {group.group}: dataset {name!r} is not one of {', '.join(LOG_DATASETS)}")
    dataset, repetitions = LOG_DATASETS[name]
    train = TrainConfig(
        batch_size=int(args["batch_size"]),
        epoch_samples=int(args["epoch_samples"]),
        max_epochs=int(args["epochs"]),
        patience=int(args["early_stopping_patience"]),
    )
    return ReplaySetting(
        dataset,
        repetitions,
        int(args["validation_set_size"]),
        min(int(args["num_inference_samples"]), TEST_SAMPLES_CAP),
        train,
    )


def load_replay_dataset(setting: ReplaySetting, root: str | Path, seed: int) -> Dataset:
    """The group's dataset; Repeated MNIST noise is drawn with `seed` (the paper's noise cannot be recovered)."""
    if setting.dataset == "mnist":
        return load_dataset("mnist", root, seed=seed)
    return load_dataset("repeated_mnist", root, repetitions=setting.repetitions, seed=seed)


def validation_indices(n_train: int, size: int, excluded: frozenset[int], seed: int) -> torch.Tensor:
    """`size` random training positions outside `excluded` (the run's labelled points), as the paper drew its
    validation set from the pool after the initial points."""
    free = torch.ones(n_train, dtype=torch.bool)
    free[torch.as_tensor(sorted(excluded), dtype=torch.long)] = False
    rest = free.nonzero().flatten()
    if size > rest.numel():
        raise ReplayError(f"validation size {size} is larger than the {rest.numel()} unlabelled points")
    g = torch.Generator().manual_seed(seed)
    return rest[torch.randperm(rest.numel(), generator=g)[:size]].sort().values


def trial_seed(run_seed: int, round_index: int, trial: int) -> int:
    return (run_seed * 1_000_003 + round_index * 7919 + trial * 104_729) % (2**63 - 1)


def replay_round(
    dataset: Dataset,
    setting: ReplaySetting,
    labelled: tuple[int, ...],
    rules: tuple[str, ...],
    *,
    validation: torch.Tensor,
    seed: int,
    model_name: str = "mnist_cnn",
    device: torch.device | str = "cpu",
) -> dict[str, ReplayResult]:
    """Train a fresh model on `labelled` (setting.train, early stopping under each of `rules`, one shared training
    run: `train_model_rules`) and evaluate each rule's model on the full test set with setting.test_samples
    MC-dropout samples. Model init, batches, dropout and test masks come from `seed`; every rule's model is tested
    with the same masks. train_seconds is the shared training time."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_model(model_name, dataset.num_classes).to(device)
    lab = torch.as_tensor(labelled, dtype=torch.long)
    t0 = time.perf_counter()
    trained = train_model_rules(
        model,
        dataset.train.x[lab],
        dataset.train.y[lab],
        dataset.train.x[validation],
        dataset.train.y[validation],
        setting.train,
        rules,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    train_seconds = time.perf_counter() - t0
    results, by_epoch = {}, {}
    for rule, result in trained.items():
        t1 = time.perf_counter()
        if result.best_epoch not in by_epoch:  # rules that kept the same epoch's weights share one evaluation
            by_epoch[result.best_epoch] = evaluate(
                result.model,
                dataset.test.x.to(device),
                dataset.test.y.to(device),
                k=setting.test_samples,
                generator=torch.Generator(device).manual_seed(seed + 2),
            )
        ev = by_epoch[result.best_epoch]
        results[rule] = ReplayResult(
            ev.accuracy,
            ev.nll,
            ev.nll_per_mask,
            ev.accuracy_log_mean,
            result.epochs,
            train_seconds,
            time.perf_counter() - t1,
        )
    return results
