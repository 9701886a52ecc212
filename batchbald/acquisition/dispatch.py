"""Batch acquisition: which pool points to label next.

    batch = select(name_or_fn, log_probs_N_K_C, batch_size, num_samples=None, seed=None, stochastic=None, inputs=None)

An acquisition function is one of two kinds (`acquisition_kind`):
- a per-point score, `fn(log_probs_N_K_C, [inputs]) -> scores_N` (BALD, max entropy, variation ratios, mean STD,
  margin, least confidence, EPIG, or yours): the batch is the `batch_size` highest scores (ties to the lower index),
  or a stochastic sample (power, softmax, softrank; batchbald.acquisition.stochastic);
- a batch function, `fn(log_probs_N_K_C, batch_size, *, seed, num_samples, [inputs]) -> AcquisitionBatch or
  indices` (random, BatchBALD, BADGE, CoreSet, or yours); it gets only the keyword arguments its signature names.
[inputs] are the parameters a function names from batchbald.acquisition.inputs.INPUTS (targets, features, ...):
`select` passes them from `inputs`, and the loop computes only what is asked for. The built-ins are registered by
name in ACQUISITIONS and take the same path as a function given in config by `acquisition._target_`. Log-probs are
checked and renormalised to float64 first (.scores), outputs checked.
"""

from __future__ import annotations

import inspect

import torch

from batchbald.acquisition.badge import badge_batch, grad_embeddings
from batchbald.acquisition.coreset import coreset_batch
from batchbald.acquisition.epig import epig_scores
from batchbald.acquisition.inputs import INPUT_NAMES, INPUTS, requested_inputs
from batchbald.acquisition.joint_mi import BatchBALDResult, StepStats, batchbald_batch, default_num_samples
from batchbald.acquisition.scores import (
    AcquisitionBatch,
    _check_batch_size,
    _check_log_probs,
    bald_scores,
    conditional_entropy,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    mean_std_scores,
    top_k,
    var_ratios_scores,
)
from batchbald.acquisition.stochastic import stochastic_batch

__all__ = [
    "ACQUISITIONS",
    "ACQUISITION_NAMES",
    "INPUTS",
    "INPUT_NAMES",
    "SCORE_NAMES",
    "AcquisitionBatch",
    "BatchBALDResult",
    "StepStats",
    "acquisition_kind",
    "badge_batch",
    "bald_scores",
    "batchbald_acquire",
    "batchbald_batch",
    "conditional_entropy",
    "coreset_batch",
    "default_num_samples",
    "entropy_scores",
    "epig_scores",
    "grad_embeddings",
    "least_confidence_scores",
    "margin_scores",
    "mean_std_scores",
    "needs_predictions",
    "random_batch",
    "requested_inputs",
    "resolve",
    "select",
    "top_k",
    "var_ratios_scores",
]


def random_batch(log_probs_N_K_C: torch.Tensor, batch_size: int, *, seed: int = 0) -> AcquisitionBatch:
    """`batch_size` distinct pool positions uniformly at random (uses only N; scores 0.0)."""
    picked = torch.randperm(log_probs_N_K_C.shape[0], generator=torch.Generator().manual_seed(seed))[:batch_size]
    return AcquisitionBatch(picked.tolist(), [0.0] * batch_size)


random_batch.needs_predictions = False  # the loop skips pool scoring


def batchbald_acquire(
    log_probs_N_K_C: torch.Tensor,
    batch_size: int,
    *,
    num_samples: int | None = None,
    seed: int = 0,
    configurations: str = "nested",
) -> AcquisitionBatch:
    """BatchBALD's batch (joint_mi.batchbald_batch without the per-step statistics). configurations:
    "nested" (sampled labels drawn once per batch, extended per pick) or "redrawn" (all redrawn at every sampled
    step, as the released code)."""
    return batchbald_batch(
        log_probs_N_K_C, batch_size, num_samples=num_samples, seed=seed, configurations=configurations
    ).batch


ACQUISITIONS = {
    "random": random_batch,
    "bald": bald_scores,
    "entropy": entropy_scores,
    "var_ratios": var_ratios_scores,
    "mean_std": mean_std_scores,
    "batchbald": batchbald_acquire,
    "margin": margin_scores,
    "least_confidence": least_confidence_scores,
    "epig": epig_scores,
    "badge": badge_batch,
    "coreset": coreset_batch,
}
ACQUISITION_NAMES = tuple(ACQUISITIONS)


def label(fn) -> str:
    """module.name of a callable (for messages)."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


BATCH_ARGUMENTS = ("seed", "num_samples")


def acquisition_kind(fn) -> str:
    """'batch' if fn has a `batch_size` parameter, 'score' if it can be called with the log-probs and the inputs it
    names; else ValueError (a required parameter that nothing supplies)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ValueError(f"{label(fn)} is not a function with a signature") from None
    inputs = dict.fromkeys(requested_inputs(fn))
    if "batch_size" in sig.parameters:
        arguments = dict.fromkeys(p for p in BATCH_ARGUMENTS if p in sig.parameters)
        kind, args, known = "batch", (None, 1), {**inputs, **arguments}
    else:
        kind, args, known = "score", (None,), inputs
    try:
        sig.bind(*args, **known)
    except TypeError:
        raise ValueError(
            f"{label(fn)}{sig} is neither a per-point score fn(log_probs_N_K_C, [inputs]) nor a batch function "
            f"fn(log_probs_N_K_C, batch_size, ...); inputs a function may name: {', '.join(INPUT_NAMES)}"
        ) from None
    return kind


