"""One paper-settings round per dataset, timed stage by stage (train, score, select, evaluate): the round part of
`scripts/benchmark_loop.py`, which imports it. MNIST (K=100, b=10, the paper's 20 initial points), Repeated MNIST
(3 copies, K=10, b=10) and EMNIST (K=10, b=5) with the paper's training settings (SPEC §1-2), BatchBALD selection.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from batchbald.models import build_model, draw_masks, mc_log_probs
from batchbald.train import TrainConfig, evaluate, train_model

# dataset, load_dataset kwargs, model, K, b, initial, validation size, TrainConfig kwargs
ROUNDS = [
    ("mnist", {}, "mnist_cnn", 100, 10, "paper", 1024, dict(epoch_samples=5056, max_epochs=30)),
    ("repeated_mnist", {"repetitions": 2}, "mnist_cnn", 10, 10, "paper", 3072, dict(epoch_samples=5056, max_epochs=40)),
    ("emnist", {"split": "balanced"}, "emnist_cnn", 10, 5, 1, 16384, dict(epoch_samples=20224, max_epochs=40)),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def load_round_data(dataset, kwargs, root, smoke):
    from batchbald.data import DataError, find_shared_data, load_dataset, prepare_from

    subset = dict(train_subset_per_class=40, test_subset=500) if smoke else {}
    attempts = [(dataset, kwargs)]
    if dataset == "emnist":
        attempts.append((dataset, {**kwargs, "split": "standin"}))
    errors = []
    for name, kw in attempts:
        try:
            return load_dataset(name, root, download=False, **kw, **subset), ""
        except DataError as e:
            errors.append(str(e).splitlines()[0])
    shared = find_shared_data()
    if shared is not None:  # files in the shared layout: link them into a temporary root
        tmp = Path(tempfile.mkdtemp(prefix="bb-bench-data-"))
        prepare_from(shared, tmp, symlink=True)
        for name, kw in attempts:
            try:
                return load_dataset(name, tmp, download=False, **kw, **subset), ""
            except DataError as e:
                errors.append(str(e).splitlines()[0])
    return None, "; ".join(errors)


def bench_round(spec, root, device, smoke) -> dict:
    from batchbald.data import make_splits

    dataset, kwargs, model_name, k, b, initial, validation, train_kwargs = spec
    ds, error = load_round_data(dataset, kwargs, root, smoke)
    if ds is None:
        return {"dataset": dataset, "note": f"skipped: data not available ({error})"}
    notes = [ds.description]
    if dataset == "emnist":
        notes.append(f"labelled set {initial}/class (the paper starts from 0 points: an untrained first round)")
    left = len(ds.train.y) - (len(ds.paper_initial) if initial == "paper" else initial * ds.num_classes)
    if validation > left // 4:
        validation = left // 4
        notes.append(f"validation capped to {validation} (train set smaller than the paper's)")
    if smoke:
        train_kwargs = dict(epoch_samples=256, max_epochs=2)
    splits = make_splits(ds, initial=initial, validation_size=validation, seed=0)
    g = torch.Generator(device).manual_seed(0)  # on the device, as the loop's generators
    torch.manual_seed(0)
    model = build_model(model_name, ds.num_classes).to(device)
    # on the device once, outside the timings, as the loop does (no host-to-device copy inside a timed step)
    tr = SimpleNamespace(x=ds.train.x.to(device), y=ds.train.y.to(device))
    test_x, test_y = ds.test.x.to(device), ds.test.y.to(device)
    sync(device)
    row = {
        "dataset": dataset,
        "model": model_name,
        "K": k,
        "b": b,
        "labelled": len(splits.initial),
        "pool": len(splits.pool),
        "test": len(ds.test.y),
    }
    start = time.perf_counter()
    result = train_model(
        model,
        tr.x[torch.tensor(splits.initial, device=device)],
        tr.y[torch.tensor(splits.initial, device=device)],
        tr.x[torch.tensor(splits.validation, device=device)],
        tr.y[torch.tensor(splits.validation, device=device)],
        TrainConfig(**train_kwargs),
        generator=g,
    )
    sync(device)
    row["train_s"], row["epochs"] = time.perf_counter() - start, result.epochs
    pool_x = tr.x[torch.tensor(splits.pool, device=device)]
    masks = draw_masks(model, k, g)
    row["score_s"] = timed(lambda: row.__setitem__("log_probs", mc_log_probs(model, pool_x, masks)), device)
    try:
        from batchbald.acquisition import select
    except ImportError as e:
        row["select_s"] = None
        notes.append(f"selection not timed: batchbald.acquisition unavailable ({e})")
    else:
        log_probs = row["log_probs"]
        row["select_s"] = timed(lambda: select("batchbald", log_probs, b, seed=0), device)
    del row["log_probs"]
    eval_result = {}
    row["eval_s"] = timed(lambda: eval_result.update(vars(evaluate(model, test_x, test_y, k=k, generator=g))), device)
    row["test_accuracy"] = eval_result["accuracy"]
    row["note"] = "; ".join(notes)
    return row


def fmt_value(x, spec: str = ".2f") -> str:
    """x formatted with spec, or "n/a" for a value not measured (None)."""
    return "n/a" if x is None else format(x, spec)


def rounds_markdown(rounds: list[dict]) -> list[str]:
    """The report's section on the timed rounds, one table row per dataset."""
    lines = [
        "",
        "## One paper-settings round per dataset",
        "",
        "Train: fresh model, paper protocol (SPEC §1). Score: `mc_log_probs` over the whole pool. "
        "Select: BatchBALD (`batchbald.acquisition.select`). Eval: test set with K samples.",
        "",
        "| dataset | K | b | labelled | pool | epochs | train s | score s | select s | eval s | "
        "test acc | foreign load | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        if "train_s" not in r:
            lines.append(f"| {r['dataset']} | | | | | | | | | | | | {r['note']} |")
            continue
        lines.append(
            f"| {r['dataset']} | {r['K']} | {r['b']} | {r['labelled']} | {r['pool']:,} | "
            f"{r['epochs']} | {fmt_value(r['train_s'])} | {fmt_value(r['score_s'])} | "
            f"{fmt_value(r['select_s'])} | {fmt_value(r['eval_s'])} | {r['test_accuracy']:.3f} | "
            f"{r['foreign']:.2f} | {r['note']} |"
        )
    return lines
