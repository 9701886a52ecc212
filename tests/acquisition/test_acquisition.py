"""Tests for batchbald.acquisition against an independent brute-force numpy reference (enumerates every label
configuration; no matrix-product shortcuts)."""

import math

import numpy as np
import pytest
import torch

from batchbald.acquisition import (
    ACQUISITION_NAMES,
    batchbald_batch,
    default_num_samples,
    requested_inputs,
    resolve,
    select,
)
from batchbald.plugins import probe_inputs

# ------------------------------------------------------------------------------------------------------------------
# brute-force reference


def random_log_probs(rng, N, K, C, sharpness=None):
    """float64 [N, K, C] log-probabilities with a per-point preference plus per-sample disagreement."""
    sharpness = rng.uniform(0.3, 3.0) if sharpness is None else sharpness
    logits = rng.standard_normal((N, 1, C)) * sharpness + rng.standard_normal((N, K, C)) * rng.uniform(0.3, 2.0)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def ref_joint_entropy(probs_N_K_C, subset):
    """H(y_subset) with p(y) = (1/K) Σ_k Π_j p_k(y_j), summing over all C^n configurations."""
    _, K, C = probs_N_K_C.shape
    n = len(subset)
    configs = np.indices((C,) * n).reshape(n, -1).T  # [C^n, n]
    joint = np.ones((configs.shape[0], K))
    for j, point in enumerate(subset):
        joint *= probs_N_K_C[point][:, configs[:, j]].T
    p = joint.mean(axis=1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def ref_conditional_entropy(probs_N_K_C):
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs_N_K_C > 0, probs_N_K_C * np.log(probs_N_K_C), 0.0)
    return -terms.sum(axis=(1, 2)) / probs_N_K_C.shape[1]


def ref_mi(probs_N_K_C, subset, cond=None):
    cond = ref_conditional_entropy(probs_N_K_C) if cond is None else cond
    return ref_joint_entropy(probs_N_K_C, subset) - float(sum(cond[j] for j in subset))


def ref_greedy(probs_N_K_C, b):
    """Paper Algorithm 1 by enumeration; ties to the first index."""
    cond = ref_conditional_entropy(probs_N_K_C)
    chosen, scores = [], []
    for _ in range(b):
        best, best_n = -math.inf, None
        for n in range(probs_N_K_C.shape[0]):
            if n in chosen:
                continue
            value = ref_mi(probs_N_K_C, chosen + [n], cond)
            if value > best + 1e-12:  # near-ties (rounding) go to the first index, as in select
                best, best_n = value, n
        chosen.append(best_n)
        scores.append(best)
    return chosen, scores


def ref_bald(lp_N_K_C):
    p = np.exp(lp_N_K_C)
    mean = p.mean(axis=1)
    return -(mean * np.log(mean)).sum(axis=1) - ref_conditional_entropy(p)


# ------------------------------------------------------------------------------------------------------------------
# exact regime


@pytest.mark.parametrize("case", range(40))
def test_exact_regime_matches_brute_force(case):
    rng = np.random.default_rng(1000 + case)
    N, K, C = int(rng.integers(3, 9)), int(rng.integers(1, 7)), int(rng.integers(2, 5))
    b = int(rng.integers(1, min(N, 4) + 1))
    lp = random_log_probs(rng, N, K, C)
    dtype = torch.float32 if case % 4 == 3 else torch.float64
    lp_t = torch.from_numpy(lp).to(dtype)
    lp = lp_t.double().numpy()  # the reference sees the values we pass, renormalised in float64 as select does
    lp = lp - np.log(np.exp(lp).sum(axis=-1, keepdims=True))
    want_idx, want_scores = ref_greedy(np.exp(lp), b)
    exact_budget = C ** (b - 1)  # the largest joint table used is C^(b-1) rows: exact all the way
    for prune in (True, False):
        got = batchbald_batch(torch.from_numpy(lp), b, num_samples=exact_budget, prune=prune)
        assert [s.regime for s in got.steps][1:] == ["exact"] * (b - 1)
        assert got.batch.indices == want_idx
        np.testing.assert_allclose(got.batch.scores, want_scores, rtol=0, atol=1e-8)
    via_select = select("batchbald", lp_t, b, num_samples=exact_budget)
    assert via_select.indices == want_idx


