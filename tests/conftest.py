"""Shared test set-up: headless plotting and skipping GPU tests on machines without CUDA."""

from __future__ import annotations

import os

import pytest

# Figures must render without a display (book builds, CI); set before matplotlib is imported.
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is not available (torch imported only if needed)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False")
    for item in gpu_items:
        item.add_marker(skip)
