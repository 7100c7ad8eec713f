"""Datasets with an explicit online/offline choice (introduced in *Softmax regression*).

Every loader takes ``source``:

- ``"download"``: the real dataset, downloaded into a cache directory when missing;
  fails with :class:`DataUnavailableError` when that is impossible.
- ``"offline"``: real data that ships with an installed package, no network needed.
- ``"auto"`` (default): the download when it works, else the offline data with a notice
  printed where the reader sees it (the page or notebook output), never silently.

A cache that exists but cannot be read raises :class:`DataCacheError`, which says which
directory to delete. ``COURSE_DATA_DIR`` moves the cache; ``COURSE_DATA_SOURCE`` sets the
default source (the course machines set it to ``offline``).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

Source = Literal["auto", "download", "offline"]
SOURCES: tuple[str, ...] = ("auto", "download", "offline")
T = TypeVar("T")

FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip


class DataCacheError(RuntimeError):
    """A cache directory exists but its files are incomplete or corrupt."""


class DataUnavailableError(RuntimeError):
    """``source="download"`` was asked for and the download failed."""


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``root``, else ``$COURSE_DATA_DIR``, else ``~/.cache/dl-course``."""
    path = root or os.environ.get("COURSE_DATA_DIR") or Path.home() / ".cache" / "dl-course"
    return Path(path).expanduser()


def resolve_source(source: str | None) -> str:
    """Validate ``source``; ``None`` means ``$COURSE_DATA_SOURCE`` or ``"auto"``."""
    chosen = source if source is not None else os.environ.get("COURSE_DATA_SOURCE", "auto")
    if chosen not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {chosen!r}")
    return chosen


def notice(message: str) -> None:
    """Print a notice on stdout, which a notebook or book page shows to its reader."""
    print(f"NOTICE: {message}", flush=True)


def with_fallback(
    source: str | None, online: Callable[[], T], offline: Callable[[], T], what: str, instead: str
) -> tuple[T, str]:
    """Run ``online`` or ``offline`` as ``source`` says; returns (result, source used).

    Introduced in: Softmax regression (data). Text loaders reuse it.
    """
    chosen = resolve_source(source)
    if chosen == "offline":
        return offline(), "offline"
    try:
        return online(), "download"
    except DataCacheError:
        raise
    except (OSError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if chosen == "download":
            raise DataUnavailableError(
                f"could not download {what} ({reason}). Check the network connection, "
                "or pass source='offline' to use the offline data."
            ) from exc
        notice(f"{what} could not be downloaded ({reason}); using {instead} instead.")
        return offline(), "offline"


@dataclass
class ImageData:
    """Train/test loaders of images ``(batch, 1, H, W)`` in [0, 1] and integer labels."""

    train: DataLoader
    test: DataLoader
    classes: list[str]
    name: str  # "fashion-mnist" or "digits"
    source: str  # "download" or "offline": what was actually used

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.dataset.tensors[0].shape[1:])  # (1, H, W)

    @property
    def num_inputs(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _loaders(
    X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor,
    batch_size: int, seed: int,
) -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(X_train, y_train), batch_size, shuffle=True, generator=generator)
    test = DataLoader(TensorDataset(X_test, y_test), batch_size, shuffle=False)
    return train, test