def test_reference_picks_of_the_peer_benchmark_case_a():
    """PEER_SPEED.md case A (N=10^4, K=20, C=10, seed 0): the exact picks redux and the official code agree on."""
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((10000, 1, 10)) * 2.0
    noise = rng.standard_normal((10000, 20, 10)) * 1.0
    logits = shared + noise
    m = logits.max(axis=-1, keepdims=True)
    lp = logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))
    got = select("batchbald", torch.from_numpy(lp), 4, num_samples=10000)  # the 5th (10^4 rows) is in the benchmark
    assert got.indices == [5394, 9161, 3472, 2666]
    np.testing.assert_allclose(got.scores, [0.466841, 0.901771, 1.279805, 1.608096], atol=5e-7)


def test_batch_size_one_equals_bald():
    rng = np.random.default_rng(1)
    for _ in range(5):
        lp = random_log_probs(rng, 50, 7, 5)
        got = select("batchbald", torch.from_numpy(lp), 1)
        bald = ref_bald(lp)
        assert got.indices == [int(np.argmax(bald))]
        assert got.scores[0] == pytest.approx(bald.max(), abs=1e-10)
        assert select("bald", torch.from_numpy(lp), 1).indices == got.indices


def test_joint_mi_at_most_sum_of_bald():
    """Appendix B.1: I(y_1..y_b; w) ≤ Σ BALD, for our greedy batches and for random sets."""
    rng = np.random.default_rng(2)
    for _ in range(10):
        lp = random_log_probs(rng, 12, 5, 3)
        bald = ref_bald(lp)
        got = select("batchbald", torch.from_numpy(lp), 5, num_samples=3**4)
        for i in range(5):
            assert got.scores[i] <= bald[got.indices[: i + 1]].sum() + 1e-10
        subset = list(rng.choice(12, size=4, replace=False))
        assert ref_mi(np.exp(lp), subset) <= bald[subset].sum() + 1e-10


def _our_mi(lp, subset):
    """Joint MI of a set with our implementation: greedy over a pool that is exactly the set ends with the set."""
    sub = torch.from_numpy(lp[subset])
    return select("batchbald", sub, len(subset), num_samples=lp.shape[2] ** len(subset)).scores[-1]


def test_joint_mi_is_submodular():
    """Appendix A, eq. (14): f(A∪{y1}) + f(A∪{y2}) ≥ f(A∪{y1,y2}) + f(A), with the reference and with ours."""
    rng = np.random.default_rng(3)
    for _ in range(15):
        lp = random_log_probs(rng, 9, int(rng.integers(2, 6)), int(rng.integers(2, 4)))
        perm = [int(x) for x in rng.permutation(9)]
        a, y1, y2 = perm[: int(rng.integers(1, 4))], perm[5], perm[6]
        for mi in (lambda s: ref_mi(np.exp(lp), s), lambda s: _our_mi(lp, s)):
            assert mi(a + [y1]) + mi(a + [y2]) >= mi(a + [y1, y2]) + mi(a) - 1e-10
        assert _our_mi(lp, a + [y1, y2]) == pytest.approx(ref_mi(np.exp(lp), a + [y1, y2]), abs=1e-9)


def test_greedy_gains_never_increase_in_the_exact_regime():
    rng = np.random.default_rng(4)
    for _ in range(5):
        lp = random_log_probs(rng, 40, 8, 4)
        scores = select("batchbald", torch.from_numpy(lp), 6, num_samples=4**5).scores
        gains = np.diff([0.0] + scores)
        assert np.all(np.diff(gains) <= 1e-10)


# ------------------------------------------------------------------------------------------------------------------
# duplicates


