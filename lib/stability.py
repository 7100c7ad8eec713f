"""Vanishing and exploding gradients: deep MLPs, probes of their layers, and training.

Introduced in the chapter *Vanishing and exploding gradients, the Glorot condition*
(chapters/stability). The module holds:

- A deep MLP builder configured by :class:`MLPConfig`, initialised by torch's defaults, a
  plain normal distribution or the from-scratch initialisers of :mod:`lib.init`.
- Probes: per-layer gradients and their norms after one backward pass, per-layer variance
  of the activations (forward) and of the gradients (backward), and the norms of products
  of random matrices.
- Training on standardised images that records per-layer gradients along the way.

The chapter's plots of these measurements are in :mod:`lib.gradient_plots`.
References: X. Glorot and Y. Bengio, *Understanding the difficulty of training deep
feedforward neural networks* (AISTATS 2010); K. He et al., *Delving deep into
rectifiers* (ICCV 2015).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lib.data import ImageData
from lib.init import kaiming_normal_, xavier_normal_, xavier_uniform_
from lib.softmax import TrainHistory, evaluate_accuracy, train_epoch

ACTIVATIONS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
INITS = ("default", "normal", "xavier_uniform", "xavier_normal", "kaiming_normal")


# --------------------------------------------------------------------------- deep MLP
@dataclass
class MLPConfig:
    """A deep MLP: ``num_layers`` hidden layers of ``num_hiddens`` units, then a linear output."""

    num_inputs: int = 64
    num_hiddens: int = 64
    num_layers: int = 10  # hidden layers; the net has num_layers + 1 linear layers
    num_outputs: int = 10
    activation: str = "sigmoid"  # "sigmoid" | "tanh" | "relu"
    init: str = "default"  # one of INITS; "default" keeps torch's nn.Linear initialisation
    sigma: float = 0.01  # standard deviation of the weights when init == "normal"
    gain: float = 1.0  # Xavier gain (kaiming_normal_ always uses the ReLU gain sqrt(2))
    seed: int = 0


def deep_mlp(config: MLPConfig) -> nn.Sequential:
    """Flatten, ``num_layers`` x (Linear, activation), Linear, initialised as ``config`` says.

    Biases start at zero unless ``init == "default"`` (torch's own initialisation, drawn
    after ``torch.manual_seed(config.seed)``). Introduced in: Vanishing and exploding gradients.
    """
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {config.activation!r}")
    if config.init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {config.init!r}")
    if min(config.num_inputs, config.num_hiddens, config.num_outputs, config.num_layers) < 1:
        raise ValueError(f"sizes and num_layers must be >= 1, got {config}")
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # for torch's own default initialisation
    widths = [config.num_inputs] + [config.num_hiddens] * config.num_layers
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), ACTIVATIONS[config.activation]()]
    layers.append(nn.Linear(widths[-1], config.num_outputs))
    net = nn.Sequential(*layers)
    if config.init != "default":
        for layer in linear_layers(net):
            w = layer.weight  # (out, in)
            if config.init == "normal":
                with torch.no_grad():
                    w.normal_(0.0, config.sigma, generator=generator)
            elif config.init == "xavier_uniform":
                xavier_uniform_(w, config.gain, generator)
            elif config.init == "xavier_normal":
                xavier_normal_(w, config.gain, generator)
            else:
                kaiming_normal_(w, nonlinearity="relu", generator=generator)
            nn.init.zeros_(layer.bias)
    return net


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``net`` in the order ``net.modules()`` lists them.

    Introduced in: Vanishing and exploding gradients.
    """
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("the network has no nn.Linear layer")
    return layers


