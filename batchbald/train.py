"""Training with early stopping (SPEC §1), MC-dropout evaluation, device selection."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from batchbald.models import draw_masks, dropout_generator, mc_log_probs, model_device

VALIDATION_BATCH = 1024


@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 64
    epoch_samples: int = 5056
    max_epochs: int = 30
    patience: int = 3


@dataclass
class TrainResult:
    model: nn.Module
    epochs: int
    best_val_accuracy: float


@dataclass
class EvalResult:
    accuracy: float
    nll: float


def resolve_device(name: str) -> torch.device:
    """"auto" (CUDA when present, else CPU), "cpu" or "cuda[:i]"; CUDA requested but absent -> ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda")


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
        pred = model(x[start:start + VALIDATION_BATCH]).argmax(1)
        correct += (pred == y[start:start + VALIDATION_BATCH]).sum()
    model.train(was_training)
    return correct.item() / x.shape[0]


def train_model(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                val_y: torch.Tensor, cfg: TrainConfig, *, generator: torch.Generator,
                progress: bool = False) -> TrainResult:
    """Adam + NLL; an epoch is cfg.epoch_samples indices drawn with replacement from the labelled set.

    Early stopping: after cfg.patience epochs without a validation accuracy above the best (ties count as no
    improvement), or after cfg.max_epochs; the best weights are restored. Batch indices and train-mode
    dropout masks come from `generator`, so a run is reproducible from its seed on the same device.
    The model is returned in eval mode. best_val_accuracy is NaN without a validation set.
    """
    device = model_device(model)
    has_val = val_x.shape[0] > 0
    if has_val:
        val_x, val_y = val_x.to(device), val_y.to(device)
    n = train_x.shape[0]
    if n == 0:
        model.eval()
        return TrainResult(model, 0, validation_accuracy(model, val_x, val_y) if has_val else math.nan)
    train_x, train_y = train_x.to(device), train_y.to(device)
    g = generator_on(device, generator)
    model.to(memory_format=torch.channels_last)  # faster convolutions and pooling on CPU and GPU
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    best_acc, best_state, bad_epochs, epochs = -math.inf, None, 0, 0
    with dropout_generator(model, g):
        for epoch in range(cfg.max_epochs):
            start_time = time.perf_counter()
            model.train()
            idx = torch.randint(n, (cfg.epoch_samples,), generator=g, device=device)
            loss_sum = torch.zeros((), device=device)
            for batch in idx.split(cfg.batch_size):
                loss = F.nll_loss(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if progress:
                    loss_sum += loss.detach() * batch.shape[0]
            epochs += 1
            if not has_val:
                continue
            acc = validation_accuracy(model, val_x, val_y)
            if progress:
                print(f"epoch {epoch + 1}: train nll {loss_sum.item() / cfg.epoch_samples:.4f}, "
                      f"val acc {acc:.4f} ({time.perf_counter() - start_time:.1f} s)", flush=True)
            if acc > best_acc:
                best_acc, bad_epochs = acc, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return TrainResult(model, epochs, best_acc if has_val else math.nan)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k: int, generator: torch.Generator,
             batch_size: int | None = None) -> EvalResult:
    """Accuracy and mean NLL of the MC prediction log(mean_k p_k) over K consistent dropout masks."""
    if x.shape[0] == 0:
        return EvalResult(math.nan, math.nan)
    masks = draw_masks(model, k, generator)
    log_probs_N_K_C = mc_log_probs(model, x, masks, batch_size=batch_size)
    mean_log_probs_N_C = torch.logsumexp(log_probs_N_K_C, dim=1) - math.log(k)
    y = y.to(mean_log_probs_N_C.device)
    accuracy = (mean_log_probs_N_C.argmax(1) == y).double().mean().item()
    nll = -mean_log_probs_N_C.gather(1, y.view(-1, 1)).double().mean().item()
    return EvalResult(accuracy, nll)
