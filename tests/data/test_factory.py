"""Your own dataset by `dataset._target_`: a factory written outside batchbald/ runs the loop from the command line;
what factories may return (pairs, torchvision-style datasets, uint8 or float, with or without a channel dim); bad
factories stop before any work with one line; Fashion-MNIST from Debian's files when they are installed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from batchbald.data import load_dataset, make_splits
from batchbald.data.factory import FactoryError, factory_kwargs
from batchbald.data.fashion_mnist import DEBIAN_DIR
from tests.test_driver import run

USER_DATA = textwrap.dedent(
    """
    import numpy as np
    from types import SimpleNamespace


    def _images(n, seed, classes=4):
        rng = np.random.default_rng(seed)
        y = np.arange(n) % classes
        x = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(y):
            x[i, 4 + 5 * c : 9 + 5 * c, 4:24] += 180
        return x.clip(0, 255).astype(np.uint8), y


    def pairs(train, scale=1.0):
        x, y = _images(300 if train else 80, 0 if train else 1)
        return x.astype(np.float32) * scale / 255.0, y           # float [N, H, W], numpy


    def torchvision_style(train):
        x, y = _images(300 if train else 80, 2 if train else 3)
        return SimpleNamespace(data=x[:, None], targets=list(y), classes=["a", "b", "c", "d"])   # [N, 1, H, W]


    def colour(train):
        x, y = _images(300 if train else 80, 4 if train else 5)
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)))                    # 32 x 32
        return np.stack([x, x[:, ::-1], 255 - x], axis=1), y        # uint8 [N, 3, 32, 32]


    def not_a_dataset(train):
        return {"x": 1}


    def flat_images(train):
        x, y = _images(50, 0)
        return x.reshape(50, -1)[:, :10][:, :, None, None, None], y


    def labels_out_of_range(train):
        x, y = _images(100, 0)
        return x, (y + (0 if train else 1))


    def tiny(train):
        x, y = _images(8, 0)
        return x, y


    def crashes(train):
        raise OSError("disk on fire")
    """
)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("userdata")
    (d / "userdata.py").write_text(USER_DATA)
    return d


def args(out: Path, target: str, *extra: str) -> list[str]:
    return [
        "dataset=fashion_mnist",  # its repository keys; the factory is replaced
        f"dataset._target_={target}",
        "~dataset.files",
        "dataset.initial=1",
        "dataset.validation_size=20",
        "dataset.train_subset_per_class=null",
        "dataset.test_subset=null",
        "acquisition=bald",
        "acquisition.batch_size=3",
        "budget=6",
        "mc_samples=3",
        "train.epoch_samples=256",
        "train.max_epochs=3",
        "threads=1",
        "progress=false",
        "device=cpu",
        "wandb.mode=disabled",
        f"hydra.run.dir={out}",
        *extra,
    ]


@pytest.mark.parametrize(
    "target, extra",
    [("userdata.pairs", ["+dataset.scale=0.5"]), ("userdata.torchvision_style", []), ("userdata.colour", [])],
)
def test_a_factory_outside_the_package_runs_the_loop(user_dir, tmp_path, target, extra):
    out = tmp_path / "run"
    proc = run(args(out, target, *extra), cwd=user_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(out / "rounds.csv")
    assert df["labelled_size"].tolist() == [4, 7, 10]  # 1 per class of the 4 classes the labels name
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "finished" and meta["config"]["dataset"]["_target_"] == target
    assert max(max(json.loads(c)) for c in df["class_counts"]) <= 6 and len(json.loads(df["class_counts"][0])) == 4
    # the MNIST CNN sized from the images: colour 32 x 32 takes the generic scoring path, 28 x 28 the fast one
    assert ("has no fast consistent-MC-dropout path" in proc.stderr) == (target == "userdata.colour")


def test_the_mnist_cnn_is_sized_from_the_images():
    from batchbald.models import build_model
    from batchbald.models.generic import has_fast_path

    model = build_model("mnist_cnn", 7, (3, 32, 32))
    assert model.conv1.in_channels == 3 and model.fc1.in_features == 64 * 5 * 5 and not has_fast_path(model)
    assert build_model("mnist_cnn", 10, (1, 28, 28)).fc1.in_features == 1024 and has_fast_path(build_model("mnist_cnn", 10))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="MnistCNN needs images of at least 1 x 16 x 16, got"):
        build_model("mnist_cnn", 10, (1, 12, 12))


@pytest.mark.parametrize(
    "target, message",
    [
        ("nosuchmodule.make", "dataset._target_=nosuchmodule.make: cannot import nosuchmodule.make"),
        ("userdata.nothing", "dataset._target_=userdata.nothing: userdata has no attribute 'nothing'"),
        ("userdata.not_a_dataset", "must return (images, labels) or a dataset with .data and .targets, got dict"),
        ("userdata.flat_images", "the train images must be [N, H, W] or [N, C, H, W], got shape (50, 10, 1, 1, 1)"),
        ("userdata.labels_out_of_range", "the test labels must be in 0..3 (the train labels' classes), got 4"),
        ("userdata.crashes", "factory(train=True) failed: OSError: disk on fire"),
        ("userdata.tiny", "initial=1 per class but class"),
    ],
)
def test_bad_factories_stop_before_any_work(user_dir, tmp_path, target, message):
    out = tmp_path / "run"
    extra = ["dataset.initial=3"] if target == "userdata.tiny" else []
    proc = run(args(out, target, *extra), cwd=user_dir)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.replace("initial=1", "initial=3") in lines[0]
    assert not (out / "rounds.csv").exists()


def _pairs(train: bool, classes: int = 3, channels: int | None = None):
    g = torch.Generator().manual_seed(0 if train else 1)
    n = 60 if train else 30
    x = torch.randint(0, 256, (n, 12, 12) if channels is None else (n, channels, 12, 12), generator=g)
    return x.to(torch.uint8), torch.arange(n) % classes


def test_factory_images_get_the_repositorys_options():
    ds = load_dataset("mine", "unused", factory=_pairs, train_subset_per_class=10, test_subset=9, seed=4)
    assert ds.train.x.shape == (30, 1, 12, 12) and ds.test.x.shape == (9, 1, 12, 12) and ds.num_classes == 3
    assert torch.bincount(ds.train.y).tolist() == [10, 10, 10] and torch.bincount(ds.test.y).tolist() == [3, 3, 3]
    full = load_dataset("mine", "unused", factory=_pairs)
    assert abs(float(full.train.x.mean())) < 1e-5 and float(full.train.x.std()) == pytest.approx(1.0, rel=1e-4)
    noisy = load_dataset("mine", "unused", factory=_pairs, repetitions=2, noise_std=0.1, seed=1)
    assert noisy.train.x.shape[0] == 180 and torch.equal(noisy.train.y, full.train.y.repeat(3))
    assert 0.05 < float((noisy.train.x[:60] - full.train.x).std()) < 0.15  # every copy gets its own noise
    colour = load_dataset("mine", "unused", factory=lambda train: _pairs(train, channels=3))
    assert colour.train.x.shape == (60, 3, 12, 12)
    splits = make_splits(ds, initial=2, validation_size=5, seed=0)
    assert len(splits.initial) == 6 and len(splits.pool) == 30 - 6 - 5


def test_extra_config_keys_go_to_the_factory_and_the_repositorys_do_not():
    cfg = {"_target_": "m.f", "name": "x", "root": "r", "initial": 2, "files": "/f", "scale": 3}
    assert factory_kwargs(cfg) == {"files": "/f", "scale": 3}
    assert factory_kwargs(cfg, lambda train, root, files, scale: None) == {"files": "/f", "scale": 3, "root": "r"}


def test_float_labels_must_be_integers():
    def bad(train):
        x, y = _pairs(train)
        return x, y.double() + 0.5

    with pytest.raises(FactoryError, match="labels must be integers 0..C-1"):
        load_dataset("mine", "unused", factory=bad)


@pytest.mark.skipif(not Path(DEBIAN_DIR).is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debians_files():
    from batchbald.data.fashion_mnist import fashion_mnist

    train, test = fashion_mnist(train=True), fashion_mnist(train=False)
    assert tuple(train.data.shape) == (60000, 28, 28) and tuple(test.data.shape) == (10000, 28, 28)
    assert (
        torch.bincount(train.targets).tolist() == [6000] * 10 and torch.bincount(test.targets).tolist() == [1000] * 10
    )
    ds = load_dataset("fashion_mnist", "unused", factory=fashion_mnist, train_subset_per_class=5, seed=0)
    assert ds.classes[9] == "Ankle boot" and ds.train.x.shape == (50, 1, 28, 28)
    assert np.isclose(float(train.data.float().mean()) / 255, 0.2860, atol=1e-3)  # Fashion-MNIST's known mean


def test_fashion_mnist_with_a_wrong_file_fails_with_its_checksum(tmp_path):
    from batchbald.data import DataError
    from batchbald.data.fashion_mnist import fashion_mnist

    with pytest.raises(DataError, match="not found: install Debian's dataset-fashion-mnist"):
        fashion_mnist(train=True, files=str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="checksum mismatch"):
        fashion_mnist(train=True, files=str(tmp_path))


def test_the_factorys_arrays_are_not_changed_and_channels_last_is_understood(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 10, 10, 3, generator=g)  # float32, channels-last
    before = images.clone()
    memmap = tmp_path / "x.npy"
    np.save(memmap, before.numpy())
    for source in (images, np.load(memmap, mmap_mode="r")):  # a tensor the caller keeps; a read-only memory map
        ds = load_dataset("mine", "unused", factory=lambda train, s=source: (s, torch.arange(40) % 2))
        assert ds.train.x.shape == (40, 3, 10, 10)
        torch.testing.assert_close(ds.train.x[:, 1], (before[..., 1] - before.mean()) / before.std(), atol=1e-4, rtol=0)
    assert torch.equal(images, before)


def test_a_factory_gets_only_the_keys_it_names_unless_it_takes_kwargs():
    cfg = {"_target_": "m.f", "name": "x", "root": "r", "split": "s", "files": "/f", "download": True}

    def torchvision_like(root, train=True, download=False):
        return None

    def anything(train, **kwargs):
        return None

    assert factory_kwargs(cfg, torchvision_like) == {"root": "r", "download": True}
    assert factory_kwargs(cfg, anything) == {"files": "/f", "download": True}
