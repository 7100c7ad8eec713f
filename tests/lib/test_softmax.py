"""lib.softmax against torch.nn.functional, torch.nn and d2l on the same inputs and weights."""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lib.softmax as S

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (rtol, atol): about two units in the last place of each dtype.
TOL = {
    torch.float32: (1e-5, 1e-6),
    torch.float64: (1e-10, 1e-12),
    torch.float16: (2e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


def close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)


def random_logits(seed: int, dtype: torch.dtype, rank: int | None = None) -> torch.Tensor:
    """Logits of a random shape (rank 1-4, sizes 1-8) and a random scale in [1e-2, 1e4]."""
    g = torch.Generator().manual_seed(seed)
    if rank is None:
        rank = int(torch.randint(1, 5, (1,), generator=g))
    shape = [int(s) for s in torch.randint(1, 9, (rank,), generator=g)]
    scale = 10 ** float(torch.empty(()).uniform_(-2, 4, generator=g))
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def extreme_logits(dtype: torch.dtype) -> torch.Tensor:
    """Rows whose naive softmax overflows or underflows, mixed scales, all-equal rows."""
    X = torch.tensor(
        [
            [1e4, -1e4, 0.0, 5.0],
            [-1e4, -1e4, -1e4, -1e4],  # all equal, very negative: naive exp underflows to 0/0
            [1e4, 1e4, 1e4, 1e4],  # all equal, very large: naive exp overflows to inf/inf
            [1e-3, 2e-3, -1e-3, 0.0],  # tiny scale
            [3.0, 3.0, 3.0, 3.0],
            [1e4, 9e3, -5.0, 2.0],
            [-1e4, 1e4, -1e4, 1e4],
        ],
        dtype=torch.float64,
    )
    return X.to(dtype)


# --------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", range(8))
def test_softmax_and_log_softmax_match_torch_on_random_shapes(seed, dtype):
    X = random_logits(seed, dtype)
    before = X.clone()
    P, L = S.softmax(X), S.log_softmax(X)
    assert torch.equal(X, before), "the input was modified"
    for out in (P, L):
        assert out.shape == X.shape and out.dtype == dtype and out.device == X.device
        assert out.data_ptr() != X.data_ptr()
    close(P, F.softmax(X, dim=-1), dtype)
    close(L, F.log_softmax(X, dim=-1), dtype)
    # and against an exact float64 reference on the same (rounded) inputs
    close(P, F.softmax(X.double(), dim=-1), dtype)
    close(L, F.log_softmax(X.double(), dim=-1), dtype)
    close(P.double().sum(-1), torch.ones(X.shape[:-1], dtype=torch.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_is_stable_for_extreme_logits(dtype):
    X = extreme_logits(dtype)
    assert torch.isinf(X.float().exp()).any(), "the test must reach the overflow regime"
    before = X.clone()
    P, L = S.softmax(X), S.log_softmax(X)
    assert torch.equal(X, before)
    assert torch.isfinite(P).all() and torch.isfinite(L).all()
    close(P, F.softmax(X.double(), dim=-1), dtype)
    close(L, F.log_softmax(X.double(), dim=-1), dtype)
    close(P, F.softmax(X, dim=-1), dtype)
    # all-equal rows are exactly uniform, whatever their magnitude
    for row in (1, 2, 4):
        assert torch.equal(P[row], torch.full((4,), 0.25, dtype=dtype))
    assert P[0, 0] == 1 and P[0, 1] == 0
    assert L[0, 1].item() == pytest.approx(-2e4, rel=TOL[dtype][0])


def test_softmax_over_last_dimension_of_batched_input():
    X = random_logits(3, torch.float64, rank=3)
    P = S.softmax(X)
    for i in range(X.shape[0]):
        torch.testing.assert_close(P[i], F.softmax(X[i], dim=-1))


def test_softmax_gradient_matches_torch():
    X = random_logits(11, torch.float64, rank=2).requires_grad_()
    w = torch.randn(X.shape, dtype=torch.float64)
    (gx,) = torch.autograd.grad((S.log_softmax(X) * w).sum(), X)
    (gt,) = torch.autograd.grad((F.log_softmax(X, dim=-1) * w).sum(), X)
    torch.testing.assert_close(gx, gt)


@pytest.mark.parametrize("fn", [S.softmax, S.log_softmax])
def test_softmax_rejects_bad_inputs(fn):
    with pytest.raises(ValueError, match="floating dtype.*torch.int64"):
        fn(torch.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match="torch.Tensor.*list"):
        fn([[1.0, 2.0]])


# --------------------------------------------------------------------------- cross-entropy


def random_problem(seed: int, dtype: torch.dtype, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    n, q = (int(v) for v in torch.randint(1, 17, (2,), generator=g))
    logits = (torch.randn(n, q, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, q, (n,), generator=g)
    return logits, y


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", range(6))
def test_cross_entropy_matches_torch(seed, dtype):
    logits, y = random_problem(seed, dtype)
    before_logits, before_y = logits.clone(), y.clone()
    loss = S.cross_entropy(logits, y)
    assert torch.equal(logits, before_logits) and torch.equal(y, before_y)
    assert loss.shape == (logits.shape[0],) and loss.dtype == dtype and loss.device == logits.device
    close(loss, F.cross_entropy(logits, y, reduction="none"), dtype)
    close(loss, F.cross_entropy(logits.double(), y, reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_is_finite_and_exact_for_huge_logits(dtype):
    X = extreme_logits(dtype)
    y = torch.tensor([1, 0, 3, 2, 1, 3, 0])  # includes the -1e4 entries: losses of 2e4
    naive = -torch.log(F.softmax(X.float(), dim=-1).gather(1, y[:, None]).squeeze(1))
    assert torch.isinf(naive).any(), "log(softmax) overflows here; cross_entropy must not"
    loss = S.cross_entropy(X, y)
    assert torch.isfinite(loss).all()
    close(loss, F.cross_entropy(X, y, reduction="none"), dtype)
    close(loss, F.cross_entropy(X.double(), y, reduction="none"), dtype)
    assert loss[0].item() == pytest.approx(2e4, rel=TOL[dtype][0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_cross_entropy_gradient_matches_torch_and_is_finite(dtype):
    X = extreme_logits(dtype)
    y = torch.arange(X.shape[0]) % 4
    X1, X2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    S.cross_entropy(X1, y).sum().backward()
    F.cross_entropy(X2, y, reduction="sum").backward()
    assert torch.isfinite(X1.grad).all()
    close(X1.grad, X2.grad, dtype)


@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32, torch.int16, torch.uint8], ids=str)
def test_cross_entropy_accepts_any_integer_label_dtype(label_dtype):
    logits, y = random_problem(4, torch.float32)
    expected = F.cross_entropy(logits, y, reduction="none")
    torch.testing.assert_close(S.cross_entropy(logits, y.to(label_dtype)), expected)


def test_cross_entropy_rejects_bad_arguments():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"shape \(n, q\).*\(2, 4, 3\)"):
        S.cross_entropy(torch.randn(2, 4, 3), y)
    with pytest.raises(ValueError, match="at least 2 dimension"):
        S.cross_entropy(torch.randn(3), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch size mismatch: 4 rows of logits but 3 labels"):
        S.cross_entropy(logits, y[:3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*\[0, 3\]"):
        S.cross_entropy(logits, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*\[-1, 2\]"):
        S.cross_entropy(logits, torch.tensor([0, -1, 2, 0]))
    with pytest.raises(ValueError, match="1-D tensor of class indices"):
        S.cross_entropy(logits, y[:, None])
    with pytest.raises(ValueError, match="integer dtype.*float32"):
        S.cross_entropy(logits, y.float())
    with pytest.raises(ValueError, match="integer dtype.*bool"):
        S.cross_entropy(logits, y > 0)
    with pytest.raises(ValueError, match="floating dtype.*int64"):
        S.cross_entropy(torch.ones(4, 3, dtype=torch.int64), y)


# --------------------------------------------------------------------------- accuracy, Accumulator


def test_accuracy_counts_correct_predictions_as_float():
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = torch.tensor([1, 1, 1, 0])
    count = S.accuracy(y_hat, y)
    assert type(count) is float and count == 3.0
    assert S.accuracy(torch.tensor([1, 0, 0, 0]), y) == 2.0  # already predicted labels
    assert S.accuracy(y_hat, y.int()) == 3.0


def test_accuracy_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"y_hat must be \(n, q\) scores or \(n,\) labels"):
        S.accuracy(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="y must be .* n = 3"):
        S.accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="y must be"):
        S.accuracy(torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.long))


def test_accumulator():
    acc = S.Accumulator(3)
    acc.add(1, 2.5, torch.tensor(3))
    acc.add(1, 0.5, 2)
    assert acc.data == [2.0, 3.0, 5.0] and all(type(v) is float for v in acc.data)
    assert acc[1] == 3.0
    with pytest.raises(ValueError, match="expected 3 values, got 2"):
        acc.add(1, 2)
    acc.reset()
    assert acc.data == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="n >= 1"):
        S.Accumulator(0)


# --------------------------------------------------------------------------- against d2l


@pytest.fixture(scope="module")
def d2l():
    return pytest.importorskip("d2l.torch")


def test_accuracy_and_accumulator_match_d2l(d2l):
    g = torch.Generator().manual_seed(0)
    ours, theirs = S.Accumulator(2), d2l.Accumulator(2)
    for _ in range(5):
        n, q = int(torch.randint(1, 20, (1,), generator=g)), int(torch.randint(2, 8, (1,), generator=g))
        y_hat, y = torch.randn(n, q, generator=g), torch.randint(0, q, (n,), generator=g)
        assert S.accuracy(y_hat, y) == d2l.accuracy(y_hat, y)
        assert S.accuracy(y_hat, y) == float(d2l.Classifier.accuracy(None, y_hat, y, averaged=False).sum())
        ours.add(S.accuracy(y_hat, y), n)
        theirs.add(d2l.accuracy(y_hat, y), n)
    assert ours.data == theirs.data


def test_cross_entropy_and_softmax_match_d2l(d2l):
    for seed in range(4):
        logits, y = random_problem(seed, torch.float32)
        expected = d2l.Classifier.loss(None, logits, y, averaged=False)
        torch.testing.assert_close(S.cross_entropy(logits, y), expected)
        X = random_logits(seed, torch.float32, rank=3)
        # d2l's masked_softmax writes into its argument, so give it a copy
        torch.testing.assert_close(S.softmax(X), d2l.masked_softmax(X.clone(), None))
        full = torch.full((X.shape[0],), X.shape[-1])
        torch.testing.assert_close(S.softmax(X), d2l.masked_softmax(X.clone(), full))


def test_model_matches_nn_linear_and_d2l_on_same_weights(d2l):
    torch.manual_seed(0)
    net = S.SoftmaxRegression(12, 5, sigma=0.5)
    with torch.no_grad():
        net.b.normal_()
    X = torch.rand(7, 1, 3, 4)
    out = net(X)
    assert out.shape == (7, 5)
    linear = nn.Linear(12, 5)
    theirs = d2l.SoftmaxRegression(num_outputs=5, lr=0.1)
    theirs(X)  # materialise the lazy layer
    with torch.no_grad():
        for layer in (linear, theirs.net[1]):
            layer.weight.copy_(net.W.T)
            layer.bias.copy_(net.b)
    torch.testing.assert_close(out, linear(X.reshape(7, -1)))
    torch.testing.assert_close(out, theirs(X))


def test_sgd_matches_d2l(d2l):
    torch.manual_seed(0)
    ours = [torch.randn(3, 2, requires_grad=True), torch.randn(2, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    X = torch.randn(6, 3)
    for params in (ours, theirs):
        ((X @ params[0] + params[1]) ** 2).sum().backward()
    S.sgd(ours, lr=0.1)(6)
    d2l.sgd(theirs, 0.1, 6)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
        assert torch.count_nonzero(a.grad) == 0, "sgd must zero the gradients"


def test_evaluate_accuracy_matches_d2l(d2l):
    X, y = blobs(seed=3)
    torch.manual_seed(1)
    net = S.SoftmaxRegression(2, 4, sigma=1.0)
    loader = DataLoader(TensorDataset(X, y), batch_size=7)
    assert S.evaluate_accuracy(net, loader) == pytest.approx(d2l.evaluate_accuracy_gpu(net, loader))


# --------------------------------------------------------------------------- training


def blobs(n_per_class: int = 16, seed: int = 0):
    """Four well-separated 2-D Gaussian blobs: a linearly separable 4-class problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    X = centers.repeat_interleave(n_per_class, 0) + 0.5 * torch.randn(4 * n_per_class, 2, generator=g)
    y = torch.arange(4).repeat_interleave(n_per_class)
    return X, y


def loader(X, y, batch_size=16, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size, shuffle=shuffle, generator=g)


def full_loss(net, X, y) -> float:
    with torch.no_grad():
        return F.cross_entropy(net(X), y).item()


@pytest.mark.parametrize("updater", ["sgd", "optimizer"])
@pytest.mark.parametrize("loss", [S.cross_entropy, nn.CrossEntropyLoss()], ids=["per-example", "mean"])
def test_train_epoch_reduces_loss_on_separable_problem(updater, loss):
    X, y = blobs()
    torch.manual_seed(0)
    net = S.SoftmaxRegression(2, 4)
    update = S.sgd(net.parameters(), lr=0.3) if updater == "sgd" else torch.optim.SGD(net.parameters(), lr=0.3)
    before = full_loss(net, X, y)
    assert before == pytest.approx(math.log(4), rel=0.05)  # small initial weights: uniform
    reported = [S.train_epoch(net, loader(X, y, seed=e), loss, update) for e in range(5)]
    after = full_loss(net, X, y)
    assert after < 0.3 * before
    assert reported[-1][0] < reported[0][0]
    assert reported[-1][1] >= 0.95
    assert S.evaluate_accuracy(net, loader(X, y, shuffle=False)) >= 0.95


def test_train_epoch_reports_mean_loss_and_accuracy_exactly():
    # lr = 0 leaves the model unchanged, so the epoch metrics must equal full-data metrics.
    X, y = blobs(seed=5)
    torch.manual_seed(2)
    net = S.SoftmaxRegression(2, 4, sigma=0.3)
    expected_loss = full_loss(net, X, y)
    expected_acc = S.accuracy(net(X), y) / len(y)
    for loss in (S.cross_entropy, nn.CrossEntropyLoss()):
        train_loss, train_acc = S.train_epoch(net, loader(X, y, batch_size=10), loss, S.sgd(net.parameters(), 0.0))
        assert train_loss == pytest.approx(expected_loss, rel=1e-5)
        assert train_acc == pytest.approx(expected_acc)


def test_all_updaters_and_loss_forms_take_the_same_steps():
    """Summed loss + lib sgd == mean loss + lib sgd == mean loss + torch.optim.SGD."""
    X, y = blobs(seed=7)
    finals = []
    for loss, make_updater in [
        (S.cross_entropy, lambda p: S.sgd(p, 0.2)),
        (nn.CrossEntropyLoss(), lambda p: S.sgd(p, 0.2)),
        (S.cross_entropy, lambda p: torch.optim.SGD(p, lr=0.2)),
        (nn.CrossEntropyLoss(), lambda p: torch.optim.SGD(p, lr=0.2)),
    ]:
        torch.manual_seed(3)
        net = S.SoftmaxRegression(2, 4)
        updater = make_updater(net.parameters())
        for epoch in range(2):
            S.train_epoch(net, loader(X, y, batch_size=12, seed=epoch), loss, updater)
        finals.append(torch.cat([net.W.detach().flatten(), net.b.detach()]))
    for other in finals[1:]:
        torch.testing.assert_close(other, finals[0])


def test_train_epoch_and_evaluate_reject_empty_data():
    net = S.SoftmaxRegression(2, 4)
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        S.train_epoch(net, empty, S.cross_entropy, S.sgd(net.parameters(), 0.1))
    with pytest.raises(ValueError, match="empty"):
        S.evaluate_accuracy(net, empty)


def test_evaluate_accuracy_is_a_fraction_over_uneven_batches():
    # predictions = first feature; 5 of 7 labels agree, in batches of 3, 3, 1
    X = torch.tensor([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0], [1.0]])
    y = torch.tensor([0, 1, 2, 1, 1, 2, 0])
    net = lambda X: F.one_hot(X[:, 0].long(), 3).float()
    data = DataLoader(TensorDataset(X, y), batch_size=3)
    assert S.evaluate_accuracy(net, data) == pytest.approx(5 / 7)


def test_evaluate_accuracy_puts_a_module_in_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.9))
    X, y = blobs()
    data = loader(X, y, shuffle=False)
    first = S.evaluate_accuracy(net, data)
    assert not net.training
    assert S.evaluate_accuracy(net, data) == first  # dropout is off: deterministic


class PlotSpy(S.ProgressPlot):
    instances: list[PlotSpy] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        PlotSpy.instances.append(self)


def test_train_returns_history_and_draws_curves_headless(monkeypatch):
    PlotSpy.instances = []
    monkeypatch.setattr(S, "ProgressPlot", PlotSpy)
    X, y = blobs()
    Xt, yt = blobs(seed=1)
    torch.manual_seed(0)
    net = S.SoftmaxRegression(2, 4)
    figures_before = set(plt.get_fignums())
    history = S.train(net, loader(X, y), loader(Xt, yt, shuffle=False), S.cross_entropy, 3,
                      S.sgd(net.parameters(), 0.3))
    assert isinstance(history, S.TrainHistory)
    assert len(history.train_loss) == len(history.train_acc) == len(history.test_acc) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc[-1] == S.evaluate_accuracy(net, loader(Xt, yt, shuffle=False))
    (plot,) = PlotSpy.instances
    assert plot.xs == [1.0, 2.0, 3.0]
    assert plot.ys == [history.train_loss, history.train_acc, history.test_acc]
    assert [len(line.get_xdata()) for line in plot.ax.get_lines()] == [3, 3, 3]
    assert set(plt.get_fignums()) == figures_before, "train must close its figure"
    png = io.BytesIO()
    plot.fig.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_train_without_plot_and_bad_epochs(monkeypatch):
    PlotSpy.instances = []
    monkeypatch.setattr(S, "ProgressPlot", PlotSpy)
    X, y = blobs()
    net = S.SoftmaxRegression(2, 4)
    history = S.train(net, loader(X, y), loader(X, y), S.cross_entropy, 2, S.sgd(net.parameters(), 0.1),
                      plot=False)
    assert len(history.test_acc) == 2 and PlotSpy.instances == []
    with pytest.raises(ValueError, match="num_epochs must be >= 1, got 0"):
        S.train(net, loader(X, y), loader(X, y), S.cross_entropy, 0, S.sgd(net.parameters(), 0.1))


def test_predict_returns_a_figure_titled_with_labels():
    X = torch.rand(5, 1, 6, 6)
    X[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    y = torch.tensor([0, 1, 1, 0, 2])
    net = lambda X: F.one_hot(X[:, 0, 0, 0].long(), 3).float()  # predicts the top-left pixel
    names = ["zero", "one", "two"]
    fig = S.predict(net, DataLoader(TensorDataset(X, y), batch_size=4), names, n=3)
    try:
        assert isinstance(fig, plt.Figure)
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["zero\n✓ zero", "one\n✓ one", "one\n✗ two"]
        torch.testing.assert_close(torch.as_tensor(fig.axes[2].get_images()[0].get_array()), X[2, 0])
    finally:
        plt.close(fig)


def test_train_runs_a_single_epoch():
    X, y = blobs()
    torch.manual_seed(0)
    net = S.SoftmaxRegression(2, 4)
    history = S.train(net, loader(X, y), loader(X, y, shuffle=False), S.cross_entropy, 1,
                      S.sgd(net.parameters(), 0.3), plot=False)
    assert len(history.train_loss) == len(history.train_acc) == 1
    assert history.test_acc == [S.evaluate_accuracy(net, loader(X, y, shuffle=False))]


def test_accumulator_of_one_quantity():
    acc = S.Accumulator(1)
    acc.add(2)
    acc.add(torch.tensor(0.5))
    assert acc.data == [2.5] and acc[0] == 2.5
