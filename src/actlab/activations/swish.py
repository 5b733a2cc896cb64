r"""Swish with a trainable slope, arXiv:1710.05941 (Ramachandran, Zoph, Le).

.. math:: \mathrm{Swish}(x) = x\,\sigma(\beta x)

β = 1 is SiLU (``torch.nn.SiLU``, registered as ``silu``); β ≈ 1.702 is close to
GELU. Derivatives: ∂/∂x = σ + βx·σ(1-σ), ∂/∂β = x·(x·σ(1-σ)) — the product is
formed in that order so that x² never overflows where σ(1-σ) is already 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import Param, ParametricActivation, Real, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = ["swish", "Swish", "SWISH_OP"]


def _forward(x: Tensor, beta: Tensor) -> Tensor:
    return x * torch.sigmoid(beta * x)


def _derivatives(x: Tensor, beta: Tensor):
    s = torch.sigmoid(beta * x)
    slope = s * (1 - s)
    return s + beta * x * slope, x * (x * slope)


SWISH_OP = ElementwiseOp("swish", ("beta",), _forward, _derivatives, native="elementwise_swish")
_PARAMS = (Param("beta", 1.0, Real()),)


def swish(x: Tensor, beta: ParamLike = 1.0, *, channel_dim: int = 1, backend: str | None = None) -> Tensor:
    r"""Swish :math:`x\,\sigma(\beta x)`. See :class:`Swish`."""
    check_numbers("swish", _PARAMS, (beta,))
    return apply(SWISH_OP, x, (beta,), channel_dim=channel_dim, backend=backend)


@register(
    "swish",
    family="swish",
    formula="x · sigmoid(beta·x)",
    paper="Searching for Activation Functions",
    arxiv="1710.05941",
    bounded_below=True,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="paper",
    notes="Trainable beta (SiLU at beta = 1; use 'silu' for torch's fixed SiLU).",
    aliases=("swish_beta",),
)
class Swish(ParametricActivation):
    r"""Applies Swish with a learnable slope element-wise:

    .. math::
        \mathrm{Swish}(x) = x\,\sigma(\beta x)

    SiLU at β = 1 (its initial value), close to GELU at β ≈ 1.702, ReLU as β → ∞.
    For the fixed SiLU use ``torch.nn.SiLU`` (registry name ``silu``).

    Args:
        beta (float): initial slope. Default: 1.0
        num_parameters (int): 1 (shared) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn beta (else a constant buffer). Default: ``True``
        device, dtype: factory arguments for the parameter.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Examples::

        >>> m = actlab.Swish()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Ramachandran, Zoph, Le. "Searching for Activation Functions". arXiv:1710.05941.
    """

    op = SWISH_OP
    params = _PARAMS

    def __init__(
        self,
        beta: float = 1.0,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            {"beta": beta},
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )
