"""The Transformer encoder-decoder, its training, greedy decoding, BLEU evaluation, attention maps.

Introduced in the chapter *The Transformer* (chapters/transformer), after Vaswani et al.,
"Attention is all you need" (2017) and d2l.ai, chapter 11. The attention layers, their
key/value cache and the heat-map plot are in :mod:`lib.attention`; the English-French data
and the BLEU score are in :mod:`lib.translation`. During prediction each decoder block
keeps the keys and values it has already computed (:class:`~lib.attention.KVCache`), so a
new token costs one position, not a recomputation of the whole prefix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lib.attention import KVCache, MultiHeadAttention, length_mask, recording_attention
from lib.dropout import Dropout
from lib.translation import TranslationData, bleu, encode, tokenize


@dataclass
class TransformerConfig:
    """Sizes of a Transformer (defaults: d2l's small translation model). Introduced in: The Transformer."""

    num_hiddens: int = 32
    ffn_num_hiddens: int = 64
    num_heads: int = 4
    num_blks: int = 2
    dropout: float = 0.1  # on embeddings and sub-layer outputs, as in the paper
    attention_dropout: float = 0.0  # on attention weights (d2l: = dropout); > 0 costs speed on CPU
    bias: bool = False  # of the attention projections
    max_len: int = 1000  # longest sequence the positional encoding covers


class PositionalEncoding(nn.Module):
    """Adds ``sin``/``cos`` of ``position / 10000^(2i/d)`` to the inputs, then dropout.

    Introduced in: The Transformer (positional encoding).
    """

    def __init__(self, num_hiddens: int, dropout: float = 0.0, max_len: int = 1000) -> None:
        super().__init__()
        if num_hiddens % 2:
            raise ValueError(f"num_hiddens must be even, got {num_hiddens}")
        self.dropout = Dropout(dropout)
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        angles = pos / 10000 ** (torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        P = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(1, max_len, num_hiddens)
        self.register_buffer("P", P, persistent=False)  # (1, max_len, d): sin, cos interleaved

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + X.shape[1] > self.P.shape[1]:
            raise ValueError(f"positions up to {offset + X.shape[1]} exceed max_len {self.P.shape[1]}")
        return self.dropout(X + self.P[:, offset: offset + X.shape[1]])  # (B, T, d)


# Compiled for a CPU, relu saves its backward mask as booleans, and inductor's C++ writes a
# vector of booleans one element at a time: 0.3-0.7 ms for the FFN's (64, 10, 64)
# activations, where ATen's relu takes 10 us. As one operator whose backward reads the
# saved output, relu keeps ATen's kernel and the backward needs no mask (a compiled step of
# the benchmarks/transformer_speed.py configuration: 23.5 ms, against 26.1 ms with F.relu, one run).
@torch.library.custom_op("lib::relu", mutates_args=())
def _relu_op(X: torch.Tensor) -> torch.Tensor:
    return torch.relu(X)


@_relu_op.register_fake
def _(X: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(X)


def _relu_op_setup(ctx, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
    ctx.save_for_backward(output)


def _relu_op_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    (Y,) = ctx.saved_tensors
    return torch.where(Y > 0, grad, 0.0)


_relu_op.register_autograd(_relu_op_backward, setup_context=_relu_op_setup)


class PositionWiseFFN(nn.Module):
    """The same two-layer MLP at every position: ``dense2(relu(dense1(X)))`` (The Transformer)."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int) -> None:
        super().__init__()
        self.dense1, self.dense2 = nn.Linear(num_hiddens, ffn_num_hiddens), nn.Linear(ffn_num_hiddens, num_hiddens)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        relu = _relu_op if X.device.type == "cpu" and torch.compiler.is_compiling() else F.relu  # see _relu_op
        return self.dense2(relu(self.dense1(X)))  # (B, T, d)


class AddNorm(nn.Module):
    """Residual connection then layer normalization: ``ln(X + dropout(Y))`` (The Transformer)."""

    def __init__(self, num_hiddens: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout, self.ln = Dropout(dropout), nn.LayerNorm(num_hiddens)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(X + self.dropout(Y))


class EncoderBlock(nn.Module):
    """Self-attention and a position-wise FFN, each followed by add & norm (The Transformer)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.num_hiddens
        self.attention = MultiHeadAttention(d, cfg.num_heads, cfg.attention_dropout, cfg.bias)
        self.addnorm1, self.addnorm2 = AddNorm(d, cfg.dropout), AddNorm(d, cfg.dropout)
        self.ffn = PositionWiseFFN(d, cfg.ffn_num_hiddens)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))  # (B, S, d)
        return self.addnorm2(Y, self.ffn(Y))


class TransformerEncoder(nn.Module):
    """Embedding * sqrt(d) + positional encoding, then ``num_blks`` encoder blocks (The Transformer)."""

    def __init__(self, vocab_size: int, cfg: TransformerConfig) -> None:
        super().__init__()
        self.scale = math.sqrt(cfg.num_hiddens)
        self.embedding = nn.Embedding(vocab_size, cfg.num_hiddens)
        self.pos_encoding = PositionalEncoding(cfg.num_hiddens, cfg.dropout, cfg.max_len)
        self.blks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.num_blks))

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        H = self.pos_encoding(self.embedding(X) * self.scale)  # (B, S, d)
        for blk in self.blks:
            H = blk(H, valid_lens)
        return H


