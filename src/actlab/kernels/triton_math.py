"""The math of each elementwise op in Triton: one value and one derivatives function per op.

These mirror the ops' ``forward`` and ``derivatives`` (the torch truth in
``actlab/activations``) and are tested against them element by element, in
Triton's CPU interpreter and on CUDA. They differ in two ways only, both
deliberate:

* no double-``where``: nothing here is differentiated by autograd, so a branch
  may be computed on every input and the unused lanes discarded;
* only ``exp``, ``log``, ``erf``, ``sqrt``, ``sigmoid`` and arithmetic are used —
  the subset that both the CUDA backend and the CPU interpreter support
  (libdevice's ``log1p``/``erfc``/``expm1``/``tanh`` have no interpreter
  implementation). ``log1p`` and ``erfc`` are built from them below, accurate to
  about one float32 ulp.

``max(v, 0)`` is written ``where(v < 0, 0, v)`` throughout: ``tl.maximum``
does not propagate NaN on every backend, and NaN in must give NaN out.

Every function has the signature ``fn(x, params, META)``: ``x`` a float32 tile,
``params`` a tuple of float32 tensors broadcastable to it (in the op's
``param_names`` order), ``META`` an op-specific compile-time constant (the
numerator degree for PAU, unused elsewhere). ``*_value`` returns the value,
``*_partials`` the tuple ``(dy/dx, dy/dp_1, ...)``.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from ..elementwise import ElementwiseOp

__all__ = ["lookup"]

# Globals read inside @triton.jit code must be constexpr (the compiler rejects others;
# the interpreter does not, so tests also compile every kernel for a GPU target).
_TWO_OVER_SQRT_PI = tl.constexpr(2.0 / math.sqrt(math.pi))
_INV_SQRT2 = tl.constexpr(1.0 / math.sqrt(2.0))
_INV_SQRT_2PI = tl.constexpr(1.0 / math.sqrt(2.0 * math.pi))


# -- shared helpers ----------------------------------------------------------------------------


@triton.jit
def _relu(v):
    return tl.where(v < 0.0, 0.0, v)


@triton.jit
def _log1p_unit(t):
    """ln(1 + t) for t in [0, 1], to about 1 ulp (Kahan: the rounding of 1 + t is divided out)."""
    u = 1.0 + t
    d = u - 1.0
    return tl.where(d == 0.0, t, tl.log(u) * (t / d))


@triton.jit
def _softplus(x):
    """ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), never overflowing."""
    return _relu(x) + _log1p_unit(tl.exp(-tl.abs(x)))


@triton.jit
def _erfc(z):
    """erfc(z) with relative error < 1.2e-7 everywhere.

    1 - erf(z) below 0.5 (no cancellation there: erfc >= 0.47); above, the
    Chebyshev fit of Press et al., Numerical Recipes §6.2 (fractional error
    < 1.2e-7), which keeps full relative precision in the tail.
    """
    t = 1.0 / (1.0 + 0.5 * tl.abs(z))
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    tail = t * tl.exp(-z * z + poly)
    return tl.where(z > 0.5, tail, 1.0 - tl.math.erf(z))


@triton.jit
def _sign(v):
    return tl.where(v > 0.0, 1.0, tl.where(v < 0.0, -1.0, 0.0))


@triton.jit
def _clamp(v, lo, hi):
    return tl.where(v < lo, lo, tl.where(v > hi, hi, v))


# -- SRS ----------------------------------------------------------------------------------------


@triton.jit
def srs_value(x, params, META: tl.constexpr):
    alpha, beta = params[0], params[1]
    g = tl.exp(-tl.abs(x) / beta)
    xg = x * g
    # 1/(1/alpha + G/x) is exact for every x >= 0, as in activations/srs.py (_value)
    return tl.where(x < 0.0, xg / (xg / alpha + 1.0), 1.0 / (1.0 / alpha + g / x))


@triton.jit
def srs_partials(x, params, META: tl.constexpr):
    alpha, beta = params[0], params[1]
    g = tl.exp(-tl.abs(x) / beta)
    xg = x * g
    negative = x < 0.0
    d = tl.where(negative, xg / alpha + 1.0, x / alpha + g)
    d2 = d * d
    y = tl.where(negative, xg / d, 1.0 / (1.0 / alpha + g / x))
    y_over_alpha = y / alpha
    return (g + xg / beta) / d2, y_over_alpha * y_over_alpha, -(x * xg) / (beta * beta * d2)


# -- Serf and EELU ----------------------------------------------------------------------------------


@triton.jit
def serf_value(x, params, META: tl.constexpr):
    x = tl.where(x < -1e4, 0.0, x)
    return x * tl.math.erf(_softplus(x))


@triton.jit
def serf_partials(x, params, META: tl.constexpr):
    sp = _softplus(x)
    # x clamped as in activations/serf.py: the second term is its limit 0 at ±inf, not ∞·0
    return (tl.math.erf(sp) + _clamp(x, -1e4, 1e4) * tl.sigmoid(x) * (_TWO_OVER_SQRT_PI * tl.exp(-sp * sp)),)


@triton.jit
def eelu_value(x, params, META: tl.constexpr):
    x = tl.where(x > 1e4, 0.0, x)
    return -x * tl.math.erf(tl.exp(-tl.where(x < -30.0, -30.0, x)))


@triton.jit
def eelu_partials(x, params, META: tl.constexpr):
    xc = tl.where(x < -30.0, -30.0, x)
    w = tl.exp(-xc)
    # x clamped as in activations/eelu.py: the second term is its limit 0 at ±inf, not ∞·0
    return (-tl.math.erf(w) + _clamp(x, -30.0, 1e4) * (_TWO_OVER_SQRT_PI * tl.exp(-xc - w * w)),)


# -- Zorro family -----------------------------------------------------------------------------------


@triton.jit
def _zorro_parts(u, a, b):
    """Symmetric-Zorro at u: (Z, dZ/du, dZ/da, dZ/db, T, T', dT/da, dT/db, d) as in activations/zorro.py."""
    d_full = _relu(tl.abs(u - 0.5) - 0.5)
    limit = 1e4 / a
    d = tl.where(d_full > limit, limit, d_full)
    # one exponential per element, as activations/zorro.py's _fast_hump: c = e^{-ab}, E = e^{-a·d}
    c = tl.exp(-a * b)
    e = tl.exp(-a * d)
    q = 1.0 / (1.0 + c * e)
    h = (1.0 + c) * e * q
    t = d * h
    sigma_diff = c / (1.0 + c) - c * e * q
    dt_dd = h - a * q * t
    dt_da = -t * (d * q + b * sigma_diff)
    dt_db = -a * t * sigma_diff
    sign = _sign(u)
    outside = (u < 0.0) | (u > 1.0)
    z = _clamp(u, 0.0, 1.0) + sign * t
    dz_du = tl.where(outside, dt_dd, 1.0)
    return z, dz_du, sign * dt_da, sign * dt_db, t, dt_dd, dt_da, dt_db, d_full


@triton.jit
def zorro_value(x, params, META: tl.constexpr):
    return _zorro_parts(x, params[0], params[1])[0]


@triton.jit
def zorro_partials(x, params, META: tl.constexpr):
    parts = _zorro_parts(x, params[0], params[1])
    return parts[1], parts[2], parts[3]


@triton.jit
def zorro_asymmetric_value(x, params, META: tl.constexpr):
    negative = x < 0.0
    a = tl.where(negative, params[0], params[2])
    b = tl.where(negative, params[1], params[3])
    return _zorro_parts(x, a, b)[0]


@triton.jit
def zorro_asymmetric_partials(x, params, META: tl.constexpr):
    negative = x < 0.0
    a = tl.where(negative, params[0], params[2])
    b = tl.where(negative, params[1], params[3])
    parts = _zorro_parts(x, a, b)
    return (
        parts[1],
        tl.where(negative, parts[2], 0.0),
        tl.where(negative, parts[3], 0.0),
        tl.where(negative, 0.0, parts[2]),
        tl.where(negative, 0.0, parts[3]),
    )


@triton.jit
def zorro_sigmoid_value(x, params, META: tl.constexpr):
    return _zorro_parts(params[0] * x + 0.5, params[1], params[2])[0]


@triton.jit
def zorro_sigmoid_partials(x, params, META: tl.constexpr):
    slope = params[0]
    parts = _zorro_parts(slope * x + 0.5, params[1], params[2])
    return slope * parts[1], x * parts[1], parts[2], parts[3]


@triton.jit
def zorro_tanh_value(x, params, META: tl.constexpr):
    return 2.0 * _zorro_parts((params[0] * x + 1.0) * 0.5, params[1], params[2])[0] - 1.0


@triton.jit
def zorro_tanh_partials(x, params, META: tl.constexpr):
    slope = params[0]
    parts = _zorro_parts((slope * x + 1.0) * 0.5, params[1], params[2])
    return slope * parts[1], x * parts[1], 2.0 * parts[2], 2.0 * parts[3]


@triton.jit
def zorro_sloped_value(x, params, META: tl.constexpr):
    parts = _zorro_parts(x, params[0], params[1])
    growth = tl.where(x > 1.0, parts[8] - parts[4], 0.0)
    return parts[0] + params[2] * growth


@triton.jit
def zorro_sloped_partials(x, params, META: tl.constexpr):
    slope = params[2]
    parts = _zorro_parts(x, params[0], params[1])
    above = x > 1.0
    return (
        parts[1] + slope * tl.where(above, 1.0 - parts[5], 0.0),
        parts[2] - slope * tl.where(above, parts[6], 0.0),
        parts[3] - slope * tl.where(above, parts[7], 0.0),
        tl.where(above, parts[8] - parts[4], 0.0),
    )


# -- APA and AGLU ----------------------------------------------------------------------------------


@triton.jit
def _apa_parts(z, lam, kappa):
    """(p, dp/dz, dp/dlam, dp/dkappa), as in activations/apa.py."""
    u = _clamp(kappa * z, -1e30, 1e30) - tl.log(lam)
    log_p = -_softplus(-u) / lam
    p = tl.exp(log_p)
    s = tl.sigmoid(-u)
    sp_p = -lam * log_p * p
    return p, p * kappa * s / lam, (sp_p - p * s) / (lam * lam), p * z * s / lam


@triton.jit
def apa_value(x, params, META: tl.constexpr):
    return _apa_parts(x, params[0], params[1])[0]


@triton.jit
def apa_partials(x, params, META: tl.constexpr):
    parts = _apa_parts(x, params[0], params[1])
    return parts[1], parts[2], parts[3]


@triton.jit
def aglu_value(x, params, META: tl.constexpr):
    return x * _apa_parts(x, params[0], params[1])[0]


@triton.jit
def aglu_partials(x, params, META: tl.constexpr):
    parts = _apa_parts(x, params[0], params[1])
    return parts[0] + x * parts[1], x * parts[2], x * parts[3]


# -- SAU -----------------------------------------------------------------------------------------


@triton.jit
def _tail_and_density(x, sigma):
    """Φ(-x/σ) and φ(x/σ), exactly 0/1 and 0 beyond |x/σ| = 40 as in activations/sau.py."""
    z = x / sigma
    saturated = tl.abs(z) > 40.0
    tail = tl.where(saturated, tl.where(z < 0.0, 1.0, 0.0), 0.5 * _erfc(z * _INV_SQRT2))
    density = tl.where(saturated, 0.0, _INV_SQRT_2PI * tl.exp(-0.5 * z * z))
    return tail, density


@triton.jit
def sau_value(x, params, META: tl.constexpr):
    alpha, sigma = params[0], params[1]
    tail, density = _tail_and_density(x, sigma)
    return x * (1.0 - (1.0 - alpha) * tail) + (1.0 - alpha) * sigma * density


@triton.jit
def sau_partials(x, params, META: tl.constexpr):
    alpha, sigma = params[0], params[1]
    tail, density = _tail_and_density(x, sigma)
    return 1.0 - (1.0 - alpha) * tail, x * tail - sigma * density, (1.0 - alpha) * density


# -- Sqish ---------------------------------------------------------------------------------------


@triton.jit
def _sqish_gate(x, alpha, beta, gamma):
    w = _clamp(tl.log(beta) - 2.0 * gamma * (1.0 - alpha) * x, -1e30, 1e30)
    return tl.exp(-0.5 * _softplus(w)), w


@triton.jit
def sqish_value(x, params, META: tl.constexpr):
    alpha = params[0]
    s, w = _sqish_gate(x, alpha, params[1], params[2])
    return alpha * x + (1.0 - alpha) * x * s


@triton.jit
def sqish_partials(x, params, META: tl.constexpr):
    alpha, beta, gamma = params[0], params[1], params[2]
    s, w = _sqish_gate(x, alpha, beta, gamma)
    c = 1.0 - alpha
    xs_sig = x * s * tl.sigmoid(w)
    return (
        alpha + c * s + c * c * gamma * xs_sig,
        x * (1.0 - s) - c * gamma * x * xs_sig,
        -c * xs_sig / (2.0 * beta),
        c * c * x * xs_sig,
    )


# -- Swish ---------------------------------------------------------------------------------------


@triton.jit
def swish_value(x, params, META: tl.constexpr):
    return x * tl.sigmoid(params[0] * x)


@triton.jit
def swish_partials(x, params, META: tl.constexpr):
    beta = params[0]
    s = tl.sigmoid(beta * x)
    slope = s * (1.0 - s)
    return s + beta * x * slope, x * (x * slope)


# -- PAU (degrees (M, N) with M = META, N = number of params - M - 1) ---------------------------------


@triton.jit
def _powers(base, K: tl.constexpr):
    """(base^0, base^1, ..., base^K) by repeated multiplication."""
    out = (tl.full(base.shape, 1.0, tl.float32),)
    for k in tl.static_range(K):
        out = out + (out[k] * base,)
    return out


@triton.jit
def _pau_parts(x, params, M: tl.constexpr):
    """Scaled monomials and P/s, Q/s as in activations/pau.py (s = 1 inside [-1, 1], |x|^N outside)."""
    N: tl.constexpr = len(params) - M - 1
    TOP: tl.constexpr = M if M > N else N
    big = tl.abs(x) > 1.0
    x_in = tl.where(big, 0.0, x)
    x_out = tl.where(big, x, 1.0)
    t = 1.0 / x_out
    if N % 2 == 1:
        sign_n = tl.where(x_out < 0.0, -1.0, 1.0)
    else:
        sign_n = tl.full(x.shape, 1.0, tl.float32)
    inside = _powers(x_in, TOP)
    inside_abs = _powers(tl.abs(x_in), N)
    t_pow = _powers(t, N)
    t_abs_pow = _powers(tl.abs(t), N)
    x_pow = _powers(x_out, M - N if M > N else 0)
    signed = ()
    for j in tl.static_range(M + 1):
        if j >= N:
            outside = sign_n * x_pow[j - N]
        else:
            outside = sign_n * t_pow[N - j]
        signed = signed + (tl.where(big, outside, inside[j]),)
    absolute = ()
    for k in tl.static_range(N + 1):
        absolute = absolute + (tl.where(big, t_abs_pow[N - k], inside_abs[k]),)
    numerator = params[0] * signed[0]
    for j in tl.static_range(1, M + 1):
        numerator += params[j] * signed[j]
    denominator = absolute[0]
    for k in tl.static_range(1, N + 1):
        denominator += tl.abs(params[M + k]) * absolute[k]
    return signed, absolute, numerator, denominator


@triton.jit
def pau_value(x, params, META: tl.constexpr):
    signed, absolute, numerator, denominator = _pau_parts(x, params, META)
    return numerator / denominator


@triton.jit
def pau_partials(x, params, META: tl.constexpr):
    M: tl.constexpr = META
    N: tl.constexpr = len(params) - M - 1
    signed, absolute, numerator, denominator = _pau_parts(x, params, M)
    r = numerator / denominator
    d_numerator = tl.zeros(x.shape, tl.float32)
    for j in tl.static_range(1, M + 1):
        d_numerator += j * params[j] * signed[j - 1]
    d_denominator = tl.zeros(x.shape, tl.float32)
    for k in tl.static_range(1, N + 1):
        d_denominator += k * tl.abs(params[M + k]) * absolute[k - 1]
    out = ((d_numerator - r * _sign(x) * d_denominator) / denominator,)
    for j in tl.static_range(M + 1):
        out = out + (signed[j] / denominator,)
    for k in tl.static_range(1, N + 1):
        out = out + (-r * _sign(params[M + k]) * absolute[k] / denominator,)
    return out


# -- table ----------------------------------------------------------------------------------------

_FIXED = {
    name: (globals()[f"{name}_value"], globals()[f"{name}_partials"])
    for name in (
        "srs",
        "serf",
        "eelu",
        "zorro",
        "zorro_asymmetric",
        "zorro_sigmoid",
        "zorro_tanh",
        "zorro_sloped",
        "apa",
        "aglu",
        "sau",
        "sqish",
        "swish",
    )
}


def lookup(op: ElementwiseOp):
    """``(value_fn, partials_fn, META)`` for ``op``, or None if it has no Triton math."""
    if op.name in _FIXED:
        return (*_FIXED[op.name], 0)
    if op.name.startswith("pau_"):
        m = int(op.name.split("_")[1])
        return pau_value, pau_partials, m
    return None
