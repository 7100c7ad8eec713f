"""lib.text: corpora, vocabulary, minibatch sampling and the download path (local server only)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lib import text
from lib.data import DataCacheError, DataUnavailableError
from lib.text import (
    TextData,
    Vocab,
    load_text_data,
    preprocess,
    python_docs_text,
    random_batches,
    sequential_batches,
)

SMALL_TEXT = ("The Time Traveller (for so it will be convenient to speak of him) was expounding "
              "a recondite matter to us. His grey eyes shone and twinkled.\n" * 40)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_DATA_SOURCE", raising=False)
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server sending SMALL_TEXT; the module's URL and SHA-1 point at it."""
    payload = SMALL_TEXT.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/timemachine.txt"
    monkeypatch.setattr(text, "TIME_MACHINE_URL", url)
    monkeypatch.setattr(text, "TIME_MACHINE_SHA1", hashlib.sha1(payload).hexdigest())
    yield url
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/timemachine.txt"  # nothing listens there any more


def test_offline_corpus_is_python_docs(capsys: pytest.CaptureFixture[str]) -> None:
    data = load_text_data("offline")
    assert (data.name, data.source) == ("python-docs", "offline")
    assert "NOTICE" not in capsys.readouterr().out
    assert data.vocab.idx_to_token == ["<unk>", " ", *"abcdefghijklmnopqrstuvwxyz"]
    assert len(data.train) > 300_000 and len(data.val) > 30_000
    assert data.train.dtype == torch.int64 and int(data.train.min()) >= 1  # no <unk> in the corpus
    assert data.vocab.decode(data.train[:20]) == preprocess(python_docs_text())[:20]


def test_preprocess_keeps_letters_and_single_spaces() -> None:
    assert preprocess("It's 8 o'clock--Time!\n\nGo.") == "it s o clock time go "


def test_vocab_round_trip_and_unknown() -> None:
    vocab = Vocab("hello world")
    assert len(vocab) == 9  # <unk>, space and 7 letters
    ids = vocab.encode("low hello")
    assert ids.dtype == torch.int64 and vocab.decode(ids) == "low hello"
    assert vocab.decode(vocab.encode("hex")) == "he?"  # 'x' was never seen
    with pytest.raises(ValueError, match="ids must lie"):
        vocab.decode([len(vocab)])


def test_random_batches_shapes_and_coverage() -> None:
    corpus = torch.arange(1000)  # each token is its own position
    batches = list(random_batches(corpus, 1, 7, torch.Generator().manual_seed(3)))
    X = torch.cat([x for x, _ in batches])  # (num_seqs, 7)
    Y = torch.cat([y for _, y in batches])
    assert X.shape[1] == 7 and torch.equal(Y, X + 1)
    assert torch.equal(X[:, 1:] - X[:, :-1], torch.ones(len(X), 6, dtype=torch.int64))
    # Together the subsequences tile the text after the offset exactly once.
    offset = int(X.min())
    assert 0 <= offset < 7 and len(X) == (1000 - 1 - offset) // 7
    assert torch.equal(X.flatten().sort().values, torch.arange(offset, offset + 7 * len(X)))
    assert not torch.equal(X[:, 0], X[:, 0].sort().values)  # shuffled order

    batches = list(random_batches(corpus, 8, 7, torch.Generator().manual_seed(3)))
    assert all(x.shape == (8, 7) and y.shape == (8, 7) for x, y in batches)
    starts = torch.cat([x[:, 0] for x, _ in batches])
    assert len(set(starts.tolist())) == len(starts) and len(batches) == (1000 - 1 - offset) // 7 // 8


def test_random_batches_are_seeded() -> None:
    a = [x for x, _ in random_batches(torch.arange(500), 4, 5, torch.Generator().manual_seed(0))]
    b = [x for x, _ in random_batches(torch.arange(500), 4, 5, torch.Generator().manual_seed(0))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_sequential_batches_continue_each_other() -> None:
    batches = list(sequential_batches(torch.arange(1000), 4, 10, torch.Generator().manual_seed(1)))
    assert len(batches) > 10
    for (x, y), (x_next, _) in zip(batches, batches[1:], strict=False):
        assert x.shape == y.shape == (4, 10) and torch.equal(y, x + 1)
        assert torch.equal(x_next[:, 0], x[:, -1] + 1)  # row b goes on where it stopped
    X = torch.cat([x for x, _ in batches], dim=1)  # (4, n): each row is one stretch of text
    assert torch.equal(X[:, 1:] - X[:, :-1], torch.ones_like(X[:, 1:]))


def test_batching_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="too short"):
        next(random_batches(torch.arange(20), 4, 5))
    with pytest.raises(ValueError, match="1-D"):
        next(sequential_batches(torch.zeros(3, 100, dtype=torch.int64), 2, 5))
    data = TextData(torch.arange(100), torch.arange(100), Vocab("ab"), "x", "offline")
    with pytest.raises(ValueError, match="split"):
        data.batches("test", 2, 5)
    with pytest.raises(ValueError, match="sampling"):
        data.batches("train", 2, 5, sampling="shuffled")
    with pytest.raises(ValueError, match="val_fraction"):
        load_text_data("offline", val_fraction=1.0)
    with pytest.raises(ValueError, match="source must be"):
        load_text_data("internet")


def test_split_is_disjoint_and_in_order() -> None:
    data = load_text_data("offline", val_fraction=0.25, max_tokens=10_000)
    full = data.vocab.encode(preprocess(python_docs_text())[:10_000])
    assert (len(data.train), len(data.val)) == (7_500, 2_500)
    assert torch.equal(torch.cat([data.train, data.val]), full)  # the validation text follows the training text
    positions = TextData(torch.arange(500), torch.arange(500, 1000), Vocab("ab"), "x", "offline")
    for sampling in ("random", "sequential"):
        train = torch.cat([torch.cat([x, y]).flatten() for x, y in positions.batches("train", 4, 10, sampling)])
        val = torch.cat([torch.cat([x, y]).flatten() for x, y in positions.batches("val", 4, 10, sampling)])
        assert int(train.max()) < 500 <= int(val.min())  # inputs and targets stay in their split


