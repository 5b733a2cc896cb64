"""SLAF's normalised power basis (``basis="taylor"``, ``normalize=True``) on actlab's native C kernels.

The passes over every element of :class:`actlab.activations.slaf._NormalisedPowerSum`, each
one stage function of :mod:`actlab.activations.slaf` (``_power_moments``, ``_centred_power_sum``,
...), run as the loops of ``kernels/slaf_power.c`` on float32 CPU inputs whose channels are
not last in memory (the ``"shared"`` and ``"rows"`` views of :mod:`actlab.kernels.layout`); the
per-group arithmetic between them stays in torch, as for the compiled path. On the CNN
benchmark's first layer (128×32×28×28, one thread) inductor's loops for these stages took
11.2 ms and these 9.9 ms (GELU's forward and backward: 4.4 ms); they compile nothing per
shape, and keep statistics in double precision (the moments by blocks merged with Chan's
formula, which leaves no cancellation between Σu^2p and (Σu^p)²).

:func:`run` takes a stage's name, tensors and static arguments as
``slaf._run`` hands them over, and returns what the stage function returns.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..kernels import native
from ..kernels.layout import COLS, SHARED, Layout, plan
from .slaf import exponent_of_max

__all__ = ["applies", "run", "STAGES"]

#: The C file (``kernels/<LIBRARY>.c``).
LIBRARY = "slaf_power"

#: The largest degree the kernels take (the size of their per-channel arrays, ``SLAF_MAX_DEGREE``
#: in the C file, checked when the library is loaded).
MAX_DEGREE = 16

#: Elements per part below which a call is not split between threads (as for the elementwise kernels).
GRAIN = 1 << 15


def applies(x: Tensor, channel_dim: int, per_channel: bool, degree: int) -> bool:
    """Whether the kernels take ``x``: float32 on the CPU, channels not last in memory when any
    coefficient or statistic is per channel (those inputs go to the compiled path), a degree up to
    :data:`MAX_DEGREE`."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() == 0 or degree > MAX_DEGREE:
        return False
    return _layout(x, channel_dim % x.dim() if per_channel else None).kind != COLS


def _layout(x: Tensor, channel_dim: int | None) -> Layout:
    if channel_dim is None or x.shape[channel_dim] == 1:
        return plan(x, ())
    shape = [1] * x.dim()
    shape[channel_dim] = x.shape[channel_dim]
    return plan(x, (x.new_empty(()).expand(shape),))  # a shape to plan by, no memory


def _channel_dim(x: Tensor, tensors: Sequence[Tensor]) -> int | None:
    """The axis along which any of the (keepdim) per-group tensors varies, or None if all are shared."""
    for t in tensors:
        for d in range(x.dim()):
            if t.shape[d] > 1:
                return d
    return None


def _reduced_channel_dim(x: Tensor, dims: tuple[int, ...]) -> int | None:
    """The one axis a reduction over ``dims`` keeps, or None for a reduction over every axis."""
    kept = [d for d in range(x.dim()) if d not in dims]
    return kept[0] if kept else None


def _vector(t: Tensor, channels: int) -> Tensor:
    """A (keepdim) per-group value as a (channels,) float32 vector."""
    return t.reshape(-1).to(torch.float32).expand(channels).contiguous()


def _table(t: Tensor, channels: int) -> Tensor:
    """A (keepdim, k) per-group, per-power value as a (k, channels) float32 table."""
    k = t.shape[-1]
    return t.reshape(-1, k).to(torch.float32).T.expand(k, channels).contiguous()


