"""Softmax regression: the model, its loss, accuracy and a training loop.

Introduced in the chapter *Softmax regression* (chapters/softmax). The softmax and the
cross-entropy are computed the numerically stable way: by subtracting the row maximum
before exponentiating and by working with log-probabilities (log-sum-exp), so logits of
magnitude 1e4 give finite results in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from lib.plot import ProgressPlot, show_images

Batch = tuple[torch.Tensor, torch.Tensor]
Updater = torch.optim.Optimizer | Callable[[int], None]


def _check_float(X: torch.Tensor, name: str, min_dim: int = 1) -> None:
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if not X.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {X.dtype}")
    if X.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(X.shape)}")


def _check_labels(y: torch.Tensor, n: int, num_classes: int) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class indices, got {getattr(y, 'shape', y)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must have an integer dtype, got {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"batch size mismatch: {n} rows of logits but {y.shape[0]} labels")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]"
        )


def softmax(X: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax over the last dimension, stable for any magnitude of logits.

    ``X``: ``(..., q)`` floating tensor (not modified). Returns probabilities of the same
    shape, dtype and device whose last dimension sums to 1.
    Introduced in: Softmax regression from scratch.
    """
    _check_float(X, "X")
    shifted = X - X.amax(dim=-1, keepdim=True)  # (..., q), largest entry per row is 0
    exp = shifted.exp()
    return exp / exp.sum(dim=-1, keepdim=True)


