"""Tests for lib/init.py against torch.nn.init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lib import init

SHAPES = [(3, 5), (5, 3), (64, 64), (7, 2, 3), (16, 3, 5, 5), (4, 6, 2, 3, 3)]


def _draw(fn, shape, seed=3, **kwargs):
    t = torch.empty(shape)
    fn(t, generator=torch.Generator().manual_seed(seed), **kwargs)
    return t


# ----------------------------------------------------------------------------- fans and gains
@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape):
    t = torch.empty(shape)
    assert init.fan_in_and_fan_out(t) == nn.init._calculate_fan_in_and_fan_out(t)


def test_fans_of_real_layers():
    assert init.fan_in_and_fan_out(nn.Linear(10, 4).weight) == (10, 4)
    assert init.fan_in_and_fan_out(nn.Conv2d(3, 8, 5).weight) == (3 * 25, 8 * 25)
    assert init.fan_in_and_fan_out(nn.Conv1d(2, 6, 3).weight) == (6, 18)
    # grouped convolution: the weight is (out, in / groups, k), as torch counts it
    assert init.fan_in_and_fan_out(nn.Conv2d(4, 8, 3, groups=2).weight) == (2 * 9, 8 * 9)
    # transposed convolution stores (in, out, k, k): torch reads dimension 1 as "in"
    w = nn.ConvTranspose2d(3, 5, 2).weight
    assert init.fan_in_and_fan_out(w) == nn.init._calculate_fan_in_and_fan_out(w) == (20, 12)


@pytest.mark.parametrize("shape", [(), (5,)])
@pytest.mark.parametrize(
    "fn", [init.fan_in_and_fan_out, init.xavier_uniform_, init.xavier_normal_, init.kaiming_normal_]
)
def test_fewer_than_two_dims_raise(shape, fn):
    with pytest.raises(ValueError, match="2 dimensions"):
        fn(torch.empty(shape))


@pytest.mark.parametrize(
    "name,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                   ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0)],
)
def test_gain_matches_torch(name, param):
    assert init.calculate_gain(name, param) == pytest.approx(nn.init.calculate_gain(name, param))


def test_unknown_gain_and_mode_raise():
    with pytest.raises(ValueError):
        init.calculate_gain("softplus")
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(torch.empty(3, 4), mode="fan_avg")


# ----------------------------------------------------------------------------- initialisers
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_draws_the_same_numbers_as_torch(shape, gain):
    for ours, theirs in ((init.xavier_uniform_, nn.init.xavier_uniform_),
                         (init.xavier_normal_, nn.init.xavier_normal_)):
        assert torch.equal(_draw(ours, shape, gain=gain), _draw(theirs, shape, gain=gain))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0.0), ("leaky_relu", 0.0), ("leaky_relu", 0.1), ("tanh", 0.0)])
def test_kaiming_draws_the_same_numbers_as_torch(shape, mode, nonlinearity, a):
    kwargs = dict(a=a, mode=mode, nonlinearity=nonlinearity)
    assert torch.equal(_draw(init.kaiming_normal_, shape, **kwargs), _draw(nn.init.kaiming_normal_, shape, **kwargs))


@pytest.mark.parametrize("shape", [(400, 1200), (64, 32, 3, 3)])
def test_statistics_on_large_tensors_match_torch(shape):
    torch.manual_seed(0)
    cases = [
        (init.xavier_uniform_, nn.init.xavier_uniform_, {"gain": 2.0}),
        (init.xavier_normal_, nn.init.xavier_normal_, {"gain": 1.0}),
        (init.kaiming_normal_, nn.init.kaiming_normal_, {"mode": "fan_in", "nonlinearity": "relu"}),
        (init.kaiming_normal_, nn.init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}),
    ]
    for ours, theirs, kwargs in cases:
        a, b = ours(torch.empty(shape), **kwargs), theirs(torch.empty(shape), **kwargs)  # global RNG
        assert a.mean().item() == pytest.approx(0.0, abs=0.01 * b.std().item())
        assert a.std().item() == pytest.approx(b.std().item(), rel=0.01)
        assert a.abs().max().item() == pytest.approx(b.abs().max().item(), rel=0.2)


def test_xavier_uniform_bound_and_normal_std_formulas():
    fan_in, fan_out = 300, 700
    w = init.xavier_uniform_(torch.empty(fan_out, fan_in), gain=1.5)
    bound = 1.5 * math.sqrt(6 / (fan_in + fan_out))
    assert w.abs().max() <= bound
    assert w.abs().max() >= 0.999 * bound
    w = init.xavier_normal_(torch.empty(fan_out, fan_in))
    assert w.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    w = init.kaiming_normal_(torch.empty(fan_out, fan_in), nonlinearity="relu")
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.01)


@pytest.mark.parametrize("fn", [init.xavier_uniform_, init.xavier_normal_, init.kaiming_normal_])
def test_in_place_on_parameters(fn):
    p = nn.Parameter(torch.zeros(20, 30))
    ptr = p.data_ptr()
    out = fn(p)
    assert out is p and p.data_ptr() == ptr
    assert p.requires_grad and p.grad_fn is None and p.abs().sum() > 0


def test_kaiming_zero_element_tensor_is_a_no_op():
    t = torch.empty(0, 5)
    assert init.kaiming_normal_(t) is t


@pytest.mark.parametrize(
    "ours,theirs",
    [(init.xavier_uniform_, nn.init.xavier_uniform_), (init.xavier_normal_, nn.init.xavier_normal_),
     (init.kaiming_normal_, nn.init.kaiming_normal_)],
)
def test_default_arguments_draw_what_torch_defaults_draw(ours, theirs):
    """Without gain, a, mode or nonlinearity: torch's defaults (gain 1; leaky ReLU, a=0, fan_in)."""
    assert torch.equal(_draw(ours, (16, 3, 5, 5)), _draw(theirs, (16, 3, 5, 5)))


def test_kaiming_single_element_tensor_is_drawn():
    """Only a tensor without elements is skipped; a 1 x 1 weight is drawn like torch draws it."""
    t = _draw(init.kaiming_normal_, (1, 1))
    assert torch.equal(t, _draw(nn.init.kaiming_normal_, (1, 1))) and t.item() != 0
