"""lib.attention against torch's fused attention and d2l on the same weights."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import lib.attention
from lib.attention import MultiHeadAttention, dot_product_attention, masked_softmax

d2l = pytest.importorskip("d2l.torch")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=["explicit", "fused"])
def kernel(request, monkeypatch):
    """Run a test through each attention kernel the library picks from on a CPU."""
    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 10**6 if request.param == "explicit" else 0)
    return request.param


def _lens(B: int, k: int, q: int | None = None, low: int = 1) -> torch.Tensor:
    shape = (B,) if q is None else (B, q)
    return torch.randint(low, k + 1, shape)


@pytest.mark.parametrize("per_query", [False, True])
def test_masked_softmax_matches_d2l(per_query):
    torch.manual_seed(0)
    X = torch.randn(5, 3, 7)
    lens = _lens(5, 7, 3 if per_query else None, low=0)  # 0 included: d2l makes the row uniform
    ours = masked_softmax(X, lens)
    torch.testing.assert_close(ours, d2l.masked_softmax(X.clone(), lens))
    row_lens = lens.reshape(5, -1, 1).expand(5, 3, 1)  # (B, q, 1)
    padding = (torch.arange(7) >= row_lens) & (row_lens > 0)  # (B, q, k)
    assert padding.any() and torch.all(ours[padding] == 0)  # padding gets exactly zero weight


def test_masked_softmax_heads_and_errors():
    torch.manual_seed(1)
    X = torch.randn(2, 4, 3, 6)  # (B, heads, q, k)
    lens = torch.tensor([2, 5])
    out = masked_softmax(X, lens)
    for h in range(4):
        torch.testing.assert_close(out[:, h], masked_softmax(X[:, h], lens))
    with pytest.raises(ValueError, match="batch"):
        masked_softmax(X, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="entries per row"):
        masked_softmax(X[:, 0], torch.ones(2, 5, dtype=torch.long))


@pytest.mark.parametrize("seed", range(4))
def test_attention_matches_torch_sdpa(seed, kernel):
    torch.manual_seed(seed)
    B, h, q, k, d = 3, 2, int(torch.randint(1, 6, ())), int(torch.randint(1, 9, ())), 4
    Q, K, V = torch.randn(B, h, q, d), torch.randn(B, h, k, d), torch.randn(B, h, k, 5)
    lens = _lens(B, k)
    keep = (torch.arange(k) < lens[:, None])[:, None, None, :]  # (B, 1, 1, k)
    expected = F.scaled_dot_product_attention(Q, K, V, attn_mask=keep)
    fused, none = dot_product_attention(Q, K, V, lens)
    explicit, weights = dot_product_attention(Q, K, V, lens, need_weights=True)
    assert none is None
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(explicit, expected, rtol=1e-5, atol=1e-5)
    assert torch.all(weights.masked_select(~keep.expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, h, q))


def test_causal_attention_top_and_bottom_aligned(kernel):
    torch.manual_seed(2)
    Q, K, V = torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4)
    expected = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
    torch.testing.assert_close(dot_product_attention(Q, K, V, causal=True)[0], expected)
    torch.testing.assert_close(dot_product_attention(Q, K, V, causal=True, need_weights=True)[0], expected,
                               rtol=1e-5, atol=1e-5)
    # The last 2 queries of 6 positions (as with a cache) see keys up to their own positions.
    torch.testing.assert_close(dot_product_attention(Q[:, :, 4:], K, V, causal=True)[0], expected[:, :, 4:],
                               rtol=1e-5, atol=1e-5)


def _d2l_mha(ours: MultiHeadAttention, d: int, heads: int):
    theirs = d2l.MultiHeadAttention(d, heads, 0.0)
    x = torch.zeros(1, 1, d)
    theirs(x, x, x, None)  # materialize the lazy layers, then copy our weights in
    theirs.load_state_dict(ours.state_dict())
    return theirs.eval()


@pytest.mark.parametrize("per_query", [False, True])
def test_multihead_attention_matches_d2l(per_query, kernel):
    torch.manual_seed(3)
    d, heads, B, q, k = 16, 4, 3, 5, 7
    ours = MultiHeadAttention(d, heads).eval()
    theirs = _d2l_mha(ours, d, heads)
    Xq, Xk = torch.randn(B, q, d), torch.randn(B, k, d)
    lens = _lens(B, k, q if per_query else None)
    expected = theirs(Xq, Xk, Xk, lens)
    torch.testing.assert_close(ours(Xq, Xk, Xk, lens), expected, rtol=1e-5, atol=1e-5)
    ours.record_weights = True
    torch.testing.assert_close(ours(Xq, Xk, Xk, lens), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.attention_weights.reshape(B * heads, q, k),
                               theirs.attention.attention_weights, rtol=1e-5, atol=1e-6)


def test_multihead_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)



def _attention_grads(Q, K, V, lens, causal=False, need_weights=False):
    Q, K, V = (t.detach().clone().requires_grad_() for t in (Q, K, V))
    out, _ = dot_product_attention(Q, K, V, lens, causal, need_weights=need_weights)
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape).to(out.dtype))
    return out.detach(), Q.grad, K.grad, V.grad


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("per_query", [False, True])
def test_explicit_kernel_gradients_match_fused_kernel(causal, per_query, monkeypatch):
    torch.manual_seed(5)
    B, h, n, d = 3, 2, 6, 4
    Q, K, V = torch.randn(B, h, n, d), torch.randn(B, h, n, d), torch.randn(B, h, n, 3)
    lens = _lens(B, n, n if per_query else None)
    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 10**6)
    explicit = _attention_grads(Q, K, V, lens, causal)
    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 0)
    fused = _attention_grads(Q, K, V, lens, causal)
    textbook = _attention_grads(Q, K, V, lens, causal, need_weights=True)
    for ours, theirs, other in zip(explicit, fused, textbook, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours, other, rtol=1e-5, atol=1e-5)


def test_explicit_kernel_passes_gradcheck(monkeypatch):
    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 10**6)
    torch.manual_seed(6)
    Q, K, V = (torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    lens = torch.tensor([2, 4])
    assert torch.autograd.gradcheck(lambda q, k, v: dot_product_attention(q, k, v, lens)[0], (Q, K, V))
    out, _ = dot_product_attention(Q, K, V, lens)
    assert out.grad_fn.name() == "_ExplicitAttentionBackward"


def test_explicit_kernel_ignores_padding_exactly(monkeypatch):
    """Padded keys get exactly zero weight (no tiny leak, no denormal gradients); a row with
    no valid key is uniform, as in masked_softmax and d2l."""
    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 10**6)
    torch.manual_seed(7)
    Q, K, V = torch.randn(3, 2, 4, 8) * 30, torch.randn(3, 2, 6, 8) * 30, torch.randn(3, 2, 6, 5)
    lens = torch.tensor([0, 2, 6])
    out, dQ, dK, dV = _attention_grads(Q, K, V, lens)
    assert torch.all(dK[1, :, 2:] == 0) and torch.all(dV[1, :, 2:] == 0)
    noisy = V.clone()
    noisy[1, :, 2:] = 1e4 * torch.randn(2, 4, 5)
    assert torch.equal(dot_product_attention(Q, K, noisy, lens)[0][1], out[1])
    torch.testing.assert_close(out[0], V[0].mean(dim=1, keepdim=True).expand(2, 4, 5))  # no valid key
    torch.testing.assert_close(out, dot_product_attention(Q, K, V, lens, need_weights=True)[0])
    grads = torch.cat([g.flatten() for g in (dQ, dK, dV)])
    tiny = (grads != 0) & (grads.abs() < torch.finfo(torch.float32).tiny)
    assert not tiny.any()  # denormal numbers make every later CPU product far slower


def test_explicit_kernel_attention_dropout_uses_one_mask_both_ways(monkeypatch):
    from lib.dropout import keep_mask

    monkeypatch.setattr(lib.attention, "_EXPLICIT_MAX_KEYS", 10**6)
    torch.manual_seed(8)
    Q, K, V = (torch.randn(2, 2, 5, 4, requires_grad=True) for _ in range(3))
    lens = torch.tensor([3, 5])
    torch.manual_seed(9)
    out, _ = dot_product_attention(Q, K, V, lens, dropout_p=0.3)
    out.sum().backward()
    grads = [t.grad.clone() for t in (Q, K, V)]
    for t in (Q, K, V):
        t.grad = None
    _, weights = dot_product_attention(Q, K, V, lens, need_weights=True)
    torch.manual_seed(9)
    expected = (weights * keep_mask(weights.shape, 0.3)) @ V
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    for ours, theirs in zip(grads, (Q.grad, K.grad, V.grad), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_cpu_picks_the_explicit_kernel_only_for_short_sequences():
    def kernel_of(num_keys: int) -> str:
        Q, K = torch.randn(2, 2, 3, 4, requires_grad=True), torch.randn(2, 2, num_keys, 4)
        return dot_product_attention(Q, K, K, torch.tensor([2, num_keys]))[0].grad_fn.name()

    limit = lib.attention._EXPLICIT_MAX_KEYS
    assert kernel_of(limit) == "_ExplicitAttentionBackward"
    assert kernel_of(limit + 1) != "_ExplicitAttentionBackward"


def test_compiled_short_cpu_attention_uses_the_textbook_formula():
    """Under torch.compile a short CPU attention is traced from its formula, not as the
    fused kernel (inductor keeps that as one call, as slow as in eager mode), and gives
    the same numbers as eager mode, padding and causal mask included."""
    torch.manual_seed(14)
    Q, K, V = (torch.randn(3, 2, 5, 4, requires_grad=True) for _ in range(3))
    lens = torch.tensor([5, 2, 1])

    def attend(Q, K, V, lens):
        return dot_product_attention(Q, K, V, lens)[0] + dot_product_attention(Q, K, V, causal=True)[0]

    explained = torch._dynamo.explain(attend)(Q, K, V, lens)
    code = "".join(graph.code for graph in explained.graphs)
    assert explained.graph_count == 1 and "matmul" in code and "scaled_dot_product_attention" not in code
    expected = attend(Q, K, V, lens)
    grads = torch.autograd.grad(expected.sum(), (Q, K, V))
    compiled = torch.compile(attend, fullgraph=True)(Q, K, V, lens)
    torch.testing.assert_close(compiled, expected)
    for ours, theirs in zip(torch.autograd.grad(compiled.sum(), (Q, K, V)), grads, strict=True):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("num_keys", [6, 30])  # the explicit kernel, then torch's fused kernel
def test_a_row_with_no_valid_key_is_uniform_on_every_path(num_keys):
    """As in masked_softmax (and d2l): such a row's output is the mean of the values, and
    its queries and keys get no gradient from it. The fused kernel once gave softmax of the
    scores minus 1e6, not uniform, and the explicit kernel's backward once sent gradients
    through the masked scores."""
    torch.manual_seed(16)
    Q, K, V = (torch.randn(2, 2, n, 4, requires_grad=True) for n in (3, num_keys, num_keys))
    lens = torch.tensor([0, 2])

    def outputs_and_grads(need_weights: bool):
        out = dot_product_attention(Q * 3, K * 3, V, lens, need_weights=need_weights)[0]  # (B, h, q, v)
        return out, torch.autograd.grad((out ** 2).sum(), (Q, K, V))

    (lean, lean_grads), (textbook, textbook_grads) = outputs_and_grads(False), outputs_and_grads(True)
    torch.testing.assert_close(lean[0], V[0].mean(-2, keepdim=True).expand(2, 3, 4).detach())
    torch.testing.assert_close(lean, textbook)
    for ours, theirs in zip(lean_grads, textbook_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)  # the fused kernel sums in another order
    assert torch.all(lean_grads[0][0] == 0) and torch.all(lean_grads[1][0] == 0)


def test_masked_softmax_without_lens_is_plain_softmax():
    torch.manual_seed(10)
    X = torch.randn(2, 3, 5)
    torch.testing.assert_close(masked_softmax(X), d2l.masked_softmax(X.clone(), None))
    torch.testing.assert_close(masked_softmax(X), F.softmax(X, dim=-1))


def test_dot_product_attention_rejects_incompatible_shapes():
    Q, K, V = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match="incompatible shapes"):
        dot_product_attention(Q, K[..., :3], V)  # key size differs from the query size
    with pytest.raises(ValueError, match="incompatible shapes"):
        dot_product_attention(Q, K, V[:, :4])  # fewer values than keys


def test_multihead_attention_records_weights_only_when_asked(kernel):
    from lib.attention import recording_attention

    torch.manual_seed(11)
    mha = MultiHeadAttention(8, 2).eval()
    X = torch.randn(2, 3, 8)
    assert not mha.record_weights
    mha(X, X, X)
    assert mha.attention_weights is None  # the fast path keeps no weights
    with recording_attention(mha) as layers:
        assert layers == [mha]
        mha(X, X, X)
    assert mha.attention_weights.shape == (2, 2, 3, 3) and not mha.record_weights


@pytest.mark.parametrize("causal", [False, True])
def test_attention_without_head_axis_matches_torch_sdpa(causal, kernel):
    """3-D inputs ``(B, q, d)``, with q, k and d all different: the axes are counted from the end."""
    torch.manual_seed(12)
    B, q, k, d = 3, 2, 5, 4
    Q, K, V = torch.randn(B, q, d), torch.randn(B, k, d), torch.randn(B, k, 6)
    lens = torch.tensor([5, 2, 3])
    keep = torch.arange(k) < lens[:, None, None]  # (B, 1, k)
    if causal:  # the last q of k positions: query i sees keys up to k - q + i
        keep = keep & (torch.arange(k) <= torch.arange(k - q, k)[:, None])
    weight = torch.linspace(-1, 1, B * q * 6).reshape(B, q, 6)
    Qr, Kr, Vr = (t.clone().requires_grad_() for t in (Q, K, V))
    expected = F.scaled_dot_product_attention(Qr, Kr, Vr, attn_mask=keep)
    (expected * weight).sum().backward()
    for need_weights in (False, True):
        Qo, Ko, Vo = (t.clone().requires_grad_() for t in (Q, K, V))
        out, weights = dot_product_attention(Qo, Ko, Vo, lens, causal, need_weights=need_weights)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        (out * weight).sum().backward()
        for ours, theirs in zip((Qo, Ko, Vo), (Qr, Kr, Vr), strict=True):
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-5)
        if need_weights:
            assert weights.shape == (B, q, k) and torch.all(weights[~keep.expand(B, q, k)] == 0)
