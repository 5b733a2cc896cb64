r"""A pure-PyTorch engine for 1-D CPAB transformations (continuous piecewise-affine velocity fields).

This is the math behind DiTAC (arXiv:2407.07564), reimplemented from the
description of the ``difw`` library (Martínez et al.) that the released DiTAC
code uses; see ``activations-spec.md`` §3.2-§3.5 and §3.9.

**Velocity field.** [0, 1] is split into ``cells`` equal cells of width
h = 1/cells. In cell c the velocity is affine, v(u) = a_c·u + b_c. Continuity at
the interior vertices and a zero velocity at 0 and 1 leave d = cells - 1 free
dimensions: with L the constraint matrix (:func:`constraint_matrix`) and B an
orthonormal basis of null(L) (:func:`null_space_basis`), the interleaved
coefficients are A = (a_0, b_0, a_1, b_1, ...) = B·θ.

A field in null(L) is fixed by its values w_1..w_{cells-1} at the interior
vertices (w_0 = w_cells = 0): a_c = (w_{c+1} - w_c)/h and b_c = w_c - a_c·c·h.
The engine therefore evaluates A = B·θ as "vertex values w = M·θ, then the
closed form above" (:func:`velocity_coefficients`, with M from :func:`vertex_map`).
That is the same field, but continuity and the zero boundary hold *exactly* in
any dtype, whereas rounding B to float32 would break them at the 1e-8 level.

**Basis.** B is defined without reference to any LAPACK choice, so that θ means
the same thing on every machine: B = N·R⁻¹, where N maps interior vertex values
to coefficients (the "hat function" basis of null(L)) and N = B·R is its QR
factorisation with a positive diagonal of R (unique). Any orthonormal basis gives
the same prior over velocity fields and the same regulariser values (both are
invariant under rotations of θ), so this choice only fixes the coordinates.

**Transformation.** T(u) is the solution at time 1 of du/dτ = v(u), started at
u (:func:`integrate`). Inside a cell the flow is closed-form,
ψ(u, τ) = e^{aτ}·u + b·τ·(e^{aτ} - 1)/(aτ), and a trajectory moves monotonically,
crossing whole cells in closed-form times; a fixed number of vectorised
operations integrates every point exactly (see :func:`integrate`). T is a strictly
increasing bijection of [0, 1] with T(0) = 0 and T(1) = 1; its derivative is
T'(u) = v(T(u))/v(u), or e^{a_c} when the trajectory never leaves its cell (this
also covers the fixed points v(u) = 0). dT/dθ is available in closed form (the
analytic derivative of the paper's §3.5, propagated in forward mode, as a few
weighted rows of small tables per point: :class:`JacobianTerms`) and by
autograd through the closed form: the cell sequence is piecewise constant in θ
and the hit times and ψ are smooth, so both agree (checked in the tests, and
against finite differences).

**Prior and regulariser** (:func:`prior_covariance`, :func:`precision_matrix`):
the two different kernels of the released code (spec §3.7), returned in θ
coordinates.

Everything at construction time uses numpy (no scipy); the per-step work is
pure PyTorch and runs on any device.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "constraint_matrix",
    "hat_basis",
    "null_space_basis",
    "vertex_map",
    "velocity_coefficients",
    "velocity",
    "coefficient_jacobian",
    "integrate",
    "Integrated",
    "JacobianTerms",
    "JACOBIAN_WEIGHTS",
    "jacobian_rows",
    "prior_covariance",
    "precision_matrix",
]


def _check_cells(cells: int) -> int:
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 2:
        raise ValueError(f"cells must be an integer >= 2 (the number of equal cells of [0, 1]), got {cells!r}")
    return int(cells)


# ---------------------------------------------------------------------------------------
# Tessellation, constraints and basis (numpy, float64, computed once per ``cells``)
# ---------------------------------------------------------------------------------------
def constraint_matrix(cells: int) -> np.ndarray:
    """L with L·A = 0 for the admissible coefficients A = (a_0, b_0, a_1, b_1, ...).

    Rows: continuity a_{i-1}·x_i + b_{i-1} - a_i·x_i - b_i = 0 at the interior
    vertices x_i = i/cells, then v(0) = b_0 = 0 and v(1) = a_{last} + b_{last} = 0.
    Shape ``(cells + 1, 2·cells)``.
    """
    nc = _check_cells(cells)
    L = np.zeros((nc + 1, 2 * nc))
    for i in range(1, nc):
        x = i / nc
        L[i - 1, 2 * (i - 1) : 2 * i] = (x, 1.0)
        L[i - 1, 2 * i : 2 * i + 2] = (-x, -1.0)
    L[nc - 1, 1] = 1.0
    L[nc, 2 * nc - 2 : 2 * nc] = (1.0, 1.0)
    return L


def hat_basis(cells: int) -> np.ndarray:
    """N, shape ``(2·cells, cells - 1)``: column k holds the coefficients of the hat
    function that is 1 at vertex k + 1 and 0 at every other vertex."""
    nc = _check_cells(cells)
    N = np.zeros((2 * nc, nc - 1))
    for k in range(nc - 1):
        w = np.zeros(nc + 1)
        w[k + 1] = 1.0
        for c in range(nc):
            slope = (w[c + 1] - w[c]) * nc
            N[2 * c, k] = slope
            N[2 * c + 1, k] = w[c] - slope * c / nc
    return N


@functools.cache
def _basis_factors(cells: int) -> tuple[np.ndarray, np.ndarray]:
    N = hat_basis(cells)
    Q, R = np.linalg.qr(N)
    signs = np.sign(np.diag(R))
    Q, R = Q * signs, R * signs[:, None]
    M = np.linalg.solve(R, np.eye(R.shape[0]))
    for a in (Q, M):
        a.setflags(write=False)
    return Q, M


def null_space_basis(cells: int) -> np.ndarray:
    """B, shape ``(2·cells, cells - 1)``: the orthonormal basis of null(L) used for θ (read-only)."""
    return _basis_factors(_check_cells(cells))[0]


def vertex_map(cells: int) -> np.ndarray:
    """M, shape ``(cells - 1, cells - 1)``: interior vertex velocities w = M·θ (B = N·M; read-only)."""
    return _basis_factors(_check_cells(cells))[1]


# ---------------------------------------------------------------------------------------
# Velocity field (torch)
# ---------------------------------------------------------------------------------------
def velocity_coefficients(theta: Tensor, vertex_map: Tensor) -> tuple[Tensor, Tensor]:
    """Slopes and intercepts of the field B·θ, each of shape ``(..., cells)``.

    Args:
        theta: ``(..., cells - 1)``.
        vertex_map: M of :func:`vertex_map` as a tensor, ``(cells - 1, cells - 1)``.
    """
    # An explicit multiply-and-sum rather than a matmul: autocast would run a
    # matmul in half precision, and these are a handful of numbers anyway.
    w = (theta.unsqueeze(-2) * vertex_map.to(theta.dtype)).sum(-1)
    zero = w.new_zeros(w.shape[:-1] + (1,))
    w = torch.cat([zero, w, zero], dim=-1)
    cells = w.shape[-1] - 1
    slopes = (w[..., 1:] - w[..., :-1]) * cells
    left = torch.arange(cells, device=w.device, dtype=w.dtype) / cells
    intercepts = w[..., :-1] - slopes * left
    return slopes, intercepts


def _cell(u: Tensor, cells: int) -> Tensor:
    """The cell of each point; NaN points take cell 0 (a NaN index would be undefined)."""
    return torch.nan_to_num(u * cells).floor().clamp(0, cells - 1).long()


def velocity(u: Tensor, slopes: Tensor, intercepts: Tensor) -> Tensor:
    """v(u) for points ``u`` of shape ``(C, M)`` and coefficients of shape ``(C, cells)`` or ``(1, cells)``."""
    c = _cell(u, slopes.shape[-1])
    return _take(slopes, c) * u + _take(intercepts, c)


# ---------------------------------------------------------------------------------------
# Closed-form integration
# ---------------------------------------------------------------------------------------
# (e^z - 1)/z, log(1 + z)/z and their derivatives are evaluated by series below a
# threshold where the closed forms lose digits to cancellation (and are 0/0 at
# z = 0). The series are truncated where the next term is below float64 rounding;
# both branches of every where() see harmless inputs, so autograd stays finite.
_EXPM1_RATIO = (1, 1 / 2, 1 / 6, 1 / 24, 1 / 120)  # |z| < 1e-3
_LOG1P_RATIO = (1, -1 / 2, 1 / 3, -1 / 4, 1 / 5)  # |z| < 1e-3
_EXPM1_RATIO_PRIME = tuple(n / math.factorial(n + 1) for n in range(1, 7))  # |z| < 1e-2
_LOG1P_RATIO_PRIME = tuple((-1) ** n * n / (n + 1) for n in range(1, 9))  # |z| < 1e-2


def _series(z: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    out = torch.full_like(z, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out = out * z + c
    return out


def _by_series(z: Tensor, threshold: float, coefficients: tuple[float, ...], closed_form) -> Tensor:
    small = z.abs() < threshold
    series = _series(torch.where(small, z, torch.zeros_like(z)), coefficients)
    return torch.where(small, series, closed_form(torch.where(small, torch.ones_like(z), z)))


def _expm1_ratio(z: Tensor) -> Tensor:
    """g(z) = (e^z - 1)/z."""
    return _by_series(z, 1e-3, _EXPM1_RATIO, lambda y: torch.expm1(y) / y)


def _expm1_ratio_prime(z: Tensor) -> Tensor:
    """g'(z) = (z·e^z - e^z + 1)/z²."""
    return _by_series(z, 1e-2, _EXPM1_RATIO_PRIME, lambda y: (y * torch.exp(y) - torch.expm1(y)) / (y * y))


