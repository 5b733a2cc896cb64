r"""DiTAC: Diffeomorphism-based Trainable Activation, arXiv:2407.07564 (Chelly, Finder, Ifergane, Freifeld, ECCV 2024).

.. math::
    \mathrm{DiTAC}(x) = \tilde x\,\Phi(x),\qquad
    \tilde x = \begin{cases} a + (b-a)\,T_\theta\!\big(\tfrac{x-a}{b-a}\big) & a \le x \le b\\ x & \text{otherwise}\end{cases}

T_θ is a CPA diffeomorphism of [0, 1] (see :mod:`actlab.cpab`); Φ is evaluated at
the original x. With the displacement D(u) = T(u) - u, which is 0 at both ends,
x̃ = x + (b - a)·D(u) and DiTAC(x) = GELU(x) + E(x), E = (b - a)·D(u)·Φ(x), which is
0 outside [a, b]: θ = 0 gives x̃ = x exactly, and no rounding of a + (b - a)·u can
make DiTAC discontinuous at a or b.

Three evaluation paths:

``mode="lut", lut_interp="linear"`` (default)
    E tabulated at ``lut_size`` uniform points of [a, b] and interpolated
    linearly, added to the native GELU: values, x-derivative (the slope of the
    interpolant) and θ-gradient (the table's analytic Jacobian contracted with
    the interpolation weights) are those of one piecewise-linear function, with
    error O(h²) in value and O(h) in slope, h = (b - a)/(lut_size - 1). Exactly
    GELU outside [a, b] and at θ = 0 (``F.gelu``, except where its vectorised
    CPU kernel overflows: see ``_gelu``).
``mode="lut", lut_interp="nearest"``
    The released code's scheme: the input is rounded to the nearest grid point
    u_j and x̃ = a + (b - a)·T(u_j) (a staircase); the backward pass is
    straight-through, with the analytic T'(u_j) for x and dT(u_j)/dθ for θ.
``mode="exact"``
    T integrated in closed form at every input. The backward pass recomputes
    T'(u) and the analytic dT/dθ (spec §3.5, forward mode) from the saved input.

Every path saves only the input (and tables of size ``lut_size`` per θ row) for
backward, and supports double backward (through the autograd reference
expressions). ``backend="reference"`` evaluates the same functions with plain
autograd-differentiable ops instead of the custom autograd Functions. The LUT
Functions run either eager blocks (``"fused"``) or compiled kernels
(``"compiled"``: one inductor loop per direction, chosen by ``"auto"`` for large
inputs under the rule of :mod:`actlab.kernels.dispatch`).
"""

from __future__ import annotations

import ctypes
import math
import warnings

import torch
from torch import Tensor, nn

from .. import cpab
from ..backend import get_backend
from ..base import Activation, check_channel_arguments
from ..elementwise import channel_axis
from ..kernels import dispatch
from ..registry import ParameterInfo, register

__all__ = ["ditac", "DiTAC", "MODES", "LUT_INTERPOLATIONS", "INITS"]

MODES = ("lut", "exact")
LUT_INTERPOLATIONS = ("linear", "nearest")
INITS = ("prior", "identity")

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


# ---------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _table_dtype(device: torch.device) -> torch.dtype:
    """Tables are built in float64 (they are tiny) wherever the device has it."""
    return torch.float32 if device.type == "mps" else torch.float64


def _normal_cdf(x: Tensor) -> Tensor:
    """Φ(x) = erfc(-x/√2)/2: accurate in the left tail, and (unlike ndtr) vectorised on CPU."""
    return 0.5 * torch.special.erfc(x * -_INV_SQRT_2)


def _normal_cdf_by_erf(x: Tensor) -> Tensor:
    """Φ(x) = (1 + erf(x/√2))/2, the form of ``F.gelu``, for the compiled kernels: inductor's
    CPU ``erfc`` is about five times slower than its ``erf``. Left of x ≈ -5 it keeps an
    absolute error below 1e-7 but not the relative precision of the ``erfc`` form (as GELU)."""
    return 0.5 + 0.5 * torch.erf(x * _INV_SQRT_2)


def _gelu(x: Tensor) -> Tensor:
    """GELU(x) = x·Φ(x), finite for every finite x.

    ATen's vectorised CPU kernel of ``F.gelu`` (torch 2.13, on some CPUs: see
    docs/performance.md) returns inf for x above about 1.7e38 and NaN for x = +inf,
    where x·Φ(x) is x and inf; its scalar code (tensors shorter than one vector) does
    not. In eager code it is also about eight times faster than the formula, so eager
    CPU code keeps it, pays one reduction to detect a non-finite result, and only then
    recomputes by the formula. Traced code (torch.compile, export), ``torch.func``
    transforms (the check is data-dependent control flow, which ``vmap`` rejects) and
    other devices use the formula, which inductor fuses into one loop (it is how
    inductor decomposes ``F.gelu``).
    """
    if x.device.type == "cpu" and not torch.compiler.is_compiling() and not dispatch.transform_active():
        y = torch.nn.functional.gelu(x)
        if torch.isfinite(y.detach().sum()):
            return y
    return x * _normal_cdf_by_erf(x)


def _gaussian(x: Tensor, cdf=_normal_cdf) -> tuple[Tensor, Tensor]:
    """Φ(x) and φ(x); φ underflows to 0 for huge |x| (x² = inf), so x̃·φ stays finite for every finite x."""
    return cdf(x), torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _in_range(x: Tensor, lo: float, hi: float) -> Tensor:
    return (x >= lo) & (x <= hi)


#: Elements per block on the CPU. The LUT and exact paths are a dozen cheap passes
#: over the data; run block by block, the intermediates stay in cache and their
#: memory is reused instead of being allocated (and page-faulted) at full size.
#: 2^18 was the fastest of 2^14..2^18 and unblocked in benchmarks/ditac_speed.py runs.
CPU_BLOCK = 1 << 18


def _blocks(n: int, device: torch.device) -> list[slice]:
    if device.type != "cpu" or n <= CPU_BLOCK or torch.compiler.is_compiling():
        return [slice(0, n)]
    return [slice(i, min(i + CPU_BLOCK, n)) for i in range(0, n, CPU_BLOCK)]