def log_softmax(X: torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(softmax(X))`` via log-sum-exp: finite where softmax underflows to 0.

    Introduced in: Softmax regression from scratch (exercise 2).
    """
    _check_float(X, "X")
    shifted = X - X.amax(dim=-1, keepdim=True)  # (..., q)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``-log softmax(logits)[i, y_i]`` computed from logits.

    ``logits``: ``(n, q)``; ``y``: ``(n,)`` integer labels in ``[0, q)``. Returns ``(n,)``.
    Introduced in: Softmax regression from scratch (exercise 3).
    """
    _check_float(logits, "logits", min_dim=2)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (n, q), got {tuple(logits.shape)}")
    _check_labels(y, logits.shape[0], logits.shape[1])
    y = y.to(logits.device)
    return -log_softmax(logits).gather(1, y.long().unsqueeze(1)).squeeze(1)  # (n,)


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (a float, not a fraction).

    ``y_hat``: ``(n, q)`` scores or ``(n,)`` predicted labels; ``y``: ``(n,)`` labels.
    Introduced in: Softmax regression from scratch.
    """
    if not isinstance(y_hat, torch.Tensor) or y_hat.dim() not in (1, 2):
        raise ValueError(f"y_hat must be (n, q) scores or (n,) labels, got {getattr(y_hat, 'shape', y_hat)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != y_hat.shape[0]:
        raise ValueError(
            f"y must be (n,) with n = {y_hat.shape[0]}, got {getattr(y, 'shape', y)}"
        )
    preds = y_hat.argmax(dim=1) if y_hat.dim() == 2 else y_hat  # (n,)
    return float((preds.to(y.device).long() == y.long()).sum())


class Accumulator:
    """Running sums of ``n`` quantities (e.g. loss sum, correct count, examples seen).

    Introduced in: Softmax regression from scratch.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Accumulator needs n >= 1, got {n}")
        self.data = [0.0] * n

    def add(self, *args: float) -> None:
        if len(args) != len(self.data):
            raise ValueError(f"expected {len(self.data)} values, got {len(args)}")
        self.data = [a + float(b) for a, b in zip(self.data, args, strict=True)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, i: int) -> float:
        return self.data[i]


class SoftmaxRegression(nn.Module):
    """Softmax regression from scratch: flatten, then ``X @ W + b`` (logits).

    Introduced in: Softmax regression from scratch.
    """

    def __init__(self, num_inputs: int, num_outputs: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(num_inputs, num_outputs) * sigma)  # (d, q)
        self.b = nn.Parameter(torch.zeros(num_outputs))  # (q,)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X.reshape(X.shape[0], -1)  # (n, d)
        return X @ self.W + self.b  # (n, q) logits


def sgd(params: Iterable[torch.Tensor], lr: float) -> Callable[[int], None]:
    """Minibatch SGD updater for summed losses: ``p -= lr * grad / batch_size``.

    Introduced in: Softmax regression from scratch.
    """
    params = list(params)

    def update(batch_size: int) -> None:
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad / batch_size
                p.grad.zero_()

    return update


def _device_of(net: Callable[..., torch.Tensor]) -> torch.device:
    if isinstance(net, nn.Module):
        for p in net.parameters():
            return p.device
    return torch.device("cpu")


def evaluate_accuracy(net: Callable[[torch.Tensor], torch.Tensor], data_iter: Iterable[Batch]) -> float:
    """Fraction of correct predictions of ``net`` over a dataset.

    Introduced in: Softmax regression from scratch.
    """
    if isinstance(net, nn.Module):
        net.eval()
    device = _device_of(net)
    metric = Accumulator(2)  # correct predictions, examples
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    if metric[1] == 0:
        raise ValueError("evaluate_accuracy got an empty dataset")
    return metric[0] / metric[1]


def train_epoch(
    net: Callable[[torch.Tensor], torch.Tensor],
    train_iter: Iterable[Batch],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    updater: Updater,
) -> tuple[float, float]:
    """One pass over ``train_iter``; returns (mean training loss, training accuracy).

    ``loss`` may return per-example losses ``(n,)`` or their mean. ``updater`` is a torch
    optimizer, or a callable taking the batch size (as returned by :func:`sgd`).
    Introduced in: Softmax regression from scratch.
    """
    if isinstance(net, nn.Module):
        net.train()
    device = _device_of(net)
    metric = Accumulator(3)  # summed loss, correct predictions, examples
    for X, y in train_iter:
        X, y = X.to(device), y.to(device)
        y_hat = net(X)  # (n, q)
        losses = loss(y_hat, y)
        per_example = losses.dim() > 0
        total = losses.sum() if per_example else losses * y.numel()
        if isinstance(updater, torch.optim.Optimizer):
            updater.zero_grad()
            (losses.mean() if per_example else losses).backward()
            updater.step()
        else:
            total.backward()
            updater(y.numel())
        metric.add(float(total.detach()), accuracy(y_hat.detach(), y), y.numel())
    if metric[2] == 0:
        raise ValueError("train_epoch got an empty dataset")
    return metric[0] / metric[2], metric[1] / metric[2]


@dataclass
class TrainHistory:
    """Per-epoch metrics recorded by :func:`train`."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)


def train(
    net: Callable[[torch.Tensor], torch.Tensor],
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    num_epochs: int,
    updater: Updater,
    plot: bool = True,
) -> TrainHistory:
    """Train for ``num_epochs`` with a progress bar and a live plot of the three curves.

    Introduced in: Softmax regression from scratch.
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    history = TrainHistory()
    figure = ProgressPlot(["train loss", "train acc", "test acc"], xlim=(1, num_epochs)) if plot else None
    bar = tqdm(range(1, num_epochs + 1), desc="training", unit="epoch")
    for epoch in bar:
        train_loss, train_acc = train_epoch(net, train_iter, loss, updater)
        test_acc = evaluate_accuracy(net, test_iter)
        history.train_loss.append(train_loss)
        history.train_acc.append(train_acc)
        history.test_acc.append(test_acc)
        bar.set_postfix(loss=f"{train_loss:.3f}", train_acc=f"{train_acc:.3f}", test_acc=f"{test_acc:.3f}")
        if figure is not None:
            figure.add(epoch, [train_loss, train_acc, test_acc])
    if figure is not None:
        figure.close()
    return history


def predict(
    net: Callable[[torch.Tensor], torch.Tensor],
    test_iter: Iterable[Batch],
    class_names: Sequence[str],
    n: int = 8,
):
    """Show the first ``n`` test images titled with true and predicted labels.

    Returns the figure. Introduced in: Softmax regression from scratch.
    """
    X, y = next(iter(test_iter))
    X, y = X[:n], y[:n]
    if isinstance(net, nn.Module):
        net.eval()
    with torch.no_grad():
        preds = net(X.to(_device_of(net))).argmax(dim=1).cpu()  # (n,)
    titles = [
        f"{class_names[int(t)]}\n{'✓' if int(t) == int(p) else '✗'} {class_names[int(p)]}"
        for t, p in zip(y, preds, strict=True)
    ]
    return show_images(X, 1, n, titles=titles)
