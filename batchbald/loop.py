"""The active-learning loop (SPEC §1): train a fresh model, evaluate, score the pool, acquire, repeat.

Every source of randomness in round r is seeded from (seed, r), so a run resumed after round r continues exactly as
the uninterrupted run would (same device and torch): from its checkpoint, or, on a machine that only has the
committed rounds.csv, from its rows (`state_from_rounds`: labelled set = initial split + the acquired rows in order).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from batchbald.acquisition import grad_embeddings, needs_predictions, requested_inputs, resolve, select
from batchbald.data import Dataset, Splits
from batchbald.models import (
    DeterministicOutputs,
    build_model,
    default_scoring_batch_size,
    deterministic_outputs,
    draw_masks,
    mc_log_probs,
)
from batchbald.train import TrainConfig, evaluate, train_model


@dataclass
class LoopConfig:
    seed: int
    budget: int  # points to acquire; the initial set is not counted
    mc_samples: int  # K, for pool scoring and test predictions
    acquisition: str | Callable  # a built-in name or any acquisition callable (batchbald.acquisition)
    batch_size: int
    model: str | Callable  # a built-in name or a factory(num_classes=C) -> nn.Module (batchbald.models.build_model)
    train: TrainConfig
    num_samples: int | None = None  # BatchBALD's M (None = the paper's default)
    stochastic: str | None = None  # None: top-k; power | softmax | softrank (batchbald.acquisition.stochastic)
    coldness: float = 1.0  # β of the stochastic modes
    # EPIG's targets (functions that name target_log_probs_M_K_C): "heldout" = the split's held-out target set
    # (Splits.target), "pool" = the current pool; target_per_round of them drawn each round (None: all of them)
    target_set: str = "heldout"
    target_per_round: int | None = 100
    target_accuracy: float | None = None
    scoring_batch_size: int | None = None
    progress: bool = False


@dataclass
class RoundRecord:
    """One row of rounds.csv. The model of this round was trained on `labelled_size` points; the batch acquired
    after evaluating it is `acquired_*` (empty in the last round). Label statistics cover every label acquired so
    far, this round's batch included, the initial set excluded."""

    round: int
    labelled_size: int
    test_accuracy: float
    test_nll: float
    epochs: int
    acquired_indices: list[int]
    acquired_labels: list[int]
    acquisition_scores: list[float]
    label_entropy: float
    class_counts: list[int]
    train_seconds: float
    score_seconds: float
    select_seconds: float
    eval_seconds: float
    # mean over the K test masks of each mask's own NLL: the statistic the official logs' "nll" matches
    # (results/fidelity); NaN in rounds recorded before it existed
    test_nll_per_mask: float = math.nan


@dataclass
class LoopState:
    labelled: list[int]
    pool: list[int]
    acquired: list[int] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)


def label_entropy(counts_C: torch.Tensor) -> float:
    """Entropy (nats) of the empirical class distribution; 0 for no labels."""
    total = counts_C.sum()
    if total == 0:
        return 0.0
    p = counts_C[counts_C > 0].double() / total
    return max(0.0, float(-(p * p.log()).sum()))  # no -0.0


def _round_seed(seed: int, round_: int, stream: int) -> int:
    return (seed * 1_000_003 + round_ * 7919 + stream) % (2**63 - 1)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class AcquisitionError(RuntimeError):
    """A round's acquisition failed on its inputs (e.g. a model that diverged to NaN); earlier rounds are saved."""


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed here (the message says why and what to do)."""


def numerics_tag(device: torch.device) -> str:
    """Where a checkpoint's numbers came from: device type (GPU model) and torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return f"{name}, torch {torch.__version__}"


