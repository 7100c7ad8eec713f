"""lib.dropout: the cheaper CPU mask keeps torch's dropout semantics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lib.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_mean_match_p(p):
    torch.manual_seed(0)
    n = 400_000
    y = dropout(torch.ones(n), p)
    dropped = (y == 0).float().mean().item()
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(dropped - p) < 5 * sd  # a binomial count, five standard deviations
    zero, scale = y.unique().tolist()
    assert zero == 0.0 and scale == pytest.approx(1 / (1 - round(p * 65536) / 65536))
    assert abs(y.mean().item() - 1) < 5 * sd / (1 - p)  # the survivors' scale keeps the mean


def test_random_bits_are_balanced():
    """Each 16-bit draw takes part of a 64-bit word: all four parts must be uniform."""
    torch.manual_seed(1)
    mask = keep_mask((4, 200_000), 0.5)  # consecutive elements share a 64-bit word
    words = mask.reshape(-1, 4)  # (words, the four 16-bit parts)
    for part in range(4):
        assert abs((words[:, part] == 0).float().mean().item() - 0.5) < 0.005


def test_probability_is_rounded_to_a_multiple_of_1_over_65536():
    assert keep_mask((3,), 0.1).max().item() == pytest.approx(65536 / (65536 - 6554))
    assert torch.equal(keep_mask((5,), 0.0), torch.ones(5))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        keep_mask((5,), 1.0)


def test_same_seed_same_mask_and_gradient_uses_it():
    x = torch.randn(6, 7, requires_grad=True)
    torch.manual_seed(2)
    y = dropout(x, 0.3)
    y.sum().backward()
    torch.manual_seed(2)
    mask = keep_mask(x.shape, 0.3)
    torch.testing.assert_close(y, x * mask)
    torch.testing.assert_close(x.grad, mask)


def test_compiled_dropout_draws_the_same_mask_and_keeps_it_for_backward():
    """Compiled code calls keep_mask as one operator: the same seed gives the same mask as
    eager mode, and the backward pass uses that mask rather than drawing a new one."""
    x = torch.randn(64, 10, 32, requires_grad=True)
    torch.manual_seed(5)
    eager = dropout(x, 0.3)
    torch.manual_seed(5)
    compiled = torch.compile(lambda x: dropout(x * 2, 0.3), fullgraph=True)(x)
    assert torch.equal(compiled, eager * 2)
    compiled.sum().backward()
    torch.testing.assert_close(x.grad, 2 * (eager != 0) / (1 - round(0.3 * 65536) / 65536))


def test_compiled_dropout_of_a_transposed_tensor():
    """The mask operator's shape function promises a contiguous mask, as keep_mask returns,
    whatever the input's strides (it once copied them, and compiled code then failed its
    own check of the mask's strides)."""
    x = torch.randn(10, 64, 32).transpose(0, 1)  # (64, 10, 32), not contiguous
    torch.manual_seed(6)
    eager = dropout(x, 0.3)
    torch.manual_seed(6)
    assert torch.equal(torch.compile(lambda x: dropout(x, 0.3), fullgraph=True)(x), eager)


def test_module_behaves_like_nn_dropout():
    layer = Dropout(0.4)
    assert isinstance(layer, nn.Dropout) and layer.p == 0.4
    x = torch.randn(50, 20)
    assert not torch.equal(layer(x), x)
    layer.eval()
    assert layer(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))  # as nn.Dropout(1.0)
    ints = torch.arange(6)
    assert dropout(ints, 0.5, training=False) is ints
    with pytest.raises(ValueError):
        Dropout(1.5)


@pytest.mark.gpu
def test_other_devices_use_torch_dropout():
    x = torch.ones(1000, device="cuda")
    torch.manual_seed(3)
    torch.cuda.manual_seed(3)
    ours = dropout(x, 0.2)
    torch.cuda.manual_seed(3)
    torch.testing.assert_close(ours, torch.nn.functional.dropout(x, 0.2))


def test_smallest_probability_drops_one_16_bit_value_in_65536():
    """``p = 1/65536`` drops exactly one of the 65536 values a 16-bit draw takes, not two."""
    torch.manual_seed(4)
    n = 1 << 22
    dropped = int((keep_mask((n,), 1 / 65536) == 0).sum())
    assert 40 < dropped < 96  # Poisson, mean n / 65536 = 64 and sd 8; two values would give 128


def test_mask_draws_one_64_bit_number_per_four_elements():
    """The cost the module docstring states: ``n`` elements take ``ceil(n / 4)`` 64-bit draws."""
    for n, words in ((8, 2), (5, 2), (1, 1)):
        torch.manual_seed(7)
        keep_mask((n,), 0.3)
        after_mask = torch.rand(4)
        torch.manual_seed(7)
        torch.empty(words, dtype=torch.int64).random_(-(2**63), None)
        assert torch.equal(torch.rand(4), after_mask), n


def test_inplace_module_matches_nn_dropout_inplace():
    """``inplace=True`` keeps ``nn.Dropout``'s behaviour: torch's mask, written into the input."""
    x = torch.randn(30, 40)
    ours, theirs = x.clone(), x.clone()
    torch.manual_seed(5)
    out = Dropout(0.3, inplace=True)(ours)
    torch.manual_seed(5)
    nn.Dropout(0.3, inplace=True)(theirs)
    assert out is ours
    assert torch.equal(ours, theirs) and not torch.equal(ours, x)