def _log1p_ratio(z: Tensor) -> Tensor:
    """f(z) = log(1 + z)/z, for z > -1."""
    return _by_series(z, 1e-3, _LOG1P_RATIO, lambda y: torch.log1p(y) / y)


def _log1p_ratio_prime(z: Tensor) -> Tensor:
    """f'(z) = (z/(1 + z) - log(1 + z))/z²."""
    return _by_series(z, 1e-2, _LOG1P_RATIO_PRIME, lambda y: (y / (1 + y) - torch.log1p(y)) / (y * y))


#: Weights per point in :class:`JacobianTerms`.
JACOBIAN_WEIGHTS = 6


def jacobian_rows(cells: int) -> int:
    """Rows of the :class:`JacobianTerms` table of a field with ``cells`` cells: the slope and
    intercept Jacobians (``cells`` each) and two prefix tables (``cells + 1`` each)."""
    return 4 * cells + 2


class JacobianTerms(NamedTuple):
    """dT/dp of points ``(C, M)`` as a weighted sum of a few rows of a small per-field table.

    With c0 the point's first cell, m its last cell and R, L the tables' blocks (below),
    dT/dp = w0·a'[m] + w1·b'[m] + w2·a'[c0] + w3·b'[c0] + w4·(R[m] - R[c0 + 1])
    + w5·(L[c0] - L[m + 1]), with indices into R and L clamped to [0, cells]. The rows
    table stacks a' = d(slopes)/dp and b' = d(intercepts)/dp (``cells`` rows each), then R
    and L, the prefix sums over cells of d(time to cross the cell)/dp rightwards and
    leftwards (``cells + 1`` rows each). So a point costs 6 weights and 2 cell indices
    instead of P numbers (P = cells - 1 for θ), and a gradient is contracted with it
    (:meth:`contract`, what a backward pass needs) without forming the dense Jacobian.
    """

    weights: Tensor  #: (C, M, 6), in the points' dtype
    first: Tensor  #: (C, M) int32: c0
    last: Tensor  #: (C, M) int32: m
    rows: Tensor  #: (C or 1, K, P), K = jacobian_rows(cells)

    def _terms(self, offset: Tensor | int = 0) -> list[tuple[int, Tensor, int]]:
        """The 8 terms as (weight column, row index + ``offset`` (C, M), sign)."""
        cells = (self.rows.shape[1] - 2) // 4
        c0, m = self.first.long(), self.last.long()
        base_b, base_right, base_left = cells, 2 * cells, 3 * cells + 1
        return [
            (0, m + offset, 1),
            (1, m + (base_b + offset), 1),
            (2, c0 + offset, 1),
            (3, c0 + (base_b + offset), 1),
            (4, m.clamp(0, cells) + (base_right + offset), 1),
            (4, (c0 + 1).clamp(0, cells) + (base_right + offset), -1),
            (5, c0.clamp(0, cells) + (base_left + offset), 1),
            (5, (m + 1).clamp(0, cells) + (base_left + offset), -1),
        ]

    def dense(self) -> Tensor:
        """The Jacobian as a ``(C, M, P)`` tensor."""
        return sum(
            sign * self.weights[..., [column]] * _take_rows(self.rows, index) for column, index, sign in self._terms()
        )

    def contract(self, grad: Tensor) -> Tensor:
        """sum_m grad[r, m] · dT(u[r, m])/dp, shape ``(C, P)``, for a ``(C, M)`` gradient."""
        weighted = grad.to(self.weights.dtype).unsqueeze(-1) * self.weights
        channels, points = grad.shape
        rows = self.rows.shape[1]
        # One scatter-add per term into the small table, the negative terms into a table of their
        # own. Neighbouring points mostly share a row (sorted points: always), and additions into
        # one address wait for each other; point m adds into copy m mod LANES of the table instead,
        # and the copies are summed (a scatter-add 3x faster on 2^17 sorted points).
        lane = (torch.arange(points, device=grad.device) % _LANES) * rows
        plus, minus = (weighted.new_zeros(channels, _LANES * rows) for _ in range(2))
        for column, index, sign in self._terms(lane):
            (plus if sign > 0 else minus).scatter_add_(1, index, weighted[..., column])
        per_row = (plus - minus).view(channels, _LANES, rows).sum(1)
        # Multiply-and-sum, not a matmul: autocast would run a matmul in half precision.
        return (per_row.unsqueeze(-1) * self.rows).sum(1)


#: Copies of the small table that :meth:`JacobianTerms.contract` accumulates into.
_LANES = 8


class Integrated(NamedTuple):
    """The result of :func:`integrate`; the derivatives are None unless asked for."""

    #: T(u), shaped like u.
    value: Tensor
    #: T'(u) = dT/du, shaped like u.
    derivative: Tensor | None
    #: dT/dp for the parameters p of ``jacobian=``, as terms (``.dense()``: shape ``u.shape + (P,)``).
    jacobian: JacobianTerms | None


def coefficient_jacobian(vertex_map: Tensor) -> tuple[Tensor, Tensor]:
    """d(slopes)/dθ and d(intercepts)/dθ, each ``(cells, cells - 1)`` (the rows of B)."""
    eye = torch.eye(vertex_map.shape[-1], dtype=vertex_map.dtype, device=vertex_map.device)
    slopes, intercepts = velocity_coefficients(eye, vertex_map)
    # Contiguous: integrate() gathers their rows, and index_select from a transposed view
    # took 14 times as long (100 us against 7 us for 2048 rows of 9, float64).
    return slopes.T.contiguous(), intercepts.T.contiguous()


def _hit_time(dist: Tensor, v: Tensor, a: Tensor, ok: Tensor, sensitivity: bool = False):
    """Time to travel ``dist`` from a point of velocity ``v`` in a cell of slope ``a``:
    log(v_end/v)/a = (dist/v)·f(z) with z = a·dist/v > -1, and ∞ where not ``ok``
    (the flow never gets there). Lanes not ``ok`` see harmless inputs, so autograd
    stays finite.

    With ``sensitivity`` also returns (A, B), 0 where not ``ok``, such that the time
    changes by A·dv + B·da when the start velocity and the slope change by dv and da
    (``dist`` fixed): from d(time) = (dist/v)·[-f(z)·dv/v + f'(z)·(dist/v)·(da - a·dv/v)],
    A = -(dist/v)·(f(z) + z·f'(z))/v and B = (dist/v)²·f'(z).
    """
    v_safe = torch.where(ok, v, torch.ones_like(v))
    ratio = torch.where(ok, dist, torch.zeros_like(dist)) / v_safe
    z = a * ratio
    f = _log1p_ratio(z)
    time = torch.where(ok, ratio * f, torch.full_like(ratio, float("inf")))
    if not sensitivity:
        return time, None, None
    f_prime = _log1p_ratio_prime(z)
    zero = torch.zeros_like(ratio)
    sens_v = torch.where(ok, -ratio * (f + z * f_prime) / v_safe, zero)
    sens_a = torch.where(ok, ratio * ratio * f_prime, zero)
    return time, sens_v, sens_a


