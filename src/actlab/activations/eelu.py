r"""EELU (Exponential Error Linear Unit), arXiv:2409.04915 (Rahman, He, Wang).

.. math:: f(x) = -x\,\mathrm{erf}(e^{-x})

Published with this sign: large outputs come from *negative* inputs (it is the
mirror image g(-x) of the Swish-like g(u) = u·erf(e^u)). A following linear layer
can absorb the sign; we do not "fix" it.

Numerics. ``exp(-x)`` overflows for x < -88 (float32) and autograd would then
multiply 0 by ∞. For x < -30, erf(e^{-x}) is exactly 1 in float32 and float64,
so the inner exponent is clamped there; the derivative's second term
``x·(2/√π)·w·exp(-w²)``, w = e^{-x}, then stays finite (w ≤ e^30, exp(-w²)
underflows to 0), and exp(-w²) is the exponential that erf(w) needs anyway
(:func:`actlab._math.erf_and_gaussian`). At ±∞ that term is taken as its
limit 0, not ∞·0.

CPU kernels. In float32 code compiled for the CPU, erf(e^{-x}) and EELU' are
polynomials instead of two exponentials and an erf: with w = e^{-|x|} and y = -x,

* x >= 0: erf(w) = w·A(w) and EELU' = w·(x·B(w) - A(w)), with A(w) = erf(w)/w
  and B(w) = erf'(w) = (2/√π)·e^{-w²}, smooth on [0, 1];
* -ln 4.5 <= x < 0: erf(e^y) = P(y) and EELU'(x) = -F(y), polynomials fitted there;
* x < -ln 4.5: erf(e^y) = 1 - 2e-10 and the derivative's second term < 2e-8,
  so EELU(x) = -x and EELU'(x) = -1 in float32.

The polynomials (A of degree 8, B 9, P 14, F 16) interpolate the float64
functions at Chebyshev points (:class:`actlab._math.FittedGate`, shared with
Serf, in u = -x): one exponential and 22 (value) or 33 (derivative) multiply-adds.
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
)
from ..base import Activation
from ..elementwise import ElementwiseOp, apply
from ..registry import register

__all__ = ["eelu", "EELU", "EELU_OP"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# Below this input erf(exp(-x)) == 1 exactly, in float32 and in float64.
_SATURATION = -30.0


# Above this input EELU is -0 in float32 and float64 (exp(-x) underflows).
_NEGLIGIBLE = 1e4


def _forward(x: Tensor) -> Tensor:
    # Autograd would form -x·(2/√π) = -∞ near the float limit and multiply it by
    # exp(-x) = 0; such inputs are routed to 0, which is their exact value.
    x = torch.where(x > _NEGLIGIBLE, torch.zeros_like(x), x)
    return -x * torch.erf(torch.exp(-x.clamp(min=_SATURATION)))


def _fast_value(x: Tensor) -> Tensor:
    if compiling_for_cpu(x, float32=True):
        return FITTED.value(-x)
    return _forward(x)


def _derivatives(x: Tensor) -> tuple[Tensor]:
    if compiling_for_cpu(x, float32=True):
        return (-FITTED.derivative(-x),)
    w = torch.exp(-x.clamp(min=_SATURATION))
    erf_w, gaussian = erf_and_gaussian(w)
    # Clamped, the second term is its limit 0 at ±inf instead of ∞·0; outside [-30, 1e4] it is 0 anyway.
    return (-erf_w + x.clamp(_SATURATION, _NEGLIGIBLE) * (_TWO_OVER_SQRT_PI * w * gaussian),)


#: Degrees of A, B, P and F: the lowest at which float32 evaluation reaches its floor
#: (tests/test_fitted_polynomials.py). The C kernels have them as constants too: other degrees here
#: are an error (the constant count) or NaN outputs there (kernels/fitted_gate.h).
_DEGREES = (8, 9, 14, 16)


def _fit() -> FittedGate:
    import numpy as np

    def gate(u):
        return erf_of_array(np.exp(u))

    def slope(u):  # (2/√π)·e^u·e^{-e^{2u}}
        return _TWO_OVER_SQRT_PI * np.exp(u - np.exp(2 * u))

    # Above u = ln 4.5, erf(e^u) = 1 - 2e-10 and u·(its derivative) < 2e-8.
    return FittedGate.fit(gate, slope, end=math.log(4.5), degrees=_DEGREES)


#: The CPU kernels' polynomials (module docstring), in u = -x, fitted at import (a few
#: milliseconds of numpy) so that traced code only reads constants.
FITTED = _fit()


EELU_OP = ElementwiseOp(
    "eelu",
    (),
    _forward,
    _derivatives,
    value=_fast_value,
    native="elementwise_eelu",
    native_constants=FITTED.constants(),  # elementwise_eelu.c's EELU_COUNTS
)


def eelu(x: Tensor, *, backend: str | None = None) -> Tensor:
    r"""EELU: :math:`-x\,\mathrm{erf}(e^{-x})`, as published. See :class:`EELU`."""
    return apply(EELU_OP, x, (), backend=backend)


@register(
    "eelu",
    family="eelu",
    formula="-x * erf(exp(-x))",
    paper="Activation Function Optimization Scheme for Image Classification",
    arxiv="2409.04915",
    bounded_below=True,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="secondary",
    notes=(
        "The best member of the evolved EELU family, as published (sign included); taken from the paper's "
        "summaries. Not the unrelated `EELU` class of torch-activation."
    ),
)
class EELU(Activation):
    r"""Applies the Exponential Error Linear Unit found by evolutionary search:

    .. math::
        \mathrm{EELU}(x) = -x\,\mathrm{erf}\!\left(e^{-x}\right)

    f(x) ≈ -x as x → -∞ (so f → +∞), f → 0⁻ as x → +∞, f(0) = 0, minimum
    ≈ -0.399 at x ≈ 1.08. This is the published form: large outputs come from
    negative inputs. It is *not* the stochastic ``EELU`` of torch-activation.

    Shape:
        - Input: :math:`(*)`
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> m = actlab.EELU()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Rahman, He, Wang. "Activation Function Optimization Scheme for Image
        Classification". Knowledge-Based Systems (2024). arXiv:2409.04915.
        Provenance: formula from the paper's abstract-level summaries.
    """

    op = EELU_OP