def _deterministic_point(K, bit, sharp=60.0):
    """K×2 log-probs: label = bit `bit` of k, other class at log-prob ≈ −60 (deterministic given w)."""
    labels = (np.arange(K) >> bit) & 1
    lp = np.full((K, 2), -sharp)
    lp[np.arange(K), labels] = 0.0
    return lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))


def test_exact_duplicate_of_a_pick_gains_nothing_when_labels_are_determined_by_w():
    K = 8
    x0, x1, x2 = (_deterministic_point(K, bit) for bit in range(3))
    lp = np.stack([x0, x0.copy(), x1, x2])  # position 1 duplicates position 0
    got = select("batchbald", torch.from_numpy(lp), 4)
    assert got.indices[0] == 0  # all BALD scores are ln 2: ties go to the lowest index
    assert got.indices[1:3] == [2, 3] and got.indices[3] == 1  # the duplicate only when nothing else gains
    gains = np.diff([0.0] + got.scores)
    np.testing.assert_allclose(gains[:3], math.log(2), atol=1e-9)
    assert abs(gains[3]) < 1e-9


def test_soft_duplicate_is_penalised_below_an_independent_point_with_equal_bald():
    """With soft predictions a copy still carries a little information (labels are independent given w), but less
    than a point with the same BALD score that is informative about other parameter samples."""
    K = 4
    x0 = _deterministic_point(K, 0, sharp=1.5)
    other = _deterministic_point(K, 1, sharp=1.5)
    lp = np.stack([x0, x0.copy(), other])
    bald = ref_bald(lp)
    assert bald[0] == pytest.approx(bald[2], abs=1e-12)
    got = select("batchbald", torch.from_numpy(lp), 3)
    assert got.indices == [0, 2, 1]
    duplicate_gain = got.scores[2] - got.scores[1]
    assert 0 <= duplicate_gain < bald[1]


# ------------------------------------------------------------------------------------------------------------------
# sampled regime


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_regime_is_close_to_exact(seed):
    rng = np.random.default_rng(50 + seed)
    N, K, C, b = 40, 10, 10, 6
    lp = random_log_probs(rng, N, K, C, sharpness=1.5)
    lp_t = torch.from_numpy(lp)
    probs = np.exp(lp)
    exact = batchbald_batch(lp_t, b, num_samples=C ** (b - 1))
    sampled = batchbald_batch(lp_t, b, num_samples=2000, seed=seed)
    assert [s.regime for s in sampled.steps] == ["bald", "exact", "exact", "exact", "sampled", "sampled"]
    assert sampled.batch.indices[:4] == exact.batch.indices[:4]
    mi_exact = ref_mi(probs, exact.batch.indices)
    mi_sampled = ref_mi(probs, sampled.batch.indices)
    assert mi_sampled >= 0.97 * mi_exact
    for i in range(4, b):
        true_prefix_mi = ref_mi(probs, sampled.batch.indices[: i + 1])
        assert sampled.batch.scores[i] == pytest.approx(true_prefix_mi, rel=0.03)


def test_sampled_regime_is_deterministic_and_depends_on_seed():
    rng = np.random.default_rng(6)
    lp = torch.from_numpy(random_log_probs(rng, 60, 5, 3, sharpness=0.5))
    a = select("batchbald", lp, 12, num_samples=20, seed=7)
    b = select("batchbald", lp, 12, num_samples=20, seed=7)
    assert a == b
    others = [select("batchbald", lp, 12, num_samples=20, seed=s) for s in range(8, 12)]
    assert any(o.scores != a.scores for o in others)


