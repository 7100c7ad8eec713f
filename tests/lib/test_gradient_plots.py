"""Tests for lib/gradient_plots.py: the chapter's plots draw, headless (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lib import gradient_plots  # noqa: E402


def test_plot_helpers_draw():
    fig = gradient_plots.plot_with_derivatives({"tanh": torch.tanh, "relu": torch.relu}, torch.linspace(-3, 3, 50))
    assert len(fig.axes) == 2
    fig2, ax = plt.subplots()
    grads = [torch.tensor([0.0, 1e-3, 2e-3, 5e-3]), torch.zeros(4), torch.tensor([1.0, 2.0, 0.5])]
    gradient_plots.layer_violins(ax, grads, "test")
    gradient_plots.layer_norm_curves(ax, {0: grads, 1: grads}, "test")
    plt.close(fig)
    plt.close(fig2)
