"""autograder/measures.py: training quality measured by the grader from recorded parameters."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

from autograder.measures import MeasureError, linear_image_accuracy, standardized_relu_mlp_accuracy
from autograder.records import CheckResult, compare
from lib.data import load_image_data
from tests.autograder.test_steps import ref, tensor


def torch_accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(X).argmax(dim=1) == y).float().mean())


@pytest.fixture(scope="module")
def digits():
    data = load_image_data(batch_size=64, source="offline", seed=0)
    return data.train.dataset.tensors, data.test.dataset.tensors


def least_squares_classifier(digits) -> tuple[torch.Tensor, torch.Tensor]:
    """A real linear classifier of the digits (one-hot least squares): W (64, 10), b (10,)."""
    (X, y), _ = digits
    A = torch.cat([X.reshape(len(X), -1), torch.ones(len(X), 1)], dim=1).double()  # (n, 65)
    solution = torch.linalg.lstsq(A, nn.functional.one_hot(y, 10).double()).solution  # (65, 10)
    return solution[:-1].float(), solution[-1].float()


def test_linear_accuracy_agrees_with_torch_on_the_test_images(digits):
    W, b = least_squares_classifier(digits)
    _, (X_test, y_test) = digits
    expected = float(((X_test.reshape(len(X_test), -1) @ W + b).argmax(1) == y_test).float().mean())
    assert expected > 0.9
    assert linear_image_accuracy([W.numpy(), b.numpy()]) == pytest.approx(expected, abs=1 / len(y_test))


def test_relu_mlp_accuracy_agrees_with_torch_on_standardised_images(digits):
    (X_train, _), (X_test, y_test) = digits
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    mean, std = X_train[:10000].mean(dim=0, keepdim=True), X_train[:10000].std(dim=0, keepdim=True)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(30):  # full-batch steps: a trained network, not a random one
        optimizer.zero_grad()
        nn.functional.cross_entropy(net((X_train - mean) / std), digits[0][1]).backward()
        optimizer.step()
    expected = torch_accuracy(net, ((X_test - mean) / std)[:2000], y_test[:2000])
    params = [t.detach().numpy() for m in net if isinstance(m, nn.Linear) for t in (m.weight.T, m.bias)]
    assert expected > 0.8
    assert standardized_relu_mlp_accuracy(params) == pytest.approx(expected, abs=1 / 2000)


@pytest.mark.parametrize(("params", "reason"), [
    ([], "in pairs"),
    ([np.zeros((64, 10), np.float32)], "in pairs"),
    ([np.zeros((64, 10), np.float32), np.zeros(9, np.float32)], "do not chain"),
    ([np.zeros((63, 10), np.float32), np.zeros(10, np.float32)], r"expected 64 \(digits\) or 784"),
    ([np.zeros((64, 5), np.float32), np.zeros(5, np.float32)], "5 outputs"),
    ([np.zeros((64, 10), np.int64), np.zeros(10, np.int64)], "floating point"),
    ([np.zeros((64, 10**6), np.float32), np.zeros(10**6, np.float32)], "do not chain"),  # no huge products
    ([np.zeros((64, 10), np.float32), np.zeros(10, np.float32)] * 13, "at most 12"),
])
def test_models_that_cannot_be_measured_are_refused(params, reason):
    with pytest.raises(MeasureError, match=reason):
        linear_image_accuracy(params)


def test_the_largest_models_allowed_are_measured_and_non_finite_ones_score_zero(digits):
    _, (_, y_test) = digits

    def zeros(*shape):
        return np.zeros(shape, np.float32)

    def share(label: int) -> float:
        return float((y_test[:2000] == label).float().mean())

    deep = [zeros(64, 10), zeros(10)] + [zeros(10, 10), zeros(10)] * 11  # 12 layers, the most allowed
    wide = [zeros(64, 1024), zeros(1024), zeros(1024, 10), zeros(10)]  # 1024 units, the widest allowed
    for params in (deep, wide):  # every logit ties: argmax says 0
        assert standardized_relu_mlp_accuracy(params) == pytest.approx(share(0))
    logits = np.full(10, -5.0, np.float32)
    logits[3] = -1.0  # all negative: no ReLU after the last layer, so 3 still ranks first
    assert standardized_relu_mlp_accuracy([zeros(64, 10), zeros(10), zeros(10, 10), logits]) == pytest.approx(share(3))
    assert linear_image_accuracy([zeros(64, 10), np.full(10, np.nan, np.float32)]) == 0.0


def test_784_inputs_are_measured_on_fashion_mnist_from_the_first_10000_training_images(monkeypatch):
    """The grader's own Fashion-MNIST cache (faked here): standardised with the statistics of the first
    10,000 training images, accuracy over the first 2,000 test images."""
    import lib.data
    from autograder import measures

    g = torch.Generator().manual_seed(0)
    X_train = torch.rand(10_001, 1, 28, 28, generator=g)
    X_train[10_000] = 1000.0  # one image past the first 10,000 that would move the mean and the spread
    X_test = torch.full((2_001, 1, 28, 28), 0.55)  # pixel 0: above the training mean (0.5), below 0.6
    y_test = torch.ones(2_001, dtype=torch.int64)
    y_test[2_000] = 0  # past the first 2,000: not counted
    fake = (X_train, torch.zeros(10_001, dtype=torch.int64), X_test, y_test)
    served = []
    monkeypatch.setattr(lib.data, "fashion_mnist_tensors", lambda download=True: served.append(download) or fake)
    monkeypatch.setattr(measures, "_images", functools.cache(measures._images.__wrapped__))
    W = np.zeros((784, 10), np.float32)
    W[0, 1] = 1.0  # class 1 when pixel 0 is above the training mean, else class 0 (the bias)
    assert standardized_relu_mlp_accuracy([W, np.zeros(10, np.float32)]) == 1.0
    raw = np.zeros((784, 10), np.float32)
    raw[0, 1] = 1.0  # on raw pixels 0.55 > 0: every test image is class 1, the 2,001st too
    assert linear_image_accuracy([raw, np.zeros(10, np.float32)]) == pytest.approx(2000 / 2001)
    assert served == [False]  # read once from the cache, never downloaded while grading


def test_threshold_applies_to_the_measured_accuracy_not_to_a_reported_number(digits):
    W, b = least_squares_classifier(digits)
    reference = ref({"kind": "sequence", "items": []}, at_least=0.85, measure="linear_image_accuracy")
    trained = {"value": {"kind": "sequence", "items": [tensor(W.numpy()), tensor(b.numpy())]}}
    result = compare(reference, [trained])
    assert result.passed and float(result.message) > 0.9
    untrained = {"value": {"kind": "sequence", "items": [tensor(np.zeros((64, 10), np.float32)),
                                                           tensor(np.zeros(10, np.float32))]}}
    result = compare(reference, [untrained])
    assert not result.passed and "needs at least 0.85" in result.message
    # A student's run that records a number (say, from a replaced evaluate_accuracy) earns nothing.
    for value in ({"kind": "float", "value": 1.0}, tensor(np.float32(1.0))):
        result = compare(reference, [{"value": value}])
        assert not result.passed and "list of parameter tensors" in result.message
    broken = {"value": {"kind": "sequence", "items": [tensor(np.zeros((3, 10), np.float32)), tensor(np.zeros(10, np.float32))]}}
    assert "cannot be evaluated" in compare(reference, [broken]).message
    unknown = ref({"kind": "sequence", "items": []}, at_least=0.85, measure="no_such_measure")
    assert "unknown measure" in compare(unknown, [trained]).message


def test_a_measure_needs_parameters_and_a_measure_that_crashes_fails_the_check(monkeypatch):
    """An empty list is no model (not one the measure is asked to evaluate); a measure that
    raises anything but MeasureError fails the check with the exception's type only."""
    from autograder import measures

    reference = ref({"kind": "sequence", "items": []}, at_least=0.85, measure="linear_image_accuracy")
    assert compare(reference, [{"value": {"kind": "sequence", "items": []}}]) == CheckResult(
        "x", False, "expected a list of parameter tensors, got a sequence")

    def crashes(params):
        raise RuntimeError("hidden detail")

    monkeypatch.setitem(measures.MEASURES, "crashes", crashes)
    params = {"kind": "sequence", "items": [tensor(np.zeros(10, np.float32))]}
    assert compare(ref({"kind": "sequence", "items": []}, at_least=0.85, measure="crashes"), [{"value": params}]
                   ) == CheckResult("x", False, "the recorded model could not be evaluated (RuntimeError)")