def test_download_through_local_server_and_cache(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_text_data("download", root=tmp_path)
    assert (data.name, data.source) == ("time-machine", "download")
    assert (tmp_path / "timemachine.txt").read_text() == SMALL_TEXT
    assert data.vocab.decode(data.train[:15]) == "the time travel"
    assert not list(tmp_path.glob("*.part"))
    monkeypatch.setattr(text, "TIME_MACHINE_URL", _closed_port_url())
    again = load_text_data("auto", root=tmp_path)  # from the cache, no network
    assert again.source == "download" and torch.equal(again.train, data.train)
    assert "NOTICE" not in capsys.readouterr().out


def test_download_with_wrong_sha1_is_not_kept(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(text, "TIME_MACHINE_SHA1", "0" * 40)
    with pytest.raises(DataUnavailableError, match="SHA-1"):
        load_text_data("download", root=tmp_path)
    data = load_text_data("auto", root=tmp_path)
    assert data.source == "offline" and "NOTICE" in capsys.readouterr().out
    assert not (tmp_path / "timemachine.txt").exists()


def test_corrupt_cache_raises_data_cache_error(server: str, tmp_path: Path) -> None:
    (tmp_path / "timemachine.txt").write_text("not the time machine")
    for source in ("auto", "download"):
        with pytest.raises(DataCacheError, match="Delete that file") as info:
            load_text_data(source, root=tmp_path)
        assert str(tmp_path / "timemachine.txt") in str(info.value)
    assert load_text_data("offline", root=tmp_path).source == "offline"  # offline ignores the cache


def test_fallback_prints_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(text, "TIME_MACHINE_URL", _closed_port_url())
    data = load_text_data(None, root=tmp_path)
    out = capsys.readouterr().out
    assert data.source == "offline" and data.name == "python-docs"
    assert "NOTICE: The Time Machine could not be downloaded" in out and "pydoc_data" in out
    with pytest.raises(DataUnavailableError, match="source='offline'"):
        load_text_data("download", root=tmp_path)
    monkeypatch.setenv("COURSE_DATA_SOURCE", "offline")
    assert load_text_data(root=tmp_path).source == "offline"
    assert "NOTICE" not in capsys.readouterr().out


def test_smallest_batching_arguments_are_accepted() -> None:
    # One step per row, and a corpus of exactly batch_size * num_steps + num_steps tokens.
    X, Y = next(sequential_batches(torch.arange(50), 2, 1, torch.Generator().manual_seed(0)))
    assert X.shape == (2, 1) and torch.equal(Y, X + 1)
    for batcher in (random_batches, sequential_batches):
        batches = list(batcher(torch.arange(4 * 5 + 5), 4, 5, torch.Generator().manual_seed(2)))
        assert len(batches) >= 1 and batches[0][0].shape == (4, 5)
        with pytest.raises(ValueError, match="must be >= 1"):
            next(batcher(torch.arange(50), 0, 5))
        with pytest.raises(ValueError, match="must be >= 1"):
            next(batcher(torch.arange(50), 2, 0))
    # 7 one-token sequences make one batch of 4; the 3 left over are dropped.
    assert [x.shape for x, _ in random_batches(torch.arange(8), 4, 1)] == [(4, 1)]


def test_sequential_batches_read_every_row_from_the_offset() -> None:
    for seed in range(4):
        batches = list(sequential_batches(torch.arange(401), 4, 10, torch.Generator().manual_seed(seed)))
        X = torch.cat([x for x, _ in batches], dim=1)  # (4, n)
        offset = int(X[0, 0])
        row_len = (400 - offset) // 4  # 100 when the offset is 0: then the 10 windows fill each row
        assert 0 <= offset < 10 and len(batches) == row_len // 10
        assert torch.equal(X[:, 0], offset + row_len * torch.arange(4))  # row b starts at offset + b * row_len
    # One step per window: no random offset, and the last window ends at the end of its row.
    batches = list(sequential_batches(torch.arange(41), 4, 1))
    assert len(batches) == 10 and torch.equal(torch.cat([x for x, _ in batches], dim=1), torch.arange(40).reshape(4, 10))


def test_text_data_batches_use_the_named_sampler() -> None:
    data = TextData(torch.arange(300), torch.arange(300, 400), Vocab("ab"), "x", "offline")
    for sampling, batcher in (("random", random_batches), ("sequential", sequential_batches)):
        ours = list(data.batches("val", 2, 5, sampling, torch.Generator().manual_seed(4)))
        theirs = list(batcher(data.val, 2, 5, torch.Generator().manual_seed(4)))
        assert len(ours) == len(theirs) and all(
            torch.equal(a, b) for (x, y), (u, v) in zip(ours, theirs, strict=True) for a, b in ((x, u), (y, v)))


def test_load_text_data_limits() -> None:
    data = load_text_data("offline", max_tokens=2)  # the smallest corpus: one token each side
    assert (len(data.train), len(data.val)) == (1, 1)
    with pytest.raises(ValueError, match="max_tokens"):
        load_text_data("offline", max_tokens=1)
    with pytest.raises(ValueError, match="val_fraction"):
        load_text_data("offline", val_fraction=0.0)


def test_download_creates_missing_directories(server: str, tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    assert load_text_data("download", root=root).source == "download"
    assert (root / "timemachine.txt").read_text() == SMALL_TEXT
