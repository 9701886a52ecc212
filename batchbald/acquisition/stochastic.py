"""Stochastic batch acquisition (Kirsch et al., "Stochastic Batch Acquisition: A Simple Baseline for Deep Active
Learning", TMLR 2023): sample b distinct pool points with probability proportional to

    power:    s_i^β           (PowerBALD when s = BALD)
    softmax:  exp(β · s_i)
    softrank: r_i^(−β)        (r = 1 for the highest score)

by Gumbel-top-k: perturb log p̃_i with independent Gumbel(0, 1) noise and take the b largest, which draws b points
without replacement from the softmax of log p̃ (one point after another, each with probability ∝ p̃ among those
left). β ("coldness") → ∞ gives top-k, β → 0 uniform sampling.
"""

from __future__ import annotations

import math

import torch

STOCHASTIC_MODES = ("power", "softmax", "softrank")
_SCORE_FLOOR = torch.finfo(torch.float64).tiny  # power mode: scores ≤ 0 (rounding) are clamped here before the log


def log_weights(scores_N: torch.Tensor, mode: str) -> torch.Tensor:
    """log p̃ up to a constant, per point, [N] float64 on the CPU (β not applied)."""
    s = scores_N.detach().to("cpu", torch.float64)
    if mode == "power":
        return s.clamp(min=_SCORE_FLOOR).log()
    if mode == "softmax":
        return s
    if mode == "softrank":
        order = torch.sort(s, descending=True, stable=True).indices
        ranks = torch.empty_like(s)
        ranks[order] = torch.arange(1, s.numel() + 1, dtype=torch.float64)
        return -ranks.log()
    raise ValueError(f"unknown stochastic mode {mode!r}; allowed: {', '.join(STOCHASTIC_MODES)}")


def stochastic_batch(
    scores_N: torch.Tensor, batch_size: int, *, mode: str = "power", coldness: float = 1.0, seed: int = 0
) -> tuple[list[int], list[float]]:
    """`batch_size` distinct indices drawn as described above, in the order of their perturbed scores, and their
    (unperturbed) scores. The Gumbel noise comes from a CPU generator seeded with `seed`: reproducible anywhere."""
    if (
        isinstance(coldness, bool)
        or not isinstance(coldness, (int, float))
        or not coldness >= 0
        or not math.isfinite(coldness)
    ):
        raise ValueError(f"coldness must be a finite number >= 0, got {coldness!r}")
    if scores_N.dim() != 1 or not 1 <= batch_size <= scores_N.numel():
        raise ValueError(f"need 1-d scores and 1 <= batch_size <= {scores_N.numel()}, got {batch_size}")
    base_N = log_weights(scores_N, mode)
    if torch.isnan(base_N).any():
        raise ValueError("scores contain NaN")
    generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand(base_N.numel(), generator=generator, dtype=torch.float64).clamp_(min=1e-300)
    gumbel_N = -torch.log(-torch.log(u))
    # β·log p̃ + Gumbel: β = 0 leaves pure noise (uniform); a large β makes the noise irrelevant (top-k)
    perturbed_N = gumbel_N if coldness == 0 else base_N * coldness + gumbel_N
    picked = torch.sort(perturbed_N, descending=True, stable=True).indices[:batch_size]
    scores = scores_N.detach().to("cpu", torch.float64)
    return picked.tolist(), scores[picked].tolist()
