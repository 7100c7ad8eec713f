"""lib.inference against enumeration and closed forms."""

from __future__ import annotations

import pytest
import torch

import lib.em as em
import lib.inference as inf

D = torch.float64


def random_rbm(n_v: int, n_h: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_h, n_v, generator=g, dtype=D) * scale  # (n_h, n_v)
    b = torch.randn(n_v, generator=g, dtype=D)
    c = torch.randn(n_h, generator=g, dtype=D)
    return W, b, c


def random_bm(n: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=D) * scale
    W = (A + A.T) / 2
    W.fill_diagonal_(0)
    return W, torch.randn(n, generator=g, dtype=D)


def joint_rbm_table(W, b, c):
    """-E(v, h) for every (v, h): (2**n_v, 2**n_h), straight from rbm_energy."""
    n_h, n_v = W.shape
    V, H = inf.binary_states(n_v), inf.binary_states(n_h)
    Vr = V.repeat_interleave(len(H), dim=0)  # (2**n_v * 2**n_h, n_v)
    Hr = H.repeat(len(V), 1)
    return -inf.rbm_energy(Vr, Hr, W, b, c).reshape(len(V), len(H))


# ----------------------------------------------------------------------- states
def test_binary_states_enumerates_every_vector_once():
    S = inf.binary_states(5)
    assert S.shape == (32, 5)
    assert len({tuple(row.tolist()) for row in S}) == 32
    assert S[1].tolist() == [0, 0, 0, 0, 1] and S[-1].tolist() == [1] * 5
    with pytest.raises(ValueError):
        inf.binary_states(inf.MAX_BRUTEFORCE_UNITS + 1)


# -------------------------------------------------------------------------- RBM
def test_rbm_energy_matches_the_formula():
    W, b, c = random_rbm(4, 3, 0)
    v = torch.tensor([[1, 0, 1, 1]], dtype=D)
    h = torch.tensor([[0, 1, 1]], dtype=D)
    expected = -(b @ v[0]) - (c @ h[0]) - h[0] @ W @ v[0]
    torch.testing.assert_close(inf.rbm_energy(v, h, W, b, c)[0], expected)


@pytest.mark.parametrize("seed", range(4))
def test_rbm_hidden_posterior_matches_enumeration(seed):
    W, b, c = random_rbm(5, 4, seed, scale=2.0)
    table = joint_rbm_table(W, b, c)  # (32, 16)
    H = inf.binary_states(4)
    post = torch.softmax(table, dim=1)  # P(h | v) for every v: (32, 16)
    exact = post @ H  # P(h_k = 1 | v): (32, 4)
    got = inf.rbm_hidden_posterior(inf.binary_states(5), W, c)
    torch.testing.assert_close(got, exact, rtol=1e-10, atol=1e-12)
    # the posterior factorises: P(h | v) = prod_k P(h_k | v)
    product = (H[None] * got[:, None] + (1 - H[None]) * (1 - got[:, None])).prod(-1)
    torch.testing.assert_close(product, post, rtol=1e-10, atol=1e-12)


def test_rbm_free_energy_sums_out_the_hidden_units():
    W, b, c = random_rbm(4, 5, 1)
    table = joint_rbm_table(W, b, c)
    torch.testing.assert_close(
        -inf.rbm_free_energy(inf.binary_states(4), W, b, c), torch.logsumexp(table, dim=1)
    )


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (6, 2), (7, 7)])
def test_rbm_log_partition_matches_enumeration(shape):
    W, b, c = random_rbm(*shape, seed=sum(shape))
    expected = torch.logsumexp(joint_rbm_table(W, b, c).reshape(-1), 0)
    got = inf.rbm_log_partition_bruteforce(W, b, c)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_rbm_log_partition_blocks_and_large_weights(monkeypatch):
    W, b, c = random_rbm(8, 5, 3)
    whole = inf.rbm_log_partition_bruteforce(W, b, c)
    monkeypatch.setattr(inf, "_BLOCK_STATES", 64)  # many small blocks
    torch.testing.assert_close(inf.rbm_log_partition_bruteforce(W, b, c), whole)
    big = inf.rbm_log_partition_bruteforce(W * 500, b * 500, c * 500)
    assert torch.isfinite(big) and big > 500


def test_rbm_log_partition_refuses_large_models():
    W, b, c = random_rbm(12, 9, 0)
    with pytest.raises(ValueError, match="<= 20"):
        inf.rbm_log_partition_bruteforce(W, b, c)
    with pytest.raises(ValueError):
        inf.rbm_log_partition_bruteforce(W, b, c[:-1])


def test_rbm_log_likelihood_is_normalised():
    W, b, c = random_rbm(6, 4, 2)
    total = torch.logsumexp(inf.rbm_log_likelihood(inf.binary_states(6), W, b, c), 0)
    assert abs(float(total)) < 1e-12


def test_rbm_log_likelihood_gradient_is_positive_minus_negative_phase():
    """d log P(v) / dW = P(h=1|v) v^T - E_model[h v^T]: the posterior is what learning needs."""
    W, b, c = random_rbm(5, 3, 4)
    W.requires_grad_(True)
    v = torch.tensor([[1, 0, 1, 1, 0]], dtype=D)
    inf.rbm_log_likelihood(v, W, b, c).sum().backward()
    with torch.no_grad():
        positive = inf.rbm_hidden_posterior(v, W, c).T @ v  # (3, 5)
        V = inf.binary_states(5)
        p_v = torch.softmax(-inf.rbm_free_energy(V, W, b, c), 0)  # (32,)
        negative = (inf.rbm_hidden_posterior(V, W, c) * p_v[:, None]).T @ V
    torch.testing.assert_close(W.grad, positive - negative)


