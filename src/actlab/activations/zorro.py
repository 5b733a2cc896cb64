r"""The Zorro family, arXiv:2409.19239 (Roodschild, Gotay-Sardiñas, Jimenez, Will).

Every member is built from one piece, a "hump" that leaves the linear segment
[0, 1] with slope 1 and decays back (so the function is C¹):

.. math::
    T_{a,b}(d) = d\,h(d),\qquad h(d) = k\,\sigma(-a(d + b)),\qquad k = 1 + e^{ab},

with d >= 0 the distance from [0, 1]. Symmetric-Zorro is

.. math::
    Z(x) = \mathrm{clamp}(x, 0, 1) + \mathrm{sign}(x)\,T_{a,b}\big(\max(|x - \tfrac12| - \tfrac12, 0)\big).

Numerics. k = 1 + e^{ab} overflows for ab > 88, and k·σ(...) would be ∞·0. We
use ``ln h = -a·d + softplus(-a·b) - softplus(-a·(d + b))`` (the equivalent
``softplus(ab) - softplus(a(d+b))`` loses precision through cancellation), which is
<= 0, so h never overflows. For a·d > 1e4 the hump is exactly 0 in float32 and
float64; d is capped there so that d·h is never ∞·0.

Derivatives (with q = σ(a(d + b)), σ_b = σ(-ab), σ_db = σ(-a(d + b))):

    T'(d)  = h - a·q·T
    ∂T/∂a  = -T·(d·q + b·(σ_b - σ_db))
    ∂T/∂b  = -a·T·(σ_b - σ_db)

One pair of helpers (:func:`_zorro_value`, :func:`_zorro_parts`) serves all five
members; the variants only change the input map and how parameters are routed.
Each member's value is written once over a hump function: the reference passes
:func:`_hump` (the softplus form above, which autograd differentiates finitely);
the fused paths pass :func:`_fast_hump`, the same quantities from one
exponential per element (c = e^{-ab}, E = e^{-a·d}), which the derivatives use
too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._math import softplus
from ..base import Param, ParametricActivation, Positive, Real, check_numbers
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import register

__all__ = [
    "zorro",
    "zorro_asymmetric",
    "zorro_sigmoid",
    "zorro_tanh",
    "zorro_sloped",
    "Zorro",
    "AsymmetricZorro",
    "SigmoidZorro",
    "TanhZorro",
    "SlopedZorro",
]

# a·d beyond which the hump underflows to exactly 0 in float32 and float64.
_HUMP_LIMIT = 1e4

_PAPER = "Zorro: A Flexible and Differentiable Parametric Family of Activation Functions That Extends ReLU and GELU"
_ARXIV = "2409.19239"


def _distance(u: Tensor) -> Tensor:
    """Distance of u from the linear segment [0, 1]."""
    return F.relu((u - 0.5).abs() - 0.5)


def _hump(d: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(T, h, d capped) for d >= 0."""
    d = torch.minimum(d, _HUMP_LIMIT / a)
    h = torch.exp(-a * d + softplus(-a * b) - softplus(-a * (d + b)))
    return d * h, h, d


