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
(:func:`actlab._math.erf_and_gaussian`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._math import erf_and_gaussian
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


def _derivatives(x: Tensor) -> tuple[Tensor]:
    w = torch.exp(-x.clamp(min=_SATURATION))
    erf_w, gaussian = erf_and_gaussian(w)
    return (-erf_w + x * (_TWO_OVER_SQRT_PI * w * gaussian),)


EELU_OP = ElementwiseOp("eelu", (), _forward, _derivatives)


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
