"""The Transformer encoder-decoder, its training, greedy decoding, BLEU and heat maps.

Introduced in the chapter *The Transformer* (chapters/transformer), after Vaswani et al.,
"Attention is all you need" (2017) and d2l.ai, chapter 11. Attention runs through torch's
fused ``scaled_dot_product_attention`` (all heads and positions in one call); the
explicit ``softmax(QK^T/sqrt(d)) V`` path is used only when the weights are wanted for a
heat map, and both give the same numbers. During prediction each decoder block keeps the
keys and values it has already computed (:class:`KVCache`), so a new token costs one
position, not a recomputation of the whole prefix.
"""

from __future__ import annotations

import collections
import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

from lib.translation import TranslationData, encode, tokenize


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


def _keep_mask(valid_lens: torch.Tensor, num_queries: int, num_keys: int) -> torch.Tensor:
    """``(B,)`` or ``(B, q)`` valid lengths -> boolean ``(B, q|1, k)``, True where attended."""
    if valid_lens.dim() not in (1, 2):
        raise ValueError(f"valid_lens must be (batch,) or (batch, queries), got {tuple(valid_lens.shape)}")
    lens = valid_lens.reshape(valid_lens.shape[0], -1, 1)  # (B, 1|q, 1)
    if lens.shape[1] not in (1, num_queries):
        raise ValueError(f"valid_lens has {lens.shape[1]} entries per row, expected {num_queries}")
    return torch.arange(num_keys, device=valid_lens.device) < lens  # (B, 1|q, k)


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis of ``X`` ``(B, ..., q, k)`` ignoring keys past ``valid_lens``.

    ``valid_lens``: ``(B,)`` (same length for every query) or ``(B, q)``. Masked scores are
    replaced by -1e6, whose exponential is exactly 0 in float32, so padding gets zero weight;
    a row with no valid key becomes uniform (as in d2l).
    Introduced in: The Transformer (attention).
    """
    if valid_lens is None:
        return X.softmax(dim=-1)
    if X.dim() < 3 or valid_lens.shape[0] != X.shape[0]:
        raise ValueError(f"X must be (batch, ..., q, k) with batch {valid_lens.shape[0]}, got {tuple(X.shape)}")
    keep = _keep_mask(valid_lens, X.shape[-2], X.shape[-1])  # (B, q|1, k)
    keep = keep.reshape(keep.shape[0], *([1] * (X.dim() - 3)), *keep.shape[1:])  # broadcast over heads
    fill = max(-1e6, torch.finfo(X.dtype).min)
    return X.masked_fill(~keep, fill).softmax(dim=-1)


def _causal_lens(num_queries: int, num_keys: int, device: torch.device) -> torch.Tensor:
    """Query i of the last ``num_queries`` positions sees keys ``0 .. num_keys - num_queries + i``."""
    return torch.arange(num_keys - num_queries + 1, num_keys + 1, device=device)[None]  # (1, q)


def dot_product_attention(
    Q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    valid_lens: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention ``softmax(Q K^T / sqrt(d)) V``; returns (output, weights).

    ``Q``: ``(B, ..., q, d)``, ``K``: ``(B, ..., k, d)``, ``V``: ``(B, ..., k, v)``;
    ``valid_lens`` as in :func:`masked_softmax`; ``causal`` lets query ``i`` (the last
    ``q`` of ``k`` positions) see keys up to its own position. Without ``need_weights``
    the fused kernel runs and the weights are ``None``.
    Introduced in: The Transformer (attention).
    """
    q, k = Q.shape[-2], K.shape[-2]
    if K.shape[-1] != Q.shape[-1] or K.shape[:-1] != V.shape[:-1]:
        raise ValueError(f"incompatible shapes Q {tuple(Q.shape)}, K {tuple(K.shape)}, V {tuple(V.shape)}")
    fast_causal = causal and valid_lens is None and q == k  # the kernel's own causal mask
    if causal and not fast_causal and q > 1:
        lens = _causal_lens(q, k, Q.device)  # (1, q)
        valid_lens = lens.expand(Q.shape[0], q) if valid_lens is None else torch.minimum(
            valid_lens.reshape(Q.shape[0], -1), lens)  # (B, q)
    if need_weights:
        scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])  # (B, ..., q, k)
        if fast_causal:
            valid_lens = _causal_lens(q, k, Q.device).expand(Q.shape[0], q)
        weights = masked_softmax(scores, valid_lens)  # (B, ..., q, k)
        return F.dropout(weights, dropout_p) @ V, weights  # (B, ..., q, v)
    mask = None
    if valid_lens is not None:
        keep = _keep_mask(valid_lens, q, k)  # (B, q|1, k)
        keep = keep.reshape(keep.shape[0], *([1] * (Q.dim() - 3)), *keep.shape[1:])
        mask = torch.zeros(keep.shape, dtype=Q.dtype, device=Q.device).masked_fill_(~keep, -1e6)
    out = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask, dropout_p=dropout_p, is_causal=fast_causal)
    return out, None  # (B, ..., q, v)


