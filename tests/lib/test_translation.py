"""lib.translation: tokens, vocabularies, the fixed split, download (to a local server), fallback, BLEU."""

from __future__ import annotations

import hashlib
import http.server
import io
import math
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from lib import translation
from lib.data import DataCacheError, DataUnavailableError
from lib.translation import (
    RESERVED,
    Vocab,
    bleu,
    download_fra_eng,
    encode,
    is_test_sentence,
    load_translation,
    number_pairs,
    preprocess,
    tokenize,
)

LINES = ["Go.\tVa !", "Go.\tMarche.", "Hi.\tSalut !", "Run!\tCours\u202f!", "I see.\tJe comprends.",
         "Wait!\tAttends !", "Thanks.\tMerci.", "We won.\tNous avons gagné."] + [
    f"I have {n} cats.\tJ'ai {n} chats." for n in range(40)]  # fmt: skip


def _zip_bytes(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fra-eng/fra.txt", "\n".join(lines) + "\n")
    return buffer.getvalue()


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server on 127.0.0.1 serving a tiny fra-eng.zip; yields a request log."""
    payload = _zip_bytes(LINES)
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(translation, "FRA_ENG_URL", f"http://127.0.0.1:{httpd.server_port}/fra-eng.zip")
    monkeypatch.setattr(translation, "FRA_ENG_SHA1", hashlib.sha1(payload).hexdigest())
    yield requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def no_network(monkeypatch):
    """A URL on 127.0.0.1 where nothing listens: the download fails at once."""
    monkeypatch.setattr(translation, "FRA_ENG_URL", "http://127.0.0.1:9/fra-eng.zip")


def test_preprocess_and_tokenize():
    assert preprocess("Run!\u202fNow, please.") == "run ! now , please ."
    assert tokenize("Cours\xa0!") == ["cours", "!"]
    assert tokenize("quatre-vingt-onze") == ["quatre-vingt-onze"]


def test_vocab_reserved_and_unknown():
    vocab = Vocab([["b", "a", "b"], ["c"]])
    assert vocab.idx_to_token[:4] == list(RESERVED)
    assert (vocab.pad, vocab.bos, vocab.eos, vocab.unk) == (0, 1, 2, 3)
    assert vocab["b"] == 4 and vocab[["a", "zzz"]] == [5, vocab.unk]
    assert vocab.to_tokens([4, 2]) == ["b", "<eos>"]
    assert len(Vocab([["a", "a", "b"]], min_freq=2)) == 5


def test_encode_truncates_pads_and_counts():
    vocab = Vocab([["a", "b", "c"]])
    array, lens = encode([["a"], ["a", "b", "c", "a", "b"]], vocab, num_steps=4)
    assert array.tolist() == [[vocab["a"], 2, 0, 0], [vocab["a"], vocab["b"], vocab["c"], 2]]
    assert lens.tolist() == [2, 4]
    with pytest.raises(ValueError, match="num_steps"):
        encode([["a"]], vocab, 1)


def test_number_split_fixed_and_disjoint():
    train, test = number_pairs(600, 80)
    train2, test2 = number_pairs(300, 80)
    assert test == test2 and train[:300] == train2  # the test split does not depend on num_train
    english_train = {e for e, _ in train}
    assert len(english_train) == 600 and not english_train & {e for e, _ in test}
    assert all(is_test_sentence(e) for e, _ in test) and not any(is_test_sentence(e) for e, _ in train)
    assert train[0] == ("five", "cinq")  # the corpus is fixed, whatever the seed
    assert ("four hundred and seventy-three", "quatre cent soixante-treize") == test[0]


def test_load_offline_batches():
    data = load_translation(batch_size=16, num_steps=12, num_train=100, num_test=20, source="offline")
    assert (data.name, data.source) == ("numbers", "offline")
    src, src_len, tgt, tgt_len = next(iter(data.train))
    assert src.shape == tgt.shape == (16, 12) and src.dtype == torch.int64
    rows = torch.arange(16)
    assert torch.all(src[rows, src_len - 1] == data.src_vocab.eos)
    assert torch.all(tgt[rows, tgt_len - 1] == data.tgt_vocab.eos)
    assert torch.all((tgt == data.tgt_vocab.pad) == (torch.arange(12) >= tgt_len[:, None]))
    assert len(data.test.dataset) == 20
    again = load_translation(batch_size=16, num_train=100, num_test=20, source="offline")
    assert torch.equal(next(iter(again.train))[0], src)  # same seed, same shuffling


def test_auto_falls_back_with_notice(no_network, tmp_path, capsys):
    data = load_translation(num_train=50, num_test=10, source="auto", root=tmp_path)
    assert data.source == "offline" and data.name == "numbers"
    assert "NOTICE" in capsys.readouterr().out


def test_download_only_fails_clearly(no_network, tmp_path):
    with pytest.raises(DataUnavailableError, match="source='offline'"):
        load_translation(num_train=50, num_test=10, source="download", root=tmp_path)


def test_download_then_cache(server, tmp_path):
    data = load_translation(num_train=20, num_test=3, source="download", root=tmp_path)
    assert (data.name, data.source) == ("fra-eng", "download")
    assert (tmp_path / "fra-eng.zip").exists() and len(server) == 1
    assert ("run !", "cours !") in data.train_pairs + data.test_pairs
    assert all(is_test_sentence(e) for e, _ in data.test_pairs) and len(data.test_pairs) == 3
    train_en = {e for e, _ in data.train_pairs}
    assert not train_en & {e for e, _ in data.test_pairs}
    load_translation(num_train=20, num_test=3, source="download", root=tmp_path)
    assert len(server) == 1  # the second load reads the cache


def test_download_with_wrong_checksum_is_not_cached(server, tmp_path, monkeypatch):
    monkeypatch.setattr(translation, "FRA_ENG_SHA1", "0" * 40)
    with pytest.raises(RuntimeError, match="SHA-1"):
        download_fra_eng(tmp_path)
    assert not list(Path(tmp_path).iterdir())


@pytest.mark.parametrize("source", ["auto", "download"])
def test_corrupt_cache_raises(server, tmp_path, source):
    (tmp_path / "fra-eng.zip").write_bytes(b"not a zip")
    with pytest.raises(DataCacheError, match="Delete"):
        load_translation(num_train=20, num_test=3, source=source, root=tmp_path)
    assert not server  # no download was tried over a corrupt cache


def test_unreadable_zip_with_right_checksum(tmp_path, monkeypatch):
    (tmp_path / "fra-eng.zip").write_bytes(b"garbage")
    monkeypatch.setattr(translation, "FRA_ENG_SHA1", hashlib.sha1(b"garbage").hexdigest())
    with pytest.raises(DataCacheError, match="cannot read"):
        load_translation(num_train=20, num_test=3, source="download", root=tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="source"):
        load_translation(source="web")
    with pytest.raises(ValueError, match="batch_size"):
        load_translation(batch_size=0, source="offline")


def test_bleu_matches_d2l_and_edge_cases():
    d2l = pytest.importorskip("d2l.torch")
    torch.manual_seed(9)
    words = "a b c d e".split()
    for _ in range(300):
        pred = " ".join(words[i] for i in torch.randint(0, 5, (int(torch.randint(1, 7, ())),)))
        label = " ".join(words[i] for i in torch.randint(0, 5, (int(torch.randint(1, 7, ())),)))
        for k in (1, 2, 4):
            assert math.isclose(bleu(pred, label, k), d2l.bleu(pred, label, k), rel_tol=1e-12, abs_tol=1e-12)
    assert bleu("cent", "cent", 2) == 1.0 and bleu("a b c", "a b c", 4) == 1.0
    assert math.isclose(bleu("cent", "cent un", 2), math.exp(-1))  # brevity penalty only
    for pred, label in [("", "cent"), ("", ""), ("cent", "")]:  # d2l reads "" as one empty token
        assert bleu(pred, label, 2) == d2l.bleu(pred, label, 2)


def test_encode_with_two_steps_keeps_one_token_and_eos():
    vocab = Vocab([["a", "b"]])
    array, lens = encode([["b", "a"], []], vocab, num_steps=2)
    assert array.tolist() == [[vocab["b"], vocab.eos], [vocab.eos, vocab.pad]] and lens.tolist() == [2, 1]


def test_number_pairs_refuses_either_split_too_large():
    with pytest.raises(ValueError, match="at most"):
        number_pairs(900_001, 1)  # 900,000 training and 100,000 test numbers exist
    with pytest.raises(ValueError, match="at most"):
        number_pairs(1, 100_001)


def test_preprocess_detaches_punctuation_after_a_one_letter_word():
    assert tokenize("A, b. I!") == ["a", ",", "b", ".", "i", "!"]
    assert preprocess("Ok , then.") == "ok , then ."  # already detached: no second space


def test_vocab_breaks_frequency_ties_alphabetically():
    vocab = Vocab([["z", "y", "x", "y"]])
    assert vocab.idx_to_token[4:] == ["y", "x", "z"]  # y twice, then x and z once, in order
