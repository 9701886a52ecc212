"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on last-layer gradient embeddings.

    g(x) = ∂CE(W h(x) + b, ŷ)/∂W = (p̂(x) − e_ŷ) ⊗ h(x),   ŷ = argmax p̂(x)

p̂ and h are the *deterministic* net's (dropout off, as Ash et al.): its class probabilities and penultimate features.
The gradient is taken of the cross-entropy of the logits, not of a log-softmax output (one peer's embedding is then
−e_ŷ ⊗ h, which drops p̂ and BADGE's uncertainty scaling). Seeding as Ash et al.: the first centre is the point of
largest ‖g‖, then each next one is drawn with probability ∝ D², the squared distance to the nearest centre so far,
with chosen points excluded (a draw from a seeded generator, so a round's batch is reproducible).

The embeddings are never built for the seeding: ‖g_i − g_j‖² = ‖q_i‖²‖h_i‖² + ‖q_j‖²‖h_j‖² − 2 (q_i·q_j)(h_i·h_j)
with q = p̂ − e_ŷ, so memory is O(N·(C + D)) instead of O(N·C·D) and each pick costs O(N·(C + D)).
"""

from __future__ import annotations

import torch

from batchbald.acquisition.scores import AcquisitionBatch


def residual(probs_N_C: torch.Tensor) -> torch.Tensor:
    """q = p − e_ŷ (ŷ = argmax p, ties to the lower class), float64 [N, C]."""
    q_N_C = probs_N_C.to(torch.float64).clone()
    q_N_C[torch.arange(q_N_C.shape[0], device=q_N_C.device), q_N_C.argmax(dim=1)] -= 1.0
    return q_N_C


def grad_embeddings(features_N_D: torch.Tensor, probs_N_C: torch.Tensor) -> torch.Tensor:
    """BADGE's embeddings (p − e_ŷ) ⊗ h flattened class-major, [N, C·D] float64: column c·D + d is
    (p_c − [c = ŷ]) h_d, the gradient of CE(W h + b, ŷ) with respect to W[c, d]."""
    h_N_D = features_N_D.to(torch.float64)
    return (residual(probs_N_C).unsqueeze(2) * h_N_D.unsqueeze(1)).reshape(h_N_D.shape[0], -1)


def _check_inputs(features_N_D: torch.Tensor, probs_N_C: torch.Tensor, N: int) -> None:
    for name, t in (("pool_features_N_D", features_N_D), ("pool_probs_N_C", probs_N_C)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != N:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a [N, ·] tensor with N = {N} pool points, got {shape}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def badge_batch(
    log_probs_N_K_C: torch.Tensor,
    batch_size: int,
    *,
    pool_features_N_D: torch.Tensor,
    pool_probs_N_C: torch.Tensor,
    seed: int = 0,
) -> AcquisitionBatch:
    """BADGE's batch: k-means++ seeding on the factorised gradient embeddings. log_probs_N_K_C gives only N (BADGE
    uses the deterministic net). Scores: ‖g‖² for the first pick, then each pick's D² when it was drawn."""
    N = log_probs_N_K_C.shape[0]
    _check_inputs(pool_features_N_D, pool_probs_N_C, N)
    q_N_C = residual(pool_probs_N_C)
    h_N_D = pool_features_N_D.to(torch.float64)
    norms2_N = q_N_C.square().sum(1) * h_N_D.square().sum(1)  # ‖g‖²
    generator = torch.Generator(device=h_N_D.device).manual_seed(seed)

    first = int(torch.argmax(norms2_N))  # ties to the lower index
    picked, scores = [first], [float(norms2_N[first])]
    chosen_N = torch.zeros(N, dtype=torch.bool, device=h_N_D.device)
    chosen_N[first] = True
    dist2_N = _dist2_to(first, q_N_C, h_N_D, norms2_N)
    for _ in range(batch_size - 1):
        weights_N = dist2_N.masked_fill(chosen_N, 0.0)
        if float(weights_N.sum()) <= 0.0:  # every unchosen point sits on a centre: uniform over the unchosen
            weights_N = (~chosen_N).to(torch.float64)
        pick = int(torch.multinomial(weights_N, 1, generator=generator))
        picked.append(pick)
        scores.append(float(dist2_N[pick]))
        chosen_N[pick] = True
        torch.minimum(dist2_N, _dist2_to(pick, q_N_C, h_N_D, norms2_N), out=dist2_N)
    return AcquisitionBatch(picked, scores)


badge_batch.needs_predictions = False  # the deterministic net's features and probabilities only


def _dist2_to(j: int, q_N_C: torch.Tensor, h_N_D: torch.Tensor, norms2_N: torch.Tensor) -> torch.Tensor:
    """‖g_i − g_j‖² for every i, from the factorisation (clamped at 0 against rounding), float64 [N]."""
    dots_N = (q_N_C @ q_N_C[j]) * (h_N_D @ h_N_D[j])
    return (norms2_N + norms2_N[j] - 2.0 * dots_N).clamp_(min=0.0)
