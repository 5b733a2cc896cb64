"""What did the activations learn? Curves, input histograms, parameter history, properties.

Everything here returns data (NumPy arrays and dataclasses); the figures are
drawn by :mod:`actlab.plotting` from the same data, so that a report, a test or
a notebook can use the numbers without matplotlib.

:func:`inspect`
    every activation site of a model (as :func:`actlab.sites.activation_sites`
    defines them) with its parameters and its curve on a grid, evaluated from
    the module itself, without side effects.
:func:`record_inputs`
    a context manager whose forward pre-hooks stream a fixed-bin histogram of
    the inputs each site sees (no raw activations are kept).
:class:`ParameterRecorder`
    snapshots of the activation parameters (and curve summaries) every N
    training steps.
:func:`properties`
    measured properties of one activation: boundedness, monotonicity, C¹,
    extrema, moments under N(0, 1) inputs, derivative range, zero crossings.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .registry import ActivationSpec, create, name_of
from .registry import info as registry_info
from .sites import activation_sites

__all__ = [
    "SiteReport",
    "inspect",
    "evaluate",
    "is_elementwise_on",
    "report_site",
    "site_parameters",
    "InputHistogram",
    "InputRecorder",
    "record_inputs",
    "Snapshot",
    "ParameterRecorder",
    "Properties",
    "properties",
]


# ---------------------------------------------------------------------------------------
# Evaluating one activation module on a grid
# ---------------------------------------------------------------------------------------


def _floating_tensors(module: nn.Module) -> Iterator[Tensor]:
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            yield t


def _device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where and in which dtype the module computes: that of its first floating tensor."""
    first = next(_floating_tensors(module), None)
    if first is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return first.device, first.dtype


