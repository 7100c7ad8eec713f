"""lib.device: device selection and seeding; a GPU run of lib.softmax where CUDA exists."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lib.softmax as S
from lib.device import resolve_device, seed_everything, try_gpu

HAS_CUDA = torch.cuda.is_available()


def test_resolve_device_auto_and_cpu():
    expected = torch.device("cuda:0") if HAS_CUDA else torch.device("cpu")
    assert resolve_device() == expected
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert isinstance(resolve_device("cpu"), torch.device)


def test_resolve_device_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 0"):
        resolve_device(0)


@pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour on machines without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_resolve_device_cuda_without_cuda_raises(name):
    with pytest.raises(ValueError, match=f"device '{name}' requested but CUDA is not available here"):
        resolve_device(name)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(torch.device(name))


@pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour on machines without CUDA")
def test_try_gpu_falls_back_to_cpu():
    assert try_gpu() == torch.device("cpu")
    assert try_gpu(3) == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_resolve_device_cuda_with_cuda():
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert try_gpu() == torch.device("cuda:0")
    count = torch.cuda.device_count()
    assert try_gpu(count) == torch.device("cpu")
    with pytest.raises(ValueError, match=f"only {count} GPU"):
        resolve_device(f"cuda:{count}")


def test_cuda_checks_with_one_simulated_gpu(monkeypatch):
    """The CUDA branches on any machine: torch is made to report one GPU (no kernel runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device() == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"device 'cuda:1' requested but only 1 GPU\(s\) exist"):
        resolve_device("cuda:1")
    assert try_gpu() == torch.device("cuda:0")
    assert try_gpu(1) == torch.device("cpu")


def test_try_gpu_matches_d2l():
    d2l = pytest.importorskip("d2l.torch")
    for i in (0, 1, 7):
        assert try_gpu(i) == d2l.try_gpu(i)


def draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_makes_runs_reproducible():
    g1 = seed_everything(123)
    first, from_g1 = draws(), torch.rand(4, generator=g1)
    g2 = seed_everything(123)
    second, from_g2 = draws(), torch.rand(4, generator=g2)
    assert first == second
    assert torch.equal(from_g1, from_g2)
    assert isinstance(g1, torch.Generator) and g1.device == torch.device("cpu")
    seed_everything(124)
    assert draws() != first
    seed_everything(2**40)  # larger than NumPy's 32-bit seeds
    big = draws()
    seed_everything(2**40)
    assert draws() == big


def test_seed_everything_seeds_each_library_as_its_own_seeding_does():
    for seed in (0, 123, 2**32 - 1):  # 0 is a valid seed, and the most common one
        seed_everything(seed)
        assert random.random() == random.Random(seed).random()
        assert np.random.rand(3).tolist() == np.random.RandomState(seed).rand(3).tolist()
        assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(seed)))
    seed_everything(2**32 + 5)  # NumPy's seeds end at 2**32: larger ones are accepted too
    assert random.random() == random.Random(2**32 + 5).random()


def test_seed_everything_leaves_the_environment_alone():
    # It once set PYTHONHASHSEED=2**40, which every later Python subprocess refused to start with.
    before = dict(os.environ)
    seed_everything(2**40)
    assert dict(os.environ) == before


def test_seed_everything_rejects_bad_seeds():
    for bad in (-1, 1.5, "0", None):
        with pytest.raises(ValueError, match="seed must be a non-negative int"):
            seed_everything(bad)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_softmax_on_cuda_matches_torch(dtype):
    device = resolve_device("cuda")
    g = torch.Generator().manual_seed(0)
    X = (torch.randn(64, 10, generator=g) * 30).to(device=device, dtype=dtype)
    X[0] = torch.tensor([1e4, -1e4] + [0.0] * 8, device=device, dtype=dtype)
    y = torch.randint(0, 10, (64,), generator=g).to(device)
    rtol, atol = {torch.float32: (1e-5, 1e-6), torch.float16: (2e-3, 1e-3),
                  torch.bfloat16: (1.6e-2, 1e-2)}[dtype]
    for ours, theirs in [
        (S.softmax(X), F.softmax(X.double(), dim=-1)),
        (S.log_softmax(X), F.log_softmax(X.double(), dim=-1)),
        (S.cross_entropy(X, y), F.cross_entropy(X.double(), y, reduction="none")),
    ]:
        assert ours.device == X.device and ours.dtype == dtype
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours.double(), theirs, rtol=rtol, atol=atol)
    assert S.accuracy(X, y) == float((X.argmax(1) == y).sum())


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_training_on_cuda():
    from torch.utils.data import DataLoader, TensorDataset

    device = resolve_device("cuda")
    seed_everything(0)
    X = torch.cat([torch.randn(32, 2) + 4, torch.randn(32, 2) - 4])
    y = torch.arange(2).repeat_interleave(32)
    data = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)  # CPU batches
    net = S.SoftmaxRegression(2, 2).to(device)
    for _ in range(3):
        S.train_epoch(net, data, S.cross_entropy, S.sgd(net.parameters(), 0.5))
    assert net.W.device.type == "cuda"
    assert S.evaluate_accuracy(net, data) >= 0.95
