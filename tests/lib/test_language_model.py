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
    sequence_loss,
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


def test_sequence_loss_matches_torch_for_charlm_outputs_and_plain_tensors() -> None:
    """CharLM's logits are a view of time-major data; the loss per token must still come back
    in the targets' own (batch, steps) order."""
    torch.manual_seed(4)
    model = CharLM(CharLMConfig(vocab_size=7, hidden_size=8))
    X, Y = torch.randint(0, 7, (2, 3)), torch.randint(0, 7, (2, 3))
    with torch.no_grad():
        logits, _ = model(X)  # (2, 3, 7), not contiguous
    assert not logits.is_contiguous()
    for given in (logits, logits.contiguous()):
        expected = F.cross_entropy(given.permute(0, 2, 1), Y, reduction="none")  # (2, 3)
        assert_close(sequence_loss(given, Y, reduction="none"), expected)
        assert_close(sequence_loss(given, Y, reduction="sum"), expected.sum())
        assert_close(sequence_loss(given, Y), expected.mean())


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



@pytest.mark.parametrize("train_len, max_batches", ((None, None), (None, 7), (40, None)))
def test_train_lm_takes_the_steps_of_a_hand_written_loop(train_len: int | None, max_batches: int | None) -> None:
    """Sequential TBPTT: the state carries on (detached) within a pass and restarts with a new pass.

    40 training tokens hold one batch of 4 x 8 (plus a random offset): one batch per epoch."""
    data = load_text_data("offline", max_tokens=1_500)
    data = TextData(data.train[:train_len], data.val, data.vocab, data.name, data.source)
    config = TrainConfig(num_epochs=2, batch_size=4, num_steps=8, lr=0.01, max_batches=max_batches, seed=1)
    cfg = CharLMConfig(len(data.vocab), 16, 1, "lstm")
    torch.manual_seed(7)
    model = CharLM(cfg)
    torch.manual_seed(7)
    reference = CharLM(cfg)
    history = train_lm(model, data, config, plot=False)

    per_epoch = max_batches or max(1, (len(data.train) - 1 - 8) // (4 * 8))  # default: about one pass
    optim = torch.optim.Adam(reference.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    passes, losses, norms, state = 0, [], [], None
    batches = iter(())
    for _ in range(2 * per_epoch):
        batch = next(batches, None)
        if batch is None:  # a new pass, at a new random offset, from a zero state
            batches, state, passes = data.batches("train", 4, 8, "sequential", generator), None, passes + 1
            batch = next(batches)
        X, Y = batch
        logits, state = reference(X, None if state is None else tuple(s.detach() for s in state))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
        optim.zero_grad()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)))
        optim.step()
        losses.append(float(loss.detach()))
    assert passes == (2 if max_batches is None else 1)  # without max_batches epoch 2 runs into a new pass
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(p, q, rtol=1e-4, atol=1e-5)
    for epoch in range(2):
        chunk = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        assert history.train_ppl[epoch] == pytest.approx(math.exp(sum(losses[chunk]) / per_epoch), rel=1e-4)
        assert history.grad_norm[epoch] == pytest.approx(sum(norms[chunk]) / per_epoch, rel=1e-4)
    assert history.val_ppl[-1] == pytest.approx(evaluate_perplexity(reference, data.val), rel=1e-4)


def test_clip_gradients_tiny_and_missing_gradients_match_torch() -> None:
    torch.manual_seed(8)
    grads = [torch.randn(3, 2) * 1e-5, torch.randn(4) * 1e-5]  # norm ~3e-5: the 1e-6 in the rule matters
    ours = [torch.zeros_like(g, requires_grad=True) for g in grads]
    theirs = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad, q.grad = g.clone(), g.clone()
    assert_close(clip_gradients(ours, 1e-5), torch.nn.utils.clip_grad_norm_(theirs, 1e-5))
    for p, q in zip(ours, theirs, strict=True):
        assert_close(p.grad, q.grad, rtol=1e-6, atol=0)
    no_grad = [torch.zeros(3, requires_grad=True)]
    assert_close(clip_gradients(no_grad, 1.0), torch.nn.utils.clip_grad_norm_(no_grad, 1.0))  # 0, nothing to clip


def test_char_lm_is_its_rnn_on_one_hot_inputs() -> None:
    torch.manual_seed(9)
    model = CharLM(CharLMConfig(6, 5, 2, "lstm"))
    X = torch.randint(0, 6, (3, 4))
    output, (h, c) = model.rnn(F.one_hot(X.T, 6).float())  # time-major (T, B, V)
    logits, state = model(X)
    assert_close(logits, model.head(output).transpose(0, 1))
    assert_close(state[0], h)
    assert_close(state[1], c)


@pytest.mark.parametrize("length, num_steps", ((4 * 7 + 1, 3), (4 + 1, 2)))
def test_evaluate_perplexity_reads_every_token_once(length: int, num_steps: int) -> None:
    torch.manual_seed(10)
    model = CharLM(CharLMConfig(6, 5, 1, "gru"))
    corpus = torch.randint(0, 6, (length,))
    row_len = (length - 1) // 4  # 7 and 1: every token but the last is read, in 4 rows
    X, Y = corpus[:-1].reshape(4, row_len), corpus[1:].reshape(4, row_len)
    with torch.no_grad():  # windows with the state carried across = one pass over each row
        expected = math.exp(float(F.cross_entropy(model(X)[0].reshape(-1, 6), Y.reshape(-1))))
    assert evaluate_perplexity(model, corpus, batch_size=4, num_steps=num_steps) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="shorter"):
        evaluate_perplexity(model, corpus[:4], batch_size=4)


def test_generate_never_emits_unk_and_scales_by_temperature() -> None:
    data = load_text_data("offline", max_tokens=4_000)
    torch.manual_seed(11)
    model = CharLM(CharLMConfig(len(data.vocab), 16, 1))
    greedy = generate(model, data.vocab, "the ", 30)
    # Near zero temperature, sampling is greedy; a plain softmax of the logits would not be.
    for seed in range(3):
        assert generate(model, data.vocab, "the ", 30, 0.01, torch.Generator().manual_seed(seed)) == greedy
    with torch.no_grad():
        model.head.bias[0] += 100.0  # <unk> (id 0) now has by far the largest logit...
        model.head.bias[5] += 50.0  # ...and id 5 the second largest
    assert generate(model, data.vocab, "the ", 5) == "the " + data.vocab.decode([5] * 5)
