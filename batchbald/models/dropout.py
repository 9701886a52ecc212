"""MC dropout with explicit masks: the layer (channel-wise on feature maps), a model's K consistent masks, and the
helpers that find a model's dropout layers and seed their train-mode masks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


class MCDropout(nn.Module):
    """Inverted dropout with explicit masks; channel-wise (one draw per sample and channel) on 4-d inputs.

    Train mode: a fresh mask per sample, drawn from `self.generator` (None: torch's global RNG).
    Eval mode: identity. `forward(x, mask)` with a [N, units] mask applies that mask instead.
    """

    def __init__(self, units: int, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.units = units
        self.p = p
        self.generator: torch.Generator | None = None

    def draw(self, rows: int, device: torch.device | str, generator: torch.Generator | None) -> torch.Tensor:
        """[rows, units] keep-masks with values in {0, 1/(1-p)}."""
        keep = torch.full((rows, self.units), 1.0 - self.p, device=device)
        return torch.bernoulli(keep, generator=generator).div_(1.0 - self.p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            if not self.training or self.p == 0.0:
                return x
            mask = self.draw(x.shape[0], x.device, self.generator)
        return x * mask.view(mask.shape + (1,) * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"units={self.units}, p={self.p}"


@dataclass(frozen=True)
class DropoutMasks:
    """K consistent dropout masks: one [K, units] tensor per dropout layer, in forward order."""

    layers: tuple[torch.Tensor, ...]

    @property
    def k(self) -> int:
        return self.layers[0].shape[0]

    def to(self, device: torch.device | str) -> DropoutMasks:
        return DropoutMasks(tuple(m.to(device) for m in self.layers))


def _row_masks(masks: DropoutMasks | None, rows: int, layers: int) -> list[torch.Tensor | None]:
    """Per-row masks for a batch replicated K times, b-major (row b*K + k uses mask k); None: no masks."""
    if masks is None:
        return [None] * layers
    return [m.repeat(rows // masks.k, 1) for m in masks.layers]


def dropout_layers(model: nn.Module) -> list[MCDropout]:
    """The model's dropout layers in forward order."""
    return [m for m in model.modules() if isinstance(m, MCDropout)]


@contextlib.contextmanager
def dropout_generator(model: nn.Module, generator: torch.Generator | None):
    """Within the block, train-mode dropout masks come from `generator`."""
    layers = dropout_layers(model)
    previous = [layer.generator for layer in layers]
    for layer in layers:
        layer.generator = generator
    try:
        yield model
    finally:
        for layer, old in zip(layers, previous):
            layer.generator = old
