"""Tests for lib/stability.py against hand-written autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lib import stability
from lib.data import ImageData
from lib.stability import MLPConfig


# ----------------------------------------------------------------------------- deep MLP
def test_deep_mlp_structure_and_init():
    cfg = MLPConfig(num_inputs=12, num_hiddens=300, num_layers=3, num_outputs=4, activation="tanh", init="kaiming_normal")
    net = stability.deep_mlp(cfg)
    layers = stability.linear_layers(net)
    assert [(m.in_features, m.out_features) for m in layers] == [(12, 300), (300, 300), (300, 300), (300, 4)]
    assert sum(isinstance(m, nn.Tanh) for m in net) == 3
    assert all(torch.count_nonzero(m.bias) == 0 for m in layers)
    assert layers[1].weight.var().item() == pytest.approx(2 / 300, rel=0.05)
    assert net(torch.randn(5, 1, 3, 4)).shape == (5, 4)


def test_deep_mlp_is_reproducible_and_seeded():
    for init in stability.INITS:
        a = stability.deep_mlp(MLPConfig(init=init, seed=1, num_layers=2))
        b = stability.deep_mlp(MLPConfig(init=init, seed=1, num_layers=2))
        c = stability.deep_mlp(MLPConfig(init=init, seed=2, num_layers=2))
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        assert not torch.equal(a[1].weight, c[1].weight)
    normal = stability.deep_mlp(MLPConfig(init="normal", sigma=0.3, num_hiddens=200, num_layers=2))
    assert normal[3].weight.std().item() == pytest.approx(0.3, rel=0.03)


@pytest.mark.parametrize("bad", [dict(activation="gelu"), dict(init="orthogonal"), dict(num_layers=0)])
def test_deep_mlp_rejects_bad_configs(bad):
    with pytest.raises(ValueError):
        stability.deep_mlp(MLPConfig(**bad))


def test_linear_layers_needs_one():
    with pytest.raises(ValueError):
        stability.linear_layers(nn.Sequential(nn.ReLU()))


# ----------------------------------------------------------------------------- probes
def _net_and_batch(activation="tanh", seed=0):
    net = stability.deep_mlp(MLPConfig(num_inputs=8, num_hiddens=16, num_layers=4, num_outputs=3,
                                       activation=activation, init="xavier_normal", seed=seed))
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(32, 8, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    return net, X, y


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_gradient_norms_match_manual_autograd(activation):
    net, X, y = _net_and_batch(activation)
    weights = [m.weight for m in stability.linear_layers(net)]
    expected = torch.stack([g.norm() for g in torch.autograd.grad(F.cross_entropy(net(X), y), weights)])
    norms = stability.layer_gradient_norms(net, X, y)
    assert norms.shape == (5,)
    torch.testing.assert_close(norms, expected)
    torch.testing.assert_close(stability.layer_gradient_norms(net, X, y), expected)  # no accumulation
    grads = stability.layer_gradients(net, X, y)
    assert [g.numel() for g in grads] == [w.numel() for w in weights]


def test_probes_reject_mismatched_batches():
    net, X, y = _net_and_batch()
    with pytest.raises(ValueError, match="batch size"):
        stability.layer_gradient_norms(net, X, y[:5])


def _pre_activations(net, X):
    outs, h = [], X
    for m in net:
        h = m(h)
        if isinstance(m, nn.Linear):
            outs.append(h)
    return outs


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_activation_variances_match_direct_computation(activation):
    net, X, y = _net_and_batch(activation)
    with torch.no_grad():
        expected = torch.stack([((a - a.mean()) ** 2).mean() for a in _pre_activations(net, X)])
    got = stability.activation_variances(net, X)
    torch.testing.assert_close(got, expected)
    assert not any(m._forward_hooks for m in net.modules())  # hooks removed


def test_gradient_variances_match_direct_computation():
    net, X, y = _net_and_batch("tanh")
    outs = _pre_activations(net, X)
    grads = torch.autograd.grad(F.cross_entropy(outs[-1], y, reduction="sum"), outs)
    expected = torch.stack([g.var(correction=0) for g in grads])
    torch.testing.assert_close(stability.gradient_variances(net, X, y), expected)
    assert not any(m._forward_hooks for m in net.modules())


def test_product_norms_against_direct_products():
    got = stability.product_norms(3, 4, scale=0.7, trials=2, seed=5)
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(2, 3, 1, generator=gen, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    for k in range(4):
        v = (torch.randn(2, 3, 3, generator=gen, dtype=torch.float64) * 0.7) @ v
        torch.testing.assert_close(got[:, k], v.norm(dim=(1, 2)))
    with pytest.raises(ValueError):
        stability.product_norms(0, 4)


# ----------------------------------------------------------------------------- data and training
def _image_data(n_train=40, n_test=12):
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(n_train + n_test, 1, 3, 3, generator=gen)
    X[:, :, 0, 0] = 0.0  # a constant pixel, like the digits' corners
    y = torch.randint(0, 4, (n_train + n_test,), generator=gen)
    train = DataLoader(TensorDataset(X[:n_train], y[:n_train]), 8, shuffle=True)
    test = DataLoader(TensorDataset(X[n_train:], y[n_train:]), 8)
    return ImageData(train, test, list("abcd"), "toy", "offline")


def test_prepare_image_data_standardises_and_limits():
    data = stability.prepare_image_data(_image_data(), max_train=30, max_test=5, batch_size=10)
    X = data.train.dataset.tensors[0]
    assert len(data.train.dataset) == 30 and len(data.test.dataset) == 5 and data.train.batch_size == 10
    torch.testing.assert_close(X.mean(dim=0), torch.zeros(1, 3, 3), atol=1e-6, rtol=0)
    std = X.std(dim=0).flatten()
    torch.testing.assert_close(std[1:], torch.ones(8))
    assert std[0] == 0  # the constant pixel is centred, not divided by zero
    raw = stability.prepare_image_data(_image_data(), standardize=False)
    assert torch.equal(raw.train.dataset.tensors[0], _image_data().train.dataset.tensors[0])


def test_train_recording_snapshots():
    data = stability.prepare_image_data(_image_data())
    net = stability.deep_mlp(MLPConfig(num_inputs=9, num_hiddens=8, num_layers=2, num_outputs=4, init="kaiming_normal"))
    probe = data.train.dataset.tensors
    history, snaps = stability.train_recording(net, data, 2, 0.1, probe, snapshot_epochs=(0, 2))
    assert len(history.test_acc) == len(history.train_loss) == 2
    assert sorted(snaps) == [0, 2] and len(snaps[0]) == 3
    assert not torch.equal(snaps[0][0], snaps[2][0])


@pytest.mark.slow
def test_he_initialised_relu_network_learns_the_digits():
    from lib.data import load_image_data

    data = stability.prepare_image_data(load_image_data(batch_size=64, source="offline"))
    net = stability.deep_mlp(MLPConfig(activation="relu", init="kaiming_normal", num_layers=10))
    history, _ = stability.train_recording(net, data, 10, 0.1)
    assert history.test_acc[-1] > 0.85
    default = stability.deep_mlp(MLPConfig(activation="relu", init="normal", sigma=0.03, num_layers=10))
    history, _ = stability.train_recording(default, data, 3, 0.1)
    assert history.test_acc[-1] < 0.2


def test_smallest_sizes_are_accepted():
    net = stability.deep_mlp(MLPConfig(num_inputs=1, num_hiddens=1, num_layers=1, num_outputs=1, init="xavier_uniform"))
    assert [(m.in_features, m.out_features) for m in stability.linear_layers(net)] == [(1, 1), (1, 1)]
    assert net(torch.randn(3, 1)).shape == (3, 1)
    # One 1x1 matrix applied to u = +-1: the norm is |w|, for each trial.
    got = stability.product_norms(1, 1, scale=2.0, trials=1, seed=4)
    gen = torch.Generator().manual_seed(4)
    torch.randn(1, 1, 1, generator=gen, dtype=torch.float64)  # u, normalised to +-1
    w = torch.randn(1, 1, 1, generator=gen, dtype=torch.float64) * 2.0
    torch.testing.assert_close(got, w.abs().reshape(1, 1))


def test_train_recording_zero_epochs_only_snapshots_the_initialisation():
    data = stability.prepare_image_data(_image_data())
    net = stability.deep_mlp(MLPConfig(num_inputs=9, num_hiddens=8, num_layers=2, num_outputs=4, init="kaiming_normal"))
    probe = data.train.dataset.tensors
    before = [p.detach().clone() for p in net.parameters()]
    history, snaps = stability.train_recording(net, data, 0, 0.1, probe, snapshot_epochs=(0, 1))
    assert history.train_loss == history.test_acc == [] and sorted(snaps) == [0]
    for got, expected in zip(snaps[0], stability.layer_gradients(net, *probe), strict=True):
        torch.testing.assert_close(got, expected)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))  # no step taken
    with pytest.raises(ValueError, match="num_epochs"):
        stability.train_recording(net, data, -1, 0.1)


def test_prepare_image_data_uses_training_statistics_and_keeps_test_order():
    raw = _image_data()
    X_train, _ = raw.train.dataset.tensors
    X_test, y_test = raw.test.dataset.tensors
    data = stability.prepare_image_data(raw, batch_size=5, seed=3)
    mean, std = X_train.mean(dim=0), X_train.std(dim=0)
    std[0, 0, 0] = 1.0  # the constant pixel is only shifted
    # The test images are standardised with the training mean and std, and read in order.
    torch.testing.assert_close(torch.cat([X for X, _ in data.test]), (X_test - mean) / std)
    assert torch.equal(torch.cat([y for _, y in data.test]), y_test)
    # The training loader shuffles, seeded: the same seed gives the same order, another seed another one.
    order = torch.cat([y for _, y in data.train])
    again = torch.cat([y for _, y in stability.prepare_image_data(raw, batch_size=5, seed=3).train])
    other = torch.cat([X for X, _ in stability.prepare_image_data(raw, batch_size=5, seed=4).train])
    assert torch.equal(order, again)
    first = torch.cat([X for X, _ in data.train])
    assert not torch.equal(first, data.train.dataset.tensors[0]) and not torch.equal(first, other)
    torch.testing.assert_close(first.sum(0), data.train.dataset.tensors[0].sum(0))  # a permutation


def test_deep_mlp_one_hidden_layer_and_normal_init_mean():
    net = stability.deep_mlp(MLPConfig(num_inputs=5, num_hiddens=3, num_layers=1, num_outputs=2))
    assert [(m.in_features, m.out_features) for m in stability.linear_layers(net)] == [(5, 3), (3, 2)]
    normal = stability.deep_mlp(MLPConfig(init="normal", sigma=0.3, num_hiddens=200, num_layers=2))
    assert abs(normal[3].weight.mean().item()) < 0.01  # N(0, sigma^2): centred at zero
