"""The splits of a run: initial labelled set, validation set, pool and EPIG's held-out targets (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from batchbald.data.datasets import Dataset, _check_count, _classes_present, _spread_subset


@dataclass
class Splits:
    initial: list[int]
    validation: list[int]
    pool: list[int]
    target: list[int] = field(default_factory=list)  # EPIG's held-out target set (never labelled, not in the pool)


def _per_class_draw(y: torch.Tensor, per_class: int, g: torch.Generator) -> list[int]:
    chosen = []
    for c in _classes_present(y):
        idx_c = (y == c).nonzero().flatten()
        if len(idx_c) < per_class:
            raise ValueError(f"initial={per_class} per class but class {c} has only {len(idx_c)} train items")
        chosen.append(idx_c[torch.randperm(len(idx_c), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values.tolist() if chosen else []


VALIDATION_DRAWS = ("fresh", "paper")


def make_splits(
    dataset: Dataset,
    *,
    initial: str | int,
    validation_size: int,
    seed: int,
    target_size: int = 0,
    validation_draw: str = "fresh",
) -> Splits:
    """Initial labelled set, validation set and pool (positions in dataset.train), per SPEC §2.

    initial: "paper" (the fixed 20, MNIST family) or n per class drawn with Generator(seed) (0 = none).
    validation: validation_size random points of train minus initial (same generator); pool: the rest, sorted.
    validation_draw "paper": the validation permutation continues Generator(seed) after the Repeated-MNIST noise, as
    the released code's global generator did (its RMNIST validation sets then hold none of the logged acquisitions;
    results/fidelity/acquisition/released_code_comparison.md); "fresh" (default, every committed run) starts a new
    Generator(seed). Datasets without the Repeated-MNIST noise draws give the same split either way.
    target_size > 0 (EPIG): that many points, as class-balanced as possible, held out of the pool as the target set
    (drawn after the rest with their own generator, so initial and validation sets are the same with or without).
    """
    n = len(dataset.train.y)
    _check_count("seed", seed, minimum=0)
    if validation_draw not in VALIDATION_DRAWS:
        raise ValueError(f"validation_draw must be one of {', '.join(VALIDATION_DRAWS)}, got {validation_draw!r}")
    g = torch.Generator().manual_seed(seed)
    if validation_draw == "paper" and dataset.rng_after_noise is not None:
        g.set_state(dataset.rng_after_noise)
    if isinstance(initial, str):
        if initial != "paper":
            raise ValueError(f"initial must be 'paper' or an int >= 0 (points per class), got {initial!r}")
        if dataset.paper_initial is None:
            raise ValueError(
                f"initial='paper' needs the paper's fixed MNIST indices, which {dataset.description} "
                "lacks; use an int per class (0 = none)"
            )
        init = [int(i) for i in dataset.paper_initial]
        if len(set(init)) != len(init) or not all(0 <= i < n for i in init):
            raise ValueError(f"dataset.paper_initial must hold distinct positions in [0, {n}), got {init}")
    else:
        _check_count("initial", initial, minimum=0)
        init = _per_class_draw(dataset.train.y, int(initial), g) if initial > 0 else []
    _check_count("validation_size", validation_size, minimum=0)
    left = n - len(init)
    if validation_size > left:
        raise ValueError(
            f"validation_size={validation_size} is more than the {left} train points left after "
            f"{len(init)} initial ones"
        )
    free = torch.ones(n, dtype=torch.bool)
    free[torch.tensor(init, dtype=torch.long)] = False
    rest = free.nonzero().flatten()
    validation = rest[torch.randperm(len(rest), generator=g)[:validation_size]].sort().values
    free[validation] = False
    _check_count("target_size", target_size, minimum=0)
    target: list[int] = []
    if target_size > 0:
        pool = free.nonzero().flatten()
        if target_size >= len(pool):
            raise ValueError(
                f"target_size={target_size} must be smaller than the {len(pool)} pool points left after the initial "
                "and validation sets"
            )
        target = pool[_spread_subset(dataset.train.y[pool], target_size, seed + 1)].tolist()
        free[torch.tensor(target, dtype=torch.long)] = False
    return Splits(
        initial=init, validation=validation.tolist(), pool=free.nonzero().flatten().tolist(), target=target
    )