def test_char_rnn_perplexity_agrees_with_torch_over_the_whole_text():
    from autograder.measures import _python_docs_validation, char_rnn_perplexity

    vocab_size, tokens = _python_docs_validation()
    torch.manual_seed(0)
    rnn, head = nn.RNN(vocab_size, 16, 2, batch_first=True), nn.Linear(16, vocab_size)
    text = torch.from_numpy(tokens[:3000])
    row_len = (len(text) - 1) // 32
    X, Y = text[: 32 * row_len].reshape(32, row_len), text[1: 32 * row_len + 1].reshape(32, row_len)
    with torch.no_grad():  # all steps at once: the measure reads 64 at a time, carrying the state
        logits = head(rnn(nn.functional.one_hot(X, vocab_size).float())[0])
        expected = float(torch.exp(nn.functional.cross_entropy(logits.reshape(-1, vocab_size), Y.reshape(-1))))
    params = [p.detach().numpy() for p in [*rnn.parameters(), head.weight, head.bias]]
    assert char_rnn_perplexity(params, characters=3000) == pytest.approx(expected, rel=1e-4)
    assert expected > 0.5 * vocab_size  # untrained: about a uniform guess
    with pytest.raises(MeasureError, match="not those of"):
        char_rnn_perplexity(params[:-2] + [params[-2][:, :8], params[-1]], characters=3000)
    big = [np.zeros((512, vocab_size), np.float32), np.zeros((512, 512), np.float32), np.zeros(512, np.float32),
           np.zeros(512, np.float32), np.zeros((vocab_size, 512), np.float32), np.zeros(vocab_size, np.float32)]
    with pytest.raises(MeasureError, match="at most 3 layers of 256 units"):
        char_rnn_perplexity(big)
    with pytest.raises(MeasureError, match="4 arrays per RNN layer"):
        char_rnn_perplexity(params[1:], characters=3000)
    largest = nn.RNN(vocab_size, 256, 3)  # the most a measure evaluates
    zero_head = [np.zeros((vocab_size, 256), np.float32), np.zeros(vocab_size, np.float32)]
    uniform = char_rnn_perplexity([p.detach().numpy() for p in largest.parameters()] + zero_head, characters=200)
    assert uniform == pytest.approx(vocab_size, rel=1e-5)  # all logits 0: every character equally likely
    with pytest.raises(MeasureError, match="0 units"):
        char_rnn_perplexity(params[:-2] + [np.zeros(vocab_size, np.float32), params[-1]], characters=3000)


def test_transformer_bleu_loads_the_parameters_by_name_and_refuses_another_model(monkeypatch):
    import lib.transformer
    from autograder.measures import _translation, transformer_bleu
    from lib.transformer import Transformer, TransformerConfig

    data = _translation(200, 50, 12, 64)
    torch.manual_seed(1)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig())
    named = [[name, p.detach().numpy()] for name, p in model.named_parameters()]
    evaluated = []  # what BLEU would be computed on: an untrained model scores 0 whatever it holds
    monkeypatch.setattr(lib.transformer, "evaluate_bleu", lambda model, pairs, data: evaluated.append(
        ({n: p.detach().clone() for n, p in model.named_parameters()}, pairs)) or 0.5)
    shuffled = named[1::2] + named[::2]  # a student's modules may register them in another order
    assert transformer_bleu(shuffled, num_train=200, num_test=50) == 0.5
    (loaded, pairs), = evaluated
    assert loaded.keys() == dict(named).keys() and pairs == data.test_pairs and len(pairs) == 50
    assert all(torch.equal(loaded[n], torch.from_numpy(a)) for n, a in named)
    renamed = [["encoder.blks.0.norm1.ln.weight" if n == "encoder.blks.0.addnorm1.ln.weight" else n, a]
               for n, a in named]
    with pytest.raises(MeasureError, match=r"missing \['encoder.blks.0.addnorm1.ln.weight'\], "
                                           r"unexpected \['encoder.blks.0.norm1.ln.weight'\]"):
        transformer_bleu(renamed, num_train=200, num_test=50)
    narrow = [[n, a[..., :1] if n == "decoder.dense.weight" else a] for n, a in named]
    with pytest.raises(MeasureError, match=r"missing \[\], unexpected \[\], wrong shapes \['decoder.dense.weight'\]"):
        transformer_bleu(narrow, num_train=200, num_test=50)
    with pytest.raises(MeasureError, match=r"\[name, tensor\] pairs"):
        transformer_bleu([a for _, a in named], num_train=200, num_test=50)


@pytest.mark.slow
def test_transformer_bleu_of_a_trained_model():
    from autograder.measures import _translation, transformer_bleu
    from lib.transformer import Transformer, TransformerConfig, evaluate_bleu, train_seq2seq

    data = _translation(200, 50, 12, 64)
    torch.manual_seed(0)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig())
    train_seq2seq(model, data.train, data.tgt_vocab.bos, num_epochs=8)  # translates a little (BLEU 0.09-0.24 over seeds 0-3)
    expected = evaluate_bleu(model, data.test_pairs, data)
    assert expected > 0.02
    named = [[name, p.detach().numpy()] for name, p in model.named_parameters()]
    assert transformer_bleu(named[::-1], num_train=200, num_test=50) == expected
