"""Acquisition replay: one step from the paper's own state, our batch against the batch the paper's run acquired.

For a logged round r of an official run (.replay.load_log): train our model on the logged labelled set L_r
(the stopping rule the group's logs show), score the pool the run saw there (every training position outside L_r
and our validation draw, in the logs' index space: Repeated MNIST position i is MNIST image i mod 60,000) with K
consistent MC-dropout masks, and acquire a batch A_ours under each BatchBALD variant (`configurations` of
acquisition.joint_mi.batchbald_batch), or with BALD for BALD groups. Then train `trials` fresh models on L_r ∪ A for
every side (ours and A_logged = L_{r+1} − L_r, the same trial seeds for every side) and test them on the full test
set as the paper does. Diagnostics of every batch under our round-r model: its joint mutual information
I(y_1..y_b; ω) (`joint_mutual_information`, one estimator and one seed for all sides), the overlap with the logged
batch, the BALD ranks of its picks, its class histogram and label entropy, and how many picks repeat an MNIST digit
already in the batch or the labelled set (another Repeated-MNIST copy: a wasted label).

    rows = replay_acquisition_round(dataset, setting, run, r, rule="labelled_mc10", acquisition="batchbald", ...)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time

import torch

from batchbald.acquisition.joint_mi import batchbald_batch
from batchbald.acquisition.scores import bald_scores, conditional_entropy, top_k
from batchbald.data import Dataset
from batchbald.fidelity.replay import (
    LoggedRun,
    ReplayError,
    ReplaySetting,
    replay_round,
    trial_seed,
    validation_indices,
)
from batchbald.loop import label_entropy
from batchbald.models import build_model, default_scoring_batch_size, draw_masks, mc_log_probs
from batchbald.train import train_model_rules

MNIST_TRAIN_SIZE = 60_000  # Repeated MNIST copies are consecutive blocks of the 60,000 MNIST training images
DIAGNOSTIC_SAMPLES = 200_000  # joint configurations for the joint-MI diagnostic (sampled regime)
EXACT_CONFIGURATIONS = 200_000  # exact joint entropy while C^b is at most this
SCORING_STREAM = 97  # trial_seed stream of the round's scoring model (trials use 0, 1, ...)


def joint_mutual_information(log_probs_B_K_C: torch.Tensor, *, num_samples: int = DIAGNOSTIC_SAMPLES, seed: int = 0):
    """I(y_1..y_B; ω) in nats under K equally weighted MC-dropout samples, = H(y_1..y_B) − Σ_i E_ω H(y_i | ω).

    The joint entropy is exact (all C^B configurations) while C^B ≤ EXACT_CONFIGURATIONS, else a Monte Carlo
    estimate −mean log p(y) over `num_samples` configurations drawn from the joint itself (ω_k stratified, y_i ~
    p(y_i | ω_k)), with p(y) = mean_k Π_i p(y_i | ω_k) computed exactly: unbiased, and the same `seed` gives the
    same draws for every batch compared (common random numbers)."""
    lp_B_K_C = log_probs_B_K_C.double().cpu()
    B, K, C = lp_B_K_C.shape
    if B == 0:
        return 0.0
    if C**B <= EXACT_CONFIGURATIONS:
        log_joint_M_K = lp_B_K_C[0].t()
        for i in range(1, B):
            log_joint_M_K = (log_joint_M_K[:, None, :] + lp_B_K_C[i].t()[None, :, :]).reshape(-1, K)
        log_q_M = torch.logsumexp(log_joint_M_K, dim=1) - math.log(K)
        joint = float(-(log_q_M.exp() * log_q_M).sum())
    else:
        S = max(1, num_samples // K)
        g = torch.Generator().manual_seed(seed)
        probs_B_K_C = lp_B_K_C.exp()
        labels_B_M = torch.stack(
            [torch.multinomial(probs_B_K_C[i], S, replacement=True, generator=g).reshape(-1) for i in range(B)]
        )  # row k·S + s drawn under ω_k
        log_joint_M_K = torch.zeros(K * S, K, dtype=torch.float64)
        for i in range(B):
            log_joint_M_K += lp_B_K_C[i].t()[labels_B_M[i]]
        joint = float((math.log(K) - torch.logsumexp(log_joint_M_K, dim=1)).mean())
    return joint - float(conditional_entropy(lp_B_K_C).sum())


def digit_repeats(batch: list[int], labelled: list[int], copy_size: int = MNIST_TRAIN_SIZE) -> dict[str, int]:
    """Picks that repeat an MNIST digit (position mod copy_size) already labelled (`of_labelled`) or picked earlier
    in the same batch (`in_batch`; `late_in_batch`: a pick at positions 6.. repeating one at 1..5)."""
    seen_labelled = {i % copy_size for i in labelled}
    out = {"of_labelled": 0, "in_batch": 0, "late_in_batch": 0}
    for pos, i in enumerate(batch):
        digit = i % copy_size
        out["of_labelled"] += digit in seen_labelled
        earlier = [j % copy_size for j in batch[:pos]]
        out["in_batch"] += digit in earlier
        out["late_in_batch"] += pos >= 5 and digit in earlier[:5]
    return out


def bald_ranks(scores_N: torch.Tensor, positions: list[int]) -> list[int]:
    """1-based rank of each pool position under BALD (1 = the highest score; ties share the better rank)."""
    return [int((scores_N > scores_N[p]).sum()) + 1 for p in positions]


def acquire(log_probs_N_K_C, acquisition: str, batch_size: int, *, num_samples, seed, configurations="nested"):
    """Pool positions and per-pick scores of our batch (BatchBALD variants, or BALD's top-b)."""
    if acquisition == "batchbald":
        result = batchbald_batch(
            log_probs_N_K_C, batch_size, num_samples=num_samples, seed=seed, configurations=configurations
        )
        return result.batch.indices, result.batch.scores
    if acquisition == "bald":
        batch = top_k(bald_scores(log_probs_N_K_C), batch_size)
        return batch.indices, batch.scores
    raise ReplayError(f"acquisition replay supports batchbald and bald, got {acquisition!r}")


def replay_acquisition_round(
    dataset: Dataset,
    setting: ReplaySetting,
    run: LoggedRun,
    round_index: int,
    *,
    rule: str,
    acquisition: str,
    scoring_rule: str | None = None,
    scoring_sampler: str = "iid",
    mc_samples: int,
    num_samples: int | None = None,
    variants: tuple[str, ...] = ("nested",),
    other_models: int = 0,
    trials: int = 2,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """One row per side ("logged", then each of `variants`: BatchBALD's `configurations`, or any name for BALD) of
    logged round `round_index` of `run` (see the module doc). The model that scores the pool stops early by
    `scoring_rule` (default `rule`) and visits the labelled set by `scoring_sampler` (train.SAMPLERS); the trial models
    on L_r ∪ A always by `rule` and the default sampler. `other_models` more models of
    ours, trained on L_r with other seeds, acquire sides "<variants[0]>_model<j>": how far apart our own batches are
    (their diagnostics, like every side's, are under the first model)."""
    scoring_rule = scoring_rule or rule
    if round_index + 1 >= len(run.rounds):
        raise ReplayError(f"{run.name} has no round after {round_index}: its logged batch is unknown")
    device = torch.device(device)
    labelled = list(run.rounds[round_index].labelled)
    labelled_set = set(labelled)
    logged_batch = [i for i in run.rounds[round_index + 1].labelled if i not in labelled_set]
    seed = trial_seed(run.seed, round_index, SCORING_STREAM)
    validation = validation_indices(len(dataset.train), setting.validation_size, run.ever_labelled, seed)
    excluded = labelled_set | set(validation.tolist())
    pool = [i for i in range(len(dataset.train)) if i not in excluded]
    position = {i: p for p, i in enumerate(pool)}
    if any(i not in position for i in logged_batch):
        raise ReplayError(f"{run.name} round {round_index}: a logged pick is outside the replayed pool")

    t0 = time.perf_counter()
    scoring_setting = dataclasses.replace(setting, train=dataclasses.replace(setting.train, sampler=scoring_sampler))
    log_probs_N_K_C, scoring_epochs = score_pool(
        dataset, scoring_setting, labelled, validation, pool, scoring_rule, mc_samples, seed, device
    )
    bald_N = bald_scores(log_probs_N_K_C)
    score_seconds = time.perf_counter() - t0

    sides = {"logged": ([position[i] for i in logged_batch], [math.nan] * len(logged_batch), 0.0)}
    for variant in variants:
        t1 = time.perf_counter()
        picked, scores = acquire(
            log_probs_N_K_C, acquisition, len(logged_batch), num_samples=num_samples, seed=seed, configurations=variant
        )
        sides[variant] = (picked, scores, time.perf_counter() - t1)
    for j in range(1, other_models + 1):  # independently trained models of ours: the spread between our own batches
        other, _ = score_pool(
            dataset, scoring_setting, labelled, validation, pool, scoring_rule, mc_samples, seed + 1000 * j, device
        )
        t1 = time.perf_counter()
        picked, scores = acquire(
            other, acquisition, len(logged_batch), num_samples=num_samples, seed=seed, configurations=variants[0]
        )
        sides[f"{variants[0]}_model{j + 1}"] = (picked, scores, time.perf_counter() - t1)
        del other

    labels = dataset.train.y
    rows = []
    for side, (positions, scores, select_seconds) in sides.items():
        batch = [pool[p] for p in positions]
        counts = torch.bincount(labels[batch], minlength=dataset.num_classes)
        row = {
            "group": None,
            "run": run.name,
            "seed": run.seed,
            "round": round_index,
            "labelled_size": len(labelled),
            "side": side,
            "acquisition": acquisition if side != "logged" else "logged",
            "rule": rule,
            "scoring_rule": scoring_rule,
            "scoring_sampler": scoring_sampler,
            "batch": json.dumps(batch),
            "greedy_scores": json.dumps([round(s, 6) for s in scores]),
            "joint_mi": joint_mutual_information(log_probs_N_K_C[positions], seed=seed),
            "overlap_with_logged": len(set(batch) & set(logged_batch)),
            "bald_ranks": json.dumps(bald_ranks(bald_N, positions)),
            "class_counts": json.dumps(counts.tolist()),
            "label_entropy": label_entropy(counts),
            **{f"repeats_{k}": v for k, v in digit_repeats(batch, labelled).items()},
            "scoring_epochs": scoring_epochs,
            "score_seconds": round(score_seconds, 2),
            "select_seconds": round(select_seconds, 2),
        }
        accuracies = []
        for trial in range(trials):
            result = replay_round(
                dataset,
                setting,
                tuple(labelled + batch),
                (rule,),
                validation=validation,
                seed=trial_seed(run.seed, round_index + 1, trial),  # the same trial seeds for every side
                device=device,
            )[rule]
            accuracies.append(result.accuracy)
            row[f"accuracy_trial{trial}"] = result.accuracy
        row["accuracy"] = sum(accuracies) / len(accuracies)
        row["logged_next_accuracy"] = run.rounds[round_index + 1].accuracy
        rows.append(row)
    return rows


def score_pool(dataset, setting, labelled, validation, pool, rule, mc_samples, seed, device):
    """log_probs_N_K_C (float64) of the pool under a fresh model trained on `labelled` (early stopping by `rule`),
    K consistent masks; and the model's epochs. Init, batches and masks come from `seed`."""
    torch.manual_seed(seed)
    model = build_model("mnist_cnn", dataset.num_classes).to(device)
    lab = torch.as_tensor(labelled, dtype=torch.long)
    trained = train_model_rules(
        model,
        dataset.train.x[lab].to(device),
        dataset.train.y[lab].to(device),
        dataset.train.x[validation].to(device),
        dataset.train.y[validation].to(device),
        setting.train,
        (rule,),
        generator=torch.Generator(device).manual_seed(seed + 1),
    )[rule]
    masks = draw_masks(trained.model, mc_samples, torch.Generator(device).manual_seed(seed + 2))
    pool_x = dataset.train.x[torch.as_tensor(pool, dtype=torch.long)].to(device)
    batch = default_scoring_batch_size(trained.model, mc_samples)
    return mc_log_probs(trained.model, pool_x, masks, batch_size=batch).double(), trained.epochs


def brute_force_joint_mi(log_probs_B_K_C: torch.Tensor) -> float:
    """The definition summed term by term over every configuration (tests and tiny cases only)."""
    p = log_probs_B_K_C.double().exp()
    B, K, C = p.shape
    joint = 0.0
    for ys in itertools.product(range(C), repeat=B):
        q = sum(math.prod(float(p[i, k, y]) for i, y in enumerate(ys)) for k in range(K)) / K
        joint -= q * math.log(q) if q > 0 else 0.0
    return joint - float(conditional_entropy(log_probs_B_K_C).sum())