def save_checkpoint(path: Path, state: LoopState, fingerprint: str, numerics: str = "") -> None:
    """Atomic write: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "fingerprint": fingerprint,
            "numerics": numerics,
            "labelled": state.labelled,
            "pool": state.pool,
            "acquired": state.acquired,
            "rounds": [asdict(r) for r in state.rounds],
            "torch_rng_state": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: str, numerics: str = "") -> LoopState | None:
    """The saved state, or None when there is no checkpoint. Loaded with weights_only=True: plain lists, numbers and
    tensors only, so a checkpoint cannot run code. A damaged or foreign file raises CheckpointError."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, weights_only=True)
        state = LoopState(
            labelled=list(ckpt["labelled"]),
            pool=list(ckpt["pool"]),
            acquired=list(ckpt["acquired"]),
            rounds=[RoundRecord(**r) for r in ckpt["rounds"]],
        )
        rng_state = ckpt["torch_rng_state"]
    except Exception as e:  # noqa: BLE001 - truncated zip, wrong pickle, missing keys: all one answer
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} is damaged or not a checkpoint of this code ({type(e).__name__}: {reason}); rounds.csv keeps "
            "the finished rounds: delete the checkpoint to resume from rounds.csv (same seed, same rounds)"
        ) from None
    if ckpt.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path} was written by a run with a different config; use another output directory or delete it"
        )
    written_on = ckpt.get("numerics", "")
    if numerics and written_on and written_on != numerics:
        raise CheckpointError(
            f"{path} was written on {written_on} but this run is on {numerics}: resuming would mix their numerics; "
            "resume where it started, or start a new output directory"
        )
    torch.set_rng_state(rng_state)
    return state


def _points_to_acquire(cfg: LoopConfig, state: LoopState) -> int:
    """The size of the next batch: b, or what is left of the budget or the pool."""
    return min(cfg.batch_size, cfg.budget - len(state.acquired), len(state.pool))


