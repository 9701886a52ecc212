"""Our states against the paper's: pairing the training replay on our sets with the one on the logged sets."""

from __future__ import annotations

import pandas as pd
import pytest

from batchbald.fidelity import own_states


def rows(accuracy, recorded, seeds=(1, 2), sizes=(20, 30, 40), trials=(0, 1)):
    """accuracy(seed, size, trial) and recorded(seed, size) give the replayed and the run's recorded accuracy."""
    return pd.DataFrame(
        [
            {
                "seed": s,
                "round": r,
                "trial": t,
                "validation_set": "labelled_mc10",
                "labelled_size": size,
                "accuracy": accuracy(s, size, t),
                "logged_accuracy": recorded(s, size),
            }
            for s in seeds
            for r, size in enumerate(sizes)
            for t in trials
        ]
    )


def test_pairs_rows_and_separates_the_state_from_what_the_runs_recorded():
    own = rows(lambda s, L, t: 0.5 + L / 1000 - (0.01 * s if L > 20 else 0) + t / 100, lambda s, L: 0.6 + L / 1000)
    same = (own["trial"] == 0) & (own["labelled_size"] == 30)
    own.loc[same, "accuracy"] = own.loc[same, "logged_accuracy"]  # trial 0 reproduces the run, both seeds
    logged = rows(lambda s, L, t: 0.5 + L / 1000 + t / 100, lambda s, L: 0.7 + L / 1000)
    frame = own_states.paired(own, logged)
    assert len(frame) == 12
    at = frame.set_index(["seed", "labelled_size", "trial"])
    assert at.loc[(1, 20, 0), "state_delta"] == pytest.approx(0.0)
    assert at.loc[(2, 40, 1), "state_delta"] == pytest.approx(-0.02)
    assert at.loc[(1, 30, 0), "state_delta"] == pytest.approx(0.63 - 0.53)
    assert list(frame["run_delta"]) == pytest.approx([-0.1] * 12)
    gaps = frame.set_index(["seed", "labelled_size", "trial"])["trial0_gap"]
    assert gaps[(1, 30, 0)] == 0 and gaps[(2, 30, 0)] == 0 and gaps[(1, 20, 0)] == pytest.approx(0.52 - 0.62)
    assert gaps.xs(1, level="trial").isna().all()
    text = "\n".join(own_states.markdown(frame, "x"))
    assert "| state Δ (trials) | +0.000 | " in text and "| recorded Δ (runs) | -0.100 | -0.100 | -0.100 |" in text
    assert "8 paired trainings, 2 seeds, L = 30–40" in text and "|Δ| median 0.1000, max 0.1200 over 6 rounds" in text
    assert "State Δ per seed: 1 +0.017, 2 +0.010." in text  # (0.10 − 0.01 × 3) / 4, (0.10 − 0.02 × 3) / 4


def test_rows_of_another_size_are_not_paired():
    own = rows(lambda s, L, t: 0.5, lambda s, L: 0.5, sizes=(20, 31))
    logged = rows(lambda s, L, t: 0.5, lambda s, L: 0.5, sizes=(20, 30))
    assert set(own_states.paired(own, logged)["labelled_size"]) == {20}


def test_report_section_needs_both_replays(tmp_path):
    root = tmp_path / "fidelity"
    (root / "own_states" / "labelled_mc10").mkdir(parents=True)
    own = rows(lambda s, L, t: 0.5, lambda s, L: 0.5)
    own.to_csv(root / "own_states" / "labelled_mc10" / "ours_rmnist_batchbald.csv", index=False)
    assert own_states.report_section(root) == []  # no logged-set rows to pair with
    (root / "labelled_mc10").mkdir()
    own.to_csv(root / "labelled_mc10" / "rmnist_w_noise_multibald_bald_k10_b10.csv", index=False)
    lines = own_states.report_section(root)
    assert lines[0].startswith("### Our states against the paper's")
    assert any("`rmnist_batchbald` vs `rmnist_w_noise_multibald_bald_k10_b10`" in line for line in lines)
