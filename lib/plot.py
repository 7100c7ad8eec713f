"""Plotting helpers shared by the chapters (introduced in *Softmax regression*).

Figures work the same live in Jupyter (updated in place while training) and in a
headless book build, where the last state of each figure is what the page shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (live notebook or a book build executing one)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class ProgressPlot:
    """Curves that grow point by point, redrawn in place in Jupyter.

    Introduced in: Softmax regression from scratch (training curves).
    """

    def __init__(
        self,
        legend: Sequence[str],
        xlabel: str = "epoch",
        ylabel: str | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        title: str | None = None,
        figsize: tuple[float, float] = (5.0, 3.2),
    ) -> None:
        self.legend = list(legend)
        self.xs: list[float] = []
        self.ys: list[list[float]] = [[] for _ in self.legend]
        self.fig, self.ax = plt.subplots(figsize=figsize)
        self._limits = (xlabel, ylabel, xlim, ylim, title)
        self._handle = None

    def add(self, x: float, ys: Sequence[float]) -> None:
        """Append one point to each curve (``len(ys) == len(legend)``) and redraw."""
        if len(ys) != len(self.legend):
            raise ValueError(f"expected {len(self.legend)} values ({self.legend}), got {len(ys)}")
        self.xs.append(float(x))
        for curve, y in zip(self.ys, ys, strict=True):
            curve.append(float(y))
        self._draw()
        if _in_notebook():
            from IPython.display import display

            if self._handle is None:
                self._handle = display(self.fig, display_id=True)
            else:
                self._handle.update(self.fig)

    def _draw(self) -> None:
        xlabel, ylabel, xlim, ylim, title = self._limits
        ax = self.ax
        ax.cla()
        styles = ["-", "--", "-.", ":"]
        for i, (name, curve) in enumerate(zip(self.legend, self.ys, strict=True)):
            ax.plot(self.xs, curve, styles[i % len(styles)], marker="o", ms=3, label=name)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if xlim:
            ax.set_xlim(*xlim)
        if ylim:
            ax.set_ylim(*ylim)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        self.fig.tight_layout()

    def close(self) -> None:
        """Release the figure so the inline backend does not show it a second time."""
        plt.close(self.fig)

    def save(self, path: str) -> None:
        """Write the figure to ``path`` (for scripts and headless runs)."""
        self.fig.savefig(path, dpi=120)


def show_images(
    images: torch.Tensor | np.ndarray,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
    cmap: str = "gray",
) -> plt.Figure:
    """Show a grid of images; ``images`` is ``(n, H, W)`` or ``(n, 1, H, W)``.

    Introduced in: Softmax regression (predictions on test images).
    """
    imgs = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]  # (n, H, W)
    if imgs.ndim != 3:
        raise ValueError(f"expected images of shape (n, H, W) or (n, 1, H, W), got {imgs.shape}")
    if titles is not None and len(titles) < min(len(imgs), num_rows * num_cols):
        raise ValueError(f"got {len(titles)} titles for {len(imgs)} images")
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=(num_cols * scale, num_rows * (scale + 0.35)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(imgs):
            continue
        ax.imshow(imgs[i], cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig
