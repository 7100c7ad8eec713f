"""lib.rnn against torch.nn.RNN/GRU/LSTM (copied weights), clip_grad_norm_ and d2l."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from lib.rnn import (
    CharLM,
    CharLMConfig,
    RecurrentConfig,
    ScratchRecurrent,
    TrainConfig,
    _batch_stream,
    clip_gradients,
    evaluate_perplexity,
    generate,
    layer_weights,
    make_recurrent,
    mode_of,
    perplexity,
    recurrent_forward,
    rnn_step,
    train_lm,
)
from lib.text import TextData, Vocab, load_text_data

MODES = ("rnn_tanh", "rnn_relu", "gru", "lstm")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matrices: one thread is as fast, and two fight other processes on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(config: RecurrentConfig) -> tuple[nn.Module, ScratchRecurrent]:
    torch.manual_seed(0)
    reference = make_recurrent(config, "torch").double()
    scratch = ScratchRecurrent(config).double()
    scratch.load_state_dict(reference.state_dict())  # same names, same shapes
    return reference, scratch


@pytest.mark.parametrize(
    "mode, bias, batch_first, num_layers",
    list(itertools.product(MODES, (True, False), (False, True), (1, 3))),
)
def test_scratch_matches_torch(mode: str, bias: bool, batch_first: bool, num_layers: int) -> None:
    config = RecurrentConfig(5, 7, num_layers, mode, bias, batch_first)
    reference, scratch = _pair(config)
    assert mode_of(reference) == mode_of(scratch) == mode
    X = torch.randn((3, 6, 5) if batch_first else (6, 3, 5), dtype=torch.float64)
    expected, expected_state = reference(X)
    output, state = scratch(X)
    assert output.shape == ((3, 6, 7) if batch_first else (6, 3, 7))
    assert_close(output, expected)
    assert_close(state, expected_state)  # h_n (L, B, H) in both layouts; (h_n, c_n) for an LSTM
    # A given initial state, and the same function fed torch's own parameters.
    h0 = torch.randn(num_layers, 3, 7, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if mode == "lstm" else h0
    expected, expected_state = reference(X, hx)
    output, state = recurrent_forward(X, layer_weights(reference), mode, hx, batch_first)
    assert_close(output, expected)
    assert_close(state, expected_state)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_torch(mode: str) -> None:
    reference, scratch = _pair(RecurrentConfig(4, 6, 2, mode))
    X = torch.randn(5, 3, 4, dtype=torch.float64)
    for module in (reference, scratch):
        output, _ = module(X)
        (output**2).sum().backward()
    for (name, p), q in zip(reference.named_parameters(), scratch.parameters(), strict=True):
        assert_close(q.grad, p.grad, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("batch_first", (False, True))
def test_last_output_is_top_layer_state(batch_first: bool) -> None:
    reference, scratch = _pair(RecurrentConfig(3, 4, 3, "rnn_tanh", batch_first=batch_first))
    X = torch.randn((2, 5, 3) if batch_first else (5, 2, 3), dtype=torch.float64)  # batch 2, 5 steps
    output, h_n = scratch(X)
    assert_close(output, reference(X)[0])
    last = output[:, -1] if batch_first else output[-1]  # (B, H)
    assert h_n.shape == (3, 2, 4)
    assert_close(last, h_n[-1])  # the last layer...
    assert not torch.allclose(last, h_n[0])  # ...not the first


@pytest.mark.parametrize("nonlinearity, bias", list(itertools.product(("tanh", "relu"), (True, False))))
def test_rnn_step_matches_rnn_cell(nonlinearity: str, bias: bool) -> None:
    torch.manual_seed(1)
    cell = nn.RNNCell(4, 6, bias=bias, nonlinearity=nonlinearity).double()
    x, h = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    ours = rnn_step(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, nonlinearity)
    assert_close(ours, cell(x, h))


def test_bad_arguments_raise_value_error() -> None:
    weights = layer_weights(nn.RNN(3, 4))
    with pytest.raises(ValueError, match="3-D"):
        recurrent_forward(torch.randn(5, 3), weights)
    with pytest.raises(ValueError, match="expects 3 inputs"):
        recurrent_forward(torch.randn(5, 2, 4), weights)
    with pytest.raises(ValueError, match="initial state"):
        recurrent_forward(torch.randn(5, 2, 3), weights, hx=torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="mode"):
        recurrent_forward(torch.randn(5, 2, 3), weights, mode="elman")
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_step(torch.randn(2, 3), torch.randn(2, 4), *weights[0], nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="bidirectional"):
        layer_weights(nn.GRU(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="backend"):
        make_recurrent(RecurrentConfig(3, 4), "cudnn")
    with pytest.raises(ValueError, match="integer token ids"):
        CharLM(CharLMConfig(5, 4, 1))(torch.randn(2, 3))


@pytest.mark.parametrize("max_norm", (0.5, 1e3))
def test_clip_gradients_matches_torch(max_norm: float) -> None:
    torch.manual_seed(2)
    grads = [torch.randn(4, 3) * 3, torch.randn(5), torch.randn(2, 2, 2)]
    ours = [torch.zeros_like(g, requires_grad=True) for g in grads]
    theirs = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = g.clone(), g.clone()
    norm = clip_gradients(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert_close(norm, expected)
    for p, q in zip(ours, theirs, strict=True):
        assert_close(p.grad, q.grad)
    clipped = math.sqrt(sum(float((p.grad**2).sum()) for p in ours))
    assert clipped == pytest.approx(min(float(expected), max_norm), rel=1e-5)
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients(ours, 0.0)


def test_perplexity_is_exp_mean_cross_entropy() -> None:
    torch.manual_seed(3)
    logits, targets = torch.randn(4, 7, 11), torch.randint(0, 11, (4, 7))
    expected = math.exp(float(F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))))
    assert perplexity(logits, targets) == pytest.approx(expected, rel=1e-6)
    assert perplexity(torch.zeros(5, 11), torch.arange(5)) == pytest.approx(11.0)  # uniform guess
    with pytest.raises(ValueError, match="expected logits"):
        perplexity(logits, targets[:, :3])


@pytest.mark.parametrize("mode", ("gru", "lstm"))
def test_char_lm_scratch_equals_torch_backend(mode: str) -> None:
    torch.manual_seed(4)
    fast = CharLM(CharLMConfig(9, 8, 2, mode, "torch"))
    slow = CharLM(CharLMConfig(9, 8, 2, mode, "scratch"))
    slow.load_state_dict(fast.state_dict())
    X = torch.randint(0, 9, (3, 5))
    (a, state_a), (b, state_b) = fast(X), slow(X)
    assert a.shape == (3, 5, 9)
    assert_close(a, b)
    assert_close(fast(X, state_a)[0], slow(X, state_b)[0])  # the state carries on identically


def test_generate_and_evaluate() -> None:
    data = load_text_data("offline", max_tokens=4_000)
    torch.manual_seed(5)
    model = CharLM(CharLMConfig(len(data.vocab), 16, 1))
    text = generate(model, data.vocab, "the ", 12)
    assert text.startswith("the ") and len(text) == 16 and "?" not in text
    assert text == generate(model, data.vocab, "the ", 12)  # greedy is deterministic
    sampled = generate(model, data.vocab, "the ", 12, 1.0, torch.Generator().manual_seed(0))
    assert sampled == generate(model, data.vocab, "the ", 12, 1.0, torch.Generator().manual_seed(0))
    ppl = evaluate_perplexity(model, data.val, batch_size=4, num_steps=16)
    assert 10 < ppl < 60  # untrained: close to the 28-way uniform guess


def test_epochs_go_on_through_the_text() -> None:
    data = TextData(torch.arange(400), torch.arange(100), Vocab("ab"), "positions", "offline")
    config = TrainConfig(batch_size=2, num_steps=5, max_batches=3, sampling="sequential")
    stream = _batch_stream(data, config, torch.Generator().manual_seed(0))
    batches = [next(stream) for _ in range(45)]  # one pass holds 39 or 40 batches
    starts = [i for i, (_, _, new_pass) in enumerate(batches) if new_pass]
    assert starts[0] == 0 and len(starts) == 2 and starts[1] in (39, 40)
    for (X, _, _), (X_next, _, new_pass) in zip(batches, batches[1:], strict=False):
        if not new_pass:  # within a pass, epoch boundaries included, each row reads on
            assert torch.equal(X_next[:, 0], X[:, -1] + 1)


@pytest.mark.slow
def test_training_lowers_validation_perplexity() -> None:
    data = load_text_data("offline", max_tokens=60_000)
    torch.manual_seed(6)
    model = CharLM(CharLMConfig(len(data.vocab), 64, 2, "gru"))
    config = TrainConfig(num_epochs=3, batch_size=16, num_steps=32, max_batches=60, seed=0)
    history = train_lm(model, data, config, plot=False)
    assert history.val_ppl[-1] < 12 < history.val_ppl[0] + 10
    assert len(history.grad_norm) == 3 and history.tokens_per_s > 0


@pytest.mark.slow
def test_one_layer_matches_d2l_rnn_scratch() -> None:
    d2l = pytest.importorskip("d2l.torch")
    torch.manual_seed(7)
    theirs = d2l.RNNScratch(num_inputs=5, num_hiddens=6, sigma=0.5)
    # d2l stores W_xh (inputs, hidden) and one bias: torch's layout is the transpose.
    weights = [(theirs.W_xh.T, theirs.W_hh.T, theirs.b_h, None)]
    X = torch.randn(4, 3, 5)
    outputs, state = theirs(X)
    ours, h_n = recurrent_forward(X, weights, "rnn_tanh")
    assert_close(ours, torch.stack(outputs))
    assert_close(h_n[-1], state)