def _count(module: nn.Module, attribute: str) -> int:
    value = getattr(module, attribute, 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def _channel_layout(module: nn.Module) -> tuple[int, int]:
    """(channels, channel_dim) from the PReLU-style attributes.

    ``num_parameters`` counts per-channel parameter sets; ``num_features``
    (SLAF) counts per-channel statistics, which make channels differ even with
    shared coefficients. The module's curves are as many as the larger.
    """
    channels = max(_count(module, "num_parameters"), _count(module, "num_features"))
    channel_dim = getattr(module, "channel_dim", 1)
    if isinstance(channel_dim, bool) or not isinstance(channel_dim, int):
        channel_dim = 1
    return channels, channel_dim


def _grid_input(x: Tensor, channels: int, channel_dim: int) -> tuple[Tensor, int, int]:
    """The grid laid out so that every channel sees all of it.

    Returns the input and the axes of points and channels in it. With one
    channel the input is the 1-D grid itself.
    """
    if channels == 1:
        return x.clone(), 0, -1  # a copy: in-place activations (ReLU(inplace=True)) write into it
    ndim = max(2, channel_dim + 1 if channel_dim >= 0 else -channel_dim)
    cdim = channel_dim % ndim
    pdim = 0 if cdim != 0 else 1
    shape = [1] * ndim
    shape[cdim] = channels
    shape[pdim] = x.numel()
    view = [1] * ndim
    view[pdim] = x.numel()
    return x.reshape(view).expand(shape).contiguous(), pdim, cdim


def _to_rows(t: Tensor, pdim: int, cdim: int) -> np.ndarray:
    """(channels, points) float64 array from the module's output laid out like its input."""
    if cdim < 0:
        return t.detach().reshape(1, -1).to(torch.float64).cpu().numpy()
    rows = t.detach().movedim((cdim, pdim), (0, 1))
    return rows.reshape(rows.shape[0], rows.shape[1]).to(torch.float64).cpu().numpy()


@contextlib.contextmanager
def _side_effect_free(module: nn.Module) -> Iterator[None]:
    """Eval mode (restoring every submodule's own flag afterwards), no autograd recording."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def evaluate(module: nn.Module, x: Tensor, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The module's curve (and dy/dx by autograd) on the 1-D grid ``x``, per channel.

    ``x`` must already be on the module's device and in its dtype. The module is
    called through ``forward`` directly, so that no hook (an input recorder, a
    user's logger) sees the grid, in eval mode (so that modules with running
    statistics use and do not update them) and under ``no_grad``.

    Returns ``(y, dy)``, each of shape ``(channels, points)`` in float64
    (``dy`` is ``None`` unless ``derivative``).
    """
    if x.dim() != 1:
        raise ValueError(f"the grid must be 1-D, got shape {tuple(x.shape)}")
    channels, channel_dim = _channel_layout(module)
    with _side_effect_free(module):
        inp, pdim, cdim = _grid_input(x, channels, channel_dim)
        if not derivative:
            return _to_rows(_checked_output(module, inp, module.forward(inp)), pdim, cdim), None
        with torch.enable_grad():
            leaf = inp.detach().requires_grad_(True)
            # A non-leaf copy goes in, so that in-place activations are allowed to overwrite it.
            inp = leaf.clone()
            out = _checked_output(module, inp, module.forward(inp))
            # Elementwise: the gradient of the sum is the derivative at each point.
            (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
        return _to_rows(out, pdim, cdim), _to_rows(grad, pdim, cdim)


def _checked_output(module: nn.Module, inp: Tensor, out: Any) -> Tensor:
    if not isinstance(out, Tensor) or out.shape != inp.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise TypeError(
            f"{type(module).__name__} is not an elementwise activation: input of shape {tuple(inp.shape)} "
            f"gave {got}; only elementwise modules can be drawn as curves"
        )
    return out


def is_elementwise_on(module: nn.Module, x: Tensor, y: np.ndarray, row: int | None = None) -> bool:
    """Does the module's output at a point depend on that point only?

    Re-evaluates the middle third of the grid ``x`` (whose curves ``y``, shape
    ``(channels, points)``, or the one of channel ``row``, shape ``(points,)``,
    are known) on its own: an elementwise function gives the same values, a
    module that normalises over the batch or the sample (by its max, its mean)
    does not, and its "curve" is then an artefact of the grid. A module can
    also declare ``elementwise = False``: needed where the grid's own layout
    hides the dependence (a per-sample normalisation over features sees one
    grid value per sample).
    """
    if getattr(module, "elementwise", True) is False:
        return False  # declared by the module (e.g. normalised by the max over each sample's features)
    n = x.numel()
    if n < 6:
        return True
    middle = slice(n // 3, 2 * n // 3)
    again, _ = evaluate(module, x[middle])
    if row is not None:
        again = again[row]
    expected = y[..., middle]
    tol = 64 * torch.finfo(x.dtype).eps * max(1.0, float(np.abs(expected).max(initial=0.0)))
    return bool(np.allclose(again, expected, rtol=0.0, atol=tol, equal_nan=True))


def _interval(name: str, value: Any) -> tuple[float, float]:
    """``(low, high)`` as floats, checked: two finite numbers with low < high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be two finite numbers (low, high) with low < high, got {value!r}")
    return lo, hi


def _grid(x_range: tuple[float, float], points: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    lo, hi = _interval("x_range", x_range)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    return torch.linspace(lo, hi, points, dtype=torch.float64).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------
# inspect(): every site, its parameters and its curve
# ---------------------------------------------------------------------------------------


def _numeric_constants(module: nn.Module) -> dict[str, np.ndarray]:
    """Numeric constructor constants of torch.nn activations (``negative_slope``, ``alpha``, ...)."""
    out = {}
    for name in getattr(module, "__constants__", ()):
        value = getattr(module, name, None)
        if name != "num_parameters" and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = np.asarray(float(value))
    return out


def site_parameters(module: nn.Module) -> dict[str, np.ndarray]:
    """The activation's parameters as it computes with them (constrained values), as arrays.

    actlab modules report ``values()`` (e.g. SRS's alpha and beta after the
    softplus reparameterisation), shape ``(num_parameters[, size])``; other
    modules report their own parameters (PReLU's ``weight``) and numeric
    constants (LeakyReLU's ``negative_slope``).
    """
    values = getattr(module, "values", None)
    if callable(values):
        with torch.no_grad():
            got = values()
        if isinstance(got, Mapping):
            return {k: v.detach().to(torch.float64).cpu().numpy() for k, v in got.items()}
    out = {name: p.detach().to(torch.float64).cpu().numpy() for name, p in module.named_parameters(recurse=False)}
    for name, value in _numeric_constants(module).items():
        out.setdefault(name, value)
    return out


@dataclass(frozen=True, eq=False)
class SiteReport:
    """One activation site: who it is, its parameters and its curve on a grid.

    Attributes:
        name: qualified module name in the model (``""`` for the model itself).
        type: the module's class name.
        registry_name: its name in the actlab registry, or ``None``.
        parameters: constrained parameter values, ``{name: array}``.
        x: the grid, shape ``(points,)``, as represented in the module's dtype.
        y: the curve, shape ``(channels, points)``; channels = 1 when shared.
        dy: dy/dx (autograd), same shape as ``y``, or ``None``.
        elementwise: ``False`` when the module's output at a point was found to
            depend on the other inputs (normalisation over the batch or the
            sample); its curve then holds for this grid only.
    """

    name: str
    type: str
    registry_name: str | None
    parameters: dict[str, np.ndarray] = field(repr=False)
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    dy: np.ndarray | None = field(default=None, repr=False)
    elementwise: bool = True

    @property
    def channels(self) -> int:
        """Number of separately parameterised curves (1 = shared by the whole layer)."""
        return self.y.shape[0]

    @property
    def mean(self) -> np.ndarray:
        """Mean curve over channels, shape ``(points,)``."""
        return self.y.mean(axis=0)

    @property
    def min(self) -> np.ndarray:
        """Pointwise minimum over channels, shape ``(points,)``."""
        return self.y.min(axis=0)

    @property
    def max(self) -> np.ndarray:
        """Pointwise maximum over channels, shape ``(points,)``."""
        return self.y.max(axis=0)

    @property
    def label(self) -> str:
        """``name (registry name or type)`` for titles and legends."""
        kind = self.registry_name or self.type
        return f"{self.name} ({kind})" if self.name else kind


def report_site(
    name: str,
    module: nn.Module,
    x_range: tuple[float, float] = (-5.0, 5.0),
    points: int = 201,
    derivative: bool = False,
) -> SiteReport:
    """The :class:`SiteReport` of one activation module (see :func:`inspect`)."""
    device, dtype = _device_and_dtype(module)
    x = _grid(x_range, points, device, dtype)
    y, dy = evaluate(module, x, derivative)
    elementwise = is_elementwise_on(module, x, y)
    if not elementwise:
        warnings.warn(
            f"activation site {name or '(model)'!r} ({type(module).__name__}) is not elementwise: its output at a "
            "point depends on the other inputs (normalisation over the batch or the sample), so its curve holds "
            "for this grid only",
            stacklevel=3,
        )
    return SiteReport(
        name=name,
        type=type(module).__name__,
        registry_name=name_of(module),
        parameters=site_parameters(module),
        x=x.to(torch.float64).cpu().numpy(),
        y=y,
        dy=dy,
        elementwise=elementwise,
    )


def inspect(
    model: nn.Module, x_range: tuple[float, float] = (-5.0, 5.0), points: int = 201, derivative: bool = False
) -> list[SiteReport]:
    """Every activation site of ``model`` with its parameters and its curve on a grid.

    The curves are the modules' own outputs on ``linspace(*x_range, points)``
    (one row per channel for per-channel modules, which get an input of shape
    ``(points, C)`` laid out along their ``channel_dim``), computed on each
    module's device and dtype, in eval mode (restored afterwards), without
    autograd recording and without running hooks: inspecting changes nothing
    in the model, its buffers (running statistics) or its gradients.

    Args:
        model: any module; the model itself counts when it is an activation.
        x_range: (low, high) of the grid. Default: (-5, 5)
        points: number of grid points. Default: 201
        derivative: also compute dy/dx by autograd. Default: ``False``

    Returns:
        one :class:`SiteReport` per site, in ``named_modules`` order.

    Example::

        >>> for site in actlab.inspect(model):
        ...     print(site.name, site.type, {k: v.round(3) for k, v in site.parameters.items()})
    """
    return [report_site(name, module, x_range, points, derivative) for name, module in activation_sites(model)]


# ---------------------------------------------------------------------------------------
# record_inputs(): streaming histograms of what each site sees
# ---------------------------------------------------------------------------------------

#: Elements processed at a time when binning, so that recording a large
#: activation never needs more than a few float64 copies of this many values.
_CHUNK = 1 << 22

#: Automatic range: the first batch's [min, max], widened by this fraction of its span on each side.
AUTO_RANGE_MARGIN = 0.25


@dataclass(frozen=True, eq=False)
class InputHistogram:
    """What one activation site received, summarised.

    Bins follow ``numpy.histogram``: ``[edges[i], edges[i+1])``, the last bin
    closed. Values below ``edges[0]`` (including -inf) are counted in
    ``underflow``, above ``edges[-1]`` (including +inf) in ``overflow``, NaN in
    ``nan_count``. ``count``, ``min``, ``max``, ``mean`` and ``var``
    (population variance) are exact and cover every finite value seen, inside
    the bins or not.
    """

    edges: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    underflow: int
    overflow: int
    count: int
    nan_count: int
    inf_count: int
    min: float
    max: float
    mean: float
    var: float

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def fraction_outside(self) -> float:
        """Share of the non-NaN values that fell outside the bins."""
        total = self.count + self.inf_count
        return (self.underflow + self.overflow) / total if total else 0.0

    def density(self) -> np.ndarray:
        """Counts per unit x, normalised by all non-NaN values (so the mass outside the bins is missing)."""
        total = self.count + self.inf_count
        widths = np.diff(self.edges)
        return self.counts / (widths * total) if total else np.zeros_like(widths)


class _StreamingHistogram:
    """Device-side accumulators: no host synchronisation per batch (except once, for an automatic range)."""

    def __init__(self, bins: int, value_range: tuple[float, float] | None):
        self.bins = bins
        self.value_range = value_range
        self.edges: Tensor | None = None
        self.counts = self.underflow = self.overflow = self.nan_count = self.inf_count = None
        self.count = self.mean = self.m2 = self.min = self.max = None

    def _initialise(self, device: torch.device) -> None:
        i64 = {"dtype": torch.int64, "device": device}
        f64 = {"dtype": torch.float64, "device": device}
        self.counts = torch.zeros(self.bins, **i64)
        self.underflow, self.overflow, self.nan_count, self.inf_count, self.count = (
            torch.zeros((), **i64) for _ in range(5)
        )
        self.mean, self.m2 = torch.zeros((), **f64), torch.zeros((), **f64)
        self.min = torch.full((), math.inf, **f64)
        self.max = torch.full((), -math.inf, **f64)

    def _set_edges(self, flat: Tensor) -> None:
        if self.value_range is not None:
            lo, hi = self.value_range
        else:
            finite = flat[torch.isfinite(flat)]
            if finite.numel() == 0:
                return  # wait for a batch with a finite value
            lo, hi = finite.min().item(), finite.max().item()
            margin = AUTO_RANGE_MARGIN * (hi - lo) if hi > lo else 1.0
            lo, hi = lo - margin, hi + margin
        # The same edges numpy.histogram would build, so that the bins agree exactly.
        self.edges = torch.from_numpy(np.linspace(lo, hi, self.bins + 1)).to(flat.device)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        flat = x.detach().reshape(-1)
        if self.counts is None:
            self._initialise(flat.device)
        if self.edges is None:
            self._set_edges(flat)
        for start in range(0, flat.numel(), _CHUNK):
            self._update_chunk(flat[start : start + _CHUNK].to(torch.float64))

    def _update_chunk(self, c: Tensor) -> None:
        finite = torch.isfinite(c)
        self.nan_count += torch.isnan(c).sum()
        self.inf_count += torch.isinf(c).sum()
        zero = torch.zeros((), dtype=c.dtype, device=c.device)
        if self.edges is None:  # automatic range not known yet: only infinities can be placed
            self.underflow += (c == -math.inf).sum()
            self.overflow += (c == math.inf).sum()
        else:
            lo, hi = self.edges[0], self.edges[-1]
            self.underflow += (c < lo).sum()
            self.overflow += (c > hi).sum()
            inside = (c >= lo) & (c <= hi)
            index = (torch.bucketize(c, self.edges, right=True) - 1).clamp(0, self.bins - 1)
            self.counts.scatter_add_(0, index, inside.to(torch.int64))
        # Moments: Chan et al.'s pairwise update, kept in float64 on the device.
        n_b = finite.sum()
        n = self.count + n_b
        mean_b = torch.where(finite, c, zero).sum() / n_b.clamp(min=1)
        m2_b = torch.where(finite, (c - mean_b) ** 2, zero).sum()
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n.clamp(min=1)
        self.m2 = self.m2 + m2_b + delta * delta * self.count * n_b / n.clamp(min=1)
        self.count = n
        self.min = torch.minimum(self.min, torch.where(finite, c, math.inf).min())
        self.max = torch.maximum(self.max, torch.where(finite, c, -math.inf).max())

    def snapshot(self) -> InputHistogram | None:
        if self.counts is None:
            return None
        count = int(self.count)
        edges = self.edges.cpu().numpy() if self.edges is not None else np.linspace(-1.0, 1.0, self.bins + 1)
        return InputHistogram(
            edges=edges,
            counts=self.counts.cpu().numpy(),
            underflow=int(self.underflow),
            overflow=int(self.overflow),
            count=count,
            nan_count=int(self.nan_count),
            inf_count=int(self.inf_count),
            min=float(self.min) if count else math.nan,
            max=float(self.max) if count else math.nan,
            mean=float(self.mean) if count else math.nan,
            var=float(self.m2) / count if count else math.nan,
        )


def _first_tensor(args: tuple, kwargs: dict) -> Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


class InputRecorder:
    """Forward pre-hooks that histogram the input of every activation site.

    Made by :func:`record_inputs`; use it as a context manager (or call
    :meth:`start` and :meth:`stop`). The hooks only read their input: the
    model's outputs and gradients are unchanged, and :meth:`stop` (run on
    leaving the ``with`` block, also on an exception) removes every hook.
    A module called several times per forward pass accumulates all its calls.
    """

    def __init__(self, model: nn.Module, bins: int = 200, range: tuple[float, float] | None = None):
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if range is not None:
            range = _interval("range", range)
        self.model = model
        self.bins = bins
        self.range = range
        self._accumulators: dict[str, _StreamingHistogram] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def start(self) -> InputRecorder:
        """Register the hooks (once); earlier counts are kept."""
        if self._handles:
            raise RuntimeError("this recorder is already recording; stop() it before starting again")
        try:
            for name, module in activation_sites(self.model):
                acc = self._accumulators.setdefault(name, _StreamingHistogram(self.bins, self.range))
                self._handles.append(module.register_forward_pre_hook(self._hook(acc), with_kwargs=True))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove every hook; the histograms stay readable."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    @staticmethod
    def _hook(acc: _StreamingHistogram):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = _first_tensor(args, kwargs)
            if x is not None and x.is_floating_point():
                acc.update(x)

        return hook

    def __enter__(self) -> InputRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def histograms(self) -> dict[str, InputHistogram]:
        """``{site name: InputHistogram}`` for every site that has seen an input (synchronises the device)."""
        out = {}
        for name, acc in self._accumulators.items():
            snap = acc.snapshot()
            if snap is not None:
                out[name] = snap
        return out


def record_inputs(model: nn.Module, bins: int = 200, range: tuple[float, float] | None = None) -> InputRecorder:
    """Histogram the inputs each activation site of ``model`` sees, while the block runs.

    Streaming: fixed bins and running statistics are updated on the device at
    every call; no raw activation is stored and no host synchronisation happens
    per batch.

    Range strategy: with ``range=(low, high)`` the bins are fixed to it. With
    ``range=None`` (default) each site fixes its bins at the first input it
    sees: that input's [min, max] widened by 25 % of its span on each side
    (one host synchronisation per site). Either way, values outside the bins
    are counted in ``underflow``/``overflow`` and ``min``/``max``/``mean``/``var``
    stay exact, so nothing seen is lost and a too-narrow range is visible
    (``fraction_outside``).

    Example::

        >>> with actlab.record_inputs(model, range=(-8, 8)) as rec:
        ...     for x, _ in loader:
        ...         model(x)
        >>> h = rec.histograms["block1.act"]; h.mean, h.var, h.fraction_outside

    Returns:
        an :class:`InputRecorder`; its hooks are registered on entering the
        ``with`` block and removed on leaving it (also on an exception).
    """
    return InputRecorder(model, bins=bins, range=range)


# ---------------------------------------------------------------------------------------
# ParameterRecorder: snapshots during training
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The activations at one training step: parameters and curve summaries per site."""

    step: int
    parameters: dict[str, dict[str, np.ndarray]] = field(repr=False)
    #: site -> (channel mean, channel min, channel max) curves on ``x`` (empty when curves are off)
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)
    x: np.ndarray | None = field(repr=False, default=None)
    #: site -> registry name (or class name) of its module
    kinds: dict[str, str] = field(repr=False, default_factory=dict)


class ParameterRecorder:
    """Records every activation site's parameters every ``every`` training steps.

    Call :meth:`step` once per optimizer step (or :meth:`attach` the recorder
    to the optimizer). The state at construction is recorded as step 0. With
    ``curves=True`` each snapshot also keeps the mean/min/max over channels of
    every site's curve on ``linspace(*x_range, points)``, so that
    :func:`actlab.plotting.plot_evolution` can draw how each layer's shape
    changed (memory: 3 × points floats per site and snapshot; full per-channel
    curves are never stored).

    Example::

        >>> rec = actlab.ParameterRecorder(model, every=50)
        >>> rec.attach(optimizer)               # or call rec.step() after optimizer.step()
        >>> ...train...
        >>> steps, alphas = rec.history("layer1.act", "alpha")   # (T,), (T, num_parameters)
        >>> actlab.plotting.plot_evolution(rec, save="evolution.png")
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 100,
        *,
        curves: bool = True,
        x_range: tuple[float, float] = (-5.0, 5.0),
        points: int = 101,
    ):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer number of steps, got {every!r}")
        _grid(x_range, points, torch.device("cpu"), torch.float64)  # validate early
        self.model = model
        self.every = every
        self.curves = curves
        self.x_range = x_range
        self.points = points
        self.steps_taken = 0
        self.snapshots: list[Snapshot] = []
        self._handle: Any = None
        self.record()

    def step(self) -> None:
        """Count one training step; record when the count is a multiple of ``every``."""
        self.steps_taken += 1
        if self.steps_taken % self.every == 0:
            self.record()

    def record(self) -> Snapshot:
        """Take a snapshot now (at the current step count), replacing one already taken at this step."""
        parameters: dict[str, dict[str, np.ndarray]] = {}
        curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        kinds: dict[str, str] = {}
        x = None
        for name, module in activation_sites(self.model):
            parameters[name] = site_parameters(module)
            kinds[name] = name_of(module) or type(module).__name__
            if self.curves:
                report = report_site(name, module, self.x_range, self.points)
                curves[name] = (report.mean, report.min, report.max)
                x = report.x
        snap = Snapshot(self.steps_taken, parameters, curves, x, kinds)
        if self.snapshots and self.snapshots[-1].step == snap.step:
            self.snapshots[-1] = snap
        else:
            self.snapshots.append(snap)
        return snap

    def attach(self, optimizer: torch.optim.Optimizer) -> ParameterRecorder:
        """Call :meth:`step` after every ``optimizer.step()`` (an optimizer step post-hook)."""
        if self._handle is not None:
            raise RuntimeError("this recorder is already attached to an optimizer; detach() it first")
        self._handle = optimizer.register_step_post_hook(lambda *_: self.step())
        return self

    def detach(self) -> None:
        """Remove the optimizer hook installed by :meth:`attach`."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def sites(self) -> list[str]:
        """Every site name seen in any snapshot, in first-seen order."""
        return list(dict.fromkeys(name for snap in self.snapshots for name in snap.parameters))

    def history(self, site: str, parameter: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)``: the recorded values of one parameter, stacked along axis 0."""
        rows = [
            (s.step, s.parameters[site][parameter]) for s in self.snapshots if parameter in s.parameters.get(site, {})
        ]
        if not rows:
            known = {p for s in self.snapshots for p in s.parameters.get(site, {})}
            if site not in self.sites:
                raise KeyError(f"no activation site named {site!r} was recorded; sites: {', '.join(self.sites)}")
            raise KeyError(f"site {site!r} has no parameter {parameter!r}; parameters: {', '.join(sorted(known))}")
        return np.array([r[0] for r in rows]), np.stack([r[1] for r in rows])


# ---------------------------------------------------------------------------------------
# properties(): measured facts about one activation
# ---------------------------------------------------------------------------------------

#: Growth test: the running supremum's last-decade increase must be at most this
#: fraction of the decade before (a limit approached like 1/x shrinks by 10×
#: per decade; logarithmic growth keeps it constant, linear growth multiplies it by 10).
_GROWTH_RATIO = 0.5
#: C¹ test: refining the grid 10× must shrink the largest jump of f' by at least this factor.
_C1_RATIO = 0.5
#: Increases/jumps below this (relative to the scale of the values) are rounding noise.
_RTOL = 1e-9


@dataclass(frozen=True)
class Properties:
    """Measured properties of one activation (see :func:`properties` for the decision rules).

    ``minimum``/``maximum`` are ``(x, f(x))``; ``x`` is ``±inf`` when the
    extreme value is approached (or attained on a flat half-line) towards that
    end, and the whole entry is ``None`` when that side is unbounded.
    ``limits`` are the values towards -∞ and +∞ (``±inf`` where the function
    diverges on that side). ``mean`` and ``var`` are E[f(X)] and Var[f(X)] for
    X ~ N(0, 1).
    """

    name: str
    registry_name: str | None
    bounded_below: bool
    bounded_above: bool
    monotonic: bool
    smooth_c1: bool
    minimum: tuple[float, float] | None
    maximum: tuple[float, float] | None
    limits: tuple[float, float]
    mean: float
    var: float
    derivative_range: tuple[float, float]
    zero_crossings: tuple[float, ...]
    value_at_zero: float
    derivative_at_zero: float

    def mismatches(self, declared: Any = None) -> list[str]:
        """Where the measurement disagrees with declared flags (an :class:`ActivationInfo`).

        ``declared`` defaults to the registry entry of ``registry_name``; an
        empty list means agreement on bounded below/above, monotonic and smooth (C¹).
        """
        if declared is None:
            if self.registry_name is None:
                return []
            declared = registry_info(self.registry_name)
        pairs = {
            "bounded_below": (declared.bounded_below, self.bounded_below),
            "bounded_above": (declared.bounded_above, self.bounded_above),
            "monotonic": (declared.monotonic, self.monotonic),
            "smooth": (declared.smooth, self.smooth_c1),
        }
        return [f"{k}: declared {d}, measured {m}" for k, (d, m) in pairs.items() if d != m]


class _Curve:
    """One channel of a module as a float64 function of NumPy arrays."""

    def __init__(self, module: nn.Module, channel: int | None):
        self.module = module
        channels, _ = _channel_layout(module)
        if channels > 1 and channel is None:
            raise ValueError(
                f"{type(module).__name__} has {channels} per-channel parameter sets; pass channel=i "
                f"(0 <= i < {channels}) to measure one of them"
            )
        if channel is not None and not 0 <= channel < channels:
            raise ValueError(f"channel must be in [0, {channels}), got {channel}")
        self.row = 0 if channel is None else channel

    def __call__(self, x: np.ndarray, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        y, dy = evaluate(self.module, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), derivative)
        y, dy = y[self.row], (dy[self.row] if dy is not None else None)
        if np.isnan(y).any():
            bad = x[np.isnan(y)]
            raise ValueError(
                f"{type(self.module).__name__} returned NaN at {bad.size} grid point(s), e.g. x = {bad[0]:.6g}; "
                "its properties cannot be measured (the activation is not finite there)"
            )
        return y, dy

    def at(self, x: float) -> float:
        return float(self(np.array([x]))[0][0])

    def derivative_at(self, x: float) -> float:
        return float(self(np.array([x]), derivative=True)[1][0])


def _c1(curve: _Curve, x: np.ndarray, dy: np.ndarray, candidates: int = 64) -> bool:
    """The C¹ test (see :func:`properties`) on an equally spaced grid ``x`` with derivative ``dy``."""
    jumps = np.abs(np.diff(dy))
    noise = 1e-7 * max(1.0, float(np.abs(dy).max()))
    # A kink makes one interval's jump (or two, when it sits on a grid point) stand
    # out from the intervals two places away; a smooth f' changes slowly.
    padded = np.pad(jumps, 2, mode="edge")
    neighbours = np.maximum(padded[:-4], padded[4:])
    suspects = np.flatnonzero((jumps > 2 * neighbours) & (jumps > noise))
    suspects = suspects[np.argsort(jumps[suspects])[::-1][:candidates]]
    if suspects.size == 0:
        return True
    # Refine each suspect interval 10×: at a kink the largest sub-jump keeps
    # the size of the jump, for a C¹ function it shrinks about 10×.
    fractions = np.linspace(0.0, 1.0, 11)
    local = x[suspects, None] + fractions[None, :] * (x[suspects + 1] - x[suspects])[:, None]
    sub = curve(local.reshape(-1), derivative=True)[1].reshape(local.shape)
    sub_jumps = np.abs(np.diff(sub, axis=1)).max(axis=1)
    return bool(np.all(sub_jumps <= _C1_RATIO * jumps[suspects]))


def _decade_supremum_bounded(r: np.ndarray, values: np.ndarray, far_exponent: int) -> bool:
    """Is ``values`` (ordered by increasing distance ``r`` from 0) bounded above as r → ∞?

    The running maximum M(R) over r <= R is read at R = 10^(e-2), 10^(e-1), 10^e
    (e = ``far_exponent``). Bounded iff its last-decade increase is rounding
    noise or at most half the previous decade's increase.
    """
    if not np.all(np.isfinite(values)):
        return not np.any(values == np.inf)
    running = np.maximum.accumulate(values)
    at = [
        running[np.searchsorted(r, 10.0**k, side="right") - 1]
        for k in (far_exponent - 2, far_exponent - 1, far_exponent)
    ]
    previous, last = at[1] - at[0], at[2] - at[1]
    return bool(last <= _RTOL * max(1.0, abs(at[2])) or last <= _GROWTH_RATIO * previous)


def _simpson_weights(n: int, h: float) -> np.ndarray:
    if n % 2 == 0:
        raise ValueError("Simpson's rule needs an odd number of points")
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3.0


def _refine(
    curve: _Curve, lo: float, hi: float, sign: float, rounds: int = 3, points: int = 1001
) -> tuple[float, float]:
    """Locate the minimum of ``sign·f`` in [lo, hi] by successively finer grids.

    Used where f' has no sign change to bisect (a minimum at a kink), where
    it converges to the kink; the final spacing is (hi - lo)·1e-9.
    """
    for _ in range(rounds):
        xs = np.linspace(lo, hi, points)
        ys = sign * curve(xs)[0]
        i = int(np.argmin(ys))
        lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, points - 1)]
    return float(xs[i]), float(sign * ys[i])


def _bisect(fn: Any, lo: float, hi: float, iterations: int = 80) -> float:
    """A root of the scalar function ``fn`` in [lo, hi], where fn(lo) and fn(hi) have opposite signs."""
    lo, hi = float(lo), float(hi)
    f_lo = fn(lo)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f_mid = fn(mid)
        if f_mid == 0 or mid in (lo, hi):
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _sign_changes(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    """Brackets (x_a, x_b) between consecutive strictly negative and strictly positive values."""
    nonzero = np.flatnonzero(y != 0)
    s = np.sign(y[nonzero])
    flips = np.flatnonzero(s[1:] != s[:-1])
    return [(float(x[nonzero[i]]), float(x[nonzero[i + 1]])) for i in flips]


def _extreme(curve: _Curve, x: np.ndarray, y: np.ndarray, dy: np.ndarray, sign: float) -> tuple[float, float]:
    """(x, f(x)) of the minimum of sign·f; x = ±inf when reached at an end of the grid.

    An interior minimum is located as the root of f' (bisection: exact to
    rounding), or, at a kink where f' does not change sign, on finer grids.
    """
    s = sign * y
    i = int(np.argmin(s))
    best = s[i]
    tol = _RTOL * max(1.0, abs(best))
    if s[0] - best <= tol:
        return -math.inf, float(y[0])
    if s[-1] - best <= tol:
        return math.inf, float(y[-1])
    lo, hi = x[i - 1], x[i + 1]
    if dy[i - 1] * sign < 0 < dy[i + 1] * sign:
        at = _bisect(curve.derivative_at, lo, hi)
        return at, float(curve(np.array([at]))[0][0])
    return _refine(curve, lo, hi, sign)


def _side_limit(values: np.ndarray, bounded_above: bool, bounded_below: bool) -> float:
    if not bounded_above and values[-1] >= values.max() - _RTOL * abs(values.max()):
        return math.inf
    if not bounded_below and values[-1] <= values.min() + _RTOL * abs(values.min()):
        return -math.inf
    return float(values[-1]) + 0.0  # + 0.0 turns -0.0 into 0.0


def properties(
    spec: ActivationSpec,
    *,
    channel: int | None = None,
    window: float = 20.0,
    step: float = 1e-3,
    far: float = 1e6,
    **kwargs: Any,
) -> Properties:
    """Measure the properties of an activation, in float64, on CPU.

    Args:
        spec: a registry name, class, module instance (copied, not modified) or
            tensor function, as accepted by :func:`actlab.create`.
        channel: which channel to measure for a per-channel module.
        window: half-width of the dense grid. Default: 20
        step: spacing of the dense grid. Default: 1e-3
        far: the grid extends log-spaced (100 points per decade) to ±far. Default: 1e6
        **kwargs: constructor arguments (e.g. ``alpha=5.0``).

    Decision rules (all on the grid ``{-window..window step step} ∪ ±logspace(window, far)``):

    - **bounded above** (below: the same for -f), decided separately on each
      side: the running maximum of f over |x| <= R is read at
      R = far/100, far/10, far. Bounded iff its increase over the last decade
      is at most half its increase over the decade before (or below 1e-9
      relative). Functions converging to a limit at least as fast as
      R^(-0.3) pass; logarithmic or faster growth fails. A finite window alone
      cannot tell x from 1 - e^(-x), this rule can.
    - **monotonic**: the values on the whole grid never decrease (or never
      increase) by more than 1e-9 of their magnitude between neighbours.
    - **smooth (C¹)**: f' by autograd on [-window, window] at spacing ``step``.
      Intervals whose jump of f' exceeds twice the jumps two intervals away
      (and 1e-7·max|f'|) are suspect kinks; each is resampled 10× finer, and
      f is C¹ iff every suspect's largest sub-jump is at most half its jump
      (a C¹ function's shrinks about 10×, a kink's not at all). Kinks smaller
      than 1e-7·max|f'| pass, and features narrower than ``step/10`` look
      like kinks.
    - **minimum/maximum**: the grid's extreme, located as the root of f' by
      bisection (at a kink: on successively finer local grids); reported at
      ±inf when the value at that end of the grid equals it within 1e-9.
    - **mean/var** under N(0, 1): composite Simpson's rule of f·φ on the dense
      grid (deterministic; a kink at 0 sits on a panel boundary; the tail mass
      beyond ±20 is below 1e-88).
    - **zero crossings**: sign changes between strictly negative and strictly
      positive grid values, refined by bisection (touching zero without
      crossing, e.g. ReLU on x <= 0, is not a crossing).
    """
    module = create(spec, **kwargs).to(device="cpu", dtype=torch.float64)
    if not isinstance(spec, nn.Module) and callable(getattr(module, "reset_parameters", None)):
        # A fresh module: re-initialise in float64, so that defaults such as
        # SRS's beta = 3 are exact rather than float32 values cast up.
        module.reset_parameters()
    curve = _Curve(module, channel)
    n = int(round(window / step))
    if n < 2 or not 1 < window < far:
        raise ValueError(f"need step < window < far with window > 1, got window={window}, step={step}, far={far}")
    far_exponent = int(math.floor(math.log10(far)))
    if far_exponent - 2 < math.log10(window):
        raise ValueError(f"far must be at least 1000·window for the growth test, got far={far}, window={window}")
    dense = np.arange(-n, n + 1) * step
    tail = np.logspace(math.log10(dense[-1]), math.log10(far), 100 * (far_exponent - int(math.log10(window))) + 1)[1:]
    x = np.concatenate([-tail[::-1], dense, tail])
    y, dy = curve(x, derivative=True)
    center = n + len(tail)
    if not is_elementwise_on(module, torch.from_numpy(dense), y[center - n : center + n + 1], row=curve.row):
        raise ValueError(
            f"{type(module).__name__} is not elementwise: its output at a point depends on the other inputs "
            "(normalisation over the batch or the sample), so it has no fixed curve whose properties could be measured"
        )

    # Boundedness, side by side (each side ordered by distance from 0).
    r_pos, y_pos = x[center:], y[center:]
    r_neg, y_neg = -x[center::-1], y[center::-1]
    above = {
        s: _decade_supremum_bounded(r, v, far_exponent)
        for s, (r, v) in {"-": (r_neg, y_neg), "+": (r_pos, y_pos)}.items()
    }
    below = {
        s: _decade_supremum_bounded(r, -v, far_exponent)
        for s, (r, v) in {"-": (r_neg, y_neg), "+": (r_pos, y_pos)}.items()
    }
    bounded_above, bounded_below = all(above.values()), all(below.values())

    diffs = np.diff(y)
    scale = _RTOL * np.maximum(np.abs(y[:-1]), np.abs(y[1:]))
    monotonic = bool(np.all(diffs >= -scale) or np.all(diffs <= scale))

    dense_y, dense_dy = y[center - n : center + n + 1], dy[center - n : center + n + 1]

    weights = _simpson_weights(dense.size, step) * np.exp(-0.5 * dense**2) / math.sqrt(2 * math.pi)
    mean = float(weights @ dense_y)
    var = float(weights @ (dense_y - mean) ** 2)

    return Properties(
        name=spec if isinstance(spec, str) else type(module).__name__,
        registry_name=name_of(module) if not isinstance(spec, str) else registry_info(spec).name,
        bounded_below=bounded_below,
        bounded_above=bounded_above,
        monotonic=monotonic,
        smooth_c1=_c1(curve, dense, dense_dy),
        minimum=_extreme(curve, x, y, dy, 1.0) if bounded_below else None,
        maximum=_extreme(curve, x, y, dy, -1.0) if bounded_above else None,
        limits=(
            _side_limit(y_neg, above["-"], below["-"]),
            _side_limit(y_pos, above["+"], below["+"]),
        ),
        mean=mean,
        var=var,
        derivative_range=(float(dy.min()), float(dy.max())),
        zero_crossings=tuple(_bisect(curve.at, a, b) for a, b in _sign_changes(x, y)),
        value_at_zero=float(y[center]),
        derivative_at_zero=float(dy[center]),
    )
