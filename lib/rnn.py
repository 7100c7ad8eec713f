"""Recurrent layers from scratch: deep RNN/GRU/LSTM with ``torch.nn``'s weights and interface.

Introduced in the chapter *Recurrent neural networks* (chapters/rnn). The from-scratch
layers use PyTorch's weight layout and names (``weight_ih_l{k}`` of shape
``(gates * hidden, inputs)``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``; gates
stacked r|z|n for a GRU and i|f|g|o for an LSTM), so a state dict moves unchanged between
:class:`ScratchRecurrent` and ``torch.nn.RNN``/``GRU``/``LSTM``, and the tests compare the
two on the same weights. The character language model built on these layers is in
:mod:`lib.language_model`.

Speed: each layer computes its input projection for all time steps in one matrix product,
leaving only ``h @ W_hh`` and the gates in the per-step loop; ``backend="torch"`` uses
PyTorch's fused kernels (cuDNN on a GPU).
References: Elman (1990), Hochreiter & Schmidhuber (1997, LSTM), Cho et al. (2014, GRU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Mode = Literal["rnn_tanh", "rnn_relu", "gru", "lstm"]
NUM_GATES: dict[str, int] = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
# One layer: W_ih (G*H, inputs), W_hh (G*H, H), b_ih (G*H,) or None, b_hh (G*H,) or None.
LayerWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h (L, B, H), or (h, c) for an LSTM


def _check_mode(mode: str) -> None:
    if mode not in NUM_GATES:
        raise ValueError(f"mode must be one of {tuple(NUM_GATES)}, got {mode!r}")


def rnn_step(
    x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None, nonlinearity: str = "tanh",
) -> torch.Tensor:
    """One step of an Elman layer: ``phi(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    ``x``: ``(batch, inputs)``, ``h``: ``(batch, hidden)``; returns ``(batch, hidden)``.
    Introduced in: Recurrent neural networks (theory).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if x.dim() != 2 or h.dim() != 2 or x.shape[0] != h.shape[0]:
        raise ValueError(f"expected x (batch, inputs) and h (batch, hidden), got {tuple(x.shape)}, {tuple(h.shape)}")
    z = x @ W_ih.T + h @ W_hh.T  # (batch, hidden)
    if b_ih is not None:
        z = z + b_ih
    if b_hh is not None:
        z = z + b_hh
    return torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)


