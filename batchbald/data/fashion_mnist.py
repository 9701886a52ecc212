"""Fashion-MNIST (Xiao et al., 2017) as a dataset factory: the worked example of `dataset._target_`.

Offline it reads the files of Debian's `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist, as root:
/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz), checked against the sha256s
below (of that package's files: its gzip files are not byte-identical to Zalando's, so Zalando's md5s do not apply;
the decoded arrays are the IDX payloads of those files). With internet, torchvision.datasets.FashionMNIST(root,
train=..., download=True) is a factory of the same kind (a dataset with .data and .targets).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

from batchbald.data.files import DataError, read_idx

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# sha256 of the files of dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Debian), recorded 2026-12-06
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def _checked(path: Path):
    if not path.is_file():
        raise DataError(
            f"{path} not found: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist, as "
            "root), or set dataset.files=<a folder with the Fashion-MNIST .gz files>"
        )
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != SHA256[path.name]:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {SHA256[path.name]}, got {got}")
    return read_idx(path)


def fashion_mnist(train: bool, files: str = DEBIAN_DIR) -> SimpleNamespace:
    """One split as a torchvision-style dataset: .data uint8 [N, 28, 28], .targets int64 [N], .classes."""
    prefix = "train" if train else "t10k"
    folder = Path(files).expanduser()
    images = _checked(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = _checked(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return SimpleNamespace(data=images, targets=labels.long(), classes=list(CLASSES))
