"""English-to-French sentence pairs for machine translation, and BLEU (chapter *The Transformer*).

Two corpora, chosen with the course-wide ``source`` argument (see :mod:`lib.data`):

- ``"download"``: d2l's English-French pairs (``fra-eng.zip``, from the Tatoeba project),
  downloaded once into ``data_dir(root)`` and checked against its SHA-1.
- ``"offline"``: English number phrases and their French translations, written by the
  ``num2words`` package ("three hundred and forty-two" -> "trois cent quarante-deux").
  Real French, with its irregular bits ("soixante et onze", "quatre-vingts" but
  "quatre-vingt mille", "deux cents" but "deux cent un"), generated on the fly.
- ``"auto"``: the download when it works, else the offline corpus with a visible notice.

Both corpora are split the same way: a sentence pair belongs to the test split when the
CRC-32 of its English side is divisible by 10. The split is therefore fixed (it does not
depend on how many pairs are asked for or on any seed) and disjoint: an English sentence
with several French translations never sits on both sides.

:func:`bleu` scores a translation against its reference (Papineni et al., 2002, in the
variant of d2l.ai, section 10.7); it is plain Python on space-separated tokens, used by
:func:`lib.transformer.evaluate_bleu`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import urllib.request
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lib.data import DataCacheError, Source, data_dir, with_fallback

FRA_ENG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_ENG_SHA1 = "94646ad1522d915e7b0f9296181140edcf86a4f5"
RESERVED = ("<pad>", "<bos>", "<eos>", "<unk>")  # indices 0, 1, 2, 3 in every Vocab
MAX_NUMBER = 999_999  # the offline corpus covers 0 .. MAX_NUMBER
_TEST_SEED, _TRAIN_SEED = 20_170_612, 17_060_376  # fixed: the corpus never depends on `seed`


def preprocess(text: str) -> str:
    """Lower-case, turn non-breaking spaces into spaces, detach ``, . ! ?`` from words.

    Introduced in: The Transformer (data).
    """
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    out = []
    for i, char in enumerate(text):
        if char in ",.!?" and i > 0 and text[i - 1] != " ":
            out.append(" ")
        out.append(char)
    return "".join(out).strip()


def tokenize(sentence: str) -> list[str]:
    """Words and punctuation of a sentence: ``preprocess`` then split on whitespace."""
    return preprocess(sentence).split()


def is_test_sentence(english: str) -> bool:
    """True when a pair whose English side is ``english`` belongs to the fixed test split."""
    return zlib.crc32(preprocess(english).encode("utf-8")) % 10 == 0


class Vocab:
    """Token <-> index maps; ``<pad> <bos> <eos> <unk>`` are 0..3, then by frequency.

    Introduced in: The Transformer (data).
    """

    def __init__(self, sentences: Iterable[Sequence[str]], min_freq: int = 1) -> None:
        counts = Counter(token for sentence in sentences for token in sentence)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [t for t, c in ranked if c >= min_freq and t not in RESERVED]
        self.idx_to_token: list[str] = list(RESERVED) + kept
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.token_to_idx.get(tokens, self.unk)
        return [self[t] for t in tokens]

    def to_tokens(self, indices: Iterable[int] | torch.Tensor) -> list[str]:
        return [self.idx_to_token[int(i)] for i in indices]

    pad, bos, eos, unk = 0, 1, 2, 3


def encode(
    sentences: Sequence[Sequence[str]], vocab: Vocab, num_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``(array (n, num_steps), valid_len (n,))``.

    Each sentence is cut to ``num_steps - 1`` tokens, gets ``<eos>`` and is padded with
    ``<pad>``; ``valid_len`` counts the tokens before the padding (``<eos>`` included).
    Introduced in: The Transformer (data).
    """
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2 (one token and <eos>), got {num_steps}")
    array = torch.full((len(sentences), num_steps), vocab.pad, dtype=torch.int64)
    valid_len = torch.empty(len(sentences), dtype=torch.int64)
    for i, tokens in enumerate(sentences):
        ids = vocab[list(tokens[: num_steps - 1])] + [vocab.eos]
        array[i, : len(ids)] = torch.tensor(ids)
        valid_len[i] = len(ids)
    return array, valid_len


