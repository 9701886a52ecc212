"""What the deterministic net (dropout off) gives besides MC log-probs: penultimate features and class log-probs
(CoreSet's and BADGE's inputs; BADGE's embedding is built from them in batchbald.acquisition.badge).

The penultimate features of a model are the input of its last `nn.Linear` (in module order) in eval mode, where
dropout is the identity; for the paper's CNNs that is fc2's input (128-d for MNIST, 512-d for EMNIST). A model without
an `nn.Linear`, or whose last one does not see a [B, D] input, cannot give features (`FeatureError`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FEATURE_CHUNK = 512  # images per forward pass


class FeatureError(ValueError):
    """The model cannot give penultimate features (the message says why)."""


@dataclass
class DeterministicOutputs:
    features_N_D: torch.Tensor  # float32, input of the last nn.Linear
    log_probs_N_C: torch.Tensor  # float32, the model's output with dropout off


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear in module order: its input are the penultimate features."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise FeatureError(
            f"{type(model).__name__} has no nn.Linear layer, so it has no penultimate features (the input of the last "
            "nn.Linear)"
        )
    return linears[-1]


@torch.inference_mode()
def deterministic_outputs(
    model: nn.Module, x_N: torch.Tensor, *, batch_size: int = FEATURE_CHUNK
) -> DeterministicOutputs:
    """Penultimate features and log-probs of the deterministic net (eval mode: dropout off) for x_N, chunked."""
    layer = last_linear(model)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda mod, inputs, out: captured.append(inputs[0].detach()))
    was_training = model.training
    model.eval()
    feats, log_probs = [], []
    try:
        for start in range(0, x_N.shape[0], batch_size):
            x = x_N[start : start + batch_size].to(device, torch.float32)
            captured.clear()
            out = model(x)
            if len(captured) != 1 or captured[0].dim() != 2 or captured[0].shape[0] != x.shape[0]:
                shape = tuple(captured[-1].shape) if captured else None
                raise FeatureError(
                    f"{type(model).__name__}'s last nn.Linear must be called once per forward on a [B, D] input to "
                    f"give penultimate features; it saw {len(captured)} call(s), input {shape}"
                )
            feats.append(captured[0].float())
            log_probs.append(out.float())
    finally:
        hook.remove()
        model.train(was_training)
    if not feats:
        return DeterministicOutputs(torch.empty(0, layer.in_features, device=device), torch.empty(0, 0, device=device))
    return DeterministicOutputs(torch.cat(feats), torch.cat(log_probs))
