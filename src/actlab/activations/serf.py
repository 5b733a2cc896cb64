r"""Serf, arXiv:2108.09598 (Nag & Bhattacharyya, WACV 2023).

.. math:: \mathrm{Serf}(x) = x\,\mathrm{erf}(\ln(1 + e^{x}))

Numerics. The naive ``x * erf(log(1 + exp(x)))`` has a NaN gradient for
x ≳ 89 in float32 (autograd evaluates 0·∞ inside log(1+exp)) and overflows in
float16 for x ≳ 11. We use the built-in softplus (linear above 20, where
erf(20) = 1 exactly) and compute in float32 at least. The closed-form
derivative

    Serf'(x) = erf(sp(x)) + x · (2/√π) · exp(-sp(x)²) · σ(x)

is used by the fused path; the equivalent form with ``Serf(x)/x`` is avoided
because it divides by zero at x = 0. Its second term is taken as its limit 0
at ±∞, not ∞·0.

CPU kernels. In float32 code compiled for the CPU, g(x) = erf(softplus(x)) and
Serf' are polynomials instead of an exp, a log1p and an erf (with its own exp):
with w = e^{-|x|},

* x < 0: g = w·A(w) and Serf' = w·(A(w) + x·B(w)), where A(w) = erf(ln(1+w))/w
  and B(w) = d(w·A)/dw = (2/√π)·e^{-ln²(1+w)}/(1+w) are smooth on [0, 1];
* 0 <= x <= 4.5: g = P(x) and Serf' = F(x), polynomials fitted to them there;
* x > 4.5: g = 1 - 2e-10 and x·g'(x) < 1e-8, so Serf(x) = x and Serf'(x) = 1 in float32.

The polynomials (A and B of degree 9, P and F of degree 18) interpolate the
float64 functions at Chebyshev points (:class:`actlab._math.FittedGate`, shared
with EELU): one exponential and 27 (value) or 36 (derivative) multiply-adds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._math import (
    FittedGate,
    compiling_for_cpu,
    erf_and_gaussian,
    erf_of_array,
    softplus,
    softplus_and_sigmoid,
    softplus_by_series,
)
from ..base import Activation
from ..elementwise import ElementwiseOp, apply
from ..registry import register

__all__ = ["serf", "Serf", "SERF_OP"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# Below this input Serf is -0 in float32 and float64 (softplus underflows).
_NEGLIGIBLE = -1e4


def _value(softplus_fn):
    def value(x: Tensor) -> Tensor:
        # Autograd would form x·(2/√π) = -∞ for x near the float limit and multiply it
        # by sigmoid(x) = 0; such inputs are routed to 0, which is their exact value.
        x = torch.where(x < _NEGLIGIBLE, torch.zeros_like(x), x)
        return x * torch.erf(softplus_fn(x))

    return value


_series_value = _value(softplus_by_series)
_reference_value = _value(softplus)


def _fast_value(x: Tensor) -> Tensor:
    if compiling_for_cpu(x, float32=True):
        return FITTED.value(x)
    if torch.compiler.is_compiling():
        return _series_value(x)
    # Eager, every term is a kernel of its own: F.softplus is one, the series eight.
    return _reference_value(x)


def _derivatives(x: Tensor) -> tuple[Tensor]:
    if compiling_for_cpu(x, float32=True):
        return (FITTED.derivative(x),)
    sp, sigmoid = softplus_and_sigmoid(x)
    erf_sp, gaussian = erf_and_gaussian(sp)
    # Clamped, the second term is its limit 0 at ±inf instead of ∞·0; beyond ±1e4 it is 0 anyway.
    return (erf_sp + x.clamp(_NEGLIGIBLE, -_NEGLIGIBLE) * sigmoid * (_TWO_OVER_SQRT_PI * gaussian),)


#: Degrees of A, B, P and F: the lowest at which float32 evaluation reaches its floor
#: (tests/test_fitted_polynomials.py). The C kernels have them as constants too: other degrees here
#: are an error (the constant count) or NaN outputs there (kernels/fitted_gate.h).
_DEGREES = (9, 9, 18, 18)


def _fit() -> FittedGate:
    import numpy as np

    def gate(u):
        return erf_of_array(np.logaddexp(0.0, u))

    def slope(u):  # (2/√π)·e^{-sp²}·σ(u)
        sp = np.logaddexp(0.0, u)
        return _TWO_OVER_SQRT_PI * np.exp(-sp * sp - np.logaddexp(0.0, -u))

    # Above 4.5, erf(softplus(x)) = 1 - 2e-10 and x·(its derivative) < 1e-8.
    return FittedGate.fit(gate, slope, end=4.5, degrees=_DEGREES)


#: The CPU kernels' polynomials (module docstring), fitted at import (a few milliseconds of numpy)
#: so that traced code only reads constants.
FITTED = _fit()


SERF_OP = ElementwiseOp(
    "serf",
    (),
    _reference_value,
    _derivatives,
    value=_fast_value,
    native="elementwise_serf",
    native_constants=FITTED.constants(),  # elementwise_serf.c's SERF_COUNTS
)


def serf(x: Tensor, *, backend: str | None = None) -> Tensor:
    r"""Serf: :math:`x\,\mathrm{erf}(\mathrm{softplus}(x))`. See :class:`Serf`."""
    return apply(SERF_OP, x, (), backend=backend)


@register(
    "serf",
    family="serf",
    formula="x * erf(log(1 + exp(x)))",
    paper="SERF: Towards better training of deep neural networks using log-Softplus ERror activation Function",
    arxiv="2108.09598",
    bounded_below=True,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="secondary",
    notes="No official code is known; the formula is the one every reimplementation uses. Minimum ≈ -0.348 at x ≈ -1.19.",
)
class Serf(Activation):
    r"""Applies the Serf (log-Softplus ERror activation Function) element-wise:

    .. math::
        \mathrm{Serf}(x) = x\,\mathrm{erf}\!\left(\ln(1 + e^{x})\right)

    Smooth, non-monotonic, bounded below (minimum ≈ -0.348 at x ≈ -1.19),
    Serf(x) → x as x → +∞ and → 0⁻ as x → -∞; Serf'(0) = erf(ln 2) ≈ 0.673.
    It has no parameters.

    .. note::
        Computed with the built-in softplus (linear above 20) in float32 at
        least, so gradients stay finite for every finite input in every dtype;
        the naive form gives NaN gradients above x ≈ 89 in float32.

    Shape:
        - Input: :math:`(*)`
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> m = actlab.Serf()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Nag, Bhattacharyya. "SERF: Towards better training of deep neural networks
        using log-Softplus ERror activation Function". WACV 2023. arXiv:2108.09598.
    """

    op = SERF_OP
