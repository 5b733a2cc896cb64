"""Tasks whose samples are fixed-size arrays: classification and regression.

A concrete task only says where its arrays come from (:meth:`ArrayTask.read`);
splitting, limiting, normalisation and tensor conversion are shared here.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Task, TaskData, batches, check_load_arguments, evaluation_mode
from .splits import apply_normalization, fit_normalization, rng, shuffled_order

__all__ = ["RawData", "ArrayTask", "ClassificationTask", "RegressionTask"]


@dataclass
class RawData:
    """Arrays as read, before splitting and normalisation.

    ``x`` and ``y`` form the pool that train and validation (and, when
    ``x_test`` is None, test) are carved from. ``x`` is already in the
    per-sample shape models receive. ``source`` says where the data came from;
    ``extras`` goes into :attr:`TaskData.extras` (e.g. ``spatial_shape``).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


class ArrayTask(Task):
    """Shared pipeline: read -> split -> limit -> normalise -> tensors.

    Class attributes a subclass may set:
        test_fraction: share of the pool held out as the (seed-independent) test
            split when the dataset has no official one.
        val_fraction: share of the remaining pool used for validation.
        normalize: ``None``, ``"global"`` (one mean/std) or ``"per_channel"``
            (per index of axis 1: image channels or tabular features).
    """

    test_fraction: ClassVar[float] = 0.2
    val_fraction: ClassVar[float] = 0.1
    normalize: ClassVar[str | None] = None

    @abc.abstractmethod
    def read(self, data_dir: str | None, seed: int) -> RawData:
        """The task's arrays (generated tasks may use ``seed`` for the pool)."""

    @abc.abstractmethod
    def _targets(self, ys: dict[str, np.ndarray]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Targets of each split as tensors (statistics from ``ys["train"]`` only), plus facts for ``extras``."""

    @abc.abstractmethod
    def _num_outputs(self, raw: RawData) -> int: ...

    def _strata(self, y: np.ndarray) -> np.ndarray | None:
        """Labels to stratify splits by, or None for plain random splits."""
        return None

    def load(self, *, data_dir: str | None = None, seed: int = 0, limit: int | None = None) -> TaskData:
        check_load_arguments(seed, limit)
        raw = self.read(data_dir, seed)
        x, y = raw.x, raw.y
        if raw.x_test is None:
            # Drawn with a fixed seed: every run of the task is scored on the same samples.
            order = shuffled_order(len(y), rng(0, f"{self.name}/test"), self._strata(y))
            n_test = round(self.test_fraction * len(y))
            test, pool = order[:n_test], order[n_test:]
            x_test, y_test = x[test], y[test]
        else:
            pool, x_test, y_test = np.arange(len(y)), raw.x_test, raw.y_test
        strata = self._strata(y[pool])
        order = pool[shuffled_order(len(pool), rng(seed, f"{self.name}/val"), strata)]
        n_val = round(self.val_fraction * len(pool))
        val, train = order[:n_val], order[n_val:]
        if limit is not None:
            train = train[:limit]  # a prefix of a stratified order stays stratified
        splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x_test, y_test)}

        extras: dict[str, Any] = dict(raw.extras)
        if self.normalize is not None:
            mean, std = fit_normalization(splits["train"][0], per_channel=self.normalize == "per_channel")
            xs = {k: apply_normalization(v[0], mean, std) for k, v in splits.items()}
            extras["normalization"] = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
        else:
            xs = {k: np.asarray(v[0], dtype=np.float32) for k, v in splits.items()}
        ys, target_facts = self._targets({k: v[1] for k, v in splits.items()})
        extras.update(target_facts)
        extras["source"] = raw.source
        extras["seed"], extras["limit"] = seed, limit
        return TaskData(
            name=self.name,
            kind=self.kind,
            x_train=torch.from_numpy(np.ascontiguousarray(xs["train"])),
            y_train=ys["train"],
            x_val=torch.from_numpy(np.ascontiguousarray(xs["val"])),
            y_val=ys["val"],
            x_test=torch.from_numpy(np.ascontiguousarray(xs["test"])),
            y_test=ys["test"],
            input_shape=tuple(x.shape[1:]),
            num_outputs=self._num_outputs(raw),
            metric=self.metric,
            higher_is_better=self.higher_is_better,
            description=self.description,
            extras=extras,
        )


class ClassificationTask(ArrayTask):
    """Integer class targets; cross-entropy loss; accuracy as the metric.

    Validation, test and ``limit`` subsets are stratified by class.
    """

    kind = "classification"
    metric = "accuracy"
    higher_is_better = True
    classes: ClassVar[tuple[str, ...]] = tuple(str(i) for i in range(10))

    def _strata(self, y: np.ndarray) -> np.ndarray:
        return y

    def _targets(self, ys: dict[str, np.ndarray]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {k: torch.from_numpy(np.asarray(y, dtype=np.int64)) for k, y in ys.items()}
        return tensors, {"classes": list(self.classes)}

    def _num_outputs(self, raw: RawData) -> int:
        return len(self.classes)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target)

    def evaluate(self, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> dict[str, float]:
        """``{"accuracy", "loss"}``: fraction of argmax hits and mean cross-entropy."""
        total_loss, correct = 0.0, 0
        with evaluation_mode(model):
            for xb, yb in batches(model, x, y, batch_size=batch_size):
                out = model(xb)
                total_loss += F.cross_entropy(out.double(), yb, reduction="sum").item()
                correct += int((out.argmax(dim=1) == yb).sum())
        n = max(len(y), 1)
        return {"accuracy": correct / n, "loss": total_loss / n}


class RegressionTask(ArrayTask):
    """Real targets ``[N, 1]`` (float32); MSE loss; MSE and R² as metrics.

    With ``normalize_target`` the targets are standardised with training
    statistics, so MSE and R² are in standardised units (``extras`` holds the
    mean and std to convert back).
    """

    kind = "regression"
    metric = "mse"
    higher_is_better = False
    normalize_target: ClassVar[bool] = False

    def _targets(self, ys: dict[str, np.ndarray]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        columns = {k: np.asarray(y, dtype=np.float64).reshape(len(y), -1) for k, y in ys.items()}
        if not self.normalize_target:
            return {k: torch.from_numpy(y.astype(np.float32)) for k, y in columns.items()}, {}
        mean, std = fit_normalization(columns["train"], per_channel=True)
        facts = {"target_normalization": {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}}
        return {k: torch.from_numpy(apply_normalization(y, mean, std)) for k, y in columns.items()}, facts

    def _num_outputs(self, raw: RawData) -> int:
        return 1 if raw.y.ndim == 1 else raw.y.shape[1]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        _check_same_shape(output, target)
        return F.mse_loss(output, target)

    def evaluate(self, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> dict[str, float]:
        """``{"mse", "r2", "loss"}``; R² = 1 - SSE/SST with SST about the mean of ``y``, pooled over outputs."""
        sse = 0.0
        with evaluation_mode(model):
            for xb, yb in batches(model, x, y, batch_size=batch_size):
                out = model(xb)
                _check_same_shape(out, yb)
                sse += float(torch.sum((out.double() - yb.double()) ** 2))
        y64 = y.double()
        sst = float(torch.sum((y64 - y64.mean(dim=0)) ** 2))
        mse = sse / max(y.numel(), 1)
        return {"mse": mse, "r2": 1.0 - sse / sst if sst > 0 else float("nan"), "loss": mse}


def _check_same_shape(output: Tensor, target: Tensor) -> None:
    # Broadcasting [N] against [N, 1] would silently compare every pair of samples.
    if output.shape != target.shape:
        raise ValueError(f"model output has shape {tuple(output.shape)} but targets have {tuple(target.shape)}")
