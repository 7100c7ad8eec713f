"""Approximate inference: exact posteriors, the ELBO, EM, mean field and a tiny VAE.

Introduced in the chapter *Approximate inference from a deep learning viewpoint*
(chapters/inference). Everything exact here is computed by enumeration or in closed form,
so the chapter can put each approximation next to the answer it approximates.

Conventions. Binary units take values in {0, 1}. A restricted Boltzmann machine (RBM) has
energy ``E(v, h) = -b.v - c.h - h.W v`` with ``W`` of shape ``(n_hidden, n_visible)``; a
Boltzmann machine (BM) over ``s`` has ``E(s) = -b.s - s.W s / 2`` with ``W`` symmetric and
zero on the diagonal. Gaussian mixtures have diagonal covariances. Log-likelihoods are in
nats. References: Goodfellow, Bengio and Courville, *Deep Learning* (2016), chapters 16-20;
Neal and Hinton, *A view of the EM algorithm* (1998); Kingma and Welling, *Auto-encoding
variational Bayes* (2014).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MAX_BRUTEFORCE_UNITS = 20  # 2**20 joint states: about a million, well under a second
_BLOCK_STATES = 2**18  # states scored at once while enumerating (bounds the memory)


def _check(t: Tensor, name: str, dim: int) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        kind = getattr(t, "dtype", type(t).__name__)
        raise ValueError(f"{name} must be a floating torch.Tensor, got {kind}")
    if t.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(t.shape)}")


def _bits(index: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    shifts = torch.arange(n - 1, -1, -1, device=index.device)  # first unit = most significant bit
    return ((index[:, None] >> shifts) & 1).to(dtype)  # (len(index), n)


def binary_states(n: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """All ``2**n`` binary vectors of length ``n`` as rows, in counting order: ``(2**n, n)``.

    Introduced in: Approximate inference (why inference).
    """
    if not 0 <= n <= MAX_BRUTEFORCE_UNITS:
        raise ValueError(f"n must lie in [0, {MAX_BRUTEFORCE_UNITS}], got {n}")
    return _bits(torch.arange(2**n, device=device), n, dtype)


def _state_blocks(n: int, dtype: torch.dtype, device, row_cost: int) -> Iterator[Tensor]:
    step = max(1, _BLOCK_STATES // row_cost)  # rows per block, each costing row_cost numbers
    for start in range(0, 2**n, step):
        index = torch.arange(start, min(start + step, 2**n), device=device)
        yield _bits(index, n, dtype)  # (block, n)


# ----------------------------------------------------------------------- RBM
def _check_rbm(W: Tensor, b: Tensor, c: Tensor) -> None:
    _check(W, "W", 2)
    _check(b, "b", 1)
    _check(c, "c", 1)
    if b.shape[0] != W.shape[1] or c.shape[0] != W.shape[0]:
        raise ValueError(
            f"W is (n_hidden, n_visible) = {tuple(W.shape)}: expected b of shape ({W.shape[1]},) "
            f"and c of shape ({W.shape[0]},), got {tuple(b.shape)} and {tuple(c.shape)}"
        )


def rbm_energy(v: Tensor, h: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``E(v, h) = -b.v - c.h - h.W v`` for batches ``v: (n, n_visible)``, ``h: (n, n_hidden)``.

    Returns ``(n,)``. Introduced in: Approximate inference (why inference).
    """
    _check_rbm(W, b, c)
    _check(v, "v", 2)
    _check(h, "h", 2)
    if v.shape[0] != h.shape[0] or v.shape[1] != W.shape[1] or h.shape[1] != W.shape[0]:
        raise ValueError(f"expected v (n, {W.shape[1]}) and h (n, {W.shape[0]}), got "
                         f"{tuple(v.shape)} and {tuple(h.shape)}")
    return -(v @ b) - (h @ c) - ((h @ W) * v).sum(dim=1)  # (n,)


