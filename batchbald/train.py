"""Training with early stopping (SPEC §1), MC-dropout evaluation, device selection."""

from __future__ import annotations

import copy
import hashlib
import math
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from batchbald.models import draw_masks, dropout_generator, mc_log_probs, model_device

VALIDATION_BATCH = 1024


VALIDATION_SETS = ("heldout", "labelled")


@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 64
    epoch_samples: int = 5056
    max_epochs: int = 30
    patience: int = 3
    # What early stopping scores (deterministic accuracy): "heldout" = the validation set (the released code and
    # the paper's ablation runs), "labelled" = the labelled training set itself (what the paper's main runs did;
    # README "Training protocol").
    validation_set: str = "heldout"
    # How the stopping score predicts: 0 = the deterministic net (dropout off; the released code), k >= 1 = the
    # consistent MC-dropout prediction of k fresh masks per validation pass (probed against the official logs:
    # README "Training protocol").
    validation_samples: int = 0
    # Which labelled points an epoch visits: "iid" = epoch_samples drawn with replacement (this repository's runs),
    # "balanced" = randperm(epoch_samples) % n, every point floor or ceil(epoch_samples / n) times (the released
    # code's RandomFixedLengthSampler). Not in the configs: `+train.sampler=balanced` selects it.
    sampler: str = "iid"


SAMPLERS = ("iid", "balanced")


@dataclass
class TrainResult:
    model: nn.Module
    epochs: int
    best_val_accuracy: float
    best_epoch: int = 0  # the epoch whose weights were kept (0: none trained)


@dataclass
class EvalResult:
    accuracy: float
    nll: float  # NLL of the MC prediction log(mean_k p_k): the paper's definition and the released code's
    nll_per_mask: float = math.nan  # mean over the K masks of each mask's own NLL (>= nll, by Jensen)
    accuracy_log_mean: float = math.nan  # accuracy of argmax_c mean_k log p_k (the geometric-mean prediction)


def gpu_hardware_present() -> str | None:
    """Evidence of an NVIDIA GPU on this machine whether or not torch can use it (a device node or nvidia-smi)."""
    if Path("/dev/nvidia0").exists():
        return "/dev/nvidia0 exists"
    if shutil.which("nvidia-smi"):
        return "nvidia-smi is installed"
    return None


def resolve_device(name: str, job_index: int = 0) -> torch.device:
    """ "auto" (CUDA when present, else CPU), "cpu" or "cuda[:i]"; CUDA requested but absent -> ValueError.

    "auto" and "cuda" on a box with several GPUs give job `job_index` the GPU job_index % count (local sweeps
    spread over the GPUs). "auto" falling back to the CPU while a GPU seems present warns loudly.
    """
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto" and not torch.cuda.is_available():
        evidence = gpu_hardware_present()
        if evidence:
            warnings.warn(
                f"device=auto: a GPU seems present ({evidence}) but torch {torch.__version__} (CUDA "
                f"{torch.version.cuda}) cannot use it (driver too old or not visible?); running on the CPU",
                stacklevel=2,
            )
        return torch.device("cpu")
    if name in ("auto", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if name in ("auto", "cuda"):
            return torch.device("cuda", job_index % torch.cuda.device_count())
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:<i>")


def generator_on(device: torch.device, generator: torch.Generator) -> torch.Generator:
    """`generator` itself if it lives on `device`'s type, else a generator there seeded from it."""
    if generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


@torch.inference_mode()
def validation_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Deterministic (eval-mode, dropout off) accuracy, batched."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], VALIDATION_BATCH):
        pred = model(x[start : start + VALIDATION_BATCH]).argmax(1)
        correct += (pred == y[start : start + VALIDATION_BATCH]).sum()
    model.train(was_training)
    return correct.item() / x.shape[0]


def rule_name(validation_set: str, samples: int = 0) -> str:
    """A stopping rule's name: the validation set, with "_mc<k>" when it is scored by a k-sample MC prediction."""
    return validation_set if samples == 0 else f"{validation_set}_mc{samples}"


def parse_rule(name: str) -> tuple[str, int]:
    """(validation set, MC samples) of a rule name such as "heldout", "labelled" or "labelled_mc10"."""
    base, sep, k = name.partition("_mc")
    if base in VALIDATION_SETS and (not sep or (k.isdigit() and int(k) >= 1)):
        return base, int(k or 0)
    raise ValueError(
        f"unknown stopping rule {name!r}; allowed: {', '.join(VALIDATION_SETS)}, optionally with _mc<k> (k >= 1)"
    )


@torch.inference_mode()
def mc_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k: int, generator: torch.Generator) -> float:
    """Accuracy of the consistent MC-dropout prediction argmax_c mean_k p_k over k fresh masks (dropout on)."""
    was_training = model.training
    model.eval()
    masks = draw_masks(model, k, generator, example_x=x[:1])
    log_probs_N_K_C = mc_log_probs(model, x, masks, batch_size=VALIDATION_BATCH)
    correct = (torch.logsumexp(log_probs_N_K_C, dim=1).argmax(1) == y.to(log_probs_N_K_C.device)).sum()
    model.train(was_training)
    return correct.item() / x.shape[0]


