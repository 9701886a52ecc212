"""Stochastic batch acquisition: limits in β, the sampling distribution, the NaN guard, the loop path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from batchbald.acquisition import bald_scores, select, top_k
from batchbald.acquisition.stochastic import STOCHASTIC_MODES, log_weights, stochastic_batch


def scores(n=50, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0.01, 2.0, n))


@pytest.mark.parametrize("mode", STOCHASTIC_MODES)
def test_large_coldness_is_top_k(mode):
    s = scores()
    for seed in range(5):
        picked, picked_scores = stochastic_batch(s, 7, mode=mode, coldness=1e9, seed=seed)
        assert picked == top_k(s, 7).indices
        assert picked_scores == s[picked].tolist()


def chi2_p_value(counts, expected):
    """p-value of Pearson's chi-square statistic (Wilson-Hilferty normal approximation)."""
    stat = float(((counts - expected) ** 2 / expected).sum())
    dof = len(counts) - 1
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize("mode", STOCHASTIC_MODES)
def test_zero_coldness_is_uniform(mode):
    s = scores(10)
    counts = np.zeros(10)
    for seed in range(4000):
        counts[stochastic_batch(s, 1, mode=mode, coldness=0.0, seed=seed)[0][0]] += 1
    assert chi2_p_value(counts, np.full(10, 400.0)) > 1e-3
    counts_small = np.zeros(10)  # β → 0 approaches uniform
    for seed in range(4000):
        counts_small[stochastic_batch(s, 1, mode=mode, coldness=1e-6, seed=seed)[0][0]] += 1
    assert chi2_p_value(counts_small, np.full(10, 400.0)) > 1e-3


@pytest.mark.parametrize("mode, coldness", [("power", 1.0), ("power", 2.0), ("softmax", 1.5), ("softrank", 1.0)])
def test_single_picks_follow_the_target_distribution(mode, coldness):
    s = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.3, 1.5])
    if mode == "power":
        p = s.double() ** coldness
    elif mode == "softmax":
        p = torch.exp(coldness * s.double())
    else:
        ranks = torch.tensor([6.0, 4, 3, 1, 5, 2], dtype=torch.float64)
        p = ranks ** (-coldness)
    p = (p / p.sum()).numpy()
    n = 6000
    counts = np.zeros(6)
    for seed in range(n):
        counts[stochastic_batch(s, 1, mode=mode, coldness=coldness, seed=seed)[0][0]] += 1
    assert chi2_p_value(counts, p * n) > 1e-3
    assert np.abs(counts / n - p).max() < 4 * np.sqrt(p * (1 - p) / n).max()


def test_wrong_distribution_is_detected():
    """The check above can fail: counts of a uniform sampler do not pass as power-law ones."""
    p = np.array([0.05, 0.1, 0.15, 0.2, 0.5])
    counts = np.full(5, 1200.0)
    assert chi2_p_value(counts, p * 6000) < 1e-6


def test_non_positive_scores_give_no_nan_and_are_picked_last():
    s = torch.tensor([-1e-12, 0.0, 0.3, 0.2, -5.0])
    assert torch.isfinite(log_weights(s, "power")).all()
    for seed in range(20):
        picked, _ = stochastic_batch(s, 2, mode="power", coldness=1.0, seed=seed)
        assert set(picked) == {2, 3}
    assert len(set(stochastic_batch(torch.zeros(5), 5, mode="power", seed=1)[0])) == 5  # all zero: uniform, distinct


def test_distinct_seeded_and_bad_input():
    s = scores(30)
    a = stochastic_batch(s, 30, mode="softrank", seed=4)[0]
    assert sorted(a) == list(range(30))
    assert a == stochastic_batch(s, 30, mode="softrank", seed=4)[0]
    assert a != stochastic_batch(s, 30, mode="softrank", seed=5)[0]
    with pytest.raises(ValueError, match="coldness must be a finite number >= 0"):
        stochastic_batch(s, 3, coldness=-1)
    with pytest.raises(ValueError, match="unknown stochastic mode 'gibbs'"):
        stochastic_batch(s, 3, mode="gibbs")
    with pytest.raises(ValueError, match="scores contain NaN"):
        stochastic_batch(torch.tensor([0.1, float("nan")]), 1, mode="softmax")


def test_select_power_bald_and_refusals():
    rng = np.random.default_rng(2)
    lp = torch.from_numpy(rng.normal(size=(40, 5, 4))).log_softmax(-1)
    batch = select("bald", lp, 6, stochastic="power", coldness=1.0, seed=3)
    assert len(set(batch.indices)) == 6
    np.testing.assert_allclose(batch.scores, bald_scores(lp)[batch.indices].numpy())
    assert select("bald", lp, 6, stochastic="power", coldness=1e9, seed=3).indices == select("bald", lp, 6).indices
    with pytest.raises(ValueError, match="needs a per-point score"):
        select("batchbald", lp, 3, stochastic="power")
