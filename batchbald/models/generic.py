"""Consistent MC dropout for any model with dropout layers (the path of models without our fast `mc_forward`).

Each dropout layer gets K masks, drawn once; MC sample k runs the model in eval mode with every dropout layer's
output multiplied by its k-th mask, so sample k is the same sub-network for every input (consistent MC dropout,
SPEC §5). K plain forward passes per chunk: slower than the fast path of the paper's CNNs, same semantics.

Masks follow the layer's kind: nn.Dropout drops single units (mask of the feature shape), nn.Dropout1d/2d/3d and
our MCDropout whole channels (mask [C, 1, ...]). Other dropout kinds (AlphaDropout, ...) are not supported.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from batchbald.models.dropout import DropoutMasks, MCDropout

CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, MCDropout)
SUPPORTED_DROPOUT = (nn.Dropout, *CHANNEL_DROPOUT)
GENERIC_CHUNK = 256  # images per forward pass


def generic_dropout_layers(model: nn.Module) -> list[nn.Module]:
    """Dropout layers of any supported kind, in module order."""
    return [m for m in model.modules() if isinstance(m, SUPPORTED_DROPOUT)]


def has_fast_path(model: nn.Module) -> bool:
    """True for models with our exact fast consistent-MC-dropout scoring (`mc_forward`, `scoring_plan`) for their
    input shape (`fast_path`, default True: MnistCNN sized for other images has none)."""
    return hasattr(model, "mc_forward") and bool(getattr(model, "fast_path", True))


def _mask_shape(layer: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    if isinstance(layer, CHANNEL_DROPOUT):
        return (x.shape[1],) + (1,) * (x.dim() - 2)
    return tuple(x.shape[1:])


@torch.inference_mode()
def draw_generic_masks(model: nn.Module, k: int, generator: torch.Generator, example_x: torch.Tensor) -> DropoutMasks:
    """K masks per dropout layer ([K, *mask shape], values {0, 1/(1-p)}); shapes from one eval pass on example_x."""
    layers = generic_dropout_layers(model)
    shapes: dict[int, tuple[int, ...]] = {}

    def record(i: int):
        def hook(module, inputs, output) -> None:  # returns None: the output is left as it is
            shapes.setdefault(i, _mask_shape(module, inputs[0]))

        return hook

    hooks = [layer.register_forward_hook(record(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model(example_x[:1].to(device, torch.float32))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    masks = []
    for i, layer in enumerate(layers):
        shape = shapes.get(i, (1,))  # a layer the forward pass never used gets a dummy mask
        keep = torch.full((k, *shape), 1.0 - layer.p, device=generator.device)
        masks.append(torch.bernoulli(keep, generator=generator).div_(1.0 - layer.p).to(device))
    return DropoutMasks(tuple(masks))


@contextlib.contextmanager
def _masked(model: nn.Module, masks: DropoutMasks):
    """Within the block, `current[0] = k` makes every dropout layer apply its k-th mask (model in eval mode)."""
    current = [0]
    layers = generic_dropout_layers(model)
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out, m=m: out * m[current[0]])
        for layer, m in zip(layers, masks.layers)
    ]
    was_training = model.training
    model.eval()
    try:
        yield current
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


@torch.inference_mode()
def generic_log_probs(
    model: nn.Module, x_N: torch.Tensor, masks: DropoutMasks, *, batch_size: int | None = None
) -> torch.Tensor:
    """log_probs_N_K_C: K consistent masked passes (the model returns log-probabilities, as ours do)."""
    device = next(model.parameters()).device
    batch_size = batch_size or GENERIC_CHUNK
    out = None
    with _masked(model, masks) as current:
        for start in range(0, x_N.shape[0], batch_size):
            x = x_N[start : start + batch_size].to(device, torch.float32)
            for k in range(masks.k):
                current[0] = k
                log_probs_B_C = model(x)
                if out is None:
                    out = torch.empty(x_N.shape[0], masks.k, log_probs_B_C.shape[1], device=device)
                out[start : start + x.shape[0], k] = log_probs_B_C
    return out if out is not None else torch.empty(0, masks.k, 0, device=device)
