"""Regression tasks: DiTAC's 2-D sine-sum target and scikit-learn's diabetes."""

from __future__ import annotations

import numpy as np

from .. import datasets
from .arrays import RawData, RegressionTask
from .splits import rng

__all__ = ["Sines2D", "Diabetes", "SINES2D_A", "SINES2D_W", "sines2d_target"]

#: Frequencies and weights of DiTAC's regression demo (activations-spec.md §3.8).
SINES2D_A = np.array([[9, -7], [-9, 11], [3, 13], [9, 9], [13, 5], [3, 19]], dtype=np.float64)
SINES2D_W = np.array([0.4, 0.1, 0.15, 0.15, 0.1, 0.1], dtype=np.float64)


def sines2d_target(x: np.ndarray) -> np.ndarray:
    """``y = sum_j w_j sin(A_j . x)`` for points ``x`` of shape ``[N, 2]`` (float64)."""
    return np.sin(np.asarray(x, dtype=np.float64) @ SINES2D_A.T) @ SINES2D_W


class Sines2D(RegressionTask):
    """DiTAC's fully specified toy regression: ``y = sum_j w_j sin(A_j . x)``, ``x ~ U[-1, 1]^2``.

    DiTAC's demo draws 98 fresh points per step; here the data are fixed sets so
    that every activation sees the same samples: a pool of 6000 points drawn by
    seed (5000 train, 1000 validation) and 1000 test points drawn with a fixed
    seed. Neither inputs nor targets are normalised (the target already lies in
    about [-1, 1]). The matching model is ``regression_mlp`` (DiTAC's
    2 -> 50 -> 1 ``mlp_double_2d``).

    The target is hard for that small network, which is the demo's point.
    Measured with DiTAC's schedule (Adam, lr 5e-3, 10 000 steps of 98 samples,
    drawn from the training set): test R² 0.02 with GELU or Tanh, 0.68 with
    ReLU; a 4 x 128 GELU ``mlp`` reaches 0.99. Short schedules (lr 1e-3, 20
    epochs) leave the 2 -> 50 -> 1 GELU network at R² ~ 0.
    """

    name = "sines2d"
    default_model = "regression_mlp"
    description = "sines2d: DiTAC's 2-D sum-of-sines regression target, x ~ U[-1,1]^2 (synthetic)"
    pool_size = 6000
    test_size = 1000
    val_fraction = 1 / 6

    def read(self, data_dir: str | None, seed: int) -> RawData:
        x = rng(seed, "sines2d/pool").uniform(-1.0, 1.0, size=(self.pool_size, 2))
        x_test = rng(0, "sines2d/test").uniform(-1.0, 1.0, size=(self.test_size, 2))
        return RawData(x, sines2d_target(x), x_test, sines2d_target(x_test), source="generated")


class Diabetes(RegressionTask):
    """scikit-learn's diabetes: 442 patients, 10 features, disease progression after a year.

    A fixed 20 % (88) is held out as test; validation is 25 % of the rest (88),
    leaving 266 for training.
    Features and target are standardised with training statistics, so MSE and
    R² are in standardised target units (``extras["target_normalization"]``
    holds the mean and std to convert back).
    """

    name = "diabetes"
    default_model = "mlp"
    description = "scikit-learn diabetes (442 x 10 tabular regression; MSE in standardised target units)"
    test_fraction = 0.2
    val_fraction = 0.25
    normalize = "per_channel"
    normalize_target = True

    def read(self, data_dir: str | None, seed: int) -> RawData:
        x, y = datasets.load_sklearn("diabetes")
        return RawData(x, y.astype(np.float64), source="sklearn.datasets.load_diabetes")
