"""lib.inference against enumeration, closed forms, torch.distributions, scipy and sklearn."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as np_logsumexp
from scipy.stats import multivariate_normal

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


def random_gmm(n: int, K: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, d, generator=g, dtype=D) * 3
    labels = torch.randint(K, (n,), generator=g)
    spread = 0.5 + torch.rand(K, 1, generator=g, dtype=D)  # (K, 1)
    X = centres[labels] + torch.randn(n, d, generator=g, dtype=D) * spread[labels]  # (n, d)
    weights = torch.softmax(torch.randn(K, generator=g, dtype=D), 0)
    means = torch.randn(K, d, generator=g, dtype=D)
    variances = 0.5 + torch.rand(K, d, generator=g, dtype=D)
    return X, weights, means, variances


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
    torch.testing.assert_close(inf.mean_field_elbo(mu, W, b), inf.elbo(q, neg_energy))


def test_mean_field_is_exact_without_couplings():
    b = torch.tensor([-1.0, 0.3, 2.0], dtype=D)
    W = torch.zeros(3, 3, dtype=D)
    result = inf.mean_field(W, b)
    log_Z, marginals = inf.boltzmann_bruteforce(W, b)
    torch.testing.assert_close(result.mu, torch.sigmoid(b))
    torch.testing.assert_close(result.mu, marginals)
    assert abs(result.elbos[-1] - float(log_Z)) < 1e-12


# ----------------------------------------------------------------- KL and ELBO
def test_kl_divergence_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    q = torch.softmax(torch.randn(4, 3, 6, generator=g, dtype=D) * 3, -1)
    p = torch.softmax(torch.randn(4, 3, 6, generator=g, dtype=D) * 3, -1)
    q[0, 0] = torch.tensor([0.5, 0.5, 0, 0, 0, 0], dtype=D)  # zeros in q: 0 log 0 = 0
    expected = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=q), torch.distributions.Categorical(probs=p)
    )
    torch.testing.assert_close(inf.kl_divergence(q, p), expected)
    assert float(inf.kl_divergence(q[1, 1], q[1, 1])) == 0.0
    assert math.isinf(float(inf.kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))))
    with pytest.raises(ValueError):
        inf.kl_divergence(q, p[..., :5])


@pytest.mark.parametrize("seed", range(5))
def test_elbo_plus_kl_is_the_log_evidence(seed):
    g = torch.Generator().manual_seed(seed)
    log_joint = torch.randn(20, 7, generator=g, dtype=D) * 4 - 3  # log p(x, z = k)
    q = torch.softmax(torch.randn(20, 7, generator=g, dtype=D) * 2, -1)
    q[0] = torch.tensor([0.2, 0, 0.8, 0, 0, 0, 0], dtype=D)
    log_px = torch.logsumexp(log_joint, -1)
    posterior = torch.softmax(log_joint, -1)
    total = inf.elbo(q, log_joint) + inf.kl_divergence(q, posterior)
    assert float((total - log_px).abs().max()) < 1e-6
    assert bool((inf.elbo(q, log_joint) <= log_px + 1e-12).all())
    torch.testing.assert_close(inf.elbo(posterior, log_joint), log_px)  # tight at the posterior


def test_elbo_ignores_impossible_states_that_q_avoids():
    log_joint = torch.tensor([math.log(0.3), -math.inf, math.log(0.1)], dtype=D)
    q = torch.tensor([0.75, 0.0, 0.25], dtype=D)
    torch.testing.assert_close(inf.elbo(q, log_joint), torch.tensor(math.log(0.4), dtype=D))


# --------------------------------------------------------------- Gaussian mixture
def test_gmm_log_likelihood_matches_scipy():
    X, w, m, v = random_gmm(40, 3, 2, 0)
    log_pdf = np.stack([
        multivariate_normal(m[k].numpy(), np.diag(v[k].numpy())).logpdf(X.numpy()) for k in range(3)
    ], axis=1)
    expected = np_logsumexp(log_pdf + np.log(w.numpy()), axis=1).sum()
    assert abs(float(inf.gmm_log_likelihood(X, w, m, v)) - expected) < 1e-9
    post = inf.gmm_posterior(X, w, m, v)
    torch.testing.assert_close(post.sum(1), torch.ones(40, dtype=D))


def test_em_step_matches_sklearn():
    from sklearn.mixture import GaussianMixture

    X, *_ = random_gmm(150, 3, 2, 1)
    start = inf.init_gmm(X, 3, seed=0)
    params = start
    for _ in range(6):
        params = inf.em_step(X, *params, min_variance=0.0)
    gm = GaussianMixture(
        3, covariance_type="diag", reg_covar=0.0, max_iter=6, tol=0.0,
        weights_init=start.weights.numpy(), means_init=start.means.numpy(),
        precisions_init=1 / start.variances.numpy(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": we asked for exactly 6 steps
        gm.fit(X.numpy())
    np.testing.assert_allclose(params.weights.numpy(), gm.weights_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(params.means.numpy(), gm.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(params.variances.numpy(), gm.covariances_, rtol=1e-9, atol=1e-12)


def test_em_step_with_one_component_is_the_sample_mean_and_variance():
    X, *_ = random_gmm(30, 2, 3, 2)
    one = torch.ones(1, dtype=D)
    params = inf.em_step(X, one, torch.zeros(1, 3, dtype=D), torch.ones(1, 3, dtype=D))
    torch.testing.assert_close(params.weights, one)
    torch.testing.assert_close(params.means[0], X.mean(0))
    torch.testing.assert_close(params.variances[0], X.var(0, unbiased=False))


@pytest.mark.parametrize("seed", range(6))
def test_em_never_decreases_the_log_likelihood(seed):
    X, *_ = random_gmm(60, 4, 2, seed)
    _, history = inf.fit_gmm(X, inf.EMConfig(num_components=4, num_iters=40, seed=seed))
    steps = np.diff(history)
    assert (steps >= -1e-9 * (1 + abs(history[0]))).all(), steps.min()
    assert history[-1] > history[0]


def test_em_step_is_a_fixed_point_at_convergence():
    X, *_ = random_gmm(80, 2, 2, 3)
    params, _ = inf.fit_gmm(X, inf.EMConfig(num_components=2, num_iters=300))
    again = inf.em_step(X, *params)
    for a, e in zip(again, params, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-8)


def test_gmm_shape_errors():
    X, w, m, v = random_gmm(10, 2, 3, 0)
    with pytest.raises(ValueError):
        inf.gmm_log_likelihood(X, w, m[:, :2], v)
    with pytest.raises(ValueError):
        inf.init_gmm(X, 11)


# ------------------------------------------------------------------------- VAE
def small_vae(seed: int = 0, latent_dim: int = 2) -> inf.VAE:
    torch.manual_seed(seed)
    return inf.VAE(inf.VAEConfig(input_dim=10, hidden_dim=16, latent_dim=latent_dim))


def test_vae_elbo_kl_term_matches_torch_distributions():
    model = small_vae()
    x = (torch.rand(5, 10, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    mu, logvar = model.encode(x)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()  # every pixel Bernoulli(1/2): log p(x | z) = -10 log 2
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = -10 * math.log(2) - torch.distributions.kl_divergence(q, prior).sum(-1)
    torch.testing.assert_close(inf.vae_elbo(model, x), expected)


def test_vae_grid_marginal_matches_prior_sampling_and_bounds_the_elbo():
    model = small_vae(2)
    x = (torch.rand(4, 10, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    grid = inf.vae_grid_posterior(model, x, limit=6.0, steps=241)
    log_px = grid.log_marginal()
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.randn(200_000, 2)
        mc = torch.logsumexp(inf.bernoulli_log_likelihood(x[:, None], model.decode(z)[None]), 1)
        mc -= math.log(len(z))
        elbo = inf.vae_elbo(model, x, num_samples=20_000)
    torch.testing.assert_close(log_px, mc, rtol=0, atol=0.02)
    assert bool((elbo <= log_px + 0.02).all())
    density = grid.log_posterior().exp().sum(1) * math.exp(grid.log_cell)
    torch.testing.assert_close(density, torch.ones(4), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="2-D"):
        inf.vae_grid_posterior(small_vae(latent_dim=3), x)


@pytest.mark.slow
def test_train_vae_raises_the_elbo_on_digits():
    from lib.data import digits_tensors

    X = (digits_tensors()[0].flatten(1) > 0.5).float()[:500]
    config = inf.VAEConfig(input_dim=64, hidden_dim=64, num_epochs=30)
    torch.manual_seed(0)
    history = inf.train_vae(inf.VAE(config), X, config)
    assert history[-1] > history[0] + 5, history