def fashion_mnist_tensors(root: str | os.PathLike[str] | None = None, download: bool = True):
    """Fashion-MNIST as tensors ``(X_train, y_train, X_test, y_test)`` through torchvision.

    ``X``: ``(n, 1, 28, 28)`` float32 in [0, 1]; ``y``: ``(n,)`` int64. Downloads into
    ``data_dir(root)/FashionMNIST`` when missing (and ``download``).
    Introduced in: Softmax regression (data).
    """
    from torchvision.datasets import FashionMNIST

    directory = data_dir(root)
    raw = directory / "FashionMNIST" / "raw"
    tensors = []
    for train in (True, False):
        # torchvision prints one line per mirror it tries; the error we raise says what failed.
        # Its downloads have no timeout of their own: a silently dropping network must not hang.
        with contextlib.redirect_stdout(io.StringIO()), _socket_timeout(DOWNLOAD_TIMEOUT):
            try:
                dataset = FashionMNIST(str(directory), train=train, download=download)
            except Exception as exc:
                # torchvision reads the files only once all of them exist, so a failure while
                # some are missing happened in the download (network, mirror, disk), not in a read.
                if not _raw_complete(raw, FashionMNIST.resources):
                    if not isinstance(exc, _DOWNLOAD_ERRORS):
                        raise
                    partial = raw.is_dir() and any(raw.iterdir())
                    hint = f" (the cache at {raw} is incomplete)" if partial else ""
                    raise RuntimeError(f"{_describe(exc)}{hint}") from exc
                if isinstance(exc, _READ_ERRORS):
                    raise DataCacheError(_corrupt(raw, exc)) from exc
                raise
        expected = 60000 if train else 10000
        data, targets = dataset.data, dataset.targets
        if data.shape[1:] != (28, 28) or len(data) != len(targets) or len(data) > expected:
            raise DataCacheError(_corrupt(raw, f"unexpected shapes {tuple(data.shape)}"))
        tensors += [(data.float() / 255).unsqueeze(1), targets.long()]  # (n, 1, 28, 28), (n,)
    return tuple(tensors)


# What a failed download raises: network and mirror errors (torchvision wraps some in
# RuntimeError), a truncated archive, a full disk.
_DOWNLOAD_ERRORS = (OSError, RuntimeError, EOFError, http.client.HTTPException)
# What torchvision's idx reader raises on a corrupt file: a bad header fails an assert, an
# unknown type code raises KeyError, a wrong element type TypeError, a short file ValueError
# or RuntimeError; an unreadable file OSError.
_READ_ERRORS = (OSError, RuntimeError, ValueError, EOFError, AssertionError, TypeError, KeyError)


DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download counts as failed


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _raw_complete(raw: Path, resources: list[tuple[str, str]]) -> bool:
    """Whether every uncompressed file torchvision looks for is in ``raw``."""
    return all((raw / Path(url).name).with_suffix("").is_file() for url, _ in resources)


def _describe(exc: BaseException) -> str:
    """An exception's message without trailing blank lines, or its type when it has none."""
    return str(exc).rstrip() or type(exc).__name__


def _corrupt(raw: Path, exc: object) -> str:
    reason = _describe(exc) if isinstance(exc, BaseException) else exc
    return (
        f"the Fashion-MNIST cache at {raw} cannot be read ({reason}). Delete that directory "
        "and run again to download it afresh, or pass source='offline'."
    )


def digits_tensors(test_fraction: float = 0.2, split_seed: int = 0):
    """scikit-learn's 1,797 real 8x8 handwritten digits as ``(X_train, y_train, X_test, y_test)``.

    Shipped with scikit-learn, so no network is needed. The split is stratified and fixed
    by ``split_seed``. ``X``: ``(n, 1, 8, 8)`` float32 in [0, 1]; ``y``: ``(n,)`` int64.
    Introduced in: Softmax regression (data).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.int64)  # (1797,)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=split_seed, stratify=digits.target
    )
    return X[idx_train], y[idx_train], X[idx_test], y[idx_test]


def load_image_data(
    batch_size: int = 256,
    source: Source | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> ImageData:
    """Fashion-MNIST (``"download"``) or scikit-learn's digits (``"offline"``) as loaders.

    See the module docstring for ``source``. The training loader shuffles with a generator
    seeded by ``seed``, so two runs see the same batches.
    Introduced in: Softmax regression (data).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def online() -> ImageData:
        tensors = fashion_mnist_tensors(root)
        return ImageData(*_loaders(*tensors, batch_size, seed), FASHION_MNIST_CLASSES, "fashion-mnist", "download")

    def offline() -> ImageData:
        tensors = digits_tensors()
        return ImageData(*_loaders(*tensors, batch_size, seed), [str(d) for d in range(10)], "digits", "offline")

    data, _ = with_fallback(
        source, online, offline, "Fashion-MNIST", "scikit-learn's handwritten digits (8x8 images)"
    )
    return data
