"""SLAF on actlab's native C kernels (``kernels/slaf.c``): the normalised power basis
(``basis="taylor"``, ``normalize=True``) and the EMFN routine (``basis="fourier"``,
``normalize="max"``, coefficients shared by all channels).

For the power basis, the passes over every element of :class:`actlab.activations.slaf._NormalisedPowerSum`, each
one stage function of :mod:`actlab.activations.slaf` (``_power_moments``, ``_centred_power_sum``,
...), run as the loops of ``kernels/slaf.c`` on float32 CPU inputs whose channels are
not last in memory (the ``"shared"`` and ``"rows"`` views of :mod:`actlab.kernels.layout`); the
per-group arithmetic between them stays in torch, as for the compiled path. On the CNN
benchmark's first layer (128×32×28×28, one thread) inductor's loops for these stages took
11.2 ms and these 9.9 ms (GELU's forward and backward: 4.4 ms); they compile nothing per
shape, and keep statistics in double precision (the moments by blocks merged with Chan's
formula, which leaves no cancellation between Σu^2p and (Σu^p)²).

The EMFN routine's forward and backward (``slaf._basis_sum_forward``/``_basis_sum_backward``)
are one C pass each over the samples after their max |x|, and one more for the input gradient;
its sine reduces θ = (π/2)·u by π/2 in three parts, exact for |u| <= :data:`MAX_SCALED`, and a
call with larger values runs the torch code. On the CNN benchmark's first layer (one thread) a
training call took 9.3 ms against 14.1 ms through inductor.

:func:`run` takes a stage's name, tensors and static arguments as
``slaf._run`` hands them over, and returns what the stage function returns (None: run the
torch code instead).
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
LIBRARY = "slaf"

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
    """One stage's kernel call: the input as runs of ``inner`` elements, run r in group r mod
    ``groups`` (the layout's channels, or the samples), its parts, and the shape that per-group
    results take (the keepdim shape of a reduction over the rest)."""

    def __init__(self, view: Tensor, groups: int, runs: int, inner: int, keepdim: Sequence[int]):
        self.x, self.groups, self.inner, self.keepdim_shape = view, groups, inner, tuple(keepdim)
        self.parts = native.element_parts(runs, inner, grain=GRAIN)
        self.lib = _typed(native.library(LIBRARY))

    def run(self, name: str, pointers: Sequence, *after) -> None:
        """``name(parts, count, *pointers, groups, inner, *after)``."""
        native.run_parts(self.lib, name, self.parts, [*pointers, self.groups, self.inner, *after])

    def per_part(self, dtype: torch.dtype, width: int) -> tuple[Tensor, native.PerPart]:
        """A zeroed (parts, groups, width) buffer and the argument that hands each part its row."""
        buffer = torch.zeros(len(self.parts), self.groups, width, dtype=dtype)
        return buffer, native.PerPart(buffer.data_ptr(), buffer[0].nbytes)

    def keepdim(self, values: Tensor) -> Tensor:
        """Per-group ``values`` (groups, ...) in the keepdim shape."""
        return values.reshape(*self.keepdim_shape, *values.shape[1:])


class _LayoutCall(_Call):
    """A call on the canonical view of :mod:`actlab.kernels.layout` ("shared" or "rows"), the groups
    its channels along ``channel_dim``."""

    def __init__(self, x: Tensor, channel_dim: int | None):
        self.layout = _layout(x, channel_dim)
        if self.layout.kind == COLS:
            raise RuntimeError("slaf_native: channels-last inputs are the compiled path's (see applies)")
        view, channels = self.layout.view(x), self.layout.channels
        runs, inner = (1, x.numel()) if self.layout.kind == SHARED else (view.shape[0] * channels, view.shape[2])
        keepdim = [1] * x.dim()
        if channel_dim is not None:
            keepdim[channel_dim] = channels
        super().__init__(view, channels, runs, inner, keepdim)


def _sample_call(x: Tensor) -> _Call:
    """A call over samples (slaf._sample_dims): x as (samples, inner), one run per sample."""
    samples = x.shape[0] if x.dim() >= 2 else 1
    inner = x.numel() // samples
    keepdim = (samples, *[1] * (x.dim() - 1)) if x.dim() >= 2 else (1,)
    return _Call(x.reshape(samples, inner).contiguous(), samples, samples, inner, keepdim)


# The entry points' arguments after (parts, count): pointers, then channels and inner, then int32s.
_SIGNATURES = {
    "slaf_max_abs_parts": (2, 0),
    "slaf_moments_parts": (3, 1),
    "slaf_centred_parts": (6, 1),
    "slaf_polynomial_parts": (5, 1),
    "slaf_grad_sums_parts": (6, 2),
    "slaf_input_grad_parts": (9, 1),
    "slaf_polynomial_input_grad_parts": (5, 1),
    "slaf_fourier_forward_parts": (5, 1),
    "slaf_fourier_sums_parts": (6, 1),
    "slaf_fourier_input_grad_parts": (7, 1),
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
        lib.slaf_max_order.argtypes, lib.slaf_max_order.restype = [], ctypes.c_int32
        if lib.slaf_max_degree() != MAX_DEGREE or lib.slaf_max_order() != MAX_ORDER:
            raise RuntimeError(
                f"{LIBRARY}.c takes degrees up to {lib.slaf_max_degree()} and orders up to {lib.slaf_max_order()}, "
                f"slaf_native.py {MAX_DEGREE} and {MAX_ORDER}"
            )
        lib._actlab_typed = True
    return lib


def _moments(x: Tensor, *, k: int, dims: tuple[int, ...]):
    call = _LayoutCall(x, _reduced_channel_dim(x, dims))
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
        call.keepdim(e),
        call.keepdim(mean.to(torch.float32)),
        call.keepdim(variance.to(torch.float32)),
    )


def _elementwise(x: Tensor, per_group: Sequence[Tensor]) -> _LayoutCall:
    return _LayoutCall(x, _channel_dim(x, per_group))


def _centred(x: Tensor, inv_s: Tensor, means: Tensor, coefficients: Tensor, bias: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, means, coefficients, bias))
    c = call.groups
    tables = (_vector(inv_s, c), _table(means, c), _table(coefficients, c), _vector(bias, c))
    y = torch.empty_like(call.x)
    call.run("slaf_centred_parts", (call.x.data_ptr(), y.data_ptr(), *(t.data_ptr() for t in tables)), k)
    return call.layout.restore(y)


def _polynomial(x: Tensor, inv_s: Tensor, coefficients: Tensor, constant: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, coefficients, constant))
    c = call.groups
    tables = (_vector(inv_s, c), _table(coefficients, c), _vector(constant, c))
    y = torch.empty_like(call.x)
    call.run("slaf_polynomial_parts", (call.x.data_ptr(), y.data_ptr(), *(t.data_ptr() for t in tables)), k)
    return call.layout.restore(y)


def _grad_sums(
    x: Tensor, grad: Tensor, inv_s: Tensor, means: Tensor, inv_denoms: Tensor, *, k: int, dims: tuple, powers: bool
):
    call = _LayoutCall(x, _reduced_channel_dim(x, dims))
    c = call.groups
    tables = (_vector(inv_s, c), _table(means, c), _table(inv_denoms, c))
    records, per_part = call.per_part(torch.float64, 1 + k)
    g = call.layout.view(grad.to(torch.float32))
    pointers = (call.x.data_ptr(), g.data_ptr(), *(t.data_ptr() for t in tables), per_part)
    call.run("slaf_grad_sums_parts", pointers, k, int(powers))
    sums = records.sum(0).to(torch.float32)
    g_sum = call.keepdim(sums[:, 0])
    return g_sum, (call.keepdim(sums[:, 1:]) if powers else None)


def _input_grad(x: Tensor, grad: Tensor, inv_s: Tensor, *per_power: Tensor, k: int) -> Tensor:
    """per_power: means, inv_denoms, alpha, beta, gamma (slaf._centred_power_sum_input_grad)."""
    call = _elementwise(x, (inv_s, *per_power))
    c = call.groups
    tables = (_vector(inv_s, c), *(_table(t, c) for t in per_power))
    g = call.layout.view(grad.to(torch.float32))
    gx = torch.empty_like(call.x)
    call.run(
        "slaf_input_grad_parts", (call.x.data_ptr(), g.data_ptr(), gx.data_ptr(), *(t.data_ptr() for t in tables)), k
    )
    return call.layout.restore(gx)


def _polynomial_input_grad(x: Tensor, grad: Tensor, inv_s: Tensor, coefficients: Tensor, *, k: int) -> Tensor:
    call = _elementwise(x, (inv_s, coefficients))
    c = call.groups
    tables = (_vector(inv_s, c), _table(coefficients, c))
    g = call.layout.view(grad.to(torch.float32))
    gx = torch.empty_like(call.x)
    pointers = (call.x.data_ptr(), g.data_ptr(), gx.data_ptr(), *(t.data_ptr() for t in tables))
    call.run("slaf_polynomial_input_grad_parts", pointers, k)
    return call.layout.restore(gx)


# -- the Fourier basis scaled per sample (EMFN) ---------------------------------------------------

#: The largest Chebyshev order the Fourier kernels take (``SLAF_MAX_ORDER``): sines plus cosines up to 16 each.
MAX_ORDER = 32

#: |u| = |x|/(m·M + n) up to which the kernels' sine is exact to float32 (its reduction by π/2); a
#: sample beyond it sends the call to the torch code.
MAX_SCALED = 2048.0


def applies_basis(x: Tensor, weight: Tensor, basis) -> bool:
    """Whether the Fourier kernels take a call of the EMFN routine (Fourier basis, per-sample max
    scaling, which the caller has established): coefficients shared by all channels, float32 on the
    CPU, orders up to MAX_ORDER."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() == 0 or weight.shape[0] != 1:
        return False
    return basis.name == "fourier" and max(_orders(basis)) <= MAX_ORDER


def _orders(basis) -> list[int]:
    """The Chebyshev order of each basis element (sines, then cosines; slaf._fourier_terms_from_sine)."""
    cosines = basis.size - basis.sines
    return [2 * j - 1 for j in range(1, basis.sines + 1)] + [2 * j for j in range(1, cosines + 1)]


def _coefficients(weight: Tensor, basis) -> tuple[Tensor, list[float]]:
    """coef[n] = w_i·sign_i for the element of order n (0 elsewhere), and the signs in basis order."""
    orders = _orders(basis)
    signs = [-1.0 if (n // 2) % 2 else 1.0 for n in orders]
    coef = torch.zeros(max(orders) + 1, dtype=torch.float32)
    coef[orders] = weight.detach().reshape(-1).to(torch.float32) * torch.tensor(signs)
    return coef, signs


def _denominators(maxima: Tensor, scale: Tensor, offset: Tensor) -> Tensor | None:
    """m·M + n per sample, or None where some |u| may exceed MAX_SCALED (or is NaN)."""
    denominators = (scale.detach().to(torch.float32) * maxima + offset.detach().to(torch.float32)).contiguous()
    bound = (maxima / denominators.abs()).max()
    return denominators if bool(bound <= MAX_SCALED) else None


def _basis_forward(x, weight, bias, scale, offset, running_max, *, basis, scaling, channel_dim):
    call = _sample_call(x)
    per_part_maxima, per_part = call.per_part(torch.float32, 1)
    call.run("slaf_max_abs_parts", (call.x.data_ptr(), per_part))
    maxima = per_part_maxima.amax(0).reshape(-1).contiguous()  # amax keeps a part's NaN
    denominators = _denominators(maxima, scale, offset)
    if denominators is None:
        return None
    coef, _ = _coefficients(weight, basis)
    b = bias.detach().reshape(-1).to(torch.float32)
    y = torch.empty_like(call.x)
    pointers = (call.x.data_ptr(), y.data_ptr(), denominators.data_ptr(), coef.data_ptr(), b.data_ptr())
    call.run("slaf_fourier_forward_parts", pointers, coef.numel() - 1)
    return y.view(x.shape), x.new_empty(0), call.keepdim(maxima)


def _basis_backward(x, weight, bias, m, grad, *scale_offset, basis, scaling, channel_dim, needs):
    need_x, need_w, need_b, need_scale, need_offset = needs
    scale, offset = scale_offset
    call = _sample_call(x)
    maxima = m.detach().reshape(-1).to(torch.float32).contiguous()
    denominators = _denominators(maxima, scale, offset)
    if denominators is None:
        return None
    coef, signs = _coefficients(weight, basis)
    n_max = coef.numel() - 1
    g = grad.to(torch.float32).reshape(call.x.shape).contiguous()
    records, per_part = call.per_part(torch.float64, n_max + 3)
    pointers = (call.x.data_ptr(), g.data_ptr(), denominators.data_ptr(), maxima.data_ptr(), coef.data_ptr(), per_part)
    call.run("slaf_fourier_sums_parts", pointers, n_max)
    sums = records.sum(0)  # (samples, n_max + 3): Σg, Σ g·T_n, Σ g·slope·u, count at the maximum
    g_denom = (-sums[:, n_max + 1] / denominators.double()).to(torch.float32)
    grad_x = grad_w = grad_b = grad_scale = grad_offset = None
    if need_x:
        at_maxima = (g_denom * scale.detach().to(torch.float32) / sums[:, n_max + 2].to(torch.float32)).contiguous()
        gx = torch.empty_like(call.x)
        pointers = (call.x.data_ptr(), g.data_ptr(), gx.data_ptr(), denominators.data_ptr(), maxima.data_ptr())
        call.run("slaf_fourier_input_grad_parts", (*pointers, at_maxima.data_ptr(), coef.data_ptr()), n_max)
        grad_x = gx.view(x.shape)
    if need_w:
        term_sums = sums[:, 1 : n_max + 1].sum(0)
        grad_w = torch.stack([sign * term_sums[n - 1] for sign, n in zip(signs, _orders(basis))])
        grad_w = grad_w.reshape(weight.shape).to(weight.dtype)
    if need_b:
        grad_b = sums[:, 0].sum().reshape(bias.shape).to(bias.dtype)
    if need_scale:
        grad_scale = (g_denom * maxima).sum().reshape(scale.shape).to(scale.dtype)
    if need_offset:
        grad_offset = g_denom.sum().reshape(offset.shape).to(offset.dtype)
    return grad_x, grad_w, grad_b, grad_scale, grad_offset


#: slaf._run's stage names and their kernels.
STAGES: dict[str, Callable] = {
    "slaf_power_moments": _moments,
    "slaf_power_centred": _centred,
    "slaf_power_polynomial": _polynomial,
    "slaf_power_grad_sums": _grad_sums,
    "slaf_power_input_grad": _input_grad,
    "slaf_polynomial_input_grad": _polynomial_input_grad,
    "slaf_basis_forward": _basis_forward,
    "slaf_basis_backward": _basis_backward,
}


def run(name: str, tensors: Sequence[Tensor | None], static: dict):
    """Stage ``name`` on the C kernels (raises KernelUnavailable when they cannot be built); None
    where this call's values are outside what they compute exactly (the Fourier kernels' MAX_SCALED):
    the caller then runs the stage's torch code."""
    return STAGES[name](*tensors, **static)