@pytest.mark.parametrize("N, K, C, b, M, sharpness", [(300, 10, 4, 8, 500, 2.0), (200, 20, 10, 7, 2000, 1.0)])
def test_pruning_and_memory_budget_do_not_change_the_result(N, K, C, b, M, sharpness):
    """Bound-pruned evaluation (clustered bounds), full evaluation and tiny blocks (row chunking) agree, in both
    regimes."""
    lp = torch.from_numpy(random_log_probs(np.random.default_rng(N), N, K, C, sharpness=sharpness))
    ref = batchbald_batch(lp, b, num_samples=M, seed=3, prune=False)
    assert {s.regime for s in ref.steps} == {"bald", "exact", "sampled"}
    for kwargs in ({"prune": True}, {"prune": True, "memory_budget": 1 << 15}, {"prune": False, "memory_budget": 1}):
        got = batchbald_batch(lp, b, num_samples=M, seed=3, **kwargs)
        assert got.batch.indices == ref.batch.indices
        np.testing.assert_allclose(got.batch.scores, ref.batch.scores, rtol=0, atol=1e-10)
    pruned = batchbald_batch(lp, b, num_samples=M, seed=3, memory_budget=1 << 15)  # small blocks: bounds bite
    assert sum(s.candidates for s in pruned.steps) < sum(s.candidates for s in ref.steps) / 2


def test_input_tensor_is_not_modified_and_may_require_grad():
    lp = torch.from_numpy(random_log_probs(np.random.default_rng(13), 20, 4, 3)).float().requires_grad_()
    before = lp.detach().clone()
    for name in ACQUISITION_NAMES:
        select(name, lp, 3, num_samples=9, inputs=probe_inputs(requested_inputs(resolve(name)), n=20, k=4, c=3))
    assert torch.equal(lp.detach(), before)


def test_default_num_samples_is_the_papers():
    assert default_num_samples(20) == 40000 and default_num_samples(100) == 40000 and default_num_samples(30) == 39990
    lp = torch.from_numpy(random_log_probs(np.random.default_rng(8), 30, 20, 47))
    steps = batchbald_batch(lp, 4).steps
    assert [s.regime for s in steps] == ["bald", "exact", "exact", "sampled"]  # 47^3 = 103823 > 40000
    assert steps[3].configurations == 40000


def test_never_returns_an_index_twice_and_no_nan():
    rng = np.random.default_rng(9)
    lp = random_log_probs(rng, 25, 4, 3, sharpness=8.0)
    lp[:10] = lp[0]  # many exact duplicates
    lp[12, :, 0] = -900.0  # probabilities far below float64's smallest normal
    lp[12] -= np.log(np.exp(lp[12]).sum(axis=1, keepdims=True))
    for num_samples in (10, 1000):
        got = select("batchbald", torch.from_numpy(lp), 25, num_samples=num_samples)
        assert sorted(got.indices) == list(range(25))
        assert all(math.isfinite(s) for s in got.scores)


def test_extreme_log_probs_match_brute_force():
    rng = np.random.default_rng(10)
    lp = random_log_probs(rng, 6, 4, 3, sharpness=1.0)
    lp[:, :, 0] -= 800.0  # class 0 has probability ~e^-800 (underflows to 0 in float64)
    lp -= np.log(np.exp(lp).sum(axis=-1, keepdims=True))
    want_idx, want_scores = ref_greedy(np.exp(lp), 3)
    got = select("batchbald", torch.from_numpy(lp), 3, num_samples=9)
    assert got.indices == want_idx
    np.testing.assert_allclose(got.scores, want_scores, atol=1e-8)


# ------------------------------------------------------------------------------------------------------------------
# independent scores


def test_baselines_match_numpy_formulas():
    rng = np.random.default_rng(11)
    lp = random_log_probs(rng, 200, 9, 6)
    p = np.exp(lp)
    mean = p.mean(axis=1)
    expected = {
        "bald": -(mean * np.log(mean)).sum(1) + (p * lp).sum(axis=(1, 2)) / 9,
        "entropy": -(mean * np.log(mean)).sum(1),
        "var_ratios": 1 - mean.max(1),
        "mean_std": p.std(axis=1, ddof=1).mean(axis=1),
        "margin": 1 - (np.sort(mean, axis=1)[:, -1] - np.sort(mean, axis=1)[:, -2]),
        "least_confidence": 1 - mean.max(1),
    }
    for dtype in (torch.float64, torch.float32):
        for name, scores in expected.items():
            got = select(name, torch.from_numpy(lp).to(dtype), 17)
            order = np.argsort(-scores, kind="stable")[:17]
            assert got.indices == order.tolist(), name
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            np.testing.assert_allclose(got.scores, scores[order], rtol=0, atol=tol)


