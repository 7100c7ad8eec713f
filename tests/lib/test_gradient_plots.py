"""Tests for lib/gradient_plots.py: the chapter's plots draw, headless (Agg)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
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


def test_plot_with_derivatives_draws_each_function_and_its_autograd_derivative():
    x = torch.linspace(-3, 3, 61)
    fig = gradient_plots.plot_with_derivatives({"tanh": torch.tanh, "relu": torch.relu}, x)
    derivatives = {"tanh": 1 - torch.tanh(x) ** 2, "relu": (x > 0).float()}  # closed forms
    for ax, (name, fn) in zip(fig.axes, [("tanh", torch.tanh), ("relu", torch.relu)], strict=True):
        curve, slope, zero = ax.lines
        assert curve.get_label() == name and slope.get_label() == f"{name}'"
        torch.testing.assert_close(torch.as_tensor(curve.get_xdata()), x)
        torch.testing.assert_close(torch.as_tensor(curve.get_ydata()), fn(x))
        torch.testing.assert_close(torch.as_tensor(slope.get_ydata()), derivatives[name])
        assert slope.get_linestyle() == "--"
        assert list(zero.get_ydata()) == [0, 0]  # the x axis, drawn across the panel
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [name, f"{name}'"]
        assert ax.get_xlabel() == "x" and ax.xaxis.get_gridlines()[0].get_visible()
    plt.close(fig)


def test_layer_norm_curves_plot_each_layers_gradient_norm_by_epoch():
    snapshots = {  # epochs out of order: the curves follow the epochs
        3: [torch.tensor([3.0, 4.0]), torch.tensor([0.5])],
        0: [torch.tensor([6.0, 8.0]), torch.tensor([2.0])],
        1: [torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])],
    }
    fig, ax = plt.subplots()
    gradient_plots.layer_norm_curves(ax, snapshots, "norms")
    first, second = ax.lines
    assert first.get_label() == "layer 1" and second.get_label() == "layer 2"
    assert list(first.get_xdata()) == [0, 1, 3] and list(second.get_xdata()) == [0, 1, 3]
    assert list(first.get_ydata()) == [10.0, 1.0, 5.0] and list(second.get_ydata()) == [2.0, 1.0, 0.5]
    assert tuple(first.get_color()) != tuple(second.get_color())
    assert ax.get_yscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "gradient norm", "norms")
    plt.close(fig)


def test_layer_violins_leave_out_zeros_and_mark_medians():
    grads = [
        torch.tensor([0.0, 1e-3, -1e-2, 1e-1, 0.0]),  # zeros left out: median of -3, -2, -1
        torch.zeros(4),  # no logarithm at all: no violin, a NaN median
        torch.tensor([0.0, 100.0]),  # one value: a median but no violin
        torch.tensor([10.0, -1.0]),
    ]
    fig, ax = plt.subplots()
    gradient_plots.layer_violins(ax, grads, "violins")
    (medians,) = ax.lines
    assert list(medians.get_xdata()) == [1, 2, 3, 4]
    medians_y = medians.get_ydata()
    assert math.isnan(medians_y[1])
    assert [medians_y[i] for i in (0, 2, 3)] == pytest.approx([-2.0, 2.0, 0.5], abs=1e-6)
    bodies = ax.collections  # violins only for layers 1 and 4
    assert len(bodies) == 2
    xs = [body.get_paths()[0].vertices[:, 0] for body in bodies]
    assert [(x.min() + x.max()) / 2 for x in xs] == pytest.approx([1.0, 4.0])  # symmetric about the layer
    heights = [body.get_paths()[0].vertices[:, 1] for body in bodies]
    assert heights[0].min() == pytest.approx(-3.0) and heights[0].max() == pytest.approx(-1.0)
    assert list(ax.get_xticks()) == [1, 2, 3, 4]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("layer", "log10 |gradient|", "violins")
    plt.close(fig)
