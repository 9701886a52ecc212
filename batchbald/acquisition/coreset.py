"""CoreSet (Sener & Savarese, ICLR 2018) as greedy k-centre on the deterministic net's penultimate features.

Repeat b times: pick u = argmax_{u in pool} min_{c in labelled ∪ picked} ‖φ(u) − φ(c)‖₂ (ties to the lower index).
The labelled points are the initial centres; with none labelled the first pick is drawn uniformly (seeded). The
minimum distances are kept in one [N] vector and updated after every pick (never an N×N matrix), and distances are
computed as ‖a − b‖ directly (torch.cdist without the matrix-product shortcut, which cancels catastrophically for
nearby points) in float64, in chunks of the labelled set.
"""

from __future__ import annotations

import torch

from batchbald.acquisition.scores import AcquisitionBatch

CHUNK_BYTES = 64 * 2**20


def _distances(a_N_D: torch.Tensor, b_M_D: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a_N_D, b_M_D, compute_mode="donot_use_mm_for_euclid_dist")


def min_distances(pool_N_D: torch.Tensor, centres_L_D: torch.Tensor) -> torch.Tensor:
    """min over centres of ‖φ(u) − φ(c)‖ for every pool point, float64 [N]; +inf with no centres."""
    N = pool_N_D.shape[0]
    out_N = torch.full((N,), float("inf"), dtype=torch.float64, device=pool_N_D.device)
    step = max(1, CHUNK_BYTES // (8 * max(1, N)))  # an [N, step] block of distances
    for start in range(0, centres_L_D.shape[0], step):
        block_N_l = _distances(pool_N_D, centres_L_D[start : start + step])
        torch.minimum(out_N, block_N_l.amin(dim=1), out=out_N)
    return out_N


def coreset_batch(
    log_probs_N_K_C: torch.Tensor,
    batch_size: int,
    *,
    pool_features_N_D: torch.Tensor,
    labelled_features_L_D: torch.Tensor,
    seed: int = 0,
) -> AcquisitionBatch:
    """Greedy k-centre batch. log_probs_N_K_C gives only N. Scores: each pick's distance to its nearest centre
    (0.0 for a first pick drawn with no centre)."""
    N = log_probs_N_K_C.shape[0]
    is_tensor = isinstance(pool_features_N_D, torch.Tensor)
    if not is_tensor or pool_features_N_D.dim() != 2 or pool_features_N_D.shape[0] != N:
        shape = tuple(pool_features_N_D.shape) if is_tensor else type(pool_features_N_D).__name__
        raise ValueError(f"pool_features_N_D must be a [N, D] tensor with N = {N}, got {shape}")
    pool_N_D = pool_features_N_D.to(torch.float64)
    lab_ok = isinstance(labelled_features_L_D, torch.Tensor) and (
        labelled_features_L_D.numel() == 0
        or (labelled_features_L_D.dim() == 2 and labelled_features_L_D.shape[1] == pool_N_D.shape[1])
    )
    if not lab_ok:
        shape = tuple(labelled_features_L_D.shape) if isinstance(labelled_features_L_D, torch.Tensor) else None
        raise ValueError(f"labelled_features_L_D must be a [L, D] tensor with D = {pool_N_D.shape[1]}, got {shape}")
    labelled_L_D = labelled_features_L_D.to(torch.float64).reshape(-1, pool_N_D.shape[1])
    for name, t in (("pool_features_N_D", pool_N_D), ("labelled_features_L_D", labelled_L_D)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    dist_N = min_distances(pool_N_D, labelled_L_D)
    picked, scores = [], []
    if labelled_L_D.shape[0] == 0:
        g = torch.Generator().manual_seed(seed)
        first = int(torch.randint(N, (1,), generator=g))
        picked.append(first)
        scores.append(0.0)  # no centre yet: no distance
        dist_N = _distances(pool_N_D, pool_N_D[first : first + 1]).squeeze(1)
    dist_N[picked] = -1.0
    while len(picked) < batch_size:
        pick = int(torch.argmax(dist_N))  # first maximum: ties to the lower index
        picked.append(pick)
        scores.append(float(dist_N[pick]))
        torch.minimum(dist_N, _distances(pool_N_D, pool_N_D[pick : pick + 1]).squeeze(1), out=dist_N)
        dist_N[picked] = -1.0
    return AcquisitionBatch(picked, scores)


coreset_batch.needs_predictions = False  # the deterministic net's features only
