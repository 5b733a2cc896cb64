"""Seeded splitting and train-only normalisation, shared by all array tasks."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["rng", "shuffled_order", "fit_normalization", "apply_normalization"]


def rng(seed: int, stream: str) -> np.random.Generator:
    """An independent NumPy generator for ``(seed, stream)``.

    Naming the stream (e.g. ``"digits/val"``) keeps the random choices of
    different purposes apart, so changing how one split is drawn never shifts
    another. PCG64 streams are identical on every platform.
    """
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def shuffled_order(n: int, generator: np.random.Generator, labels: np.ndarray | None = None) -> np.ndarray:
    """A random permutation of ``range(n)``; with ``labels``, every prefix is stratified.

    With labels, each class's samples are shuffled and spread evenly over the
    order (class ``c`` with ``n_c`` samples sits at fractional positions
    ``(r + u_c) / n_c``, ``u_c`` a random phase). Any run of ``m`` consecutive
    entries then holds each class within about one sample of ``m * n_c / n``, so
    cutting the order into consecutive pieces gives stratified splits, and taking
    a prefix of the training piece gives a stratified subset.
    """
    if labels is None:
        return generator.permutation(n)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    key = np.empty(n)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        key[members] = (generator.permutation(len(members)) + generator.random()) / len(members)
    return np.lexsort((generator.random(n), key))


def _reduction_axes(x: np.ndarray, per_channel: bool) -> tuple[int, ...]:
    return tuple(a for a in range(x.ndim) if a != 0 and not (per_channel and a == 1))


def fit_normalization(x: np.ndarray, *, per_channel: bool, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of ``x`` over samples.

    Statistics are global, or per index of axis 1 (image channels, tabular
    features) with ``per_channel``. Computed in float64, two passes over chunks
    of samples, so a 60 000-image uint8 set never needs a float64 copy. A zero
    standard deviation (a constant feature) is reported as 1 so that the
    feature maps to 0 instead of NaN, as scikit-learn's ``StandardScaler`` does.

    Returns:
        ``(mean, std)``, float64, shaped to broadcast against ``x``.
    """
    if len(x) == 0:
        raise ValueError("cannot normalise with statistics of an empty training split")
    axes = (0, *_reduction_axes(x, per_channel))
    shape = [1] * x.ndim
    if per_channel and x.ndim > 1:
        shape[1] = x.shape[1]
    count = x.size // int(np.prod(shape))
    total = np.zeros(shape)
    for start in range(0, len(x), chunk):
        total += x[start : start + chunk].sum(axis=axes, keepdims=True, dtype=np.float64)
    mean = total / count
    squares = np.zeros(shape)
    for start in range(0, len(x), chunk):
        squares += np.square(x[start : start + chunk] - mean).sum(axis=axes, keepdims=True)
    std = np.sqrt(squares / count)
    return mean, np.where(std > 0, std, 1.0)


def apply_normalization(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` as a new float32 array."""
    out = x.astype(np.float32)
    out -= mean.astype(np.float32)
    out /= std.astype(np.float32)
    return out
