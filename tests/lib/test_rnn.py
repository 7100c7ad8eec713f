"""lib.rnn against torch.nn.RNN/GRU/LSTM (copied weights) and d2l's RNN from scratch."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from lib.rnn import (
    RecurrentConfig,
    ScratchRecurrent,
    layer_weights,
    make_recurrent,
    mode_of,
    recurrent_forward,
    rnn_step,
)

MODES = ("rnn_tanh", "rnn_relu", "gru", "lstm")


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_rnn_step_rejects_mismatched_shapes() -> None:
    W_ih, W_hh = torch.randn(4, 3), torch.randn(4, 4)
    with pytest.raises(ValueError, match="expected x"):
        rnn_step(torch.randn(2, 3), torch.randn(5, 4), W_ih, W_hh)  # batch 2 vs 5
    with pytest.raises(ValueError, match="expected x"):
        rnn_step(torch.randn(2, 3), torch.randn(1, 2, 4), W_ih, W_hh)  # h not 2-D


@pytest.mark.parametrize("mode", MODES)
def test_make_recurrent_scratch_backend_initialises_like_torch(mode: str) -> None:
    config = RecurrentConfig(5, 64, 2, mode)
    torch.manual_seed(0)
    scratch = make_recurrent(config, "scratch")
    assert isinstance(scratch, ScratchRecurrent) and mode_of(scratch) == mode
    reference = make_recurrent(config, "torch")
    bound = 1 / 8  # U(-1/sqrt(H), 1/sqrt(H)) for H = 64, as torch.nn does
    for (name, p), (ref_name, q) in zip(scratch.named_parameters(), reference.named_parameters(), strict=True):
        assert name == ref_name and p.shape == q.shape
        assert p.abs().max() <= bound
        assert p.min() < -0.9 * bound and p.max() > 0.9 * bound, name  # both signs, the whole interval
