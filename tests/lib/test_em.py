"""lib.em against torch.distributions, closed forms, scipy and sklearn."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as np_logsumexp
from scipy.stats import multivariate_normal

import lib.em as em

D = torch.float64


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


# ----------------------------------------------------------------- KL and ELBO
def test_kl_divergence_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    q = torch.softmax(torch.randn(4, 3, 6, generator=g, dtype=D) * 3, -1)
    p = torch.softmax(torch.randn(4, 3, 6, generator=g, dtype=D) * 3, -1)
    q[0, 0] = torch.tensor([0.5, 0.5, 0, 0, 0, 0], dtype=D)  # zeros in q: 0 log 0 = 0
    expected = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=q), torch.distributions.Categorical(probs=p)
    )
    torch.testing.assert_close(em.kl_divergence(q, p), expected)
    assert float(em.kl_divergence(q[1, 1], q[1, 1])) == 0.0
    assert math.isinf(float(em.kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))))
    with pytest.raises(ValueError):
        em.kl_divergence(q, p[..., :5])


@pytest.mark.parametrize("seed", range(5))
def test_elbo_plus_kl_is_the_log_evidence(seed):
    g = torch.Generator().manual_seed(seed)
    log_joint = torch.randn(20, 7, generator=g, dtype=D) * 4 - 3  # log p(x, z = k)
    q = torch.softmax(torch.randn(20, 7, generator=g, dtype=D) * 2, -1)
    q[0] = torch.tensor([0.2, 0, 0.8, 0, 0, 0, 0], dtype=D)
    log_px = torch.logsumexp(log_joint, -1)
    posterior = torch.softmax(log_joint, -1)
    total = em.elbo(q, log_joint) + em.kl_divergence(q, posterior)
    assert float((total - log_px).abs().max()) < 1e-6
    assert bool((em.elbo(q, log_joint) <= log_px + 1e-12).all())
    torch.testing.assert_close(em.elbo(posterior, log_joint), log_px)  # tight at the posterior


def test_elbo_ignores_impossible_states_that_q_avoids():
    log_joint = torch.tensor([math.log(0.3), -math.inf, math.log(0.1)], dtype=D)
    q = torch.tensor([0.75, 0.0, 0.25], dtype=D)
    torch.testing.assert_close(em.elbo(q, log_joint), torch.tensor(math.log(0.4), dtype=D))


def test_elbo_shape_errors():
    q = torch.full((4, 3), 1 / 3, dtype=D)
    with pytest.raises(ValueError, match="same shape"):
        em.elbo(q, torch.zeros(4, 2, dtype=D))
    with pytest.raises(ValueError, match="same shape"):
        em.elbo(torch.tensor(1.0, dtype=D), torch.tensor(0.0, dtype=D))  # no K dimension


# --------------------------------------------------------------- Gaussian mixture
def test_gmm_log_likelihood_matches_scipy():
    X, w, m, v = random_gmm(40, 3, 2, 0)
    log_pdf = np.stack([
        multivariate_normal(m[k].numpy(), np.diag(v[k].numpy())).logpdf(X.numpy()) for k in range(3)
    ], axis=1)
    expected = np_logsumexp(log_pdf + np.log(w.numpy()), axis=1).sum()
    assert abs(float(em.gmm_log_likelihood(X, w, m, v)) - expected) < 1e-9
    post = em.gmm_posterior(X, w, m, v)
    torch.testing.assert_close(post.sum(1), torch.ones(40, dtype=D))


def test_em_step_matches_sklearn():
    from sklearn.mixture import GaussianMixture

    X, *_ = random_gmm(150, 3, 2, 1)
    start = em.init_gmm(X, 3, seed=0)
    params = start
    for _ in range(6):
        params = em.em_step(X, *params, min_variance=0.0)
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
    params = em.em_step(X, one, torch.zeros(1, 3, dtype=D), torch.ones(1, 3, dtype=D))
    torch.testing.assert_close(params.weights, one)
    torch.testing.assert_close(params.means[0], X.mean(0))
    torch.testing.assert_close(params.variances[0], X.var(0, unbiased=False))


@pytest.mark.parametrize("seed", range(6))
def test_em_never_decreases_the_log_likelihood(seed):
    X, *_ = random_gmm(60, 4, 2, seed)
    _, history = em.fit_gmm(X, em.EMConfig(num_components=4, num_iters=40, seed=seed))
    steps = np.diff(history)
    assert (steps >= -1e-9 * (1 + abs(history[0]))).all(), steps.min()
    assert history[-1] > history[0]


def test_em_step_is_a_fixed_point_at_convergence():
    X, *_ = random_gmm(80, 2, 2, 3)
    params, _ = em.fit_gmm(X, em.EMConfig(num_components=2, num_iters=300))
    again = em.em_step(X, *params)
    for a, e in zip(again, params, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-8)


def test_gmm_shape_errors():
    X, w, m, v = random_gmm(10, 2, 3, 0)
    with pytest.raises(ValueError):
        em.gmm_log_likelihood(X, w, m[:, :2], v)
    with pytest.raises(ValueError):
        em.init_gmm(X, 11)
    # one parameter of the wrong size is enough, whichever it is
    for args in ((w, m, v[:, :2]), (torch.full((3,), 1 / 3, dtype=D), m, v)):
        with pytest.raises(ValueError, match="expected weights"):
            em.gmm_log_joint(X, *args)


@pytest.mark.parametrize("K", [1, 10])
def test_init_gmm_uniform_weights_distinct_points_and_the_data_variance(K):
    """Any ``K`` from 1 to ``n`` is valid; the start variance is the maximum-likelihood one (ddof 0)."""
    X, *_ = random_gmm(10, 2, 3, 0)
    params = em.init_gmm(X, K, seed=1)
    torch.testing.assert_close(params.weights, torch.full((K,), 1 / K, dtype=D))
    rows = [tuple(r) for r in X.tolist()]
    means = [tuple(r) for r in params.means.tolist()]
    assert set(means) <= set(rows) and len(set(means)) == K
    expected = torch.from_numpy(np.var(X.numpy(), axis=0, ddof=0)).expand(K, -1)
    torch.testing.assert_close(params.variances, expected)
