"""What every task provides: :class:`TaskData` and the :class:`Task` interface."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TaskData", "Task", "KINDS", "evaluation_mode", "batches", "check_load_arguments"]

#: The kinds of task; each fixes the target type, the loss and the metrics.
KINDS = ("classification", "regression", "sequence")


@dataclass
class TaskData:
    """A task's data, split and preprocessed, as tensors ready for a model.

    Attributes:
        name: task name.
        kind: ``"classification"``, ``"regression"`` or ``"sequence"``.
        x_train, y_train, x_val, y_val, x_test, y_test: the three splits. Inputs are
            float32 (token ids, int64, for sequence tasks); targets are int64 class
            indices, float32 ``[N, 1]`` values, or int64 ``[N, T]`` token ids
            (``BOS ... EOS PAD ...``).
        input_shape: shape of one input sample, e.g. ``(64,)``, ``(1, 28, 28)``.
        num_outputs: classes, regression targets, or target vocabulary size.
        metric: the primary metric (a key of :meth:`Task.evaluate`'s result) used
            for model selection.
        higher_is_better: direction of ``metric``.
        description: one line for reports; names substitutes honestly.
        extras: task-specific facts. Common keys: ``spatial_shape`` (per-sample
            ``(C, H, W)`` or ``(C, L)`` view for convolutional models, present only
            where one makes sense), ``classes``, ``normalization``, ``source``,
            ``sizes``; sequence tasks add ``src_vocab``, ``tgt_vocab``,
            ``pad_index``, ``bos_index``, ``eos_index``, ``max_len``.
    """

    name: str
    kind: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    input_shape: tuple[int, ...]
    num_outputs: int
    metric: str
    higher_is_better: bool
    description: str
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"{self.name}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(f"{self.name}: x_{split} samples are {tuple(x.shape[1:])}, not {self.input_shape}")

    @property
    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def __repr__(self) -> str:
        return (
            f"TaskData(name={self.name!r}, kind={self.kind!r}, sizes={self.sizes}, "
            f"input_shape={self.input_shape}, num_outputs={self.num_outputs}, metric={self.metric!r})"
        )


class Task(abc.ABC):
    """A learning problem: how to load its data, its loss, and how to score a model.

    Subclasses set the attributes (usually as class attributes) and implement
    :meth:`load`, :meth:`loss` and :meth:`evaluate`.

    Attributes:
        name: the name :func:`~actlab.lab.tasks.get_task` knows the task by.
        kind: ``"classification"``, ``"regression"`` or ``"sequence"``.
        default_model: the model used when none is named.
        description: one line for reports.
        metric: primary metric for model selection; ``higher_is_better`` its direction.
    """

    name: str
    kind: str
    default_model: str
    description: str
    metric: str
    higher_is_better: bool

    @abc.abstractmethod
    def load(self, *, data_dir: str | None = None, seed: int = 0, limit: int | None = None) -> TaskData:
        """Load, split and preprocess the data.

        Deterministic in its arguments. The test split is the official one where
        the dataset has one, and otherwise a split that does not depend on
        ``seed``, so every seed is scored on the same test samples. The
        validation split is carved from the training pool by ``seed``.
        Normalisation statistics come from the training split only.

        Args:
            data_dir: folder to look for data files in (tasks that read files).
            seed: selects the train/validation split (an integer >= 0).
            limit: keep at most this many training samples (validation and test
                are unchanged); for quick runs and tests.
        """

    @abc.abstractmethod
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The training loss (a scalar, mean over the batch)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512) -> dict[str, float]:
        """Metrics of ``model`` on ``(x, y)``, in eval mode without gradients.

        The model's train/eval flags are restored afterwards.
        """

    def forward_train(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The training loss of ``model`` on one batch."""
        return self.loss(model(x), y)

    def __repr__(self) -> str:
        return f"<task {self.name!r} ({self.kind}): {self.description}>"


def check_load_arguments(seed: int, limit: int | None) -> None:
    """Reject a negative or non-integer seed, or a limit below 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; every submodule's own train flag restored on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in flags:
            module.training = training


def batches(model: nn.Module, *tensors: Tensor, batch_size: int) -> Iterator[tuple[Tensor, ...]]:
    """Consecutive slices of ``tensors``, moved to the device of ``model``'s parameters."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else tensors[0].device
    for start in range(0, len(tensors[0]), batch_size):
        yield tuple(t[start : start + batch_size].to(device, non_blocking=True) for t in tensors)
