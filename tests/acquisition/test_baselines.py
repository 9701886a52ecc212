"""EPIG, BADGE and CoreSet against brute force: EPIG summed explicitly over (y, y*) and targets, BADGE's embedding
against autograd's gradient and its seeding against a reference on explicit embeddings, CoreSet against an O(N²)
greedy; and the input plumbing (a function names what it needs, select passes it or says what is missing)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from batchbald.acquisition import (
    INPUT_NAMES,
    acquisition_kind,
    badge_batch,
    coreset_batch,
    epig_scores,
    grad_embeddings,
    requested_inputs,
    select,
)
from batchbald.acquisition.badge import residual
from batchbald.models import FeatureError, MnistCNN, deterministic_outputs, last_linear


def log_probs(rng, n, k, c, sharpness=1.5):
    logits = rng.standard_normal((n, 1, c)) * sharpness + rng.standard_normal((n, k, c))
    return torch.from_numpy(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))


# ------------------------------------------------------------------------------------------------------------ EPIG


def ref_epig(lp_N_K_C, lp_M_K_C):
    """E_{x*} I(y; y*) from the definition: p(y, y*) = (1/K) Σ_k p_k(y) p_k(y*), every (y, y*) summed explicitly."""
    p, pt = lp_N_K_C.exp().numpy(), lp_M_K_C.exp().numpy()
    N, K, C = p.shape
    out = np.zeros(N)
    for n in range(N):
        total = 0.0
        for m in range(pt.shape[0]):
            mi = 0.0
            py, pys = p[n].mean(0), pt[m].mean(0)
            for y in range(C):
                for ys in range(C):
                    joint = sum(p[n, k, y] * pt[m, k, ys] for k in range(K)) / K
                    if joint > 0:
                        mi += joint * math.log(joint / (py[y] * pys[ys]))
            total += mi
        out[n] = total / pt.shape[0]
    return out


@pytest.mark.parametrize("seed,n,m,k,c", [(0, 7, 5, 4, 3), (1, 5, 3, 6, 4), (2, 4, 1, 1, 2)])
def test_epig_matches_the_definition(seed, n, m, k, c):
    rng = np.random.default_rng(seed)
    lp, lp_t = log_probs(rng, n, k, c), log_probs(rng, m, k, c)
    np.testing.assert_allclose(epig_scores(lp, lp_t).numpy(), ref_epig(lp, lp_t), rtol=1e-9, atol=1e-12)


def test_epig_chunking_does_not_change_scores_and_scores_are_bounded():
    rng = np.random.default_rng(3)
    lp, lp_t = log_probs(rng, 50, 8, 5), log_probs(rng, 9, 8, 5)
    whole = epig_scores(lp, lp_t)
    chunked = epig_scores(lp, lp_t, memory_bytes=1)  # one pool point per chunk
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-13)
    assert whole.dtype == torch.float64 and bool((whole >= 0).all()) and bool((whole <= math.log(5) + 1e-12).all())


def test_epig_is_zero_when_the_samples_agree_and_handles_zero_probabilities():
    rng = np.random.default_rng(4)
    same = log_probs(rng, 6, 1, 4).expand(6, 5, 4).clone()  # K identical samples: no epistemic uncertainty
    assert float(epig_scores(same, log_probs(rng, 3, 5, 4)).abs().max()) < 1e-12
    hard = torch.full((2, 2, 3), -1e4, dtype=torch.float64)  # one-hot samples that disagree
    hard[0, 0, 0] = hard[0, 1, 1] = hard[1, 0, 2] = hard[1, 1, 2] = 0.0
    targets = hard[:1].clone()
    scores = epig_scores(hard, targets)
    assert torch.isfinite(scores).all()
    assert scores[0] == pytest.approx(math.log(2)) and scores[1] == pytest.approx(0.0, abs=1e-12)


def test_epig_pairs_samples_unpaired_targets_change_the_score():
    rng = np.random.default_rng(5)
    lp, lp_t = log_probs(rng, 6, 6, 3, sharpness=0.2), log_probs(rng, 4, 6, 3, sharpness=0.2)
    shuffled = lp_t[:, torch.randperm(6, generator=torch.Generator().manual_seed(0))]
    assert not torch.allclose(epig_scores(lp, lp_t), epig_scores(lp, shuffled))


def test_epig_refuses_targets_of_another_shape():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="share K and C"):
        epig_scores(log_probs(rng, 4, 3, 3), log_probs(rng, 2, 4, 3))


# ----------------------------------------------------------------------------------------------------------- BADGE


def test_grad_embedding_is_autograds_last_layer_gradient_at_the_predicted_label():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4).double()
    h_N_D = torch.randn(9, 6, dtype=torch.float64).relu()
    probs_N_C = torch.softmax(layer(h_N_D), dim=1).detach()
    embeddings = grad_embeddings(h_N_D, probs_N_C)
    for i in range(9):
        layer.zero_grad()
        logits = layer(h_N_D[i : i + 1])
        F.cross_entropy(logits, logits.argmax(1)).backward()  # CE of the logits, not of a log-softmax output
        torch.testing.assert_close(embeddings[i], layer.weight.grad.flatten(), rtol=1e-12, atol=1e-12)
    q = residual(probs_N_C)  # the uncertainty term: ‖g‖ = ‖p − e_ŷ‖ ‖h‖, not ‖h‖
    torch.testing.assert_close(embeddings.norm(dim=1), q.norm(dim=1) * h_N_D.norm(dim=1))


def ref_badge(embeddings_N_E, b, seed):
    """Ash et al.'s seeding on explicit embeddings with full distance matrices: largest norm first, then D² draws
    (the same generator calls as badge_batch, so the picks must agree)."""
    g = torch.Generator().manual_seed(seed)
    picked = [int(embeddings_N_E.norm(dim=1).argmax())]
    while len(picked) < b:
        d2 = torch.cdist(embeddings_N_E, embeddings_N_E[picked]).square().amin(dim=1)
        d2[picked] = 0.0
        picked.append(int(torch.multinomial(d2, 1, generator=g)))
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_badge_seeding_matches_the_explicit_reference(seed):
    rng = np.random.default_rng(seed)
    h = torch.from_numpy(rng.standard_normal((40, 5))).relu()
    p = torch.softmax(torch.from_numpy(rng.standard_normal((40, 4)) * 2), dim=1)
    lp = torch.zeros(40, 1, 1, dtype=torch.float64)
    batch = badge_batch(lp, 8, pool_features_N_D=h, pool_probs_N_C=p, seed=seed)
    assert batch.indices == ref_badge(grad_embeddings(h, p), 8, seed)
    assert len(set(batch.indices)) == 8
    assert batch.scores[0] == pytest.approx(float(grad_embeddings(h, p).square().sum(1).max()))


def test_badge_with_every_point_identical_still_returns_distinct_points():
    h = torch.ones(6, 3, dtype=torch.float64)
    p = torch.full((6, 2), 0.5, dtype=torch.float64)
    batch = select("badge", torch.zeros(6, 1, 1), 4, seed=0, inputs={"pool_features_N_D": h, "pool_probs_N_C": p})
    assert len(set(batch.indices)) == 4


# --------------------------------------------------------------------------------------------------------- CoreSet


def ref_coreset(pool_N_D, labelled_L_D, b):
    """Greedy k-centre with the full N×(N+L) distance matrix."""
    everything = torch.cat([labelled_L_D, pool_N_D])
    dist = torch.cdist(pool_N_D, everything, compute_mode="donot_use_mm_for_euclid_dist")
    centres = list(range(labelled_L_D.shape[0]))
    picked = []
    for _ in range(b):
        d = dist[:, centres].amin(dim=1)
        d[picked] = -1
        u = int(torch.argmax(d))
        picked.append(u)
        centres.append(labelled_L_D.shape[0] + u)
    return picked


@pytest.mark.parametrize("seed,n,n_lab,d,b", [(0, 50, 5, 4, 7), (1, 30, 1, 8, 10), (2, 20, 12, 2, 20)])
def test_coreset_matches_the_quadratic_greedy(seed, n, n_lab, d, b):
    rng = np.random.default_rng(seed)
    pool, lab = torch.from_numpy(rng.standard_normal((n, d))), torch.from_numpy(rng.standard_normal((n_lab, d)))
    batch = coreset_batch(torch.zeros(n, 1, 1), b, pool_features_N_D=pool, labelled_features_L_D=lab)
    assert batch.indices == ref_coreset(pool, lab, b)
    first = torch.cdist(pool[batch.indices[:1]], lab).min()
    assert batch.scores[0] == pytest.approx(float(first))
    assert all(a >= c - 1e-12 for a, c in zip(batch.scores, batch.scores[1:]))  # k-centre radii never grow


def test_coreset_distances_are_exact_for_far_away_nearby_points():
    base = torch.full((1, 64), 1e4, dtype=torch.float64)
    pool = torch.cat([base + 1e-3, base + 2e-3, base + 5e-3])
    batch = coreset_batch(torch.zeros(3, 1, 1), 1, pool_features_N_D=pool, labelled_features_L_D=base)
    assert batch.indices == [2] and batch.scores[0] == pytest.approx(5e-3 * 8, rel=1e-6)  # √64 · 5e-3


def test_coreset_without_labelled_points_starts_from_a_seeded_draw():
    pool = torch.from_numpy(np.random.default_rng(7).standard_normal((30, 3)))
    none = torch.empty(0, 3, dtype=torch.float64)
    a = coreset_batch(torch.zeros(30, 1, 1), 5, pool_features_N_D=pool, labelled_features_L_D=none, seed=1)
    b = coreset_batch(torch.zeros(30, 1, 1), 5, pool_features_N_D=pool, labelled_features_L_D=none, seed=1)
    assert a.indices == b.indices and len(set(a.indices)) == 5


# ---------------------------------------------------------------------------------------------------------- inputs


def test_functions_name_their_inputs_and_select_passes_them():
    seen = {}

    def with_targets(log_probs_N_K_C, target_log_probs_M_K_C):
        seen["targets"] = target_log_probs_M_K_C.shape
        return torch.arange(log_probs_N_K_C.shape[0], dtype=torch.float64)

    def with_features(log_probs_N_K_C, batch_size, *, pool_features_N_D, seed):
        seen["features"] = pool_features_N_D.shape
        return list(range(batch_size))

    assert requested_inputs(with_targets) == ("target_log_probs_M_K_C",)
    assert acquisition_kind(with_targets) == "score" and acquisition_kind(with_features) == "batch"
    lp = log_probs(np.random.default_rng(0), 6, 2, 3)
    assert select(with_targets, lp, 2, inputs={"target_log_probs_M_K_C": lp[:2]}).indices == [5, 4]
    assert select(with_features, lp, 2, inputs={"pool_features_N_D": torch.zeros(6, 4)}).indices == [0, 1]
    assert seen == {"targets": (2, 2, 3), "features": (6, 4)}
    with pytest.raises(ValueError, match="needs target_log_probs_M_K_C"):
        select(with_targets, lp, 2)
    with pytest.raises(ValueError, match="unknown acquisition input 'targets'"):
        select(with_targets, lp, 2, inputs={"targets": lp})


def test_a_parameter_nothing_supplies_is_refused_with_the_known_inputs():
    def wants_something(log_probs_N_K_C, pool_featurez_N_D):
        return log_probs_N_K_C[:, 0, 0]

    with pytest.raises(ValueError, match="inputs a function may name: " + ", ".join(INPUT_NAMES)):
        acquisition_kind(wants_something)


def test_epig_under_a_stochastic_mode():
    rng = np.random.default_rng(8)
    lp, lp_t = log_probs(rng, 20, 4, 3), log_probs(rng, 5, 4, 3)
    batch = select("epig", lp, 4, seed=2, stochastic="power", inputs={"target_log_probs_M_K_C": lp_t})
    assert len(set(batch.indices)) == 4


# ------------------------------------------------------------------------------------------------------ features


def test_penultimate_features_are_the_last_linears_input_with_dropout_off():
    torch.manual_seed(0)
    model = MnistCNN().train()  # deterministic_outputs switches dropout off and restores the mode
    x = torch.randn(5, 1, 28, 28)
    out = deterministic_outputs(model, x, batch_size=2)
    assert last_linear(model) is model.fc2 and out.features_N_D.shape == (5, 128) and model.training
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(out.log_probs_N_C, model(x))
        torch.testing.assert_close(F.log_softmax(model.fc2(out.features_N_D), dim=1), out.log_probs_N_C)


def test_a_model_without_a_linear_layer_has_no_features():
    model = nn.Sequential(nn.Conv2d(1, 3, 28), nn.Dropout(0.5), nn.Flatten(), nn.LogSoftmax(dim=1))
    with pytest.raises(FeatureError, match="has no nn.Linear layer"):
        deterministic_outputs(model, torch.randn(2, 1, 28, 28))