def scoring_generator(generator: torch.Generator, rule: str) -> torch.Generator:
    """A generator for one rule's MC stopping scores, seeded from a hash of `generator`'s state and the rule name
    without drawing from it: the training draws (batches, dropout) are the same whatever the stopping rules, each
    rule's masks the same whatever the other rules, and the scores reproducible."""
    digest = hashlib.sha256(generator.get_state().cpu().numpy().tobytes() + rule.encode()).digest()
    return torch.Generator(generator.device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class _EarlyStopping:
    """Best score and weights under one stopping rule; ties count as no improvement (SPEC §1)."""

    def __init__(self, patience: int):
        self.patience, self.best, self.state, self.bad, self.epochs, self.done = patience, -math.inf, None, 0, 0, False
        self.best_epoch = 0

    def update(self, score: float, model: nn.Module, epoch: int) -> None:
        if self.done:
            return
        self.epochs = epoch
        if score > self.best:
            self.best, self.bad, self.best_epoch = score, 0, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad += 1
            self.done = self.bad >= self.patience


def epoch_indices(n: int, cfg: TrainConfig, generator: torch.Generator, device) -> torch.Tensor:
    """The labelled positions one epoch visits, in order (cfg.sampler: iid draws, or balanced randperm % n)."""
    if cfg.sampler == "balanced":
        perm = torch.randperm(max(cfg.epoch_samples, n), generator=generator, device=device)
        return perm[: cfg.epoch_samples] % n
    return torch.randint(n, (cfg.epoch_samples,), generator=generator, device=device)


def train_model(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    cfg: TrainConfig,
    *,
    generator: torch.Generator,
    progress: bool = False,
) -> TrainResult:
    """Adam + NLL; an epoch is cfg.epoch_samples indices drawn with replacement from the labelled set.

    Early stopping: after cfg.patience epochs without an accuracy above the best (ties count as no improvement)
    on cfg.validation_set (predicted with cfg.validation_samples MC samples; 0 = the deterministic net), or
    after cfg.max_epochs; the best weights are restored. Batch indices and train-mode dropout masks come from
    `generator`, so a run is reproducible from its seed on the same device. The model is returned in eval mode.
    best_val_accuracy is NaN without a validation set.
    """
    rule = rule_name(cfg.validation_set, cfg.validation_samples)
    return train_model_rules(
        model, train_x, train_y, val_x, val_y, cfg, (rule,), generator=generator, progress=progress
    )[rule]


def train_model_rules(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    cfg: TrainConfig,
    rules: tuple[str, ...],
    *,
    generator: torch.Generator,
    progress: bool = False,
) -> dict[str, TrainResult]:
    """`train_model` under several stopping rules at once (`rule_name`s; cfg.validation_set/_samples are ignored).

    Validation draws nothing from `generator` (MC scores use `scoring_generator`), so the weights after every
    epoch are the same whatever the rules: training runs once, until every rule has stopped, and each rule gets
    the model it would have returned alone (the first rule gets `model` itself, the others copies).
    """
    parsed = {rule: parse_rule(rule) for rule in rules}
    device = model_device(model)
    has_val = val_x.shape[0] > 0
    if has_val:
        val_x, val_y = val_x.to(device), val_y.to(device)
    n = train_x.shape[0]
    if n == 0:
        model.eval()
        acc = validation_accuracy(model, val_x, val_y) if has_val else math.nan
        return {
            rule: TrainResult(
                model if i == 0 else copy.deepcopy(model), 0, acc if parsed[rule] == ("heldout", 0) else math.nan
            )
            for i, rule in enumerate(rules)
        }
    train_x, train_y = train_x.to(device), train_y.to(device)
    scored = {"heldout": (val_x, val_y) if has_val else None, "labelled": (train_x, train_y)}
    stoppers = {rule: _EarlyStopping(cfg.patience) for rule in rules if scored[parsed[rule][0]] is not None}
    g = generator_on(device, generator)
    g_score = {rule: scoring_generator(g, rule) for rule, (_, k) in parsed.items() if k}
    model.to(memory_format=torch.channels_last)  # faster convolutions and pooling on CPU and GPU
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    epochs = 0
    with dropout_generator(model, g):
        for epoch in range(cfg.max_epochs):
            start_time = time.perf_counter()
            model.train()
            idx = epoch_indices(n, cfg, g, device)
            loss_sum = torch.zeros((), device=device)
            for batch in idx.split(cfg.batch_size):
                loss = F.nll_loss(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if progress:
                    loss_sum += loss.detach() * batch.shape[0]
            epochs += 1
            scores = {}
            for rule, stopper in stoppers.items():
                if not stopper.done:
                    subset, k = parsed[rule]
                    if k:
                        scores[rule] = mc_accuracy(model, *scored[subset], k=k, generator=g_score[rule])
                    else:
                        scores[rule] = validation_accuracy(model, *scored[subset])
                    stopper.update(scores[rule], model, epochs)
            if progress:
                shown = ", ".join(f"{rule} acc {acc:.4f}" for rule, acc in scores.items())
                print(
                    f"epoch {epoch + 1}: train nll {loss_sum.item() / cfg.epoch_samples:.4f}, {shown} "
                    f"({time.perf_counter() - start_time:.1f} s)",
                    flush=True,
                )
            if len(stoppers) == len(rules) and all(s.done for s in stoppers.values()):
                break
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    results = {}
    for i, rule in enumerate(rules):
        stopper = stoppers.get(rule)
        out = model if i == 0 else copy.deepcopy(model)
        if stopper is not None and stopper.state is not None:
            out.load_state_dict(stopper.state)
        results[rule] = (
            TrainResult(out, stopper.epochs, stopper.best, stopper.best_epoch)
            if stopper
            else TrainResult(out, epochs, math.nan, epochs)
        )
    return results


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int,
    generator: torch.Generator,
    batch_size: int | None = None,
) -> EvalResult:
    """Accuracy and mean NLL of the MC prediction log(mean_k p_k) over K consistent dropout masks, and the mean of
    the K masks' own NLLs (compared with the paper's logged test NLL in results/fidelity)."""
    if x.shape[0] == 0:
        return EvalResult(math.nan, math.nan)
    masks = draw_masks(model, k, generator, example_x=x[:1])
    log_probs_N_K_C = mc_log_probs(model, x, masks, batch_size=batch_size)
    mean_log_probs_N_C = torch.logsumexp(log_probs_N_K_C, dim=1) - math.log(k)
    y = y.to(mean_log_probs_N_C.device)
    accuracy = (mean_log_probs_N_C.argmax(1) == y).double().mean().item()
    nll = -mean_log_probs_N_C.gather(1, y.view(-1, 1)).double().mean().item()
    log_probs_true_N_K = log_probs_N_K_C.gather(2, y.view(-1, 1, 1).expand(-1, k, 1)).squeeze(2)
    nll_per_mask = -log_probs_true_N_K.double().mean().item()
    accuracy_log_mean = (log_probs_N_K_C.mean(1).argmax(1) == y).double().mean().item()
    return EvalResult(accuracy, nll, nll_per_mask, accuracy_log_mean)