def _reference_grads(reference, inputs: tuple, args: tuple, needs: tuple, grad: Tensor) -> tuple:
    """Gradients of ``reference(*inputs, *args)`` with a graph (for double backward).

    A custom backward runs with grad mode on only under ``create_graph=True``; the
    fast backward passes work in place, so that case differentiates the reference
    expression instead.
    """
    wrt = [t for t, need in zip(inputs, needs) if need]
    with torch.enable_grad():
        y = reference(*inputs, *args)
    grads = iter(torch.autograd.grad(y, wrt, grad, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in needs)


def _channel_offsets(x: Tensor, channels: int, stride: int, channel_dim: int) -> Tensor | None:
    """Per-element offset c·stride of the row of channel c in a flattened (C, stride) table (int32)."""
    if channels == 1:
        return None
    dim = channel_axis(x, channels, channel_dim, f"DiTAC has {channels} per-channel θ rows")
    shape = [1] * x.dim()
    shape[dim] = channels
    return (torch.arange(channels, device=x.device, dtype=torch.int32) * stride).reshape(shape)


# ---------------------------------------------------------------------------------------
# θ -> tables on the grid (analytic Jacobian, no autograd graph of the integration kept)
# ---------------------------------------------------------------------------------------
def _pin_ends(t: Tensor) -> Tensor:
    """Zero the first and last grid point (dim 1): the ends are fixed points, D is exactly 0 there."""
    inner = torch.ones(t.shape[1], dtype=t.dtype, device=t.device)
    inner[0] = inner[-1] = 0
    return t * inner.reshape((1, -1) + (1,) * (t.dim() - 2))


def _on_grid(theta: Tensor, vertex_map: Tensor, size: int, *, slope: bool = False, jacobian: bool = False):
    """D(u_j) = T(u_j) - u_j on the grid u_j = j/(size - 1), optionally T'(u_j) and dD/dθ,
    in the table dtype (autograd-differentiable with respect to θ)."""
    work = _table_dtype(theta.device)
    vmap = vertex_map.to(work)
    grid = torch.linspace(0.0, 1.0, size, dtype=work, device=theta.device).expand(theta.shape[0], size)
    result = cpab.integrate(
        grid,
        *cpab.velocity_coefficients(theta.to(work), vmap),
        derivative=slope,
        jacobian=cpab.coefficient_jacobian(vmap) if jacobian else None,
    )
    if jacobian:  # computed without autograd (the analytic Jacobian): zeroed in place
        result.jacobian.weights[:, [0, -1]] = 0
    return _pin_ends(result.value - grid), result.derivative, result.jacobian


def _grid_tables_impl(
    theta: Tensor, vertex_map: Tensor, size: int, slope: bool, jacobian: bool, native: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(D, T' or empty, then dD/dθ as the four tensors of :class:`cpab.JacobianTerms` or four
    empties) on the grid, in the table dtype; from the C kernels where ``native`` and they apply."""
    tables = _native_grid(theta, vertex_map, size, slope, jacobian) if native else None
    displacement, derivative, jac = tables or _on_grid(theta, vertex_map, size, slope=slope, jacobian=jacobian)
    # Distinct empty tensors: a custom op's outputs must not alias each other.
    empty = displacement.new_empty
    terms = tuple(jac) if jacobian else (empty(0), empty(0, dtype=torch.int32), empty(0, dtype=torch.int32), empty(0))
    return (displacement, derivative if slope else empty(0), *terms)


# Traced code (torch.compile) reaches the grid tables through a custom op: one opaque call (their
# few hundred small torch operations would otherwise take minutes to compile, for work that is
# negligible), with a fake implementation and an autograd formula, so that graphs trace without
# breaks. Eager code calls the same implementation through an autograd Function, without the
# op's dispatch (about 70 µs of a training call's 0.5 ms on small inputs, measured).
@torch.library.custom_op("actlab::ditac_grid_tables", mutates_args=())
def _grid_tables_op(
    theta: Tensor, vertex_map: Tensor, size: int, slope: bool, jacobian: bool, native: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`_grid_tables_impl` as an op."""
    return _grid_tables_impl(theta, vertex_map, size, slope, jacobian, native)


@_grid_tables_op.register_fake
def _(theta: Tensor, vertex_map: Tensor, size: int, slope: bool, jacobian: bool, native: bool):
    rows, d = theta.shape
    work = _table_dtype(theta.device)
    table = theta.new_empty(rows, size, dtype=work)
    derivative = theta.new_empty((rows, size) if slope else (0,), dtype=work)
    if not jacobian:
        cells = table.new_empty(0, dtype=torch.int32)
        return table, derivative, table.new_empty(0), cells, cells.new_empty(0), table.new_empty(0)
    return (
        table,
        derivative,
        table.new_empty(rows, size, cpab.JACOBIAN_WEIGHTS),
        table.new_empty(rows, size, dtype=torch.int32),
        table.new_empty(rows, size, dtype=torch.int32),
        table.new_empty(rows, cpab.jacobian_rows(d + 1), d),
    )


def _grid_tables_setup(ctx, inputs, output, eager: bool = False) -> None:
    theta, vertex_map, size, _, _, native = inputs
    ctx.save_for_backward(theta, vertex_map, *output[2:])
    ctx.size, ctx.native, ctx.eager = size, native, eager


def _grid_tables_backward(ctx, grad_displacement: Tensor, *_):
    """dD/dθ contracted with the incoming gradient; only D is differentiable."""
    theta, vertex_map, *terms = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph: second derivatives need autograd through the closed form
        (grad_theta,) = _reference_grads(_displacement, (theta,), (vertex_map, ctx.size), (True,), grad_displacement)
        return grad_theta, None, None, None, None, None
    if terms[0].numel() == 0:
        raise RuntimeError(
            "ditac_grid_tables: the Jacobian was not computed (jacobian=False) but a gradient reached it"
        )
    if not ctx.native:
        grad_theta = cpab.JacobianTerms(*terms).contract(grad_displacement)
    elif ctx.eager:
        grad_theta = _contract(terms, grad_displacement)
    else:  # traced backward graphs: the contraction as an op (below)
        grad_theta = _contract_op(*terms, grad_displacement)
    return grad_theta.to(theta.dtype), None, None, None, None, None


_grid_tables_op.register_autograd(_grid_tables_backward, setup_context=_grid_tables_setup)


class _GridTables(torch.autograd.Function):
    """The grid tables in eager code (see :func:`_grid_tables_op`)."""

    forward = staticmethod(_grid_tables_impl)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _grid_tables_setup(ctx, inputs, output, eager=True)
        ctx.mark_non_differentiable(*output[1:])

    backward = staticmethod(_grid_tables_backward)


# The contraction by the C kernel is an op of its own, so that traced backward graphs (AOT
# autograd) hold one opaque call rather than the kernel's pointer arithmetic on fake tensors.
def _contract(terms, grad: Tensor) -> Tensor:
    """:meth:`cpab.JacobianTerms.contract` of ``grad``, by the C kernel where it applies."""
    out = _native_contract(terms, grad)
    return cpab.JacobianTerms(*terms).contract(grad) if out is None else out


@torch.library.custom_op("actlab::ditac_grid_contract", mutates_args=())
def _contract_op(weights: Tensor, first: Tensor, last: Tensor, rows: Tensor, grad: Tensor) -> Tensor:
    """:func:`_contract` as an op."""
    return _contract((weights, first, last, rows), grad)


@_contract_op.register_fake
def _(weights: Tensor, first: Tensor, last: Tensor, rows: Tensor, grad: Tensor) -> Tensor:
    return weights.new_empty(first.shape[0], rows.shape[-1])


def _displacement(theta: Tensor, vertex_map: Tensor, size: int) -> Tensor:
    return _on_grid(theta, vertex_map, size)[0]


def grid_tables(
    theta: Tensor, vertex_map: Tensor, size: int, dtype: torch.dtype, with_slope: bool = True, native: bool = True
) -> tuple[Tensor, Tensor | None]:
    """(D, T') on ``size`` grid points for each θ row, as ``dtype`` tensors of shape (C, size).

    D is differentiable with respect to θ (analytic Jacobian); T' is not (and is
    None unless ``with_slope``). ``native``: on the CPU, from the C kernels
    (``actlab/kernels/cpab_grid.c``) where they can be built; else (the reference
    backend) from the torch code of :func:`cpab.integrate`, their truth.
    """
    if torch.compiler.is_exporting() or dispatch.transform_active():
        # Exported programs must hold standard operators only (ONNX has no actlab op), and
        # torch.func transforms need ops with batching rules and forward derivatives: the
        # tables are then computed by the plain ops the custom op wraps.
        displacement, slope, _ = _on_grid(theta, vertex_map, size, slope=with_slope)
    else:
        needs_grad = torch.is_grad_enabled() and theta.requires_grad
        args = (theta, vertex_map, size, with_slope, needs_grad, native)
        if torch.compiler.is_compiling():
            displacement, slope, *_ = _grid_tables_op(*args)
        else:
            displacement, slope, *_ = dispatch.apply_function(_GridTables, *args)
    return displacement.to(dtype), slope.detach().to(dtype) if with_slope else None


def lut_tables(
    theta: Tensor,
    vertex_map: Tensor,
    lo: float,
    hi: float,
    size: int,
    interp: str,
    dtype: torch.dtype,
    native: bool = True,
) -> tuple[Tensor, ...]:
    """The tables the LUT path reads, each (C, size), differentiable with respect to θ.

    ``"linear"``: ``(E,)`` with E(x_j) = DiTAC(x_j) - GELU(x_j) = (b - a)·D(u_j)·Φ(x_j)
    at the grid points x_j = a + (b - a)·u_j. ``"nearest"``: ``(D, T')``. ``native``: as
    in :func:`grid_tables`.
    """
    displacement, slope = grid_tables(theta, vertex_map, size, dtype, with_slope=interp == "nearest", native=native)
    if interp == "nearest":
        return displacement, slope
    x = torch.linspace(lo, hi, size, dtype=displacement.dtype, device=displacement.device)
    return ((hi - lo) * displacement * _normal_cdf(x),)


# ---------------------------------------------------------------------------------------
# Grid coordinates shared by both LUT schemes
# ---------------------------------------------------------------------------------------
def _grid_transform(lo: float, hi: float, size: int, *, padded: bool) -> tuple[float, float, float]:
    """(scale, shift, top): the grid position of x is clamp(x·scale + shift, 0, top)
    (see :func:`_coordinate`); the native kernels take these numbers as they are."""
    scale = (size - 1) / (hi - lo)
    return (scale, 1 - lo * scale, float(size)) if padded else (scale, -lo * scale, float(size - 1))


def _coordinate(x: Tensor, lo: float, hi: float, size: int, *, padded: bool, inplace: bool = False) -> Tensor:
    """The position of x on the grid: (x - a)/(b - a)·(size - 1), clamped to [0, size - 1]
    (``padded``: shifted by 1 and clamped to [0, size], see below). NaN maps to 0: any
    valid index will do, the output is NaN anyway. Differentiable when not ``inplace``."""
    scale, shift, top = _grid_transform(lo, hi, size, padded=padded)
    s = x * scale
    if inplace:
        return s.add_(shift).clamp_(0, top).nan_to_num_(0.0)
    # Two selects instead of clamp + nan_to_num: NaN fails both tests and lands on 0,
    # and inductor vectorises selects but not nan_to_num (the compiled kernels use this).
    s = s + shift
    s = torch.where(s > 0, s, 0.0)
    return torch.where(s < top, s, float(top))


def _flat_offsets(offsets: Tensor | None, x: Tensor) -> Tensor | None:
    """The per-channel row offsets for every element of x, flattened (None when θ is shared)."""
    return None if offsets is None else offsets.expand(x.shape).reshape(-1)


def _index(position: Tensor, offsets: Tensor | None, block: slice) -> Tensor:
    """int32 table index (the floor: positions are >= 0), plus the channel row offset."""
    index = position.detach().to(torch.int32).reshape(-1)
    return index if offsets is None else index.add_(offsets[block])


# ---------------------------------------------------------------------------------------
# LUT, linear interpolation: DiTAC(x) = GELU(x) + E(x), E interpolated from its table
# ---------------------------------------------------------------------------------------
# The table is padded with one zero on each side; segment k of the padded table
# (values P, steps S[k] = P[k+1] - P[k]) covers the padded position s ∈ [k, k+1).
# Inputs left of a land in segment 0 and inputs right of b at s = size, where value
# and step are 0, so no mask is needed and DiTAC is GELU there (bitwise in the eager path).
def _padded(table: Tensor) -> tuple[Tensor, Tensor]:
    zero = table.new_zeros(table.shape[0], 1)
    values = torch.cat([zero, table, zero], dim=1)
    steps = torch.cat([values[:, 1:] - values[:, :-1], zero], dim=1)
    return values, steps


def _linear_reference(x: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None) -> Tensor:
    """The linear-LUT DiTAC in autograd-differentiable ops: the definition :class:`_LinearLUT` implements."""
    values, steps = (t.reshape(-1) for t in _padded(table))
    s = _coordinate(x, lo, hi, table.shape[-1], padded=True)
    index = _index(s, _flat_offsets(offsets, x), slice(None))
    w = s - s.detach().floor()
    value, step = (t.index_select(0, index).view(x.shape) for t in (values, steps))
    return _gelu(x) + value + w * step


def _linear_forward(x: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None) -> Tensor:
    """Eager forward, block by block and in place (the ``"fused"`` path)."""
    size = table.shape[-1]
    values, steps = (t.reshape(-1) for t in _padded(table))
    flat, offs = x.reshape(-1), _flat_offsets(offsets, x)
    out = torch.empty_like(flat)
    for block in _blocks(flat.numel(), x.device):
        xb = flat[block]
        s = _coordinate(xb, lo, hi, size, padded=True, inplace=True)
        index = _index(s, offs, block)
        correction = values.index_select(0, index).addcmul_(s.frac_(), steps.index_select(0, index))
        torch.add(_gelu(xb), correction, out=out[block])
    return out.view(x.shape)


def _linear_backward(x: Tensor, grad: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None, needs):
    """Eager backward: (grad_x or None, gradients of the padded values and steps, flat)."""
    size = table.shape[-1]
    steps = _padded(table)[1].reshape(-1)
    flat, offs, g = x.reshape(-1), _flat_offsets(offsets, x), grad.reshape(-1)
    grad_x = torch.empty_like(flat) if needs[0] else None
    grad_values, grad_steps = torch.zeros_like(steps), torch.zeros_like(steps)
    scale = _grid_transform(lo, hi, size, padded=True)[0]
    for block in _blocks(flat.numel(), x.device):
        xb, gb = flat[block], g[block]
        s = _coordinate(xb, lo, hi, size, padded=True, inplace=True)
        index = _index(s, offs, block)
        if needs[0]:
            out = grad_x[block]
            torch.ops.aten.gelu_backward.grad_input(gb, xb, grad_input=out)
            out.addcmul_(gb, steps.index_select(0, index), value=scale)
        if needs[1]:
            grad_values.index_add_(0, index, gb)
            grad_steps.index_add_(0, index, s.frac_().mul_(gb))
    return (grad_x.view(x.shape) if needs[0] else None), grad_values, grad_steps


def _linear_table_grad(grad_values: Tensor, grad_steps: Tensor, size: int) -> Tensor:
    """The table's gradient from those of values = pad(table) and steps[k] = values[k+1] - values[k]."""
    gv = grad_values.view(-1, size + 2)
    gs = grad_steps.view(-1, size + 2)
    return (gv + torch.nn.functional.pad(gs[:, :-1], (1, 0)) - gs)[:, 1:-1]


class _LinearLUT(torch.autograd.Function):
    """Linear-LUT DiTAC; ``path`` is ``"fused"`` (eager blocks), ``"compiled"`` (the C kernels where
    they apply, else one inductor loop per direction) or ``"native"`` (the C kernels, else eager)."""

    @staticmethod
    def forward(
        x: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None, path: str, strict: bool
    ) -> Tensor:
        y = _native_linear_forward(x, table, lo, hi, offsets) if path == "native" else None
        eager = lambda: _linear_forward(x, table, lo, hi, offsets)
        if path != "compiled":
            return eager() if y is None else y
        kernel = lambda: _compiled_linear_forward(x, table, lo, hi, offsets)
        return dispatch.guarded(path, strict, kernel, eager)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, table, lo, hi, offsets, path, strict = inputs
        ctx.save_for_backward(x, table, offsets)
        ctx.args = (lo, hi, path, strict)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, table, offsets = ctx.saved_tensors
        lo, hi, path, strict = ctx.args
        needs = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            return _reference_grads(_linear_reference, (x, table), (lo, hi, offsets), needs, grad) + (None,) * 5
        eager = lambda: _linear_backward(x, grad, table, lo, hi, offsets, needs)
        native = _native_linear_backward(x, grad, table, lo, hi, offsets, needs) if path == "native" else None
        if path == "compiled":
            kernel = lambda: _compiled_linear_backward(x, grad, table, lo, hi, offsets, needs)
            grad_x, grad_values, grad_steps = dispatch.guarded(path, strict, kernel, eager)
        else:
            grad_x, grad_values, grad_steps = eager() if native is None else native
        grad_table = _linear_table_grad(grad_values, grad_steps, table.shape[-1]) if needs[1] else None
        return grad_x, grad_table, None, None, None, None, None


# ---------------------------------------------------------------------------------------
# LUT, nearest grid point with a straight-through backward (the released code's scheme)
# ---------------------------------------------------------------------------------------
def _nearest_image(x: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None, block: slice):
    """Flat index of the nearest grid point u_j and x̃ = a + (b - a)·T(u_j) (x outside [a, b])."""
    size = table.shape[-1]
    r = _coordinate(x, lo, hi, size, padded=False).round()
    index = _index(r, offsets, block)
    image = lo + (hi - lo) * (r / (size - 1) + table.reshape(-1).index_select(0, index).view(x.shape))
    return index, torch.where(_in_range(x, lo, hi), image, x)


def _nearest_reference(x, table, slope, lo, hi, offsets) -> Tensor:
    """Autograd form of :class:`_NearestLUT`. The staircase has zero x-derivative; the
    straight-through term has value 0 and derivative T'(u_j) inside [a, b]."""
    index, x_tilde = _nearest_image(x, table, lo, hi, _flat_offsets(offsets, x), slice(None))
    straight_through = slope.reshape(-1).index_select(0, index).view(x.shape) * (x - x.detach())
    x_tilde = x_tilde + torch.where(_in_range(x, lo, hi), straight_through, torch.zeros_like(x))
    return x_tilde * _normal_cdf(x)


def _nearest_forward(x: Tensor, table: Tensor, lo: float, hi: float, offsets: Tensor | None) -> Tensor:
    """Eager forward, block by block (the ``"fused"`` path)."""
    flat, offs = x.reshape(-1), _flat_offsets(offsets, x)
    out = torch.empty_like(flat)
    for block in _blocks(flat.numel(), x.device):
        xb = flat[block]
        _, x_tilde = _nearest_image(xb, table, lo, hi, offs, block)
        torch.mul(x_tilde, _normal_cdf(xb), out=out[block])
    return out.view(x.shape)


def _nearest_backward(x: Tensor, grad: Tensor, table: Tensor, slope: Tensor, lo: float, hi: float, offsets, needs):
    """Eager backward: (grad_x or None, the table's gradient, flat)."""
    flat, offs, g = x.reshape(-1), _flat_offsets(offsets, x), grad.reshape(-1)
    grad_x = torch.empty_like(flat) if needs[0] else None
    grad_table = torch.zeros_like(table).reshape(-1)
    for block in _blocks(flat.numel(), x.device):
        xb, gb = flat[block], g[block]
        index, x_tilde = _nearest_image(xb, table, lo, hi, offs, block)
        inside = _in_range(xb, lo, hi)
        cdf, pdf = _gaussian(xb)
        if needs[0]:
            # Straight-through: the analytic T' at the grid point instead of the staircase's 0.
            dx_tilde = torch.where(inside, slope.reshape(-1).index_select(0, index), torch.ones_like(xb))
            torch.mul(gb, dx_tilde * cdf + x_tilde * pdf, out=grad_x[block])
        if needs[1]:
            grad_table.index_add_(0, index, torch.where(inside, gb * cdf * (hi - lo), torch.zeros_like(gb)))
    return (grad_x.view(x.shape) if needs[0] else None), grad_table


class _NearestLUT(torch.autograd.Function):
    """Nearest-LUT DiTAC; ``path`` as for :class:`_LinearLUT`."""

    @staticmethod
    def forward(
        x: Tensor, table: Tensor, slope: Tensor, lo: float, hi: float, offsets: Tensor | None, path: str, strict: bool
    ) -> Tensor:
        y = _native_nearest_forward(x, table, lo, hi, offsets) if path == "native" else None
        eager = lambda: _nearest_forward(x, table, lo, hi, offsets)
        if path != "compiled":
            return eager() if y is None else y
        kernel = lambda: _compiled_nearest_forward(x, table, lo, hi, offsets)
        return dispatch.guarded(path, strict, kernel, eager)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, table, slope, lo, hi, offsets, path, strict = inputs
        ctx.save_for_backward(x, table, slope, offsets)
        ctx.args = (lo, hi, path, strict)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, table, slope, offsets = ctx.saved_tensors
        lo, hi, path, strict = ctx.args
        needs = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            inputs, args = (x, table), (slope, lo, hi, offsets)
            return _reference_grads(_nearest_reference, inputs, args, needs, grad) + (None,) * 6
        eager = lambda: _nearest_backward(x, grad, table, slope, lo, hi, offsets, needs)
        native = _native_nearest_backward(x, grad, table, slope, lo, hi, offsets, needs) if path == "native" else None
        if path == "compiled":
            kernel = lambda: _compiled_nearest_backward(x, grad, table, slope, lo, hi, offsets, needs)
            grad_x, grad_table = dispatch.guarded(path, strict, kernel, eager)
        else:
            grad_x, grad_table = eager() if native is None else native
        return grad_x, (grad_table.view(table.shape) if needs[1] else None), None, None, None, None, None, None


# ---------------------------------------------------------------------------------------
# Compiled kernels of the LUT paths (backend "compiled"; chosen as for the elementwise ops)
# ---------------------------------------------------------------------------------------
# One inductor loop per direction (kernels/compiled.py): the table reads are gathers and
# the table gradient a scatter-add inside the same loop. The kernels see the input in its
# canonical layout (kernels/layout.py) with the channel row offsets as a (C, 1) or (C,)
# "parameter"; the interval and grid size are constants of each compiled graph.
def _gather(table: Tensor, index: Tensor) -> Tensor:
    # In range by construction (clamped positions plus row offsets): the unchecked gather
    # keeps the bounds test out of the loop.
    return torch.ops.aten._unsafe_index(table, [index])


def _cell_and_index(position: Tensor, offsets: Tensor | None) -> tuple[Tensor, Tensor]:
    """The grid cell below a (non-negative) position, and its index in the flat (C, ·) table.

    int32, not int64: AVX2 converts 8 floats to int32 in one instruction and has no
    float-to-int64 conversion (inductor emulates it); with int64 the forward and backward
    kernels took 1.2-1.3 times as long (measured in isolation at 2^22 elements)."""
    cell = position.to(torch.int32)
    return cell, cell if offsets is None else cell + offsets


def _scatter_sum(index: Tensor, source: Tensor, size: int) -> Tensor:
    # Unchecked for the same reason as _gather: index_put would test every index in the loop.
    zeros = source.new_zeros(size)
    return torch.ops.aten._unsafe_index_put(zeros, (index.reshape(-1),), source.reshape(-1), True)


def _make_linear_forward(lo: float, hi: float, size: int):
    def kernel(x: Tensor, values: Tensor, steps: Tensor, offsets: Tensor | None) -> Tensor:
        s = _coordinate(x, lo, hi, size, padded=True)
        cell, index = _cell_and_index(s, offsets)
        return _gelu(x) + _gather(values, index) + (s - cell) * _gather(steps, index)

    return kernel


def _make_linear_backward(lo: float, hi: float, size: int, needs: tuple[bool, bool]):
    scale = _grid_transform(lo, hi, size, padded=True)[0]

    def kernel(x: Tensor, grad: Tensor, steps: Tensor, offsets: Tensor | None):
        s = _coordinate(x, lo, hi, size, padded=True)
        cell, index = _cell_and_index(s, offsets)
        grad_x = grad_values = grad_steps = None
        if needs[0]:
            grad_x = torch.ops.aten.gelu_backward(grad, x) + grad * scale * _gather(steps, index)
        if needs[1]:
            grad_values = _scatter_sum(index, grad, steps.numel())
            grad_steps = _scatter_sum(index, (s - cell) * grad, steps.numel())
        return grad_x, grad_values, grad_steps

    return kernel


def _make_nearest_forward(lo: float, hi: float, size: int):
    def kernel(x: Tensor, table: Tensor, offsets: Tensor | None) -> Tensor:
        return _nearest_kernel_image(x, table, lo, hi, size, offsets)[1] * _normal_cdf_by_erf(x)

    return kernel


def _make_nearest_backward(lo: float, hi: float, size: int, needs: tuple[bool, bool]):
    def kernel(x: Tensor, grad: Tensor, table: Tensor, slope: Tensor, offsets: Tensor | None):
        index, x_tilde = _nearest_kernel_image(x, table, lo, hi, size, offsets)
        inside = _in_range(x, lo, hi)
        cdf, pdf = _gaussian(x, _normal_cdf_by_erf)
        grad_x = grad_table = None
        if needs[0]:
            dx_tilde = torch.where(inside, _gather(slope, index), 1.0)
            grad_x = grad * (dx_tilde * cdf + x_tilde * pdf)
        if needs[1]:
            grad_table = _scatter_sum(index, torch.where(inside, grad * cdf * (hi - lo), 0.0), table.numel())
        return grad_x, grad_table

    return kernel


def _nearest_kernel_image(x: Tensor, table: Tensor, lo: float, hi: float, size: int, offsets: Tensor | None):
    """:func:`_nearest_image` for the kernels (flat table, broadcast offsets)."""
    r = _coordinate(x, lo, hi, size, padded=False).round()
    _, index = _cell_and_index(r, offsets)
    image = lo + (hi - lo) * (r / (size - 1) + _gather(table, index))
    return index, torch.where(_in_range(x, lo, hi), image, x)


def _run_compiled(name: str, key: tuple, make, x: Tensor, tensors: tuple, offsets: Tensor | None, grad=None):
    """Run a LUT kernel on the canonical view of ``x`` (and ``grad``); results in canonical shape."""
    from ..kernels import compiled
    from ..kernels.layout import plan

    x = x.detach()
    layout = plan(x, [] if offsets is None else [offsets])
    offs = None if offsets is None else layout.params([offsets], torch.int32)[0]
    views = (layout.view(x),) if grad is None else (layout.view(x), layout.view(grad))
    tables = tuple(t.detach().reshape(-1) for t in tensors)
    with torch.autocast(x.device.type, enabled=False):
        out = compiled.run(name, (x.dtype, layout.kind, *key), make, (*views, *tables, offs))
    return layout, out


# The native C kernels: the LUTs' (actlab/kernels/ditac_lut.c), float32 on the CPU, inputs whose
# canonical layout is "shared" or "rows" (inductor loads each lane of a table gather on its own,
# through the stack; the C loops use vector loads and keep the scatter-add of the table gradient out
# of the vectorised loop: benchmarks/ditac_speed.py), and the grid tables' (cpab_grid.c, float64,
# in place of a few hundred small torch operations per call). Where they do not apply, or cannot be
# built (one warning), the inductor kernels and the torch code run instead.
_NATIVE_FAILED: list[str] = []


def _native_signatures() -> dict[str, dict[str, tuple[list, type | None]]]:
    i64, f32, i32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_int32, ctypes.c_void_p
    parts = [ptr, i64]  # every kernel takes its parts first (actlab/kernels/parallel.h)
    return {
        "ditac_lut": {
            "ditac_linear_forward_parts": (parts + [ptr] * 3 + [i64] * 2 + [f32] * 3, None),
            "ditac_linear_backward_parts": (parts + [ptr] * 5 + [i64] * 3 + [f32] * 3 + [i32], None),
            "ditac_nearest_forward_parts": (parts + [ptr] * 3 + [i64] * 2 + [f32] * 5, None),
            "ditac_nearest_backward_parts": (parts + [ptr] * 5 + [i64] * 3 + [f32] * 5 + [i32], None),
            "ditac_edge_slots": ([], i32),
        },
        "cpab_grid": {
            "cpab_grid": (parts + [ptr] * 9 + [i64] * 2, None),
            "cpab_contract": (parts + [ptr] * 6 + [i64] * 2, None),
            "cpab_max_cells": ([], i32),
        },
    }


def _native_library(name: str = "ditac_lut"):
    if _NATIVE_FAILED:
        return None
    from ..kernels import native

    try:
        lib = native.library(name)
    except dispatch.KernelUnavailable as err:
        _NATIVE_FAILED.append(f"{type(err.__cause__).__name__}: {err.__cause__}"[:300])
        warnings.warn(
            f"actlab: DiTAC's native CPU kernels could not be built ({_NATIVE_FAILED[0]}); "
            "the inductor kernels and the torch code are used instead",
            RuntimeWarning,
            stacklevel=5,
        )
        return None
    if not hasattr(lib, "_actlab_typed"):
        for function_name, (argtypes, restype) in _native_signatures()[name].items():
            function = getattr(lib, function_name)
            function.argtypes, function.restype = argtypes, restype
        lib._actlab_typed = True
    return lib


def _native_grid(theta: Tensor, vertex_map: Tensor, size: int, slope: bool, jacobian: bool):
    """:func:`_on_grid`'s (D, T' or None, JacobianTerms or None) from the C kernel, or None where
    it does not apply (not the CPU, tables not in float64, cells beyond the kernel's limit, inside a
    trace or transform) or cannot be built."""
    if theta.device.type != "cpu" or _table_dtype(theta.device) != torch.float64 or theta.dim() != 2:
        return None
    if torch.compiler.is_compiling() or dispatch.transform_active() or theta.shape[1] + 1 < 2:
        return None
    lib = _native_library("cpab_grid")
    if lib is None or theta.shape[1] + 1 > lib.cpab_max_cells():
        return None
    from ..kernels import native

    f64 = torch.float64
    rows, cells = theta.shape[0], theta.shape[1] + 1
    theta64 = theta.detach().to(f64).contiguous()
    vmap = vertex_map.detach().to(f64).contiguous()
    grid = torch.linspace(0.0, 1.0, size, dtype=f64)  # the points _on_grid integrates, bit for bit
    displacement = torch.empty(rows, size, dtype=f64)
    derivative = torch.empty(rows, size, dtype=f64) if slope else None
    terms = None
    if jacobian:
        terms = cpab.JacobianTerms(
            torch.empty(rows, size, cpab.JACOBIAN_WEIGHTS, dtype=f64),
            torch.empty(rows, size, dtype=torch.int32),
            torch.empty(rows, size, dtype=torch.int32),
            torch.empty(rows, cpab.jacobian_rows(cells), cells - 1, dtype=f64),
        )
    outputs = [displacement, derivative, *(terms or (None,) * 4)]
    pointers = [t.data_ptr() for t in (theta64, vmap, grid)] + [None if t is None else t.data_ptr() for t in outputs]
    native.run_parts(lib, "cpab_grid", native.split(rows, torch.get_num_threads()), [*pointers, size, cells])
    return displacement, derivative, terms


def _native_contract(terms: list[Tensor], grad: Tensor) -> Tensor | None:
    """:meth:`cpab.JacobianTerms.contract` by the C kernel, or None where it does not apply."""
    weights, first, last, rows_table = terms
    if weights.device.type != "cpu" or weights.dtype != torch.float64 or rows_table.shape[0] != weights.shape[0]:
        return None
    lib = _native_library("cpab_grid")
    cells = (rows_table.shape[1] - 2) // 4
    if lib is None or cells > lib.cpab_max_cells():  # (terms from the torch code: any cells)
        return None
    from ..kernels import native

    rows, size = first.shape
    grad64 = grad.detach().to(torch.float64).contiguous()
    out = torch.empty(rows, cells - 1, dtype=torch.float64)
    inputs = [t.contiguous() for t in (weights, first, last, rows_table)]
    pointers = [grad64.data_ptr()] + [t.data_ptr() for t in inputs] + [out.data_ptr()]
    native.run_parts(lib, "cpab_contract", native.split(rows, torch.get_num_threads()), [*pointers, size, cells])
    return out


def _native_plan(x: Tensor, offsets: Tensor | None):
    """(layout, runs, channels, inner) of x for the native kernels, or None where they do not apply."""
    from ..kernels.layout import ROWS, SHARED, plan

    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0:
        return None
    layout = plan(x, [] if offsets is None else [offsets])
    if layout.kind == SHARED:
        return layout, 1, 1, x.numel()
    if layout.kind == ROWS:
        outer, channels, inner = layout.shape
        return layout, outer * channels, channels, inner
    return None


def _native_setup(x: Tensor, offsets: Tensor | None):
    """(library, layout, canonical view of x, the threads' parts, channels), or None where the
    native kernels do not apply or cannot be built."""
    from ..kernels import native

    planned = _native_plan(x, offsets)
    lib = None if planned is None else _native_library()
    if lib is None:
        return None
    layout, runs, channels, inner = planned
    return lib, layout, layout.view(x.detach()), native.element_parts(runs, inner), channels


def _native_applies(x: Tensor, offsets: Tensor | None) -> bool:
    """Whether the LUTs' C kernels take this input (eager code only: they read data pointers)."""
    if torch.compiler.is_compiling() or dispatch.transform_active():
        return False
    return _native_plan(x, offsets) is not None and _native_library() is not None


def _native_run(lib, name: str, parts, channels: int, stride: int, elements, tables, sums, constants) -> None:
    """The entry point ``name + "_parts"`` of a native kernel on its parts: the ``elements`` (canonical
    views), the ``tables``, then (backward kernels) the per-part ``sums`` (a tensor with one row of
    table sums per part), the run layout and the ``constants``."""
    from ..kernels import native

    per_part = [] if sums is None else [native.PerPart(sums.data_ptr(), sums[0].nbytes), sums[0].numel()]
    args = [t.data_ptr() for t in (*elements, *tables)] + per_part + [channels, stride, *constants]
    native.run_parts(lib, f"{name}_parts", parts, args)


def _flat_tables(*tables: Tensor) -> list[Tensor]:
    return [t.detach().reshape(-1).contiguous() for t in tables]


def _native_forward(name: str, x: Tensor, offsets, stride: int, tables, constants) -> Tensor | None:
    """A native forward kernel on x (None where the kernels do not apply)."""
    setup = _native_setup(x, offsets)
    if setup is None:
        return None
    lib, layout, xv, parts, channels = setup
    out = torch.empty_like(xv)
    _native_run(lib, name, parts, channels, stride, (xv, out), tables, None, constants)
    return layout.restore(out)


def _native_backward(name: str, x: Tensor, grad: Tensor, offsets, stride: int, tables, pair: bool, constants):
    """A native backward kernel: (grad_x, the table gradient summed over threads in double precision,
    ``(channels * stride, 2)`` where the kernel sums pairs, else ``(channels * stride,)``),
    or None where the kernels do not apply."""
    setup = _native_setup(x, offsets)
    if setup is None:
        return None
    lib, layout, xv, parts, channels = setup
    gv = layout.view(grad.detach().to(x.dtype))
    grad_x = torch.empty_like(xv)  # written even when not needed (rare: a leaf input without grad)
    # Each thread sums into tables of its own, added up afterwards; each channel's has the
    # kernel's edge slots after its stride (ditac_lut.c, EDGE_SLOTS).
    shape = (len(parts), channels, stride + lib.ditac_edge_slots()) + ((2,) if pair else ())
    sums = torch.zeros(shape, dtype=torch.float64)
    _native_run(lib, name, parts, channels, stride, (xv, gv, grad_x), tables, sums, constants)
    return layout.restore(grad_x), sums.sum(0)[:, :stride].reshape(channels * stride, *shape[3:])


def _native_linear_forward(x, table, lo, hi, offsets) -> Tensor | None:
    size = table.shape[-1]
    tables = _flat_tables(_padded(table)[0])  # values only: the kernel takes the steps as differences
    return _native_forward(
        "ditac_linear_forward", x, offsets, size + 2, tables, _grid_transform(lo, hi, size, padded=True)
    )


def _native_linear_backward(x, grad, table, lo, hi, offsets, needs):
    size = table.shape[-1]
    constants = (*_grid_transform(lo, hi, size, padded=True), int(needs[1]))
    steps = _flat_tables(_padded(table)[1])
    result = _native_backward("ditac_linear_backward", x, grad, offsets, size + 2, steps, True, constants)
    if result is None:
        return None
    grad_x, (grad_values, grad_steps) = result[0], result[1].unbind(-1)
    return (grad_x if needs[0] else None), grad_values.to(table.dtype), grad_steps.to(table.dtype)


def _native_nearest_forward(x, table, lo, hi, offsets) -> Tensor | None:
    size = table.shape[-1]
    constants = (*_grid_transform(lo, hi, size, padded=False), lo, hi)
    return _native_forward("ditac_nearest_forward", x, offsets, size, _flat_tables(table), constants)


def _native_nearest_backward(x, grad, table, slope, lo, hi, offsets, needs):
    size = table.shape[-1]
    constants = (*_grid_transform(lo, hi, size, padded=False), lo, hi, int(needs[1]))
    pairs = _flat_tables(torch.stack([table, slope], -1))  # (D, T') pairs: one load per element
    result = _native_backward("ditac_nearest_backward", x, grad, offsets, size, pairs, False, constants)
    if result is None:
        return None
    grad_x, grad_table = result
    return (grad_x if needs[0] else None), grad_table.to(table.dtype)


def _compiled_linear_forward(x, table, lo, hi, offsets):
    native = _native_linear_forward(x, table, lo, hi, offsets)
    if native is not None:
        return native
    size = table.shape[-1]
    make = lambda: _make_linear_forward(lo, hi, size)
    layout, y = _run_compiled("ditac_linear_forward", (lo, hi, size), make, x, _padded(table), offsets)
    return layout.restore(y)


def _compiled_linear_backward(x, grad, table, lo, hi, offsets, needs):
    native = _native_linear_backward(x, grad, table, lo, hi, offsets, tuple(needs))
    if native is not None:
        return native
    size, needs = table.shape[-1], tuple(needs)
    make = lambda: _make_linear_backward(lo, hi, size, needs)
    key = (lo, hi, size, needs)
    layout, (grad_x, grad_values, grad_steps) = _run_compiled(
        "ditac_linear_backward", key, make, x, _padded(table)[1:], offsets, grad
    )
    return (layout.restore(grad_x) if needs[0] else None), grad_values, grad_steps


def _compiled_nearest_forward(x, table, lo, hi, offsets):
    native = _native_nearest_forward(x, table, lo, hi, offsets)
    if native is not None:
        return native
    size = table.shape[-1]
    make = lambda: _make_nearest_forward(lo, hi, size)
    layout, y = _run_compiled("ditac_nearest_forward", (lo, hi, size), make, x, (table,), offsets)
    return layout.restore(y)


def _compiled_nearest_backward(x, grad, table, slope, lo, hi, offsets, needs):
    native = _native_nearest_backward(x, grad, table, slope, lo, hi, offsets, tuple(needs))
    if native is not None:
        return native
    size, needs = table.shape[-1], tuple(needs)
    make = lambda: _make_nearest_backward(lo, hi, size, needs)
    key = (lo, hi, size, needs)
    layout, (grad_x, grad_table) = _run_compiled("ditac_nearest_backward", key, make, x, (table, slope), offsets, grad)
    return (layout.restore(grad_x) if needs[0] else None), grad_table


# ---------------------------------------------------------------------------------------
# Exact integration of every input
# ---------------------------------------------------------------------------------------
def _rows(x: Tensor, channels: int, channel_dim: int) -> Tensor:
    """x as (C, M): the rows integrated with θ row c."""
    if channels == 1:
        return x.reshape(1, -1)
    return x.movedim(channel_dim, 0).reshape(channels, -1)


def _unrows(rows: Tensor, like: Tensor, channels: int, channel_dim: int) -> Tensor:
    if channels == 1:
        return rows.reshape(like.shape)
    moved = like.movedim(channel_dim, 0).shape
    return rows.reshape(moved).movedim(0, channel_dim)


def _exact_block(
    rows: Tensor, slopes: Tensor, intercepts: Tensor, lo: float, hi: float, *, derivative=False, jacobian=None
):
    """In-range mask, x̃ and the integration result for a (C, m) block of inputs."""
    inside = _in_range(rows, lo, hi)
    u = (torch.where(inside, rows, torch.full_like(rows, lo)) - lo) / (hi - lo)
    result = cpab.integrate(u, slopes, intercepts, derivative=derivative, jacobian=jacobian)
    return inside, rows + (hi - lo) * (result.value - u), result


def _field(theta: Tensor, vertex_map: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return cpab.velocity_coefficients(theta.to(dtype), vertex_map.to(dtype))


def _exact_reference(x: Tensor, theta: Tensor, vertex_map: Tensor, lo: float, hi: float, channel_dim: int) -> Tensor:
    """Exact DiTAC differentiated by autograd through the closed form (memory-hungry; for checks and double backward)."""
    rows = _rows(x, theta.shape[0], channel_dim)
    _, x_tilde, _ = _exact_block(rows, *_field(theta, vertex_map, x.dtype), lo, hi)
    return _unrows(x_tilde * _normal_cdf(rows), x, theta.shape[0], channel_dim)


class _ExactDiTAC(torch.autograd.Function):
    """Exact DiTAC; the backward pass recomputes T' and the analytic dT/dθ from the saved input."""

    @staticmethod
    def forward(x: Tensor, theta: Tensor, vertex_map: Tensor, lo: float, hi: float, channel_dim: int) -> Tensor:
        rows = _rows(x, theta.shape[0], channel_dim)
        slopes, intercepts = _field(theta, vertex_map, x.dtype)
        out = torch.empty_like(rows)
        for block in _blocks(rows.shape[1], x.device):
            r = rows[:, block]
            _, x_tilde, _ = _exact_block(r, slopes, intercepts, lo, hi)
            torch.mul(x_tilde, _normal_cdf(r), out=out[:, block])
        return _unrows(out, x, theta.shape[0], channel_dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, theta, vertex_map, lo, hi, channel_dim = inputs
        ctx.save_for_backward(x, theta, vertex_map)
        ctx.args = (lo, hi, channel_dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, theta, vertex_map = ctx.saved_tensors
        lo, hi, channel_dim = ctx.args
        needs = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            inputs, args = (x, theta), (vertex_map, lo, hi, channel_dim)
            return _reference_grads(_exact_reference, inputs, args, needs, grad) + (None,) * 4
        channels = theta.shape[0]
        rows, g = _rows(x, channels, channel_dim), _rows(grad, channels, channel_dim)
        slopes, intercepts = _field(theta, vertex_map, x.dtype)
        jac = cpab.coefficient_jacobian(vertex_map.to(x.dtype)) if needs[1] else None
        grad_rows = torch.empty_like(rows) if needs[0] else None
        grad_theta = torch.zeros(theta.shape, dtype=x.dtype, device=x.device)
        for block in _blocks(rows.shape[1], x.device):
            r, gb = rows[:, block], g[:, block]
            inside, x_tilde, result = _exact_block(r, slopes, intercepts, lo, hi, derivative=needs[0], jacobian=jac)
            cdf, pdf = _gaussian(r)
            if needs[0]:
                dx_tilde = torch.where(inside, result.derivative, torch.ones_like(r))
                torch.mul(gb, dx_tilde * cdf + x_tilde * pdf, out=grad_rows[:, block])
            if needs[1]:
                grad_theta += result.jacobian.contract(gb * cdf * (hi - lo))
        return (
            _unrows(grad_rows, x, channels, channel_dim) if needs[0] else None,
            grad_theta.to(theta.dtype) if needs[1] else None,
            None,
            None,
            None,
            None,
        )


# ---------------------------------------------------------------------------------------
# The released code's gradient (opt-in reproduction of a quirk, spec §3.7)
# ---------------------------------------------------------------------------------------
class _ReleasedCodeGradient(torch.autograd.Function):
    """Identity on θ whose backward is the released code's: d·g + 2·λ·θ ⊙ colsum(P)."""

    @staticmethod
    def forward(theta: Tensor, precision: Tensor, lambda_reg: float) -> Tensor:
        return theta.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        theta, precision, lambda_reg = inputs
        ctx.save_for_backward(theta, precision)
        ctx.lambda_reg = lambda_reg

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        theta, precision = ctx.saved_tensors
        d = theta.shape[-1]
        penalty = 2 * ctx.lambda_reg * theta * precision.to(theta.dtype).sum(0)
        return d * grad + penalty, None, None


# ---------------------------------------------------------------------------------------
# Functional form
# ---------------------------------------------------------------------------------------
def _check_choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _check_interval(owner: str, a: float, b: float) -> tuple[float, float]:
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{owner}: {name} must be a finite number, got {v!r}")
    if not a < b:
        raise ValueError(f"{owner}: the interval [a, b] must have a < b, got a={a}, b={b}")
    return float(a), float(b)


def _check_lut_size(owner: str, lut_size: int) -> int:
    if isinstance(lut_size, bool) or not isinstance(lut_size, int) or lut_size < 2:
        raise ValueError(f"{owner}: lut_size must be an integer >= 2 (grid points on [0, 1]), got {lut_size!r}")
    return lut_size


def _apply(
    x: Tensor,
    theta: Tensor,
    vertex_map: Tensor,
    lo: float,
    hi: float,
    *,
    mode: str,
    lut_size: int,
    lut_interp: str,
    channel_dim: int,
    backend: str | None,
    tables: tuple[Tensor, ...] | None = None,
) -> Tensor:
    """DiTAC of ``x`` for validated arguments; ``tables`` come from :func:`lut_tables` (eval cache)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"ditac: expected a torch.Tensor input, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"ditac: input must be a floating-point tensor, got dtype {x.dtype}; convert it with x.float()")
    dtype = _compute_dtype(x.dtype)
    xc = x.to(dtype)
    rows = theta.shape[0]
    if mode == "exact":
        _channel_offsets(x, rows, 0, channel_dim)  # validates the channel layout
        # The exact mode has no compiled kernels: the dispatch rule reduces to reference or fused.
        reference = (backend or get_backend()) == "reference" or dispatch.transform_active()
        function = _exact_reference if reference else _ExactDiTAC.apply
        return function(xc, theta, vertex_map, lo, hi, channel_dim).to(x.dtype)
    requested = backend or get_backend()
    if tables is None:
        native = requested != "reference"  # the reference is torch code throughout
        tables = lut_tables(theta, vertex_map, lo, hi, lut_size, lut_interp, dtype, native)
    path = dispatch.choose("ditac", x, requested, native=True)
    stride = lut_size + 2 if lut_interp == "linear" else lut_size
    offsets = _channel_offsets(x, rows, stride, channel_dim)
    if path == "native" and not _native_applies(xc, offsets):
        raise ValueError(
            "ditac: backend='native' cannot take this input (its C kernels need contiguous channel runs: "
            "shared θ, or channels not last in memory) or could not be built; use backend='auto'"
        )
    if path == "fused" and requested == "auto" and _native_applies(xc, offsets):
        # The C kernels compile nothing per shape (one build per machine), and they beat the
        # eager blocks at every size measured (4,096 elements: 0.51 against 0.66 ms per training
        # call; 2^18: 1.0 against 3.6-5.5 ms), so "auto" takes them below the compile threshold too.
        path = "native"
    fast = (path, requested != "auto")
    if lut_interp == "linear":
        (table,) = tables
        if path == "reference":
            y = _linear_reference(xc, table, lo, hi, offsets)
        else:
            y = dispatch.apply_function(_LinearLUT, xc, table, lo, hi, offsets, *fast)
    else:
        table, slope = tables
        if path == "reference":
            y = _nearest_reference(xc, table, slope, lo, hi, offsets)
        else:
            y = dispatch.apply_function(_NearestLUT, xc, table, slope, lo, hi, offsets, *fast)
    return y.to(x.dtype)


def ditac(
    x: Tensor,
    theta: Tensor,
    a: float = -0.5,
    b: float = 2.0,
    *,
    mode: str = "lut",
    lut_size: int = 2048,
    lut_interp: str = "linear",
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    r"""DiTAC with velocity-field parameters ``theta``. See :class:`DiTAC`.

    Args:
        x: input, any shape (the channel axis at ``channel_dim`` when ``theta``
            has several rows).
        theta: shape ``(cells - 1,)`` (one field) or ``(C, cells - 1)`` (one per
            channel), in the coordinates of :func:`actlab.cpab.null_space_basis`.
        a, b, mode, lut_size, lut_interp, channel_dim: as for :class:`DiTAC`.
        backend: ``None`` (the global choice), ``"auto"``, ``"fused"``,
            ``"compiled"`` or ``"reference"`` for the LUT modes, chosen as for the
            elementwise activations (:func:`actlab.kernels.dispatch.choose`):
            ``"compiled"`` runs one inductor loop per direction (by default for
            inputs of at least 2^20 elements), ``"reference"`` autograd-traced ops.
    """
    lo, hi = _check_interval("ditac", a, b)
    _check_choice("ditac", "mode", mode, MODES)
    _check_choice("ditac", "lut_interp", lut_interp, LUT_INTERPOLATIONS)
    _check_lut_size("ditac", lut_size)
    if not isinstance(theta, Tensor) or theta.dim() not in (1, 2) or theta.shape[-1] < 1:
        raise ValueError("ditac: theta must be a tensor of shape (cells - 1,) or (C, cells - 1) with cells >= 2")
    theta2 = theta.reshape(-1, theta.shape[-1])
    vmap = torch.tensor(cpab.vertex_map(theta2.shape[-1] + 1), device=theta.device, dtype=theta.dtype)
    return _apply(
        x,
        theta2,
        vmap,
        lo,
        hi,
        mode=mode,
        lut_size=lut_size,
        lut_interp=lut_interp,
        channel_dim=channel_dim,
        backend=backend,
    )


# ---------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------
def _check_positive(owner: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


@register(
    "ditac",
    family="ditac",
    formula="x̃·Φ(x), x̃ = a + (b-a)·T_θ((x-a)/(b-a)) on [a, b] and x̃ = x outside; T_θ a CPA diffeomorphism of [0, 1]",
    paper="Trainable Highly-expressive Activation Functions",
    arxiv="2407.07564",
    bounded_below=True,
    bounded_above=False,
    smooth=False,
    monotonic=False,
    provenance="official-code",
    notes=(
        "Pure-PyTorch CPAB engine (no difw). Defaults follow the released code (a=-0.5, b=2, 10 cells, 2048-point "
        "table, prior init); the table is interpolated linearly unless lut_interp='nearest' (the released code's "
        "nearest-neighbour + straight-through scheme). The smoothness regulariser is an explicit loss term "
        "(regularization()), not hidden in backward. num_parameters=C (one θ per channel) is an actlab extension."
    ),
)
class DiTAC(Activation):
    r"""Applies DiTAC, a GELU whose input is warped on [a, b] by a learned diffeomorphism:

    .. math::
        \mathrm{DiTAC}(x) = \tilde x\,\Phi(x),\qquad
        \tilde x = \begin{cases} a + (b-a)\,T_\theta\!\big(\tfrac{x-a}{b-a}\big) & a \le x \le b\\
        x & \text{otherwise}\end{cases}

    where Φ is the standard normal CDF (evaluated at the original x) and
    :math:`T_\theta: [0, 1] \to [0, 1]` is the CPAB transformation: the flow for
    unit time of a continuous piecewise-affine velocity field with ``cells``
    equal cells and zero velocity at 0 and 1, parameterised by
    :math:`\theta \in \mathbb{R}^{cells-1}` (:mod:`actlab.cpab`). T is a strictly
    increasing bijection of [0, 1], so x̃ is increasing and continuous, DiTAC is
    continuous at a and b (but not C¹ there: the slope of x̃ just inside a is
    :math:`T'(0) = e^{a_0}`, outside it is 1), and outside [a, b] DiTAC is GELU.

    .. note::
        Evaluation (``mode``). ``"lut"`` (default) tabulates T at ``lut_size``
        points; with ``lut_interp="linear"`` (default) values, x-gradients and
        θ-gradients are those of the piecewise-linear interpolant of DiTAC - GELU
        (value error at most h²/8·max|E''|, 2e-7 to 2.4e-6 for prior draws at the
        defaults).
        ``lut_interp="nearest"`` reproduces the released code: x̃ is taken at
        the nearest grid point (a staircase with steps (b - a)/(lut_size - 1))
        and the backward pass is straight-through with the analytic T' and
        dT/dθ at that point. ``"exact"`` integrates every input in closed form
        (about ``cells`` times the work of the LUT; analytic backward).
        In eval mode, the table is built once and cached until θ changes
        (optimizer step, ``load_state_dict``, ``.to()``); in training mode it
        is rebuilt on every call (O(lut_size·cells), negligible).

    .. note::
        Initialisation (``init``). ``"prior"`` (the released code's behaviour)
        draws θ from the smoothness prior :math:`N(0, B^\top\Sigma_{PA}B)` of
        difw's ``sample_transformation_with_prior`` with
        ``prior_length_scale`` (λs_init = 5) and ``prior_variance``
        (λv_init = 2), using torch's global RNG (``torch.manual_seed``
        reproduces it). DiTAC then does *not* start as GELU: the median of
        max |T(u) - u| over draws is about 0.2 (times b - a in input units).
        ``"identity"`` starts at θ = 0, i.e. GELU (an actlab option; exactly in the eager path,
        to float32 rounding in the C kernels that ``"auto"`` takes for float32 CPU inputs).

    .. note::
        Regulariser. :meth:`regularization` returns the smoothness penalty
        :math:`\sum_c \theta_c^\top P\,\theta_c` (P from ``reg_length_scale``
        = λs = 5 and ``reg_variance`` = λv = 2); add ``lambda_reg *
        act.regularization()`` to the loss (the paper uses λ_reg = 0.1). The
        released code instead adds the penalty's gradient inside its custom
        backward, and with a shape bug: it computes ``P.mul(θ)`` (elementwise,
        [d, d]) and returns it as θ's [1, d] gradient, which autograd sums over
        rows, so the effective gradient is :math:`d\cdot g + 2\lambda\,\theta
        \odot \mathrm{colsum}(P)` instead of :math:`g + 2\lambda P\theta`. Pass
        ``released_gradient_lambda=0.1`` to reproduce exactly that backward
        (off by default; then do not also add :meth:`regularization`). The
        difference matters: relative to the data gradient, the released
        penalty is about 20-30 times weaker than the intended one for prior
        draws (|Pθ| is 2-3.5 times |θ ⊙ colsum(P)|, and g is scaled by d = 9);
        see ``docs/ditac.md`` for its effect on the paper's toy regression.

    Args:
        a (float): left end of the warped interval. Default: -0.5
        b (float): right end, > a. Default: 2.0
        cells (int): number of equal cells of the velocity field (>= 2);
            θ has ``cells - 1`` entries. Default: 10
        mode (str): ``"lut"`` or ``"exact"``. Default: ``"lut"``
        lut_size (int): grid points of the table (>= 2). Default: 2048
        lut_interp (str): ``"linear"`` or ``"nearest"``. Default: ``"linear"``
        init (str): ``"prior"`` or ``"identity"``. Default: ``"prior"``
        prior_length_scale (float): λs_init of the prior. Default: 5.0
        prior_variance (float): λv_init of the prior. Default: 2.0
        reg_length_scale (float): λs of the regulariser. Default: 5.0
        reg_variance (float): λv of the regulariser. Default: 2.0
        released_gradient_lambda (float, optional): reproduce the released
            code's backward with this λ_reg (see above). Default: ``None``
        num_parameters (int): 1 (one θ for the layer, as in the paper) or the
            number of channels (one θ per channel, an actlab extension). Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn θ (else a constant buffer). Default: ``True``
        device, dtype: factory arguments for θ and the constant tensors.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when
          ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape and dtype as the input (half inputs
          are computed in float32 inside).

    Attributes:
        theta: learnable tensor of shape ``(num_parameters, cells - 1)``.
        vertex_map: constant ``(cells - 1, cells - 1)`` buffer mapping θ to the
            velocities at the interior vertices (see :mod:`actlab.cpab`).
        precision: constant ``(cells - 1, cells - 1)`` buffer P of the regulariser.

    Examples::

        >>> act = actlab.DiTAC()
        >>> y = act(torch.randn(8, 32, 20, 20))
        >>> loss = y.square().mean() + 0.1 * act.regularization()
        >>> act = actlab.DiTAC(a=-3, b=3, init="identity", num_parameters=32)   # GELU at init, θ per channel
        >>> act.velocity().shape
        torch.Size([32, 10, 2])

    Reference:
        Chelly, Finder, Ifergane, Freifeld. "Trainable Highly-expressive
        Activation Functions". ECCV 2024. arXiv:2407.07564.
        Code: ``BGU-CS-VIL/DiTAC`` (CUDA only, via ``difw``); the CPAB math
        follows ``imartinezl/difw``. Provenance: official code; this is a
        pure-PyTorch reimplementation checked against numerical integration.
    """

    __constants__ = ["a", "b", "cells", "mode", "lut_size", "lut_interp", "num_parameters", "channel_dim"]

    def __init__(
        self,
        a: float = -0.5,
        b: float = 2.0,
        cells: int = 10,
        mode: str = "lut",
        lut_size: int = 2048,
        lut_interp: str = "linear",
        init: str = "prior",
        *,
        prior_length_scale: float = 5.0,
        prior_variance: float = 2.0,
        reg_length_scale: float = 5.0,
        reg_variance: float = 2.0,
        released_gradient_lambda: float | None = None,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.a, self.b = _check_interval(name, a, b)
        if isinstance(cells, bool) or not isinstance(cells, int) or cells < 2:
            raise ValueError(f"{name}: cells must be an integer >= 2, got {cells!r}")
        _check_choice(name, "mode", mode, MODES)
        _check_choice(name, "lut_interp", lut_interp, LUT_INTERPOLATIONS)
        _check_choice(name, "init", init, INITS)
        self.lut_size = _check_lut_size(name, lut_size)
        self.prior_length_scale = _check_positive(name, "prior_length_scale", prior_length_scale)
        self.prior_variance = _check_positive(name, "prior_variance", prior_variance)
        self.reg_length_scale = _check_positive(name, "reg_length_scale", reg_length_scale)
        self.reg_variance = _check_positive(name, "reg_variance", reg_variance)
        if released_gradient_lambda is not None:
            released_gradient_lambda = _check_positive(name, "released_gradient_lambda", released_gradient_lambda)
        check_channel_arguments(name, num_parameters, channel_dim, dtype)
        self.cells = cells
        self.mode = mode
        self.lut_interp = lut_interp
        self.init = init
        self.released_gradient_lambda = released_gradient_lambda
        self.num_parameters = num_parameters
        self.channel_dim = channel_dim
        self.trainable = bool(trainable)

        factory = {"device": device, "dtype": dtype if dtype is not None else torch.get_default_dtype()}
        theta = torch.empty(num_parameters, cells - 1, **factory)
        if self.trainable:
            self.theta = nn.Parameter(theta)
        else:
            self.register_buffer("theta", theta)
        # Derived from the constructor arguments, so not part of the state_dict.
        self.register_buffer("vertex_map", torch.tensor(cpab.vertex_map(cells), **factory), persistent=False)
        precision = cpab.precision_matrix(cells, self.reg_length_scale, self.reg_variance)
        self.register_buffer("precision", torch.tensor(precision, **factory), persistent=False)
        # Eval-mode cache of the grid tables (D and T' stacked), keyed on θ's identity and version.
        self.register_buffer("_lut_cache", None, persistent=False)
        self._lut_key: tuple | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw θ from the prior (``init="prior"``) or set it to 0 (``init="identity"``)."""
        if self.init == "identity":
            self.theta.zero_()
            return
        covariance = cpab.prior_covariance(self.cells, self.prior_length_scale, self.prior_variance)
        try:
            factor = torch.linalg.cholesky(torch.tensor(covariance, dtype=torch.float64))
        except RuntimeError as err:  # pragma: no cover - needs extreme prior settings
            raise ValueError(
                f"{type(self).__name__}: the prior covariance for cells={self.cells}, prior_length_scale="
                f"{self.prior_length_scale}, prior_variance={self.prior_variance} is not positive definite; "
                "use a smaller prior_length_scale"
            ) from err
        # Drawn in float64 on the CPU generator, so a seed gives the same θ on every device.
        z = torch.randn(self.num_parameters, self.cells - 1, dtype=torch.float64)
        self.theta.copy_(z @ factor.T)

    # -- evaluation -------------------------------------------------------------------------
    def _effective_theta(self) -> Tensor:
        if self.released_gradient_lambda is not None and self.theta.requires_grad:
            return _ReleasedCodeGradient.apply(self.theta, self.precision, self.released_gradient_lambda)
        return self.theta

    def _cached_tables(self, dtype: torch.dtype) -> tuple[Tensor, ...] | None:
        """The eval-mode tables, rebuilt whenever θ (or the dtype asked for) changed."""
        theta = self.theta
        if self.training or torch.compiler.is_compiling() or (torch.is_grad_enabled() and theta.requires_grad):
            return None
        native = (self.backend or get_backend()) != "reference"
        key = (
            id(theta),
            theta._version,
            theta.data_ptr(),
            theta.device,
            theta.dtype,
            dtype,
            torch.is_inference_mode_enabled(),
            native,
        )
        cache = self._lut_cache
        if self._lut_key != key or cache is None or cache.device != theta.device or cache.dtype != dtype:
            with torch.no_grad():
                tables = lut_tables(
                    theta, self.vertex_map, self.a, self.b, self.lut_size, self.lut_interp, dtype, native
                )
                cache = torch.stack(tables)
            self._lut_cache = cache
            self._lut_key = key
        return tuple(cache.unbind(0))

    def forward(self, x: Tensor) -> Tensor:
        tables = None
        if self.mode == "lut" and isinstance(x, Tensor) and x.is_floating_point():
            tables = self._cached_tables(_compute_dtype(x.dtype))
        return _apply(
            x,
            self._effective_theta(),
            self.vertex_map,
            self.a,
            self.b,
            mode=self.mode,
            lut_size=self.lut_size,
            lut_interp=self.lut_interp,
            channel_dim=self.channel_dim,
            backend=self.backend,
            tables=tables,
        )

    # -- inspection -------------------------------------------------------------------------
    def _coefficients(self) -> tuple[Tensor, Tensor]:
        return cpab.velocity_coefficients(self.theta, self.vertex_map)

    def velocity(self) -> Tensor:
        """The velocity field on [0, 1]: slopes and intercepts per cell, shape
        ``(cells, 2)`` (``(num_parameters, cells, 2)`` when ``num_parameters > 1``)."""
        field = torch.stack(self._coefficients(), dim=-1)
        return field[0] if self.num_parameters == 1 else field

    def transform(self, u: Tensor, derivative: bool = False):
        """T(u) (and T'(u) if ``derivative``) for points ``u`` of [0, 1], integrated exactly.

        ``u`` has shape ``(M,)`` (every θ row) or ``(num_parameters, M)``;
        the result has shape ``(num_parameters, M)``, or ``(M,)`` when
        ``num_parameters == 1`` and ``u`` is 1-D.
        """
        rows = u.reshape(1, -1).expand(self.num_parameters, -1) if u.dim() == 1 else u
        slopes, intercepts = self._coefficients()
        result = cpab.integrate(rows.to(slopes.dtype), slopes, intercepts, derivative=derivative)
        squeeze = (lambda t: t[0]) if (u.dim() == 1 and self.num_parameters == 1) else (lambda t: t)
        return (squeeze(result.value), squeeze(result.derivative)) if derivative else squeeze(result.value)

    def regularization(self) -> Tensor:
        r"""The smoothness penalty :math:`\sum_c \theta_c^\top P\,\theta_c` (a scalar tensor).

        Add it to the loss scaled by λ_reg (0.1 in the paper): ``loss = task_loss
        + 0.1 * act.regularization()``.
        """
        theta = self.theta
        # Multiply-and-sum, not a matmul: autocast would run a matmul in half precision.
        return ((theta.unsqueeze(-1) * self.precision.to(theta.dtype)).sum(-2) * theta).sum()

    # -- metadata ---------------------------------------------------------------------------
    @classmethod
    def parameter_infos(cls) -> tuple[ParameterInfo, ...]:
        return (
            ParameterInfo("a", -0.5, "real, < b", False),
            ParameterInfo("b", 2.0, "real, > a", False),
            ParameterInfo("cells", 10, "integer >= 2", False),
            ParameterInfo("mode", "lut", "'lut' or 'exact'", False),
            ParameterInfo("lut_size", 2048, "integer >= 2", False),
            ParameterInfo("lut_interp", "linear", "'linear' or 'nearest'", False),
            ParameterInfo("init", "prior", "'prior' or 'identity'", False),
            ParameterInfo("theta", "prior sample", "real, cells - 1 values per θ row", True),
        )

    def extra_repr(self) -> str:
        parts = [f"a={self.a:g}", f"b={self.b:g}", f"cells={self.cells}", f"mode={self.mode!r}"]
        if self.mode == "lut":
            parts += [f"lut_size={self.lut_size}", f"lut_interp={self.lut_interp!r}"]
        parts += [f"init={self.init!r}", f"num_parameters={self.num_parameters}"]
        if self.channel_dim != 1:
            parts.append(f"channel_dim={self.channel_dim}")
        if not self.trainable:
            parts.append("trainable=False")
        if self.released_gradient_lambda is not None:
            parts.append(f"released_gradient_lambda={self.released_gradient_lambda:g}")
        if self._backend is not None:
            parts.append(f"backend={self._backend!r}")
        return ", ".join(parts)
