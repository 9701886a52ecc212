"""EPIG (Bickford Smith et al., AISTATS 2023): expected predictive information gain over a target distribution.

    EPIG(x) = E_{x*}[ I(y; y* | x, x*) ]
            = H[p̄(y|x)] + E_{x*} H[p̄(y*|x*)] − E_{x*} H[p̂(y, y*|x, x*)],
    p̂(y, y*|x, x*) = (1/K) Σ_k p_k(y|x) p_k(y*|x*)

with the K MC samples *paired*: sample k of the pool and of the targets is the same sub-network (the loop scores both
with the same K masks). The estimated joint's marginals are exactly p̄(y|x) and p̄(y*|x*), so every term is a true
mutual information (≥ 0); rounding below 0 is clamped. Float64, 0·log 0 = 0 (xlogy), chunked over the pool so the
[n, C, M, C] joint of a chunk stays within `memory_bytes`.
"""

from __future__ import annotations

import torch

from batchbald.acquisition.scores import _check_log_probs

EPIG_MEMORY_BYTES = 256 * 2**20


def _entropy(probs: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return -torch.xlogy(probs, probs).sum(dim=dims)


def epig_scores(
    log_probs_N_K_C: torch.Tensor, target_log_probs_M_K_C: torch.Tensor, *, memory_bytes: int = EPIG_MEMORY_BYTES
) -> torch.Tensor:
    """EPIG of every pool point over the M targets, [N] float64 nats in [0, log C]. The pool and targets must share
    their K MC samples (same masks, same order) and their C classes."""
    target_log_probs_M_K_C = _check_log_probs(target_log_probs_M_K_C)
    lp_N_K_C = log_probs_N_K_C.to(torch.float64)
    N, K, C = lp_N_K_C.shape
    M, K_t, C_t = target_log_probs_M_K_C.shape
    if (K_t, C_t) != (K, C):
        raise ValueError(
            f"target_log_probs_M_K_C must share K and C with the pool's log_probs_N_K_C ({K}, {C}), got ({K_t}, {C_t})"
        )
    p_t_M_K_C = target_log_probs_M_K_C.exp()
    p_t_K_MC = p_t_M_K_C.permute(1, 0, 2).reshape(K, M * C)  # [K, M·C]
    mean_target_entropy = _entropy(p_t_M_K_C.mean(dim=1), (1,)).mean()  # E_{x*} H[p̄(y*|x*)]
    chunk = max(1, memory_bytes // (8 * C * M * C * 2))
    scores_N = torch.empty(N, dtype=torch.float64, device=lp_N_K_C.device)
    for start in range(0, N, chunk):
        p_n_K_C = lp_N_K_C[start : start + chunk].exp()
        n = p_n_K_C.shape[0]
        # joint [n, C, M·C] = (1/K) Σ_k p_k(y|x) p_k(y*|x*), one matrix product per chunk
        joint_n_C_MC = torch.matmul(p_n_K_C.transpose(1, 2), p_t_K_MC).div_(K)
        joint_entropy_n = _entropy(joint_n_C_MC.view(n, C, M, C), (1, 3)).mean(dim=1)  # E_{x*} H[p̂(y, y*)]
        pool_entropy_n = _entropy(p_n_K_C.mean(dim=1), (1,))
        scores_N[start : start + n] = pool_entropy_n + mean_target_entropy - joint_entropy_n
    return scores_N.clamp_(min=0.0)
