"""lib.data: source selection, the offline digits and the Fashion-MNIST path up to the network.

No test touches the internet. Download failures are made deterministic by pointing
torchvision's Fashion-MNIST mirrors at a local port that refuses connections, and the
download itself is exercised against an HTTP server on 127.0.0.1 serving tiny idx files.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import socketserver
import struct
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision.datasets import FashionMNIST

import lib.data as D

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# --------------------------------------------------------------------------- helpers


def idx_images(images: torch.Tensor) -> bytes:
    """``(n, 28, 28)`` uint8 in the idx3 format of (Fashion-)MNIST."""
    n, h, w = images.shape
    return struct.pack(">IIII", 0x0803, n, h, w) + images.numpy().tobytes()


def idx_labels(labels: torch.Tensor) -> bytes:
    return struct.pack(">II", 0x0801, len(labels)) + labels.to(torch.uint8).numpy().tobytes()


def tiny_split(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct images (pixel [0, 0] = offset + i) and labels ``i % 10``."""
    g = torch.Generator().manual_seed(offset)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(offset, offset + n, dtype=torch.uint8)
    return images, torch.arange(n) % 10


TRAIN, TEST = tiny_split(7, 0), tiny_split(3, 100)


def raw_files() -> dict[str, bytes]:
    return {
        FILES[True][0]: idx_images(TRAIN[0]),
        FILES[True][1]: idx_labels(TRAIN[1]),
        FILES[False][0]: idx_images(TEST[0]),
        FILES[False][1]: idx_labels(TEST[1]),
    }


def write_cache(root: Path, files: dict[str, bytes]) -> Path:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (raw / name).write_bytes(content)
    return raw


def all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = zip(*loader, strict=True)
    return torch.cat(X), torch.cat(y)


def by_first_pixel(X: torch.Tensor, y: torch.Tensor):
    order = X[:, 0, 0, 0].argsort()
    return X[order], y[order]


def assert_records(data: D.ImageData) -> None:
    """The loaders hold exactly the tiny records served or cached, scaled to [0, 1]."""
    assert data.name == "fashion-mnist" and data.source == "download"
    assert data.classes == D.FASHION_MNIST_CLASSES and data.num_classes == 10
    assert data.image_shape == (1, 28, 28) and data.num_inputs == 784
    X_test, y_test = all_batches(data.test)  # not shuffled: same order as the file
    torch.testing.assert_close(X_test, TEST[0].float().unsqueeze(1) / 255)
    assert torch.equal(y_test, TEST[1])
    X_train, y_train = by_first_pixel(*all_batches(data.train))
    torch.testing.assert_close(X_train, TRAIN[0].float().unsqueeze(1) / 255)
    assert torch.equal(y_train, TRAIN[1])
    assert X_train.dtype == torch.float32 and y_train.dtype == torch.int64


