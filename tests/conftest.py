"""Shared fixtures."""

import pytest
import torch

from tests.fakedata import write_emnist_split


@pytest.fixture
def one_thread():
    """Small ops on a shared 2-core box: one thread is faster and steadier."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    """A tiny generated EMNIST split (`dataset.split=tiny`: 400 train, 60 test, 4 classes) for driver runs.
    Tests read it only; a test that damages data writes its own copy."""
    root = tmp_path_factory.mktemp("data")
    write_emnist_split(root, "tiny", n_train=400, n_test=60, num_classes=4)
    return root
