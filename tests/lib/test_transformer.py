"""lib.transformer against d2l on the same weights: blocks, encoder, decoding, training."""

from __future__ import annotations

import pytest
import torch
from torch._inductor.utils import run_and_get_code
from torch.nn import functional as F

from lib.attention import MultiHeadAttention, show_heatmaps
from lib.transformer import (
    DecoderBlock,
    EncoderBlock,
    PositionalEncoding,
    PositionWiseFFN,
    Transformer,
    TransformerConfig,
    attention_maps,
    greedy_decode,
    masked_cross_entropy,
    teacher_forcing,
)

d2l = pytest.importorskip("d2l.torch")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_positional_encoding_matches_d2l_and_offset():
    X = torch.randn(2, 9, 12)
    ours, theirs = PositionalEncoding(12, 0.0), d2l.PositionalEncoding(12, 0.0)
    torch.testing.assert_close(ours(X), theirs(X))
    torch.testing.assert_close(ours(X[:, 4:], offset=4), theirs(X)[:, 4:])
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(12, max_len=5)(X)


def test_encoder_block_and_encoder_match_d2l():
    torch.manual_seed(4)
    cfg = TransformerConfig(num_hiddens=16, ffn_num_hiddens=24, num_heads=4, num_blks=2, dropout=0.0)
    X, lens = torch.randn(3, 6, 16), torch.tensor([6, 2, 4])
    ours = EncoderBlock(cfg).eval()
    theirs = d2l.TransformerEncoderBlock(16, 24, 4, 0.0)
    theirs(X, lens)
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(X, lens), theirs.eval()(X, lens), rtol=1e-5, atol=1e-5)

    model = Transformer(11, 13, cfg).eval()
    tokens = torch.randint(0, 11, (3, 6))
    theirs = d2l.TransformerEncoder(11, 16, 24, 4, 2, 0.0)
    theirs(tokens, lens)
    state = {k.replace("blks.", "blks.block"): v for k, v in model.encoder.state_dict().items()}
    theirs.load_state_dict(state)
    torch.testing.assert_close(model.encoder(tokens, lens), theirs.eval()(tokens, lens), rtol=1e-5, atol=1e-5)


def _model(seed: int = 5) -> Transformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(num_hiddens=16, ffn_num_hiddens=32, num_heads=4, num_blks=2, dropout=0.1)
    return Transformer(9, 12, cfg).eval()