@dataclass
class KVCache:
    """Keys and values ``(B, heads, t, d/heads)`` one attention layer has computed so far.

    ``static`` caches (encoder-decoder attention) are filled once from the encoder output.
    Introduced in: The Transformer (prediction).
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    static: bool = False

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None or self.static:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """``num_heads`` attentions on learned projections, concatenated and projected by ``W_o``.

    Parameters are named as in d2l (``W_q, W_k, W_v, W_o``), so weights copy across.
    Set ``record_weights = True`` to keep ``attention_weights`` ``(B, heads, q, k)``.
    Introduced in: The Transformer (attention).
    """

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        if num_hiddens % num_heads:
            raise ValueError(f"num_hiddens ({num_hiddens}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.dropout = num_heads, dropout
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(num_hiddens, num_hiddens, bias=bias) for _ in range(4))
        self.record_weights = False
        self.attention_weights: torch.Tensor | None = None

    def split_heads(self, X: torch.Tensor) -> torch.Tensor:
        B, T, _ = X.shape  # (B, T, d)
        return X.reshape(B, T, self.num_heads, -1).transpose(1, 2)  # (B, h, T, d/h)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
        valid_lens: torch.Tensor | None = None, causal: bool = False, cache: KVCache | None = None,
    ) -> torch.Tensor:
        q = self.split_heads(self.W_q(queries))  # (B, h, q, d/h)
        if cache is not None and cache.static and cache.k is not None:
            k, v = cache.k, cache.v  # encoder keys/values, projected once
        else:
            k, v = self.split_heads(self.W_k(keys)), self.split_heads(self.W_v(values))  # (B, h, k, d/h)
            if cache is not None:
                k, v = cache.update(k, v)
        out, self.attention_weights = self.attend(q, k, v, valid_lens, causal)  # (B, h, q, d/h)
        B, _, T, _ = out.shape
        return self.W_o(out.transpose(1, 2).reshape(B, T, -1))  # (B, q, d)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid_lens: torch.Tensor | None, causal: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of all heads at once (override to try another scoring function)."""
        p = self.dropout if self.training else 0.0
        return dot_product_attention(q, k, v, valid_lens, causal, p, self.record_weights)


