"""Dropout whose random mask costs a fraction of torch's on a CPU.

Used by :mod:`lib.transformer` and :mod:`lib.attention` (chapter *The Transformer*; see
``benchmarks/transformer_speed.py``). torch's CPU dropout draws a 32-bit random number per
element (``bernoulli_``: 150 us for the 20,480 elements of a (64, 10, 32) activation,
here), which on the course's tiny models costs more than the matrix products it
regularizes. :func:`keep_mask` draws one 64-bit number per four elements and compares
each 16-bit quarter with a threshold (65 us in all), so the probability of dropping is ``p``
rounded to a multiple of ``1/65536`` (``0.1`` becomes ``0.100006``); the survivors are
scaled by ``1 / (1 - that probability)``, so the expected output still equals the input.
Other devices use ``torch.nn.functional.dropout``. Code that ``torch.compile`` traces calls
:func:`keep_mask` as one opaque operator (``lib::keep_mask_like``): inductor's own CPU
random numbers set up a Philox generator per element, which made a compiled Transformer
step 23% slower (30.2 ms against 24.6 ms in ``benchmarks/transformer_speed.py --compile``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_LEVELS = 1 << 16  # a 16-bit draw per element


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """``0`` with probability ``p`` (to 1/65536), else ``1 / (1 - p)``, of ``shape`` (The Transformer).

    Uses torch's global random generator, so ``torch.manual_seed`` makes it repeatable.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    dropped = round(p * _LEVELS)  # how many of the 65536 16-bit values drop an element
    numel = int(torch.Size(shape).numel())
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)  # all 64 bits random
    draws = words.view(torch.int16)[:numel].view(shape)  # (*shape) uniform over [-32768, 32767]
    keep = draws >= -(_LEVELS // 2) + dropped
    return keep.to(dtype).mul_(_LEVELS / (_LEVELS - dropped))


# Tagged as random so that compiled code keeps the mask for the backward pass instead of
# drawing it again.
@torch.library.custom_op("lib::keep_mask_like", mutates_args=(), tags=(torch.Tag.nondeterministic_seeded,))
def _keep_mask_like(X: torch.Tensor, p: float) -> torch.Tensor:
    """:func:`keep_mask` of ``X``'s shape, dtype and device, as an operator torch.compile keeps whole."""
    return keep_mask(X.shape, p, X.dtype, X.device)


@_keep_mask_like.register_fake
def _(X: torch.Tensor, p: float) -> torch.Tensor:
    return X.new_empty(X.shape)  # contiguous, as keep_mask's result, whatever X's strides


def dropout(X: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout`` semantics; on a CPU the mask comes from :func:`keep_mask` (The Transformer)."""
    if not training or p == 0.0:
        return X
    if X.device.type != "cpu" or not X.is_floating_point() or p >= 1.0:
        return F.dropout(X, p, training)
    if torch.compiler.is_compiling():
        return X * _keep_mask_like(X.detach(), p)
    return X * keep_mask(X.shape, p, X.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`'s cheaper CPU mask (The Transformer)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(X)
        return dropout(X, self.p, self.training)
