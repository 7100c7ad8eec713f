"""lib.vae against torch.distributions, Monte Carlo sampling and the grid posterior."""

from __future__ import annotations

import math

import pytest
import torch

import lib.vae as vae


def small_vae(seed: int = 0, latent_dim: int = 2) -> vae.VAE:
    torch.manual_seed(seed)
    return vae.VAE(vae.VAEConfig(input_dim=10, hidden_dim=16, latent_dim=latent_dim))


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
    torch.testing.assert_close(vae.vae_elbo(model, x), expected)


def test_vae_grid_marginal_matches_prior_sampling_and_bounds_the_elbo():
    model = small_vae(2)
    x = (torch.rand(4, 10, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    grid = vae.vae_grid_posterior(model, x, limit=6.0, steps=241)
    log_px = grid.log_marginal()
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.randn(200_000, 2)
        mc = torch.logsumexp(vae.bernoulli_log_likelihood(x[:, None], model.decode(z)[None]), 1)
        mc -= math.log(len(z))
        elbo = vae.vae_elbo(model, x, num_samples=20_000)
    torch.testing.assert_close(log_px, mc, rtol=0, atol=0.02)
    assert bool((elbo <= log_px + 0.02).all())
    density = grid.log_posterior().exp().sum(1) * math.exp(grid.log_cell)
    torch.testing.assert_close(density, torch.ones(4), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="2-D"):
        vae.vae_grid_posterior(small_vae(latent_dim=3), x)


@pytest.mark.slow
def test_train_vae_raises_the_elbo_on_digits():
    from lib.data import digits_tensors

    X = (digits_tensors()[0].flatten(1) > 0.5).float()[:500]
    config = vae.VAEConfig(input_dim=64, hidden_dim=64, num_epochs=30)
    torch.manual_seed(0)
    history = vae.train_vae(vae.VAE(config), X, config)
    assert history[-1] > history[0] + 5, history
