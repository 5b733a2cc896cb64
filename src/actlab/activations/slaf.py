"""SLAF: self-learnable activation functions, a learned weighted sum of basis functions.

Goyal, Goyal & Lall, "Learning Activation Functions: A new paradigm for understanding
Neural Networks", arXiv:1906.09529. Official code: ``mohit1997/PAF`` (TensorFlow 1.x).

An activation is ``y = sum_i w_i * g_i(x) + b`` with learned coefficients ``w`` and bias
``b``. What ``g_i`` is, and how it is kept numerically tame, is chosen by ``basis`` and
``normalize``:

==========  ===============  ==================================================================
basis       normalize        routine
==========  ===============  ==================================================================
taylor      ``True``         official "SLAF" curve (``taylor_batch_norm.py``): each power x^i,
                             i = 1..k, batch-normalised without affine parameters
taylor      ``"max"``        official max-scaling routine (``taylor_max.py``): powers of
                             x / (m * M + n), M = running max of |x|
taylor      ``False``        plain polynomial (what the third-party ports implement)
chebyshev   ``"max"``        **project design** (no code exists): T_i(x / (m * M + n))
fourier     ``"max"``        official EMFN routine (``emfn.py``, commit 368ab79): sin((2j-1) pi
                             x^ / 2), cos(j pi x^), x^ = x / (m * max_sample |x| + n)
==========  ===============  ==================================================================

The *reference* path is plain PyTorch differentiated by autograd (it keeps every basis
element for backward: about 3k input-sized tensors). The fast paths are
``torch.autograd.Function``s that save only the input (plus per-channel statistics and
coefficients) and recompute the basis in backward, with the closed-form batch-norm backward
per basis element. Their passes over the input run either as eager PyTorch ops (``"fused"``)
or as inductor kernels (``"compiled"``: the statistics of every basis element in one loop,
the output in another), from the same functions; for the normalised power basis on float32 CPU
inputs also as actlab's C loops (``"native"``, :mod:`actlab.activations.slaf_native`).
``backend="auto"`` (the default) takes the C loops where they apply from
:data:`actlab.kernels.dispatch.NATIVE_THRESHOLD` elements, otherwise compiles from
:func:`compile_threshold` elements on CPU and CUDA, and stays eager below, under
``torch.compile`` and for empty inputs (:func:`actlab.kernels.dispatch.choose`).

Numerical safety of the normalised power basis: the variance of x^k overflows float32 for
|x| > 3.4e38^(1/2k) (k = 8: |x| > 257). Batch normalisation of a power is scale invariant,
``BN((x/s)^i) = BN(x^i)`` when the epsilon is scaled by s^-2i, so the powers are computed on
``x / s`` with s a power of two per statistics group (exact, no rounding) chosen from the
batch maximum in training and from the running statistics in evaluation. The running
statistics are stored as mean and *standard deviation* of each power (``running_std``; the
official code stores the variance), which stays finite for |x|^k < 3.4e38 (k = 8: 6.6e4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..backend import check_backend, get_backend
from ..base import Activation, check_channel_arguments
from ..elementwise import compute_dtype, param_tensor
from ..kernels import dispatch
from ..registry import ParameterInfo, register

__all__ = ["SLAF", "SLAFChebyshev", "SLAFFourier", "slaf", "slaf_l1_penalty", "BASES"]

BASES = ("taylor", "chebyshev", "fourier")
_NORMALIZE_CHOICES = {"taylor": (True, "max", False), "chebyshev": ("max",), "fourier": ("max",)}
_DEFAULT_NORMALIZE = {"taylor": True, "chebyshev": "max", "fourier": "max"}
#: Initial value of the max-scaling slope m (official: 2 in both taylor_max.py and emfn.py).
SCALE_INIT = 2.0
#: Offset n of the max-scaling routines: fixed 1e-8 in taylor_max.py, trainable from 1 in emfn.py.
OFFSET_INIT = {"channel": 1e-8, "sample": 1.0}
#: Bias initial value in every official routine.
BIAS_INIT = 0.1
#: Official normalisation epsilon (``variance_epsilon=1e-8``) and running-average decay 0.99.
EPS = 1e-8
MOMENTUM = 0.01

Degree = int | Sequence[int]


# ---------------------------------------------------------------------------------------
# Basis functions: each yields (g_i(u), g_i'(u)) for i = 1..k, keeping O(1) tensors alive.
# ---------------------------------------------------------------------------------------
def _taylor_terms(u: Tensor, k: int, derivative: bool) -> Iterator[tuple[Tensor, Tensor | float | None]]:
    prev: Tensor | float = 1.0
    power = u
    for p in range(1, k + 1):
        if p > 1:
            power = prev * u
        yield power, (p * prev if derivative else None)
        prev = power


def _chebyshev_terms(u: Tensor, k: int, derivative: bool) -> Iterator[tuple[Tensor, Tensor | float | None]]:
    # T_{p+1} = 2u T_p - T_{p-1};  T'_{p+1} = 2 T_p + 2u T'_p - T'_{p-1}
    t_prev: Tensor | float = 1.0
    t = u
    d_prev: Tensor | float = 0.0
    d: Tensor | float = 1.0
    for p in range(1, k + 1):
        if p > 1:
            t_next = 2 * u * t - t_prev
            if derivative:
                d_next = 2 * t + 2 * u * d - d_prev
                d_prev, d = d, d_next
            t_prev, t = t, t_next
        yield t, (d if derivative else None)


def _fourier_terms(u: Tensor, sines: int, cosines: int, derivative: bool) -> Iterator[tuple[Tensor, Tensor | None]]:
    for j in range(1, sines + 1):
        a = (2 * j - 1) * math.pi / 2
        au = a * u
        yield torch.sin(au), (a * torch.cos(au) if derivative else None)
    for j in range(1, cosines + 1):
        b = j * math.pi
        bu = b * u
        yield torch.cos(bu), (-b * torch.sin(bu) if derivative else None)


def _fourier_terms_from_sine(
    u: Tensor, sines: int, cosines: int, derivative: bool
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """:func:`_fourier_terms` from one sine (and, for the derivatives, one cosine) of θ = πu/2.

    Every element is a Chebyshev polynomial of s = sin θ: sin((2j-1)θ) = (-1)^(j-1)·T_(2j-1)(s)
    and cos(2jθ) = (-1)^j·T_2j(s), with derivatives ±n·U_(n-1)(s)·cos θ·π/2. The fast paths use
    this form: the default EMFN basis (one sine, one cosine) then costs one transcendental in
    forward instead of two, and two in backward instead of four. The recurrences are stable for
    |s| <= 1; the reference keeps the direct sines and cosines.
    """
    theta = (math.pi / 2) * u
    s = torch.sin(theta)
    half_pi_cos = (math.pi / 2) * torch.cos(theta) if derivative else None
    n_max = max(2 * sines - 1, 2 * cosines)
    t = [torch.ones_like(s), s]  # T_0, T_1
    dt = [torch.ones_like(s)]  # U_0: T_n' = n·U_(n-1)
    for n in range(2, n_max + 1):
        t.append(2 * s * t[n - 1] - t[n - 2])
        if derivative:
            dt.append(2 * s * dt[n - 2] - (dt[n - 3] if n > 2 else 0.0))
    for n in [2 * j - 1 for j in range(1, sines + 1)] + [2 * j for j in range(1, cosines + 1)]:
        # sign: sines (n odd) (-1)^((n-1)/2); cosines (n even) (-1)^(n/2)
        sign = -1.0 if (n // 2) % 2 else 1.0
        yield sign * t[n], (sign * n * dt[n - 1] * half_pi_cos if derivative else None)


@dataclass(frozen=True)
class _Basis:
    """A basis choice: ``name`` and the number of elements (``sines`` split for fourier)."""

    name: str
    size: int
    sines: int = 0

    def terms(self, u: Tensor, derivative: bool = False, fast: bool = False):
        """(g_i(u), g_i'(u) or None) for i = 1..size; ``fast``: the fast paths' forms (fourier:
        :func:`_fourier_terms_from_sine`), the same functions computed differently."""
        if self.name == "taylor":
            return _taylor_terms(u, self.size, derivative)
        if self.name == "chebyshev":
            return _chebyshev_terms(u, self.size, derivative)
        fourier = _fourier_terms_from_sine if fast else _fourier_terms
        return fourier(u, self.sines, self.size - self.sines, derivative)


# ---------------------------------------------------------------------------------------
# Layout: which axes are reduced for statistics, and how per-channel vectors broadcast.
# ---------------------------------------------------------------------------------------
def _group_view(v: Tensor, x: Tensor, channel_dim: int, name: str) -> Tensor:
    """``v`` of shape (1,) or (C,) as a tensor broadcastable against ``x`` (keepdim layout)."""
    view = param_tensor(v, name, x, channel_dim)
    return view.reshape([1] * x.dim()) if view.dim() == 0 else view


def _stat_dims(x: Tensor, channel_dim: int, groups: int) -> tuple[int, ...]:
    if groups == 1:
        return tuple(range(x.dim()))
    cdim = channel_dim % x.dim()
    return tuple(d for d in range(x.dim()) if d != cdim)


def _sample_dims(x: Tensor) -> tuple[int, ...]:
    """EMFN takes its max over all features of each sample (dim 0 is the batch)."""
    return tuple(range(1, x.dim())) if x.dim() >= 2 else tuple(range(x.dim()))


def _sum_to(t: Tensor, like: Tensor) -> Tensor:
    """Reduce ``t`` to the broadcast shape of ``like`` and flatten it to ``like``'s numel."""
    return t.sum_to_size(like.shape).reshape(-1)


def _column(weight: Tensor, i: int, x: Tensor, channel_dim: int) -> Tensor:
    return _group_view(weight[:, i], x, channel_dim, "weight")


def _columns(weight: Tensor, x: Tensor, channel_dim: int) -> Tensor:
    """Every column of ``weight`` (P, k) as :func:`_column` views, stacked on a last axis of size k."""
    return torch.stack([_column(weight, i, x, channel_dim) for i in range(weight.shape[1])], -1)


def _horner(coefficients: list[Tensor], u: Tensor, constant: Tensor | float) -> Tensor:
    """constant + sum_p c_p u^p (p = 1..k) by Horner's scheme.

    One product and one sum per degree, and a value that overflows ends as ±inf: the
    summed form would add +inf and -inf terms (NaN) when odd and even powers overflow.
    """
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * u + c
    return acc * u + constant


def _horner_slope(coefficients: list[Tensor], u: Tensor) -> Tensor:
    """d/du of sum_p c_p u^p, by Horner's scheme."""
    scaled = [p * c for p, c in enumerate(coefficients, 1)]
    if len(scaled) == 1:
        return scaled[0].expand_as(u)
    return _horner(scaled[1:], u, scaled[0])


# ---------------------------------------------------------------------------------------
# Normalised power basis (basis="taylor", normalize=True)
# ---------------------------------------------------------------------------------------
def _batch_exponent(xc: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Per group e >= 0 with max|x| <= 2^e: the powers of x * 2^-e never exceed 1."""
    return exponent_of_max(xc.detach().abs().amax(dim=dims, keepdim=True))


def exponent_of_max(amax: Tensor) -> Tensor:
    """The smallest e >= 0 with 2^e >= amax (NaN for NaN): :func:`_batch_exponent` from a group's max |x|."""
    return torch.ceil(torch.log2(amax.clamp_min(1.0)))


def _running_exponent(mean1: Tensor, std1: Tensor) -> Tensor:
    """Evaluation-time scale exponent from the running statistics of x itself."""
    return torch.ceil(torch.log2((mean1.abs() + std1).clamp_min(1.0)))


def _hypot(a: Tensor, b: Tensor) -> Tensor:
    """sqrt(a^2 + b^2) for a, b >= 0 without overflow, in ops every exporter knows (ONNX has no hypot)."""
    m = torch.maximum(a, b).clamp_min(torch.finfo(a.dtype).tiny)
    return m * torch.sqrt((a / m) ** 2 + (b / m) ** 2)


def _powers(k: int, like: Tensor) -> Tensor:
    """The powers 1..k as a tensor of ``like``'s dtype and device: with an exponent given a trailing
    axis (``e.unsqueeze(-1)``), :func:`_root_eps` and :func:`_unscale` take every power in one call
    (per power, they were about forty small ops of a training call's fixed cost at k = 4)."""
    return torch.arange(1, k + 1, dtype=like.dtype, device=like.device)


def _root_eps(eps: float, exponent: Tensor, power: int | Tensor, dtype: torch.dtype) -> Tensor:
    """sqrt(eps) * 2^(-power*e): the epsilon of BN(x^p) in the scaled units, kept above 0."""
    floor = math.sqrt(torch.finfo(dtype).tiny)
    return (math.sqrt(eps) * torch.exp2(-power * exponent)).clamp_min(floor)


def _unscale(scaled: Tensor, exponent: Tensor, power: int | Tensor) -> Tensor:
    """scaled * 2^(power*e), saturated at the largest finite value instead of overflowing."""
    big = torch.finfo(scaled.dtype).max
    return torch.nan_to_num(scaled * torch.exp2(power * exponent), nan=0.0, posinf=big, neginf=-big)


def _eval_scaled_stats(
    running_mean: Tensor, running_std: Tensor, x: Tensor, channel_dim: int, eps: float, cd: torch.dtype
):
    """(exponent, mean'_p, denominator'_p) in scaled units from the running statistics, the last two
    with the powers on a last axis of size k."""
    k = running_mean.shape[1]
    rm = running_mean.to(cd)
    rs = running_std.to(cd)
    e = _running_exponent(
        _group_view(rm[:, 0], x, channel_dim, "running_mean"), _group_view(rs[:, 0], x, channel_dim, "running_std")
    )
    powers = _powers(k, e)
    factor = torch.exp2(-powers * e.unsqueeze(-1))
    means = rm.reshape(*e.shape, k) * factor
    denoms = _hypot(rs.reshape(*e.shape, k) * factor, _root_eps(eps, e.unsqueeze(-1), powers, cd))
    return e, means, denoms


def _stats_output(means: Tensor, stds: Tensor, e: Tensor) -> Tensor:
    """Batch statistics in raw units, shape (2, groups, k), for the running averages, from the
    scaled ones (powers on the last axis)."""
    k = means.shape[-1]
    powers = _powers(k, means)
    raw_mean = _unscale(means, e.unsqueeze(-1), powers).reshape(-1, k)
    raw_std = _unscale(stds, e.unsqueeze(-1), powers).reshape(-1, k)
    return torch.stack([raw_mean, raw_std])


def _normalised_power_terms(xc, k, running_mean, running_std, training, eps, channel_dim):
    """The k normalised powers BN(x^p) in plain PyTorch (autograd differentiates them).

    Returns the list of terms and, in training, the batch statistics (2, groups, k).
    """
    groups = running_mean.shape[0]
    dims = _stat_dims(xc, channel_dim, groups)
    if training:
        e = _batch_exponent(xc, dims)
    else:
        e, eval_means, eval_denoms = _eval_scaled_stats(running_mean, running_std, xc, channel_dim, eps, xc.dtype)
    u = xc * torch.exp2(-e)
    terms, means, stds = [], [], []
    power = u
    for p in range(1, k + 1):
        if p > 1:
            power = power * u
        if training:
            var, mean = torch.var_mean(power, dim=dims, correction=0, keepdim=True)
            means.append(mean.detach())
            stds.append(var.detach().sqrt())
            denom = torch.sqrt(var + _root_eps(eps, e, p, xc.dtype) ** 2)
        else:
            mean, denom = eval_means[..., p - 1], eval_denoms[..., p - 1]
        terms.append((power - mean) / denom)
    return terms, (_stats_output(torch.stack(means, -1), torch.stack(stds, -1), e) if training else None)


def _weighted_sum(terms: list[Tensor], weight: Tensor, bias: Tensor, xc: Tensor, channel_dim: int) -> Tensor:
    y = _group_view(bias, xc, channel_dim, "bias")
    for i, term in enumerate(terms):
        y = y + _column(weight, i, xc, channel_dim) * term
    return y.expand_as(xc)


# The fast paths of the normalised power basis run in three stages per direction: a pass
# over every element (the statistics or the gradient sums), arithmetic on the per-group
# values, and a second pass over every element (the output or the input gradient). The two
# passes are the eager or inductor kernels of :func:`_run`; the per-group arithmetic stays
# eager on purpose: inside one compiled graph inductor folds it (exp2, sqrt, divisions) into
# the per-element loop and recomputes it for every vector (evaluation forward at 2^22: 12.3 ms
# as one graph, 2.2 ms staged).
def _power_moments(x: Tensor, *, k: int, dims: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Training statistics: ``(e, means, variances)`` of u^p (p = 1..k, on the last axis) over
    ``dims`` (kept), with u = x·2^-e and 2^e >= max|x| per group."""
    xc = x.to(compute_dtype(x.dtype))
    e = _batch_exponent(xc, dims)
    u = xc * torch.exp2(-e)
    if torch.compiler.is_compiling():
        # Traced, the textbook two passes (the means, then the centred squares) become two
        # plain vectorised reductions over every power at once: 3.6 ms at 2^22 for k = 4,
        # against 6.1 ms for inductor's k Welford accumulators (same run). Eager, every power
        # would be a tensor of its own, so there each power gets var_mean's single pass.
        powers = [power for power, _ in _taylor_terms(u, k, False)]
        means = [power.mean(dim=dims, keepdim=True) for power in powers]
        variances = [(power - mean).square().mean(dim=dims, keepdim=True) for power, mean in zip(powers, means)]
        return e, torch.stack(means, -1), torch.stack(variances, -1)
    means, variances = [], []
    for power, _ in _taylor_terms(u, k, False):
        var, mean = torch.var_mean(power, dim=dims, correction=0, keepdim=True)
        means.append(mean)
        variances.append(var)
    return e, torch.stack(means, -1), torch.stack(variances, -1)


def _centred_power_sum(x: Tensor, inv_s: Tensor, means: Tensor, coefficients: Tensor, bias: Tensor, *, k: int):
    """Training output b + sum_p c_p·(u^p - mean_p), u = x·inv_s. Here |u| <= 1, and centring
    each power before scaling keeps the cancellation out of the large coefficients."""
    u = x.to(compute_dtype(x.dtype)) * inv_s
    y = bias
    for p, (power, _) in enumerate(_taylor_terms(u, k, False)):
        y = y + (power - means[..., p]) * coefficients[..., p]
    return y.to(x.dtype)


def _power_polynomial(x: Tensor, inv_s: Tensor, coefficients: Tensor, constant: Tensor, *, k: int) -> Tensor:
    """Evaluation output: the polynomial constant + sum_p c_p u^p, u = x·inv_s, by Horner's scheme
    (u is not bounded here, and Horner ends an overflow as ±inf, not NaN)."""
    u = x.to(compute_dtype(x.dtype)) * inv_s
    return _horner([coefficients[..., p] for p in range(k)], u, constant).to(x.dtype)


def _power_grad_sums(
    x: Tensor, grad: Tensor, inv_s: Tensor, means: Tensor, inv_denoms: Tensor, *, k: int, dims: tuple, powers: bool
):
    """Backward's pass over every element: sum g and, if ``powers``, sum g·N_p (p on the last
    axis) over ``dims`` (kept), with N_p = (u^p - mean_p)/d_p the normalised powers."""
    cd = compute_dtype(x.dtype)
    g = grad.to(cd)
    g_sum = g.sum(dim=dims, keepdim=True)
    if not powers:
        return g_sum, None
    u = x.to(cd) * inv_s
    sums = []
    for p, (power, _) in enumerate(_taylor_terms(u, k, False)):
        sums.append((g * ((power - means[..., p]) * inv_denoms[..., p])).sum(dim=dims, keepdim=True))
    return g_sum, torch.stack(sums, -1)


def _centred_power_sum_input_grad(
    x: Tensor,
    grad: Tensor,
    inv_s: Tensor,
    means: Tensor,
    inv_denoms: Tensor,
    alpha: Tensor,
    beta: Tensor,
    gamma: Tensor,
    *,
    k: int,
) -> Tensor:
    """Training dL/dx: the closed-form batch-norm backward of every power, summed,

        dL/dx = 2^-e · sum_p p·u^(p-1)/d_p · (g·w_p - mean(g·w_p) - N_p·mean(g·w_p·N_p)),

    with the per-group factors alpha_p = w_p/d_p, beta_p = mean(g·w_p)/d_p and
    gamma_p = mean(g·w_p·N_p)/d_p computed beforehand."""
    cd = compute_dtype(x.dtype)
    g = grad.to(cd)
    u = x.to(cd) * inv_s
    total: Tensor | float = 0.0
    for p, (power, slope) in enumerate(_taylor_terms(u, k, True)):  # slope: p·u^(p-1)
        n_p = (power - means[..., p]) * inv_denoms[..., p]
        total = total + (g * alpha[..., p] - beta[..., p] - n_p * gamma[..., p]) * slope
    return (total * inv_s).to(x.dtype)


def _power_polynomial_input_grad(x: Tensor, grad: Tensor, inv_s: Tensor, coefficients: Tensor, *, k: int) -> Tensor:
    """Evaluation dL/dx: g · d/du(sum_p c_p u^p) · 2^-e."""
    cd = compute_dtype(x.dtype)
    u = x.to(cd) * inv_s
    slope = _horner_slope([coefficients[..., p] for p in range(k)], u)
    return (grad.to(cd) * slope * inv_s).to(x.dtype)


class _NormalisedPowerSum(torch.autograd.Function):
    """sum_p w_p * BN(x^p) + b, saving only x (and per-group statistics) for backward.

    ``path`` is ``"fused"`` (eager) or ``"compiled"`` (inductor) for the passes over every
    element; see the stages above.
    """

    @staticmethod
    def forward(x, weight, bias, running_mean, running_std, training, eps, channel_dim, path, strict):
        cd = compute_dtype(x.dtype)
        k = weight.shape[1]
        cols = _columns(weight.to(cd), x, channel_dim)
        b = _group_view(bias.to(cd), x, channel_dim, "bias")
        if training:
            dims = _stat_dims(x, channel_dim, running_mean.shape[0])
            e, means, variances = _run(path, strict, "slaf_power_moments", _power_moments, (x,), {"k": k, "dims": dims})
            root_eps = _root_eps(eps, e.unsqueeze(-1), _powers(k, e), cd)
            # |u^p| <= 1 here, so var + eps' cannot overflow
            denoms = torch.sqrt(variances + root_eps**2)
            stats = _stats_output(means, variances.sqrt(), e)
            tensors = (x, torch.exp2(-e), means, cols / denoms, b)
            y = _run(path, strict, "slaf_power_centred", _centred_power_sum, tensors, {"k": k})
        else:
            e, means, denoms = _eval_scaled_stats(running_mean, running_std, x, channel_dim, eps, cd)
            # a polynomial in u with per-group coefficients w_p / d_p
            coefficients = cols / denoms
            constant = b - (coefficients * means).sum(-1)
            tensors = (x, torch.exp2(-e), coefficients, constant)
            y = _run(path, strict, "slaf_power_polynomial", _power_polynomial, tensors, {"k": k})
            stats = x.new_empty(0)
        return y, stats, means, denoms, e

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, running_mean, _, training, eps, channel_dim, path, strict = inputs
        _, stats, means, denoms, e = output
        ctx.mark_non_differentiable(stats, means, denoms, e)
        ctx.save_for_backward(x, weight, bias, means, denoms, e)
        groups = running_mean.shape[0]
        ctx.training, ctx.channel_dim = training, channel_dim
        ctx.dims = _stat_dims(x, channel_dim, groups)
        # the finest grouping of backward's sums: per channel if coefficients or statistics are
        ctx.sum_dims = _stat_dims(x, channel_dim, max(groups, weight.shape[0]))
        ctx.path, ctx.strict = path, strict

    @staticmethod
    def backward(ctx, grad, *_):
        x, weight, bias, means, denoms, e = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # create_graph=True: eager ops, which autograd records
        path = "fused" if torch.is_grad_enabled() else ctx.path
        cd = compute_dtype(x.dtype)
        k = weight.shape[1]
        cols = _columns(weight.to(cd), x, ctx.channel_dim)
        inv_s, inv_denoms = torch.exp2(-e), 1.0 / denoms
        grad_x = grad_w = grad_b = None
        powers = need_w or (need_x and ctx.training)
        if need_b or powers:
            static = {"k": k, "dims": ctx.sum_dims, "powers": powers}
            tensors = (x, grad, inv_s, means, inv_denoms)
            g_sum, gn_sums = _run(path, ctx.strict, "slaf_power_grad_sums", _power_grad_sums, tensors, static)
            if need_b:
                grad_b = g_sum.sum_to_size(_group_view(bias, x, ctx.channel_dim, "bias").shape).reshape(-1)
                grad_b = grad_b.to(bias.dtype)
            if need_w:
                grad_w = gn_sums.sum_to_size(cols.shape).reshape(weight.shape).to(weight.dtype)
        if need_x and ctx.training:
            count = math.prod([x.shape[d] for d in ctx.dims])
            # the group means of g·w_p and g·w_p·N_p, from the finer sums
            mean_gw = (cols * g_sum.unsqueeze(-1)).sum_to_size(means.shape) / count
            mean_gwn = (cols * gn_sums).sum_to_size(means.shape) / count
            tensors = (
                x,
                grad,
                inv_s,
                means,
                inv_denoms,
                inv_denoms * cols,
                inv_denoms * mean_gw,
                inv_denoms * mean_gwn,
            )
            static = {"k": k}
            grad_x = _run(path, ctx.strict, "slaf_power_input_grad", _centred_power_sum_input_grad, tensors, static)
        elif need_x:
            tensors = (x, grad, inv_s, cols * inv_denoms)
            grad_x = _run(
                path, ctx.strict, "slaf_polynomial_input_grad", _power_polynomial_input_grad, tensors, {"k": k}
            )
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


# ---------------------------------------------------------------------------------------
# Scaled (or raw) basis without per-element normalisation (normalize="max" or False)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scaling:
    """How x is scaled before the basis: ``none``, ``channel`` (MS routine) or ``sample`` (EMFN)."""

    mode: str
    training: bool = False

    @property
    def batch_max(self) -> bool:
        """Whether M is taken from the input (and so carries gradient), not from a buffer."""
        return self.mode == "sample" or (self.mode == "channel" and self.training)


def _max_dims(xc: Tensor, scaling: _Scaling, channel_dim: int, groups: int) -> tuple[int, ...]:
    return _sample_dims(xc) if scaling.mode == "sample" else _stat_dims(xc, channel_dim, groups)


def _max_value(xc, scaling, running_max, channel_dim):
    if scaling.batch_max:
        groups = 1 if running_max is None else running_max.numel()
        return xc.abs().amax(dim=_max_dims(xc, scaling, channel_dim, groups), keepdim=True)
    return _group_view(running_max.to(xc.dtype), xc, channel_dim, "running_max")


def _scaled_basis_terms(xc, scale, offset, running_max, basis, scaling, channel_dim):
    """The basis elements g_i(x / (m M + n)) in plain PyTorch, and the batch max (MS, training)."""
    stats = None
    u = xc
    if scaling.mode != "none":
        m = _max_value(xc, scaling, running_max, channel_dim)
        if scaling.mode == "channel" and scaling.training:
            stats = m.detach().reshape(-1)
        u = xc / (scale * m + offset)
    return [term for term, _ in basis.terms(u)], stats


def _basis_sum_forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    scale: Tensor | None,
    offset: Tensor | None,
    running_max: Tensor | None,
    *,
    basis: _Basis,
    scaling: _Scaling,
    channel_dim: int,
):
    """sum_i w_i g_i(x / (m M + n)) + b and what backward needs: (y, stats, M).

    ``stats`` is the batch max per group (max-scaling in training) or empty. The body of
    :class:`_ScaledBasisSum`'s forward, eager or compiled (:func:`_run`).
    """
    cd = compute_dtype(x.dtype)
    xc = x.to(cd)
    w = weight.to(cd)
    b = _group_view(bias.to(cd), xc, channel_dim, "bias")
    if scaling.mode == "none":
        u, m = xc, xc.new_ones(())
    else:
        m = _max_value(xc, scaling, running_max, channel_dim)
        u = xc / (scale.to(cd) * m + offset.to(cd))
    cols = [_column(w, i, xc, channel_dim) for i in range(basis.size)]
    if basis.name == "taylor":
        y = _horner(cols, u, b).expand_as(xc)
    else:
        y = b.expand_as(xc).clone()
        for col, (term, _) in zip(cols, basis.terms(u, fast=True)):
            y.add_(col * term)
    stats = m.reshape(-1).clone() if scaling.mode == "channel" and scaling.training else xc.new_empty(0)
    return y.to(x.dtype), stats, m


def _basis_sum_backward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    m: Tensor,
    grad: Tensor,
    *scale_offset: Tensor,
    basis: _Basis,
    scaling: _Scaling,
    channel_dim: int,
    needs: tuple[bool, bool, bool, bool, bool],
):
    """(grad_x, grad_weight, grad_bias, grad_scale, grad_offset) of :func:`_basis_sum_forward`.

    ``scale_offset`` is (m, n) unless ``scaling.mode`` is ``"none"``; entries not in ``needs`` are None.
    """
    need_x, need_w, need_b, need_scale, need_offset = needs
    cd = compute_dtype(x.dtype)
    xc = x.to(cd)
    g = grad.to(cd)
    w = weight.to(cd)
    if scaling.mode == "none":
        denom: Tensor | float = 1.0
        u = xc
    else:
        scale, offset = (t.to(cd) for t in scale_offset)
        denom = scale * m + offset
        u = xc / denom
    cols = [_column(w, i, xc, channel_dim) for i in range(basis.size)]
    grad_w = torch.zeros_like(w) if need_w else None
    need_slope = need_x or need_scale or need_offset
    slope = None
    if need_slope and basis.name == "taylor":
        slope = _horner_slope(cols, u)
    elif need_slope:
        slope = torch.zeros_like(xc)
    accumulate_slope = need_slope and basis.name != "taylor"
    if need_w or accumulate_slope:
        for i, (term, deriv) in enumerate(basis.terms(u, derivative=accumulate_slope, fast=True)):
            if need_w:
                grad_w[:, i] = _sum_to(g * term, cols[i])
            if accumulate_slope:
                slope.add_(cols[i] * deriv)
    grad_x = grad_scale = grad_offset = None
    if slope is not None:
        g_u = g * slope  # dL/du
        if scaling.mode == "none":
            grad_x = g_u
        else:
            grad_x = g_u / denom if need_x else None
            # u = x / (s M + n): dL/d(denominator) per max group
            g_denom = (g_u * u).sum_to_size(m.shape).neg() / denom
            if need_scale:
                grad_scale = (g_denom * m).sum().reshape(scale_offset[0].shape).to(scale_offset[0].dtype)
            if need_offset:
                grad_offset = g_denom.sum().reshape(scale_offset[1].shape).to(scale_offset[1].dtype)
            if need_x and scaling.batch_max:
                # M = max|x| over the group: its gradient goes to the arg-max elements
                # (shared equally among ties, as amax's own backward does).
                g_max = g_denom * scale
                hit = xc.abs() == m
                count = hit.to(cd).sum_to_size(m.shape)
                grad_x = grad_x + torch.where(hit, torch.sign(xc) * (g_max / count), 0.0)
        if grad_x is not None:
            grad_x = grad_x.to(x.dtype)
    grad_b = _sum_to(g, _group_view(bias, xc, channel_dim, "bias")).to(bias.dtype) if need_b else None
    if grad_w is not None:
        grad_w = grad_w.to(weight.dtype)
    return grad_x, grad_w, grad_b, grad_scale, grad_offset


class _ScaledBasisSum(torch.autograd.Function):
    """sum_i w_i g_i(x / (m M + n)) + b, saving only x (and the small M) for backward.

    ``path`` is ``"fused"`` (eager) or ``"compiled"`` (inductor; see :func:`_run`).
    """

    @staticmethod
    def forward(x, weight, bias, scale, offset, running_max, basis, scaling, channel_dim, path, strict):
        static = {"basis": basis, "scaling": scaling, "channel_dim": channel_dim}
        tensors = (x, weight, bias, scale, offset, running_max)
        return _run(path, strict, "slaf_basis_forward", _basis_sum_forward, tensors, static)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, scale, offset, _, basis, scaling, channel_dim, path, strict = inputs
        _, stats, m = output
        ctx.mark_non_differentiable(stats, m)
        tensors = [x, weight, bias, m]
        if scaling.mode != "none":
            tensors += [scale, offset]
        ctx.save_for_backward(*tensors)
        ctx.static = {"basis": basis, "scaling": scaling, "channel_dim": channel_dim}
        ctx.path, ctx.strict = path, strict

    @staticmethod
    def backward(ctx, grad, *_):
        x, weight, bias, m, *scale_offset = ctx.saved_tensors
        static = {**ctx.static, "needs": tuple(ctx.needs_input_grad[:5])}
        path = "fused" if torch.is_grad_enabled() else ctx.path
        tensors = (x, weight, bias, m, grad, *scale_offset)
        grads = _run(path, ctx.strict, "slaf_basis_backward", _basis_sum_backward, tensors, static)
        return (*grads, None, None, None, None, None, None)


# ---------------------------------------------------------------------------------------
# Paths: the Functions' bodies run eagerly ("fused") or as inductor kernels ("compiled")
# ---------------------------------------------------------------------------------------
def _kernel_key(tensors: Sequence[Tensor | None], static: dict) -> tuple:
    """What changes a traced graph besides sizes: the configuration, and per tensor its dtype,
    device, rank, which axes have length 1 (shared or per-channel) and whether it is contiguous."""
    layout = tuple(
        None if t is None else (t.dtype, t.device.type, tuple(n == 1 for n in t.shape), t.is_contiguous())
        for t in tensors
    )
    return (*sorted(static.items()), layout)


def _run(path: str, strict: bool, name: str, body: Callable, tensors: Sequence[Tensor | None], static: dict):
    """``body(*tensors, **static)``: eagerly, or for ``path="compiled"`` as an inductor kernel.

    Compiled, the whole body becomes a few loops (the statistics of every basis element in
    one pass, the output or gradients in another) instead of several eager kernels per
    element. A kernel that cannot be built raises (``strict``) or falls back to the eager
    body, as for the elementwise ops (:func:`actlab.kernels.dispatch.guarded`).
    """
    eager = lambda: body(*tensors, **static)
    if path == "native":
        from . import slaf_native

        def native_kernel():
            result = slaf_native.run(name, tensors, static)
            return eager() if result is None else result  # None: values the kernels do not take exactly

        return dispatch.guarded(path, strict, native_kernel, eager)
    if path != "compiled":
        return eager()
    from ..kernels import compiled

    def make() -> Callable:
        def kernel(*args: Tensor | None):
            return body(*args, **static)

        return kernel

    def run_compiled():
        with torch.autocast(tensors[0].device.type, enabled=False):
            return compiled.run(name, _kernel_key(tensors, static), make, tensors)

    return dispatch.guarded(path, strict, run_compiled, eager)


def compile_threshold() -> int:
    """Elements at or above which ``"auto"`` runs SLAF's compiled kernels: a quarter of
    :data:`actlab.kernels.dispatch.COMPILE_THRESHOLD` (so ``ACTLAB_COMPILE_THRESHOLD`` moves both).

    The eager path launches several kernels per basis element, so compiling repays sooner
    than for an elementwise op: at 2^18 elements a cold compile is repaid within about
    1,000-2,200 calls (``benchmarks/compile_threshold.py``, docs/performance.md).
    """
    return dispatch.COMPILE_THRESHOLD // 4


def _check_vectors(x: Tensor, channel_dim: int, **vectors: Tensor | None) -> None:
    """The shape errors of :func:`_group_view`, raised before any kernel is traced (a compiled
    kernel would report them as a failed build)."""
    for name, v in vectors.items():
        if v is not None:
            _group_view(v if v.dim() < 2 else v[:, 0], x, channel_dim, name)


# ---------------------------------------------------------------------------------------
# Functional form
# ---------------------------------------------------------------------------------------
def _check_input(x: object, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor input, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: input must be a floating-point tensor, got dtype {x.dtype}; convert it with x.float()"
        )


def _basis_of(basis: str, k: int, sines: int | None) -> _Basis:
    if basis not in BASES:
        raise ValueError(f"unknown SLAF basis {basis!r}; choose one of {', '.join(BASES)}")
    if basis == "fourier":
        sines = (k + 1) // 2 if sines is None else sines
        if not 0 <= sines <= k:
            raise ValueError(f"fourier basis: sines={sines} must lie in [0, {k}] (the number of coefficients)")
        return _Basis(basis, k, sines)
    return _Basis(basis, k)


def _scaling_mode(basis: str, normalize: bool | str) -> str:
    if normalize != "max":
        return "none"
    return "sample" if basis == "fourier" else "channel"


def slaf(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    *,
    basis: str = "taylor",
    normalize: bool | str = True,
    sines: int | None = None,
    running_mean: Tensor | None = None,
    running_std: Tensor | None = None,
    running_max: Tensor | None = None,
    scale: Tensor | None = None,
    offset: Tensor | None = None,
    training: bool = False,
    momentum: float = MOMENTUM,
    eps: float = EPS,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Functional SLAF (the module :class:`SLAF` holds the tensors and calls this).

    Like ``F.batch_norm``, the running statistics are updated in place when
    ``training`` is true.

    Args:
        x: input, floating point, any shape; ``channel_dim`` is its channel axis.
        weight: coefficients, shape ``(P, k)`` with P = 1 (shared) or C (per channel).
        bias: shape ``(P,)``.
        basis, normalize: see :class:`SLAF`.
        sines: fourier only: how many of the k coefficients belong to sines.
        running_mean, running_std: ``(G, k)`` statistics of each basis element
            (``normalize=True``), G = 1 (shared) or C (per channel).
        running_max: ``(G,)`` running max of |x| (``normalize="max"`` except fourier).
        scale, offset: the m and n of the max-scaling x / (m M + n), shape ``(1,)``.
        training: use batch statistics and update the running ones.
        momentum: weight of the batch in the running averages (official: 1 - 0.99).
        eps: added to the variance of each basis element (official: 1e-8).
        backend: ``"reference"`` (plain ops, autograd), ``"fused"`` (custom autograd
            Function, eager), ``"compiled"`` (the same Function with inductor kernels),
            ``"native"`` (with actlab's C kernels: ``normalize=True``, float32 on the CPU; see
            :mod:`actlab.activations.slaf_native`) or ``"auto"`` (native where those apply, from
            :data:`actlab.kernels.dispatch.NATIVE_THRESHOLD` elements; else compiled from
            :func:`compile_threshold` elements, else fused); ``None`` uses :func:`actlab.get_backend`.
    """
    _check_input(x, "slaf")
    if weight.dim() != 2:
        raise ValueError(f"slaf: weight must have shape (num_parameters, k), got {tuple(weight.shape)}")
    k = weight.shape[1]
    spec = _basis_of(basis, k, sines)
    _check_normalize(basis, normalize, "slaf")
    keeps_running = normalize is True or _scaling_mode(basis, normalize) == "channel"
    if training and keeps_running and dispatch.functorch_active():
        raise ValueError(
            "slaf: in training mode SLAF updates its running statistics in place, which torch.func "
            "transforms (vmap, grad, jvp, ...) cannot do (as for BatchNorm); "
            "call .eval() on the model inside the transform, or use normalize=False"
        )
    if x.numel() == 0:  # no values: no statistics to take or update
        return x.clone()
    requested = check_backend(backend) or get_backend()
    routine = "power" if normalize is True else ("emfn" if _scaling_mode(basis, normalize) == "sample" else None)
    if requested == "native" and routine is None:
        raise ValueError(
            "slaf: backend='native' has C kernels for the normalised power basis (basis='taylor', normalize=True) "
            "and the EMFN routine (basis='fourier', normalize='max') only; use backend='compiled' or 'auto'"
        )
    path = dispatch.choose("slaf", x, requested, threshold=compile_threshold(), native=routine is not None)
    auto_native = requested == "auto" and path in ("fused", "compiled") and dispatch.native_enabled()
    if routine is not None and (path == "native" or auto_native):
        path = _native_choice(x, weight, running_mean, channel_dim, path, routine, spec)
    fast = (path, requested != "auto")
    if path in ("compiled", "native"):
        _check_vectors(x, channel_dim, weight=weight, bias=bias, running_mean=running_mean, running_max=running_max)
    if normalize is True:
        if running_mean is None or running_std is None:
            raise ValueError("slaf: normalize=True needs running_mean and running_std of shape (groups, k)")
        if running_mean.shape != running_std.shape or running_mean.dim() != 2 or running_mean.shape[1] != k:
            raise ValueError(
                f"slaf: running_mean and running_std must both have shape (groups, {k}), "
                f"got {tuple(running_mean.shape)} and {tuple(running_std.shape)}"
            )
        if path != "reference":
            y, stats, *_ = dispatch.apply_function(
                _NormalisedPowerSum, x, weight, bias, running_mean, running_std, training, eps, channel_dim, *fast
            )
        else:
            xc = x.to(compute_dtype(x.dtype))
            terms, stats = _normalised_power_terms(xc, k, running_mean, running_std, training, eps, channel_dim)
            y = _weighted_sum(terms, weight.to(xc.dtype), bias.to(xc.dtype), xc, channel_dim).to(x.dtype)
        if training:
            _update_moments(running_mean, running_std, stats, momentum)
        return y
    scaling = _Scaling(_scaling_mode(basis, normalize), training)
    if scaling.mode != "none" and (scale is None or offset is None):
        raise ValueError("slaf: normalize='max' needs the scale m and offset n tensors")
    if scaling.mode == "channel" and running_max is None:
        raise ValueError("slaf: normalize='max' needs running_max of shape (groups,)")
    if path != "reference":
        y, stats, _ = dispatch.apply_function(
            _ScaledBasisSum, x, weight, bias, scale, offset, running_max, spec, scaling, channel_dim, *fast
        )
    else:
        xc = x.to(compute_dtype(x.dtype))
        cast = [None if t is None else t.to(xc.dtype) for t in (scale, offset)]
        terms, stats = _scaled_basis_terms(xc, *cast, running_max, spec, scaling, channel_dim)
        y = _weighted_sum(terms, weight.to(xc.dtype), bias.to(xc.dtype), xc, channel_dim).to(x.dtype)
    if scaling.mode == "channel" and training:
        with torch.no_grad():
            running_max.lerp_(stats.to(running_max.dtype).reshape(running_max.shape), momentum)
    return y


def _native_choice(
    x: Tensor, weight: Tensor, running_mean: Tensor | None, channel_dim: int, path: str, routine: str, basis: _Basis
) -> str:
    """The path once the C kernels of the normalised power basis (``routine="power"``) or of the
    EMFN routine (``"emfn"``) are considered: ``"native"`` where asked for (an error where they cannot
    take ``x``); otherwise (``"auto"``, outside traced code) wherever they apply from
    :data:`~actlab.kernels.dispatch.NATIVE_THRESHOLD` elements, as for the elementwise ops. They
    compile nothing per shape; one power-basis training call took 0.86 ms on 16 elements against the
    fused path's 0.74, 1.05 against 1.78 ms on 2^14, 11.9 against 329 ms on 2^22 (compiled: 14.1)."""
    from . import slaf_native

    if routine == "power":
        per_channel = weight.shape[0] > 1 or (running_mean is not None and running_mean.shape[0] > 1)
        applies = slaf_native.applies(x, channel_dim, per_channel, weight.shape[1])
        needs = (
            "per-channel values' channels not last in memory, e.g. (N, C, H, W) contiguous, or shared "
            f"coefficients and statistics, and a degree up to {slaf_native.MAX_DEGREE}"
        )
    else:
        applies = slaf_native.applies_basis(x, weight, basis)
        needs = f"coefficients shared by all channels (num_parameters=1) and at most {slaf_native.MAX_ORDER // 2} sines and cosines each"
    if path == "native":
        if not applies:
            raise ValueError(
                f"slaf: backend='native' cannot take this input (its C kernels need {needs}); use backend='auto'"
            )
        return path
    return "native" if applies and x.numel() >= dispatch.NATIVE_THRESHOLD else path


def _check_normalize(basis: str, normalize: object, who: str) -> None:
    # identity checks: 1 == True and 0 == False must not sneak through as booleans
    valid = any(normalize is v or (isinstance(v, str) and normalize == v) for v in _NORMALIZE_CHOICES[basis])
    if not valid:
        raise ValueError(f"{who}: " + _normalize_error(basis, normalize))


_NORMALIZE_HINTS = {
    "chebyshev": "the Chebyshev basis needs an input in [-1, 1], i.e. max-scaling; batch-normalised T_i would "
    "span the same functions as SLAF(basis='taylor', normalize=True), and T_i of the raw input the same as "
    "SLAF(normalize=False)",
    "fourier": "EMFN scales its input by the per-sample max (normalize='max'); sines of an unscaled input "
    "have no meaningful frequency, and batch-normalised sines are not an official routine",
}


def _normalize_error(basis: str, normalize: object) -> str:
    allowed = ", ".join(repr(v) for v in _NORMALIZE_CHOICES[basis])
    hint = f" ({_NORMALIZE_HINTS[basis]})" if basis in _NORMALIZE_HINTS else ""
    return f"SLAF basis {basis!r}: normalize must be one of {allowed}, got {normalize!r}{hint}"


@torch.no_grad()
def _update_moments(running_mean: Tensor, running_std: Tensor, stats: Tensor, momentum: float) -> None:
    """Official EMA of the mean and of the *variance* (std = sqrt of the averaged variance)."""
    batch_mean = stats[0].to(running_mean.dtype).reshape(running_mean.shape)
    batch_std = stats[1].to(running_std.dtype).reshape(running_std.shape)
    big = torch.finfo(running_std.dtype).max
    running_mean.lerp_(batch_mean, momentum).clamp_(-big, big)
    running_std.copy_(_hypot(running_std * math.sqrt(1 - momentum), batch_std * math.sqrt(momentum)).clamp_(max=big))


# ---------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------
InitSpec = str | Callable[[Tensor], Tensor] | None


class SLAF(Activation):
    r"""Self-learnable activation: a learned weighted sum of basis functions.

    .. math::
        \text{SLAF}(x) = \sum_{i=1}^{k} w_{c,i}\, N_i\big(g_i(\hat x)\big) + b_c

    With the defaults (``basis="taylor"``, ``normalize=True``) this is the official
    "SLAF" curve: g_i(x) = x^i and :math:`N_i(p) = (p - \mu_i)/\sqrt{\sigma_i^2 + 10^{-8}}`
    with the batch mean and (biased) variance of x^i over all axes except the channel
    axis in training, and running averages (decay 0.99) in evaluation; no affine
    parameters inside N_i. See the module docstring for the other routines.

    Args:
        basis: ``"taylor"`` (x^1..x^k, official), ``"chebyshev"`` (T_1..T_k of the
            max-scaled input; **project design**, the paper names a Chebyshev basis but no
            code exists) or ``"fourier"`` (the official EMFN basis).
        degree: k, the number of basis elements (and coefficients per channel). For
            ``"fourier"`` an int k means ceil(k/2) sines and floor(k/2) cosines, or pass
            ``(sines, cosines)``; the official EMFN default is ``(1, 1)``. Default: 4.
        normalize: ``True``: per-element batch normalisation (taylor only). ``"max"``:
            the input is divided by m * M + n before the basis, with m learnable
            (init 2); for taylor/chebyshev M is the max |x| of the batch per statistics
            group (training) or its running average (evaluation) and n = 1e-8 is fixed
            (``taylor_max.py``); for fourier M is the max |x| over all features of each
            sample and n is learnable (init 1), as in ``emfn.py``. ``False`` (taylor only): the
            plain polynomial. ``None`` (default): True for taylor, ``"max"`` otherwise.
        num_parameters: 1 (coefficients shared by all channels, the official dense-layer
            choice) or C (per channel, the official conv-layer choice). Default: 1.
        num_features: number of statistics groups along ``channel_dim`` for the
            normalisation statistics and the running max: 1 (shared) or C. The official
            code keeps statistics per channel (conv) and per neuron (dense) even when the
            coefficients are shared, i.e. ``num_features=C``. Default: ``num_parameters``.
        channel_dim: the channel axis: 1 for ``(N, C, ...)``, -1 for ``(N, L, C)``.
        init: ``"identity"`` (w = e_1 + N(0, init_std^2), bias 0.1: the official
            taylor_batch_norm.py initialisation), ``"normal"`` (w = N(0, init_std^2),
            bias 0.1: official taylor_max.py and emfn.py), or the name of a registered
            activation or a tensor function: the coefficients are then least-squares
            fitted to it on ``init_range`` (see :meth:`linear_fit`). ``None`` (default):
            ``"identity"`` for normalize=True and for chebyshev, ``"normal"`` for the
            official max-scaling and EMFN routines.
        init_range: the interval for ``init=<activation>``. Default: (-3, 3).
        init_std: standard deviation of the initial noise. Default: 1 (official; TF
            ``random_normal``).
        momentum: weight of each batch in the running statistics. Default: 0.01
            (official decay 0.99).
        eps: added to each element's variance. Default: 1e-8 (official).
        trainable: if False, coefficients, bias and scales are constant buffers.
        device, dtype: factory arguments.

    Shape:
        - Input: ``(*)``; with per-channel coefficients or statistics, the channel axis is
          ``channel_dim``. With ``normalize=True`` in training mode a statistics group with a
          single value normalises every power to 0 (output = bias), as the official code does
          (``nn.BatchNorm`` raises instead).
        - Output: same shape as the input.

    State:
        ``weight`` (num_parameters, k), ``bias`` (num_parameters,); ``scale`` and
        ``offset`` (1,) for ``normalize="max"``; buffers ``running_mean`` and
        ``running_std`` (num_features, k) for ``normalize=True`` (the official code keeps the
        variance; the standard deviation is stored because the variance of x^8 overflows
        float32 for |x| > 257), ``running_max`` (num_features,) for the max-scaling routine.

    Numerics: inputs are computed in float32 at least (half inputs are upcast inside).
    With ``normalize=True`` outputs and gradients are finite for any input whose k-th
    power is finite (float32, k = 8: |x| < 6.6e4), by exact power-of-two rescaling. With
    ``normalize=False`` the polynomial is evaluated as written: it overflows to ±inf
    where |x|^k exceeds the dtype's range (float32: |x| > 3.4e38^(1/k)). See docs/slaf.md.

    Examples::

        >>> act = SLAF(degree=4, num_parameters=16)          # per-channel, conv layer
        >>> y = act(torch.randn(8, 16, 32, 32))
        >>> dense = SLAF(degree=5, num_features=128)         # shared w, per-neuron stats
        >>> gelu_like = SLAF(degree=6, init="gelu")          # least-squares start

    Reference:
        Goyal, Goyal, Lall. Learning Activation Functions: A new paradigm for understanding
        Neural Networks. arXiv:1906.09529. Official code: github.com/mohit1997/PAF.
    """

    #: Not an elementwise function: in training an output depends on the batch statistics (or
    #: batch max) of its group, and EMFN's on the max of its sample. In evaluation mode the
    #: normalised and max-scaled taylor/chebyshev routines are elementwise.
    elementwise: ClassVar[bool] = False

    def __init__(
        self,
        basis: str = "taylor",
        degree: Degree = 4,
        normalize: bool | str | None = None,
        num_parameters: int = 1,
        channel_dim: int = 1,
        num_features: int | None = None,
        init: InitSpec = None,
        init_range: tuple[float, float] = (-3.0, 3.0),
        init_std: float = 1.0,
        momentum: float = MOMENTUM,
        eps: float = EPS,
        trainable: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if basis not in BASES:
            raise ValueError(f"{name}: unknown basis {basis!r}; choose one of {', '.join(BASES)}")
        self.basis = basis
        self.degree, sines = self._parse_degree(basis, degree)
        self._spec = _basis_of(basis, self.degree, sines)
        if normalize is None:
            normalize = _DEFAULT_NORMALIZE[basis]
        _check_normalize(basis, normalize, name)
        self.normalize = normalize
        for arg, value in (("num_parameters", num_parameters), ("num_features", num_features)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"{name}: {arg} must be a positive integer (1 = shared, C = per channel), got {value!r}"
                )
        num_features = num_parameters if num_features is None else num_features
        if num_parameters > 1 and num_features > 1 and num_parameters != num_features:
            raise ValueError(
                f"{name}: num_parameters={num_parameters} and num_features={num_features} both count channels "
                "and must agree (or one of them must be 1)"
            )
        check_channel_arguments(name, num_parameters, channel_dim, dtype)
        if not (isinstance(momentum, (int, float)) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"{name}: momentum must be a number in [0, 1], got {momentum!r}")
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise ValueError(f"{name}: eps must be a positive finite number, got {eps!r}")
        if not (isinstance(init_std, (int, float)) and init_std >= 0 and math.isfinite(init_std)):
            raise ValueError(f"{name}: init_std must be a finite number >= 0, got {init_std!r}")
        lo, hi = self._check_range(init_range)
        self.num_parameters = num_parameters
        self.num_features = num_features
        self.channel_dim = channel_dim
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.trainable = bool(trainable)
        self.init = self._check_init(init)
        self.init_range = (lo, hi)
        self.init_std = float(init_std)
        #: max |SLAF - target| on init_range after an ``init=<activation>`` fit (evaluation mode).
        self.init_fit_error: float | None = None
        self._scaling_mode = _scaling_mode(basis, normalize)

        factory = {"device": device, "dtype": dtype}
        self._add_tensor("weight", torch.empty(num_parameters, self.degree, **factory))
        self._add_tensor("bias", torch.empty(num_parameters, **factory))
        if self._scaling_mode != "none":
            self._add_tensor("scale", torch.empty(1, **factory))
            if self._scaling_mode == "sample":
                self._add_tensor("offset", torch.empty(1, **factory))
            else:
                self.register_buffer("offset", torch.empty(1, **factory))
        if normalize is True:
            self.register_buffer("running_mean", torch.empty(num_features, self.degree, **factory))
            self.register_buffer("running_std", torch.empty(num_features, self.degree, **factory))
        if self._scaling_mode == "channel":
            self.register_buffer("running_max", torch.empty(num_features, **factory))
        self.reset_parameters()

    # -- construction helpers -----------------------------------------------------------
    @staticmethod
    def _parse_degree(basis: str, degree: Degree) -> tuple[int, int | None]:
        if basis == "fourier" and isinstance(degree, (tuple, list)):
            if (
                len(degree) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in degree)
                or sum(degree) < 1
            ):
                raise ValueError(
                    f"SLAF: fourier degree must be an int >= 1 or a pair (sines, cosines) of ints >= 0, got {degree!r}"
                )
            return int(sum(degree)), int(degree[0])
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"SLAF: degree must be a positive integer (the number of basis elements), got {degree!r}")
        return degree, ((degree + 1) // 2 if basis == "fourier" else None)

    @staticmethod
    def _check_range(init_range) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in init_range)
        except (TypeError, ValueError):
            raise ValueError(f"SLAF: init_range must be a pair (low, high), got {init_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"SLAF: init_range must satisfy low < high (both finite), got {init_range!r}")
        return lo, hi

    def _check_init(self, init: InitSpec) -> InitSpec:
        if init is None:
            # the official max-scaling (taylor_max.py) and EMFN routines start from w ~ N(0, 1)
            official_normal = self.basis == "fourier" or (self.basis == "taylor" and self.normalize == "max")
            return "normal" if official_normal else "identity"
        if isinstance(init, str):
            if init in ("identity", "normal"):
                return init
            from ..registry import info

            info(init)  # unknown names fail now, with the registry's suggestions
            return init
        if callable(init):
            return init
        raise TypeError(
            f"SLAF: init must be 'identity', 'normal', an activation name or a tensor function, got {type(init).__name__}"
        )

    def _add_tensor(self, name: str, tensor: Tensor) -> None:
        if self.trainable:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    # -- state -----------------------------------------------------------------------------
    @torch.no_grad()
    def reset_running_stats(self) -> None:
        """Running statistics back to the official initial values: mean 0, std 1, max 1."""
        if self.normalize is True:
            self.running_mean.zero_()
            self.running_std.fill_(1.0)
        if self._scaling_mode == "channel":
            self.running_max.fill_(1.0)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise coefficients, bias, scales and running statistics from ``init``."""
        self.reset_running_stats()
        if self._scaling_mode != "none":
            self.scale.fill_(SCALE_INIT)
            self.offset.fill_(OFFSET_INIT[self._scaling_mode])
        self.init_fit_error = None
        if self.init in ("identity", "normal"):
            noise = torch.randn(self.weight.shape, dtype=self.weight.dtype, device=self.weight.device) * self.init_std
            if self.init == "identity":
                noise[:, 0] += 1.0
            self.weight.copy_(noise)
            self.bias.fill_(BIAS_INIT)
            return
        from ..fitting import fit

        _, self.init_fit_error = fit(self, self.init, x_range=self.init_range, method="lstsq")

    # -- fitting ---------------------------------------------------------------------------
    @torch.no_grad()
    def linear_fit(self, x: Tensor, y: Tensor) -> None:
        """Least-squares coefficients and bias so that the *evaluation-mode* SLAF fits y(x).

        SLAF is linear in (w, b) once the statistics are fixed, so the fit is exact
        least squares (float64). The statistics are first set to those of ``x`` taken as
        the reference input distribution: ``running_mean``/``running_std`` of each power
        (normalize=True) or ``running_max = max|x|`` (max-scaling); EMFN scales by the max
        of x as one sample. In evaluation mode the SLAF then reproduces the fit; in
        training mode it normalises with batch statistics, so it starts as the target only
        for batches distributed like ``x`` (for a uniform grid: uniform on its range).
        Every channel gets the same coefficients. Used by :func:`actlab.fit`.
        """
        grid = x.detach().reshape(-1).to("cpu", torch.float64)
        target = y.detach().reshape(-1).to("cpu", torch.float64)
        if grid.numel() != target.numel():
            raise ValueError(
                f"SLAF.linear_fit: x and y must have the same number of points, got {grid.numel()} and {target.numel()}"
            )
        if grid.numel() < self.degree + 1:
            raise ValueError(
                f"SLAF.linear_fit: need at least {self.degree + 1} points for {self.degree} coefficients and a bias"
            )
        self._set_reference_statistics(grid)
        columns = torch.stack(self._basis_columns(grid), dim=1)
        design = torch.cat([columns, torch.ones_like(grid)[:, None]], dim=1)
        from ..fitting import solve_least_squares

        solution = solve_least_squares(design, target)
        self.weight.copy_(solution[: self.degree].to(self.weight.dtype).expand_as(self.weight))
        self.bias.fill_(float(solution[self.degree]))

    def _set_reference_statistics(self, grid: Tensor) -> None:
        if self.normalize is True:
            unit = torch.ones(1, self.degree, dtype=grid.dtype)
            _, stats = _normalised_power_terms(grid, self.degree, unit, unit, True, self.eps, 0)
            self.running_mean.copy_(stats[0].expand_as(self.running_mean))
            self.running_std.copy_(stats[1].expand_as(self.running_std))
        elif self._scaling_mode == "channel":
            self.running_max.fill_(float(grid.abs().max()))

    def _basis_columns(self, grid: Tensor) -> list[Tensor]:
        """The evaluation-mode basis elements at the 1-D float64 ``grid`` (channel 0's statistics)."""
        dt = grid.dtype
        if self.normalize is True:
            stats = (self.running_mean[:1].to(dt), self.running_std[:1].to(dt))
            return _normalised_power_terms(grid, self.degree, *stats, False, self.eps, 0)[0]
        scale_offset = (None, None)
        if self._scaling_mode != "none":
            scale_offset = (self.scale.to(dt), self.offset.to(dt))
        running_max = self.running_max[:1].to(dt) if self._scaling_mode == "channel" else None
        scaling = _Scaling(self._scaling_mode, False)
        return _scaled_basis_terms(grid, *scale_offset, running_max, self._spec, scaling, 0)[0]

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return slaf(
            x,
            self.weight,
            self.bias,
            basis=self.basis,
            normalize=self.normalize,
            sines=self._spec.sines if self.basis == "fourier" else None,
            running_mean=getattr(self, "running_mean", None),
            running_std=getattr(self, "running_std", None),
            running_max=getattr(self, "running_max", None),
            scale=getattr(self, "scale", None),
            offset=getattr(self, "offset", None),
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
            channel_dim=self.channel_dim,
            backend=self._backend,
        )

    # -- regulariser -------------------------------------------------------------------------
    def l1_penalty(self, strength: float = 1e-4) -> Tensor:
        """``strength * sum|w|`` over the coefficients (not the bias): the paper's regulariser.

        The official hybrid experiment adds 1e-4 * sum|coeff| to the loss. Add the returned
        tensor to your loss explicitly; nothing is added behind your back.
        """
        return strength * self.weight.abs().sum()

    # -- metadata --------------------------------------------------------------------------
    @property
    def sines(self) -> int | None:
        """fourier: number of sine elements (the rest are cosines); None otherwise."""
        return self._spec.sines if self.basis == "fourier" else None

    def extra_repr(self) -> str:
        degree = (
            f"({self._spec.sines}, {self.degree - self._spec.sines})" if self.basis == "fourier" else str(self.degree)
        )
        parts = [
            f"basis={self.basis!r}",
            f"degree={degree}",
            f"normalize={self.normalize!r}",
            f"num_parameters={self.num_parameters}",
        ]
        if self.num_features != self.num_parameters:
            parts.append(f"num_features={self.num_features}")
        if self.channel_dim != 1:
            parts.append(f"channel_dim={self.channel_dim}")
        if not isinstance(self.init, str) or self.init not in ("identity", "normal"):
            parts.append(f"init={getattr(self.init, '__name__', self.init)!r}")
        if not self.trainable:
            parts.append("trainable=False")
        if self._backend is not None:
            parts.append(f"backend={self._backend!r}")
        return ", ".join(parts)


class SLAFChebyshev(SLAF):
    """SLAF on Chebyshev polynomials T_1..T_k of the max-scaled input (**project design**).

    The paper mentions a Chebyshev basis, but no code for it exists in any commit of the
    official repository (spec §5.3, [not retrieved]). This reconstruction is our own
    design, not checked against the paper: T_i(x^) with x^ = x / (m M + n) from the
    official max-scaling routine (m learnable, init 2; M the batch max |x| per statistics
    group in training, its running average in evaluation; n = 1e-8), so that x^ lies in
    [-1/2, 1/2] on training batches, inside the interval where T_i is bounded by 1.
    Arguments as :class:`SLAF` (without ``basis``); ``normalize`` must be ``"max"``: T_i of
    the raw input would be an ordinary polynomial (``SLAF(normalize=False)``).
    """

    def __init__(self, degree: Degree = 4, normalize: bool | str | None = "max", **kwargs) -> None:
        if "basis" in kwargs:
            raise TypeError("SLAFChebyshev: the basis is fixed to 'chebyshev'; use SLAF(basis=...) for another")
        super().__init__(basis="chebyshev", degree=degree, normalize=normalize, **kwargs)


class SLAFFourier(SLAF):
    """SLAF on the official EMFN Fourier basis (``emfn.py``, commit 368ab79 of mohit1997/PAF).

    y = sum_j w_j sin((2j-1) pi x^ / 2) + sum_j w'_j cos(j pi x^) + b with
    x^ = x / (m * max|x| + n), the max taken over all features of each sample (dim 0 is the
    batch; a 1-D input is one sample), m and n learnable (init 2 and 1), w ~ N(0, 1) and
    b = 0.1, the official defaults; ``degree=(1, 1)`` (one sine, one cosine) is the
    official default. The per-sample max makes each output depend on the other features
    of its sample, as in the official code. The meaning of the acronym EMFN was not
    retrieved. Arguments as :class:`SLAF` (without ``basis``).
    """

    def __init__(self, degree: Degree = (1, 1), normalize: bool | str | None = "max", **kwargs) -> None:
        if "basis" in kwargs:
            raise TypeError("SLAFFourier: the basis is fixed to 'fourier'; use SLAF(basis=...) for another")
        super().__init__(basis="fourier", degree=degree, normalize=normalize, **kwargs)


def slaf_l1_penalty(model: nn.Module, strength: float = 1e-4) -> Tensor:
    """Sum of :meth:`SLAF.l1_penalty` over every SLAF module in ``model`` (each once).

    Returns a scalar tensor (zero when the model has no SLAF) to add to the loss.
    """
    terms = [m.l1_penalty(strength) for m in model.modules() if isinstance(m, SLAF)]
    if not terms:
        param = next(model.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return torch.stack(terms).sum()


_PAPER = "Learning Activation Functions: A new paradigm for understanding Neural Networks"
_COMMON = {"family": "slaf", "paper": _PAPER, "arxiv": "1906.09529", "trainable": True}

register(
    "slaf",
    formula="y = sum_{i=1..k} w_i * (x^i - mu_i) / sqrt(sigma_i^2 + 1e-8) + b; mu_i, sigma_i^2: batch (train) or running (eval) statistics of x^i",
    parameters=(
        ParameterInfo("weight", "e_1 + N(0, 1), shape (num_parameters, k=4)", "real"),
        ParameterInfo("bias", BIAS_INIT, "real"),
    ),
    provenance="official-code",
    notes="Per-power batch normalisation without affine parameters, running averages with decay 0.99 "
    "(mohit1997/PAF taylor_batch_norm.py). Other official routines: SLAF(normalize='max') (taylor_max.py). "
    "Running statistics are stored as standard deviations; powers are computed on x / 2^e for range safety.",
    cls=SLAF,
    **_COMMON,
)
register(
    "slaf_chebyshev",
    formula="y = sum_{i=1..k} w_i * T_i(x / (m*M + n)) + b; M: batch max |x| (train) or running max (eval)",
    parameters=(
        ParameterInfo("weight", "e_1 + N(0, 1), shape (num_parameters, k=4)", "real"),
        ParameterInfo("bias", BIAS_INIT, "real"),
        ParameterInfo("scale", SCALE_INIT, "real"),
    ),
    provenance="reconstruction",
    notes="Project design, not checked against the paper: the paper mentions a Chebyshev basis but no code "
    "exists; Chebyshev polynomials of the input scaled by the official max-scaling routine.",
    cls=SLAFChebyshev,
    **_COMMON,
)
register(
    "slaf_fourier",
    formula="y = sum_j w_j sin((2j-1) pi x^/2) + sum_j v_j cos(j pi x^) + b; x^ = x / (m * max_sample|x| + n)",
    parameters=(
        ParameterInfo("weight", "N(0, 1), shape (num_parameters, 2)", "real"),
        ParameterInfo("bias", BIAS_INIT, "real"),
        ParameterInfo("scale", SCALE_INIT, "real"),
        ParameterInfo("offset", OFFSET_INIT["sample"], "real"),
    ),
    provenance="official-code",
    bounded_below=True,
    bounded_above=True,
    notes="The EMFN routine (mohit1997/PAF commit 368ab79, emfn.py): Fourier basis on the input divided by "
    "m times the max |x| over each sample's features plus n; k1 = k2 = 1 sines/cosines by default. "
    "The acronym EMFN is not expanded in any retrieved source.",
    cls=SLAFFourier,
    **_COMMON,
)
