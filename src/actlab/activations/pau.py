r"""Padé Activation Units (PAU, "safe" version A), Molina, Schramowski, Kersting, ICLR 2020.

.. math::
    R(x) = \frac{P(x)}{Q(x)} = \frac{\sum_{j=0}^{m} a_j x^j}{1 + \sum_{k=1}^{n} |b_k|\,|x|^k}

(version A writes the denominator as :math:`1 + \sum_k |b_k x^k|`, the same thing.)

Numerics. x^5 overflows float32 above |x| ≈ 5e7, after which P/Q is ∞/∞. For
|x| > 1 every term is divided by |x|^n before it is formed: with t = 1/x,

    P/|x|^n = Σ_j a_j · x^j/|x|^n,   x^j/|x|^n = sign(x)^j · |x|^(j-n),
    Q/|x|^n = |t|^n + Σ_k |b_k| · |t|^(n-k),

so only powers of t (<= 1 in magnitude) and x^(j-n) with j > n (x itself for
degrees (5, 4)) appear. The value and every derivative are computed from the
same scaled monomials, so P/Q is finite wherever the true value is.

Derivatives (scale-free): R' = (P'Q - PQ')/Q², ∂R/∂a_j = x^j/Q,
∂R/∂b_k = -R·sign(b_k)·|x|^k/Q, each with numerator and denominator scaled alike.

Memory. The released CPU path stacks all powers and keeps 13-18× the input
for backward; the fused path here keeps the input only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources

import torch
from torch import Tensor

from ..base import Param, ParametricActivation, Real
from ..elementwise import ElementwiseOp, ParamLike, apply
from ..registry import ParameterInfo, register

__all__ = ["pau", "PAU", "pau_op", "pau_presets"]


class _Monomials:
    """x^p/s and |x|^p/s for the scale s = 1 (|x| <= 1) or |x|^n (|x| > 1).

    Powers are built by repeated multiplication and every monomial is kept once formed:
    ``Tensor.pow`` with an integer exponent above 3 is a libm ``pow`` call per element on
    the CPU, and eager ``torch.where`` costs about ten multiplications there; the value
    and the derivatives use each monomial several times. The two regimes are blended as
    inside·(1 - big) + outside·big: exact, because every monomial is finite in the regime it
    is not used in (x_in = 0 and x_out = 1 there), and in eager mode two to three times
    cheaper than ``where``.
    """

    def __init__(self, x: Tensor, n: int):
        self.n = n
        self.big = x.abs() > 1
        # Double-where: each regime only ever sees inputs from its own range.
        x_in = torch.where(self.big, torch.zeros_like(x), x)
        x_out = torch.where(self.big, x, torch.ones_like(x))
        t = 1 / x_out
        # x_out is never 0, so sign(x_out)^n is 1 for even n.
        self.sign_n = torch.sign(x_out) if n % 2 else None
        self._bases = {"x_in": x_in, "abs_in": x_in.abs(), "x_out": x_out, "t": t, "abs_t": t.abs()}
        self._powers: dict[tuple[str, int], Tensor] = {}  # also the blended monomials
        self._outside = self.big.to(x.dtype)
        self._inside = 1 - self._outside

    def _power(self, base: str, p: int) -> Tensor:
        if p == 1:
            return self._bases[base]
        if p == 0:
            return torch.ones_like(self._bases[base])
        key = (base, p)
        if key not in self._powers:
            self._powers[key] = self._power(base, p - 1) * self._bases[base]
        return self._powers[key]

    def _blend(self, inside: Tensor, outside: Tensor) -> Tensor:
        return inside * self._inside + outside * self._outside

    def _signed_n(self, value: Tensor) -> Tensor:
        return value if self.sign_n is None else self.sign_n * value

    def signed(self, p: int) -> Tensor:
        """x^p / s."""
        key = ("signed", p)
        if key not in self._powers:
            if p >= self.n:
                outside = self._signed_n(self._power("x_out", p - self.n))
            else:
                outside = self._signed_n(self._power("t", self.n - p))
            self._powers[key] = self._blend(self._power("x_in", p), outside)
        return self._powers[key]

    def absolute(self, p: int) -> Tensor:
        """|x|^p / s, for 0 <= p <= n."""
        key = ("absolute", p)
        if key not in self._powers:
            self._powers[key] = self._blend(self._power("abs_in", p), self._power("abs_t", self.n - p))
        return self._powers[key]


def _split(params: Sequence[Tensor], m: int) -> tuple[Sequence[Tensor], Sequence[Tensor]]:
    return params[: m + 1], params[m + 1 :]


def _scaled_parts(x: Tensor, m: int, n: int, params: Sequence[Tensor]):
    a, b = _split(params, m)
    mono = _Monomials(x, n)
    numerator = sum(a_j * mono.signed(j) for j, a_j in enumerate(a))
    denominator = mono.absolute(0) + sum(b_k.abs() * mono.absolute(k) for k, b_k in enumerate(b, start=1))
    return mono, a, b, numerator, denominator


# The degrees whose native CPU kernels kernels/elementwise_pau.c instantiates (PAU_KERNELS there):
# the presets' and the default. An entry without its kernels there fails at the op's first native call.
_NATIVE_DEGREES = ((3, 2), (4, 3), (5, 4), (6, 5))


@functools.cache
def pau_op(m: int, n: int) -> ElementwiseOp:
    """The :class:`ElementwiseOp` of a rational function of degrees (m, n)."""

    def forward(x: Tensor, *params: Tensor) -> Tensor:
        _, _, _, numerator, denominator = _scaled_parts(x, m, n, params)
        return numerator / denominator

    def derivatives(x: Tensor, *params: Tensor):
        mono, a, b, numerator, denominator = _scaled_parts(x, m, n, params)
        r = numerator / denominator
        d_numerator = sum(j * a_j * mono.signed(j - 1) for j, a_j in enumerate(a) if j > 0)
        d_denominator = torch.sign(x) * sum(k * b_k.abs() * mono.absolute(k - 1) for k, b_k in enumerate(b, start=1))
        d_x = (d_numerator - r * d_denominator) / denominator
        d_a = [mono.signed(j) / denominator for j in range(m + 1)]
        d_b = [-r * torch.sign(b_k) * mono.absolute(k) / denominator for k, b_k in enumerate(b, start=1)]
        return (d_x, *d_a, *d_b)

    names = tuple(f"a{j}" for j in range(m + 1)) + tuple(f"b{k}" for k in range(1, n + 1))
    # Short Horner chains and m + n + 1 gradient accumulators: four vectors per loop
    # iteration run out of registers (backward 3.7 → 5.0 × SiLU on AVX-512), two do not.
    native = "elementwise_pau" if (m, n) in _NATIVE_DEGREES else None
    return ElementwiseOp(f"pau_{m}_{n}", names, forward, derivatives, native=native, cpu_vectors=2)


@functools.cache
def pau_presets() -> dict:
    """Coefficient presets: ``{init name: {"m,n": {"numerator": [...], "denominator": [...], ...}}}``."""
    text = resources.files("actlab").joinpath("data/pau_presets.json").read_text(encoding="utf-8")
    return json.loads(text)["presets"]


def _preset(init: str, degrees: tuple[int, int]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    presets = pau_presets()
    key = f"{degrees[0]},{degrees[1]}"
    if init not in presets:
        raise ValueError(f"PAU: no coefficient preset named {init!r}; available: {', '.join(sorted(presets))}")
    if key not in presets[init]:
        have = ", ".join(sorted(presets[init]))
        raise ValueError(
            f"PAU: the {init!r} preset has no entry for degrees {degrees} (available: {have}); pass numerator= and "
            "denominator= explicitly or fit one with actlab.fit"
        )
    entry = presets[init][key]
    return tuple(entry["numerator"]), tuple(entry["denominator"])


def pau(
    x: Tensor,
    numerator: Sequence[ParamLike],
    denominator: Sequence[ParamLike],
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Rational function P/Q (version A). ``numerator`` = (a_0..a_m), ``denominator`` = (b_1..b_n).

    Each coefficient is a number, a scalar tensor or a per-channel 1-D tensor.
    See :class:`PAU`.
    """
    m, n = len(numerator) - 1, len(denominator)
    if m < 0 or n < 1:
        raise ValueError("pau: the numerator needs at least one coefficient and the denominator at least one")
    return apply(pau_op(m, n), x, (*numerator, *denominator), channel_dim=channel_dim, backend=backend)