class DecoderBlock(nn.Module):
    """Masked self-attention, encoder-decoder attention and an FFN, each with add & norm.

    With ``caches`` (one :class:`KVCache` per attention) ``X`` holds only the new positions
    and attends to the cached keys/values of the earlier ones.
    Introduced in: The Transformer (decoder).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.num_hiddens
        self.attention1 = MultiHeadAttention(d, cfg.num_heads, cfg.attention_dropout, cfg.bias)
        self.attention2 = MultiHeadAttention(d, cfg.num_heads, cfg.attention_dropout, cfg.bias)
        self.addnorm1, self.addnorm2, self.addnorm3 = (AddNorm(d, cfg.dropout) for _ in range(3))
        self.ffn = PositionWiseFFN(d, cfg.ffn_num_hiddens)

    def forward(
        self, X: torch.Tensor, enc_outputs: torch.Tensor, enc_valid_lens: torch.Tensor | None,
        caches: tuple[KVCache, KVCache] | None = None,
    ) -> torch.Tensor:
        self_cache, cross_cache = caches if caches is not None else (None, None)
        Y = self.addnorm1(X, self.attention1(X, X, X, causal=True, cache=self_cache))  # (B, T, d)
        Z = self.addnorm2(Y, self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens, cache=cross_cache))
        return self.addnorm3(Z, self.ffn(Z))  # (B, T, d)


class TransformerDecoder(nn.Module):
    """Embedding + positional encoding, decoder blocks, a linear output layer (The Transformer)."""

    def __init__(self, vocab_size: int, cfg: TransformerConfig) -> None:
        super().__init__()
        self.scale = math.sqrt(cfg.num_hiddens)
        self.embedding = nn.Embedding(vocab_size, cfg.num_hiddens)
        self.pos_encoding = PositionalEncoding(cfg.num_hiddens, cfg.dropout, cfg.max_len)
        self.blks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.num_blks))
        self.dense = nn.Linear(cfg.num_hiddens, vocab_size)

    def new_caches(self) -> list[tuple[KVCache, KVCache]]:
        return [(KVCache(), KVCache(static=True)) for _ in self.blks]

    def forward(
        self, X: torch.Tensor, enc_outputs: torch.Tensor, enc_valid_lens: torch.Tensor | None,
        caches: list[tuple[KVCache, KVCache]] | None = None, offset: int = 0,
    ) -> torch.Tensor:
        H = self.pos_encoding(self.embedding(X) * self.scale, offset)  # (B, T, d), positions offset..
        for i, blk in enumerate(self.blks):
            H = blk(H, enc_outputs, enc_valid_lens, None if caches is None else caches[i])
        return self.dense(H)  # (B, T, vocab)


class Transformer(nn.Module):
    """The encoder-decoder: ``forward(src, src_valid_lens, dec_input)`` -> logits.

    Introduced in: The Transformer (encoder-decoder).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: TransformerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or TransformerConfig()
        self.encoder = TransformerEncoder(src_vocab_size, self.cfg)
        self.decoder = TransformerDecoder(tgt_vocab_size, self.cfg)

    def forward(self, src: torch.Tensor, src_valid_lens: torch.Tensor | None, dec_input: torch.Tensor) -> torch.Tensor:
        return self.decoder(dec_input, self.encoder(src, src_valid_lens), src_valid_lens)  # (B, T, V)


