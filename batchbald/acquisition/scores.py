"""Per-point acquisition scores (SPEC §6) and their shared input checks; all in float64 nats.

scores_N = bald_scores(log_probs_N_K_C)      # also entropy_scores, var_ratios_scores, mean_std_scores
batch = top_k(scores_N, batch_size)          # highest first; ties go to the lower index
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class AcquisitionBatch:
    """Picked pool positions in the order picked and each pick's score (see `select`)."""

    indices: list[int]
    scores: list[float]


def top_k(scores_N: torch.Tensor, batch_size: int) -> AcquisitionBatch:
    """The `batch_size` highest scores, highest first; ties go to the lower index."""
    order = torch.sort(scores_N, descending=True, stable=True).indices[:batch_size]
    return AcquisitionBatch(order.tolist(), scores_N[order].tolist())


def _as_f64(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    return log_probs_N_K_C.to(torch.float64)


def conditional_entropy(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """E_k H[p_k(y)] per point, [N] float64."""
    lp = _as_f64(log_probs_N_K_C)
    return -(lp.exp() * lp).sum(dim=(1, 2)) / lp.shape[1]


def _mean_log_probs(lp_N_K_C: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(lp_N_K_C, dim=1) - math.log(lp_N_K_C.shape[1])


def entropy_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Max predictive entropy H[p̄], [N] float64."""
    log_mean_N_C = _mean_log_probs(_as_f64(log_probs_N_K_C))
    return -(log_mean_N_C.exp() * log_mean_N_C).sum(dim=1)


def bald_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """BALD = H[p̄] − E_k H[p_k], [N] float64."""
    return entropy_scores(log_probs_N_K_C) - conditional_entropy(log_probs_N_K_C)


def var_ratios_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Variation ratios 1 − max_c p̄(c), [N] float64."""
    return 1.0 - _mean_log_probs(_as_f64(log_probs_N_K_C)).exp().amax(dim=1)


def margin_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Margin 1 − (p̄₁ − p̄₂) of the two largest MC-mean probabilities, float64, in [0, 1] (≥ 0: the stochastic modes
    work on it); one class: 0."""
    p_N_C = _mean_log_probs(_as_f64(log_probs_N_K_C)).exp()
    if p_N_C.shape[1] < 2:
        return torch.zeros(p_N_C.shape[0], dtype=torch.float64, device=p_N_C.device)
    top_N_2 = p_N_C.topk(2, dim=1).values
    return (1.0 - (top_N_2[:, 0] - top_N_2[:, 1])).clamp_(min=0.0)


def least_confidence_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Least confidence 1 − max_c p̄(c) over the MC mean: the same number as var_ratios_scores (the paper's and the
    peers' "variation ratios" / "VariationRatios" are this formula), under the name the baselines literature uses."""
    return var_ratios_scores(log_probs_N_K_C)


def mean_std_scores(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the unbiased std over the K samples of p_k(c), [N] float64."""
    return _as_f64(log_probs_N_K_C).exp().std(dim=1, unbiased=True).mean(dim=1)


def _check_log_probs(log_probs_N_K_C) -> torch.Tensor:
    if not isinstance(log_probs_N_K_C, torch.Tensor):
        raise ValueError(f"log_probs_N_K_C must be a torch.Tensor, got {type(log_probs_N_K_C).__name__}.")
    if log_probs_N_K_C.dim() != 3:
        raise ValueError(f"log_probs_N_K_C must have 3 dimensions [N, K, C], got shape {tuple(log_probs_N_K_C.shape)}.")
    if not log_probs_N_K_C.is_floating_point():
        raise ValueError(f"log_probs_N_K_C must be a floating-point tensor, got {log_probs_N_K_C.dtype}.")
    if min(log_probs_N_K_C.shape) < 1:
        raise ValueError(
            f"log_probs_N_K_C must be non-empty in every dimension, got shape {tuple(log_probs_N_K_C.shape)}."
        )
    if not bool(torch.isfinite(log_probs_N_K_C).all()):
        raise ValueError("log_probs_N_K_C contains NaN or infinite values; pass finite log-probabilities.")
    lp_N_K_C = log_probs_N_K_C.detach().to(torch.float64)
    lse_N_K_1 = torch.logsumexp(lp_N_K_C, dim=2, keepdim=True)
    if float(lse_N_K_1.abs().max()) > 1e-3:
        raise ValueError(
            "log_probs_N_K_C is not normalised (logsumexp over classes differs from 0 by more than 1e-3): "
            "pass log-probabilities (log_softmax), not logits."
        )
    return lp_N_K_C - lse_N_K_1  # float64, renormalised (float32 inputs are off by up to ~1e-7)


def _check_batch_size(batch_size, N: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= N:
        raise ValueError(f"batch_size must be an int between 1 and the pool size {N}, got {batch_size!r}.")
