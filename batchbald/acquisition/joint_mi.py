"""BatchBALD: the greedy maximiser of the joint mutual information I(y_1..y_b; w) (paper Algorithm 1, SPEC §7).

    result = batchbald_batch(log_probs_N_K_C, batch_size, num_samples=None, seed=None)   # result.batch, result.steps

See `batchbald_batch` for the estimators (exact joint tables, then the importance-sampled estimator of appendix C).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from batchbald.acquisition.scores import AcquisitionBatch, _as_f64

# Probabilities are floored here before the joint products, so every joint probability is > 0 and log() stays
# finite (0·log 0 = 0 up to ~1e-247). Far below any probability a model can express in float32.
_PROB_FLOOR = 1e-250
# Exact regime: configurations of the chosen points are dropped from the smallest up while their total probability
# stays below this; it moves any joint entropy by less than _TAIL_MASS · log C (< 1e-12 nats).
_TAIL_MASS = 1e-13
# Candidates whose upper bound is within this of the best gain found are still evaluated (covers rounding).
_BOUND_MARGIN = 1e-9
# Gains within this of the best count as a tie; ties go to the lowest pool index (device/blocking independent).
_TIE_TOL = 1e-12
# CPU: elements per candidate block (two float64 buffers of this size stay cache-resident) unless the budget is lower.
_CPU_BLOCK_ELEMENTS = 1 << 19
_CPU_MEMORY_BUDGET = 256 << 20
_CUDA_MEMORY_BUDGET = 1 << 30  # per run: several runs share one GPU (README "Several runs on one GPU")
# Clustered bound: max(_MIN_GROUPS, _GROUPS_PER_K · K) groups of rows, used when the table has at least
# _GROUP_RATIO times as many rows (else the bound costs about as much as the gains themselves).
_MIN_GROUPS, _GROUPS_PER_K, _GROUP_RATIO = 32, 4, 4
_KMEANS_ITERATIONS, _KMEANS_FIT_ROWS, _ASSIGN_CHUNK = 3, 8192, 1 << 20


@dataclass
class StepStats:
    """Work done by one greedy BatchBALD step (for benchmarks)."""

    step: int  # number of points already chosen
    regime: str  # "bald", "exact" or "sampled"
    configurations: int  # rows of the joint table before de-duplication / pruning (C^i or M)
    rows: int  # rows actually used (unique sampled configurations, or exact ones above the tail mass)
    candidates: int  # candidates whose gain was computed (the others were bounded out)
    elements: int = 0  # candidate × row pairs processed (gains and bounds); full evaluation: candidates × rows
    seconds: float = 0.0


@dataclass
class BatchBALDResult:
    batch: AcquisitionBatch
    steps: list[StepStats] = field(default_factory=list)


def default_num_samples(K: int) -> int:
    """The paper's budget M = (40000 // K) · K (40000 for K = 10, 20, 50, 100)."""
    return max(1, 40000 // K) * K


CONFIGURATIONS = ("nested", "redrawn")  # how the sampled regime draws the chosen points' labels (batchbald_batch)


def batchbald_batch(
    log_probs_N_K_C, batch_size, *, num_samples=None, seed=None, prune=True, memory_budget=None, configurations="nested"
) -> BatchBALDResult:
    """Greedy BatchBALD (paper Algorithm 1) in float64, with per-step statistics. Inputs as `select` (unchecked).

    Step i (i points A already chosen) scores every candidate n by the joint entropy H(y_A, y_n):
    - i = 0: BALD.
    - exact while C^i ≤ M (M = num_samples, default `default_num_samples(K)`): the C^i × K table P̂_A of per-ω joint
      probabilities of A is extended by an outer product with the last pick (kept in log space), and
      H = Σ_m Σ_c −p log p with p = P̂_A P̂_nᵀ / K over all configurations m (those with total probability < 1e-13
      are left out of the candidate term; effect < 1e-12 nats).
    - sampled once C^i > M: the importance-sampled estimator of appendix C, eq. (36), with S = M // K configurations
      of A drawn per ω_k (stratified, M' = S·K in all) by a torch.Generator seeded with `seed` (None → 0).
      The configurations are drawn from scratch at the first sampled step, then reused and extended by one column
      (the new pick's label, drawn under the same ω_k) at each later step: every row stays a draw from p(y_A | ω_k),
      the batch's scores are computed on nested samples, and the result is deterministic. configurations="redrawn"
      instead draws all M' configurations of the chosen points afresh at every sampled step, as the released code
      does (BlackHC/BatchBALD; results/fidelity/acquisition/): same estimator, independent noise from step to step.
      Eq. (36) is evaluated in the algebraically identical form
          H(y_A, y_n) ≈ (1/M') Σ_m [−log q_m + H(r_m P̂_n)],  q_m = mean_k P̂_A[m, k],  r_m = P̂_A[m, :] / (K q_m),
      i.e. with the 1/q weight folded into row-normalised posteriors r_m (no under/overflow in long batches);
      identical configurations are merged, weighted by their counts (same estimate, less work).
    The greedy gain is H(y_A, y_n) − H(y_A) − E H(y_n|ω); argmax, ties (within 1e-12) to the lowest index.
    scores[i] = H(y_A, y_n) − Σ_{j ∈ A ∪ n} E H(y_j|ω): the estimated joint MI of the first i+1 picks.

    prune=True computes the gains of only those candidates that can be the argmax (same picks as computing all):
    each candidate gets upper bounds on its gain from Jensen's inequality on the same rows, Σ_m w_m H(r_m P̂_n) ≤
    Σ_g W_g H(r̄_g P̂_n) for any grouping g of the rows (r̄_g their weighted mean; one group, then a weighted k-means
    grouping), and in the exact regime from submodularity (a gain never grows from one exact step to the next,
    appendix A); candidates are evaluated in decreasing order of bound until no bound reaches the best gain.
    Work is done in candidate blocks, cache-sized on CPU (≤ memory_budget bytes; default 256 MiB on CPU, a fixed
    1 GiB on CUDA): one GEMM P[block·C, K] @ r[K, rows] per block, then log, multiply and a
    weighted row reduction, into reused buffers.
    """
    if configurations not in CONFIGURATIONS:
        raise ValueError(f"configurations must be one of {', '.join(CONFIGURATIONS)}, got {configurations!r}")
    redraw = configurations == "redrawn"
    lp_N_K_C = _as_f64(log_probs_N_K_C)
    N, K, C = lp_N_K_C.shape
    device = lp_N_K_C.device
    M = default_num_samples(K) if num_samples is None else int(num_samples)
    S = max(1, M // K)
    generator = torch.Generator().manual_seed(0 if seed is None else int(seed))

    probs_N_K_C = lp_N_K_C.exp()
    cond_N = -(probs_N_K_C * lp_N_K_C).sum(dim=(1, 2)) / K
    kernel = _JointEntropyKernel(probs_N_K_C.clamp_(min=_PROB_FLOOR).transpose(1, 2).contiguous(), memory_budget)
    del probs_N_K_C

    chosen: list[int] = []
    scores: list[float] = []
    steps: list[StepStats] = []
    available_N = torch.ones(N, dtype=torch.bool, device=device)
    gain_bound_N = torch.full((N,), math.inf, dtype=torch.float64, device=device)  # submodularity (exact steps)
    log_joint_M_K = None  # log P̂_A: all C^i configurations (exact) or the M' sampled ones (sampled)
    configs_M_I = None  # sampled label configurations of the chosen points, [M', i] int64 on CPU
    chosen_cond = 0.0

    for i in range(batch_size):
        t0, elements_before = time.perf_counter(), kernel.elements
        if i == 0:  # H(y_n): one configuration, uniform posterior over ω
            weights_R = torch.ones(1, dtype=torch.float64, device=device)
            rows_K_R = torch.full((K, 1), 1.0 / K, dtype=torch.float64, device=device)
            joint_entropy_A, regime, configurations = 0.0, "bald", 1
        elif C**i <= M:
            lp_last_C_K = lp_N_K_C[chosen[-1]].t()
            if log_joint_M_K is None:
                log_joint_M_K = lp_last_C_K.contiguous()
            else:
                log_joint_M_K = (log_joint_M_K[:, None, :] + lp_last_C_K[None, :, :]).reshape(-1, K)
            log_q_M = torch.logsumexp(log_joint_M_K, dim=1) - math.log(K)
            q_M = log_q_M.exp()
            joint_entropy_A = float(-(q_M * log_q_M).sum())
            keep = _drop_tail(q_M)
            weights_R = q_M[keep]
            rows_K_R = (log_joint_M_K[keep] - (log_q_M[keep] + math.log(K))[:, None]).exp().t().contiguous()
            regime, configurations = "exact", log_joint_M_K.shape[0]
        else:
            if configs_M_I is None or redraw:  # draw all chosen points' labels
                configs_M_I = torch.stack([_draw_labels(lp_N_K_C[a], S, generator) for a in chosen], dim=1)
                log_joint_M_K = torch.zeros(configs_M_I.shape[0], K, dtype=torch.float64, device=device)
                for j, a in enumerate(chosen):
                    log_joint_M_K += lp_N_K_C[a].t()[configs_M_I[:, j].to(device)]
            else:  # extend every configuration by the last pick's label, drawn under the same ω_k
                labels_M = _draw_labels(lp_N_K_C[chosen[-1]], S, generator)
                configs_M_I = torch.cat([configs_M_I, labels_M[:, None]], dim=1)
                log_joint_M_K = log_joint_M_K + lp_N_K_C[chosen[-1]].t()[labels_M.to(device)]
            _, inverse_M, counts_U = torch.unique(configs_M_I, dim=0, return_inverse=True, return_counts=True)
            first_U = torch.full((counts_U.numel(),), configs_M_I.shape[0], dtype=torch.long).scatter_reduce_(
                0, inverse_M, torch.arange(configs_M_I.shape[0]), "amin"
            )
            log_joint_U_K = log_joint_M_K[first_U.to(device)]
            lse_U = torch.logsumexp(log_joint_U_K, dim=1)
            weights_R = counts_U.to(device=device, dtype=torch.float64) / configs_M_I.shape[0]
            joint_entropy_A = float((weights_R * (math.log(K) - lse_U)).sum())  # (1/M') Σ_m −log q_m
            rows_K_R = (log_joint_U_K - lse_U[:, None]).exp().t().contiguous()
            regime, configurations = "sampled", configs_M_I.shape[0]

        exact = regime != "sampled"
        candidates, gains = _candidate_gains(
            kernel, rows_K_R, weights_R, cond_N, available_N, gain_bound_N if exact else None, prune
        )
        if exact:
            gain_bound_N[candidates] = torch.minimum(gain_bound_N[candidates], gains)
        tied = gains >= gains.max() - _TIE_TOL
        winner = int(candidates[tied].min())
        gain = float(gains[candidates == winner][0])
        # H(y_A, y_n) − Σ_{A ∪ n} E H(y|ω) = H(y_A) + h_n − chosen_cond − cond_n = H(y_A) − chosen_cond + gain
        scores.append(joint_entropy_A - chosen_cond + gain)
        chosen.append(winner)
        chosen_cond += float(cond_N[winner])
        available_N[winner] = False
        steps.append(
            StepStats(
                i,
                regime,
                configurations,
                rows_K_R.shape[1],
                int(candidates.numel()),
                kernel.elements - elements_before,
                time.perf_counter() - t0,
            )
        )

    return BatchBALDResult(AcquisitionBatch(chosen, scores), steps)


def _drop_tail(q_M: torch.Tensor) -> torch.Tensor:
    """Indices of the configurations to keep: all but the smallest ones whose total mass is < _TAIL_MASS.

    Sorted and summed on the CPU (at most M values): CUDA's sort and cumsum need not be bitwise repeatable, and
    which rows are kept must not depend on the run."""
    q_cpu = q_M.cpu()
    order = torch.argsort(q_cpu, stable=True)
    tail = torch.cumsum(q_cpu[order], dim=0) < _TAIL_MASS
    return order[~tail].to(q_M.device)


def _draw_labels(lp_K_C: torch.Tensor, S: int, generator: torch.Generator) -> torch.Tensor:
    """S labels per ω_k from p(y | ω_k), stratified: row k·S + s. [K·S] int64 on CPU."""
    probs_K_C = torch.softmax(lp_K_C.to("cpu"), dim=1)
    return torch.multinomial(probs_K_C, S, replacement=True, generator=generator).reshape(-1)


def _candidate_gains(kernel, rows_K_R, weights_R, cond_N, available_N, gain_bound_N, prune):
    """Gains h_n − cond_n of every candidate that can be the argmax: (indices, gains), both on the device."""
    if not prune:
        candidates = available_N.nonzero().squeeze(1)
        return candidates, kernel.entropies(rows_K_R, weights_R, candidates) - cond_N[candidates]
    K, R = rows_K_R.shape
    total_w = weights_R.sum()
    mixture_N_C = kernel.probs_N_C_K @ ((rows_K_R @ weights_R) / total_w)  # one group: Jensen over all rows
    bound_N = total_w * -(mixture_N_C * mixture_N_C.log()).sum(dim=1) - cond_N
    if gain_bound_N is not None:
        bound_N = torch.minimum(bound_N, gain_bound_N)
    candidates = available_N.nonzero().squeeze(1)
    best = -math.inf
    parts_idx, parts_gain = [], []
    groups = max(_MIN_GROUPS, _GROUPS_PER_K * K)
    if groups * _GROUP_RATIO <= R and candidates.numel() > 1:
        centroids_K_G, weights_G = _cluster(rows_K_R, weights_R, groups)
        bound_N[candidates] = torch.minimum(
            bound_N[candidates], kernel.entropies(centroids_K_G, weights_G, candidates) - cond_N[candidates]
        )
        top = candidates[bound_N[candidates].argmax()].reshape(1)  # a first gain to compare the bounds with
        parts_idx.append(top)
        parts_gain.append(kernel.entropies(rows_K_R, weights_R, top) - cond_N[top])
        best = float(parts_gain[0][0])
        candidates = candidates[(bound_N[candidates] >= best - _BOUND_MARGIN) & (candidates != top[0])]
    # gains in decreasing order of bound until no remaining bound reaches the best gain
    sorted_bounds, order = torch.sort(bound_N[candidates], descending=True, stable=True)
    order = candidates[order]
    bounds = sorted_bounds.cpu()
    block = kernel.block_size(R)
    done = 0
    while done < order.numel() and float(bounds[done]) >= best - _BOUND_MARGIN:
        idx = order[done : done + block]
        gains = kernel.entropies(rows_K_R, weights_R, idx) - cond_N[idx]
        parts_idx.append(idx)
        parts_gain.append(gains)
        best = max(best, float(gains.max()))
        done += idx.numel()
    return torch.cat(parts_idx), torch.cat(parts_gain)


def _cluster(rows_K_R: torch.Tensor, weights_R: torch.Tensor, groups: int):
    """Weighted k-means of the rows r_m (posteriors over ω) into ≤ `groups` clusters. Deterministic: centroids start
    at rows at evenly spaced weight quantiles and are fitted on a strided subsample of large tables; then every row
    is assigned once. Returns (weighted mean row of each non-empty cluster [K, G], cluster weights [G]); the bound
    needs only a partition and the exact weighted means of its parts, k-means just makes it tight."""
    K, R = rows_K_R.shape
    device = rows_K_R.device
    X_R_K = rows_K_R.t()
    cumulative = torch.cumsum(weights_R, 0)
    targets = (torch.arange(groups, dtype=torch.float64, device=device) + 0.5) / groups * cumulative[-1]
    centroids_G_K = X_R_K[torch.unique(torch.searchsorted(cumulative, targets).clamp_(max=R - 1))]
    fit = torch.linspace(0, R - 1, min(R, _KMEANS_FIT_ROWS), device=device).round().long()
    for _ in range(_KMEANS_ITERATIONS):
        weights_G, sums_G_K = _group_sums(
            X_R_K[fit], weights_R[fit], _nearest(X_R_K[fit], centroids_G_K), centroids_G_K.shape[0]
        )
        filled = weights_G > 0
        centroids_G_K = torch.where(filled[:, None], sums_G_K / weights_G.clamp(min=1e-300)[:, None], centroids_G_K)
    weights_G, sums_G_K = _group_sums(X_R_K, weights_R, _nearest(X_R_K, centroids_G_K), centroids_G_K.shape[0])
    filled = weights_G > 0
    return (sums_G_K[filled] / weights_G[filled, None]).t().contiguous(), weights_G[filled]


def _group_sums(X_R_K, weights_R, labels_R, G):
    weights_G = torch.zeros(G, dtype=torch.float64, device=X_R_K.device).index_add_(0, labels_R, weights_R)
    sums_G_K = torch.zeros(G, X_R_K.shape[1], dtype=torch.float64, device=X_R_K.device).index_add_(
        0, labels_R, X_R_K * weights_R[:, None]
    )
    return weights_G, sums_G_K


def _nearest(X_R_K: torch.Tensor, centroids_G_K: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) of every row, in row chunks of bounded memory."""
    sq_G = (centroids_G_K * centroids_G_K).sum(1)
    step = max(1, _ASSIGN_CHUNK // centroids_G_K.shape[0])
    c_K_G = centroids_G_K.t()
    return torch.cat(
        [torch.addmm(sq_G, X_R_K[r : r + step], c_K_G, alpha=-2).argmin(dim=1) for r in range(0, X_R_K.shape[0], step)]
    )


class _JointEntropyKernel:
    """h_n = Σ_r w_r Σ_c −p log p with p[c, r] = probs[n, c, :] @ rows[:, r], for blocks of candidates.

    Per block one GEMM P[block·C, K] @ rows[K, R] (this orientation runs 1.3–2x faster than the transposed one with
    MKL at small K), then log, multiply and a matrix-vector product with the weights, into reused buffers.
    """

    def __init__(self, probs_N_C_K: torch.Tensor, memory_budget: int | None):
        self.probs_N_C_K = probs_N_C_K
        N, C, K = probs_N_C_K.shape
        self.K, self.C = K, C
        self.device = probs_N_C_K.device
        if memory_budget is None:  # fixed, not "free memory": the same shapes whatever else runs on the GPU
            memory_budget = _CUDA_MEMORY_BUDGET if self.device.type == "cuda" else _CPU_MEMORY_BUDGET
        self.budget_elements = max(1 << 12, memory_budget // 8 // 2)  # two float64 buffers
        self.target_elements = (
            self.budget_elements if self.device.type == "cuda" else min(self.budget_elements, _CPU_BLOCK_ELEMENTS)
        )
        self._buffers: dict[str, torch.Tensor] = {}
        self.elements = 0  # candidate × row pairs processed so far (work counter for benchmarks)

    def _steps(self, rows: int) -> tuple[int, int]:
        """(rows per chunk, candidates per block): chunks of rows only for tables too big for one candidate."""
        row_step = max(1, min(rows, self.target_elements // self.C))
        return row_step, max(1, self.target_elements // (row_step * self.C))

    def block_size(self, rows: int) -> int:
        return self._steps(rows)[1]

    def _buffer(self, name: str, numel: int) -> torch.Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=torch.float64, device=self.device)
            self._buffers[name] = buf
        return buf[:numel]

    def entropies(self, rows_K_R: torch.Tensor, weights_R: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """h_n for each candidate index, [len(candidates)] float64."""
        K, R = rows_K_R.shape
        C = self.C
        out = torch.empty(candidates.numel(), dtype=torch.float64, device=self.device)
        self.elements += candidates.numel() * R
        row_step, block = self._steps(R)
        for start in range(0, candidates.numel(), block):
            idx = candidates[start : start + block]
            B = idx.numel()
            probs_BC_K = torch.index_select(
                self.probs_N_C_K, 0, idx, out=self._buffer("p", B * C * K).view(B, C, K)
            ).view(B * C, K)
            acc_BC = None
            for r0 in range(0, R, row_step):
                r1 = min(R, r0 + row_step)
                joint = self._buffer("joint", B * C * (r1 - r0)).view(B * C, r1 - r0)
                torch.matmul(probs_BC_K, rows_K_R[:, r0:r1], out=joint)
                logs = self._buffer("log", joint.numel()).view_as(joint)
                torch.log(joint, out=logs)
                logs.mul_(joint)
                part = logs @ weights_R[r0:r1]
                acc_BC = part if acc_BC is None else acc_BC + part
            out[start : start + B] = -acc_BC.view(B, C).sum(dim=1)
        return out