# --------------------------------------------------------------------------- probes
def layer_gradients(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Flattened weight gradients (on the CPU) of every linear layer after one backward pass.

    The loss is the mean cross-entropy of ``net(X)`` ``(n, q)`` against labels ``y``
    ``(n,)``; old gradients are cleared first, so calling twice gives the same result.
    Introduced in: Vanishing and exploding gradients (gradients per layer).
    """
    X, y = _on_device_of(net, X, y)
    layers = linear_layers(net)
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(X), y).backward()
    return [layer.weight.grad.detach().flatten().cpu().clone() for layer in layers]  # (out * in,)


def layer_gradient_norms(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each linear layer's weight gradient, ``(num_linear_layers,)`` on the CPU.

    Introduced in: Vanishing and exploding gradients (gradients per layer).
    """
    return torch.stack([g.norm() for g in layer_gradients(net, X, y)])


def _on_device_of(net: nn.Module, X: torch.Tensor, y: torch.Tensor | None = None) -> tuple:
    if y is not None and X.shape[0] != y.shape[0]:
        raise ValueError(f"batch size mismatch: X has {X.shape[0]} rows, y has {y.shape[0]}")
    device = linear_layers(net)[0].weight.device
    return X.to(device), (None if y is None else y.to(device))


def _on_linear_outputs(net: nn.Module, record: Callable[[torch.Tensor], None]) -> list:
    return [layer.register_forward_hook(lambda _m, _i, out: record(out)) for layer in linear_layers(net)]


def activation_variances(net: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Variance (``correction=0``, over batch and units) of every linear layer's output.

    These are the pre-activations whose variance the Glorot and He conditions keep
    constant in the forward pass. Returns ``(num_linear_layers,)``.
    Introduced in: Vanishing and exploding gradients (Glorot condition).
    """
    X, _ = _on_device_of(net, X)
    outputs: list[torch.Tensor] = []
    handles = _on_linear_outputs(net, outputs.append)
    try:
        with torch.no_grad():
            net(X)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([o.var(correction=0) for o in outputs])


def gradient_variances(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Variance (``correction=0``) of the loss gradient w.r.t. every linear layer's output.

    The backward counterpart of :func:`activation_variances`; the loss is the *summed*
    cross-entropy, so the values do not depend on the batch size. ``(num_linear_layers,)``.
    Introduced in: Vanishing and exploding gradients (Glorot condition).
    """
    X, y = _on_device_of(net, X, y)
    outputs: list[torch.Tensor] = []

    def keep(out: torch.Tensor) -> None:
        out.retain_grad()
        outputs.append(out)

    handles = _on_linear_outputs(net, keep)
    try:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(X), y, reduction="sum").backward()
    finally:
        for h in handles:
            h.remove()
    return torch.stack([o.grad.var(correction=0) for o in outputs])


def product_norms(
    size: int, depth: int, scale: float = 1.0, trials: int = 1, seed: int = 0
) -> torch.Tensor:
    """``||W_k ... W_2 W_1 u||`` for ``k = 1..depth``: random ``(size, size)`` matrices with
    ``N(0, scale**2)`` entries applied to a random unit vector ``u``.

    This is the forward pass of a deep linear network (and, transposed, its backward
    pass). Returns ``(trials, depth)``. Introduced in: Vanishing and exploding gradients
    (products of random matrices).
    """
    if min(size, depth, trials) < 1:
        raise ValueError(f"size, depth and trials must be >= 1, got {size}, {depth}, {trials}")
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(trials, size, 1, generator=generator, dtype=torch.float64)  # (trials, size, 1)
    v = v / v.norm(dim=1, keepdim=True)
    norms = []
    for _ in range(depth):
        W = torch.randn(trials, size, size, generator=generator, dtype=torch.float64) * scale
        v = W @ v  # (trials, size, 1)
        norms.append(v.norm(dim=(1, 2)))
    return torch.stack(norms, dim=1)  # (trials, depth), float64: 1e-300 .. 1e300 fit


# --------------------------------------------------------------------------- training
def prepare_image_data(
    data: ImageData,
    standardize: bool = True,
    max_train: int | None = None,
    max_test: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """New loaders over (the first ``max_train`` / ``max_test`` examples of) ``data``.

    With ``standardize``, every pixel is shifted and scaled to mean 0 and variance 1 on
    the training examples kept (pixels that never vary, like the digits' corners, are
    only shifted). The limits keep the chapter's experiments equally fast on Fashion-MNIST
    and on the offline digits. Introduced in: Vanishing and exploding gradients.
    """
    X_train, y_train = (t[:max_train] for t in data.train.dataset.tensors)  # (n, C, H, W), (n,)
    X_test, y_test = (t[:max_test] for t in data.test.dataset.tensors)
    if standardize:
        mean = X_train.mean(dim=0, keepdim=True)  # (1, C, H, W)
        std = X_train.std(dim=0, keepdim=True)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant pixels: shift only
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    bs = batch_size or data.train.batch_size
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(X_train, y_train), bs, shuffle=True, generator=generator)
    test = DataLoader(TensorDataset(X_test, y_test), bs, shuffle=False)
    return ImageData(train, test, data.classes, data.name, data.source)


def train_recording(
    net: nn.Module,
    data: ImageData,
    num_epochs: int,
    lr: float,
    probe: tuple[torch.Tensor, torch.Tensor] | None = None,
    snapshot_epochs: Sequence[int] = (),
) -> tuple[TrainHistory, dict[int, list[torch.Tensor]]]:
    """Train with SGD on the mean cross-entropy; record accuracies and gradient snapshots.

    ``snapshots[e]`` holds :func:`layer_gradients` on the ``probe`` batch after ``e``
    epochs (``e = 0``: at initialisation). Introduced in: Vanishing and exploding gradients.
    """
    if num_epochs < 0:
        raise ValueError(f"num_epochs must be >= 0, got {num_epochs}")
    snapshots: dict[int, list[torch.Tensor]] = {}
    history = TrainHistory()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for epoch in range(num_epochs + 1):
        if epoch > 0:
            loss, acc = train_epoch(net, data.train, nn.CrossEntropyLoss(), optimizer)
            history.train_loss.append(loss)
            history.train_acc.append(acc)
            history.test_acc.append(evaluate_accuracy(net, data.test))
        if probe is not None and epoch in snapshot_epochs:
            snapshots[epoch] = layer_gradients(net, *probe)
    return history, snapshots