def test_decoder_cache_gives_same_logits_as_full_pass():
    model = _model()
    src, lens = torch.randint(0, 9, (4, 7)), torch.tensor([7, 3, 5, 1])
    tgt = torch.randint(0, 12, (4, 6))
    with torch.no_grad():
        enc = model.encoder(src, lens)
        full = model.decoder(tgt, enc, lens)  # (4, 6, 12)
        caches = model.decoder.new_caches()
        steps = [model.decoder(tgt[:, :2], enc, lens, caches, offset=0)]  # two positions at once
        steps += [model.decoder(tgt[:, t: t + 1], enc, lens, caches, offset=t) for t in range(2, 6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    assert caches[0][0].k.shape == (4, 4, 6, 4) and caches[0][1].k.shape == (4, 4, 7, 4)


def test_incremental_decoding_same_tokens_as_recomputation():
    model = _model(6)
    torch.manual_seed(7)
    src, lens = torch.randint(4, 9, (8, 7)), torch.randint(1, 8, (8,))
    cached = greedy_decode(model, src, lens, bos=1, eos=2, max_len=10, use_cache=True)
    recomputed = greedy_decode(model, src, lens, bos=1, eos=2, max_len=10, use_cache=False)
    assert cached.shape == (8, 10)
    assert torch.equal(cached, recomputed)


def test_decoder_block_is_causal():
    torch.manual_seed(8)
    block = DecoderBlock(TransformerConfig(num_hiddens=8, ffn_num_hiddens=16, num_heads=2, dropout=0.0)).eval()
    X, enc = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    Y = block(X, enc, None)
    X2 = X.clone()
    X2[:, 3:] = torch.randn(2, 2, 8)  # changing later positions must not change earlier outputs
    torch.testing.assert_close(block(X2, enc, None)[:, :3], Y[:, :3])


def test_a_training_step_compiles_to_one_graph():
    """One graph, so that torch.compile can fuse the step whole (the CPU dropout mask once broke it 13 times)."""
    torch.manual_seed(0)
    model = Transformer(11, 13, TransformerConfig(num_hiddens=8, ffn_num_hiddens=16, num_heads=2, num_blks=2,
                                                  dropout=0.1, attention_dropout=0.1)).train()
    src, tgt = torch.randint(0, 11, (4, 5)), torch.randint(0, 13, (4, 6))
    lens = torch.tensor([5, 3, 1, 4])

    def loss(src, src_len, tgt, tgt_len):
        return masked_cross_entropy(model(src, src_len, teacher_forcing(tgt, 1)), tgt, tgt_len)

    explained = torch._dynamo.explain(loss)(src, lens, tgt, lens + 1)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_ffn_keeps_no_boolean_mask_for_its_backward():
    """Compiled for a CPU, the FFN's relu is one operator whose backward reads its output:
    no generated kernel stores booleans (inductor writes them one element at a time), and
    values and gradients are eager mode's."""
    torch.manual_seed(3)
    ffn = PositionWiseFFN(8, 16)
    X = torch.randn(4, 5, 8, requires_grad=True)
    expected = ffn(X)
    grads = torch.autograd.grad((expected ** 2).sum(), (X, *ffn.parameters()))

    def step(X):
        Y = torch.compile(ffn, fullgraph=True)(X)
        return Y, torch.autograd.grad((Y ** 2).sum(), (X, *ffn.parameters()))

    (compiled, compiled_grads), codes = run_and_get_code(step, X)
    assert len(codes) == 2 and "lib.relu" in codes[0]  # forward and backward
    assert not any("bool*" in code for code in codes)
    torch.testing.assert_close(compiled, expected)
    for ours, theirs in zip(compiled_grads, grads, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_masked_cross_entropy_ignores_padding():
    torch.manual_seed(10)
    logits, Y, lens = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5)), torch.tensor([5, 2, 3])
    per_token = F.cross_entropy(logits.reshape(-1, 7), Y.reshape(-1), reduction="none").reshape(3, 5)
    mask = (torch.arange(5) < lens[:, None]).float()
    expected = (per_token * mask).sum() / mask.sum()
    torch.testing.assert_close(masked_cross_entropy(logits, Y, lens), expected)
    Y2 = Y.clone()
    Y2[1, 2:] = 0  # what sits in the padding does not matter
    torch.testing.assert_close(masked_cross_entropy(logits, Y2, lens), expected)
    with pytest.raises(ValueError, match="expected logits"):
        masked_cross_entropy(logits, Y[:, :4], lens)
    assert torch.equal(teacher_forcing(torch.tensor([[5, 6, 2]]), 1), torch.tensor([[1, 5, 6]]))


def test_attention_maps_and_heatmaps():
    from lib.translation import load_translation

    data = load_translation(num_train=300, num_test=20, source="offline")
    torch.manual_seed(11)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig(num_hiddens=16, num_heads=2))
    maps = attention_maps(model, "three hundred and forty-two", data)
    S, T = len(maps["src"]), len(maps["tgt"])
    assert S == 5 and maps["src"][-1] == "<eos>"
    assert maps["encoder"].shape == (2, 2, S, S) and maps["cross"].shape == (2, 2, T, S)
    assert maps["decoder"].shape == (2, 2, T, T)
    assert maps["tgt_in"] == ["<bos>", *maps["tgt"][:-1]]  # the decoder's keys: its inputs, not its outputs
    assert torch.all(maps["decoder"].triu(1) == 0)  # no query looks ahead
    torch.testing.assert_close(maps["cross"].sum(-1), torch.ones(2, 2, T))
    fig = show_heatmaps(maps["cross"], maps["src"], maps["tgt"], titles=["head 1", "head 2"])
    assert len(fig.axes) == 5  # 4 maps and a colour bar
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert not any(m.record_weights for m in model.modules() if isinstance(m, MultiHeadAttention))


@pytest.mark.slow
def test_training_reaches_bleu_on_numbers():
    from lib.transformer import evaluate_bleu, train_seq2seq
    from lib.translation import load_translation

    torch.manual_seed(0)
    data = load_translation(batch_size=64, num_train=2000, num_test=200, source="offline")
    cfg = TransformerConfig(num_hiddens=32, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.1)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), cfg)
    losses = train_seq2seq(model, data.train, data.tgt_vocab.bos, num_epochs=15, lr=0.005)
    assert losses[-1] < losses[0] / 3
    assert evaluate_bleu(model, data.test_pairs, data) > 0.6


def test_positional_encoding_covers_exactly_max_len_positions():
    X = torch.randn(2, 9, 12)  # 9 positions, 12 > 9 features
    ours = PositionalEncoding(12, 0.0, max_len=9)
    torch.testing.assert_close(ours(X), d2l.PositionalEncoding(12, 0.0)(X))
    torch.testing.assert_close(ours(X[:, 3:], offset=3), d2l.PositionalEncoding(12, 0.0)(X)[:, 3:])
    with pytest.raises(ValueError, match="max_len"):
        ours(X[:, 2:], offset=3)


class _D2LDecoderBlock(torch.nn.Module):
    """d2l.ai's TransformerDecoderBlock (section 11.7), its training-mode forward, from d2l's parts."""

    def __init__(self, d: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.attention1, self.attention2 = d2l.MultiHeadAttention(d, heads, 0.0), d2l.MultiHeadAttention(d, heads, 0.0)
        self.addnorm1, self.addnorm2, self.addnorm3 = (d2l.AddNorm(d, 0.0) for _ in range(3))
        self.ffn = d2l.PositionWiseFFN(ffn, d)

    def forward(self, X, enc_outputs, enc_valid_lens):
        B, T, _ = X.shape
        dec_valid_lens = torch.arange(1, T + 1).repeat(B, 1)  # causal: query t sees keys 0..t
        Y = self.addnorm1(X, self.attention1(X, X, X, dec_valid_lens))
        Z = self.addnorm2(Y, self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens))
        return self.addnorm3(Z, self.ffn(Z))