@pytest.fixture
def refused_url():
    """A 127.0.0.1 URL whose port is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def offline_network(monkeypatch, refused_url, no_proxy):
    """Every Fashion-MNIST mirror refuses connections."""
    monkeypatch.setattr(FashionMNIST, "mirrors", [refused_url])
    return refused_url


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass

    def do_GET(self):  # noqa: N802 - name required by http.server
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path, monkeypatch, no_proxy):
    """A local HTTP mirror serving the tiny records as .gz files; yields the request log."""
    served = tmp_path / "served"
    served.mkdir()
    resources = []
    for name, content in raw_files().items():
        payload = gzip.compress(content)
        (served / f"{name}.gz").write_bytes(payload)
        resources.append((f"{name}.gz", hashlib.md5(payload).hexdigest()))
    requests: list[str] = []
    handler = functools.partial(
        type("Handler", (QuietHandler,), {"requests": requests}), directory=str(served)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(FashionMNIST, "resources", resources)
    yield requests
    server.shutdown()
    server.server_close()
    thread.join()


class ResetHandler(socketserver.BaseRequestHandler):
    """Starts an answer, then aborts the connection (TCP reset) mid-body."""

    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + bytes(10))
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.request.close()


@pytest.fixture
def resetting_mirror(monkeypatch, no_proxy):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), ResetHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
    yield
    server.shutdown()
    server.server_close()
    thread.join()


# --------------------------------------------------------------------------- offline digits


def test_offline_digits_shapes_values_and_split():
    X_train, y_train, X_test, y_test = D.digits_tensors()
    assert X_train.shape == (1437, 1, 8, 8) and X_test.shape == (360, 1, 8, 8)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert X_train.dtype == torch.float32 and y_train.dtype == torch.int64
    for X in (X_train, X_test):
        assert X.min() >= 0 and X.max() <= 1 and X.max() == 1
    # stratified: each class's share of the test set matches its share overall (within 1)
    total = Counter(y_train.tolist() + y_test.tolist())
    test = Counter(y_test.tolist())
    assert set(test) == set(range(10))
    for label, count in total.items():
        assert abs(test[label] - count * 360 / 1797) <= 1
    # train and test are disjoint images of the same 1,797
    train_rows = {tuple(r) for r in X_train.flatten(1).tolist()}
    assert not any(tuple(r) in train_rows for r in X_test.flatten(1).tolist()[:50])


def test_offline_split_is_fixed_across_calls():
    first, second = D.digits_tensors(), D.digits_tensors()
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    other = D.digits_tensors(split_seed=1)
    assert not torch.equal(first[3], other[3])


def test_load_image_data_offline():
    data = D.load_image_data(batch_size=100, source="offline")
    assert data.name == "digits" and data.source == "offline"
    assert data.classes == [str(d) for d in range(10)] and data.num_classes == 10
    assert data.image_shape == (1, 8, 8) and data.num_inputs == 64
    assert len(data.train.dataset) == 1437 and len(data.test.dataset) == 360
    X, y = next(iter(data.train))
    assert X.shape == (100, 1, 8, 8) and y.shape == (100,)
    X_test, y_test = all_batches(data.test)  # not shuffled: the split's order
    assert torch.equal(X_test, D.digits_tensors()[2]) and torch.equal(y_test, D.digits_tensors()[3])


def test_batch_size_one_is_allowed():
    data = D.load_image_data(batch_size=1, source="offline")
    X, y = next(iter(data.test))
    assert X.shape == (1, 1, 8, 8) and y.shape == (1,)
    assert len(data.test) == 360


def test_seeded_shuffling_is_reproducible():
    def first_epoch(seed):
        return all_batches(D.load_image_data(batch_size=64, source="offline", seed=seed).train)[1]

    a, b, c = first_epoch(0), first_epoch(0), first_epoch(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert sorted(a.tolist()) == sorted(c.tolist())  # same examples, another order
    data = D.load_image_data(batch_size=64, source="offline", seed=0)
    assert torch.equal(all_batches(data.train)[1], a)
    assert not torch.equal(all_batches(data.train)[1], a), "each epoch reshuffles"


# --------------------------------------------------------------------------- source selection


def test_resolve_source_and_validation(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_SOURCE", raising=False)
    assert D.resolve_source(None) == "auto"
    for source in D.SOURCES:
        assert D.resolve_source(source) == source
    with pytest.raises(ValueError, match=r"source must be one of \('auto', 'download', 'offline'\), got 'web'"):
        D.resolve_source("web")
    with pytest.raises(ValueError, match="source must be one of"):
        D.load_image_data(source="Offline")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        D.load_image_data(batch_size=0, source="offline")


def test_course_data_source_sets_the_default(monkeypatch, capsys, offline_network):
    monkeypatch.setenv("COURSE_DATA_SOURCE", "offline")
    assert D.resolve_source(None) == "offline"
    assert D.resolve_source("download") == "download"  # an explicit choice wins
    data = D.load_image_data(batch_size=512)
    assert data.name == "digits" and data.source == "offline"
    assert "NOTICE" not in capsys.readouterr().out, "offline by choice is not a fallback"
    monkeypatch.setenv("COURSE_DATA_SOURCE", "nowhere")
    with pytest.raises(ValueError, match="got 'nowhere'"):
        D.resolve_source(None)


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "env"))
    assert D.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert D.data_dir() == tmp_path / "env"
    monkeypatch.delenv("COURSE_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.data_dir() == tmp_path / "home" / ".cache" / "dl-course"


def test_with_fallback():
    calls = []

    def online():
        calls.append("online")
        return "real"

    def offline():
        calls.append("offline")
        return "local"

    assert D.with_fallback("offline", online, offline, "X", "Y") == ("local", "offline")
    assert calls == ["offline"], "offline must not try the network"
    assert D.with_fallback("auto", online, offline, "X", "Y") == ("real", "download")
    assert D.with_fallback("download", online, offline, "X", "Y") == ("real", "download")

    def broken_cache():
        raise D.DataCacheError("corrupt")

    for source in ("auto", "download"):
        with pytest.raises(D.DataCacheError, match="corrupt"):
            D.with_fallback(source, broken_cache, offline, "X", "Y")

    def bug():
        raise KeyError("a programming error, not a network failure")

    with pytest.raises(KeyError):
        D.with_fallback("auto", bug, offline, "X", "Y")


def test_with_fallback_notice_and_download_error(capsys):
    def unreachable():
        raise OSError("first line\nConnection refused")

    result = D.with_fallback("auto", unreachable, lambda: 42, "the corpus", "a small corpus")
    assert result == (42, "offline")
    assert capsys.readouterr().out == (
        "NOTICE: the corpus could not be downloaded (Connection refused); using a small corpus instead.\n"
    )
    with pytest.raises(D.DataUnavailableError, match="could not download the corpus .Connection refused.") as info:
        D.with_fallback("download", unreachable, lambda: 42, "the corpus", "a small corpus")
    assert "source='offline'" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- Fashion-MNIST


def test_auto_falls_back_with_a_notice_when_the_download_fails(tmp_path, capsys, offline_network):
    data = D.load_image_data(batch_size=256, source="auto", root=tmp_path)
    assert data.name == "digits" and data.source == "offline"
    out = capsys.readouterr().out
    assert out.startswith("NOTICE: Fashion-MNIST could not be downloaded (")
    assert "Connection refused" in out
    assert "scikit-learn's handwritten digits" in out


def test_download_raises_when_the_download_fails(tmp_path, capsys, offline_network):
    with pytest.raises(D.DataUnavailableError, match="could not download Fashion-MNIST") as info:
        D.load_image_data(source="download", root=tmp_path)
    assert "Connection refused" in str(info.value)
    assert "NOTICE" not in capsys.readouterr().out


def test_download_from_a_local_mirror(tmp_path, mirror, capsys):
    data = D.load_image_data(batch_size=4, source="download", root=tmp_path)
    assert_records(data)
    # torchvision asks each URL twice (a redirect check, then the download)
    assert set(mirror) == {f"/{name}.gz" for name in raw_files()}
    served = len(mirror)
    raw = tmp_path / "FashionMNIST" / "raw"
    for name, content in raw_files().items():
        assert (raw / name).read_bytes() == content
    assert capsys.readouterr().out == "", "torchvision's progress output is kept off the page"
    # a second load uses the cache: no further requests
    assert_records(D.load_image_data(batch_size=4, source="download", root=tmp_path))
    assert len(mirror) == served


def test_auto_uses_the_download_when_it_works(tmp_path, mirror, capsys):
    data = D.load_image_data(batch_size=3, source="auto", root=tmp_path)
    assert_records(data)
    assert "NOTICE" not in capsys.readouterr().out


def test_course_data_dir_moves_the_cache(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    assert_records(D.load_image_data(source="download"))
    assert (tmp_path / "cache" / "FashionMNIST" / "raw" / FILES[True][0]).is_file()


def test_prefilled_cache_loads_without_network(tmp_path, capsys, offline_network):
    write_cache(tmp_path, raw_files())
    data = D.load_image_data(batch_size=2, source="download", root=tmp_path)
    assert_records(data)
    tensors = D.fashion_mnist_tensors(tmp_path, download=False)
    assert [tuple(t.shape) for t in tensors] == [(7, 1, 28, 28), (7,), (3, 1, 28, 28), (3,)]
    assert "NOTICE" not in capsys.readouterr().out


def truncated(content: bytes) -> bytes:
    return content[: len(content) - 100]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(truncated, id="truncated"),
        pytest.param(lambda content: content[:6], id="truncated-header"),
        pytest.param(lambda content: b"", id="empty"),
        pytest.param(lambda content: bytes(len(content)), id="zeroed"),
        pytest.param(lambda content: b"<html>503 Service Unavailable</html>", id="html"),
        pytest.param(lambda content: struct.pack(">IIII", 0x0D03, 7, 28, 28) + bytes(7 * 784 * 4),
                     id="float-type"),
        pytest.param(lambda content: b"\x00\x00\x0a\x03" + content[4:], id="unknown-type"),
    ],
)
@pytest.mark.parametrize("source", ["download", "auto"])
def test_corrupt_cache_raises_cache_error_naming_the_directory(tmp_path, capsys, offline_network,
                                                               source, damage):
    files = raw_files()
    files[FILES[True][0]] = damage(files[FILES[True][0]])
    raw = write_cache(tmp_path, files)
    with pytest.raises(D.DataCacheError) as info:
        D.load_image_data(source=source, root=tmp_path)
    message = str(info.value)
    assert str(raw) in message
    assert "Delete that directory" in message
    assert "cannot be read ()" not in message, "the reason is never empty"
    assert "NOTICE" not in capsys.readouterr().out, "a broken cache is an error, not a fallback"


def test_mismatched_labels_are_a_cache_error(tmp_path, offline_network):
    files = raw_files()
    files[FILES[False][1]] = idx_labels(torch.arange(5))  # 5 labels for 3 test images
    raw = write_cache(tmp_path, files)
    with pytest.raises(D.DataCacheError, match="unexpected shapes") as info:
        D.fashion_mnist_tensors(tmp_path)
    assert str(raw) in str(info.value)


def test_wrong_image_size_is_a_cache_error(tmp_path, offline_network):
    files = raw_files()
    files[FILES[False][0]] = idx_images(torch.zeros(3, 8, 8, dtype=torch.uint8))
    write_cache(tmp_path, files)
    with pytest.raises(D.DataCacheError, match=r"unexpected shapes \(3, 8, 8\)"):
        D.load_image_data(source="download", root=tmp_path)


@pytest.mark.parametrize("train,n", [(True, 60_001), (False, 10_001)])
def test_more_records_than_fashion_mnist_has_are_a_cache_error(tmp_path, offline_network, train, n):
    """Fashion-MNIST has 60,000 training and 10,000 test images: one more is not that data set."""
    files = raw_files()
    files[FILES[train][0]] = idx_images(torch.zeros(n, 28, 28, dtype=torch.uint8))
    files[FILES[train][1]] = idx_labels(torch.zeros(n, dtype=torch.int64))
    write_cache(tmp_path, files)
    with pytest.raises(D.DataCacheError, match=rf"unexpected shapes \({n}, 28, 28\)"):
        D.fashion_mnist_tensors(tmp_path)


def test_a_full_size_test_split_is_accepted(tmp_path, offline_network):
    files = raw_files()
    files[FILES[False][0]] = idx_images(torch.zeros(10_000, 28, 28, dtype=torch.uint8))
    files[FILES[False][1]] = idx_labels(torch.zeros(10_000, dtype=torch.int64))
    write_cache(tmp_path, files)
    X_test = D.fashion_mnist_tensors(tmp_path)[2]
    assert X_test.shape == (10_000, 1, 28, 28)


def test_partial_cache_with_network_down_falls_back_naming_it(tmp_path, capsys, offline_network):
    files = raw_files()
    raw = write_cache(tmp_path, {FILES[True][0]: files[FILES[True][0]]})
    data = D.load_image_data(source="auto", root=tmp_path)
    assert data.name == "digits"
    out = capsys.readouterr().out
    assert out.startswith("NOTICE: Fashion-MNIST could not be downloaded")
    assert f"the cache at {raw} is incomplete" in out
    assert "Connection refused" in out, "the notice keeps the reason along with the hint"
    with pytest.raises(D.DataUnavailableError, match="incomplete"):
        D.load_image_data(source="download", root=tmp_path)


def test_missing_cache_without_download_is_not_a_cache_error(tmp_path):
    with pytest.raises(RuntimeError, match="not found") as info:
        D.fashion_mnist_tensors(tmp_path, download=False)
    assert not isinstance(info.value, D.DataCacheError)


def test_connection_lost_mid_download_is_a_download_failure(tmp_path, capsys, resetting_mirror):
    # A network error after torchvision has created the cache directory is still a failed
    # download (fallback or DataUnavailableError), never a corrupt cache to delete.
    data = D.load_image_data(source="auto", root=tmp_path)
    assert data.name == "digits"
    out = capsys.readouterr().out
    assert out.startswith("NOTICE: Fashion-MNIST could not be downloaded (")
    assert "Delete" not in out
    with pytest.raises(D.DataUnavailableError) as info:
        D.load_image_data(source="download", root=tmp_path)
    assert isinstance(info.value.__cause__.__cause__, OSError)
