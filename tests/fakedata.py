"""Small learnable image data for end-to-end tests: tensors, and files in the official EMNIST IDX layout."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from batchbald.data import Dataset, ImageSet


def images_u8(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c lights up a class-specific block of the image, plus noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(n, 28, 28))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 4)
        x[i, 2 + 6 * r : 8 + 6 * r, 2 + 6 * col : 8 + 6 * col] += 180
    return x.clip(0, 255).astype(np.uint8), y.astype(np.uint8)


def tensor_dataset(n_train=240, n_test=60, num_classes=4, seed=0) -> Dataset:
    def to_set(x, y):
        xs = torch.from_numpy(x).float().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
        return ImageSet(xs, torch.from_numpy(y).long())

    return Dataset(
        name="fake",
        train=to_set(*images_u8(n_train, num_classes, seed)),
        test=to_set(*images_u8(n_test, num_classes, seed + 1)),
        num_classes=num_classes,
        classes=[chr(ord("A") + c) for c in range(num_classes)],
        paper_initial=None,
        description="fake data",
    )


def _idx(arr: np.ndarray) -> bytes:
    magic = 0x0800 | arr.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_emnist_split(root: Path, split: str, n_train=240, n_test=60, num_classes=4, seed=0) -> None:
    """Writes <root>/EMNIST/raw/emnist-<split>-* (images stored transposed, as the official files are)."""
    raw = root / "EMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        x, y = images_u8(n, num_classes, s)
        (raw / f"emnist-{split}-{part}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(x.transpose(0, 2, 1).copy()))
        )
        (raw / f"emnist-{split}-{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(y)))
    (raw / f"emnist-{split}-mapping.txt").write_text("".join(f"{c} {65 + c}\n" for c in range(num_classes)))