def _cell(
    mode: str, xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
    W_hh_T: torch.Tensor, b_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step. ``xw``: the input part ``x W_ih^T + b_ih``, plus ``b_hh`` except in a GRU, ``(B, G*H)``.

    ``W_hh_T`` is ``W_hh`` transposed, ``(H, G*H)``. ``addmm`` adds ``xw`` and ``h W_hh^T`` in
    one fused operation, so an Elman step is two operations: ``addmm`` and the nonlinearity.
    """
    if mode == "gru":  # torch's GRU: the reset gate multiplies W_hn h + b_hn, so b_hh stays here
        H = h.shape[1]
        hw = h @ W_hh_T if b_hh is None else torch.addmm(b_hh, h, W_hh_T)  # (B, 3H)
        rz = torch.sigmoid(xw[:, : 2 * H] + hw[:, : 2 * H])  # reset and update gates together
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(xw[:, 2 * H :] + r * hw[:, 2 * H :])  # candidate state
        return n + z * (h - n), None  # (1 - z) * n + z * h
    pre = torch.addmm(xw, h, W_hh_T)  # (B, G*H): the whole pre-activation
    if mode == "rnn_tanh":
        return torch.tanh(pre), None
    if mode == "rnn_relu":
        return torch.relu(pre), None
    H = h.shape[1]
    gates = torch.sigmoid(pre)  # i|f|g|o; the g block is recomputed with tanh below
    i, f, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
    c = f * c + i * torch.tanh(pre[:, 2 * H : 3 * H])  # (B, H) cell state
    return o * torch.tanh(c), c


def recurrent_forward(
    X: torch.Tensor, weights: list[LayerWeights], mode: Mode = "rnn_tanh",
    hx: State | None = None, batch_first: bool = False,
) -> tuple[torch.Tensor, State]:
    """A deep RNN/GRU/LSTM over a whole sequence, same contract as ``torch.nn.RNN``.

    ``X``: ``(T, B, inputs)``, or ``(B, T, inputs)`` when ``batch_first``. ``weights``: one
    :data:`LayerWeights` per layer, bottom first. ``hx``: ``(L, B, H)`` initial states
    (zeros when ``None``), a pair ``(h0, c0)`` for an LSTM. Returns ``output``: the top
    layer's state at every step, ``(T, B, H)`` or ``(B, T, H)``; and ``h_n``: every layer's
    state after the last step, ``(L, B, H)`` whatever the layout (``(h_n, c_n)`` for an
    LSTM). So ``output[-1]`` (``output[:, -1]`` batch-first) equals ``h_n[-1]``.
    Introduced in: Recurrent neural networks from scratch.
    """
    _check_mode(mode)
    if X.dim() != 3:
        raise ValueError(f"X must be 3-D (steps, batch, inputs) or batch-first, got {tuple(X.shape)}")
    if not weights:
        raise ValueError("weights must hold at least one layer")
    seq = X.transpose(0, 1) if batch_first else X  # (T, B, I)
    num_layers, B = len(weights), seq.shape[1]
    H = weights[0][1].shape[1]
    if weights[0][0].shape[1] != seq.shape[2]:
        raise ValueError(f"layer 0 expects {weights[0][0].shape[1]} inputs, X has {seq.shape[2]}")
    if hx is None:
        zeros = seq.new_zeros(num_layers, B, H)
        hx = (zeros, zeros) if mode == "lstm" else zeros
    h0, c0 = hx if mode == "lstm" else (hx, None)
    if tuple(h0.shape) != (num_layers, B, H):
        raise ValueError(f"initial state must be (layers, batch, hidden) = {(num_layers, B, H)}, got {tuple(h0.shape)}")
    last_h, last_c = [], []
    for layer, (W_ih, W_hh, b_ih, b_hh) in enumerate(weights):
        xw = seq @ W_ih.T  # (T, B, G*H): the input part of every step in one product
        if b_ih is not None:
            xw = xw + b_ih
        step_bias = b_hh  # a GRU needs b_hh inside its step (the reset gate multiplies it)
        if mode != "gru" and b_hh is not None:
            xw, step_bias = xw + b_hh, None  # the other cells add it once, here
        h, c = h0[layer], None if c0 is None else c0[layer]  # (B, H)
        W_hh_T, outputs = W_hh.T, []
        for xw_t in xw.unbind(0):  # unbind, not xw[t]: its backward is one stack, not T scatters
            h, c = _cell(mode, xw_t, h, c, W_hh_T, step_bias)
            outputs.append(h)
        seq = torch.stack(outputs)  # (T, B, H): this layer's states are the next layer's inputs
        last_h.append(h)
        last_c.append(c)
    output = seq.transpose(0, 1) if batch_first else seq
    h_n = torch.stack(last_h)  # (L, B, H)
    return output, (h_n, torch.stack(last_c)) if mode == "lstm" else h_n


def mode_of(module: nn.Module) -> Mode:
    """The :data:`Mode` of a ``torch.nn.RNN``/``GRU``/``LSTM`` or :class:`ScratchRecurrent`."""
    if isinstance(module, ScratchRecurrent):
        return module.config.mode
    if isinstance(module, nn.LSTM):
        return "lstm"
    if isinstance(module, nn.GRU):
        return "gru"
    if isinstance(module, nn.RNN):
        return "rnn_tanh" if module.nonlinearity == "tanh" else "rnn_relu"
    raise ValueError(f"expected an RNN, GRU or LSTM module, got {type(module).__name__}")


def layer_weights(module: nn.Module) -> list[LayerWeights]:
    """The per-layer weights of a ``torch.nn.RNN``/``GRU``/``LSTM`` (or scratch) module.

    Introduced in: Recurrent neural networks from scratch.
    """
    if getattr(module, "bidirectional", False) or getattr(module, "proj_size", 0):
        raise ValueError("bidirectional or projected (proj_size > 0) modules are not supported")
    return [
        tuple(getattr(module, f"{name}_l{k}", None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        for k in range(module.num_layers)
    ]


@dataclass
class RecurrentConfig:
    """Shape of a deep recurrent network (the arguments of ``torch.nn.RNN``)."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    mode: Mode = "gru"
    bias: bool = True
    batch_first: bool = False


class ScratchRecurrent(nn.Module):
    """A deep RNN/GRU/LSTM from scratch with ``torch.nn``'s names, initialisation and interface."""

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        _check_mode(config.mode)
        if min(config.input_size, config.hidden_size, config.num_layers) < 1:
            raise ValueError(f"sizes and num_layers must be >= 1, got {config}")
        self.config, self.num_layers = config, config.num_layers
        G, H, bound = NUM_GATES[config.mode], config.hidden_size, 1 / math.sqrt(config.hidden_size)
        for k in range(config.num_layers):
            shapes = {"weight_ih": (G * H, config.input_size if k == 0 else H), "weight_hh": (G * H, H)}
            if config.bias:
                shapes |= {"bias_ih": (G * H,), "bias_hh": (G * H,)}
            for name, shape in shapes.items():  # U(-1/sqrt(H), 1/sqrt(H)), as torch.nn does
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, X: torch.Tensor, hx: State | None = None) -> tuple[torch.Tensor, State]:
        return recurrent_forward(X, layer_weights(self), self.config.mode, hx, self.config.batch_first)


def make_recurrent(config: RecurrentConfig, backend: Literal["torch", "scratch"] = "torch") -> nn.Module:
    """``torch.nn.RNN``/``GRU``/``LSTM`` (``"torch"``) or :class:`ScratchRecurrent` for ``config``.

    Introduced in: Recurrent neural networks (language model).
    """
    _check_mode(config.mode)
    if backend == "scratch":
        return ScratchRecurrent(config)
    if backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'scratch', got {backend!r}")
    kwargs = dict(input_size=config.input_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
                  bias=config.bias, batch_first=config.batch_first)  # fmt: skip
    if config.mode in ("rnn_tanh", "rnn_relu"):
        return nn.RNN(nonlinearity=config.mode[4:], **kwargs)
    return (nn.GRU if config.mode == "gru" else nn.LSTM)(**kwargs)