def _fast_hump(d: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(T, h, d capped, q, σ_b - σ_db) for d >= 0, with one exponential per element.

    With c = e^{-ab} (per channel) and E = e^{-a·d}, both <= 1 so neither
    overflows: q = 1/(1 + c·E), σ_db = c·E·q, σ_b = c/(1+c), h = (1+c)·E·q.
    Where c underflows (ab > 88 in float32) this gives h = E, the exact limit.
    The reference (:func:`_hump`) is the form autograd differentiates finitely;
    this one is for the fused paths, which never differentiate the value.
    """
    d = torch.minimum(d, _HUMP_LIMIT / a)
    c = torch.exp(-a * b)
    e = torch.exp(-a * d)
    q = 1 / (1 + c * e)
    h = (1 + c) * e * q
    return d * h, h, d, q, c / (1 + c) - c * e * q


def _zorro_value(u: Tensor, a: Tensor, b: Tensor, hump=_hump) -> Tensor:
    return u.clamp(0, 1) + torch.sign(u) * hump(_distance(u), a, b)[0]


def _zorro_parts(u: Tensor, a: Tensor, b: Tensor):
    """Symmetric-Zorro at u and its partials: (Z, dZ/du, dZ/da, dZ/db, T, T', ∂T/∂a, ∂T/∂b, d)."""
    d_full = _distance(u)
    t, h, d, q, sigma_diff = _fast_hump(d_full, a, b)
    dt_dd = h - a * q * t
    dt_da = -t * (d * q + b * sigma_diff)
    dt_db = -a * t * sigma_diff
    sign = torch.sign(u)
    outside = (u < 0) | (u > 1)
    z = u.clamp(0, 1) + sign * t
    dz_du = torch.where(outside, dt_dd, torch.ones_like(u))
    return z, dz_du, sign * dt_da, sign * dt_db, t, dt_dd, dt_da, dt_db, d_full


# -- Symmetric-Zorro ------------------------------------------------------------------


def _sym_value(hump):
    def value(x, a, b):
        return _zorro_value(x, a, b, hump)

    return value


def _sym_derivatives(x, a, b):
    _, dz_du, dz_da, dz_db, *_ = _zorro_parts(x, a, b)
    return dz_du, dz_da, dz_db


ZORRO_OP = ElementwiseOp(
    "zorro", ("a", "b"), _sym_value(_hump), _sym_derivatives, value=_sym_value(_fast_hump), native="elementwise_zorro"
)

# -- Asymmetric-Zorro (reconstruction) --------------------------------------------------


def _sides(x, a_neg, b_neg, a_pos, b_pos):
    negative = x < 0
    return negative, torch.where(negative, a_neg, a_pos), torch.where(negative, b_neg, b_pos)


def _asym_value(hump):
    def value(x, a_neg, b_neg, a_pos, b_pos):
        _, a, b = _sides(x, a_neg, b_neg, a_pos, b_pos)
        return _zorro_value(x, a, b, hump)

    return value


def _asym_derivatives(x, a_neg, b_neg, a_pos, b_pos):
    negative, a, b = _sides(x, a_neg, b_neg, a_pos, b_pos)
    _, dz_du, dz_da, dz_db, *_ = _zorro_parts(x, a, b)
    zero = torch.zeros_like(dz_da)
    return (
        dz_du,
        torch.where(negative, dz_da, zero),
        torch.where(negative, dz_db, zero),
        torch.where(negative, zero, dz_da),
        torch.where(negative, zero, dz_db),
    )


ZORRO_ASYMMETRIC_OP = ElementwiseOp(
    "zorro_asymmetric",
    ("a_neg", "b_neg", "a_pos", "b_pos"),
    _asym_value(_hump),
    _asym_derivatives,
    value=_asym_value(_fast_hump),
    native="elementwise_zorro",
)

# -- Sigmoid-Zorro: Z(slope·x + 1/2) -------------------------------------------------------


def _sigmoid_value(hump):
    def value(x, slope, a, b):
        return _zorro_value(slope * x + 0.5, a, b, hump)

    return value


def _sigmoid_derivatives(x, slope, a, b):
    _, dz_du, dz_da, dz_db, *_ = _zorro_parts(slope * x + 0.5, a, b)
    return slope * dz_du, x * dz_du, dz_da, dz_db


ZORRO_SIGMOID_OP = ElementwiseOp(
    "zorro_sigmoid",
    ("slope", "a", "b"),
    _sigmoid_value(_hump),
    _sigmoid_derivatives,
    value=_sigmoid_value(_fast_hump),
    native="elementwise_zorro",
)

# -- Tanh-Zorro: 2·Z((slope·x + 1)/2) - 1 ---------------------------------------------------


def _tanh_value(hump):
    def value(x, slope, a, b):
        return 2 * _zorro_value((slope * x + 1) * 0.5, a, b, hump) - 1

    return value


def _tanh_derivatives(x, slope, a, b):
    _, dz_du, dz_da, dz_db, *_ = _zorro_parts((slope * x + 1) * 0.5, a, b)
    return slope * dz_du, x * dz_du, 2 * dz_da, 2 * dz_db


ZORRO_TANH_OP = ElementwiseOp(
    "zorro_tanh",
    ("slope", "a", "b"),
    _tanh_value(_hump),
    _tanh_derivatives,
    value=_tanh_value(_fast_hump),
    native="elementwise_zorro",
)

# -- Sloped-Zorro (reconstruction): Z(x) + slope·[x > 1]·(d - T(d)) ---------------------------


def _sloped_value(hump):
    def value(x, a, b, slope):
        d = _distance(x)
        t = hump(d, a, b)[0]
        growth = torch.where(x > 1, d - t, torch.zeros_like(x))
        return x.clamp(0, 1) + torch.sign(x) * t + slope * growth

    return value


def _sloped_derivatives(x, a, b, slope):
    _, dz_du, dz_da, dz_db, t, dt_dd, dt_da, dt_db, d = _zorro_parts(x, a, b)
    above = x > 1
    zero = torch.zeros_like(x)
    return (
        dz_du + slope * torch.where(above, 1 - dt_dd, zero),
        dz_da - slope * torch.where(above, dt_da, zero),
        dz_db - slope * torch.where(above, dt_db, zero),
        torch.where(above, d - t, zero),
    )


ZORRO_SLOPED_OP = ElementwiseOp(
    "zorro_sloped",
    ("a", "b", "slope"),
    _sloped_value(_hump),
    _sloped_derivatives,
    value=_sloped_value(_fast_hump),
    native="elementwise_zorro",
)

# -- functional forms --------------------------------------------------------------------

_A, _B = Param("a", 1.2, Positive()), Param("b", 1.0, Positive())
_SYM_PARAMS = (_A, _B)
_ASYM_PARAMS = (
    Param("a_neg", 1.2, Positive()),
    Param("b_neg", 1.0, Positive()),
    Param("a_pos", 1.2, Positive()),
    Param("b_pos", 1.0, Positive()),
)
_SIGMOID_PARAMS = (Param("slope", 0.5, Positive()), Param("a", 4.0, Positive()), Param("b", 2.0, Positive()))
_TANH_PARAMS = (Param("slope", 1.0, Positive()), Param("a", 4.0, Positive()), Param("b", 2.0, Positive()))
_SLOPED_PARAMS = (_A, _B, Param("slope", 1.0, Real()))


def zorro(
    x: Tensor, a: ParamLike = 1.2, b: ParamLike = 1.0, *, channel_dim: int = 1, backend: str | None = None
) -> Tensor:
    """Symmetric-Zorro (a > 0, b > 0). See :class:`Zorro`."""
    check_numbers("zorro", _SYM_PARAMS, (a, b))
    return apply(ZORRO_OP, x, (a, b), channel_dim=channel_dim, backend=backend)


def zorro_asymmetric(
    x: Tensor,
    a_neg: ParamLike = 1.2,
    b_neg: ParamLike = 1.0,
    a_pos: ParamLike = 1.2,
    b_pos: ParamLike = 1.0,
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Asymmetric-Zorro (reconstruction). See :class:`AsymmetricZorro`."""
    values = (a_neg, b_neg, a_pos, b_pos)
    check_numbers("zorro_asymmetric", _ASYM_PARAMS, values)
    return apply(ZORRO_ASYMMETRIC_OP, x, values, channel_dim=channel_dim, backend=backend)


def zorro_sigmoid(
    x: Tensor,
    slope: ParamLike = 0.5,
    a: ParamLike = 4.0,
    b: ParamLike = 2.0,
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Sigmoid-Zorro: Z(slope·x + 1/2). See :class:`SigmoidZorro`."""
    check_numbers("zorro_sigmoid", _SIGMOID_PARAMS, (slope, a, b))
    return apply(ZORRO_SIGMOID_OP, x, (slope, a, b), channel_dim=channel_dim, backend=backend)


def zorro_tanh(
    x: Tensor,
    slope: ParamLike = 1.0,
    a: ParamLike = 4.0,
    b: ParamLike = 2.0,
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Tanh-Zorro: 2·Z((slope·x + 1)/2) - 1. See :class:`TanhZorro`."""
    check_numbers("zorro_tanh", _TANH_PARAMS, (slope, a, b))
    return apply(ZORRO_TANH_OP, x, (slope, a, b), channel_dim=channel_dim, backend=backend)


def zorro_sloped(
    x: Tensor,
    a: ParamLike = 1.2,
    b: ParamLike = 1.0,
    slope: ParamLike = 1.0,
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Sloped-Zorro (reconstruction). See :class:`SlopedZorro`."""
    check_numbers("zorro_sloped", _SLOPED_PARAMS, (a, b, slope))
    return apply(ZORRO_SLOPED_OP, x, (a, b, slope), channel_dim=channel_dim, backend=backend)


# -- modules -------------------------------------------------------------------------------

_COMMON_ARGS = r"""
        num_parameters (int): 1 (shared by the layer) or the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn the parameters (else constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when
          ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.
"""


class _ZorroBase(ParametricActivation):
    def __init__(self, values, *, num_parameters=1, channel_dim=1, trainable=True, device=None, dtype=None):
        super().__init__(
            values,
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )


@register(
    "zorro",
    family="zorro",
    formula="clamp(x,0,1) + sign(x)·d·(1+e^(ab))·σ(-a(d+b)),  d = max(|x-1/2|-1/2, 0)",
    paper=_PAPER,
    arxiv=_ARXIV,
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=False,
    provenance="official-code",
    notes=(
        "From co-author V. A. Jimenez's YOLOv5 code (a=1.2, b=1 fixed there). Trainable a, b (softplus-"
        "reparameterised) are an actlab extension; the paper's defaults were not retrieved."
    ),
    aliases=("zorro_symmetric", "symmetric_zorro"),
)
class Zorro(_ZorroBase):
    __doc__ = (
        r"""Applies Symmetric-Zorro element-wise:

    .. math::
        Z(x) = \begin{cases}
            k\,x\,\sigma(a(x - b)) & x < 0 \\
            x & 0 \le x \le 1 \\
            1 + k\,(x-1)\,\sigma(-a(x - 1 + b)) & x > 1
        \end{cases}
        \qquad k = 1 + e^{ab}

    ReLU-like on [0, 1] with slope 1, a Swish-like hump below 0 and a mirrored
    hump above 1; C¹ everywhere, point-symmetric about (1/2, 1/2) and **bounded**:
    Z → 0 as x → -∞ and Z → 1 as x → +∞ (it does not grow like ReLU; see
    :class:`SlopedZorro` for that). With (a, b) = (1.2, 1): minimum -0.361 at
    x = -0.92, maximum 1.361 at x = 1.92.

    .. note::
        Provenance: the formula and the defaults a = 1.2, b = 1 come from
        co-author V. A. Jimenez's code (`yolov5zorro`), where they are fixed
        constants. Learning them (``a = softplus(â)``, ``b = softplus(b̂)``, both
        kept > 0) is an actlab extension; the paper's own defaults were not read.

    Args:
        a (float): steepness of the humps, > 0. Default: 1.2
        b (float): shift of the humps, > 0. Default: 1.0
    """
        + _COMMON_ARGS
        + r"""
    Examples::

        >>> m = actlab.Zorro()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Roodschild, Gotay-Sardiñas, Jimenez, Will. "Zorro: A Flexible and
        Differentiable Parametric Family of Activation Functions That Extends ReLU
        and GELU". arXiv:2409.19239.
    """
    )

    op = ZORRO_OP
    params = _SYM_PARAMS

    def __init__(self, a: float = 1.2, b: float = 1.0, **kwargs) -> None:
        super().__init__({"a": a, "b": b}, **kwargs)


@register(
    "zorro_asymmetric",
    family="zorro",
    formula="Zorro with (a_neg, b_neg) for x < 0 and (a_pos, b_pos) for x > 1",
    paper=_PAPER,
    arxiv=_ARXIV,
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=False,
    provenance="reconstruction",
    notes="Reconstruction — not checked against the paper: the natural reading of 'independent parameters for the negative and positive regions'.",
    aliases=("asymmetric_zorro",),
)
class AsymmetricZorro(_ZorroBase):
    __doc__ = (
        r"""Applies Asymmetric-Zorro element-wise (**reconstruction — not checked against the paper**):

    .. math::
        Z(x) = \begin{cases}
            k_-\,x\,\sigma(a_-(x - b_-)) & x < 0 \\
            x & 0 \le x \le 1 \\
            1 + k_+\,(x-1)\,\sigma(-a_+(x - 1 + b_+)) & x > 1
        \end{cases}
        \qquad k_\pm = 1 + e^{a_\pm b_\pm}

    The paper's exact formula was not retrieved. This is the reading of the
    only available description ("independent parameters for the negative and
    positive regions beyond the linear segment", alphaXiv overview): Symmetric-
    Zorro with a separate (a, b) per side. With equal sides it is :class:`Zorro`.

    Args:
        a_neg, b_neg (float): hump parameters below 0, > 0. Default: 1.2, 1.0
        a_pos, b_pos (float): hump parameters above 1, > 0. Default: 1.2, 1.0
    """
        + _COMMON_ARGS
        + r"""
    Examples::

        >>> m = actlab.AsymmetricZorro(a_neg=2.0, b_neg=0.5)
        >>> y = m(torch.randn(4, 8))

    Reference:
        arXiv:2409.19239 (the form here is a reconstruction).
    """
    )

    op = ZORRO_ASYMMETRIC_OP
    params = _ASYM_PARAMS

    def __init__(
        self, a_neg: float = 1.2, b_neg: float = 1.0, a_pos: float | None = None, b_pos: float | None = None, **kwargs
    ) -> None:
        # The positive side defaults to the negative side's values: symmetric unless asked otherwise.
        values = {
            "a_neg": a_neg,
            "b_neg": b_neg,
            "a_pos": a_neg if a_pos is None else a_pos,
            "b_pos": b_neg if b_pos is None else b_pos,
        }
        super().__init__(values, **kwargs)


@register(
    "zorro_sigmoid",
    family="zorro",
    formula="Z(slope·x + 1/2)",
    paper=_PAPER,
    arxiv=_ARXIV,
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=False,
    provenance="official-code",
    notes="From the co-author's MATLAB code (zorro_sigm.m): u = s·x + 1/2, k = 1 + e^(ab); LSTM examples use s=0.5, a=4, k=1+e^8 (b=2).",
    aliases=("sigmoid_zorro",),
)
class SigmoidZorro(_ZorroBase):
    __doc__ = (
        r"""Applies Sigmoid-Zorro element-wise, a sigmoid-like member:

    .. math::
        f(x) = Z_{a,b}\!\left(s\,x + \tfrac12\right)

    where :math:`Z_{a,b}` is :class:`Zorro`. Linear with slope s around 0 (f(0) = 1/2),
    saturating to 0 and 1 through small humps. Equal to the co-author's MATLAB
    ``zorro_sigm`` with parameters (s, α = a, k = 1 + e^{ab}).

    Args:
        slope (float): s, slope of the linear segment, > 0. Default: 0.5
        a (float): hump steepness, > 0. Default: 4.0
        b (float): hump shift, > 0 (k = 1 + e^{ab}). Default: 2.0
    """
        + _COMMON_ARGS
        + r"""
    Examples::

        >>> m = actlab.SigmoidZorro()
        >>> y = m(torch.randn(4, 8))

    Reference:
        arXiv:2409.19239; V. A. Jimenez, `Zorro-activation-functions-in-LSTM`, ``source/zorro_sigm.m``.
    """
    )

    op = ZORRO_SIGMOID_OP
    params = _SIGMOID_PARAMS

    def __init__(self, slope: float = 0.5, a: float = 4.0, b: float = 2.0, **kwargs) -> None:
        super().__init__({"slope": slope, "a": a, "b": b}, **kwargs)


@register(
    "zorro_tanh",
    family="zorro",
    formula="2·Z((slope·x + 1)/2) - 1",
    paper=_PAPER,
    arxiv=_ARXIV,
    bounded_below=True,
    bounded_above=True,
    smooth=True,
    monotonic=False,
    provenance="official-code",
    notes="From the co-author's MATLAB code (zorro_tanh.m); LSTM examples use s=1, a=4, k=1+e^8 (b=2).",
    aliases=("tanh_zorro",),
)
class TanhZorro(_ZorroBase):
    __doc__ = (
        r"""Applies Tanh-Zorro element-wise, a tanh-like member:

    .. math::
        f(x) = 2\,Z_{a,b}\!\left(\frac{s\,x + 1}{2}\right) - 1

    Linear with slope s on [-1/s, 1/s] (f(0) = 0), saturating to ±1 through
    small humps. Equal to the co-author's MATLAB ``zorro_tanh`` with (s, α = a,
    k = 1 + e^{ab}).

    Args:
        slope (float): s, > 0. Default: 1.0
        a (float): hump steepness, > 0. Default: 4.0
        b (float): hump shift, > 0. Default: 2.0
    """
        + _COMMON_ARGS
        + r"""
    Examples::

        >>> m = actlab.TanhZorro()
        >>> y = m(torch.randn(4, 8))

    Reference:
        arXiv:2409.19239; V. A. Jimenez, `Zorro-activation-functions-in-LSTM`, ``source/zorro_tanh.m``.
    """
    )

    op = ZORRO_TANH_OP
    params = _TANH_PARAMS

    def __init__(self, slope: float = 1.0, a: float = 4.0, b: float = 2.0, **kwargs) -> None:
        super().__init__({"slope": slope, "a": a, "b": b}, **kwargs)


@register(
    "zorro_sloped",
    family="zorro",
    formula="Z(x) + slope·(x-1)·(1 - h(x-1)) for x > 1, Z(x) otherwise",
    paper=_PAPER,
    arxiv=_ARXIV,
    bounded_below=True,
    bounded_above=False,
    smooth=True,
    monotonic=False,
    provenance="reconstruction",
    notes=(
        "Reconstruction — not checked against the paper (only the name is known). Adds ReLU-like growth "
        "with the given slope beyond the linear segment, C¹ at x = 1; slope 0 gives Symmetric-Zorro."
    ),
    aliases=("sloped_zorro",),
)
class SlopedZorro(_ZorroBase):
    __doc__ = (
        r"""Applies Sloped-Zorro element-wise (**reconstruction — not checked against the paper**):

    .. math::
        f(x) = Z_{a,b}(x) + \mathrm{slope}\cdot\begin{cases} (x-1)\,\big(1 - h(x-1)\big) & x > 1 \\ 0 & x \le 1 \end{cases}

    with :math:`h(d) = k\,\sigma(-a(d + b))` the hump's decay (h(0) = 1). Only the
    name of this member is known ("extends ReLU and GELU"); this reading adds
    unbounded growth with slope ``slope`` beyond the linear segment while
    keeping C¹ continuity at x = 1 (the added term and its derivative vanish
    there). ``slope = 0`` gives :class:`Zorro`; ``slope = 1`` is the identity for
    x >= 0 with Zorro's Swish-like hump below 0, i.e. a GELU/Swish-shaped
    function.

    Args:
        a (float): hump steepness, > 0. Default: 1.2
        b (float): hump shift, > 0. Default: 1.0
        slope (float): growth rate beyond x = 1 (unconstrained). Default: 1.0
    """
        + _COMMON_ARGS
        + r"""
    Examples::

        >>> m = actlab.SlopedZorro()
        >>> y = m(torch.randn(4, 8))

    Reference:
        arXiv:2409.19239 (the form here is a reconstruction).
    """
    )

    op = ZORRO_SLOPED_OP
    params = _SLOPED_PARAMS

    def __init__(self, a: float = 1.2, b: float = 1.0, slope: float = 1.0, **kwargs) -> None:
        super().__init__({"a": a, "b": b, "slope": slope}, **kwargs)
