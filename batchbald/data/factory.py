"""Your own dataset: a factory named by `dataset._target_`, called as factory(train=True) and factory(train=False)
(plus the config's extra keys), returning either a pair (images, labels) or a torchvision-style dataset with `.data`
and `.targets`. Images uint8 (0..255) or float, [N, H, W], [N, C, H, W] or channels-last [N, H, W, C] with C in 1, 3, 4; labels integers 0..C−1, and C follows
from the labels. The repository's options apply on top, as for the built-ins (`datasets.assemble`): class-balanced
subsets, standardisation (the train split's mean and std for user data), noisy repetitions, splits.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

# Keys of the dataset config that the repository reads; every other key is passed to the factory.
REPOSITORY_KEYS = (
    "_target_",
    "name",
    "root",
    "repetitions",
    "split",
    "noise_std",
    "initial",
    "validation_size",
    "train_subset_per_class",
    "test_subset",
    "epoch_samples",
    "max_epochs",
    "description",
    "validation_draw",
)


class FactoryError(ValueError):
    """A dataset factory failed or returned something unusable (the message says what and what is allowed)."""


PASSED_IF_NAMED = ("root", "split")  # repository keys a factory also gets when its signature names them


def factory_kwargs(dataset_cfg: dict, factory=None) -> dict:
    """The dataset config's keys that go to the factory: those that are not the repository's, plus `root` and `split`
    when the factory names them (torchvision's datasets do); a factory without **kwargs gets only the keys its
    signature names (so a config's `files:` does not reach torchvision.datasets.FashionMNIST)."""
    kwargs = {k: v for k, v in dataset_cfg.items() if k not in REPOSITORY_KEYS}
    if factory is None:
        return kwargs
    params = _parameters(factory)
    if params is None:
        return kwargs
    kwargs.update({k: dataset_cfg[k] for k in PASSED_IF_NAMED if k in dataset_cfg and k in params})
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return kwargs


def _parameters(factory):
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()  # a copy: standardisation works in place
    try:
        return torch.from_numpy(np.array(value))  # a copy (also of read-only memory maps)
    except (TypeError, ValueError, RuntimeError) as e:
        raise FactoryError(f"{what} cannot be read as an array ({type(value).__name__}: {e})") from None


def call_factory(factory, *, train: bool, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """(images [N, C, H, W] uint8 or float32, labels int64 [N], class names or None) of one split, checked."""
    part = "train" if train else "test"
    try:
        result = factory(train=train, **kwargs)
    except Exception as e:  # noqa: BLE001 - user code: one line
        raise FactoryError(f"factory(train={train}) failed: {type(e).__name__}: {e}") from None
    classes = None
    if hasattr(result, "data") and hasattr(result, "targets"):
        images, labels = result.data, result.targets
        names = getattr(result, "classes", None)
        classes = [str(c) for c in names] if isinstance(names, (list, tuple)) else None
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        images, labels = result
    else:
        raise FactoryError(
            f"factory(train={train}) must return (images, labels) or a dataset with .data and .targets, "
            f"got {type(result).__name__}"
        )
    x = _as_tensor(images, f"the {part} images")
    y = _as_tensor(labels, f"the {part} labels")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2).contiguous()  # channels-last [N, H, W, C] (e.g. torchvision's CIFAR .data)
    if x.dim() != 4 or min(x.shape) < 1:
        raise FactoryError(f"the {part} images must be [N, H, W] or [N, C, H, W], got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise FactoryError(f"the {part} images must be uint8 or float, got {x.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise FactoryError(f"the {part} images contain NaN or infinite values")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise FactoryError(f"the {part} labels must be [N] for {x.shape[0]} images, got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        if not (y.is_floating_point() and bool((y == y.round()).all())):
            raise FactoryError(f"the {part} labels must be integers 0..C-1, got {y.dtype}")
    y = y.long()
    if y.numel() and int(y.min()) < 0:
        raise FactoryError(f"the {part} labels must be integers 0..C-1, got {int(y.min())}")
    return (x if x.dtype == torch.uint8 else x.to(torch.float32)), y, classes


def load_from_factory(factory, kwargs: dict):
    """Train and test splits of a user factory, checked against each other: (train_x, train_y, test_x, test_y,
    classes) with C = 1 + the largest train label; test labels must be < C and image shapes must agree."""
    train_x, train_y, classes = call_factory(factory, train=True, kwargs=kwargs)
    test_x, test_y, _ = call_factory(factory, train=False, kwargs=kwargs)
    if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]):
        raise FactoryError(
            f"train and test images must have the same shape, got {tuple(train_x.shape[1:])} and "
            f"{tuple(test_x.shape[1:])}"
        )
    if train_x.dtype != test_x.dtype:
        raise FactoryError(f"train and test images must have the same dtype, got {train_x.dtype} and {test_x.dtype}")
    num_classes = int(train_y.max()) + 1
    if num_classes < 2:
        raise FactoryError(f"the train labels must hold at least 2 classes, got {num_classes}")
    if test_y.numel() and int(test_y.max()) >= num_classes:
        raise FactoryError(
            f"the test labels must be in 0..{num_classes - 1} (the train labels' classes), got {int(test_y.max())}"
        )
    if classes is not None and len(classes) < num_classes:
        classes = None
    return train_x, train_y, test_x, test_y, (classes or [str(c) for c in range(num_classes)])[:num_classes]
