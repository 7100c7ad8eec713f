"""lib.language_model: clipping against clip_grad_norm_, perplexity, both backends, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from lib.language_model import (
    CharLM,
    CharLMConfig,
    TrainConfig,
    _batch_stream,
    clip_gradients,
    evaluate_perplexity,
    generate,
    perplexity,
    train_lm,
)
from lib.text import TextData, Vocab, load_text_data

pytestmark = pytest.mark.usefixtures("one_thread")


def test_char_lm_rejects_float_input() -> None:
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

