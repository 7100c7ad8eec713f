"""Approximate inference: binary energy models, exact posteriors by enumeration, mean field.

Introduced in the chapter *Approximate inference from a deep learning viewpoint*
(chapters/inference: pages *Why inference: the posteriors that learning needs* and *When
exact inference is intractable*; mean field on page *Mean-field variational inference*).
Everything exact here is computed by enumeration or in closed form, so the chapter can put
each approximation next to the answer it approximates. The ELBO, the KL divergence and EM
for Gaussian mixtures are in :mod:`lib.em`, the variational autoencoder in :mod:`lib.vae`.

Conventions. Binary units take values in {0, 1}. A restricted Boltzmann machine (RBM) has
energy ``E(v, h) = -b.v - c.h - h.W v`` with ``W`` of shape ``(n_hidden, n_visible)``; a
Boltzmann machine (BM) over ``s`` has ``E(s) = -b.s - s.W s / 2`` with ``W`` symmetric and
zero on the diagonal. Log-likelihoods are in nats. References: Goodfellow, Bengio and
Courville, *Deep Learning* (2016), chapters 16-20.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

MAX_BRUTEFORCE_UNITS = 20  # 2**20 joint states: about a million, well under a second
_BLOCK_STATES = 2**18  # states scored at once while enumerating (bounds the memory)


def check_float_tensor(t: Tensor, name: str, dim: int) -> None:
    """Raise ``ValueError`` unless ``t`` is a floating tensor with ``dim`` dimensions (also used
    by :mod:`lib.em` and :mod:`lib.vae`). Introduced in: Approximate inference."""
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
    check_float_tensor(W, "W", 2)
    check_float_tensor(b, "b", 1)
    check_float_tensor(c, "c", 1)
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
    check_float_tensor(v, "v", 2)
    check_float_tensor(h, "h", 2)
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
    check_float_tensor(v, "v", 2)
    check_float_tensor(W, "W", 2)
    check_float_tensor(c, "c", 1)
    if v.shape[1] != W.shape[1] or c.shape[0] != W.shape[0]:
        raise ValueError(f"expected v (n, {W.shape[1]}) and c ({W.shape[0]},) for W of shape "
                         f"{tuple(W.shape)}, got {tuple(v.shape)} and {tuple(c.shape)}")
    return torch.sigmoid(v @ W.T + c)  # (n, n_hidden)


def rbm_free_energy(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_k softplus(W_k v + c_k)``; ``(n,)``.

    Introduced in: Approximate inference (why inference).
    """
    _check_rbm(W, b, c)
    check_float_tensor(v, "v", 2)
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
    check_float_tensor(W, "W", 2)
    check_float_tensor(b, "b", 1)
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