def test_decoder_matches_d2l_decoder_on_same_weights():
    import math

    torch.manual_seed(12)
    cfg = TransformerConfig(num_hiddens=16, ffn_num_hiddens=24, num_heads=4, num_blks=2, dropout=0.0)
    model = Transformer(11, 13, cfg).eval()
    src, lens, tgt = torch.randint(0, 11, (3, 6)), torch.tensor([6, 2, 4]), torch.randint(0, 13, (3, 5))
    with torch.no_grad():
        enc = model.encoder(src, lens)
        theirs = []
        for ours in model.decoder.blks:
            block = _D2LDecoderBlock(16, 24, 4)
            block(torch.zeros(1, 1, 16), torch.zeros(1, 1, 16), None)  # materialize the lazy layers
            block.load_state_dict(ours.state_dict())
            theirs.append(block.eval())
        H = d2l.PositionalEncoding(16, 0.0)(model.decoder.embedding(tgt) * math.sqrt(16))
        for block in theirs:
            H = block(H, enc, lens)
        expected = model.decoder.dense(H)  # (3, 5, 13)
        torch.testing.assert_close(model.decoder(tgt, enc, lens), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(src, lens, tgt), expected, rtol=1e-5, atol=1e-5)


def test_translate_and_evaluate_bleu_on_known_decoder_outputs(monkeypatch):
    """greedy_decode replaced by known token ids: translate cuts at <eos>, evaluate_bleu averages over chunks."""
    import lib.transformer
    from lib.transformer import evaluate_bleu, translate
    from lib.translation import bleu, load_translation, tokenize

    data = load_translation(num_train=300, num_test=20, source="offline")
    vocab, T = data.tgt_vocab, data.num_steps
    pairs = [(e, f) for e, f in data.test_pairs if all(t in vocab.token_to_idx for t in tokenize(f))][:5]
    refs = [tokenize(f) for _, f in pairs]
    # Exact translations, a one-word one, and one filling all T positions without <eos>.
    preds = [refs[0], refs[1][:1], refs[2], (refs[3] * T)[:T], refs[4][:1]]
    rows = [vocab[p] + [vocab.eos] * (T - len(p)) for p in preds]
    calls = []

    def fake_decode(model, src, src_valid_lens, bos, eos, max_len, use_cache=True):
        assert (bos, eos, max_len) == (vocab.bos, vocab.eos, T)
        start = sum(calls)
        calls.append(src.shape[0])
        return torch.tensor(rows[start: start + src.shape[0]])

    monkeypatch.setattr(lib.transformer, "greedy_decode", fake_decode)
    expected = [" ".join(p) for p in preds]
    assert translate(None, [e for e, _ in pairs], data) == expected
    calls.clear()
    score = evaluate_bleu(None, pairs, data, batch_size=2)
    assert calls == [2, 2, 1]
    assert score == pytest.approx(sum(bleu(p, " ".join(r)) for p, r in zip(expected, refs, strict=True)) / 5)
    assert 0 < score < 1


def test_attention_maps_of_a_translation_that_ends_at_once():
    from lib.transformer import translate
    from lib.translation import load_translation

    data = load_translation(num_train=300, num_test=20, source="offline")
    torch.manual_seed(11)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig(num_hiddens=16, num_heads=2))
    with torch.no_grad():
        model.decoder.dense.bias[data.tgt_vocab.eos] = 100.0  # <eos> wins at every step
    assert translate(model, ["twenty-one", "three hundred"], data) == ["", ""]
    maps = attention_maps(model, "twenty-one", data)
    assert maps["tgt"] == ["<eos>"] and maps["tgt_in"] == ["<bos>"]
    assert maps["decoder"].shape == (2, 2, 1, 1) and maps["cross"].shape == (2, 2, 1, len(maps["src"]))


def test_greedy_decode_is_the_argmax_after_each_prefix():
    model = _model(5)
    src, lens = torch.randint(4, 9, (8, 7)), torch.randint(1, 8, (8,))
    eos = 3  # a token this untrained model emits at different steps in different rows
    out = torch.ones(8, 1, dtype=torch.long)  # <bos> = 1
    with torch.no_grad():
        for _ in range(10):  # the whole prefix recomputed by the full model at every step
            out = torch.cat([out, model(src, lens, out)[:, -1].argmax(-1, keepdim=True)], dim=1)
    expected = out[:, 1:].clone()
    for row in expected:
        hits = (row == eos).nonzero()
        if len(hits):
            row[int(hits[0, 0]):] = eos  # after <eos>: only <eos>
    first_eos = [row.tolist().index(eos) for row in expected if eos in row]
    assert min(first_eos) > 0 and len(set(first_eos)) > 2  # rows stop at different steps
    for use_cache in (True, False):
        assert torch.equal(greedy_decode(model, src, lens, bos=1, eos=eos, max_len=10, use_cache=use_cache), expected)
