r"""Sqish, arXiv:2310.10126 (Biswas, Karri, Bağcı).

.. math::
    \mathrm{Sqish}(x) = \alpha x + \frac{(1-\alpha)\,x}{\sqrt{1 + \beta\,e^{-2\gamma(1-\alpha)x}}}

**Provenance: third-party form.** The paper's text was not read; the formula is
the one of a third-party PyTorch implementation [secondary]. That implementation
initialises each parameter to max(1, N(0, 1)), which makes the function the
identity or its mirror (1 - α <= 0); actlab's defaults (α = 0.1, β = 1, γ = 1,
a Swish-like curve with a leaky slope α for x → -∞) are a project choice.

Numerics. The gate is computed as ``s = exp(-softplus(ln β - 2γ(1-α)x)/2)``,
which never overflows. With w = ln β - 2γcx, c = 1 - α:

    ∂/∂x = α + c·s + c²γ·x·s·σ(w)
    ∂/∂α = x·(1 - s) - cγ·x·(x·s·σ(w))
    ∂/∂β = -c·x·s·σ(w)/(2β)
    ∂/∂γ = c²·x·(x·s·σ(w))

(x·s·σ(w) is bounded, so the products are formed in that order.) The reference
is autograd through the softplus form; the fused paths take s and σ(w) from one
exponential and one reciprocal square root (:func:`_gate_and_sigmoid`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._math import exp_of_minus_abs, softplus
from ..base import Param, ParametricActivation, Positive, Real, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = ["sqish", "Sqish", "SQISH_OP"]

_ARG_LIMIT = 1e30


def _gate_argument(x: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor) -> Tensor:
    # The clamp only acts where the gate is already exactly 0 or 1; it keeps
    # softplus finite so that no ∞·0 reaches the gradients.
    return (torch.log(beta) - 2 * gamma * (1 - alpha) * x).clamp(-_ARG_LIMIT, _ARG_LIMIT)


def _gate(x: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor) -> Tensor:
    return torch.exp(-0.5 * softplus(_gate_argument(x, alpha, beta, gamma)))


def _forward(x, alpha, beta, gamma):
    s = _gate(x, alpha, beta, gamma)
    return alpha * x + (1 - alpha) * x * s


def _gate_and_sigmoid(w: Tensor) -> tuple[Tensor, Tensor]:
    """(s, σ(w)) with s = (1 + e^w)^(-1/2), from one exponential and one reciprocal square root.

    With h = e^{-|w|/2} <= 1 and r = (1 + h²)^(-1/2): s = h·r, σ = r² for w >= 0 and
    s = r, σ = h²·r² for w < 0. No logarithm, no division (the fused paths' form).
    """
    positive, h = exp_of_minus_abs(0.5 * w)
    e = h * h
    r = torch.rsqrt(1 + e)
    ones = torch.ones_like(h)
    return torch.where(positive, h, ones) * r, torch.where(positive, ones, e) * (r * r)


def _value(x, alpha, beta, gamma):
    s, _ = _gate_and_sigmoid(_gate_argument(x, alpha, beta, gamma))
    return alpha * x + (1 - alpha) * x * s


def _derivatives(x, alpha, beta, gamma):
    s, sigmoid = _gate_and_sigmoid(_gate_argument(x, alpha, beta, gamma))
    c = 1 - alpha
    xs_sig = x * s * sigmoid
    d_x = alpha + c * s + c * c * gamma * xs_sig
    d_alpha = x * (1 - s) - c * gamma * x * xs_sig
    d_beta = -c * xs_sig * (0.5 / beta)
    d_gamma = c * c * x * xs_sig
    return d_x, d_alpha, d_beta, d_gamma


SQISH_OP = ElementwiseOp(
    "sqish", ("alpha", "beta", "gamma"), _forward, _derivatives, value=_value, native="elementwise_sqish"
)

_PARAMS = (Param("alpha", 0.1, Real()), Param("beta", 1.0, Positive(1e-6)), Param("gamma", 1.0, Real()))


def sqish(
    x: Tensor,
    alpha: ParamLike = 0.1,
    beta: ParamLike = 1.0,
    gamma: ParamLike = 1.0,
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Sqish (third-party form). See :class:`Sqish`."""
    check_numbers("sqish", _PARAMS, (alpha, beta, gamma))
    return apply(SQISH_OP, x, (alpha, beta, gamma), channel_dim=channel_dim, backend=backend)


@register(
    "sqish",
    family="sqish",
    formula="alpha·x + (1-alpha)·x / sqrt(1 + beta·exp(-2·gamma·(1-alpha)·x))",
    paper="Sqish: A Non-monotonic Smooth Activation Function",
    arxiv="2310.10126",
    bounded_below=False,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="secondary",
    notes=(
        "Third-party form, not checked against the paper. Defaults alpha=0.1, beta=1, gamma=1 are a project "
        "choice (the third-party init max(1, N(0,1)) degenerates to the identity)."
    ),
)
class Sqish(ParametricActivation):
    r"""Applies Sqish element-wise (**third-party form, not checked against the paper**):

    .. math::
        \mathrm{Sqish}(x) = \alpha x + \frac{(1-\alpha)\,x}{\sqrt{1 + \beta\,e^{-2\gamma(1-\alpha)x}}}

    For 0 < alpha < 1 and beta, gamma > 0 it is smooth and non-monotonic, tends
    to x as x → +∞ and to alpha·x (a leaky slope) as x → -∞.

    .. note::
        The formula comes from a third-party PyTorch implementation; the paper's
        text was not read. The defaults are a project choice (see the module
        docstring). beta is kept positive by reparameterisation; alpha and gamma
        are unconstrained.

    Args:
        alpha (float): leaky slope. Default: 0.1
        beta (float): gate offset, > 0. Default: 1.0
        gamma (float): gate sharpness. Default: 1.0
        num_parameters (int): 1 (shared) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn the parameters (else constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> m = actlab.Sqish()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Biswas, Karri, Bağcı. "Sqish: A Non-monotonic Smooth Activation Function". arXiv:2310.10126.
    """

    op = SQISH_OP
    params = _PARAMS

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 1.0,
        gamma: float = 1.0,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            {"alpha": alpha, "beta": beta, "gamma": gamma},
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )
