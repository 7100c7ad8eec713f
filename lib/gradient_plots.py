"""Plots of the gradient-stability chapter: derivatives, gradient norms, gradient violins.

Introduced in the chapter *Vanishing and exploding gradients, the Glorot condition*
(chapters/stability: pages *Sigmoid, tanh, ReLU and their derivatives* and *Gradients
during training*). They draw an activation function beside its derivative, and what
:mod:`lib.stability` records: the weight gradients of every layer
(:func:`lib.stability.layer_gradients`), also epoch by epoch while training
(:func:`lib.stability.train_recording`). Plotting helpers shared by all chapters are in
:mod:`lib.plot`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_with_derivatives(
    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor
) -> plt.Figure:
    """One panel per function: the function and its derivative (by autograd) over ``x``.

    Introduced in: Vanishing and exploding gradients (activation functions).
    """
    fig, axes = plt.subplots(1, len(functions), figsize=(3.4 * len(functions), 2.8), squeeze=False)
    for ax, (name, fn) in zip(axes[0], functions.items(), strict=True):
        x_ = x.detach().clone().requires_grad_(True)
        y = fn(x_)
        (dy,) = torch.autograd.grad(y.sum(), x_)
        ax.plot(x.numpy(), y.detach().numpy(), label=name)
        ax.plot(x.numpy(), dy.numpy(), "--", label=f"{name}'")
        ax.axhline(0, color="gray", lw=0.5)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel("x")
    fig.tight_layout()
    return fig


def layer_norm_curves(ax: plt.Axes, snapshots: dict[int, list[torch.Tensor]], title: str = "") -> None:
    """One line per layer: the norm of its weight gradient against the epoch (log scale).

    ``snapshots`` as returned by :func:`train_recording`. Introduced in: Vanishing and
    exploding gradients (gradients during training).
    """
    epochs = sorted(snapshots)
    norms = np.array([[float(g.norm()) for g in snapshots[e]] for e in epochs])  # (epochs, layers)
    colors = plt.cm.viridis(np.linspace(0, 0.9, norms.shape[1]))
    for layer in range(norms.shape[1]):
        ax.semilogy(epochs, norms[:, layer], color=colors[layer], label=f"layer {layer + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)


def layer_violins(ax: plt.Axes, grads: Sequence[torch.Tensor], title: str = "") -> None:
    """Violins of ``log10 |g|`` per layer (layer 1 = closest to the input) with medians.

    Entries that are exactly zero (ReLU units that are off for the whole batch) have no
    logarithm and are left out; count them separately. Introduced in: Vanishing and
    exploding gradients (gradients per layer).
    """
    logs = []
    for g in grads:
        nonzero = g[g != 0].abs()
        logs.append(np.log10(nonzero.numpy()) if len(nonzero) else np.array([np.nan]))
    positions = np.arange(1, len(logs) + 1)
    finite = [(p, v) for p, v in zip(positions, logs, strict=True) if np.isfinite(v).all() and len(v) > 1]
    if finite:
        ax.violinplot([v for _, v in finite], [p for p, _ in finite], widths=0.8, showextrema=False)
    ax.plot(positions, [np.median(v) for v in logs], "k.", ms=4)
    ax.set_xticks(positions)
    ax.set_xlabel("layer")
    ax.set_ylabel("log10 |gradient|")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
