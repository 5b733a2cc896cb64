r"""SAU (Smooth Activation Unit), arXiv:2109.13210 (Biswas, Kumar, Banerjee, Pandey).

SAU smooths Leaky-ReLU(α) by convolution with a Gaussian N(0, σ²); the closed
form (derived, and checked against numerical convolution in the tests) is

.. math::
    \mathrm{SAU}(x) = \frac{1+\alpha}{2}x + \frac{1-\alpha}{2}\,x\,\mathrm{erf}\!\Big(\frac{x}{\sqrt2\,\sigma}\Big)
        + (1-\alpha)\frac{\sigma}{\sqrt{2\pi}}\,e^{-x^2/(2\sigma^2)}

It is evaluated as :math:`x\,(1 - (1-\alpha)\Phi(-x/\sigma)) + (1-\alpha)\,\sigma\,\varphi(x/\sigma)`
(Φ, φ the standard normal CDF and density, Φ(-z) = erfc(z/√2)/2), which has no
cancellation: the expanded form ``(1+α)/2·x + (1-α)/2·x·erf`` is ∞ - ∞ for large
α·x. The derivatives are short because the Gaussian terms cancel:

    ∂/∂x = 1 - (1-α)·Φ(-x/σ),   ∂/∂α = x·Φ(-x/σ) - σ·φ(x/σ),   ∂/∂σ = (1-α)·φ(x/σ).

Numerics. For |x/σ| > 40, Φ is exactly 0 or 1 and φ exactly 0 in float32 and
float64; those inputs are routed around erfc/exp (double-where) so that the
unused branches cannot put ∞·0 into autograd's gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._math import erf_and_gaussian
from ..base import Param, ParametricActivation, Positive, Real, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = ["sau", "SAU", "SAU_OP"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SATURATION = 40.0


def _tail_and_density(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """Φ(-x/σ) and φ(x/σ), exact at saturation and autograd-safe."""
    z = x / sigma
    saturated = z.abs() > _SATURATION
    z_safe = torch.where(saturated, torch.zeros_like(z), z)
    tail = torch.where(saturated, (z < 0).to(z.dtype), 0.5 * torch.special.erfc(z_safe * _INV_SQRT2))
    density = torch.where(saturated, torch.zeros_like(z), _INV_SQRT_2PI * torch.exp(-0.5 * z_safe * z_safe))
    return tail, density


def _fast_tail_and_density(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """Φ(-x/σ) and φ(x/σ) for the fused paths, which are never differentiated by autograd.

    ``(1 - erf)/2`` instead of ``erfc/2``: inductor's CPU code evaluates erfc
    about four times slower than erf. The tail keeps its absolute precision (one
    rounding of 1), which is all SAU needs: Φ(-z) is added to 1 in the value and
    in ∂/∂x, and in ∂/∂α = x·Φ(-z) - σ·φ(z) the two terms are within one
    rounding of each other for large z in the reference too. No saturation
    guards: erf is ±1 and the density 0 at |z| = ∞, which are the exact limits.
    """
    erf_z, gaussian = erf_and_gaussian(x * (_INV_SQRT2 / sigma))
    return 0.5 - 0.5 * erf_z, _INV_SQRT_2PI * gaussian


def _value(tail_and_density):
    def value(x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        tail, density = tail_and_density(x, sigma)
        return x * (1 - (1 - alpha) * tail) + (1 - alpha) * sigma * density

    return value


def _derivatives(x: Tensor, alpha: Tensor, sigma: Tensor):
    tail, density = _fast_tail_and_density(x, sigma)
    return 1 - (1 - alpha) * tail, x * tail - sigma * density, (1 - alpha) * density


SAU_OP = ElementwiseOp(
    "sau",
    ("alpha", "sigma"),
    _value(_tail_and_density),
    _derivatives,
    value=_value(_fast_tail_and_density),
    native="elementwise_sau",
)

_PARAMS = (Param("alpha", 0.01, Real()), Param("sigma", 1.0, Positive(1e-4)))


def sau(
    x: Tensor, alpha: ParamLike = 0.01, sigma: ParamLike = 1.0, *, channel_dim: int = 1, backend: str | None = None
) -> Tensor:
    """Smooth Activation Unit (Gaussian-smoothed Leaky-ReLU). See :class:`SAU`."""
    check_numbers("sau", _PARAMS, (alpha, sigma))
    return apply(SAU_OP, x, (alpha, sigma), channel_dim=channel_dim, backend=backend)


@register(
    "sau",
    family="sau",
    formula="(1+a)/2·x + (1-a)/2·x·erf(x/(√2σ)) + (1-a)·σ/√(2π)·exp(-x²/(2σ²))",
    paper="SAU: Smooth activation function using convolution with approximate identities",
    arxiv="2109.13210",
    bounded_below=False,
    bounded_above=False,
    smooth=True,
    monotonic=True,
    provenance="secondary",
    notes=(
        "Closed form derived from the paper's definition (Leaky-ReLU convolved with a Gaussian). Which of "
        "alpha and sigma the paper trains, and their defaults, were not retrieved: here both are trainable "
        "(project choice), alpha = 0.01, sigma = 1."
    ),
)
class SAU(ParametricActivation):
    r"""Applies the Smooth Activation Unit element-wise: Leaky-ReLU with slope
    alpha, convolved with a Gaussian of width sigma:

    .. math::
        \mathrm{SAU}(x) = \frac{1+\alpha}{2}x + \frac{1-\alpha}{2}\,x\,
            \mathrm{erf}\!\Big(\frac{x}{\sqrt2\,\sigma}\Big)
            + (1-\alpha)\frac{\sigma}{\sqrt{2\pi}}\,e^{-x^2/(2\sigma^2)}

    Smooth and, for 0 <= alpha <= 1, monotonic; it tends to Leaky-ReLU as
    sigma → 0. Note SAU(0) = (1-alpha)·sigma/√(2π) > 0.

    .. note::
        Provenance: the closed form is derived from the paper's definition
        (and checked against numerical convolution). Which parameters the
        paper trains and their defaults were not retrieved; actlab trains both
        (alpha unconstrained, :math:`\sigma = \mathrm{softplus}(\hat\sigma) + 10^{-4}`),
        a project choice.

    Args:
        alpha (float): negative-side slope of the smoothed Leaky-ReLU. Default: 0.01
        sigma (float): width of the Gaussian, > 1e-4. Default: 1.0
        num_parameters (int): 1 (shared) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn alpha and sigma (else constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> m = actlab.SAU()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Biswas, Kumar, Banerjee, Pandey. "SAU: Smooth activation function using
        convolution with approximate identities". arXiv:2109.13210.
    """

    op = SAU_OP
    params = _PARAMS

    def __init__(
        self,
        alpha: float = 0.01,
        sigma: float = 1.0,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            {"alpha": alpha, "sigma": sigma},
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )
