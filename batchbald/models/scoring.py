"""Consistent MC-dropout scoring: K masks drawn once (`draw_masks`), then every input scored by exactly those K
sub-networks (`mc_log_probs`: the models' exact fast path, or batchbald.models.generic's K plain passes for any
other model); `forward_masked` is the plain reference (input replicated K times)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from batchbald.models.dropout import DropoutMasks, dropout_layers
from batchbald.models.generic import GENERIC_CHUNK, draw_generic_masks, generic_log_probs, has_fast_path

# Working memory of one mc_log_probs chunk. Small on CPU: intermediates stay in cache and below glibc's
# mmap threshold (fresh multi-MB allocations cost page faults on every chunk).
CPU_BUDGET_BYTES = 16 * 2**20
CUDA_BUDGET_BYTES = 1 * 2**30


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def draw_masks(
    model: nn.Module, k: int, generator: torch.Generator, example_x: torch.Tensor | None = None
) -> DropoutMasks:
    """K consistent masks per dropout layer ([K, units], values in {0, 1/(1-p)}) on the model's device.

    Models without the fast path (`mc_forward`) get .generic's masks, shaped by one pass on example_x."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not has_fast_path(model):
        if example_x is None:
            raise ValueError("draw_masks needs example_x for a model without the fast path")
        return draw_generic_masks(model, k, generator, example_x)
    device = model_device(model)
    return DropoutMasks(tuple(layer.draw(k, generator.device, generator).to(device) for layer in dropout_layers(model)))


@torch.inference_mode()
def forward_masked(model: nn.Module, x_B: torch.Tensor, masks: DropoutMasks) -> torch.Tensor:
    """Plain batched reference: replicate the input K times, copy k uses mask k -> log_probs_B_K_C."""
    device = model_device(model)
    x = x_B.to(device).repeat_interleave(masks.k, dim=0)
    return model(x, masks.to(device)).view(x_B.shape[0], masks.k, -1)


def default_scoring_batch_size(model: nn.Module, k: int) -> int:
    if not has_fast_path(model) or not hasattr(model, "scoring_bytes_per_image"):
        return GENERIC_CHUNK
    budget = CUDA_BUDGET_BYTES if model_device(model).type == "cuda" else CPU_BUDGET_BYTES
    return max(1, budget // model.scoring_bytes_per_image(k))


@torch.inference_mode()
def mc_log_probs(
    model: nn.Module, x_N: torch.Tensor, masks: DropoutMasks, *, batch_size: int | None = None
) -> torch.Tensor:
    """Fast exact consistent MC dropout: float32 log_probs_N_K_C on the model's device.

    Chunks of batch_size images (default: what fits the memory budget); the same masks give the same outputs
    however the input is chunked. Models without `mc_forward` take batchbald.models.generic's plain K passes.
    """
    if not has_fast_path(model):
        return generic_log_probs(model, x_N, masks, batch_size=batch_size)
    device = model_device(model)
    masks = masks.to(device)
    batch_size = batch_size or default_scoring_batch_size(model, masks.k)
    plan = model.scoring_plan(masks)
    out = torch.empty(x_N.shape[0], masks.k, model.fc2.out_features, device=device)
    for start in range(0, x_N.shape[0], batch_size):
        x = x_N[start : start + batch_size].to(device, torch.float32)
        logits_K_B_C = model.mc_forward(x, plan)
        out[start : start + x.shape[0]] = F.log_softmax(logits_K_B_C, dim=2).transpose(0, 1)
    return out
