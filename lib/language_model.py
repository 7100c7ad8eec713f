"""A character-level language model: training, perplexity and text generation.

Introduced in the chapter *Recurrent neural networks* (chapters/rnn, page *A
character-level language model*). :class:`CharLM` reads one-hot characters with a deep
RNN/GRU/LSTM from :mod:`lib.rnn` (``backend="torch"``: PyTorch's fused kernels, cuDNN on
a GPU; ``"scratch"``: :class:`lib.rnn.ScratchRecurrent`) and scores the next character
with a linear layer. :func:`train_lm` trains it by truncated backpropagation through time
on the batches of :mod:`lib.text`, with the global gradient norm clipped at every step;
:func:`generate` continues a prefix greedily or by sampling.
References: Pascanu, Mikolov & Bengio (2013, gradient clipping); d2l.ai, chapter 9.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lib.plot import ProgressPlot
from lib.rnn import Mode, RecurrentConfig, State, make_recurrent
from lib.text import Sampling, TextData, Vocab


def clip_gradients(params: Iterable[torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    """Rescale all gradients together so their global L2 norm is at most ``max_norm``.

    Same rule as ``torch.nn.utils.clip_grad_norm_``: multiply by
    ``min(1, max_norm / (norm + 1e-6))``. Returns the norm before clipping (0-d tensor).
    Introduced in: Recurrent neural networks (language model).
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # a tensor: no GPU sync
    for g in grads:
        g.mul_(scale)
    return norm


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of next-token ``logits`` ``(..., V)`` for integer ``targets`` ``(...)``:
    their mean, their sum, or (``reduction="none"``) one loss per target, shaped like ``targets``.

    :class:`CharLM` returns its ``(B, T, V)`` logits as a view of time-major data; reading
    both tensors in time-major order flattens them without copying the logits.
    Introduced in: Recurrent neural networks (language model).
    """
    if logits.dim() < 2 or tuple(logits.shape[:-1]) != tuple(targets.shape):
        raise ValueError(f"expected logits (..., V) and targets (...), got {tuple(logits.shape)}, {tuple(targets.shape)}")
    time_major = logits.dim() == 3 and not logits.is_contiguous() and logits.transpose(0, 1).is_contiguous()
    if time_major:
        logits, targets = logits.transpose(0, 1), targets.transpose(0, 1)  # (T, B, V), (T, B)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(), reduction=reduction)
    if reduction != "none":
        return losses
    losses = losses.reshape(targets.shape)  # (T, B) when time-major
    return losses.transpose(0, 1) if time_major else losses


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """``exp`` of the mean cross-entropy of next-token ``logits`` ``(..., V)`` for ``targets`` ``(...)``.

    Introduced in: Recurrent neural networks (language model).
    """
    return math.exp(float(sequence_loss(logits, targets).detach()))


@dataclass
class CharLMConfig:
    """A character language model: one-hot input, deep recurrent network, linear output."""

    vocab_size: int
    hidden_size: int = 128
    num_layers: int = 2
    mode: Mode = "gru"
    backend: Literal["torch", "scratch"] = "torch"


class CharLM(nn.Module):
    """Next-character logits from a deep RNN/GRU/LSTM over one-hot characters."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.config = config
        rnn = RecurrentConfig(config.vocab_size, config.hidden_size, config.num_layers, config.mode)
        self.rnn = make_recurrent(rnn, config.backend)  # time-major: (T, B, ...)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, X: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``X``: ``(B, T)`` token ids; returns logits ``(B, T, V)`` and the new state."""
        if X.dim() != 2 or X.is_floating_point():
            raise ValueError(f"X must be (batch, steps) integer token ids, got {X.dtype} {tuple(X.shape)}")
        B, T = X.shape
        onehot = torch.zeros(T, B, self.config.vocab_size, device=X.device, dtype=self.head.weight.dtype)  # (T, B, V)
        onehot.scatter_(2, X.T.unsqueeze(2), 1.0)  # one-hot, written as floats directly
        output, state = self.rnn(onehot, state)  # (T, B, H)
        return self.head(output).transpose(0, 1), state  # (B, T, V)


def _detach(state: State) -> State:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@dataclass
class TrainConfig:
    """Training a language model (truncated backpropagation through time)."""

    num_epochs: int = 5
    batch_size: int = 32
    num_steps: int = 32
    lr: float = 1e-2
    optimizer: Literal["adam", "sgd"] = "adam"
    clip: float | None = 1.0  # max global gradient norm; None: no clipping
    sampling: Sampling = "sequential"  # sequential carries the state across batches
    max_batches: int | None = None  # batches per "epoch" (None: one pass); epochs go on through the text
    seed: int = 0


