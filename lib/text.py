"""Text for character-level language models (introduced in *Recurrent neural networks*).

Two real English corpora, chosen with the shared ``source`` argument of :mod:`lib.data`:

- ``"download"``: H. G. Wells' *The Time Machine* from the d2l data server, cached in
  ``data_dir(root)/timemachine.txt`` and accepted only when its SHA-1 matches.
- ``"offline"``: the reference text of Python's own documentation
  (``pydoc_data.topics.topics``, shipped with every CPython), about 465,000 characters.
- ``"auto"`` (default): the download when it works, else the Python docs with a notice.

Both are reduced to lower-case letters and single spaces, so they share one 28-token
character vocabulary. Token ids are 1-D ``int64`` tensors; minibatches are
``(X, Y)`` pairs of shape ``(batch, num_steps)`` where ``Y`` is ``X`` shifted by one token.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from lib.data import DataCacheError, Source, data_dir, with_fallback

TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
TIME_MACHINE_FILE = "timemachine.txt"
UNK = "<unk>"
Sampling = Literal["random", "sequential"]


def preprocess(text: str) -> str:
    """Lower-case letters, every other run of characters replaced by one space.

    Introduced in: Recurrent neural networks (text as data).
    """
    return re.sub(r"[^A-Za-z]+", " ", text).lower()


class Vocab:
    """Characters <-> integer ids; id 0 is ``<unk>`` for characters never seen.

    Introduced in: Recurrent neural networks (text as data).
    """

    def __init__(self, text: str) -> None:
        self.idx_to_token: list[str] = [UNK, *sorted(set(text))]
        self.token_to_idx: dict[str, int] = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def encode(self, text: str) -> torch.Tensor:
        """``(len(text),)`` int64 ids; unknown characters map to 0."""
        return torch.tensor([self.token_to_idx.get(ch, 0) for ch in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The string of 1-D ``ids`` (``<unk>`` printed as ``?``)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if any(not 0 <= i < len(self) for i in ids):
            raise ValueError(f"ids must lie in [0, {len(self)}), got {ids}")
        return "".join("?" if i == 0 else self.idx_to_token[i] for i in ids)


@dataclass
class TextData:
    """A character corpus split into a training and a later validation part."""

    train: torch.Tensor  # (n_train,) int64 token ids
    val: torch.Tensor  # (n_val,) int64, the text right after the training part
    vocab: Vocab
    name: str  # "time-machine" or "python-docs"
    source: str  # "download" or "offline": what was actually used

    def batches(
        self, split: Literal["train", "val"], batch_size: int, num_steps: int,
        sampling: Sampling = "random", generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches of one split; see :func:`random_batches` and :func:`sequential_batches`."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if sampling not in ("random", "sequential"):
            raise ValueError(f"sampling must be 'random' or 'sequential', got {sampling!r}")
        corpus = self.train if split == "train" else self.val
        batcher = random_batches if sampling == "random" else sequential_batches
        return batcher(corpus, batch_size, num_steps, generator)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def download_time_machine(root: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> Path:
    """Path of *The Time Machine* in the cache, downloading it when missing.

    A cached file whose SHA-1 differs raises :class:`DataCacheError` (delete it to
    download afresh); a download whose SHA-1 differs raises ``OSError`` and is not kept.
    Introduced in: Recurrent neural networks (text as data).
    """
    path = data_dir(root) / TIME_MACHINE_FILE
    if path.exists():
        digest = _sha1(path)
        if digest != TIME_MACHINE_SHA1:
            raise DataCacheError(
                f"the cached Time Machine text at {path} is corrupt (SHA-1 {digest}, expected "
                f"{TIME_MACHINE_SHA1}). Delete that file and run again to download it afresh, "
                "or pass source='offline'."
            )
        return path
    with urllib.request.urlopen(TIME_MACHINE_URL, timeout=timeout) as response:
        payload = response.read()
    digest = hashlib.sha1(payload).hexdigest()
    if digest != TIME_MACHINE_SHA1:
        raise OSError(f"{TIME_MACHINE_URL} sent a file with SHA-1 {digest}, expected {TIME_MACHINE_SHA1}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(payload)
    os.replace(partial, path)  # atomic: the cache never holds half a file
    return path


def python_docs_text() -> str:
    """The text of Python's documentation topics shipped with CPython (``pydoc_data``).

    Introduced in: Recurrent neural networks (text as data).
    """
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def load_text_data(
    source: Source | None = None,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    max_tokens: int | None = None,
) -> TextData:
    """*The Time Machine* (``"download"``) or Python's docs (``"offline"``) as token ids.

    The first ``1 - val_fraction`` of the (optionally truncated) corpus trains, the rest
    validates: two disjoint, contiguous stretches of text. See the module docstring.
    Introduced in: Recurrent neural networks (text as data).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2 or None, got {max_tokens}")

    def online() -> tuple[str, str]:
        return download_time_machine(root).read_text(encoding="utf-8"), "time-machine"

    def offline() -> tuple[str, str]:
        return python_docs_text(), "python-docs"

    (raw, name), used = with_fallback(
        source, online, offline, "The Time Machine", "Python's documentation text (pydoc_data.topics)"
    )
    text = preprocess(raw)
    vocab = Vocab(text)
    corpus = vocab.encode(text[:max_tokens])  # (n,)
    n_val = max(1, int(len(corpus) * val_fraction))
    return TextData(corpus[:-n_val], corpus[-n_val:], vocab, name, used)