class _Call:
    """One stage's kernel call: the layout, the parts and the run arguments of its input."""

    def __init__(self, x: Tensor, channel_dim: int | None):
        self.layout = _layout(x, channel_dim)
        if self.layout.kind == COLS:
            raise RuntimeError("slaf_native: channels-last inputs are the compiled path's (see applies)")
        self.channel_dim = channel_dim
        self.channels = self.layout.channels
        self.x = self.layout.view(x)
        runs, inner = (
            (1, x.numel()) if self.layout.kind == SHARED else (self.x.shape[0] * self.x.shape[1], self.x.shape[2])
        )
        self.inner = inner
        self.parts = native.element_parts(runs, inner, grain=GRAIN)
        self.lib = _typed(native.library(LIBRARY))

    def run(self, name: str, pointers: Sequence, *after) -> None:
        """``name(parts, count, *pointers, channels, inner, *after)``."""
        native.run_parts(self.lib, name, self.parts, [*pointers, self.channels, self.inner, *after])

    def per_part(self, dtype: torch.dtype, width: int) -> tuple[Tensor, native.PerPart]:
        """A zeroed (parts, channels, width) buffer and the argument that hands each part its row."""
        buffer = torch.zeros(len(self.parts), self.channels, width, dtype=dtype)
        return buffer, native.PerPart(buffer.data_ptr(), buffer[0].nbytes)

    def keepdim(self, x: Tensor, values: Tensor) -> Tensor:
        """Per-channel ``values`` (channels, ...) in the keepdim shape of a reduction of ``x``."""
        shape = [1] * x.dim()
        if self.channel_dim is not None:
            shape[self.channel_dim] = self.channels
        return values.reshape(*shape, *values.shape[1:])


# The entry points' arguments after (parts, count): pointers, then channels and inner, then int32s.
_SIGNATURES = {
    "slaf_max_abs_parts": (2, 0),
    "slaf_moments_parts": (3, 1),
    "slaf_centred_parts": (6, 1),
    "slaf_polynomial_parts": (5, 1),
    "slaf_grad_sums_parts": (6, 2),
    "slaf_input_grad_parts": (9, 1),
    "slaf_polynomial_input_grad_parts": (5, 1),
}


def _typed(lib: ctypes.CDLL) -> ctypes.CDLL:
    """``lib`` with its entry points' argument types set (untyped, ctypes passes an int as a C int)."""
    if not getattr(lib, "_actlab_typed", False):
        for name, (pointers, ints) in _SIGNATURES.items():
            function = getattr(lib, name)
            parts, sizes = [ctypes.c_void_p, ctypes.c_int64], [ctypes.c_int64, ctypes.c_int64]
            function.argtypes = [*parts, *[ctypes.c_void_p] * pointers, *sizes, *[ctypes.c_int32] * ints]
            function.restype = None
        lib.slaf_max_degree.argtypes, lib.slaf_max_degree.restype = [], ctypes.c_int32
        if lib.slaf_max_degree() != MAX_DEGREE:
            raise RuntimeError(f"{LIBRARY}.c takes degrees up to {lib.slaf_max_degree()}, slaf_native.py {MAX_DEGREE}")
        lib._actlab_typed = True
    return lib


def _moments(x: Tensor, *, k: int, dims: tuple[int, ...]):
    call = _Call(x, _reduced_channel_dim(x, dims))
    maxima, per_part = call.per_part(torch.float32, 1)
    call.run("slaf_max_abs_parts", (call.x.data_ptr(), per_part))
    e = exponent_of_max(maxima.amax(0).view(-1))  # amax keeps a part's NaN
    inv_s = torch.exp2(-e)
    records, per_part = call.per_part(torch.float64, 1 + 2 * k)
    call.run("slaf_moments_parts", (call.x.data_ptr(), inv_s.data_ptr(), per_part), k)
    # the parts' (count, means, centred sums of squares), merged by Chan's formula
    counts, means, squares = records[..., :1], records[..., 1 : 1 + k], records[..., 1 + k :]
    total = counts.sum(0)
    mean = (counts * means).sum(0) / total
    variance = (squares.sum(0) + (counts * (means - mean) ** 2).sum(0)) / total
    return (
        call.keepdim(x, e),
        call.keepdim(x, mean.to(torch.float32)),
        call.keepdim(x, variance.to(torch.float32)),
    )