@dataclass
class LMHistory:
    """Per-epoch perplexities and gradient norms (before clipping) recorded by :func:`train_lm`."""

    train_ppl: list[float] = field(default_factory=list)
    val_ppl: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)  # mean per epoch; 0 without clipping
    tokens_per_s: float = 0.0


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_perplexity(model: CharLM, corpus: torch.Tensor, batch_size: int = 32, num_steps: int = 64) -> float:
    """Perplexity of ``model`` on ``corpus`` read in order, state carried across windows.

    Introduced in: Recurrent neural networks (language model).
    """
    model.eval()
    row_len = (len(corpus) - 1) // batch_size
    if row_len < 1:
        raise ValueError(f"corpus of {len(corpus)} tokens is shorter than batch_size + 1")
    X = corpus[: batch_size * row_len].reshape(batch_size, row_len).to(_device(model))  # (B, n)
    Y = corpus[1 : batch_size * row_len + 1].reshape(batch_size, row_len).to(X.device)
    state, total = None, torch.zeros((), device=X.device)
    for t in range(0, row_len, num_steps):
        logits, state = model(X[:, t : t + num_steps], state)  # (B, steps, V)
        total += sequence_loss(logits, Y[:, t : t + num_steps], reduction="sum")
    return math.exp(float(total) / Y.numel())


def _batch_stream(
    data: TextData, config: TrainConfig, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
    """Training batches without end, flagged when a new pass (with a new random offset) starts.

    An "epoch" of ``max_batches`` batches continues where the previous one stopped, so
    short epochs still cover the whole text instead of repeating its first part.
    """
    while True:
        batches = data.batches("train", config.batch_size, config.num_steps, config.sampling, generator)
        for i, (X, Y) in enumerate(batches):
            yield X, Y, i == 0


def _batches_per_epoch(data: TextData, config: TrainConfig) -> int:
    """``max_batches``, else ``(n - 1 - T) // (B * T)``: never more batches than one pass holds
    at any random offset (``(n - T) // (B * T)`` at the worst)."""
    if config.max_batches is not None:
        return config.max_batches
    return max(1, (len(data.train) - 1 - config.num_steps) // (config.batch_size * config.num_steps))


def train_lm(
    model: CharLM, data: TextData, config: TrainConfig, plot: bool = True, title: str | None = None
) -> LMHistory:
    """Train ``model`` with clipping; plots training and validation perplexity per epoch.

    Introduced in: Recurrent neural networks (language model).
    """
    if config.num_epochs < 1 or (config.max_batches is not None and config.max_batches < 1):
        raise ValueError(f"num_epochs and max_batches must be >= 1, got {config.num_epochs}, {config.max_batches}")
    device = _device(model)
    generator = torch.Generator().manual_seed(config.seed)
    optim = (torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=config.lr)
    history = LMHistory()
    figure = None
    if plot:
        figure = ProgressPlot(["train", "validation"], ylabel="perplexity", xlim=(1, config.num_epochs), title=title)
    tokens, seconds, state = 0, 0.0, None
    stream = _batch_stream(data, config, generator)
    for epoch in range(1, config.num_epochs + 1):
        model.train()
        loss_sum, norm_sum, n = torch.zeros(()), torch.zeros(()), 0
        start = time.perf_counter()
        for X, Y, new_pass in itertools.islice(stream, _batches_per_epoch(data, config)):
            X, Y = X.to(device), Y.to(device)  # (B, T) each
            fresh = config.sampling == "random" or new_pass or state is None  # start from zeros
            state = None if fresh else _detach(state)
            logits, state = model(X, state)  # (B, T, V)
            loss = sequence_loss(logits, Y)
            optim.zero_grad()
            loss.backward()
            if config.clip is not None:
                norm_sum += clip_gradients(model.parameters(), config.clip).detach().cpu()
            optim.step()
            loss_sum += loss.detach().cpu()
            n += 1
        seconds += time.perf_counter() - start
        tokens += n * config.batch_size * config.num_steps
        history.train_ppl.append(math.exp(float(loss_sum) / n))
        history.val_ppl.append(evaluate_perplexity(model, data.val))
        history.grad_norm.append(float(norm_sum) / n)
        if figure is not None:
            figure.add(epoch, [history.train_ppl[-1], history.val_ppl[-1]])
    if figure is not None:
        figure.close()
    history.tokens_per_s = tokens / seconds
    return history


@torch.no_grad()
def generate(
    model: CharLM, vocab: Vocab, prefix: str, num_chars: int,
    temperature: float = 0.0, generator: torch.Generator | None = None,
) -> str:
    """``prefix`` followed by ``num_chars`` predicted characters (greedy when temperature is 0).

    The prefix is read in one call (warm-up), then each prediction is fed back in.
    Introduced in: Recurrent neural networks (language model).
    """
    if not prefix:
        raise ValueError("prefix must hold at least one character")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    model.eval()
    logits, state = model(vocab.encode(prefix)[None].to(_device(model)))  # (1, P, V)
    out: list[int] = []
    for _ in range(num_chars):
        last = logits[0, -1].float().cpu()  # (V,)
        last[0] = -math.inf  # never emit <unk>
        if temperature == 0:
            token = int(last.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=generator))
        out.append(token)
        logits, state = model(torch.tensor([[token]], device=_device(model)), state)
    return prefix + vocab.decode(out)
