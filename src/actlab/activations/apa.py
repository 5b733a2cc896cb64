r"""APA and AGLU, arXiv:2407.08567 (Alexandridis et al., ECCV 2024).

.. math::
    \mathrm{APA}(z) = (\lambda e^{-\kappa z} + 1)^{-1/\lambda},\qquad
    \mathrm{AGLU}(z) = z\,\mathrm{APA}(z)

Numerics. Computed in log space, ``ln APA = -softplus(ln λ - κz) / λ``, which
never overflows. κz is clamped to ±1e30: beyond that APA is exactly 0 or 1 for
any λ < 1e28, and the clamp keeps ``softplus`` finite so that no ∞·0 reaches the
gradients. λ is kept >= 1e-4 (the official ``Unified`` module clamps at the same
value; we reparameterise instead).

Gradients, with u = κz - ln λ, s = σ(-u), p = APA(z):

    ∂p/∂z = p·κ·s/λ,   ∂p/∂κ = p·z·s/λ,   ∂p/∂λ = p·(softplus(-u) - s)/λ².

The released ``UniRect`` backward drops the ``softplus(-u)·p/λ²`` part of ∂/∂λ
(activations-spec §6.1); ours is complete and gradchecked.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._math import softplus, softplus_and_sigmoid, softplus_by_series
from ..base import Param, ParametricActivation, Positive, Real, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = ["apa", "aglu", "APA", "AGLU", "APA_OP", "AGLU_OP"]

_KZ_LIMIT = 1e30


def _exponent(z: Tensor, lam: Tensor, kappa: Tensor) -> Tensor:
    """u = κz - ln λ, with κz clamped (see the module docstring)."""
    return (kappa * z).clamp(-_KZ_LIMIT, _KZ_LIMIT) - torch.log(lam)


def _log_apa(z: Tensor, lam: Tensor, kappa: Tensor, softplus_fn=softplus) -> Tensor:
    return -softplus_fn(-_exponent(z, lam, kappa)) * (1 / lam)


def _apa_partials(z: Tensor, lam: Tensor, kappa: Tensor):
    sp, s = softplus_and_sigmoid(-_exponent(z, lam, kappa))
    inv_lam = 1 / lam
    log_p = -sp * inv_lam
    p = torch.exp(log_p)
    # softplus(-u)·p = -λ·ln(p)·p stays finite where softplus(-u) is huge and p = 0.
    sp_p = -lam * log_p * p
    ps_over_lam = p * s * inv_lam
    dp_dz = ps_over_lam * kappa
    dp_dkappa = ps_over_lam * z
    dp_dlam = (sp_p - p * s) * (inv_lam * inv_lam)
    return p, dp_dz, dp_dlam, dp_dkappa


def _apa_value(softplus_fn):
    def value(z, lam, kappa):
        return torch.exp(_log_apa(z, lam, kappa, softplus_fn))

    return value


def _apa_derivatives(z, lam, kappa):
    _, dp_dz, dp_dlam, dp_dkappa = _apa_partials(z, lam, kappa)
    return dp_dz, dp_dlam, dp_dkappa


def _aglu_value(softplus_fn):
    apa_value = _apa_value(softplus_fn)

    def value(z, lam, kappa):
        return z * apa_value(z, lam, kappa)

    return value


def _aglu_derivatives(z, lam, kappa):
    p, dp_dz, dp_dlam, dp_dkappa = _apa_partials(z, lam, kappa)
    return p + z * dp_dz, z * dp_dlam, z * dp_dkappa


# The references go through torch's softplus; the fused paths' values through the
# cheaper series form (see actlab._math.log1p_of_unit).
APA_OP = ElementwiseOp(
    "apa",
    ("lam", "kappa"),
    _apa_value(softplus),
    _apa_derivatives,
    value=_apa_value(softplus_by_series),
    native="elementwise_apa",
)
AGLU_OP = ElementwiseOp(
    "aglu",
    ("lam", "kappa"),
    _aglu_value(softplus),
    _aglu_derivatives,
    value=_aglu_value(softplus_by_series),
    native="elementwise_apa",
)

_PARAMS = (Param("lam", 1.0, Positive(1e-4)), Param("kappa", 1.0, Real()))


def apa(
    z: Tensor, lam: ParamLike = 1.0, kappa: ParamLike = 1.0, *, channel_dim: int = 1, backend: str | None = None
) -> Tensor:
    r"""Adaptive Parametric Activation :math:`(\lambda e^{-\kappa z} + 1)^{-1/\lambda}`. See :class:`APA`."""
    check_numbers("apa", _PARAMS, (lam, kappa))
    return apply(APA_OP, z, (lam, kappa), channel_dim=channel_dim, backend=backend)


def aglu(
    z: Tensor, lam: ParamLike = 1.0, kappa: ParamLike = 1.0, *, channel_dim: int = 1, backend: str | None = None
) -> Tensor:
    r"""AGLU :math:`z\,\mathrm{APA}(z)`. See :class:`AGLU`."""
    check_numbers("aglu", _PARAMS, (lam, kappa))
    return apply(AGLU_OP, z, (lam, kappa), channel_dim=channel_dim, backend=backend)


_DOC_COMMON = r"""
    By default one (λ, κ) pair is shared by the layer; ``num_parameters=C``
    gives one pair per channel along ``channel_dim`` (any layout, not only NCHW).

    .. note::
        λ is kept >= 1e-4 by reparameterisation (:math:`\lambda = \mathrm{softplus}(\hat\lambda) + 10^{-4}`);
        κ is unconstrained (negative κ mirrors the gate). The defaults λ = κ = 1
        make APA the sigmoid (AGLU = SiLU) at initialisation; the official code
        draws λ ~ U(0, 1), κ ~ U(0.8, 1.2) (pass those values to reproduce it).
        The λ-gradient of the released ``UniRect`` backward omits a term; actlab's
        is complete (gradchecked).

    Args:
        lam (float): λ, > 1e-4. Default: 1.0
        kappa (float): κ. Default: 1.0
        num_parameters (int): 1 (shared) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn λ and κ (else constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when
          ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Reference:
        Alexandridis, Deng, Nguyen, Luo. "Adaptive Parametric Activation". ECCV 2024.
        arXiv:2407.08567. Code: ``kostas1515/AGLU``.
"""


class _APABase(ParametricActivation):
    params = _PARAMS

    def __init__(
        self,
        lam: float = 1.0,
        kappa: float = 1.0,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            {"lam": lam, "kappa": kappa},
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )


@register(
    "apa",
    family="apa",
    formula="(lam·exp(-kappa·z) + 1)^(-1/lam)",
    paper="Adaptive Parametric Activation",
    arxiv="2407.08567",
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=True,
    provenance="official-code",
    notes="A gating function in (0, 1): the sigmoid at lam = kappa = 1, the Gumbel CDF as lam → 0.",
)
class APA(_APABase):
    __doc__ = (
        r"""Applies the Adaptive Parametric Activation element-wise:

    .. math::
        \mathrm{APA}(z) = \left(\lambda e^{-\kappa z} + 1\right)^{-1/\lambda}

    A learnable gate with values in (0, 1): the sigmoid for λ = κ = 1, the Gumbel
    CDF :math:`\exp(-e^{-\kappa z})` as λ → 0, a step as κ → ∞. In the paper it
    is used inside attention gates (SE, CBAM); :class:`AGLU` is the form used as
    a hidden-layer activation.
    """
        + _DOC_COMMON
        + r"""
    Examples::

        >>> m = actlab.APA()
        >>> y = m(torch.randn(4, 8))
    """
    )

    op = APA_OP


@register(
    "aglu",
    family="apa",
    formula="z · (lam·exp(-kappa·z) + 1)^(-1/lam)",
    paper="Adaptive Parametric Activation",
    arxiv="2407.08567",
    bounded_below=True,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="official-code",
    notes="SiLU at lam = kappa = 1; close to GELU at lam = 1, kappa ≈ 1.702. The released λ-gradient bug is fixed.",
)
class AGLU(_APABase):
    __doc__ = (
        r"""Applies the Adaptive Generalised Linear Unit element-wise:

    .. math::
        \mathrm{AGLU}(z) = z\,\left(\lambda e^{-\kappa z} + 1\right)^{-1/\lambda}

    SiLU at λ = κ = 1, close to GELU at λ = 1, κ ≈ 1.702, ReLU as κ → ∞.
    """
        + _DOC_COMMON
        + r"""
    Examples::

        >>> m = actlab.AGLU()
        >>> y = m(torch.randn(4, 8))
    """
    )

    op = AGLU_OP