def rbm_hidden_posterior(v: Tensor, W: Tensor, c: Tensor) -> Tensor:
    """Exact ``P(h_k = 1 | v) = sigmoid(W_k v + c_k)``: ``v (n, n_visible)`` -> ``(n, n_hidden)``.

    The hidden units are independent given ``v`` (no hidden-hidden weights), so these
    ``n_hidden`` numbers describe the whole posterior.
    Introduced in: Approximate inference (why inference).
    """
    _check(v, "v", 2)
    _check(W, "W", 2)
    _check(c, "c", 1)
    if v.shape[1] != W.shape[1] or c.shape[0] != W.shape[0]:
        raise ValueError(f"expected v (n, {W.shape[1]}) and c ({W.shape[0]},) for W of shape "
                         f"{tuple(W.shape)}, got {tuple(v.shape)} and {tuple(c.shape)}")
    return torch.sigmoid(v @ W.T + c)  # (n, n_hidden)


def rbm_free_energy(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_k softplus(W_k v + c_k)``; ``(n,)``.

    Introduced in: Approximate inference (why inference).
    """
    _check_rbm(W, b, c)
    _check(v, "v", 2)
    return -(v @ b) - F.softplus(v @ W.T + c).sum(dim=1)  # (n,)


def rbm_log_partition_bruteforce(
    W: Tensor, b: Tensor, c: Tensor, max_units: int = MAX_BRUTEFORCE_UNITS
) -> Tensor:
    """``log Z = log sum_{v, h} exp(-E(v, h))`` by log-sum-exp over all ``2**(n_v + n_h)`` states.

    Raises ``ValueError`` when ``n_visible + n_hidden > max_units``. The joint states are
    scored block by block, so memory stays bounded; the time grows as ``2**(n_v + n_h)``.
    Introduced in: Approximate inference (intractable inference).
    """
    _check_rbm(W, b, c)
    n_h, n_v = W.shape
    if n_v + n_h > max_units:
        raise ValueError(f"brute force over 2**{n_v + n_h} states refused: n_visible + n_hidden "
                         f"must be <= {max_units}")
    if n_h > n_v:  # the energy is symmetric in the two layers: enumerate the smaller one inside
        W, b, c, n_h, n_v = W.T, c, b, n_v, n_h
    H = binary_states(n_h, W.dtype, W.device)  # (2**n_h, n_h)
    hc, HW = H @ c, H @ W  # (2**n_h,), (2**n_h, n_v)
    parts = []
    for V in _state_blocks(n_v, W.dtype, W.device, row_cost=2**n_h):  # V: (block, n_v)
        neg_energy = (V @ b)[:, None] + hc[None, :] + V @ HW.T  # (block, 2**n_h)
        parts.append(torch.logsumexp(neg_energy.reshape(-1), dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0)


def rbm_log_likelihood(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Exact ``log P(v) = -F(v) - log Z`` for small RBMs (``log Z`` by enumeration); ``(n,)``.

    Introduced in: Approximate inference (why inference).
    """
    return -rbm_free_energy(v, W, b, c) - rbm_log_partition_bruteforce(W, b, c)


# --------------------------------------------------- Boltzmann machine, mean field
def _check_bm(W: Tensor, b: Tensor) -> None:
    _check(W, "W", 2)
    _check(b, "b", 1)
    if W.shape != (b.shape[0], b.shape[0]):
        raise ValueError(f"expected W ({b.shape[0]}, {b.shape[0]}) for b of shape "
                         f"{tuple(b.shape)}, got {tuple(W.shape)}")
    if not torch.allclose(W, W.T) or bool(W.diagonal().ne(0).any()):
        raise ValueError("W must be symmetric with a zero diagonal")


def boltzmann_bruteforce(
    W: Tensor, b: Tensor, max_units: int = MAX_BRUTEFORCE_UNITS
) -> tuple[Tensor, Tensor]:
    """``(log Z, marginals P(s_i = 1))`` of ``p(s) ~ exp(b.s + s.W s / 2)`` by enumeration.

    Also the exact posterior of a BM's hidden units given its visible ones: clamp ``v`` and
    pass ``W_hh`` and ``c + W_hv v``. Introduced in: Approximate inference (mean field).
    """
    _check_bm(W, b)
    n = b.shape[0]
    if n > max_units:
        raise ValueError(f"brute force over 2**{n} states refused: n must be <= {max_units}")
    lses, means = [], []
    for S in _state_blocks(n, W.dtype, W.device, row_cost=max(n, 1)):  # S: (block, n)
        neg_energy = S @ b + 0.5 * ((S @ W) * S).sum(dim=1)  # (block,)
        lses.append(torch.logsumexp(neg_energy, dim=0))
        means.append(torch.softmax(neg_energy, dim=0) @ S)  # (n,) within the block
    lse = torch.stack(lses)  # (blocks,)
    log_Z = torch.logsumexp(lse, dim=0)
    return log_Z, torch.exp(lse - log_Z) @ torch.stack(means)  # (), (n,)


@dataclass
class MeanFieldConfig:
    """Sweeps of coordinate ascent for a fully factorised Bernoulli ``q``."""

    num_sweeps: int = 50
    tol: float = 1e-10  # stop when the ELBO gains less than this in a sweep
    init: float = 0.5  # every q(s_i = 1) starts here


class MeanFieldResult(NamedTuple):
    mu: Tensor  # (n,) q(s_i = 1)
    elbos: list[float]  # ELBO before the first sweep and after each sweep


def mean_field_elbo(mu: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """``E_q[-E(s)] + H(q) = b.mu + mu.W mu / 2 + sum_i H(mu_i)`` for ``q = prod Bernoulli(mu_i)``.

    A lower bound on ``log Z``. Introduced in: Approximate inference (mean field).
    """
    _check_bm(W, b)
    entropy = -(torch.xlogy(mu, mu) + torch.xlogy(1 - mu, 1 - mu)).sum()
    return b @ mu + 0.5 * mu @ W @ mu + entropy


def mean_field(W: Tensor, b: Tensor, config: MeanFieldConfig | None = None) -> MeanFieldResult:
    """Coordinate ascent ``mu_i <- sigmoid(b_i + sum_j W_ij mu_j)``, one unit at a time.

    Each update maximises the ELBO over ``mu_i`` with the others fixed, so the recorded
    ELBOs never decrease. Introduced in: Approximate inference (mean field).
    """
    config = config or MeanFieldConfig()
    _check_bm(W, b)
    mu = torch.full_like(b, config.init)  # (n,)
    elbos = [float(mean_field_elbo(mu, W, b))]
    for _ in range(config.num_sweeps):
        for i in range(b.shape[0]):
            mu[i] = torch.sigmoid(b[i] + W[i] @ mu)
        elbos.append(float(mean_field_elbo(mu, W, b)))
        if elbos[-1] - elbos[-2] < config.tol:
            break
    return MeanFieldResult(mu, elbos)


# ------------------------------------------------------- ELBO, KL, Gaussian mixtures
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
    _check(X, "X", 2)
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
    _check(X, "X", 2)
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


# ------------------------------------------------------------------- tiny VAE
@dataclass
class VAEConfig:
    """A two-layer Gaussian encoder and Bernoulli decoder for binary images."""

    input_dim: int = 64
    hidden_dim: int = 128
    latent_dim: int = 2
    lr: float = 3e-3
    batch_size: int = 128
    num_epochs: int = 100
    seed: int = 0


class VAE(nn.Module):
    """Amortised inference: Gaussian ``q(z | x)`` from an encoder, Bernoulli ``p(x | z)``."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        d, h, k = config.input_dim, config.hidden_dim, config.latent_dim
        self.latent_dim = k
        self.encoder = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 2 * k))
        self.decoder = nn.Sequential(nn.Linear(k, h), nn.Tanh(), nn.Linear(h, d))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (n, k) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (..., d) Bernoulli logits


def bernoulli_log_likelihood(x: Tensor, logits: Tensor) -> Tensor:
    """``log p(x | z)`` of binary ``x`` under independent Bernoulli logits; sums the last dim."""
    x, logits = torch.broadcast_tensors(x, logits)
    nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -nll.sum(dim=-1)


def vae_elbo(model: VAE, x: Tensor, num_samples: int = 1) -> Tensor:
    """Per-example ELBO ``E_q[log p(x | z)] - KL(q(z | x) || N(0, I))``: ``x (n, d)`` -> ``(n,)``.

    The first term is a Monte Carlo average over ``num_samples`` reparameterised samples;
    the KL between Gaussians is in closed form. Introduced in: Approximate inference (VAE).
    """
    _check(x, "x", 2)
    mu, logvar = model.encode(x)  # (n, k)
    eps = torch.randn(num_samples, *mu.shape, dtype=mu.dtype, device=mu.device)  # (S, n, k)
    z = mu + torch.exp(0.5 * logvar) * eps
    reconstruction = bernoulli_log_likelihood(x, model.decode(z)).mean(dim=0)  # (n,)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=-1)  # (n,)
    return reconstruction - kl


def train_vae(model: VAE, X: Tensor, config: VAEConfig) -> list[float]:
    """Maximise the mean ELBO of binary ``X (n, d)`` with Adam; returns the mean ELBO per epoch.

    Introduced in: Approximate inference (VAE).
    """
    _check(X, "X", 2)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = []
    for _ in range(config.num_epochs):
        total = 0.0
        for batch in torch.randperm(X.shape[0], generator=generator).split(config.batch_size):
            loss = -vae_elbo(model, X[batch.to(X.device)]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total -= loss.item() * len(batch)
        history.append(total / X.shape[0])
    return history


@dataclass
class GridPosterior:
    """``log p(x, z)`` on a square grid over a 2-D latent space (exact up to quadrature)."""

    z: Tensor  # (steps * steps, 2) grid points
    log_joint: Tensor  # (n, steps * steps)
    log_cell: float  # log of the area of one grid cell

    def log_marginal(self) -> Tensor:
        """``log p(x) = log integral p(x, z) dz`` as a Riemann sum over the grid: ``(n,)``."""
        return torch.logsumexp(self.log_joint, dim=1) + self.log_cell

    def log_posterior(self) -> Tensor:
        """``log p(z | x)`` (a density) at the grid points: ``(n, steps * steps)``."""
        return self.log_joint - self.log_marginal()[:, None]


@torch.no_grad()
def vae_grid_posterior(
    model: VAE, x: Tensor, limit: float = 4.0, steps: int = 201
) -> GridPosterior:
    """Score ``log p(z) + log p(x | z)`` on a ``steps x steps`` grid over ``[-limit, limit]^2``.

    Only for ``latent_dim == 2``. Introduced in: Approximate inference (VAE).
    """
    if model.latent_dim != 2:
        raise ValueError(f"the grid needs a 2-D latent space, got latent_dim={model.latent_dim}")
    _check(x, "x", 2)
    axis = torch.linspace(-limit, limit, steps, dtype=x.dtype, device=x.device)
    z = torch.cartesian_prod(axis, axis)  # (steps**2, 2)
    log_prior = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)  # (steps**2,)
    parts = []
    for zb in z.split(8192):
        logits = model.decode(zb)  # (block, d)
        parts.append(x @ F.logsigmoid(logits).T + (1 - x) @ F.logsigmoid(-logits).T)  # (n, block)
    log_joint = torch.cat(parts, dim=1) + log_prior[None]
    return GridPosterior(z, log_joint, 2 * math.log(float(axis[1] - axis[0])))