class PositionalEncoding(nn.Module):
    """Adds ``sin``/``cos`` of ``position / 10000^(2i/d)`` to the inputs, then dropout.

    Introduced in: The Transformer (positional encoding).
    """

    def __init__(self, num_hiddens: int, dropout: float = 0.0, max_len: int = 1000) -> None:
        super().__init__()
        if num_hiddens % 2:
            raise ValueError(f"num_hiddens must be even, got {num_hiddens}")
        self.dropout = nn.Dropout(dropout)
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        angles = pos / 10000 ** (torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        P = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(1, max_len, num_hiddens)
        self.register_buffer("P", P, persistent=False)  # (1, max_len, d): sin, cos interleaved

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + X.shape[1] > self.P.shape[1]:
            raise ValueError(f"positions up to {offset + X.shape[1]} exceed max_len {self.P.shape[1]}")
        return self.dropout(X + self.P[:, offset: offset + X.shape[1]])  # (B, T, d)


class PositionWiseFFN(nn.Module):
    """The same two-layer MLP at every position: ``dense2(relu(dense1(X)))`` (The Transformer)."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int) -> None:
        super().__init__()
        self.dense1, self.dense2 = nn.Linear(num_hiddens, ffn_num_hiddens), nn.Linear(ffn_num_hiddens, num_hiddens)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.dense2(F.relu(self.dense1(X)))  # (B, T, d)


class AddNorm(nn.Module):
    """Residual connection then layer normalization: ``ln(X + dropout(Y))`` (The Transformer)."""

    def __init__(self, num_hiddens: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout, self.ln = nn.Dropout(dropout), nn.LayerNorm(num_hiddens)

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
    keep = _keep_mask(valid_lens, 1, Y.shape[1])[:, 0]  # (B, T)
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
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
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
        pred_grams = collections.Counter(tuple(pred[i: i + n]) for i in range(len(pred) - n + 1))
        label_grams = collections.Counter(tuple(label[i: i + n]) for i in range(len(label) - n + 1))
        matches = sum((pred_grams & label_grams).values())  # clipped counts
        score *= (matches / (len(pred) - n + 1)) ** (0.5**n)
    return score


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


@contextlib.contextmanager
def recording_attention(model: nn.Module) -> Iterator[list[MultiHeadAttention]]:
    """Within the block, every attention layer of ``model`` keeps its weights (The Transformer)."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for layer in layers:
        layer.record_weights = True
    try:
        yield layers
    finally:
        for layer in layers:
            layer.record_weights = False


@torch.no_grad()
def attention_maps(model: Transformer, sentence: str, data: TranslationData,
                   device: torch.device | str = "cpu") -> dict[str, object]:
    """Translate ``sentence`` and return its attention weights for heat maps.

    Keys: ``"encoder"`` ``(blks, heads, S, S)``, ``"decoder"`` ``(blks, heads, T, T)``,
    ``"cross"`` ``(blks, heads, T, S)``, and the token labels ``"src"``, ``"tgt"``. The
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
    }


def show_heatmaps(matrices: torch.Tensor, xlabels: Sequence[str] | None = None,
                  ylabels: Sequence[str] | None = None, titles: Sequence[str] | None = None,
                  row_names: Sequence[str] | None = None, scale: float = 2.2, cmap: str = "Reds") -> plt.Figure:
    """Grid of heat maps from ``(rows, cols, q, k)`` weights; labels name keys and queries.

    Introduced in: The Transformer (heat maps).
    """
    if matrices.dim() != 4:
        raise ValueError(f"matrices must be (rows, cols, q, k), got {tuple(matrices.shape)}")
    rows, cols, q, k = matrices.shape
    fig, axes = plt.subplots(rows, cols, figsize=(cols * scale * max(k / q, 0.6), rows * scale),
                             squeeze=False, sharex=True, sharey=True)
    for i in range(rows):
        for j in range(cols):
            ax = axes[i, j]
            image = ax.imshow(matrices[i, j].detach().cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
            if xlabels is not None and i == rows - 1:
                ax.set_xticks(range(k), xlabels, rotation=90, fontsize=7)
            if ylabels is not None and j == 0:
                ax.set_yticks(range(q), ylabels, fontsize=7)
            if titles is not None and i == 0:
                ax.set_title(titles[j], fontsize=9)
            if row_names is not None and j == 0:
                ax.set_ylabel(row_names[i], fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.6)
    return fig