def _take(table: Tensor, index: Tensor) -> Tensor:
    """``table[r, index[r, m]]`` for a (C, K) table (C may be 1) and a (C, M) index."""
    return table.expand(index.shape[0], -1).gather(-1, index)


def _take_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[r, index[r, m], :]`` for a (C, K, P) table and a (C, M) index: (C, M, P)."""
    table = table.expand(index.shape[0], -1, -1)
    return table.gather(1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


def _count_below(table: Tensor, values: Tensor, *, inclusive: bool) -> Tensor:
    """#{k: table[r, k] < values[r, m]} (``<=`` if ``inclusive``) for a (C or 1, K) table whose
    rows are sorted and a (C, M) tensor of values; NaN values count nothing."""
    rows = table.expand(values.shape[0], -1)
    if torch.compiler.is_exporting():  # ONNX has no searchsorted: one comparison per entry
        below = rows.unsqueeze(1) <= values.unsqueeze(-1) if inclusive else rows.unsqueeze(1) < values.unsqueeze(-1)
        return below.sum(-1)
    # searchsorted puts NaN after every entry; comparisons with NaN are false.
    count = torch.searchsorted(rows.contiguous(), values.contiguous(), right=inclusive)
    return torch.where(values.isnan(), torch.zeros_like(count), count)


def _select(condition: Tensor, if_true: Tensor, if_false: Tensor) -> Tensor:
    """``torch.where`` for boolean operands, in logical ops: ONNX Runtime has no Where kernel for
    booleans, and exported DiTAC models must run there."""
    return (condition & if_true) | (~condition & if_false)


def integrate(
    u: Tensor,
    slopes: Tensor,
    intercepts: Tensor,
    *,
    derivative: bool = False,
    jacobian: tuple[Tensor, Tensor] | None = None,
) -> Integrated:
    """T(u): the points ``u`` moved for unit time along the velocity field.

    Args:
        u: points of [0, 1], shape ``(C, M)``; row r uses the field of row r of
            the coefficients (C = 1 coefficients are broadcast).
        slopes, intercepts: the field, shape ``(C, cells)`` or ``(1, cells)``
            (see :func:`velocity_coefficients`).
        derivative: also return T'(u).
        jacobian: ``(dslopes/dp, dintercepts/dp)``, each ``(cells, P)``, the same
            for every row (e.g. :func:`coefficient_jacobian`): also return
            dT/dp, computed in closed form (the analytic gradient of spec §3.5,
            in forward mode) without autograd, as :class:`JacobianTerms`.

    Returns:
        :class:`Integrated`. The value is also differentiable by autograd with
        respect to ``u`` and the coefficients.

    Algorithm. A trajectory never turns back (1-D autonomous flow). It leaves its
    cell c₀ after t₀ (closed form), then crosses whole cells, each in a time
    τ_c = log(v(end)/v(start))/a_c that depends on the field only (∞ where the
    velocity changes sign, i.e. the flow never crosses). The vertices reached
    within unit time are counted by a binary search of t₀ + Σ τ_c in per-row prefix
    sums of the τ_c (a comparison per cell under ``torch.export``, whose ONNX target
    has no search), which gives the last cell m, the entry point and the time left
    (a sum over the cells crossed, read from a per-row table of runs), and T is the
    in-cell flow from there. A fixed number of vectorised operations, whatever the
    field: no data-dependent loop, and no tensor of size points × cells.

    The field must vanish at 0 and 1 (every field of :func:`velocity_coefficients`
    does): the ends are treated as exact fixed points. Points outside [0, 1] are not
    meaningful (the field is only defined there); NaN points give NaN.
    """
    if u.dim() != 2 or slopes.dim() != 2 or slopes.shape != intercepts.shape or slopes.shape[0] not in (1, u.shape[0]):
        raise ValueError(
            f"integrate expects u of shape (C, M) and coefficients of shape (C, cells) or (1, cells); got u "
            f"{tuple(u.shape)}, slopes {tuple(slopes.shape)}, intercepts {tuple(intercepts.shape)}"
        )
    cells = slopes.shape[-1]
    dtype, device = u.dtype, u.device
    a_all, b_all = slopes.to(dtype), intercepts.to(dtype)
    h = 1.0 / cells
    cell_index = torch.arange(cells, device=device)
    left = cell_index.to(dtype) * h
    right = left + h

    # Whole-cell traversal times, rightwards and leftwards (∞ where not crossed). A
    # trajectory can never leave [0, 1]: the velocity at 0 and 1 is zero, and the
    # last/first cell is excluded explicitly so that rounding (v(1) = a + b ≈ 1e-17)
    # cannot make it leave.
    tangents = jacobian is not None
    if tangents:
        jac_a, jac_b = (j.to(dtype) for j in jacobian)
    w_left, w_right = a_all * left + b_all, a_all * right + b_all
    step = torch.full_like(w_left, h)
    ok_right = (w_left > 0) & (w_right > 0) & (cell_index < cells - 1)
    tau_right, sv_right, sa_right = _hit_time(step, w_left, a_all, ok_right, tangents)
    tau_left, sv_left, sa_left = _hit_time(
        -step, w_right, a_all, (w_left < 0) & (w_right < 0) & (cell_index > 0), tangents
    )

    # The starting cell and the time to leave it.
    c0 = _cell(u, cells)
    a0, b0 = _take(a_all, c0), _take(b_all, c0)
    # 0 and 1 are exact fixed points; a + b rounds to about 1e-17, not 0, and the
    # end point of a repelling end would otherwise drift away. There v = a·(u - end):
    # exactly 0, with the right derivative in u.
    end = (u == 0) | (u == 1)
    v0 = torch.where(end, a0 * (u - u.detach()), a0 * u + b0)
    rightward, leftward = v0 > 0, v0 < 0
    edge = (c0 + rightward.long()).to(dtype) * h
    interior = _select(rightward, c0 < cells - 1, c0 > 0)
    can_leave = (v0 != 0) & (v0 * (a0 * edge + b0) > 0) & interior
    t0, sv0, sa0 = _hit_time(edge - u, v0, a0, can_leave, tangents)

    # Time to reach each vertex: rightwards vertex k+1 (k >= c0) at t0 + Σ_{c0<c<=k} τ_c,
    # leftwards vertex k (k <= c0) at t0 + Σ_{k<=c<c0} τ_c. A cell that takes τ >= 1 is
    # never crossed whole within unit time, so τ is capped at 2: every sum stays finite,
    # and one that holds a capped cell stays above 1 by a margin no rounding closes. The
    # vertices reached are counted by searching per-row prefix sums, and the time spent is
    # read from per-row tables of the sums over every run of cells (cells² entries per
    # row): nothing of size points × cells, and every time a sum of the cells crossed.
    zero = torch.zeros((), dtype=dtype, device=device)
    capped_right, capped_left = tau_right.clamp(max=2.0), tau_left.clamp(max=2.0)
    prefix_right = capped_right.cumsum(-1)  # [k] = Σ_{c<=k} τ_c
    prefix_left = torch.nn.functional.pad(capped_left[..., :-1].cumsum(-1), (1, 0))  # [k] = Σ_{c<k} τ_c
    budget = 1 - t0
    # #{k >= c0: P[k] - P[c0] < budget}; the k < c0 also pass when budget > 0 and are removed.
    count_right = _count_below(prefix_right, _take(prefix_right, c0) + budget, inclusive=False) - c0
    # #{k <= c0: P[c0] - P[k] < budget} = c0 + 1 - #{k: P[k] <= P[c0] - budget}.
    count_left = c0 + 1 - _count_below(prefix_left, _take(prefix_left, c0) - budget, inclusive=True)
    crossings = torch.where(rightward, count_right, count_left).clamp(min=0) * (rightward | leftward)
    crossed = crossings > 0
    last = torch.where(rightward, c0 + crossings, c0 - crossings)
    # The last vertex reached: m (rightwards) or m + 1 (leftwards), after crossing the cells
    # from c0 to m - 1 (rightwards: Σ_{c0<c<=m-1}) or from m + 1 (leftwards: Σ_{m+1<=c<c0}).
    entry_vertex = torch.where(rightward, last, last + 1)
    end = torch.where(rightward, last - 1, last + 1).clamp(0, cells - 1)
    start, stop = cell_index.unsqueeze(-1), cell_index  # [start, stop] of the run tables
    runs_right = torch.where(stop > start, capped_right.unsqueeze(-2), zero).cumsum(-1)
    runs_left = torch.where(stop < start, capped_left.unsqueeze(-2), zero).flip(-1).cumsum(-1).flip(-1)
    runs = torch.cat([runs_right.flatten(-2), runs_left.flatten(-2)], -1)
    t_used = t0 + _take(runs, (~rightward).long() * cells * cells + c0 * cells + end)
    t = torch.where(crossed, 1 - torch.where(crossed, t_used, zero), torch.ones_like(u))
    x = torch.where(crossed, entry_vertex.to(dtype) * h, u)

    # The flow inside the last cell from x: ψ = e^{at}·x + (b/a)·(e^{at} - 1), written as
    # x + t·g(at)·v(x) with g(z) = (e^z - 1)/z: no cancellation near a fixed point of
    # the cell (where e^{at}·x and the second term are huge and nearly opposite), and
    # exactly x at one. e^{at} can overflow only there (a point that spends time t in
    # a cell with a·t > 88 starts within h·e^{-88} of the cell's fixed point), so g is
    # capped to a finite number: then g·v = 0 at the fixed point instead of inf·0.
    a, b = _take(a_all, last), _take(b_all, last)
    v = torch.where(crossed, a * x + b, v0)
    at = a * t
    e_at, g_at = torch.exp(at), _expm1_ratio(at).clamp(max=torch.finfo(dtype).max)
    # Rounding can put points that converge to 0 or 1 a hair outside [0, 1].
    value = (x + t * g_at * v).clamp(0, 1)

    slope = None
    if derivative:
        # T' = v(T)/v(u) once the point has left its cell (then v(u) != 0), with
        # v(T) = e^{at}·v(x); e^{a} while it stays (this also covers v(u) = 0).
        v0_safe = torch.where(crossed, v0, torch.ones_like(v0))
        slope = torch.where(crossed, e_at * v / v0_safe, torch.exp(a0))
    d_value = None
    if tangents:
        # dT = dψ/da·da_m + dψ/db·db_m + dψ/dt·dt, with da_m, db_m the rows of the last cell m
        # and dt = -(dt0 + Σ over the whole cells crossed of dτ_c) once the point has left its
        # cell. dt0 = sv0·(u·da_0 + db_0) + sa0·da_0 (cell c0); the Σ is a difference of prefix
        # sums over cells of dτ_c = sv_c·dv_c + sa_c·da_c, taken in the direction of travel.
        pad = (0, 0, 1, 0)

        def d_tau(sens_v: Tensor, sens_a: Tensor, start: Tensor) -> Tensor:
            """dτ_c/dp per cell, the crossing starting at ``start`` (dv = da·start + db there)."""
            return sens_v.unsqueeze(-1) * (jac_a * start.unsqueeze(-1) + jac_b) + sens_a.unsqueeze(-1) * jac_a

        d_right, d_left = d_tau(sv_right, sa_right, left), d_tau(sv_left, sa_left, right)
        prefix_right = torch.nn.functional.pad(d_right.cumsum(1), pad)  # [k] = Σ_{c<k} dτ_c
        prefix_left = torch.nn.functional.pad(d_left.cumsum(1), pad)
        dpsi_dt = torch.where(crossed & (v != 0), e_at * v, torch.zeros_like(v))
        # rows: da/dp per cell, db/dp per cell, then the two prefix tables (cells + 1 each)
        channels = prefix_right.shape[0]
        rows = torch.cat([jac_a.expand(channels, -1, -1), jac_b.expand(channels, -1, -1), prefix_right, prefix_left], 1)
        weights = torch.stack(
            [
                t * (x * g_at + t * v * _expm1_ratio_prime(at)),  # dψ/da
                t * g_at,  # dψ/db
                -dpsi_dt * (u * sv0 + sa0),
                -dpsi_dt * sv0,
                torch.where(rightward, -dpsi_dt, zero),
                torch.where(rightward, zero, -dpsi_dt),
            ],
            -1,
        )
        d_value = JacobianTerms(weights, c0.to(torch.int32), last.to(torch.int32), rows)
    return Integrated(value, slope, d_value)


# ---------------------------------------------------------------------------------------
# Prior and regulariser (numpy, float64, in θ coordinates)
# ---------------------------------------------------------------------------------------
def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=64)
def _prior_covariance(cells: int, length_scale: float, variance: float) -> np.ndarray:
    nc = cells
    centres = (np.arange(nc) + 0.5) / nc
    dist = np.abs(centres[:, None] - centres[None, :])
    c0 = np.full((2 * nc, 2 * nc), 100.0 * dist.max())
    c0[::2, ::2] = dist
    c0[1::2, 1::2] = dist
    sigma = variance**2 * np.exp(-c0 / (2 * length_scale**2))
    B = null_space_basis(nc)
    cov = B.T @ sigma @ B
    cov = (cov + cov.T) / 2
    cov.setflags(write=False)
    return cov


def prior_covariance(cells: int, length_scale: float = 5.0, variance: float = 2.0) -> np.ndarray:
    """Covariance Bᵀ·Σ_PA·B of the initialisation prior θ ~ N(0, ·) (difw's
    ``sample_transformation_with_prior``; spec §3.7).

    Σ_PA = variance²·exp(-C₀/(2·length_scale²)), where C₀ holds the distances
    between cell centres (not squared, as in difw) in its slope-slope and
    intercept-intercept blocks and 100·max(distance) elsewhere. Read-only array.
    """
    return _prior_covariance(
        _check_cells(cells), _check_positive("length_scale", length_scale), _check_positive("variance", variance)
    )


@functools.lru_cache(maxsize=64)
def _precision_matrix(cells: int, length_scale: float, variance: float) -> np.ndarray:
    D = 2 * cells
    centres = np.linspace(-1.0, 1.0, D)
    dist = np.abs(centres[:, None] - centres[None, :])
    kernel = (variance * D) ** 2 * np.exp(-2.0 * dist / length_scale)
    B = null_space_basis(cells)
    cov = B.T @ kernel @ B + np.finfo(np.float32).eps * np.eye(cells - 1)
    precision = np.linalg.inv(cov)
    precision = (precision + precision.T) / 2
    precision.setflags(write=False)
    return precision


def precision_matrix(cells: int, length_scale: float = 5.0, variance: float = 2.0) -> np.ndarray:
    """P = (Bᵀ·K·B + ε·I)⁻¹ of the smoothness regulariser θᵀ·P·θ (DiTAC's
    ``get_precision_mat``; spec §3.7).

    K_ij = (variance·D)²·exp(-2·|c_i - c_j|/length_scale) with D = 2·cells
    "centres" c = linspace(-1, 1, D) indexing the interleaved coefficient
    vector, and ε the float32 machine epsilon, as in the released code. Read-only array.
    """
    return _precision_matrix(
        _check_cells(cells), _check_positive("length_scale", length_scale), _check_positive("variance", variance)
    )