@dataclass
class TranslationData:
    """Pairs, vocabularies and loaders of ``(src, src_valid_len, tgt, tgt_valid_len)``.

    ``src``/``tgt``: ``(batch, num_steps)`` int64 ids; ``tgt`` ends in ``<eos>`` and has
    no ``<bos>`` (the training loop prepends it: teacher forcing).
    Introduced in: The Transformer (data).
    """

    train_pairs: list[tuple[str, str]]
    test_pairs: list[tuple[str, str]]
    src_vocab: Vocab
    tgt_vocab: Vocab
    num_steps: int
    batch_size: int
    name: str  # "fra-eng" or "numbers"
    source: str  # "download" or "offline": what was actually used
    seed: int = 0

    def arrays(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, ...]:
        src, src_len = encode([tokenize(e) for e, _ in pairs], self.src_vocab, self.num_steps)
        tgt, tgt_len = encode([tokenize(f) for _, f in pairs], self.tgt_vocab, self.num_steps)
        return src, src_len, tgt, tgt_len  # (n, T), (n,), (n, T), (n,)

    def loader(self, train: bool = True) -> DataLoader:
        dataset = TensorDataset(*self.arrays(self.train_pairs if train else self.test_pairs))
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, self.batch_size, shuffle=train, generator=generator)

    @property
    def train(self) -> DataLoader:
        return self.loader(train=True)

    @property
    def test(self) -> DataLoader:
        return self.loader(train=False)


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_fra_eng(root: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> Path:
    """Path of ``fra-eng.zip`` in ``data_dir(root)``, downloaded and SHA-1-checked once.

    A cached zip whose SHA-1 is wrong raises :class:`DataCacheError` (delete it); a
    download that fails or has the wrong SHA-1 raises ``OSError``/``RuntimeError``.
    Introduced in: The Transformer (data).
    """
    directory = data_dir(root)
    path = directory / "fra-eng.zip"
    if path.exists():
        if _sha1(path) != FRA_ENG_SHA1:
            raise DataCacheError(
                f"the cached {path} is corrupt (SHA-1 differs from {FRA_ENG_SHA1}). "
                "Delete it and run again to download it afresh, or pass source='offline'."
            )
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".zip.part")
    with urllib.request.urlopen(FRA_ENG_URL, timeout=timeout) as response, open(partial, "wb") as f:
        while block := response.read(1 << 20):
            f.write(block)
    if _sha1(partial) != FRA_ENG_SHA1:
        partial.unlink()
        raise RuntimeError(f"the download from {FRA_ENG_URL} has the wrong SHA-1")
    partial.replace(path)  # atomic: a half-written file is never taken for the cache
    return path


def read_fra_eng(zip_path: Path) -> list[tuple[str, str]]:
    """``(english, french)`` pairs, in file order, from ``fra-eng/fra.txt`` in the zip."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            text = archive.read("fra-eng/fra.txt").decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise DataCacheError(
            f"cannot read fra-eng/fra.txt from {zip_path} ({exc}). Delete the file and run "
            "again to download it afresh, or pass source='offline'."
        ) from exc
    pairs = [tuple(line.split("\t")[:2]) for line in text.splitlines() if line.count("\t") >= 1]
    if not pairs:
        raise DataCacheError(f"{zip_path} holds no tab-separated sentence pairs; delete it.")
    return pairs


def number_pairs(num_train: int, num_test: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The offline corpus: distinct numbers as ``(english, french)`` words, fixed split.

    Magnitudes are mixed (1 to 6 digits equally often). The test numbers come from their
    own fixed random stream, so the test split is the same whatever ``num_train`` is.
    Introduced in: The Transformer (data).
    """
    limit = int((MAX_NUMBER + 1) * 0.9)  # about 90% of numbers are on the training side
    if num_train > limit or num_test > MAX_NUMBER + 1 - limit:
        raise ValueError(f"at most {limit} training and {MAX_NUMBER + 1 - limit} test pairs exist")
    return list(_number_pairs(_TRAIN_SEED, num_train, False)), list(_number_pairs(_TEST_SEED, num_test, True))