def _elementwise(x: Tensor, per_group: Sequence[Tensor]) -> _Call:
    return _Call(x, _channel_dim(x, per_group))


def _centred(x: Tensor, inv_s: Tensor, means: Tensor, coefficients: Tensor, bias: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, means, coefficients, bias))
    c = call.channels
    tables = (_vector(inv_s, c), _table(means, c), _table(coefficients, c), _vector(bias, c))
    y = torch.empty_like(call.x)
    call.run("slaf_centred_parts", (call.x.data_ptr(), y.data_ptr(), *(t.data_ptr() for t in tables)), k)
    return call.layout.restore(y)


def _polynomial(x: Tensor, inv_s: Tensor, coefficients: Tensor, constant: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, coefficients, constant))
    c = call.channels
    tables = (_vector(inv_s, c), _table(coefficients, c), _vector(constant, c))
    y = torch.empty_like(call.x)
    call.run("slaf_polynomial_parts", (call.x.data_ptr(), y.data_ptr(), *(t.data_ptr() for t in tables)), k)
    return call.layout.restore(y)


def _grad_sums(
    x: Tensor, grad: Tensor, inv_s: Tensor, means: Tensor, inv_denoms: Tensor, *, k: int, dims: tuple, powers: bool
):
    call = _Call(x, _reduced_channel_dim(x, dims))
    c = call.channels
    tables = (_vector(inv_s, c), _table(means, c), _table(inv_denoms, c))
    records, per_part = call.per_part(torch.float64, 1 + k)
    g = call.layout.view(grad.to(torch.float32))
    pointers = (call.x.data_ptr(), g.data_ptr(), *(t.data_ptr() for t in tables), per_part)
    call.run("slaf_grad_sums_parts", pointers, k, int(powers))
    sums = records.sum(0).to(torch.float32)
    g_sum = call.keepdim(x, sums[:, 0])
    return g_sum, (call.keepdim(x, sums[:, 1:]) if powers else None)


def _input_grad(x: Tensor, grad: Tensor, inv_s: Tensor, *per_power: Tensor, k: int) -> Tensor:
    """per_power: means, inv_denoms, alpha, beta, gamma (slaf._centred_power_sum_input_grad)."""
    call = _elementwise(x, (inv_s, *per_power))
    c = call.channels
    tables = (_vector(inv_s, c), *(_table(t, c) for t in per_power))
    g = call.layout.view(grad.to(torch.float32))
    gx = torch.empty_like(call.x)
    call.run(
        "slaf_input_grad_parts", (call.x.data_ptr(), g.data_ptr(), gx.data_ptr(), *(t.data_ptr() for t in tables)), k
    )
    return call.layout.restore(gx)


def _polynomial_input_grad(x: Tensor, grad: Tensor, inv_s: Tensor, coefficients: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, coefficients))
    c = call.channels
    tables = (_vector(inv_s, c), _table(coefficients, c))
    g = call.layout.view(grad.to(torch.float32))
    gx = torch.empty_like(call.x)
    pointers = (call.x.data_ptr(), g.data_ptr(), gx.data_ptr(), *(t.data_ptr() for t in tables))
    call.run("slaf_polynomial_input_grad_parts", pointers, k)
    return call.layout.restore(gx)


#: slaf._run's stage names and their kernels.
STAGES: dict[str, Callable] = {
    "slaf_power_moments": _moments,
    "slaf_power_centred": _centred,
    "slaf_power_polynomial": _polynomial,
    "slaf_power_grad_sums": _grad_sums,
    "slaf_power_input_grad": _input_grad,
    "slaf_polynomial_input_grad": _polynomial_input_grad,
}


def run(name: str, tensors: Sequence[Tensor | None], static: dict):
    """Stage ``name`` of the normalised power sum on the C kernels (raises KernelUnavailable when
    they cannot be built)."""
    return STAGES[name](*tensors, **static)
