"""lib.plot: the live training curves and the image grid, rendered headless (Agg)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lib.plot import ProgressPlot, show_images


@pytest.fixture
def no_new_figures():
    """Close whatever a test leaves open, and report what it left."""
    before = set(plt.get_fignums())
    yield before
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def test_progress_plot_adds_points_to_every_curve(no_new_figures):
    plot = ProgressPlot(["loss", "acc"], xlim=(1, 3), ylim=(0, 2), ylabel="value", title="run")
    plot.add(1, [1.5, 0.2])
    plot.add(2, (torch.tensor(1.0), np.float32(0.5)))
    assert plot.xs == [1.0, 2.0]
    assert plot.ys == [[1.5, 1.0], [0.2, 0.5]]
    assert all(type(v) is float for curve in plot.ys for v in curve)
    lines = plot.ax.get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[1.0, 2.0], [1.0, 2.0]]
    assert [list(line.get_ydata()) for line in lines] == plot.ys
    assert [t.get_text() for t in plot.ax.get_legend().get_texts()] == ["loss", "acc"]
    assert plot.ax.get_xlim() == (1, 3) and plot.ax.get_ylim() == (0, 2)
    assert plot.ax.get_xlabel() == "epoch" and plot.ax.get_ylabel() == "value"
    assert plot.ax.get_title() == "run"
    assert plot.fig.number in plt.get_fignums()
    plot.close()
    assert plot.fig.number not in plt.get_fignums()


def test_progress_plot_redraws_without_duplicating_lines(no_new_figures):
    plot = ProgressPlot(["a", "b", "c", "d", "e"])
    for x in range(4):
        plot.add(x, [x, 2 * x, 3 * x, 4 * x, 5 * x])
    assert len(plot.ax.get_lines()) == 5
    assert list(plot.ax.get_lines()[4].get_ydata()) == [0.0, 5.0, 10.0, 15.0]
    plot.close()


def test_progress_plot_rejects_wrong_number_of_values(no_new_figures):
    plot = ProgressPlot(["loss", "acc"])
    with pytest.raises(ValueError, match=r"expected 2 values \(\['loss', 'acc'\]\), got 3"):
        plot.add(1, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="expected 2 values"):
        plot.add(1, [0.1])
    assert plot.xs == [] and plot.ys == [[], []], "a rejected point is not half-added"
    plot.close()


def test_progress_plot_saves_a_png(tmp_path, no_new_figures):
    plot = ProgressPlot(["loss"])
    plot.add(1, [0.5])
    plot.save(str(tmp_path / "curve.png"))
    plot.close()
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "images",
    [
        torch.rand(5, 1, 6, 7),
        torch.rand(5, 6, 7),
        np.random.default_rng(0).random((5, 6, 7)),
        torch.rand(5, 1, 6, 7, requires_grad=True),
    ],
    ids=["(n,1,H,W)", "(n,H,W)", "numpy", "requires-grad"],
)
def test_show_images_draws_each_image(images, no_new_figures):
    fig = show_images(images, 2, 3, titles=[f"#{i}" for i in range(5)])
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 6
    expected = images.detach().numpy() if isinstance(images, torch.Tensor) else images
    expected = expected.reshape(5, 6, 7)
    for i, ax in enumerate(fig.axes[:5]):
        (image,) = ax.get_images()
        np.testing.assert_allclose(np.asarray(image.get_array()), expected[i], rtol=1e-6)
        assert ax.get_title() == f"#{i}"
        assert not ax.axison
    assert fig.axes[5].get_images() == [] and not fig.axes[5].axison
    plt.close(fig)


def test_show_images_grid_size_and_scale(no_new_figures):
    fig = show_images(torch.rand(2, 4, 4), 1, 4, scale=2.0)
    assert len(fig.axes) == 4
    assert tuple(fig.get_size_inches()) == pytest.approx((8.0, 2.35))
    assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 0, 0]
    assert [ax.get_title() for ax in fig.axes] == ["", "", "", ""]
    plt.close(fig)
    fig = show_images(torch.rand(9, 4, 4), 2, 2)  # more images than cells: the first four
    assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 1, 1]
    plt.close(fig)


def test_show_images_rejects_bad_shapes_and_titles(no_new_figures):
    with pytest.raises(ValueError, match=r"\(n, H, W\) or \(n, 1, H, W\), got \(2, 3, 4, 4\)"):
        show_images(torch.rand(2, 3, 4, 4), 1, 2)
    with pytest.raises(ValueError, match=r"got \(4, 4\)"):
        show_images(torch.rand(4, 4), 1, 1)
    with pytest.raises(ValueError, match="got 2 titles for 3 images"):
        show_images(torch.rand(3, 4, 4), 1, 3, titles=["a", "b"])
    assert set(plt.get_fignums()) == no_new_figures, "no figure is left behind on an error"
    fig = show_images(torch.rand(3, 4, 4), 1, 2, titles=["a", "b"])  # enough for the grid
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    plt.close(fig)