def state_from_rounds(rounds: list[RoundRecord], splits: Splits, dataset: Dataset, cfg: LoopConfig) -> LoopState:
    """The loop's state after `rounds` (the rows of a rounds.csv), rebuilt from the initial split: the labelled set
    is the initial set plus every acquired index in row order, the pool the rest of the split's pool in its order.
    Rows that this config and seed could not have written raise CheckpointError naming the first bad row."""
    state = LoopState(labelled=list(splits.initial), pool=list(splits.pool))
    in_pool = set(state.pool)
    labels_N = dataset.train.y
    counts_C = torch.zeros(dataset.num_classes, dtype=torch.long)
    for i, r in enumerate(rounds):
        picked = list(r.acquired_indices)
        expected = _points_to_acquire(cfg, state)
        problem = None
        if r.round != i:
            problem = f"round is {r.round}, expected {i}"
        elif r.labelled_size != len(state.labelled):
            problem = (
                f"labelled_size is {r.labelled_size}, the initial split and the rows above give {len(state.labelled)}"
            )
        elif len(picked) not in (expected, 0) or (not picked and i < len(rounds) - 1):
            problem = f"{len(picked)} points acquired where this config acquires {expected}"
        elif any(j not in in_pool for j in picked) or len(set(picked)) != len(picked):
            bad = next((j for j in picked if j not in in_pool), None)
            problem = (
                "an index is acquired twice in the row"
                if bad is None
                else f"index {bad} was acquired in an earlier row"
                if bad in state.acquired
                else f"index {bad} is not in this seed's pool"
            )
        elif r.acquired_labels != labels_N[picked].tolist():
            problem = "acquired_labels differ from the dataset's labels of acquired_indices"
        if problem is None:
            counts_C += torch.bincount(labels_N[picked], minlength=dataset.num_classes)
            if r.class_counts != counts_C.tolist():
                problem = "class_counts differ from the labels acquired so far"
        if problem:
            raise CheckpointError(
                f"rounds.csv row {i}: {problem}; the rows do not fit this config and seed: use another output "
                "directory, or delete rounds.csv and run.json to rerun the run from its start"
            )
        in_pool.difference_update(picked)
        state.pool = [j for j in state.pool if j in in_pool]  # as run_loop does: the next row sees this pool
        state.labelled += picked
        state.acquired += picked
        state.rounds.append(r)
    return state


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_loop(
    dataset: Dataset,
    splits: Splits,
    cfg: LoopConfig,
    device: torch.device,
    *,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    on_round: Callable[[list[RoundRecord]], None] | None = None,
    finished_rounds: list[RoundRecord] | None = None,
) -> list[RoundRecord]:
    """Run (or resume) the loop until `budget` points are acquired or `target_accuracy` is reached. Resumes from
    `checkpoint` when it exists, else from `finished_rounds` (the rows of a committed rounds.csv) when given."""
    numerics = numerics_tag(device)
    state = load_checkpoint(checkpoint, fingerprint, numerics) if checkpoint else None
    if state is None and finished_rounds:
        state = state_from_rounds(finished_rounds, splits, dataset, cfg)
    if state is None:
        state = LoopState(labelled=list(splits.initial), pool=list(splits.pool))
    if state.rounds and not state.rounds[-1].acquired_indices:  # already finished
        return state.rounds

    train_x, train_y = dataset.train.x.to(device), dataset.train.y.to(device)
    test_x, test_y = dataset.test.x.to(device), dataset.test.y.to(device)
    val_idx = torch.as_tensor(splits.validation, dtype=torch.long, device=device)
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    C = dataset.num_classes

    total_rounds = math.ceil(cfg.budget / cfg.batch_size) + 1
    bar = _progress(total_rounds, len(state.rounds), cfg.progress)
    while True:
        r = len(state.rounds)
        torch.manual_seed(_round_seed(cfg.seed, r, 0))  # model initialisation
        model = build_model(cfg.model, C, tuple(dataset.train.x.shape[1:])).to(device)

        t0 = time.perf_counter()
        lab = torch.as_tensor(state.labelled, dtype=torch.long, device=device)
        trained = train_model(
            model,
            train_x[lab],
            train_y[lab],
            val_x,
            val_y,
            cfg.train,
            generator=_generator(device, _round_seed(cfg.seed, r, 1)),
            progress=cfg.progress,
        )
        _sync(device)
        t1 = time.perf_counter()
        result = evaluate(
            trained.model, test_x, test_y, k=cfg.mc_samples, generator=_generator(device, _round_seed(cfg.seed, r, 2))
        )
        t2 = time.perf_counter()

        n_acquire = _points_to_acquire(cfg, state)
        reached = cfg.target_accuracy is not None and result.accuracy >= cfg.target_accuracy
        picked, scores, score_s, select_s = [], [], 0.0, 0.0
        if n_acquire > 0 and not reached:
            try:
                picked, scores, score_s, select_s = _acquire(
                    trained.model, train_x, state, splits.target, n_acquire, cfg, device, (cfg.seed, r)
                )
            except ValueError as e:  # select's input and output checks: one line, the finished rounds stay
                raise AcquisitionError(
                    f"round {r}: acquisition failed: {str(e).rstrip('.')}; the {len(state.rounds)} finished round(s) "
                    "are saved in rounds.csv"
                ) from None
            picked_set = set(picked)
            state.pool = [i for i in state.pool if i not in picked_set]
            state.labelled += picked
            state.acquired += picked

        labels = train_y[torch.as_tensor(state.acquired, dtype=torch.long, device=device)].cpu()
        counts = torch.bincount(labels, minlength=C)
        record = RoundRecord(
            round=r,
            labelled_size=len(lab),
            test_accuracy=result.accuracy,
            test_nll=result.nll,
            epochs=trained.epochs,
            acquired_indices=picked,
            acquired_labels=train_y[torch.as_tensor(picked, dtype=torch.long, device=device)].cpu().tolist(),
            acquisition_scores=scores,
            label_entropy=label_entropy(counts),
            class_counts=counts.tolist(),
            train_seconds=t1 - t0,
            score_seconds=score_s,
            select_seconds=select_s,
            eval_seconds=t2 - t1,
            test_nll_per_mask=result.nll_per_mask,
        )
        state.rounds.append(record)
        if checkpoint:
            save_checkpoint(checkpoint, state, fingerprint, numerics)
        if on_round:
            on_round(state.rounds)
        bar.update(1)
        if not picked:
            break
    bar.close()
    return state.rounds