@functools.lru_cache(maxsize=16)
def _number_pairs(seed: int, count: int, test: bool) -> tuple[tuple[str, str], ...]:
    """``count`` distinct numbers from a fixed random stream, on one side of the split."""
    from num2words import num2words  # ~0.2 ms a call: cached, as pages load the corpus often

    rng, seen, pairs = np.random.default_rng(seed), set(), []
    while len(pairs) < count:
        digits = int(rng.integers(1, 7))
        n = int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10**digits))
        if n in seen:
            continue
        seen.add(n)
        english = num2words(n, lang="en")
        if is_test_sentence(english) == test:
            pairs.append((english, num2words(n, lang="fr")))
    return tuple(pairs)


def load_translation(
    batch_size: int = 64,
    num_steps: int = 12,
    num_train: int = 5000,
    num_test: int = 500,
    source: Source | None = None,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    min_freq: int | None = None,
) -> TranslationData:
    """English-French pairs as :class:`TranslationData` (see the module docstring).

    Vocabularies are built from the training pairs only (``min_freq`` defaults to 2 for
    fra-eng, as in d2l, and 1 for the numbers); unseen test tokens become ``<unk>``. The
    training loader shuffles with a generator seeded by ``seed``.
    Introduced in: The Transformer (data).
    """
    if batch_size < 1 or num_train < 1 or num_test < 1:
        raise ValueError(f"batch_size, num_train and num_test must be >= 1, got "
                         f"{batch_size}, {num_train}, {num_test}")

    def online() -> tuple[list, list, str]:
        train, test = [], []
        for english, french in read_fra_eng(download_fra_eng(root)):
            side = test if is_test_sentence(english) else train
            if len(side) < (num_test if side is test else num_train):
                side.append((preprocess(english), preprocess(french)))
            if len(train) == num_train and len(test) == num_test:
                break
        return train, test, "fra-eng"

    def offline() -> tuple[list, list, str]:
        return (*number_pairs(num_train, num_test), "numbers")

    (train, test, name), used = with_fallback(
        source, online, offline, "the English-French corpus (fra-eng)",
        "English-French number phrases generated with num2words",
    )
    freq = min_freq if min_freq is not None else (2 if name == "fra-eng" else 1)
    src_vocab = Vocab((tokenize(e) for e, _ in train), freq)
    tgt_vocab = Vocab((tokenize(f) for _, f in train), freq)
    return TranslationData(train, test, src_vocab, tgt_vocab, num_steps, batch_size, name, used, seed)


def bleu(pred_seq: str, label_seq: str, k: int = 2) -> float:
    """BLEU of one prediction: brevity penalty times n-gram precisions weighted 1/2^n.

    Tokens are separated by spaces. As in d2l, orders ``n`` run up to ``min(k, len(pred))``
    and reference n-grams are matched at most as often as they occur. An empty prediction
    scores 0 (1 if the label is empty too), which is also what d2l's gives.
    Introduced in: The Transformer (BLEU).
    """
    pred, label = pred_seq.split(), label_seq.split()
    if not pred:
        return float(not label)
    score = math.exp(min(0.0, 1 - len(label) / len(pred)))  # brevity penalty
    for n in range(1, min(k, len(pred)) + 1):
        pred_grams = Counter(tuple(pred[i: i + n]) for i in range(len(pred) - n + 1))
        label_grams = Counter(tuple(label[i: i + n]) for i in range(len(label) - n + 1))
        matches = sum((pred_grams & label_grams).values())  # clipped counts
        score *= (matches / (len(pred) - n + 1)) ** (0.5**n)
    return score