def masked_cross_entropy(logits: torch.Tensor, Y: torch.Tensor, valid_lens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the first ``valid_lens`` positions of each row (padding ignored).

    ``logits``: ``(B, T, V)``; ``Y``: ``(B, T)``; ``valid_lens``: ``(B,)``.
    Introduced in: The Transformer (training).
    """
    if logits.shape[:2] != Y.shape or valid_lens.shape != Y.shape[:1]:
        raise ValueError(f"expected logits (B, T, V), Y (B, T), valid_lens (B,); got "
                         f"{tuple(logits.shape)}, {tuple(Y.shape)}, {tuple(valid_lens.shape)}")
    keep = length_mask(valid_lens, 1, Y.shape[1])[:, 0]  # (B, T)
    return F.cross_entropy(logits.flatten(0, 1), Y.masked_fill(~keep, -100).flatten(), ignore_index=-100)


def teacher_forcing(Y: torch.Tensor, bos: int) -> torch.Tensor:
    """Decoder input for training: ``<bos>``, then the target shifted right, ``(B, T)`` (The Transformer)."""
    return torch.cat([torch.full_like(Y[:, :1], bos), Y[:, :-1]], dim=1)


def train_seq2seq(
    model: Transformer, loader: Iterable[Sequence[torch.Tensor]], bos: int, num_epochs: int = 10,
    lr: float = 0.005, device: torch.device | str = "cpu", grad_clip: float = 1.0, plot: bool = False,
) -> list[float]:
    """Adam with teacher forcing and masked cross-entropy; returns the mean loss of each epoch.

    Batches are ``(src, src_valid_len, tgt, tgt_valid_len)`` as made by :mod:`lib.translation`.
    Introduced in: The Transformer (training).
    """
    from lib.plot import ProgressPlot

    device = torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # one kernel for all parameters
    figure = ProgressPlot(["train loss"], xlim=(1, num_epochs)) if plot else None
    losses = []
    for epoch in range(1, num_epochs + 1):
        total, tokens = 0.0, 0
        for src, src_len, tgt, tgt_len in loader:
            src, src_len, tgt, tgt_len = (t.to(device) for t in (src, src_len, tgt, tgt_len))
            loss = masked_cross_entropy(model(src, src_len, teacher_forcing(tgt, bos)), tgt, tgt_len)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)  # one norm call, also on a CPU
            optimizer.step()
            n = int(tgt_len.sum())
            total, tokens = total + float(loss.detach()) * n, tokens + n
        losses.append(total / tokens)
        if figure is not None:
            figure.add(epoch, [losses[-1]])
    if figure is not None:
        figure.close()
    return losses


@torch.no_grad()
def greedy_decode(
    model: Transformer, src: torch.Tensor, src_valid_lens: torch.Tensor, bos: int, eos: int,
    max_len: int, use_cache: bool = True,
) -> torch.Tensor:
    """Most likely token at each step for a batch, ``(B, max_len)``; after ``<eos>``: ``eos``.

    With ``use_cache`` each step feeds only the newest token and reuses the cached keys and
    values; without it the whole prefix is recomputed (same tokens, more work).
    Introduced in: The Transformer (prediction).
    """
    model.eval()
    enc = model.encoder(src, src_valid_lens)  # (B, S, d)
    caches = model.decoder.new_caches() if use_cache else None
    out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1 + t)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for t in range(max_len):
        if use_cache:
            logits = model.decoder(out[:, -1:], enc, src_valid_lens, caches, offset=t)  # (B, 1, V)
        else:
            logits = model.decoder(out, enc, src_valid_lens)[:, -1:]  # (B, 1, V)
        token = logits.argmax(-1).masked_fill(done[:, None], eos)  # (B, 1)
        out, done = torch.cat([out, token], dim=1), done | (token[:, 0] == eos)
        if bool(done.all()):
            break
    return F.pad(out[:, 1:], (0, max_len - out.shape[1] + 1), value=eos)  # (B, max_len)


def translate(model: Transformer, sentences: Sequence[str], data: TranslationData,
              device: torch.device | str = "cpu", max_len: int | None = None) -> list[str]:
    """Greedy translations (tokens joined by spaces) of English ``sentences``.

    Introduced in: The Transformer (prediction).
    """
    src, src_len = encode([tokenize(s) for s in sentences], data.src_vocab, data.num_steps)
    vocab = data.tgt_vocab
    ids = greedy_decode(model, src.to(device), src_len.to(device), vocab.bos, vocab.eos, max_len or data.num_steps)
    results = []
    for row in ids.tolist():
        row = row[: row.index(vocab.eos)] if vocab.eos in row else row
        results.append(" ".join(vocab.to_tokens(row)))
    return results


def evaluate_bleu(model: Transformer, pairs: Sequence[tuple[str, str]], data: TranslationData,
                  device: torch.device | str = "cpu", k: int = 2, batch_size: int = 512) -> float:
    """Mean sentence BLEU of greedy translations of ``pairs`` (English, French).

    Introduced in: The Transformer (BLEU).
    """
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start: start + batch_size]
        preds = translate(model, [e for e, _ in chunk], data, device)
        scores += [bleu(p, " ".join(tokenize(f)), k) for p, (_, f) in zip(preds, chunk, strict=True)]
    return sum(scores) / len(scores)


@torch.no_grad()
def attention_maps(model: Transformer, sentence: str, data: TranslationData,
                   device: torch.device | str = "cpu") -> dict[str, object]:
    """Translate ``sentence`` and return its attention weights for heat maps.

    Keys: ``"encoder"`` ``(blks, heads, S, S)``, ``"decoder"`` ``(blks, heads, T, T)``,
    ``"cross"`` ``(blks, heads, T, S)``, and the token labels ``"src"``, ``"tgt"`` (what
    each decoder position predicts: the rows of the decoder maps) and ``"tgt_in"`` (its
    input, ``<bos>`` then the tokens before: the columns of decoder self-attention). The
    weights come from one teacher-forced pass over the greedy output, which (causal masks)
    equals what each step of the decoding saw.
    Introduced in: The Transformer (heat maps).
    """
    model.eval()
    src, src_len = encode([tokenize(sentence)], data.src_vocab, data.num_steps)
    src, src_len = src.to(device), src_len.to(device)
    vocab = data.tgt_vocab
    out = greedy_decode(model, src, src_len, vocab.bos, vocab.eos, data.num_steps)[0].tolist()
    T = out.index(vocab.eos) + 1 if vocab.eos in out else len(out)
    S = int(src_len[0])
    with recording_attention(model):
        model(src[:, :S], src_len, teacher_forcing(torch.tensor([out[:T]], device=device), vocab.bos))
        enc = [b.attention.attention_weights[0] for b in model.encoder.blks]
        dec = [b.attention1.attention_weights[0] for b in model.decoder.blks]
        cross = [b.attention2.attention_weights[0] for b in model.decoder.blks]
    return {
        "encoder": torch.stack(enc).cpu(), "decoder": torch.stack(dec).cpu(), "cross": torch.stack(cross).cpu(),
        "src": data.src_vocab.to_tokens(src[0, :S]), "tgt": vocab.to_tokens(out[:T]),
        "tgt_in": vocab.to_tokens([vocab.bos, *out[:T - 1]]),
    }
