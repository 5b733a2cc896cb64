r"""Soft-Root-Sign (SRS), arXiv:2003.00547 (Zhou, Li, Huo, Kung).

.. math:: \mathrm{SRS}(x) = \frac{x}{x/\alpha + e^{-x/\beta}}

Numerics. The textbook form overflows: ``exp(-x/beta)`` is ``inf`` for
x < -88·beta, and autograd then computes ``inf/inf``. Multiplying numerator and
denominator by ``G = exp(-|x|/beta) <= 1`` gives, with ``(P, Q) = (G, 1)`` for
x < 0 and ``(1, G)`` for x >= 0,

    SRS(x) = x·P / D,   D = x·P/alpha + Q,
    dSRS/dx     = (G + x·G/beta) / D²,
    dSRS/dalpha = (SRS/alpha)²,
    dSRS/dbeta  = -x·(x·G) / (beta²·D²),

whose numerators are bounded (|x·G| <= beta/e) so nothing overflows to NaN.
For x > 1 the value is computed as ``1 / (1/alpha + G/x)``, so that huge x
(where ``x/alpha`` could overflow) still gives alpha. The reference ``forward``
evaluates three exponentials so that each autograd branch sees only its own
region; the fused paths (value and derivatives, :func:`_value_and_reciprocal`)
need only G and one division, 1/D: SRS = x·G/D for x < 0 and x/D for x >= 0
(alpha where x/alpha overflows).

The denominator has a zero — a pole of SRS — once beta >= e·alpha (its minimum
over x is (beta/alpha)·(1 - ln(beta/alpha))). The paper's "alpha, beta > 0" is
therefore not enough; the module keeps ``beta < MAX_BETA_OVER_ALPHA · alpha``
by construction (see :class:`SRS`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..base import Param, ParametricActivation, Positive, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = ["srs", "SRS", "SRS_OP", "MAX_BETA_OVER_ALPHA"]

#: Upper bound on beta/alpha kept by the module. The pole appears at e ≈ 2.718;
#: at 2.6 the denominator stays >= 0.116, so SRS stays within about -22·alpha.
MAX_BETA_OVER_ALPHA = 2.6
_MIN_BETA_OVER_ALPHA = 1e-4


def _scaled(x: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    g = torch.exp(-x.abs() / beta)
    return g, x * g


def _forward(x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    g, xg = _scaled(x, beta)
    negative = xg / (xg / alpha + 1)
    # Each branch sees only inputs from its own region (double-where), so the
    # branches not taken cannot inject NaN into autograd's gradients.
    x_mid = x.clamp(0, 1)
    middle = x_mid / (x_mid / alpha + torch.exp(-x_mid / beta))
    large = x > 1
    x_big = torch.where(large, x, torch.ones_like(x))
    big = 1 / (1 / alpha + torch.exp(-x_big / beta) / x_big)
    return torch.where(x < 0, negative, torch.where(large, big, middle))


def _value_and_reciprocal(x: Tensor, alpha: Tensor, beta: Tensor):
    """(SRS, G, x·G, x < 0, 1/D) with one exponential and one division per element.

    The fused paths use these (they never differentiate the value); per-element
    divisions cost as much as the exponential on CPU, so every other quotient is a
    product with the per-channel reciprocals. ``x·r`` for x >= 0 is ``inf·0`` only
    where x/alpha overflows, where SRS is alpha.
    """
    inv_alpha = 1 / alpha
    g = torch.exp(-x.abs() * (1 / beta))
    xg = x * g
    negative = x < 0
    r = 1 / torch.where(negative, xg * inv_alpha + 1, x * inv_alpha + g)
    y = torch.where(negative, xg * r, torch.where(r == 0, alpha, x * r))
    return y, g, xg, negative, r


def _value(x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """The value with one exponential (not differentiated: used by the fused and compiled paths)."""
    return _value_and_reciprocal(x, alpha, beta)[0]


def _derivatives(x: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    y, g, xg, _, r = _value_and_reciprocal(x, alpha, beta)
    inv_beta = 1 / beta
    r2 = r * r
    d_x = (g + xg * inv_beta) * r2
    y_over_alpha = y * (1 / alpha)
    d_alpha = y_over_alpha * y_over_alpha
    d_beta = -(x * xg) * (inv_beta * inv_beta) * r2
    return d_x, d_alpha, d_beta


SRS_OP = ElementwiseOp("srs", ("alpha", "beta"), _forward, _derivatives, value=_value, native="elementwise_srs")

_PARAMS = (
    Param("alpha", 2.0, Positive(1e-4)),
    Param("beta", 3.0, Positive(), description=f"0 < beta < {MAX_BETA_OVER_ALPHA}·alpha"),
)


def srs(
    x: Tensor, alpha: ParamLike = 2.0, beta: ParamLike = 3.0, *, channel_dim: int = 1, backend: str | None = None
) -> Tensor:
    r"""Soft-Root-Sign: :math:`x / (x/\alpha + e^{-x/\beta})`. See :class:`SRS`.

    ``alpha`` and ``beta`` are numbers, scalar tensors or per-channel 1-D tensors
    (along ``channel_dim``). Numbers are checked: alpha > 0, beta > 0 and
    beta < e·alpha (otherwise the function has a pole).
    """
    check_numbers("srs", _PARAMS, (alpha, beta))
    if not isinstance(alpha, Tensor) and not isinstance(beta, Tensor) and beta >= math.e * alpha:
        raise ValueError(
            f"srs: beta must be < e·alpha = {math.e * alpha:.4g} (got beta={beta}); the denominator has a zero otherwise"
        )
    return apply(SRS_OP, x, (alpha, beta), channel_dim=channel_dim, backend=backend)


@register(
    "srs",
    family="srs",
    formula="x / (x/alpha + exp(-x/beta))",
    paper="Soft-Root-Sign Activation Function",
    arxiv="2003.00547",
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=False,
    provenance="secondary",
    notes=(
        "Formula agreed by several independent reimplementations; the paper's text was not read. "
        "Default (alpha, beta) = (2, 3) as attributed to the paper by the Kunc & Kléma survey; "
        "the Dubey et al. benchmark trains (5, 3)."
    ),
    aliases=("soft_root_sign",),
)
class SRS(ParametricActivation):
    r"""Applies the Soft-Root-Sign function element-wise:

    .. math::
        \mathrm{SRS}(x) = \frac{x}{\dfrac{x}{\alpha} + e^{-x/\beta}}

    Smooth, non-monotonic and bounded: it decreases for x < -beta, increases for
    x > -beta, has its minimum :math:`\alpha\beta/(\beta - \alpha e)` at
    x = -beta, tends to alpha as x → +∞ and to 0⁻ as x → -∞.

    Both alpha and beta are learned. By default one pair is shared by the whole
    layer; with ``num_parameters=C`` each channel has its own pair.

    .. note::
        Constraints are kept by reparameterisation, so no optimizer step can
        break them: :math:`\alpha = \mathrm{softplus}(\hat\alpha) + 10^{-4}` and
        :math:`\beta = \alpha\,(r_0 + (r_1 - r_0)\,\sigma(\hat\beta))` with
        :math:`r_1 = 2.6 < e`. The upper bound matters: the denominator reaches
        zero (a pole) once beta >= e·alpha, which the paper's "alpha, beta > 0"
        does not exclude. Do not apply weight decay to these parameters
        (:func:`actlab.param_groups` keeps them out of it).

    .. note::
        Initial values differ between sources: (2, 3) is what the Kunc & Kléma
        survey attributes to the paper; the Dubey et al. benchmark trains (5, 3).
        Provenance: formula from independent reimplementations that agree; the
        paper's own text was not read.

    Args:
        alpha (float): initial alpha (upper asymptote), > 0. Default: 2.0
        beta (float): initial beta (position of the minimum is -beta), with
            0 < beta < 2.6·alpha. Default: 3.0
        num_parameters (int): 1 (shared) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn alpha and beta (else they are constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when
          ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Attributes:
        raw_alpha, raw_beta: the unconstrained learnable tensors, shape ``(num_parameters,)``.
        alpha, beta: the constrained values (read-only properties).

    Examples::

        >>> m = actlab.SRS()
        >>> y = m(torch.randn(4, 8))
        >>> m = actlab.SRS(num_parameters=16)        # one (alpha, beta) per channel
        >>> y = m(torch.randn(2, 16, 5, 5))

    Reference:
        Zhou, Li, Huo, Kung. "Soft-Root-Sign Activation Function". arXiv:2003.00547.
    """

    op = SRS_OP
    params = _PARAMS

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 3.0,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            {"alpha": alpha, "beta": beta},
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )

    def _check_values(self, values) -> None:
        ratio = values["beta"] / values["alpha"]
        if not _MIN_BETA_OVER_ALPHA < ratio < MAX_BETA_OVER_ALPHA:
            raise ValueError(
                f"SRS: beta must satisfy {_MIN_BETA_OVER_ALPHA:g}·alpha < beta < {MAX_BETA_OVER_ALPHA}·alpha "
                f"(got alpha={values['alpha']}, beta={values['beta']}); at beta >= e·alpha the denominator "
                "x/alpha + exp(-x/beta) has a zero and SRS a pole"
            )

    def _to_values(self, raw):
        alpha = _PARAMS[0].constraint.to_value(raw["alpha"])
        ratio = _MIN_BETA_OVER_ALPHA + (MAX_BETA_OVER_ALPHA - _MIN_BETA_OVER_ALPHA) * torch.sigmoid(raw["beta"])
        return {"alpha": alpha, "beta": alpha * ratio}

    def _to_raw(self, values):
        fraction = (values["beta"] / values["alpha"] - _MIN_BETA_OVER_ALPHA) / (
            MAX_BETA_OVER_ALPHA - _MIN_BETA_OVER_ALPHA
        )
        return {"alpha": _PARAMS[0].constraint.to_raw(values["alpha"]), "beta": torch.logit(fraction)}
