"""Small numerical helpers shared by several activation families."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# torch's default softplus threshold (20) returns x for x > 20, dropping
# log1p(e^-x) ≈ 2e-9·x: harmless in float32 but a 1e-10-level error in float64.
# Above 40 the dropped term is below float64 resolution, and exp(40) still
# fits in float32, so one threshold serves both.
_SOFTPLUS_THRESHOLD = 40.0


def softplus(x: Tensor) -> Tensor:
    """ln(1 + e^x), exact to the last bit in float32 and float64, never overflowing."""
    return F.softplus(x, beta=1.0, threshold=_SOFTPLUS_THRESHOLD)


def compiling_for_cpu(x: Tensor, *, float32: bool = False) -> bool:
    """Whether ``x`` is being traced by ``torch.compile`` for the CPU (and is float32, if asked).

    The condition under which the helpers below swap a transcendental function
    for arithmetic: inductor's C++ loops pay for every exp/log/erf with a call
    of tens of instructions, while multiply-adds are one instruction each.
    Elsewhere (eager code, where each term would be a kernel of its own, and
    GPUs, which are memory-bound) the plain torch functions are used.
    """
    return torch.compiler.is_compiling() and x.device.type == "cpu" and (not float32 or x.dtype == torch.float32)


def log1p_of_unit(e: Tensor) -> Tensor:
    """log(1 + e) for 0 <= e <= 1, to the precision of ``e``'s dtype, by multiplications only.

    log1p(e) = 2·atanh(s) = 2·(s + s³/3 + s⁵/5 + ...) with s = e/(2+e) <= 1/3, so
    the series converges by a factor 1/9 a term; it is cut where the next term is
    below a quarter of the dtype's epsilon (7 terms in float32, 17 in float64).
    Used only where it pays: in code that inductor compiles for the CPU, where
    ``log1p`` costs about twice an exponential and this form one division and a
    few multiply-adds (softplus 10 ms against 15 ms on 2^22 float32 elements).
    Elsewhere (eager, where each term would be a kernel of its own, and on GPUs)
    it is ``torch.log1p``. The references always use ``torch.log1p``/``F.softplus``.
    """
    if not compiling_for_cpu(e):
        return torch.log1p(e)
    s = e / (2 + e)
    s2 = s * s
    eps = torch.finfo(e.dtype).eps
    terms = 1
    while (1 / 9) ** terms / (2 * terms + 1) >= eps / 4:
        terms += 1
    poly = torch.full_like(s2, 1 / (2 * terms - 1))
    for k in range(terms - 2, -1, -1):
        poly = poly * s2 + 1 / (2 * k + 1)
    return 2 * s * poly


def exp_of_minus_abs(x: Tensor) -> tuple[Tensor, Tensor]:
    """(x >= 0, e^{-|x|}); ``where`` on the sign rather than ``abs`` keeps autograd's derivative at 0 two-sided."""
    positive = x >= 0
    return positive, torch.exp(torch.where(positive, -x, x))


def softplus_by_series(x: Tensor) -> Tensor:
    """ln(1 + e^x) as max(x, 0) + :func:`log1p_of_unit` (e^{-|x|}): the fused paths' softplus."""
    positive, e = exp_of_minus_abs(x)
    return torch.where(positive, x, torch.zeros_like(x)) + log1p_of_unit(e)


def softplus_and_sigmoid(x: Tensor) -> tuple[Tensor, Tensor]:
    """(softplus(x), σ(x)) from one exponential, e = e^{-|x|} <= 1 (never overflows).

    softplus(x) = max(x, 0) + log1p(e) and σ(x) = 1/(1+e) (x >= 0) or e/(1+e),
    both exact to rounding. For the closed-form derivatives, which evaluate
    both: the pair costs one transcendental fewer than ``softplus`` and
    ``sigmoid`` apart, and log1p is :func:`log1p_of_unit`. Written with
    ``where`` on the sign (not ``abs``/``relu``) so that autograd through it
    (double backward) gives softplus' = σ at 0 too.
    """
    positive, e = exp_of_minus_abs(x)
    r = 1 / (1 + e)
    sp = torch.where(positive, x, torch.zeros_like(x)) + log1p_of_unit(e)
    return sp, torch.where(positive, r, e * r)


# erf(t) = 2/√π · (t - t³/3 + t⁵/10 - t⁷/42 + t⁹/216 - ...): below |t| = 0.25 the
# first omitted term is 7e-10 relative, far below float32's resolution.
_ERF_SERIES = tuple(2 / math.sqrt(math.pi) * c for c in (1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216))
ERF_SERIES_LIMIT = 0.25

# Abramowitz & Stegun 7.1.26: erf(z) = 1 - t·(a1 + a2 t + ... + a5 t⁴)·e^{-z²}, t = 1/(1 + p z),
# for z >= 0, absolute error below 1.5e-7. It is the formula of ATen's vectorised float32 erf,
# which inductor's CPU code calls, so spelling it out changes no value beyond rounding.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf_series(t: Tensor) -> Tensor:
    """erf(t) for |t| < :data:`ERF_SERIES_LIMIT`, to full relative precision (float32 and float64)."""
    t2 = t * t
    c1, c3, c5, c7, c9 = _ERF_SERIES
    return t * (c1 + t2 * (c3 + t2 * (c5 + t2 * (c7 + t2 * c9))))


def erf_and_gaussian(z: Tensor) -> tuple[Tensor, Tensor]:
    """(erf(z), e^{-z²}): the pair that Serf, EELU and SAU's derivatives (and SAU's value) need.

    In float32 code that inductor compiles for the CPU, erf is written out as
    Abramowitz–Stegun 7.1.26, the formula inductor would call, whose one
    exponential is e^{-z²} itself: the pair then costs one exponential instead of
    two (Serf's backward kernel 5.6 → 4.8 ms, EELU's 9.2 → 6.7 ms on 2^22 floats).
    Below |z| = 0.25, where that formula loses relative precision, erf is its
    Taylor series (as for every float32 erf in those graphs, see
    :mod:`actlab.kernels.compiled`). Elsewhere (eager code, float64, GPUs) it is
    ``torch.erf`` and ``torch.exp``.
    """
    gaussian = torch.exp(-z * z)
    if not compiling_for_cpu(z, float32=True):
        return torch.erf(z), gaussian
    a = z.abs()
    t = 1 / (1 + _AS_P * a)
    a1, a2, a3, a4, a5 = _AS_A
    far = 1 - t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * gaussian
    return torch.where(a < ERF_SERIES_LIMIT, erf_series(z), torch.where(z < 0, -far, far)), gaussian


def interpolating_polynomial(fn: Callable, lo: float, hi: float, degree: int) -> tuple[float, ...]:
    """Coefficients (constant term first) of the polynomial in t that interpolates ``fn`` on [lo, hi].

    ``fn`` maps float64 numpy arrays of x elementwise; the polynomial p(t),
    t = 2(x - lo)/(hi - lo) - 1 in [-1, 1], interpolates it at the
    ``degree + 1`` Chebyshev points, which puts its error within a factor
    2 + (2/π)·ln(degree + 1) of the best polynomial's of that degree. The
    coefficients are returned in the monomial basis, for Horner's rule
    (:func:`horner`); that form is only as accurate in float32 as its
    coefficients are small, which each user checks (tests/test_fitted_polynomials.py).
    """
    import numpy as np

    cheb = np.polynomial.chebyshev
    coefficients = cheb.chebinterpolate(lambda t: fn(lo + (np.asarray(t) + 1) * ((hi - lo) / 2)), degree)
    return tuple(float(c) for c in cheb.cheb2poly(coefficients))


def erf_of_array(x):
    """erf of a float64 numpy array, elementwise (for fitting: numpy has no erf, and scipy is not a dependency)."""
    import numpy as np

    return np.vectorize(math.erf, otypes=[np.float64])(x)


def horner(t: Tensor, coefficients: Sequence[float]) -> Tensor:
    """Σ c_k t^k by Horner's rule, constant term first (one multiply-add per term: one FMA in compiled CPU code)."""
    acc = torch.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc = acc * t + c
    return acc


