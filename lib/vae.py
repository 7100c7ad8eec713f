"""A tiny variational autoencoder: amortised inference, checked against an exact posterior.

Introduced in the chapter *Approximate inference from a deep learning viewpoint*
(chapters/inference, page *Amortised inference: a tiny variational autoencoder*). A
Gaussian encoder ``q(z | x)`` and a Bernoulli decoder ``p(x | z)`` for binary images are
trained on a Monte Carlo ELBO with reparameterised samples; with a two-dimensional latent
space, :func:`vae_grid_posterior` scores ``log p(x, z)`` on a grid, which gives the exact
posterior and ``log p(x)`` (up to quadrature) to compare with the encoder and the ELBO.
Log-likelihoods are in nats. References: Kingma and Welling, *Auto-encoding variational
Bayes* (2014); Goodfellow, Bengio and Courville, *Deep Learning* (2016), chapter 20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lib.inference import check_float_tensor


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
    check_float_tensor(x, "x", 2)
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
    check_float_tensor(X, "X", 2)
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
    check_float_tensor(x, "x", 2)
    axis = torch.linspace(-limit, limit, steps, dtype=x.dtype, device=x.device)
    z = torch.cartesian_prod(axis, axis)  # (steps**2, 2)
    log_prior = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)  # (steps**2,)
    parts = []
    for zb in z.split(8192):
        logits = model.decode(zb)  # (block, d)
        parts.append(x @ F.logsigmoid(logits).T + (1 - x) @ F.logsigmoid(-logits).T)  # (n, block)
    log_joint = torch.cat(parts, dim=1) + log_prior[None]
    return GridPosterior(z, log_joint, 2 * math.log(float(axis[1] - axis[0])))