SCORE_NAMES = tuple(n for n, f in ACQUISITIONS.items() if acquisition_kind(f) == "score")


def needs_predictions(fn) -> bool:
    """False for acquisition functions that ignore the MC predictions (random, BADGE, CoreSet): the pool is not
    scored. A function that names target log-probs needs them (the targets share the pool's masks)."""
    fn = resolve(fn)
    return bool(getattr(fn, "needs_predictions", True)) or "target_log_probs_M_K_C" in requested_inputs(fn)


def resolve(name_or_fn):
    """The acquisition callable for a built-in name, or the callable itself."""
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str) or name_or_fn not in ACQUISITIONS:
        raise ValueError(
            f"Unknown acquisition function {name_or_fn!r}; expected one of {', '.join(ACQUISITION_NAMES)} "
            "or a callable."
        )
    return ACQUISITIONS[name_or_fn]


def select(
    name_or_fn, log_probs_N_K_C, batch_size, *, num_samples=None, seed=None, stochastic=None, coldness=1.0, inputs=None
) -> AcquisitionBatch:
    """Pick `batch_size` distinct pool positions with a built-in (by name) or any acquisition callable.

    log_probs_N_K_C: log-probabilities [pool N, MC samples K, classes C]. num_samples: BatchBALD's M (default
    (40000 // K) * K, as the paper). seed: the function's random draws; None means 0, so results are reproducible:
    pass a different seed per round. stochastic: None (top-k) or a mode of .stochastic (power, softmax,
    softrank) for per-point scores: sample with probability ∝ score^coldness, exp(coldness·score) or rank^-coldness.
    inputs: the tensors of batchbald.acquisition.inputs.INPUTS the function names (e.g. target_log_probs_M_K_C).
    Returns indices in the order picked; scores[i] is the i-th pick's score (0.0 for random; for BatchBALD the
    estimated joint MI of the first i+1 picks).
    """
    fn = resolve(name_or_fn)
    log_probs_N_K_C = _check_log_probs(log_probs_N_K_C)  # float64, renormalised over classes
    N, K, C = log_probs_N_K_C.shape
    _check_batch_size(batch_size, N)
    if num_samples is not None and (
        isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1
    ):
        raise ValueError(f"num_samples must be None or a positive int, got {num_samples!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be None or an int, got {seed!r}.")
    seed = 0 if seed is None else seed
    kind = acquisition_kind(fn)
    if stochastic is not None and kind != "score":
        raise ValueError(
            f"stochastic acquisition needs a per-point score ({', '.join(SCORE_NAMES)} or yours), got {name_or_fn!r}."
        )
    if fn is mean_std_scores and K < 2:
        raise ValueError("mean_std needs at least K = 2 MC samples (it uses the unbiased std over samples).")

    given = _requested(fn, inputs or {})
    if kind == "batch":
        params = inspect.signature(fn).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in (("seed", seed), ("num_samples", num_samples)) if takes_all or k in params}
        return _checked_batch(fn(log_probs_N_K_C, batch_size, **kwargs, **given), batch_size, N, fn)
    scores_N = _checked_scores(fn(log_probs_N_K_C, **given), N, fn)
    if stochastic is not None:
        indices, scores = stochastic_batch(scores_N, batch_size, mode=stochastic, coldness=coldness, seed=seed)
        return AcquisitionBatch(indices, scores)
    return top_k(scores_N, batch_size)


def _requested(fn, inputs: dict) -> dict:
    """The inputs fn names, from `inputs`; ValueError naming the first one missing."""
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown:
        raise ValueError(f"unknown acquisition input {unknown[0]!r}; known inputs: {', '.join(INPUT_NAMES)}")
    missing = [name for name in requested_inputs(fn) if name not in inputs]
    if missing:
        raise ValueError(f"{label(fn)} needs {missing[0]} ({INPUTS[missing[0]]}), which was not given")
    return {name: inputs[name] for name in requested_inputs(fn)}


def _checked_scores(scores_N, N: int, fn) -> torch.Tensor:
    if not isinstance(scores_N, torch.Tensor) or tuple(scores_N.shape) != (N,):
        shape = tuple(scores_N.shape) if isinstance(scores_N, torch.Tensor) else type(scores_N).__name__
        raise ValueError(f"{label(fn)} must return a score tensor of shape [N] = ({N},), got {shape}")
    scores_N = scores_N.detach().to(torch.float64)
    if not bool(torch.isfinite(scores_N).all()):
        raise ValueError(f"{label(fn)} returned NaN or infinite scores")
    return scores_N


def _checked_batch(result, batch_size: int, N: int, fn) -> AcquisitionBatch:
    if not isinstance(result, AcquisitionBatch):
        indices = result.tolist() if isinstance(result, torch.Tensor) else list(result)
        result = AcquisitionBatch(indices, [0.0] * len(indices))
    idx = result.indices
    if (
        len(idx) != batch_size
        or len(set(idx)) != len(idx)
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < N for i in idx)
    ):
        raise ValueError(
            f"{label(fn)} must return {batch_size} distinct pool positions in [0, {N}), got {idx[:12]!r}"
            + (" ..." if len(idx) > 12 else "")
        )
    return result