# Below this, u·g(u) is -0 for the gates below, and u is routed to 0 so that no ∞·0 arises.
_GATE_NEGLIGIBLE = -1e4


@dataclass(frozen=True)
class FittedGate:
    """u·g(u) and its derivative from one exponential and four fitted polynomials.

    For a gate g that decays like e^u as u → -∞ and reaches 1 (to float32) at
    ``end``: Serf (g = erf∘softplus) and EELU (g(u) = erf(e^u), u = -x). With
    w = e^{-|u|}:

    * u < 0: g = w·A(w) and (u·g)' = w·(A(w) + u·B(w)), where A(w) = g(ln w)/w
      and B(w) = g'(ln w)/w = d(w·A)/dw, smooth on [0, 1] for these gates;
    * 0 <= u <= end: g = P(u) and (u·g)' = F(u) = g(u) + u·g'(u);
    * u > end: g = 1 and (u·g)' = 1.

    Each polynomial interpolates the float64 function at Chebyshev points
    (:func:`interpolating_polynomial`), fitted once by :meth:`fit`. SIMD code
    evaluates both sides for every element, so a value costs one exponential
    and deg A + deg P multiply-adds, a derivative one exponential and
    deg A + deg B + deg F. The users evaluate it only in float32 graphs
    compiled for the CPU (:func:`compiling_for_cpu`), where exponentials are
    out-of-line calls and multiply-adds single instructions.
    """

    end: float
    a: tuple[float, ...]
    b: tuple[float, ...]
    p: tuple[float, ...]
    f: tuple[float, ...]

    @classmethod
    def fit(cls, gate: Callable, slope: Callable, end: float, degrees: tuple[int, int, int, int]) -> FittedGate:
        """Fit to ``gate`` (g) and ``slope`` (g'), float64 numpy functions of u; ``degrees`` of A, B, P, F.

        Chebyshev points are interior, so A and B are never evaluated at w = 0.
        """
        import numpy as np

        deg_a, deg_b, deg_p, deg_f = degrees
        return cls(
            end=end,
            a=interpolating_polynomial(lambda w: gate(np.log(w)) / w, 0.0, 1.0, deg_a),
            b=interpolating_polynomial(lambda w: slope(np.log(w)) / w, 0.0, 1.0, deg_b),
            p=interpolating_polynomial(gate, 0.0, end, deg_p),
            f=interpolating_polynomial(lambda u: gate(u) + u * slope(u), 0.0, end, deg_f),
        )

    def constants(self) -> tuple[float, ...]:
        """The native kernels' constants (kernels/fitted_gate.h): the four coefficient counts, end, 2/end,
        then A, B, P and F, constant terms first. The C code has the counts as compile-time constants: it
        checks the total (the engine raises on a mismatch) and these four (every output NaN otherwise)."""
        polynomials = (self.a, self.b, self.p, self.f)
        return (*(float(len(c)) for c in polynomials), self.end, 2 / self.end, *(c for cs in polynomials for c in cs))

    def _arguments(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(u >= 0, w = e^{-|u|}, argument of P and F, argument of A and B)."""
        positive, w = exp_of_minus_abs(u)
        return positive, w, u.clamp(max=self.end) * (2 / self.end) - 1, 2 * w - 1

    def value(self, u: Tensor) -> Tensor:
        u = torch.where(u < _GATE_NEGLIGIBLE, torch.zeros_like(u), u)
        positive, w, t_pos, t_neg = self._arguments(u)
        g_pos = torch.where(u > self.end, 1.0, horner(t_pos, self.p))
        return u * torch.where(positive, g_pos, w * horner(t_neg, self.a))

    def derivative(self, u: Tensor) -> Tensor:
        positive, w, t_pos, t_neg = self._arguments(u)
        d_pos = torch.where(u > self.end, 1.0, horner(t_pos, self.f))
        # u clamped: at -inf, w = 0 times a finite number, not ∞·0
        d_neg = w * (horner(t_neg, self.a) + u.clamp(min=_GATE_NEGLIGIBLE) * horner(t_neg, self.b))
        return torch.where(positive, d_pos, d_neg)
