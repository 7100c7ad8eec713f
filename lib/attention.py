"""Attention: masked softmax, scaled dot-product and multi-head attention, a key/value cache.

Introduced in the chapter *The Transformer* (chapters/transformer: page *Attention*; the
cache on page *The Transformer architecture*), after Vaswani et al., "Attention is all you
need" (2017) and d2l.ai, sections 11.3 and 11.5.
Attention runs through torch's fused ``scaled_dot_product_attention`` (all heads and
positions in one call), except for short sequences on a CPU, where that kernel's fixed cost
per (batch, head) pair dominates and :class:`_ExplicitAttention` (batched matrix products,
softmax from ``exp`` and sums, a hand-written backward) trains up to twice as fast. The
textbook ``softmax(QK^T/sqrt(d)) V`` with :func:`masked_softmax` runs when the weights are
wanted for a heat map (:func:`recording_attention`, :func:`show_heatmaps`). All three give
the same numbers. During prediction each attention layer keeps the keys and
values it has already computed (:class:`KVCache`), so a new token costs one position, not
a recomputation of the whole prefix. The model built from these layers is in
:mod:`lib.transformer`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from lib.dropout import dropout, keep_mask

# Up to this many keys per query a CPU trains attention faster with _ExplicitAttention than
# with torch's fused kernel (forward and backward, 8 to 24 positions: 1.2x to 1.9x; from 32
# on the fused kernel wins, as it does for single-query decoding past about 24 keys).
_EXPLICIT_MAX_KEYS = 24
_SMALLEST_WEIGHT = 2e-35  # just above e^-80: unnormalized weights at or below it become 0


def length_mask(valid_lens: torch.Tensor, num_queries: int, num_keys: int, ndim: int = 3) -> torch.Tensor:
    """``(B,)`` or ``(B, q)`` valid lengths -> boolean ``(B, q|1, k)``, True where attended;
    with ``ndim > 3``, ones are inserted after ``B`` to broadcast over heads:
    ``(B, 1, ..., q|1, k)``.

    Introduced in: The Transformer (attention; also the masked loss of training).
    """
    if valid_lens.dim() not in (1, 2):
        raise ValueError(f"valid_lens must be (batch,) or (batch, queries), got {tuple(valid_lens.shape)}")
    lens = valid_lens.reshape(valid_lens.shape[0], -1, 1)  # (B, 1|q, 1)
    if lens.shape[1] not in (1, num_queries):
        raise ValueError(f"valid_lens has {lens.shape[1]} entries per row, expected {num_queries}")
    keep = torch.arange(num_keys, device=valid_lens.device) < lens  # (B, 1|q, k)
    return keep.reshape(keep.shape[0], *([1] * (ndim - 3)), *keep.shape[1:])  # (B, ..., q|1, k)


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
    keep = length_mask(valid_lens, X.shape[-2], X.shape[-1], X.dim())  # (B, ..., q|1, k)
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
    the weights are ``None`` and a fused kernel runs (on a CPU, for up to 24 keys, the
    faster :class:`_ExplicitAttention`, or under ``torch.compile`` the textbook formula).
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
    short_on_cpu = Q.device.type == "cpu" and k <= _EXPLICIT_MAX_KEYS
    # torch.compile keeps the fused kernel as one opaque call, as slow on a CPU as in eager
    # mode; from the textbook formula inductor fuses the mask and softmax into one loop.
    if need_weights or (short_on_cpu and torch.compiler.is_compiling()):
        scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])  # (B, ..., q, k)
        if fast_causal:
            valid_lens = _causal_lens(q, k, Q.device).expand(Q.shape[0], q)
        weights = masked_softmax(scores, valid_lens)  # (B, ..., q, k)
        return dropout(weights, dropout_p) @ V, weights if need_weights else None  # (B, ..., q, v)
    explicit = short_on_cpu
    if explicit and fast_causal:
        valid_lens, fast_causal = _causal_lens(q, k, Q.device).expand(Q.shape[0], q), False
    masked = None
    if valid_lens is not None:
        masked = ~length_mask(valid_lens, q, k, Q.dim())  # (B, ..., q|1, k)
    if explicit:
        return _ExplicitAttention.apply(Q, K, V, masked, 1 / math.sqrt(Q.shape[-1]), dropout_p), None
    mask = None if masked is None else torch.zeros(masked.shape, dtype=Q.dtype, device=Q.device).masked_fill_(
        masked, -1e6)
    out = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask, dropout_p=dropout_p, is_causal=fast_causal)
    if masked is not None:
        # Scores minus 1e6 still differ where the scores differ by more than float32's spacing
        # at 1e6 (1/16), so a row with no valid key would not be uniform: give it V's mean.
        out = torch.where(masked.all(-1, keepdim=True), V.mean(-2, keepdim=True), out)
    return out, None  # (B, ..., q, v)


class _ExplicitAttention(torch.autograd.Function):
    """``dropout(masked_softmax(Q K^T * scale)) V`` with its own backward, for short CPU sequences.

    Shapes as in :func:`dot_product_attention`; ``masked`` ``(B, ..., q|1, k)`` is True where a
    key is not attended: it gets exactly zero weight, and a row with no valid key is uniform,
    as in :func:`masked_softmax`. Exponents are clamped at -80 and weights below ``e^-80``
    set to 0, because ``exp`` of inputs below -88 takes a slow path and denormal numbers
    (below 1.2e-38) make every later product on a CPU tens of times slower.
    """

    @staticmethod
    def forward(ctx, Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, masked: torch.Tensor | None,
                scale: float, dropout_p: float) -> torch.Tensor:
        # Strided batches would make every matrix product below loop over its matrices one by one.
        Q, K, V = Q.contiguous(), K.contiguous(), V.contiguous()
        scores = torch.matmul(Q, K.transpose(-2, -1)).mul_(scale)  # (B, ..., q, k)
        if masked is not None:
            scores = scores.masked_fill_(masked, max(-1e6, torch.finfo(scores.dtype).min))
        # torch.softmax costs ~20 ns per element on rows this short; exp and sums cost ~1.
        weights = (scores - scores.amax(-1, keepdim=True)).clamp_min_(-80.0).exp_()
        weights = F.threshold_(weights, _SMALLEST_WEIGHT, 0.0)  # masked keys: exactly 0
        weights = weights.div_(weights.sum(-1, keepdim=True))  # (B, ..., q, k)
        mask = keep_mask(weights.shape, dropout_p, weights.dtype) if dropout_p > 0 else None
        kept = weights if mask is None else weights * mask
        ctx.save_for_backward(Q, K, V, weights, mask, kept, masked)
        ctx.scale = scale
        return torch.matmul(kept, V)  # (B, ..., q, v)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        Q, K, V, weights, mask, kept, masked = ctx.saved_tensors
        grad = grad.contiguous()  # (B, ..., q, v)
        dV = torch.matmul(kept.transpose(-2, -1), grad)  # (B, ..., k, v)
        d_weights = torch.matmul(grad, V.transpose(-2, -1))  # (B, ..., q, k)
        if mask is not None:
            d_weights = d_weights.mul_(mask)
        # Softmax backward: w * (dw - sum(dw * w)), then the scale of the scores.
        d_scores = weights * (d_weights - (d_weights * weights).sum(-1, keepdim=True))
        if masked is not None:  # a row with no valid key is uniform whatever its scores: no gradient
            d_scores = d_scores.masked_fill_(masked, 0.0)
        d_scores = d_scores.mul_(ctx.scale)
        dQ = torch.matmul(d_scores, K)  # (B, ..., q, d)
        dK = torch.matmul(d_scores.transpose(-2, -1), Q)  # (B, ..., k, d)
        return dQ, dK, dV, None, None, None


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
