"""Shared fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small ops on a shared 2-core box: one thread is faster and steadier."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
