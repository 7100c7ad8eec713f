"""The evidence lower bound and EM: KL divergence, ELBO, diagonal Gaussian mixtures.

Introduced in the chapter *Approximate inference from a deep learning viewpoint*
(chapters/inference, page *EM and the evidence lower bound*). :func:`elbo` and
:func:`kl_divergence` check the identity ``log p(x) = ELBO(q) + KL(q || p(z | x))`` for a
discrete latent variable (the page *Mean-field variational inference* uses them too); EM
fits a Gaussian mixture with diagonal covariances by coordinate ascent on the ELBO, which
never decreases the log-likelihood. Log-likelihoods are in nats. The binary energy models
and their exact posteriors are in :mod:`lib.inference`. References: Goodfellow, Bengio and
Courville, *Deep Learning* (2016), chapter 19; Neal and Hinton, *A view of the EM
algorithm* (1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from lib.inference import check_float_tensor


def kl_divergence(q: Tensor, p: Tensor) -> Tensor:
    """``KL(q || p) = sum_k q_k log(q_k / p_k)`` over the last dimension: ``(..., K)`` -> ``(...)``.

    Uses ``0 log 0 = 0``; it is ``inf`` where ``q_k > 0 = p_k``.
    Introduced in: Approximate inference (EM and the ELBO).
    """
    if q.shape != p.shape or q.dim() < 1:
        raise ValueError(
            f"q and p must have the same shape (..., K), got {tuple(q.shape)} and {tuple(p.shape)}"
        )
    return (torch.xlogy(q, q) - torch.xlogy(q, p)).sum(dim=-1)


def elbo(q: Tensor, log_joint: Tensor) -> Tensor:
    """``ELBO(q) = sum_z q(z) [log p(x, z) - log q(z)]`` over discrete ``z``: ``(..., K) -> (...)``.

    ``log_joint[..., k] = log p(x, z = k)``. Then ``log p(x) = ELBO(q) + KL(q || p(z | x))``.
    Introduced in: Approximate inference (EM and the ELBO).
    """
    if q.shape != log_joint.shape or q.dim() < 1:
        raise ValueError(f"q and log_joint must have the same shape (..., K), got "
                         f"{tuple(q.shape)} and {tuple(log_joint.shape)}")
    expected = torch.where(q > 0, q * log_joint, torch.zeros_like(q))  # 0 * (-inf) counts as 0
    return (expected - torch.xlogy(q, q)).sum(dim=-1)


class GMMParams(NamedTuple):
    """A diagonal Gaussian mixture: ``weights (K,)``, ``means (K, d)``, ``variances (K, d)``."""

    weights: Tensor
    means: Tensor
    variances: Tensor


def gmm_log_joint(X: Tensor, weights: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """``log p(x_n, z_n = k) = log pi_k + log N(x_n; mu_k, diag(sigma2_k))``: ``(n, K)``.

    Introduced in: Approximate inference (EM and the ELBO).
    """
    check_float_tensor(X, "X", 2)
    if means.shape != variances.shape or means.shape != (weights.shape[0], X.shape[1]):
        raise ValueError(f"expected weights (K,), means and variances (K, {X.shape[1]}), got "
                         f"{tuple(weights.shape)}, {tuple(means.shape)}, {tuple(variances.shape)}")
    diff = X[:, None, :] - means[None]  # (n, K, d)
    log_normal = -0.5 * (torch.log(2 * math.pi * variances)[None] + diff**2 / variances[None])
    log_normal = log_normal.sum(dim=-1)  # (n, K)
    return torch.log(weights)[None] + log_normal  # (n, K)


def gmm_log_likelihood(X: Tensor, weights: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """``sum_n log p(x_n)`` (a scalar): the log-likelihood of the whole data set.

    Introduced in: Approximate inference (EM and the ELBO).
    """
    return torch.logsumexp(gmm_log_joint(X, weights, means, variances), dim=1).sum()


def gmm_posterior(X: Tensor, weights: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    """Responsibilities ``p(z_n = k | x_n)``: ``(n, K)``, rows sum to 1.

    Introduced in: Approximate inference (EM and the ELBO).
    """
    return torch.softmax(gmm_log_joint(X, weights, means, variances), dim=1)


def em_step(
    X: Tensor, weights: Tensor, means: Tensor, variances: Tensor,
    min_variance: float = 1e-6,
) -> GMMParams:
    """One EM step for a diagonal Gaussian mixture; returns the new parameters.

    E step: ``q(z_n) = p(z_n | x_n)`` (the ELBO touches the log-likelihood). M step: the
    weighted maximum-likelihood weights, means and variances (variances floored at
    ``min_variance``, which keeps the M step a constrained maximum, so EM stays monotone).
    Introduced in: Approximate inference (EM and the ELBO).
    """
    r = gmm_posterior(X, weights, means, variances)  # (n, K)
    Nk = r.sum(dim=0).clamp_min(torch.finfo(X.dtype).tiny)  # (K,)
    new_means = (r.T @ X) / Nk[:, None]  # (K, d)
    diff2 = (X[:, None, :] - new_means[None]) ** 2  # (n, K, d)
    new_variances = torch.einsum("nk,nkd->kd", r, diff2) / Nk[:, None]
    return GMMParams(Nk / X.shape[0], new_means, new_variances.clamp_min(min_variance))


@dataclass
class EMConfig:
    """EM for a diagonal Gaussian mixture."""

    num_components: int = 3
    num_iters: int = 50
    min_variance: float = 1e-6
    seed: int = 0  # picks the data points that start as means


def init_gmm(X: Tensor, num_components: int, seed: int = 0) -> GMMParams:
    """Uniform weights, ``num_components`` distinct data points as means, the data variance.

    Introduced in: Approximate inference (EM and the ELBO).
    """
    check_float_tensor(X, "X", 2)
    if not 1 <= num_components <= X.shape[0]:
        raise ValueError(f"num_components must lie in [1, {X.shape[0]}], got {num_components}")
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(X.shape[0], generator=generator)[:num_components].to(X.device)
    variances = X.var(dim=0, unbiased=False).expand(num_components, -1).clone()  # (K, d)
    weights = torch.full((num_components,), 1 / num_components, dtype=X.dtype, device=X.device)
    return GMMParams(weights, X[pick].clone(), variances)


def fit_gmm(X: Tensor, config: EMConfig | None = None) -> tuple[GMMParams, list[float]]:
    """EM from :func:`init_gmm`; returns the parameters and ``log p(X)`` after 0, 1, ... steps.

    Introduced in: Approximate inference (EM and the ELBO).
    """
    config = config or EMConfig()
    params = init_gmm(X, config.num_components, config.seed)
    history = [float(gmm_log_likelihood(X, *params))]
    for _ in range(config.num_iters):
        params = em_step(X, *params, min_variance=config.min_variance)
        history.append(float(gmm_log_likelihood(X, *params)))
    return params, history