def _check_batching(corpus: torch.Tensor, batch_size: int, num_steps: int) -> None:
    if not isinstance(corpus, torch.Tensor) or corpus.dim() != 1:
        raise ValueError(f"corpus must be a 1-D tensor of token ids, got {getattr(corpus, 'shape', corpus)}")
    if batch_size < 1 or num_steps < 1:
        raise ValueError(f"batch_size and num_steps must be >= 1, got {batch_size}, {num_steps}")
    if len(corpus) < batch_size * num_steps + num_steps:
        raise ValueError(
            f"a corpus of {len(corpus)} tokens is too short for one batch of {batch_size} x "
            f"{num_steps} tokens (with a random offset); need {batch_size * num_steps + num_steps}"
        )


def random_batches(
    corpus: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random sampling: non-overlapping subsequences in random order, one epoch.

    A random offset in ``[0, num_steps)`` starts the partition, so different epochs cut
    the text differently. Neighbouring rows are unrelated: reset the hidden state per batch.
    Yields ``X, Y`` of shape ``(batch_size, num_steps)``; ``Y[:, t]`` is the token after
    ``X[:, t]``. The last incomplete batch is dropped.
    Introduced in: Recurrent neural networks (text as data).
    """
    _check_batching(corpus, batch_size, num_steps)
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    num_seqs = (len(corpus) - 1 - offset) // num_steps
    starts = offset + num_steps * torch.randperm(num_seqs, generator=generator)  # (num_seqs,)
    window = torch.arange(num_steps)  # (num_steps,)
    for i in range(0, num_seqs - batch_size + 1, batch_size):
        index = starts[i : i + batch_size, None] + window  # (batch, num_steps)
        yield corpus[index], corpus[index + 1]


def sequential_batches(
    corpus: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential sampling: row ``b`` of batch ``i + 1`` continues row ``b`` of batch ``i``.

    The text after a random offset is cut into ``batch_size`` long rows read left to
    right, so the hidden state can be carried (detached) from one batch to the next.
    Yields ``X, Y`` of shape ``(batch_size, num_steps)``.
    Introduced in: Recurrent neural networks (text as data).
    """
    _check_batching(corpus, batch_size, num_steps)
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    row_len = (len(corpus) - 1 - offset) // batch_size
    Xs = corpus[offset : offset + batch_size * row_len].reshape(batch_size, row_len)
    Ys = corpus[offset + 1 : offset + 1 + batch_size * row_len].reshape(batch_size, row_len)
    for t in range(0, row_len - num_steps + 1, num_steps):
        yield Xs[:, t : t + num_steps], Ys[:, t : t + num_steps]  # (batch, num_steps) each