def _acquire(model, train_x, state: LoopState, target: list[int], n, cfg: LoopConfig, device, seed_round):
    """Score the pool with K consistent masks, compute the inputs the acquisition function names
    (batchbald.acquisition.inputs), and pick `n` points. Returns train-set indices."""
    pool = state.pool
    seed = _round_seed(*seed_round, 3)
    wanted = requested_inputs(resolve(cfg.acquisition))
    t0 = time.perf_counter()
    pool_idx = torch.as_tensor(pool, dtype=torch.long, device=device)
    inputs = {}
    if not needs_predictions(cfg.acquisition):
        log_probs_N_K_C = torch.zeros(len(pool), 1, 1, device=device)  # random, BADGE, CoreSet: only N
    else:
        masks = draw_masks(model, cfg.mc_samples, _generator(device, seed), example_x=train_x[:1])
        chunk = cfg.scoring_batch_size or default_scoring_batch_size(model, cfg.mc_samples)
        piece = 16 * chunk  # a multiple of the chunk: outputs are bitwise those of one mc_log_probs call
        bar = _progress(len(pool), 0, cfg.progress, desc="scoring pool")
        parts = []
        for start in range(0, len(pool), piece):
            parts.append(mc_log_probs(model, train_x[pool_idx[start : start + piece]], masks, batch_size=chunk))
            bar.update(min(piece, len(pool) - start))
        bar.close()
        log_probs_N_K_C = torch.cat(parts)
        if "target_log_probs_M_K_C" in wanted:  # the same K masks as the pool: EPIG's samples are paired
            target_idx = _draw_targets(pool, target, cfg, _round_seed(*seed_round, 4))
            x_t = train_x[torch.as_tensor(target_idx, dtype=torch.long, device=device)]
            inputs["target_log_probs_M_K_C"] = mc_log_probs(model, x_t, masks, batch_size=chunk)
    if any(name != "target_log_probs_M_K_C" for name in wanted):
        parts = [deterministic_outputs(model, train_x[pool_idx[i : i + 8192]]) for i in range(0, len(pool), 8192)]
        pool_out = DeterministicOutputs(
            torch.cat([p.features_N_D for p in parts]), torch.cat([p.log_probs_N_C for p in parts])
        )
        inputs["pool_features_N_D"] = pool_out.features_N_D
        inputs["pool_probs_N_C"] = pool_out.log_probs_N_C.exp()
        if "labelled_features_L_D" in wanted:
            lab_idx = torch.as_tensor(state.labelled, dtype=torch.long, device=device)
            inputs["labelled_features_L_D"] = deterministic_outputs(model, train_x[lab_idx]).features_N_D
        if "pool_grad_embeddings_N_E" in wanted:
            inputs["pool_grad_embeddings_N_E"] = grad_embeddings(pool_out.features_N_D, inputs["pool_probs_N_C"])
    _sync(device)
    t1 = time.perf_counter()
    batch = select(
        cfg.acquisition,
        log_probs_N_K_C,
        n,
        num_samples=cfg.num_samples,
        seed=seed,
        stochastic=cfg.stochastic,
        coldness=cfg.coldness,
        inputs={k: v for k, v in inputs.items() if k in wanted},
    )
    t2 = time.perf_counter()
    return [pool[i] for i in batch.indices], [float(s) for s in batch.scores], t1 - t0, t2 - t1


def _draw_targets(pool: list[int], target: list[int], cfg: LoopConfig, seed: int) -> list[int]:
    """This round's EPIG targets: target_per_round points (all if None) of the held-out set or of the pool, drawn
    uniformly without replacement with Generator(seed)."""
    source = target if cfg.target_set == "heldout" else pool
    if not source:
        raise ValueError(
            "EPIG needs target points but the split holds none out (set acquisition.target.size > 0, or "
            "acquisition.target.set=pool)"
        )
    m = len(source) if cfg.target_per_round is None else min(cfg.target_per_round, len(source))
    order = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))[:m]
    return [source[i] for i in order.sort().values.tolist()]


def _progress(total: int, initial: int, enabled: bool, desc: str = "rounds"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, leave=False)
