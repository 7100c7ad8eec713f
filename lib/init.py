"""Weight initialisation from scratch: Glorot/Xavier (uniform and normal), He/Kaiming (normal).

Introduced in the chapter *Vanishing and exploding gradients, the Glorot condition*
(chapters/stability, page *Zero-centred data and the Glorot condition*). The initialisers
use the fan conventions of ``torch.nn.init``: a weight ``(out, in, *kernel)`` has
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``. Given the same random
generator state they draw exactly the numbers ``torch.nn.init`` draws. The deep networks
they initialise, and the probes that measure them, are in :mod:`lib.stability`.

References: X. Glorot and Y. Bengio, *Understanding the difficulty of training deep
feedforward neural networks* (AISTATS 2010); K. He et al., *Delving deep into
rectifiers* (ICCV 2015).
"""

from __future__ import annotations

import math

import torch


def fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``, as ``torch.nn.init`` counts them.

    A linear weight ``(out, in)`` gives ``(in, out)``; a convolution weight
    ``(out, in, kh, kw)`` gives ``(in * kh * kw, out * kh * kw)``. Fewer than 2 dimensions
    raise ``ValueError``. Introduced in: Vanishing and exploding gradients (Glorot condition).
    """
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < 2:
        raise ValueError(
            f"fan_in and fan_out need a tensor with at least 2 dimensions, got shape {tuple(tensor.shape)}"
        )
    receptive_field = math.prod(tensor.shape[2:])  # 1 for a linear weight
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain ``torch.nn.init.calculate_gain`` recommends (linear, sigmoid, tanh, relu, leaky_relu).

    Introduced in: Vanishing and exploding gradients (He initialisation).
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    The variance ``a**2 / 3 = gain**2 * 2 / (fan_in + fan_out)`` is Glorot's compromise
    between the forward and the backward condition. Returns ``tensor`` itself.
    Introduced in: Vanishing and exploding gradients (Glorot condition).
    """
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():  # also works on parameters that require grad
        return tensor.uniform_(-bound, bound, generator=generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``N(0, std**2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Introduced in: Vanishing and exploding gradients (Glorot condition).
    """
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` in place from ``N(0, std**2)``, ``std = gain / sqrt(fan)`` (He et al.).

    ``mode="fan_in"`` keeps the forward variance, ``"fan_out"`` the backward one; ``a`` is
    the negative slope of a leaky ReLU (``a=0``: ReLU, gain ``sqrt(2)``).
    Introduced in: Vanishing and exploding gradients (He initialisation).
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    if tensor.numel() == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)
