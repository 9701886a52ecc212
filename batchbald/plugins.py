"""Checks for user-supplied parts (an acquisition function or a model given by `_target_`), run before any work.

Each check calls the part once on a small made-up input and raises ValueError with one line saying what is wrong.
"""

from __future__ import annotations

import torch
from torch import nn

from batchbald.acquisition import acquisition_kind, grad_embeddings, label, requested_inputs, select
from batchbald.models.features import FeatureError, deterministic_outputs
from batchbald.models.generic import SUPPORTED_DROPOUT, generic_dropout_layers, has_fast_path


def probe_log_probs(n: int = 12, k: int = 3, c: int = 4, seed: int = 0) -> torch.Tensor:
    """Random normalised log_probs_N_K_C for probing."""
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64), dim=2)


def probe_inputs(names, n: int = 12, k: int = 3, c: int = 4, d: int = 6, seed: int = 1) -> dict:
    """Made-up values of the named acquisition inputs (batchbald.acquisition.inputs) matching probe_log_probs."""
    g = torch.Generator().manual_seed(seed)
    features_N_D = torch.randn(n, d, generator=g, dtype=torch.float64).relu()
    probs_N_C = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)
    values = {
        "target_log_probs_M_K_C": torch.log_softmax(torch.randn(5, k, c, generator=g, dtype=torch.float64), dim=2),
        "pool_features_N_D": features_N_D,
        "labelled_features_L_D": torch.randn(4, d, generator=g, dtype=torch.float64).relu(),
        "pool_probs_N_C": probs_N_C,
        "pool_grad_embeddings_N_E": grad_embeddings(features_N_D, probs_N_C),
    }
    return {name: values[name] for name in names}


def check_acquisition(fn, *, stochastic: str | None = None, batch_size: int = 3, num_samples: int | None = None):
    """Kind of fn ('score' or 'batch') after one call on a small case; ValueError if it is not usable."""
    if not callable(fn):
        raise ValueError(f"{fn!r} is not callable")
    kind = acquisition_kind(fn)
    if stochastic is not None and kind != "score":
        raise ValueError(f"{label(fn)} is a batch function; acquisition.stochastic needs a per-point score")
    try:
        select(
            fn,
            probe_log_probs(),
            batch_size,
            seed=0,
            num_samples=num_samples,
            stochastic=stochastic,
            inputs=probe_inputs(requested_inputs(fn)),
        )
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of user code on the probe is reported in one line
        raise ValueError(f"{label(fn)} failed on a 12x3x4 test input: {type(e).__name__}: {e}") from None
    return kind


def check_model(model, num_classes: int, example_x: torch.Tensor, *, features: bool = False) -> str:
    """'fast' (our exact consistent-MC-dropout scoring) or 'generic' (K plain masked passes); ValueError if the
    model cannot be used: not an nn.Module, no dropout, or a forward that does not give log-probabilities [B, C];
    with `features` (an acquisition that asks for them), also if it cannot give penultimate features."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    if not any(True for _ in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no parameters to train")
    if not generic_dropout_layers(model):
        kinds = ", ".join(t.__name__ for t in SUPPORTED_DROPOUT)
        raise ValueError(f"{type(model).__name__} has no dropout layer ({kinds}): MC dropout needs one")
    x = example_x[:2].to(torch.float32)
    try:
        with torch.no_grad():
            model.eval()
            out = model(x)
    except Exception as e:  # noqa: BLE001 - user code
        raise ValueError(f"{type(model).__name__} failed on input of shape {tuple(x.shape)}: {type(e).__name__}: {e}")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0], num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{type(model).__name__} must return log-probabilities of shape [B, {num_classes}] for input "
            f"{tuple(x.shape)}, got {shape}"
        )
    lse = torch.logsumexp(out.double(), dim=1)
    if not bool(torch.isfinite(lse).all()) or float(lse.abs().max()) > 1e-3:
        raise ValueError(f"{type(model).__name__} must return log-probabilities: end forward with F.log_softmax")
    if features:
        try:
            deterministic_outputs(model, x)
        except FeatureError as e:
            raise ValueError(f"the acquisition asks for penultimate features, but {e}") from None
    return "fast" if has_fast_path(model) else "generic"


def import_target(path) -> object:
    """The object at a dotted path `package.module.attribute` (what Hydra's `_target_` names); ValueError if absent."""
    import importlib

    if not isinstance(path, str) or "." not in path.strip("."):
        raise ValueError(f"{path!r} is not a dotted path module.attribute")
    parts = path.split(".")
    error = None
    for cut in range(len(parts) - 1, 0, -1):  # longest importable module prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as e:
            error = error or e
            if e.name and not ".".join(parts[:cut]).startswith(e.name):
                break  # a module that exists failed on one of its own imports
            continue
        except Exception as e:  # noqa: BLE001 - the user's module raised on import
            raise ValueError(f"importing {'.'.join(parts[:cut])} failed: {type(e).__name__}: {e}") from None
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise ValueError(f"{'.'.join(parts[:cut])} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"cannot import {path} ({type(error).__name__}: {error}); is its package on PYTHONPATH?")
