"""One run: train a model with one activation on one task and measure it.

:func:`execute_run` is a pure, picklable, top-level function of a
:class:`~actlab.lab.config.RunSpec`: it loads the data, builds the model with the
activation injected at every site, trains, and returns a :class:`RunResult`
(plain data) without touching any file. Whoever called it decides where the
result goes; in a study only the driver writes the results store.

A run that raises, or whose loss or validation metric stops being finite, comes
back as ``status="failed"`` with the error; it never raises out of here
(``KeyboardInterrupt`` and ``SystemExit`` excepted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import platform
import random
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import RunSpec

__all__ = [
    "RunResult",
    "execute_run",
    "ProgressCallback",
    "RunDiverged",
    "SavedTensorMeter",
    "PeakRSS",
    "parameter_groups",
    "snapshot_activations",
    "initial_shape",
    "site_report",
    "EVAL_BATCH_SIZE",
]

#: ``progress(epoch, epochs, metrics)`` after each epoch.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

#: Batch size for validation and test evaluation. Larger batches are slower on CPU: the
#: intermediates of a conv layer stop fitting in cache (measured 2-3x at 1024 vs 256).
EVAL_BATCH_SIZE = 256

#: Where activation shapes are sampled for the snapshot.
SHAPE_RANGE = (-5.0, 5.0)
SHAPE_POINTS = 201


class RunDiverged(RuntimeError):
    """The training loss or validation metric became NaN or infinite."""


@dataclass
class RunResult:
    """What one run produced. Plain data: picklable and JSON round-trippable.

    Attributes:
        status: ``"ok"`` or ``"failed"``.
        error: why it failed (``"diverged at epoch k: ..."`` or the traceback); ``None`` when ok.
        metric: the task's headline metric; ``higher_is_better`` its direction.
        test_metrics: every test metric of the model at the best validation epoch.
        best_epoch / best_val: that epoch (1-based) and its validation metric.
        history: one dict per epoch: ``epoch``, ``train_loss``, ``val_<metric>``..., ``train_s``, ``eval_s``.
        epoch_time_s: median training time of one epoch (the first epoch's warm-up does not skew it).
        peak_rss_bytes: peak resident memory of the process during this run.
        saved_tensor_bytes: bytes autograd saved for backward in one training step
            (model parameters excluded): the memory that differs between activations.
        cuda_peak_bytes: ``torch.cuda.max_memory_allocated`` on GPU runs.
        activations: per-site snapshot of the activation modules at the end of training.
    """

    config_hash: str
    status: str
    error: str | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    best_val: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    total_time_s: float = 0.0
    epoch_time_s: float | None = None
    peak_rss_bytes: int | None = None
    saved_tensor_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    num_parameters: int | None = None
    activation_parameters: int | None = None
    activations: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def test_value(self) -> float | None:
        """The headline test metric (``None`` for a failed run)."""
        return self.test_metrics.get(self.metric) if self.metric else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# -- measurement helpers ------------------------------------------------------------------------
class PeakRSS:
    """Peak resident set size of this process, reset at the start of each run where Linux allows.

    Writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` (Linux >= 4.0), so
    a pool worker reports each run's own peak. Elsewhere the process-lifetime
    ``ru_maxrss`` is the best available (an upper bound for later runs).
    """

    def __init__(self) -> None:
        self.per_run = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.per_run = self._vm_hwm() is not None
        except OSError:
            pass

    @staticmethod
    def _vm_hwm() -> int | None:
        try:
            with open("/proc/self/status") as f:
                m = re.search(r"^VmHWM:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
        except OSError:
            return None
        return int(m.group(1)) * 1024 if m else None

    def peak(self) -> int:
        if self.per_run:
            value = self._vm_hwm()
            if value is not None:
                return value
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024


class SavedTensorMeter:
    """Counts the bytes autograd saves for backward while active (each storage once).

    Parameters are excluded: they exist whatever the activation, and the point is
    the per-activation memory (a fused activation saves its input only, the
    autograd reference path every intermediate).
    """

    def __init__(self, exclude: Iterator[torch.Tensor] = ()) -> None:
        self._excluded = {self._key(t) for t in exclude}
        self._seen: set[tuple[int, str]] = set()
        self.bytes = 0

    @staticmethod
    def _key(t: torch.Tensor) -> tuple[int, str]:
        return t.untyped_storage().data_ptr(), str(t.device)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            key = self._key(t)
            size = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. some wrappers)
            return t
        if key not in self._excluded and key not in self._seen:
            self._seen.add(key)
            self.bytes += size
        return t

    @contextlib.contextmanager
    def __call__(self) -> Iterator[SavedTensorMeter]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            yield self


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on the network's parameters, none on the activations'.

    Decaying an activation's shape parameters pulls them towards 0, which for
    most trainable activations is a degenerate or invalid shape.
    """
    import actlab

    act_ids = {id(p) for p in actlab.activation_parameters(model)}
    act = [p for p in model.parameters() if id(p) in act_ids and p.requires_grad]
    rest = [p for p in model.parameters() if id(p) not in act_ids and p.requires_grad]
    groups = [{"params": rest, "weight_decay": weight_decay}]
    if act:
        groups.append({"params": act, "weight_decay": 0.0})
    return groups


def _make_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    groups = parameter_groups(model, spec.weight_decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=spec.lr)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=spec.lr)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {spec.optimizer!r}")


def _site_record(site) -> dict[str, Any]:
    """A JSON-ready copy of one :class:`actlab.inspection.SiteReport` (see :func:`site_report`)."""
    return {
        "site": site.name,
        "class": site.type,
        "registry_name": site.registry_name,
        "parameters": {k: np.asarray(v).tolist() for k, v in site.parameters.items()},
        "x": site.x.tolist(),
        "y": site.y.tolist(),
        "elementwise": site.elementwise,
    }


def site_report(record: Mapping[str, Any]):
    """The :class:`actlab.inspection.SiteReport` of a stored snapshot record."""
    from ..inspection import SiteReport

    return SiteReport(
        name=record["site"],
        type=record["class"],
        registry_name=record.get("registry_name"),
        parameters={k: np.asarray(v) for k, v in record.get("parameters", {}).items()},
        x=np.asarray(record["x"], dtype=np.float64),
        y=np.asarray(record["y"], dtype=np.float64),
        elementwise=record.get("elementwise", True),
    )


def snapshot_activations(model: nn.Module) -> list[dict[str, Any]]:
    """Per activation site: name, class, parameter values and curve (one row per channel).

    The curves come from :func:`actlab.inspect` on :data:`SHAPE_RANGE`; the
    model is not modified. ``trainable`` marks sites with learned parameters.
    """
    import actlab

    trainable = {name: any(True for _ in m.parameters()) for name, m in actlab.activation_sites(model)}
    out = []
    for site in actlab.inspect(model, x_range=SHAPE_RANGE, points=SHAPE_POINTS):
        record = _site_record(site)
        record["trainable"] = trainable.get(site.name, False)
        out.append(record)
    return out


def initial_shape(choice) -> dict[str, Any]:
    """The snapshot record of a freshly created activation (its shape before training)."""
    from ..inspection import report_site

    return _site_record(report_site("", choice.create(), SHAPE_RANGE, SHAPE_POINTS))


# -- the run -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load_task_data(task: str, data_dir: str | None, seed: int, limit: int | None):
    from .tasks import get_task

    return get_task(task), get_task(task).load(data_dir=data_dir, seed=seed, limit=limit)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _run_environment(spec: RunSpec) -> Iterator[None]:
    """Seeds, thread count and deterministic algorithms for one run; restored afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if spec.device == "cuda":
        # Needed by cuBLAS for reproducible results; must be set before the first cuBLAS call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        # warn_only: an op without a deterministic kernel warns rather than failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        _seed_everything(spec.seed)
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def _environment(spec: RunSpec, device: torch.device) -> dict[str, Any]:
    from .._version import __version__

    env = {
        "actlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches. A last batch of one sample is dropped: BatchNorm cannot train on it."""
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _train(spec: RunSpec, result: RunResult, progress: ProgressCallback | None) -> None:
    """Fill ``result`` in place, so that a failure keeps the history up to the failing epoch."""
    import actlab

    from .models import build_model

    device = torch.device(spec.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        torch.cuda.reset_peak_memory_stats(device)
    result.environment = _environment(spec, device)
    task, data = _load_task_data(spec.task, spec.data_dir, spec.seed, spec.limit)
    result.metric, result.higher_is_better = data.metric, bool(data.higher_is_better)

    # Loading is cached per process: reseed so that the first run of a worker and
    # later ones start from the same random state.
    _seed_everything(spec.seed)
    model = build_model(spec.model, data, spec.activation.create, **spec.model_options).to(device)
    result.num_parameters = sum(p.numel() for p in model.parameters())
    result.activation_parameters = sum(p.numel() for p in actlab.activation_parameters(model))
    optimizer = _make_optimizer(spec, model)

    def to_device(t):
        return torch.as_tensor(t).to(device)

    x_train, y_train = to_device(data.x_train), to_device(data.y_train)
    x_val, y_val = to_device(data.x_val), to_device(data.y_val)
    generator = torch.Generator().manual_seed(spec.seed)
    val_key = f"val_{data.metric}"
    best_state = None
    sign = 1.0 if data.higher_is_better else -1.0

    for epoch in range(1, spec.epochs + 1):
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        for step, idx in enumerate(_batches(len(x_train), spec.batch_size, generator)):
            idx = idx.to(device)
            xb, yb = x_train[idx], y_train[idx]
            if epoch == 1 and step == 0:
                meter = SavedTensorMeter(exclude=model.parameters())
                with meter():
                    loss = task.forward_train(model, xb, yb)
                result.saved_tensor_bytes = meter.bytes
            else:
                loss = task.forward_train(model, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if spec.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()
            # Accumulated on the device: no host synchronisation per step.
            loss_sum += loss.detach().double() * len(idx)
            seen += len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_s = time.perf_counter() - started
        train_loss = float(loss_sum) / max(seen, 1)

        started = time.perf_counter()
        val = task.evaluate(model, x_val, y_val, batch_size=EVAL_BATCH_SIZE)
        eval_s = time.perf_counter() - started
        record = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": float(v) for k, v in val.items()}}
        record.update(train_s=train_s, eval_s=eval_s)
        result.history.append(record)
        result.epochs_run = epoch
        if progress is not None:
            progress(epoch, spec.epochs, record)
        if not _finite(train_loss):
            raise RunDiverged(f"diverged at epoch {epoch}: training loss is {train_loss}")
        if not _finite(record.get(val_key)):
            raise RunDiverged(f"diverged at epoch {epoch}: validation {data.metric} is {record.get(val_key)}")
        if best_state is None or sign * record[val_key] > sign * result.best_val:
            result.best_epoch, result.best_val = epoch, record[val_key]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    result.activations = snapshot_activations(model)
    model.load_state_dict(best_state)
    x_test, y_test = to_device(data.x_test), to_device(data.y_test)
    result.test_metrics = {
        k: float(v) for k, v in task.evaluate(model, x_test, y_test, batch_size=EVAL_BATCH_SIZE).items()
    }
    result.epoch_time_s = float(np.median([h["train_s"] for h in result.history]))
    if device.type == "cuda":
        result.cuda_peak_bytes = int(torch.cuda.max_memory_allocated(device))


def execute_run(spec: RunSpec, progress: ProgressCallback | None = None) -> RunResult:
    """Train and evaluate one configuration; never raises for a failure of the run itself.

    Fixed seeds give identical metrics on the same hardware with the same thread
    count (see ``docs/lab.md`` on determinism).
    """
    result = RunResult(config_hash=spec.config_hash(), status="ok")
    rss = PeakRSS()
    started = time.perf_counter()
    try:
        with _run_environment(spec):
            _train(spec, result, progress)
    except RunDiverged as err:
        result.status, result.error = "failed", str(err)
    except Exception as err:  # the run's own failure: recorded with its traceback, never lost
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}"
    result.total_time_s = time.perf_counter() - started
    result.peak_rss_bytes = rss.peak()
    return result
