"""Trusted measurements of what a notebook trained, taken by the grader, not the kernel.

A threshold on training quality must not trust a number the student's run reports: every
function in the student's kernel, ``evaluate_accuracy`` included, can be replaced by an
answer cell. A test cell instead records the trained *parameters*::

    check("train/model", [net.W, net.b], measure="linear_image_accuracy", at_least=0.85)

and the grader computes the test accuracy itself, from those arrays and its own copy of
the test images. Which measure applies, and its arguments (``measure_args``), are read
from the solution's run, like every other criterion. For images the dataset follows from
the input size: 64 pixels are scikit-learn's 8x8 digits, 784 are Fashion-MNIST (from the
grader's data cache). The RNN's text and the Transformer's English-French pairs are the
offline ones their assignments grade on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

NUM_CLASSES = 10
# Bounds on the models a measure evaluates: the grader computes with whatever a submission
# records, so a huge network must be refused, not run (the assignments use far less).
MAX_WIDTH, MAX_LAYERS = 1024, 12
MAX_RNN_HIDDEN, MAX_RNN_LAYERS = 256, 3


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


def _arrays(params: list) -> list[np.ndarray]:
    """The recorded parameters, each a floating-point array."""
    if not all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in params):
        raise MeasureError("expected floating point parameter tensors only")
    return params


def _layers(params: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (W, b) of a chain of linear layers: ``W`` (inputs, outputs), ``b`` (outputs,)."""
    params = _arrays(params)
    if not params or len(params) % 2:
        raise MeasureError(f"expected weights and biases in pairs, got {len(params)} arrays")
    layers = list(zip(params[::2], params[1::2], strict=True))
    if len(layers) > MAX_LAYERS:
        raise MeasureError(f"{len(layers)} layers: at most {MAX_LAYERS} are evaluated")
    width = layers[0][0].shape[0] if layers[0][0].ndim == 2 else None
    for i, (W, b) in enumerate(layers):
        if W.ndim != 2 or b.ndim != 1 or W.shape[0] != width or W.shape[1] != b.shape[0] or W.shape[1] > MAX_WIDTH:
            raise MeasureError(f"layer {i}: weight {W.shape} and bias {b.shape} do not chain")
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


@functools.cache
def _python_docs_validation() -> tuple[int, np.ndarray]:
    """(vocabulary size, validation token ids) of the offline text the RNN assignment grades on."""
    from lib.text import load_text_data

    data = load_text_data(source="offline")
    return len(data.vocab), data.val.numpy()