def test_margin_and_least_confidence_on_known_cases():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]], dtype=torch.float64)
    lp = p.clamp(min=1e-300).log()[:, None, :].expand(3, 2, 3)  # two identical MC samples
    assert select("margin", lp, 3).indices == [1, 0, 2]  # a tie between the top two is the most uncertain
    np.testing.assert_allclose(sorted(select("margin", lp, 3).scores), [0.0, 0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(select("least_confidence", lp, 3).scores, [0.6, 0.3, 0.0], atol=1e-12)
    stochastic = select("margin", lp, 2, stochastic="power", seed=0)  # scores >= 0: the stochastic modes apply
    assert len(set(stochastic.indices)) == 2


def test_random_draws_distinct_points_from_the_seed():
    lp = torch.zeros(100, 1, 1)
    a = select("random", lp, 30, seed=5)
    assert len(set(a.indices)) == 30 and all(0 <= i < 100 for i in a.indices)
    assert a == select("random", lp, 30, seed=5)
    assert a.indices != select("random", lp, 30, seed=6).indices
    assert select("random", lp, 100, seed=1).indices != list(range(100))
    assert sorted(select("random", lp, 100).indices) == list(range(100))


def test_top_k_ties_go_to_the_lowest_index():
    lp = torch.log(torch.full((6, 3, 2), 0.5, dtype=torch.float64))
    for name in ("bald", "entropy", "var_ratios", "mean_std", "batchbald", "margin", "least_confidence"):
        assert select(name, lp, 3).indices == [0, 1, 2], name


# ------------------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("bogus", torch.zeros(3, 2, 1), 1), {}, "Unknown acquisition"),
        (("bald", torch.zeros(3, 2, 1), 0), {}, "batch_size"),
        (("bald", torch.zeros(3, 2, 1), 4), {}, "batch_size"),
        (("bald", torch.zeros(3, 2, 1), 1.0), {}, "batch_size"),
        (("bald", torch.zeros(3, 2), 1), {}, "3 dimensions"),
        (("bald", torch.zeros(3, 2, 1, 1), 1), {}, "3 dimensions"),
        (("bald", np.zeros((3, 2, 1)), 1), {}, "torch.Tensor"),
        (("bald", torch.zeros(3, 2, 1, dtype=torch.long), 1), {}, "floating-point"),
        (("bald", torch.full((3, 2, 1), float("nan")), 1), {}, "NaN"),
        (("bald", torch.full((3, 2, 1), -float("inf")), 1), {}, "infinite"),
        (("bald", torch.zeros(3, 2, 4), 1), {}, "not normalised"),
        (("mean_std", torch.zeros(3, 1, 1), 1), {}, "K = 2"),
        (("batchbald", torch.zeros(3, 2, 1), 1), {"num_samples": 0}, "num_samples"),
        (("batchbald", torch.zeros(3, 2, 1), 1), {"seed": 1.5}, "seed"),
    ],
)
def test_bad_inputs_raise_one_clear_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        select(*args, **kwargs)
    message = str(info.value)
    assert message.endswith(".") and message.count(". ") == 0


def test_names_are_the_contract():
    assert ACQUISITION_NAMES == (
        "random",
        "bald",
        "entropy",
        "var_ratios",
        "mean_std",
        "batchbald",
        "margin",
        "least_confidence",
        "epig",
        "badge",
        "coreset",
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(12)
    lp = torch.from_numpy(random_log_probs(rng, 500, 10, 10))
    for name in ACQUISITION_NAMES:
        inputs = probe_inputs(requested_inputs(resolve(name)), n=500, k=10, c=10)
        cpu = select(name, lp, 8, num_samples=2000, seed=1, inputs=inputs)
        gpu_inputs = {k: v.cuda() for k, v in inputs.items()}
        gpu = select(name, lp.cuda(), 8, num_samples=2000, seed=1, inputs=gpu_inputs)
        assert gpu.indices == cpu.indices, name
        np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-9)
