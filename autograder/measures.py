"""Trusted measurements of what a notebook trained, taken by the grader, not the kernel.

A threshold on training quality must not trust a number the student's run reports: every
function in the student's kernel, ``evaluate_accuracy`` included, can be replaced by an
answer cell. A test cell instead records the trained *parameters*::

    check("train/model", [net.W, net.b], measure="linear_image_accuracy", at_least=0.85)

and the grader computes the test accuracy itself, from those arrays and its own copy of
the test images. Which measure applies is read from the solution's run, like every other
criterion. The dataset follows from the input size: 64 pixels are scikit-learn's 8x8
digits, 784 are Fashion-MNIST (from the grader's data cache).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

NUM_CLASSES = 10


class MeasureError(ValueError):
    """The recorded parameters are not a model this measure can evaluate."""


@functools.cache
def _images(num_inputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) flattened, as ``lib.data.load_image_data`` serves them."""
    from lib.data import digits_tensors, fashion_mnist_tensors

    if num_inputs == 64:
        tensors = digits_tensors()
    elif num_inputs == 784:
        tensors = fashion_mnist_tensors(download=False)
    else:
        raise MeasureError(f"a model of {num_inputs} inputs: expected 64 (digits) or 784 (Fashion-MNIST)")
    X_train, y_train, X_test, y_test = (t.numpy() for t in tensors)
    return X_train.reshape(len(X_train), -1), y_train, X_test.reshape(len(X_test), -1), y_test


def _layers(params: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (W, b) of a chain of linear layers: ``W`` (inputs, outputs), ``b`` (outputs,)."""
    if not params or len(params) % 2:
        raise MeasureError(f"expected weights and biases in pairs, got {len(params)} arrays")
    layers = list(zip(params[::2], params[1::2], strict=True))
    width = layers[0][0].shape[0] if layers[0][0].ndim == 2 else None
    for i, (W, b) in enumerate(layers):
        if W.ndim != 2 or b.ndim != 1 or W.shape[0] != width or W.shape[1] != b.shape[0] or W.shape[1] > 4096:
            raise MeasureError(f"layer {i}: weight {W.shape} and bias {b.shape} do not chain")
        if W.dtype.kind != "f" or b.dtype.kind != "f":
            raise MeasureError(f"layer {i}: parameters must be floating point")
        width = W.shape[1]
    if width != NUM_CLASSES:
        raise MeasureError(f"the last layer has {width} outputs, expected {NUM_CLASSES}")
    return layers


def _accuracy(layers: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray, y: np.ndarray) -> float:
    H = X.astype(np.float64)  # (n, d)
    for i, (W, b) in enumerate(layers):
        H = H @ W.astype(np.float64) + b.astype(np.float64)  # (n, width)
        if i < len(layers) - 1:
            H = np.maximum(H, 0.0)
    if not np.isfinite(H).all():
        return 0.0
    return float((H.argmax(axis=1) == y).mean())


def linear_image_accuracy(params: list[np.ndarray]) -> float:
    """Test accuracy of softmax regression ``argmax(X W + b)`` on raw pixels in [0, 1]
    (the softmax assignment: ``[W (d, 10), b (10,)]``)."""
    layers = _layers(params)
    if len(layers) != 1:
        raise MeasureError(f"expected one linear layer, got {len(layers)}")
    _, _, X_test, y_test = _images(layers[0][0].shape[0])
    return _accuracy(layers, X_test, y_test)


def standardized_relu_mlp_accuracy(params: list[np.ndarray]) -> float:
    """Test accuracy of a ReLU MLP ``[W1, b1, ..., Wn, bn]`` (``W`` as ``(inputs, outputs)``)
    on pixels standardised with the first 10,000 training images, over the first 2,000
    test images (the stability assignment's deep network)."""
    layers = _layers(params)
    X_train, _, X_test, y_test = _images(layers[0][0].shape[0])
    X_train, X_test, y_test = X_train[:10000], X_test[:2000], y_test[:2000]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0, ddof=1)
    std = np.where(std > 1e-6, std, 1.0)  # constant pixels: only centred
    return _accuracy(layers, (X_test - mean) / std, y_test)


MEASURES: dict[str, Callable[[list[np.ndarray]], float]] = {
    "linear_image_accuracy": linear_image_accuracy,
    "standardized_relu_mlp_accuracy": standardized_relu_mlp_accuracy,
}