def char_rnn_perplexity(params: list[np.ndarray], characters: int | None = None) -> float:
    """Validation perplexity of a character RNN, computed with ``torch.nn.RNN`` (tanh):
    ``params`` are an ``nn.RNN``'s parameters in their order (``W_ih, W_hh, b_ih, b_hh``
    per layer) and then the output layer's ``W (vocab, hidden)`` and ``b (vocab,)``. The
    text is the first ``characters`` of the offline validation text, read as the RNN
    assignment's ``validation_perplexity`` reads it: 32 rows, 64 steps at a time, the
    state carried."""
    import torch
    from torch.nn import functional as F

    vocab_size, tokens = _python_docs_validation()
    params = _arrays(params)
    if len(params) < 6 or (len(params) - 2) % 4:
        raise MeasureError(f"expected 4 arrays per RNN layer and 2 for the output layer, got {len(params)}")
    num_layers, W_out = (len(params) - 2) // 4, params[-2]  # (vocab, hidden)
    hidden = W_out.shape[-1] if W_out.ndim == 2 else 0
    if not 0 < hidden <= MAX_RNN_HIDDEN or num_layers > MAX_RNN_LAYERS:
        raise MeasureError(f"{num_layers} layers of {hidden} units: at most {MAX_RNN_LAYERS} layers of "
                           f"{MAX_RNN_HIDDEN} units are evaluated")
    rnn = torch.nn.RNN(vocab_size, hidden, num_layers, nonlinearity="tanh", batch_first=True)
    head = torch.nn.Linear(hidden, vocab_size)
    expected = [p.shape for p in rnn.parameters()] + [head.weight.shape, head.bias.shape]
    if [tuple(a.shape) for a in params] != [tuple(s) for s in expected]:
        raise MeasureError(f"parameter shapes {[tuple(a.shape) for a in params]} are not those of "
                           f"{num_layers} RNN layers of {hidden} units over {vocab_size} characters")
    with torch.no_grad():
        for target, array in zip([*rnn.parameters(), head.weight, head.bias], params, strict=True):
            target.copy_(torch.from_numpy(np.asarray(array, dtype=np.float32)))
        text = torch.from_numpy(tokens[:characters] if characters else tokens)
        rows, row_len = 32, (len(text) - 1) // 32
        X = text[: rows * row_len].reshape(rows, row_len)
        Y = text[1: rows * row_len + 1].reshape(rows, row_len)
        h, total = None, 0.0
        for t in range(0, row_len, 64):
            output, h = rnn(F.one_hot(X[:, t: t + 64], vocab_size).float(), h)  # (32, steps, hidden)
            logits = head(output)  # (32, steps, vocab)
            total += float(F.cross_entropy(logits.reshape(-1, vocab_size), Y[:, t: t + 64].reshape(-1), reduction="sum"))
    perplexity = float(np.exp(total / Y.numel()))
    return perplexity if np.isfinite(perplexity) else float("inf")


@functools.cache
def _translation(num_train: int, num_test: int, num_steps: int, batch_size: int):
    from lib.translation import load_translation

    return load_translation(batch_size=batch_size, num_steps=num_steps, num_train=num_train,
                            num_test=num_test, source="offline")


def transformer_bleu(params: list, num_train: int, num_test: int = 300, num_steps: int = 12, batch_size: int = 64,
                     num_hiddens: int = 32, ffn_num_hiddens: int = 64, num_heads: int = 4, num_blks: int = 2) -> float:
    """Mean BLEU (k=2) of greedy translations of the held-out pairs of the offline English-French
    corpus by :class:`lib.transformer.Transformer` holding the recorded parameters.

    ``params``: ``[name, tensor]`` pairs as ``model.named_parameters()`` gives them; the
    Transformer assignment's tests fix those names (``encoder.blks.0.attention.W_q.weight``,
    ...), which are lib's too. The corpus is rebuilt with the notebook's arguments.
    """
    import torch

    from lib.transformer import Transformer, TransformerConfig, evaluate_bleu

    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in params):
        raise MeasureError("expected [name, tensor] pairs, as model.named_parameters() gives them")
    named = dict(zip([n for n, _ in params], _arrays([a for _, a in params]), strict=True))
    data = _translation(num_train, num_test, num_steps, batch_size)
    config = TransformerConfig(num_hiddens=num_hiddens, ffn_num_hiddens=ffn_num_hiddens, num_heads=num_heads,
                               num_blks=num_blks)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), config)
    expected = {name: tuple(p.shape) for name, p in model.named_parameters()}
    got = {name: tuple(a.shape) for name, a in named.items()}
    if got != expected:
        missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
        wrong = sorted(n for n in expected.keys() & got.keys() if expected[n] != got[n])
        raise MeasureError(f"not the assignment's model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                           f"wrong shapes {wrong[:3]}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(named[name], dtype=np.float32)))
    return evaluate_bleu(model, data.test_pairs, data)


MEASURES: dict[str, Callable[..., float]] = {
    "linear_image_accuracy": linear_image_accuracy,
    "standardized_relu_mlp_accuracy": standardized_relu_mlp_accuracy,
    "char_rnn_perplexity": char_rnn_perplexity,
    "transformer_bleu": transformer_bleu,
}
