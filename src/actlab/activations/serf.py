r"""Serf, arXiv:2108.09598 (Nag & Bhattacharyya, WACV 2023).

.. math:: \mathrm{Serf}(x) = x\,\mathrm{erf}(\ln(1 + e^{x}))

Numerics. The naive ``x * erf(log(1 + exp(x)))`` has a NaN gradient for
x ≳ 89 in float32 (autograd evaluates 0·∞ inside log(1+exp)) and overflows in
float16 for x ≳ 11. We use the built-in softplus (linear above 20, where
erf(20) = 1 exactly) and compute in float32 at least. The closed-form
derivative

    Serf'(x) = erf(sp(x)) + x · (2/√π) · exp(-sp(x)²) · σ(x)

is used by the fused path; the equivalent form with ``Serf(x)/x`` is avoided
because it divides by zero at x = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._math import erf_and_gaussian, softplus, softplus_and_sigmoid, softplus_by_series
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


def _derivatives(x: Tensor) -> tuple[Tensor]:
    sp, sigmoid = softplus_and_sigmoid(x)
    erf_sp, gaussian = erf_and_gaussian(sp)
    return (erf_sp + x * sigmoid * (_TWO_OVER_SQRT_PI * gaussian),)


SERF_OP = ElementwiseOp("serf", (), _value(softplus), _derivatives, value=_value(softplus_by_series))


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
