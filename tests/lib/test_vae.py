"""lib.vae against torch.distributions, Monte Carlo sampling and the grid posterior."""

from __future__ import annotations

import math

import pytest
import torch

import lib.vae as vae


def small_vae(seed: int = 0, latent_dim: int = 2) -> vae.VAE:
    torch.manual_seed(seed)
    return vae.VAE(vae.VAEConfig(input_dim=10, hidden_dim=16, latent_dim=latent_dim))


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_vae_elbo_kl_term_matches_torch_distributions(latent_dim):
    model = small_vae(latent_dim=latent_dim)
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


def test_vae_elbo_samples_z_from_the_encoder_gaussian():
    """The reconstruction term decodes reparameterised samples ``mu + sigma * eps ~ q(z | x)``."""
    model = small_vae(4)
    x = (torch.rand(3, 10, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    with torch.no_grad():
        model.encoder[-1].bias[2:] -= 2.0  # log sigma^2 near -2: sigma near 0.37, far from 1
        mu, logvar = model.encode(x)
    decoded = []
    model.decoder.register_forward_hook(lambda module, inputs, output: decoded.append(inputs[0]))
    torch.manual_seed(6)
    vae.vae_elbo(model, x, num_samples=4000)
    (z,) = decoded  # (S, n, k)
    assert z.shape == (4000, 3, 2)
    sigma = (0.5 * logvar).exp()
    assert bool(((z.mean(0) - mu).abs() < 5 * sigma / math.sqrt(4000)).all())
    torch.testing.assert_close(z.std(0), sigma, rtol=0.05, atol=0)
    vae.vae_elbo(model, x)
    assert decoded[1].shape == (1, 3, 2), "one sample per example by default"


def binary_prototypes(n: int = 64, d: int = 10, flip: float = 0.1) -> torch.Tensor:
    """``n`` binary images: two random prototypes, each pixel flipped with probability ``flip``."""
    g = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(2, d, generator=g) > 0.5).float()
    X = prototypes[torch.arange(n) % 2]
    return torch.where(torch.rand(n, d, generator=g) < flip, 1 - X, X)


def test_train_vae_history_is_the_mean_elbo_per_epoch():
    """With a frozen model (lr 0) and a constant decoder, the ELBO is exact: each epoch's entry
    is the mean over all examples, whatever the uneven batches (7, 7, 6)."""
    X = binary_prototypes(n=20)
    config = vae.VAEConfig(input_dim=10, hidden_dim=16, batch_size=7, num_epochs=3, lr=0.0)
    model = small_vae(7)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()  # log p(x | z) = -10 log 2 for every z
        mu, logvar = model.encode(X)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = float((-10 * math.log(2) - torch.distributions.kl_divergence(q, prior).sum(-1)).mean())
    history = vae.train_vae(model, X, config)
    assert len(history) == 3
    assert history == pytest.approx([expected] * 3, rel=1e-6)


def test_train_vae_raises_the_elbo_on_a_tiny_data_set():
    X = binary_prototypes()
    config = vae.VAEConfig(input_dim=10, hidden_dim=16, batch_size=16, num_epochs=10, lr=1e-2)
    torch.manual_seed(0)
    history = vae.train_vae(vae.VAE(config), X, config)
    assert len(history) == 10
    assert history[-1] > history[0] + 1, history


@pytest.mark.slow
def test_train_vae_raises_the_elbo_on_digits():
    from lib.data import digits_tensors

    X = (digits_tensors()[0].flatten(1) > 0.5).float()[:500]
    config = vae.VAEConfig(input_dim=64, hidden_dim=64, num_epochs=30)
    torch.manual_seed(0)
    history = vae.train_vae(vae.VAE(config), X, config)
    assert history[-1] > history[0] + 5, history
