"""Fixtures shared by the lib tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small matrices: one CPU thread is as fast, and steadier on shared cores than two.
    Modules of tiny models use it for every test: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