_DEFAULT_DEGREES = (5, 4)


@register(
    "pau",
    family="pau",
    formula="(a_0 + a_1·x + ... + a_m·x^m) / (1 + |b_1·x| + ... + |b_n·x^n|)",
    paper="Padé Activation Units: End-to-end Learning of Flexible Activation Functions in Deep Networks",
    arxiv="1907.06732",
    bounded_below=False,
    bounded_above=False,
    smooth=False,
    monotonic=False,
    provenance="official-code",
    notes="Safe PAU (version A), degrees (5, 4), initialised to leaky_relu(0.01) on [-3, 3] with the official coefficients.",
    aliases=("rational", "pade"),
)
class PAU(ParametricActivation):
    r"""Applies a Padé Activation Unit (learnable rational function, "safe" version A):

    .. math::
        R(x) = \frac{a_0 + a_1 x + \dots + a_m x^m}{1 + |b_1 x| + \dots + |b_n x^n|}

    The denominator is >= 1, so R has no poles. With the default degrees (5, 4)
    R grows linearly (like :math:`(a_5/|b_4|)\,x`) for large |x|.

    .. note::
        The default initialisation reproduces leaky ReLU (slope 0.01) on [-3, 3]
        with the coefficients of the official ``rational_activations`` package
        (max error ≈ 0.04 there). Other presets (``init="gelu"``, ...) are read
        from ``actlab/data/pau_presets.json``; explicit ``numerator``/
        ``denominator`` override the preset. :func:`actlab.fit` fits any target.
        PAU is not C¹ at 0 when b_1 ≠ 0 (|b_1 x| has a kink).

    Args:
        degrees (tuple[int, int]): (m, n), numerator and denominator degrees. Default: (5, 4)
        init (str): name of a coefficient preset. Default: ``"leaky_relu"``
        numerator (sequence of float, optional): a_0..a_m, overriding the preset.
        denominator (sequence of float, optional): b_1..b_n, overriding the preset.
        num_parameters (int): 1 (one rational function per layer, as the paper) or
            the number of channels. Default: 1
        channel_dim (int): the channel axis of the input. Default: 1
        trainable (bool): learn the coefficients (else constant buffers). Default: ``True``
        device, dtype: factory arguments for the parameters.

    Shape:
        - Input: :math:`(*)`, with the channel axis at ``channel_dim`` when ``num_parameters > 1``.
        - Output: :math:`(*)`, same shape as the input.

    Attributes:
        numerator: learnable tensor of shape ``(num_parameters, m + 1)``.
        denominator: learnable tensor of shape ``(num_parameters, n)``.

    Examples::

        >>> m = actlab.PAU()
        >>> y = m(torch.randn(4, 8))

    Reference:
        Molina, Schramowski, Kersting. "Padé Activation Units: End-to-end Learning of
        Flexible Activation Functions in Deep Networks". ICLR 2020. arXiv:1907.06732.
        Code: ``ml-research/rational_activations``.
    """

    params = (
        Param("numerator", (0.02979, 0.61837, 2.32331, 3.05194, 1.48542, 0.25102), Real()),
        Param("denominator", (-1.14195, 4.39316, 0.87147, 0.34720), Real()),
    )

    def __init__(
        self,
        degrees: tuple[int, int] = _DEFAULT_DEGREES,
        init: str = "leaky_relu",
        numerator: Sequence[float] | None = None,
        denominator: Sequence[float] | None = None,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        degrees = tuple(degrees)
        if len(degrees) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) for d in degrees):
            raise ValueError(f"PAU: degrees must be a pair of integers (m, n), got {degrees!r}")
        m, n = degrees
        if m < 0 or n < 1:
            raise ValueError(f"PAU: degrees must satisfy m >= 0 and n >= 1, got {degrees}")
        if numerator is None or denominator is None:
            preset_num, preset_den = _preset(init, degrees)
            numerator = preset_num if numerator is None else numerator
            denominator = preset_den if denominator is None else denominator
        if len(numerator) != m + 1 or len(denominator) != n:
            raise ValueError(
                f"PAU: degrees {degrees} need {m + 1} numerator and {n} denominator coefficients, "
                f"got {len(numerator)} and {len(denominator)}"
            )
        self.degrees = degrees
        self.init = init
        self.op = pau_op(m, n)
        super().__init__(
            {"numerator": tuple(numerator), "denominator": tuple(denominator)},
            params=(Param("numerator", tuple(numerator), Real()), Param("denominator", tuple(denominator), Real())),
            num_parameters=num_parameters,
            channel_dim=channel_dim,
            trainable=trainable,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def parameter_infos(cls):
        return (
            ParameterInfo("degrees", _DEFAULT_DEGREES, "m >= 0, n >= 1", False),
            ParameterInfo("init", "leaky_relu", "preset name", False),
            ParameterInfo("numerator", cls.params[0].default, "real", True),
            ParameterInfo("denominator", cls.params[1].default, "real", True),
        )

    def op_params(self) -> tuple[Tensor, ...]:
        return (*self.numerator.unbind(-1), *self.denominator.unbind(-1))

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, init={self.init!r}, " + super().extra_repr()