# ---------------------------------------------------------- Boltzmann machines
def test_boltzmann_bruteforce_contains_the_rbm():
    W, b, c = random_rbm(4, 3, 5)
    full = torch.zeros(7, 7, dtype=D)
    full[:4, 4:], full[4:, :4] = W.T, W
    log_Z, marginals = inf.boltzmann_bruteforce(full, torch.cat([b, c]))
    torch.testing.assert_close(log_Z, inf.rbm_log_partition_bruteforce(W, b, c))
    S = inf.binary_states(7)
    p = torch.softmax(S @ torch.cat([b, c]) + 0.5 * ((S @ full) * S).sum(1), 0)
    torch.testing.assert_close(marginals, p @ S)


def test_boltzmann_bruteforce_blocks_and_checks(monkeypatch):
    W, b = random_bm(9, 0, scale=2.0)
    whole = inf.boltzmann_bruteforce(W, b)
    monkeypatch.setattr(inf, "_BLOCK_STATES", 50)
    for a, e in zip(inf.boltzmann_bruteforce(W, b), whole, strict=True):
        torch.testing.assert_close(a, e)
    with pytest.raises(ValueError, match="symmetric"):
        inf.boltzmann_bruteforce(W + torch.eye(9, dtype=D), b)
    with pytest.raises(ValueError):
        inf.boltzmann_bruteforce(W, b, max_units=8)


@pytest.mark.parametrize("seed", range(3))
def test_mean_field_is_a_monotone_lower_bound(seed):
    W, b = random_bm(10, seed, scale=1.5)
    log_Z, marginals = inf.boltzmann_bruteforce(W, b)
    result = inf.mean_field(W, b, inf.MeanFieldConfig(num_sweeps=1000, tol=0.0))
    assert all(e2 >= e1 - 1e-12 for e1, e2 in zip(result.elbos, result.elbos[1:], strict=False))
    assert result.elbos[-1] <= float(log_Z) + 1e-12
    # the fixed point satisfies the mean-field equations
    torch.testing.assert_close(result.mu, torch.sigmoid(b + W @ result.mu), rtol=1e-6, atol=1e-6)


def test_mean_field_elbo_equals_the_enumerated_elbo():
    W, b = random_bm(6, 7)
    mu = torch.rand(6, dtype=D, generator=torch.Generator().manual_seed(0))
    S = inf.binary_states(6)
    q = (S * mu + (1 - S) * (1 - mu)).prod(1)  # (64,) factorised q(s)
    neg_energy = S @ b + 0.5 * ((S @ W) * S).sum(1)
    torch.testing.assert_close(inf.mean_field_elbo(mu, W, b), em.elbo(q, neg_energy))


def test_mean_field_is_exact_without_couplings():
    b = torch.tensor([-1.0, 0.3, 2.0], dtype=D)
    W = torch.zeros(3, 3, dtype=D)
    result = inf.mean_field(W, b)
    log_Z, marginals = inf.boltzmann_bruteforce(W, b)
    torch.testing.assert_close(result.mu, torch.sigmoid(b))
    torch.testing.assert_close(result.mu, marginals)
    assert abs(result.elbos[-1] - float(log_Z)) < 1e-12


def test_inputs_are_checked_one_by_one():
    W, b, c = random_rbm(4, 3, 1)
    v, h = torch.ones(2, 4, dtype=D), torch.ones(2, 3, dtype=D)
    with pytest.raises(ValueError, match="floating torch.Tensor"):
        inf.rbm_energy(v.long(), h, W, b, c)
    with pytest.raises(ValueError, match="floating torch.Tensor"):
        inf.rbm_energy(v.tolist(), h, W, b, c)
    for bad_b, bad_c in ((b[:-1], c), (b, c[:-1])):  # each of b and c alone of the wrong size
        with pytest.raises(ValueError, match="expected b of shape"):
            inf.rbm_free_energy(v, W, bad_b, bad_c)
    for bad_v, bad_h in ((v[:1], h), (v[:, :3], h), (v, h[:, :2])):  # batch, visible, hidden sizes
        with pytest.raises(ValueError, match="expected v"):
            inf.rbm_energy(bad_v, bad_h, W, b, c)
    for bad_v, bad_c in ((v[:, :3], c), (v, c[:-1])):
        with pytest.raises(ValueError, match="expected v"):
            inf.rbm_hidden_posterior(bad_v, W, bad_c)


def test_bruteforce_limits_are_inclusive():
    assert inf.binary_states(0).shape == (1, 0)  # the one empty vector
    S = inf.binary_states(inf.MAX_BRUTEFORCE_UNITS, dtype=torch.uint8)
    assert S.shape == (2**20, 20) and S[-1].tolist() == [1] * 20
    W, b, c = random_rbm(3, 2, 6)
    torch.testing.assert_close(inf.rbm_log_partition_bruteforce(W, b, c, max_units=5),
                               torch.logsumexp(joint_rbm_table(W, b, c).reshape(-1), 0))
    W, b = random_bm(5, 6)
    torch.testing.assert_close(inf.boltzmann_bruteforce(W, b, max_units=5)[0], inf.boltzmann_bruteforce(W, b)[0])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_mean_field_stops_once_the_elbo_gains_less_than_tol(sign):
    W, b = random_bm(6, 3, scale=0.5)
    result = inf.mean_field(W, sign * b + 4 * sign, inf.MeanFieldConfig(num_sweeps=1000, tol=1e-10))
    gains = [e2 - e1 for e1, e2 in zip(result.elbos, result.elbos[1:], strict=False)]
    assert 2 < len(gains) < 1000 and gains[-1] < 1e-10 and all(g >= 1e-10 for g in gains[:-1])
