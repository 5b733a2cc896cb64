"""Fixtures for the lab tests: tiny datasets in upstream formats, and an isolated environment."""

from __future__ import annotations

import pytest

from .dataset_files import CifarSet, IdxSet, make_cifar_set, make_idx_set


@pytest.fixture(params=[False, True], ids=["raw", "gz"])
def idx_set(request, tmp_path) -> IdxSet:
    """Four MNIST-format files (60 train, 20 test 28x28 images), raw or gzipped."""
    return make_idx_set(tmp_path / "idx", gz=request.param)


@pytest.fixture
def cifar_set(tmp_path) -> CifarSet:
    """A ``cifar-10-batches-py`` folder: five 6-image training batches and a 10-image test batch."""
    return make_cifar_set(tmp_path / "data")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """Keep tests away from the user's dataset variables and cache."""
    for var in ("ACTLAB_MNIST_DIR", "ACTLAB_FASHION_MNIST_DIR", "ACTLAB_CIFAR10_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path / "cache"))
