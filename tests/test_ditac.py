"""DiTAC (actlab.DiTAC / actlab.functional.ditac).

Oracles: RK4 integration of the velocity field (float64) with scipy's normal CDF,
torch's native GELU, finite differences, gradcheck, and the released code's
gradient emulated here from its description (spec §3.7).
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import signal
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import ndtr

import actlab
from actlab import cpab
from actlab.activations import ditac as ditac_module

from .repo_files import load

MODES = [("lut", "linear"), ("lut", "nearest"), ("exact", "linear")]


def _module(mode="lut", interp="linear", dtype=torch.float64, **kw):
    return actlab.DiTAC(mode=mode, lut_interp=interp, dtype=dtype, **kw)


def _rk4_transform(u: np.ndarray, theta: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """T(u) by RK4 on du/dt = v(u), v from A = B·θ (one field)."""
    cells = theta.shape[-1] + 1
    A = cpab.null_space_basis(cells) @ theta
    slopes, intercepts = A[0::2], A[1::2]

    def v(x):
        c = np.clip(np.floor(x * cells), 0, cells - 1).astype(int)
        return slopes[c] * x + intercepts[c]

    x = u.copy()
    for _ in range(int(round(1 / step))):
        k1 = v(x)
        k2 = v(x + step / 2 * k1)
        k3 = v(x + step / 2 * k2)
        k4 = v(x + step * k3)
        x = x + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _oracle(x: np.ndarray, theta: np.ndarray, a: float, b: float) -> np.ndarray:
    inside = (x >= a) & (x <= b)
    u = np.where(inside, (x - a) / (b - a), 0.0)
    x_tilde = np.where(inside, a + (b - a) * _rk4_transform(u, theta), x)
    return x_tilde * ndtr(x)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------
def test_exact_mode_matches_rk4_oracle():
    torch.manual_seed(0)
    for a, b in [(-0.5, 2.0), (0.5, 3.0)]:  # the second interval does not contain 0
        m = _module("exact", a=a, b=b)
        with torch.no_grad():
            m.theta.mul_(2.0)  # strong warps: several cell crossings
        x = torch.linspace(a - 1, b + 1, 301, dtype=torch.float64)
        expected = _oracle(x.numpy(), m.theta[0].detach().numpy(), a, b)
        np.testing.assert_allclose(m(x).detach().numpy(), expected, atol=1e-8, rtol=0)


def test_identity_init_is_gelu():
    x = torch.randn(1000) * 3
    m = _module("lut", dtype=torch.float32, init="identity")
    m.backend = "fused"  # the eager path: F.gelu itself, bitwise
    assert torch.equal(m(x), F.gelu(x))
    m.backend = None  # "auto": the C kernels compute GELU themselves, to float32 rounding
    x = torch.cat([x, torch.linspace(-10, 10, 20001)])
    truth = F.gelu(x.double())
    assert (m(x).double() - truth).abs().max() < 1e-6
    assert (m(x).double() - truth).abs().max() <= (F.gelu(x).double() - truth).abs().max()
    torch.testing.assert_close(
        _module("exact", dtype=torch.float32, init="identity")(x), F.gelu(x), atol=1e-6, rtol=1e-6
    )
    # The released code's nearest scheme quantises x̃ to the grid even at θ = 0.
    m = _module("lut", "nearest", dtype=torch.float64, init="identity")
    xd = x.double()
    step = (m.b - m.a) / (m.lut_size - 1)
    assert (m(xd) - F.gelu(xd)).abs().max() <= step / 2 + 1e-12


@pytest.mark.parametrize("mode,interp", MODES)
def test_gelu_outside_the_interval_and_continuity_at_the_ends(mode, interp):
    torch.manual_seed(1)
    m = _module(mode, interp)
    x = torch.cat([torch.linspace(-8, m.a - 1e-9, 50), torch.linspace(m.b + 1e-9, 8, 50)]).double()
    y = m(x)
    if mode == "lut" and interp == "linear":
        assert torch.equal(y, F.gelu(x))
    else:
        torch.testing.assert_close(y, torch.from_numpy(x.numpy() * ndtr(x.numpy())), atol=1e-15, rtol=1e-14)
    if interp == "linear":  # the staircase of the nearest scheme is continuous only up to its step
        for end in (m.a, m.b):
            delta = 1e-9
            around = m(torch.tensor([end - delta, end, end + delta], dtype=torch.float64))
            assert (around - around[1]).abs().max() < 1e-8


def test_lut_linear_error_within_the_interpolation_bound():
    """|E_lut - E| <= h²/8·max|E''| for the tabulated correction E = DiTAC - GELU,
    and |E_lut' - E'| <= h·max|E''| for its slope (h = (b - a)/(lut_size - 1))."""
    torch.manual_seed(2)
    lut, exact = _module("lut", lut_size=257), _module("exact")
    exact.load_state_dict(lut.state_dict())
    fine = torch.linspace(lut.a, lut.b, 20001, dtype=torch.float64)
    correction = (exact(fine) - F.gelu(fine)).detach()
    dx = (fine[1] - fine[0]).item()
    second = ((correction[2:] - 2 * correction[1:-1] + correction[:-2]) / dx**2).abs().max().item()
    h = (lut.b - lut.a) / (lut.lut_size - 1)
    x = (torch.rand(4000, dtype=torch.float64) * (lut.b - lut.a) + lut.a).requires_grad_()
    y_lut, y_exact = lut(x), exact(x)
    assert (y_lut - y_exact).abs().max() <= 1.02 * h * h / 8 * second
    (g_lut,) = torch.autograd.grad(y_lut.sum(), x)
    (g_exact,) = torch.autograd.grad(y_exact.sum(), x)
    assert (g_lut - g_exact).abs().max() <= 1.02 * h * second
    # θ-gradients: the interpolant of dE/dθ, so agreement to O(h²) relative.
    lut.zero_grad()
    exact.zero_grad()
    lut(x.detach()).sum().backward()
    exact(x.detach()).sum().backward()
    torch.testing.assert_close(lut.theta.grad, exact.theta.grad, rtol=1e-4, atol=1e-8)


def test_default_lut_error_is_small_in_float32():
    torch.manual_seed(3)
    lut, exact = actlab.DiTAC(), actlab.DiTAC(mode="exact", dtype=torch.float64)
    exact.load_state_dict({**exact.state_dict(), "theta": lut.theta.double()})
    x = torch.randn(10000) * 2
    assert (lut(x).double() - exact(x.double())).abs().max() < 2e-6


@pytest.mark.parametrize("mode,interp", MODES)
def test_monotone_warp(mode, interp):
    torch.manual_seed(4)
    m = _module(mode, interp)
    x = torch.linspace(m.a, m.b, 3001, dtype=torch.float64)
    x_tilde = m(x) / torch.special.ndtr(x)
    if interp == "nearest":
        assert (x_tilde.diff() >= -1e-12).all()
    else:
        assert (x_tilde.diff() > 0).all()


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------
def _off_knot_inputs(m, n, generator):
    """Inputs strictly inside LUT segments and away from cell vertices (the function is
    smooth there, so finite differences are meaningful)."""
    segments = torch.randint(1, m.lut_size - 2, (n,), generator=generator)
    offset = 0.25 + 0.5 * torch.rand(n, generator=generator, dtype=torch.float64)
    x = m.a + (segments + offset) * (m.b - m.a) / (m.lut_size - 1)
    outside = torch.tensor([m.a - 0.7, m.b + 0.9, -4.0, 5.0], dtype=torch.float64)
    return torch.cat([x, outside])


@pytest.mark.parametrize("mode", ["lut", "exact"])
@pytest.mark.parametrize("num_parameters", [1, 3])
def test_gradcheck(mode, num_parameters):
    g = torch.Generator().manual_seed(5)
    m = _module(mode, lut_size=64, num_parameters=num_parameters)
    x = _off_knot_inputs(m, 12, g)[-12:].reshape(4, 3).requires_grad_()
    theta = m.theta.detach().clone().requires_grad_()

    def f(x, theta):
        return actlab.functional.ditac(x, theta, m.a, m.b, mode=mode, lut_size=64)

    assert torch.autograd.gradcheck(f, (x, theta))
    if num_parameters == 1:  # double backward goes through the same code for any number of rows
        assert torch.autograd.gradgradcheck(f, (x, theta))


@pytest.mark.parametrize("mode,interp", MODES)
def test_custom_backward_matches_the_autograd_reference(mode, interp):
    torch.manual_seed(6)
    m = _module(mode, interp, num_parameters=4)
    x = torch.randn(5, 4, 7, dtype=torch.float64) * 2
    x[0, 0, :3] = torch.tensor([m.a, m.b, (m.a + m.b) / 2])
    grads = []
    for backend in ("fused", "reference"):
        m.backend = backend
        xi = x.clone().requires_grad_()
        y = m(xi)
        gy = torch.randn_like(y, generator=torch.Generator().manual_seed(0))
        gx, gt = torch.autograd.grad(y, (xi, m.theta), gy)
        grads.append((y.detach(), gx, gt))
    for fused, reference in zip(*grads):
        torch.testing.assert_close(fused, reference, atol=1e-12, rtol=1e-10)


def test_nearest_backward_is_the_released_straight_through_estimator():
    """grad_x = T'(u_j)·Φ(x) + x̃·φ(x) inside [a, b] with u_j the nearest grid point; grad_θ
    = Σ g·(b - a)·Φ(x)·dT(u_j)/dθ (the analytic derivatives at the grid point)."""
    torch.manual_seed(7)
    m = _module("lut", "nearest", lut_size=33)
    x = torch.linspace(m.a + 0.01, m.b - 0.01, 40, dtype=torch.float64).requires_grad_()
    y = m(x)
    gx, gt = torch.autograd.grad(y.sum(), (x, m.theta))
    u_j = ((x.detach() - m.a) / (m.b - m.a) * (m.lut_size - 1)).round() / (m.lut_size - 1)
    slopes, intercepts = cpab.velocity_coefficients(m.theta.detach(), m.vertex_map)
    jac = cpab.coefficient_jacobian(m.vertex_map)
    T, dT, dT_dtheta = cpab.integrate(u_j[None], slopes, intercepts, derivative=True, jacobian=jac)
    x_tilde = m.a + (m.b - m.a) * T[0]
    xd = x.detach()
    phi = torch.exp(-(xd**2) / 2) / math.sqrt(2 * math.pi)
    torch.testing.assert_close(y.detach(), x_tilde * torch.special.ndtr(xd), atol=1e-13, rtol=0)
    torch.testing.assert_close(gx, dT[0] * torch.special.ndtr(xd) + x_tilde * phi, atol=1e-12, rtol=1e-10)
    expected_theta = ((m.b - m.a) * torch.special.ndtr(xd)[:, None] * dT_dtheta.dense()[0]).sum(0)
    torch.testing.assert_close(gt[0], expected_theta, atol=1e-12, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Non-finite and extreme inputs, dtypes, autocast
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,interp", MODES)
def test_nan_inf_and_huge_inputs(mode, interp):
    torch.manual_seed(8)
    m = actlab.DiTAC(mode=mode, lut_interp=interp)
    big = [1e30, -1e30, 3.4e38, -3.4e38, 0.3, 1.0]
    x = torch.tensor(big + [float("nan"), float("inf"), float("-inf")], requires_grad=True)
    y = m(x)
    y.backward(torch.ones_like(y))
    assert torch.isfinite(y[:6]).all() and torch.isfinite(x.grad[:6]).all()
    assert y[:4].tolist() == [1e30, -0.0, 3.4e38, -0.0] or torch.allclose(
        y[:4], torch.tensor(big[:4]) * torch.tensor([1.0, 0, 1, 0])
    )
    assert y[6].isnan() and x.grad[6].isnan()
    # ±inf behave as x·Φ(x) does in torch: inf -> inf, -inf -> NaN (inf·0).
    ref = torch.tensor([float("inf"), float("-inf")]) * torch.special.ndtr(torch.tensor([float("inf"), float("-inf")]))
    torch.testing.assert_close(y[7:].detach(), ref, equal_nan=True)


def test_gelu_base_is_finite_where_the_native_vectorised_kernel_overflows():
    # 64 copies: long enough for ATen's vectorised loop, which (on some CPUs) gives inf for
    # 3.4e38 and NaN for +inf; the scalar loop, and x·Φ(x), give x and inf.
    values = torch.tensor([3.4e38, 2e38, -3.4e38, float("inf"), float("-inf"), float("nan"), 2.0, -3.0, 0.5])
    x = values.repeat_interleave(64)
    y = ditac_module._gelu(x).view(len(values), 64)
    assert (y == y[:, :1]).logical_or(y.isnan()).all()  # the same for every copy
    got = y[:, 0]
    assert torch.equal(got[:4], values[:4] * torch.tensor([1.0, 1, 0, 1]))  # x, x, -0.0, inf
    assert got[4].isnan() and got[5].isnan()  # -inf·Φ(-inf) = -inf·0
    torch.testing.assert_close(got[6:], F.gelu(values[6:].double()).float(), rtol=1e-6, atol=1e-7)
    finite = torch.linspace(-8, 8, 1001)  # no overflow: the native kernel's values, bit for bit
    assert torch.equal(ditac_module._gelu(finite), F.gelu(finite))


@pytest.mark.parametrize("mode,interp", MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(mode, interp, dtype):
    torch.manual_seed(9)
    m = actlab.DiTAC(mode=mode, lut_interp=interp)
    x = (torch.randn(200) * 2).to(dtype)
    y = m(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, m(x.float()).to(dtype))
    xr = x.clone().requires_grad_()
    m(xr).sum().backward()
    assert xr.grad.dtype == dtype and m.theta.grad.dtype == torch.float32


@pytest.mark.parametrize("mode,interp", MODES)
def test_autocast_cpu(mode, interp):
    torch.manual_seed(10)
    lin = torch.nn.Linear(8, 8)
    m = actlab.DiTAC(mode=mode, lut_interp=interp)
    x = torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        y = m(h)
        loss = y.float().sum() + 0.1 * m.regularization()
    assert h.dtype == torch.bfloat16 and y.dtype == torch.bfloat16
    torch.testing.assert_close(y, m(h.float()).to(torch.bfloat16))
    loss.backward()
    assert torch.isfinite(m.theta.grad).all() and m.theta.grad.abs().sum() > 0


def test_float64_module_and_mixed_dtypes():
    torch.manual_seed(11)
    m32 = actlab.DiTAC()
    m64 = copy.deepcopy(m32).double()
    x = torch.randn(100, dtype=torch.float64)
    assert m64(x).dtype == torch.float64
    torch.testing.assert_close(m32(x.float()).double(), m64(x), atol=1e-6, rtol=1e-5)
    # float64 input through a float32 module: computed in float64, θ gradient in float32.
    xr = x.clone().requires_grad_()
    y = m32(xr)
    y.sum().backward()
    assert y.dtype == torch.float64 and m32.theta.grad.dtype == torch.float32


# --------------------------------------------------------------------------------------------
# Parameters, channels, state, caching
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,interp", MODES)
@pytest.mark.parametrize("channel_dim", [1, -1])
def test_per_channel_theta_equals_separate_modules(mode, interp, channel_dim):
    torch.manual_seed(12)
    C = 3
    m = _module(mode, interp, num_parameters=C, channel_dim=channel_dim)
    x = torch.randn(4, C, 6, dtype=torch.float64) * 2
    if channel_dim == -1:
        x = x.transpose(1, 2).contiguous()
    y = m(x)
    for c in range(C):
        single = _module(mode, interp)
        single.load_state_dict({**single.state_dict(), "theta": m.theta[c : c + 1].detach()})
        xc = x.select(channel_dim, c)
        torch.testing.assert_close(y.select(channel_dim, c), single(xc), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="3 per-channel θ rows but the input has 5 channels"):
        m(torch.randn(2, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="no channel dimension"):
        m(torch.randn(5, dtype=torch.float64))


def test_parameters_buffers_and_state_dict():
    m = actlab.DiTAC(num_parameters=4, cells=6)
    assert isinstance(m.theta, torch.nn.Parameter) and m.theta.shape == (4, 5)
    # θ, plus the activation record every actlab activation writes (actlab.checkpoint); the
    # constant tables (vertex map, precision) are non-persistent buffers
    assert list(m.state_dict()) == ["theta", "_extra_state"]
    fixed = actlab.DiTAC(trainable=False)
    assert list(fixed.parameters()) == [] and "theta" in dict(fixed.named_buffers())
    other = actlab.DiTAC(num_parameters=4, cells=6)
    other.load_state_dict(m.state_dict())
    x = torch.randn(2, 4, 3)
    assert torch.equal(other(x), m(x))
    moved = copy.deepcopy(m).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in (moved.theta, moved.vertex_map, moved.precision))


def test_init_prior_is_seeded_and_identity_is_zero():
    torch.manual_seed(13)
    a = actlab.DiTAC(num_parameters=2)
    torch.manual_seed(13)
    b = actlab.DiTAC(num_parameters=2)
    assert torch.equal(a.theta, b.theta) and a.theta.abs().sum() > 0
    assert not torch.equal(a.theta[0], a.theta[1])
    assert (actlab.DiTAC(init="identity").theta == 0).all()
    before = a.theta.detach().clone()
    a.reset_parameters()
    assert not torch.equal(before, a.theta)
    # The draws follow the prior covariance Bᵀ·Σ·B (checked in distribution).
    torch.manual_seed(14)
    draws = actlab.DiTAC(num_parameters=20000, prior_length_scale=3.0).theta.detach().double()
    cov = torch.tensor(cpab.prior_covariance(10, 3.0, 2.0))
    torch.testing.assert_close(draws.T @ draws / draws.shape[0], cov, atol=0.05 * cov.diagonal().max().item(), rtol=0)


def test_eval_cache_is_reused_and_invalidated(monkeypatch):
    torch.manual_seed(15)
    calls = []
    original = ditac_module.lut_tables

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(ditac_module, "lut_tables", counting)
    m = actlab.DiTAC()
    x = torch.randn(64)
    m.eval()

    def fresh_output():
        reference = actlab.DiTAC().eval()
        reference.load_state_dict(m.state_dict())
        with torch.no_grad():
            return reference.to(m.theta.dtype)(x.to(m.theta.dtype))

    with torch.no_grad():
        y1 = m(x)
        m(x)
    assert len(calls) == 1
    # in-place change (as an optimizer step does)
    optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
    m.train()
    m(x).sum().backward()
    optimizer.step()
    m.eval()
    with torch.no_grad():
        y2 = m(x)
    assert not torch.equal(y1, y2) and torch.equal(y2, fresh_output())
    # load_state_dict
    m.load_state_dict({**m.state_dict(), "theta": torch.zeros_like(m.theta)})
    with torch.no_grad():  # GELU again (the C kernels: to float32 rounding), not a stale table
        torch.testing.assert_close(m(x), F.gelu(x), atol=1e-6, rtol=0)
    # .to(): dtype change
    m.load_state_dict({**m.state_dict(), "theta": torch.randn_like(m.theta)})
    m.double()
    with torch.no_grad():
        torch.testing.assert_close(m(x.double()), fresh_output())
    # a manual no_grad edit
    with torch.no_grad():
        m.theta.add_(0.1)
        torch.testing.assert_close(m(x.double()), fresh_output())
    # gradients in eval mode still reach θ (the cache is not used then)
    m.zero_grad()
    m(x.double()).sum().backward()
    assert m.theta.grad.abs().sum() > 0


@pytest.mark.parametrize("mode,interp", MODES)
def test_saves_only_the_input_for_backward(mode, interp):
    torch.manual_seed(16)
    m = actlab.DiTAC(mode=mode, lut_interp=interp)
    x = torch.randn(64, 32, 16, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = m(x)
    # Besides x: θ-sized tensors, the tables and the grid Jacobian (float64), O(lut_size·cells) bytes.
    table_bytes = 8 * (m.lut_size + 2) * (m.cells + 2) * 2
    assert sum(saved) <= x.numel() * x.element_size() + table_bytes
    y.sum().backward()


def test_regularization_is_theta_P_theta():
    torch.manual_seed(17)
    m = actlab.DiTAC(num_parameters=3, reg_length_scale=4.0, reg_variance=1.5, dtype=torch.float64)
    P = cpab.precision_matrix(10, 4.0, 1.5)
    theta = m.theta.detach().numpy()
    expected = sum(t @ P @ t for t in theta)
    reg = m.regularization()
    np.testing.assert_allclose(reg.item(), expected, rtol=1e-12)
    reg.backward()
    np.testing.assert_allclose(m.theta.grad.numpy(), 2 * theta @ P, rtol=1e-12)


def test_released_code_gradient_quirk_reproduced_on_request():
    """The released backward returns grad + λ·2·P.mul(θ), a [d, d] tensor that autograd
    sums over rows: d·g + 2λ·θ ⊙ colsum(P)."""
    torch.manual_seed(18)
    plain = actlab.DiTAC(dtype=torch.float64)
    quirk = actlab.DiTAC(dtype=torch.float64, released_gradient_lambda=0.1)
    quirk.load_state_dict(plain.state_dict())
    x = torch.randn(50, dtype=torch.float64)
    plain(x).square().sum().backward()
    quirk(x).square().sum().backward()
    g, theta, P = plain.theta.grad, plain.theta.detach(), plain.precision
    emulated = (g.expand(9, 9) + 0.1 * 2 * P.mul(theta)).sum(0, keepdim=True)
    torch.testing.assert_close(quirk.theta.grad, emulated, atol=1e-12, rtol=1e-12)
    assert "released_gradient_lambda=0.1" in repr(quirk)


def test_velocity_and_transform_inspection():
    torch.manual_seed(19)
    m = actlab.DiTAC(cells=6, dtype=torch.float64)
    field = m.velocity()
    assert field.shape == (6, 2)
    A = cpab.null_space_basis(6) @ m.theta[0].detach().numpy()
    np.testing.assert_allclose(field.detach().numpy(), A.reshape(6, 2), atol=1e-13)
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    T, dT = m.transform(u, derivative=True)
    np.testing.assert_allclose(T.detach().numpy(), _rk4_transform(u.numpy(), m.theta[0].detach().numpy()), atol=1e-8)
    assert actlab.DiTAC(num_parameters=3).velocity().shape == (3, 10, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"a": 1.0, "b": 1.0}, "a < b"),
        ({"a": 2.0, "b": -1.0}, "a < b"),
        ({"a": float("nan")}, "a must be a finite number"),
        ({"cells": 1}, "cells must be an integer >= 2"),
        ({"lut_size": 1}, "lut_size must be an integer >= 2"),
        ({"mode": "fast"}, "mode must be one of 'lut', 'exact'"),
        ({"init": "zeros"}, "init must be one of 'prior', 'identity'"),
        ({"lut_interp": "cubic"}, "lut_interp must be one of 'linear', 'nearest'"),
        ({"prior_length_scale": 0}, "prior_length_scale must be a finite number > 0"),
        ({"num_parameters": 0}, "num_parameters must be a positive integer"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        actlab.DiTAC(**kwargs)


def test_functional_form_and_input_checks():
    torch.manual_seed(20)
    m = actlab.DiTAC()
    x = torch.randn(30)
    assert torch.equal(actlab.functional.ditac(x, m.theta[0], m.a, m.b), m(x))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.arange(4))
    with pytest.raises(ValueError, match="a < b"):
        actlab.functional.ditac(x, m.theta, 1.0, 0.0)


def test_registry_and_repr():
    info = actlab.info("ditac")
    assert info.cls is actlab.DiTAC and info.arxiv == "2407.07564" and info.trainable
    assert info.paper == "Trainable Highly-expressive Activation Functions"
    m = actlab.create("ditac", a=-3, b=3, init="identity")
    assert isinstance(m, actlab.DiTAC) and m.a == -3.0
    assert (
        repr(m)
        == "DiTAC(a=-3, b=3, cells=10, mode='lut', lut_size=2048, lut_interp='linear', init='identity', num_parameters=1)"
    )
    assert actlab.is_activation(m)


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("slope,jacobian", [(False, False), (True, False), (False, True), (True, True)])
def test_grid_tables_custom_op_passes_opcheck(slope, jacobian, native):
    """The fake implementation (what torch.compile and export trace) matches the real outputs'
    shapes and dtypes, and the autograd registration is sound, with and without the Jacobian terms,
    from the torch code and from the C kernels."""
    cells = 5
    theta = torch.randn(2, cells - 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    vmap = torch.tensor(cpab.vertex_map(cells))
    args = (theta.requires_grad_(jacobian), vmap, 17, slope, jacobian, native)
    torch.library.opcheck(ditac_module._grid_tables_op, args)


@pytest.mark.slow  # a cold compile of the table construction takes minutes on 2 cores
@pytest.mark.compile
@pytest.mark.parametrize("mode,interp", MODES)
def test_torch_compile_fullgraph_matches_eager(mode, interp):
    torch.manual_seed(21)
    m = actlab.DiTAC(mode=mode, lut_interp=interp, cells=4)
    compiled = torch.compile(m, fullgraph=True)
    x = torch.randn(8, 3, 5, requires_grad=True)
    y = compiled(x)
    gx, gt = torch.autograd.grad(y.sum(), (x, m.theta))
    ye = m(x)
    ex, et = torch.autograd.grad(ye.sum(), (x, m.theta))
    torch.testing.assert_close(y, ye)
    # Fused multiply-adds can move an input across a table knot, where the slope of
    # the interpolant jumps by O(h·E''): hence the looser tolerance on gradients.
    torch.testing.assert_close(gx, ex, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gt, et, atol=1e-4, rtol=1e-4)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x))


@pytest.mark.gpu
@pytest.mark.parametrize("mode,interp", MODES)
def test_cuda_matches_cpu(mode, interp):
    torch.manual_seed(22)
    m = actlab.DiTAC(mode=mode, lut_interp=interp, num_parameters=3)
    x = torch.randn(4, 3, 50, requires_grad=True)
    y = m(x)
    gx, gt = torch.autograd.grad(y.sum(), (x, m.theta))
    mc = copy.deepcopy(m).cuda()
    xc = x.detach().cuda().requires_grad_()
    yc = mc(xc)
    gxc, gtc = torch.autograd.grad(yc.sum(), (xc, mc.theta))
    torch.testing.assert_close(yc.cpu(), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gxc.cpu(), gx, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gtc.cpu(), gt, atol=1e-4, rtol=1e-4)


def test_regression_example_runs():
    import argparse

    example = load("examples/ditac_regression.py")
    torch.manual_seed(0)
    x = torch.rand(5, 2) * 2 - 1
    expected = sum(
        w * torch.sin(x @ torch.tensor(a, dtype=torch.float32))
        for a, w in zip([[9, -7], [-9, 11], [3, 13], [9, 9], [13, 5], [3, 19]], [0.4, 0.1, 0.15, 0.15, 0.1, 0.1])
    )
    torch.testing.assert_close(example.target(x)[:, 0], expected)
    args = argparse.Namespace(
        iterations=30,
        batch_size=98,
        eval_every=10,
        mode="lut",
        lut_interp="linear",
        released_gradient=False,
        lambda_reg=0.1,
        verbose=False,
    )
    result = example.run("ditac", 0, args)
    assert [h["it"] for h in result["history"]] == [10, 20, 30]
    assert math.isfinite(result["test_mse"]) and result["test_mse"] > 0


def test_speed_benchmark_runs():
    benchmark = load("benchmarks/ditac_speed.py")
    # The explicit "compiled" paths are left out: they would compile (tested below, marked compile).
    results = benchmark.bench(
        torch.device("cpu"), 1 << 10, repeats=1, slow_repeats=1, backends=("auto", "fused", "reference")
    )
    paths = {
        f"{mode}/{backend}" for mode in ("lut-linear", "lut-nearest") for backend in ("auto", "fused", "reference")
    }
    assert set(results) == {"gelu", "exact/auto"} | paths
    assert results["gelu"]["fwd_bwd_ratio"] == 1.0 and all(r["fwd_bwd_ms"] > 0 for r in results.values())
    tables = benchmark.table_costs(torch.device("cpu"), (1, 3), repeats=1)
    assert set(tables) == {1, 3} and all(v > 0 for r in tables.values() for v in r.values())


# --------------------------------------------------------------------------------------------
# Compiled LUT kernels (actlab.kernels: the dispatch rule of the elementwise ops)
# --------------------------------------------------------------------------------------------
from actlab.kernels import compiled as compiled_kernels  # noqa: E402
from actlab.kernels import dispatch  # noqa: E402


def _values_and_grads(m, x, gy):
    xi = x.detach().requires_grad_()
    y = m(xi)
    gx, gt = torch.autograd.grad(y, (xi, m.theta), gy)
    return y.detach(), gx, gt


def test_lut_dispatch_rule(monkeypatch):
    x = torch.randn(16)
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 16)
    assert dispatch.choose("ditac", x, "auto") == "compiled"
    assert dispatch.choose("ditac", x[:15], "auto") == "fused"
    assert dispatch.choose("ditac", x[:15], "compiled") == "compiled"
    assert dispatch.choose("ditac", x, "fused") == "fused"
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        actlab.functional.ditac(x, torch.zeros(9), backend="triton")


@pytest.mark.compile
@pytest.mark.parametrize(
    "interp,num_parameters,channel_dim,dtype",
    [
        ("linear", 1, 1, torch.float32),  # shared θ
        ("linear", 3, 1, torch.float64),  # per-channel θ, NCHW ("rows")
        # per-channel θ, channels last ("cols"); ~30 s of cold compile, so outside the default run
        pytest.param("nearest", 3, -1, torch.float32, marks=pytest.mark.slow),
    ],
)
def test_compiled_lut_matches_the_reference(monkeypatch, interp, num_parameters, channel_dim, dtype):
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)  # "auto" compiles everything
    # the inductor kernels, also where the native C kernels would run (tested below): the fallback
    monkeypatch.setattr(ditac_module, "_native_plan", lambda *args: None)
    torch.manual_seed(30)
    m = actlab.DiTAC(lut_interp=interp, num_parameters=num_parameters, channel_dim=channel_dim, dtype=dtype)
    x = torch.randn(2, 3, 5, 3, dtype=dtype) * 2
    x[0, 0, 0, :3] = torch.tensor([m.a, m.b, (m.a + m.b) / 2])
    x[1, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    gy = torch.randn_like(x)
    got = _values_and_grads(m, x, gy)
    assert {key[0] for key in compiled_kernels._built} >= {f"ditac_{interp}_forward", f"ditac_{interp}_backward"}
    m.backend = "reference"
    expected = _values_and_grads(m, x, gy)
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == torch.float64 else dict(atol=2e-6, rtol=2e-6)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, equal_nan=True, **tol)
    if dtype == torch.float64:
        return
    # A half input is computed in float32 by the same kernels (no new graph).
    m.backend = None
    graphs = compiled_kernels.compiled_graph_count()
    xh, gh = x.bfloat16(), gy.bfloat16()
    got = _values_and_grads(m, xh, gh)
    assert compiled_kernels.compiled_graph_count() == graphs
    m.backend = "reference"
    for g, e in zip(got, _values_and_grads(m, xh, gh)):
        torch.testing.assert_close(g, e, equal_nan=True, atol=1e-2, rtol=1e-2)


@pytest.mark.compile
def test_compiled_lut_is_gelu_at_identity_and_uses_the_eval_cache(monkeypatch):
    """θ = 0: the compiled linear LUT is GELU in float32, checked against a float64 GELU.

    Not against ``F.gelu`` in float32: its vectorised CPU kernel differs between CPUs (on
    some it returns -0.0 for x < -5.5, where 1 + erf cancels). The bounds are those of
    the float32 formula x/2·(1 + erf(x/√2)): an absolute error of about |x|·ulp(1)/2 from
    the cancellation, and a relative error of about 10 ulp at most where there is none (x >= -1)."""
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    m = actlab.DiTAC(init="identity").eval()
    x = torch.cat([torch.linspace(-12, 12, 4001), torch.tensor([1e-30, -1e-20, 1e-7, -3e-8, 0.0])])
    with torch.no_grad():
        y = m(x)
    truth = F.gelu(x.double())
    error = (y.double() - truth).abs()
    assert (error <= 4e-7 * x.abs().clamp_min(1)).all()
    no_cancellation = x >= -1
    assert (error[no_cancellation] <= 1.5e-6 * truth[no_cancellation].abs()).all()
    # the eval-mode cache: built once, rebuilt after θ changes, same values as the eager path
    calls = []
    original = ditac_module.lut_tables
    monkeypatch.setattr(ditac_module, "lut_tables", lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.no_grad():
        m.theta.copy_(torch.randn_like(m.theta))
        y1 = m(x)
        y2 = m(x)
    assert len(calls) == 1 and torch.equal(y1, y2)
    m.backend = "fused"
    with torch.no_grad():
        torch.testing.assert_close(m(x), y1, atol=2e-6, rtol=2e-6)


def test_compiled_lut_build_failure_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(compiled_kernels, "_cache", {})
    monkeypatch.setattr(compiled_kernels, "_built", set())

    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(compiled_kernels, "_inductor", broken)
    torch.manual_seed(31)
    m = actlab.DiTAC(num_parameters=3, dtype=torch.float64)
    x = torch.randn(4, 3, 6, dtype=torch.float64)
    gy = torch.randn_like(x)
    with pytest.warns(RuntimeWarning, match="could not be built"):
        got = _values_and_grads(m, x, gy)
    assert "compiled" in dispatch._disabled
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only: "auto" no longer picks the compiled path
        _values_and_grads(m, x, gy)
    m.backend = "fused"
    for g, e in zip(got, _values_and_grads(m, x, gy)):
        torch.testing.assert_close(g, e, atol=0, rtol=0)
    m.backend = "compiled"  # explicit: the error is raised
    with pytest.raises(dispatch.KernelUnavailable):
        m(x)


# --------------------------------------------------------------------------------------------
# Native C kernels of the linear LUT (actlab/kernels/ditac_lut.c through actlab.kernels.native)
# --------------------------------------------------------------------------------------------
from actlab.kernels import native  # noqa: E402


def _without_inductor(monkeypatch):
    """Make any use of the inductor LUT kernels fail, so that a passing call proves the native path."""

    def no_inductor(*args, **kwargs):
        raise AssertionError("the inductor kernels ran")

    monkeypatch.setattr(ditac_module, "_run_compiled", no_inductor)


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize(
    "num_parameters,channel_dim,shape,threads",
    [
        (1, 1, (2, 3, 5, 7), 1),  # shared θ: one run of elements
        (3, 1, (2, 3, 5, 7), 1),  # per-channel θ, NCHW ("rows")
        (3, 1, (2, 3, 1500), 2),  # runs longer than the kernel's block, split over two threads
        (1, 1, (5000,), 2),  # one run split over two threads
    ],
)
def test_native_lut_matches_the_reference(monkeypatch, interp, num_parameters, channel_dim, shape, threads):
    _without_inductor(monkeypatch)
    torch.manual_seed(40)
    m = actlab.DiTAC(lut_interp=interp, num_parameters=num_parameters, channel_dim=channel_dim)
    m.backend = "compiled"
    x = torch.randn(shape) * 2
    specials = [m.a, m.b, (m.a + m.b) / 2, float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 0.0]
    x.view(-1)[: len(specials)] = torch.tensor(specials)
    gy = torch.randn_like(x)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _values_and_grads(m, x, gy)
    finally:
        torch.set_num_threads(previous)
    m.backend = "reference"
    expected = _values_and_grads(m, x, gy)
    for g, e, what in zip(got, expected, ("value", "grad_x", "grad_theta")):
        torch.testing.assert_close(g, e, equal_nan=True, atol=2e-6, rtol=2e-6, msg=lambda s: f"{what}: {s}")


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("num_parameters,shape", [(1, (3000,)), (2, (3, 2, 1100))])
def test_native_lut_sums_the_shares_of_inputs_off_the_interval_like_the_reference(
    monkeypatch, interp, num_parameters, shape
):
    # The kernels sum the table-gradient shares of the inputs below a and above b in lanes of
    # their own (ditac_lut.c, EDGE_SLOTS), folded into the end slots after each run: mostly
    # off-interval inputs, runs longer than a block, channels with several runs, and
    # non-finite gradients there (the linear LUT's share g·w = inf·0 is NaN in the reference too).
    _without_inductor(monkeypatch)
    torch.manual_seed(44)
    m = actlab.DiTAC(lut_interp=interp, num_parameters=num_parameters)
    m.backend = "compiled"
    x = torch.randn(shape) * 3 - 2  # about 70 % below a = -0.5, 5 % above b = 2
    gy = torch.randn_like(x)
    expected_finite = None
    for poison in (None, float("inf"), float("nan")):
        if poison is not None:
            below = (x < m.a).nonzero()[-1]  # in the last run of its channel
            gy[tuple(below)] = poison
        m.backend = "compiled"
        got = _values_and_grads(m, x, gy)
        m.backend = "reference"
        expected = _values_and_grads(m, x, gy)
        # grad_x at the poisoned input is inf times its derivative: ±inf in the kernels, NaN where
        # the reference's autograd multiplies inf by a zero (the clamp's derivative); the rest agree
        finite = gy.isfinite()
        torch.testing.assert_close(got[0], expected[0], atol=2e-6, rtol=2e-6)
        torch.testing.assert_close(got[1][finite], expected[1][finite], atol=2e-6, rtol=2e-6)
        torch.testing.assert_close(got[2], expected[2], equal_nan=True, atol=2e-6, rtol=2e-6)
        if poison is None:
            expected_finite = expected[2]
            assert expected_finite.isfinite().all()
    # the poisoned share reached θ's gradient (through the end slot) in both, as NaN or inf
    if interp == "linear":
        assert not got[2].isfinite().all() and not expected[2].isfinite().all()


def test_native_lut_threads_split_the_work_without_changing_the_result():
    torch.manual_seed(41)
    m = actlab.DiTAC(num_parameters=4)
    m.backend = "compiled"
    x, gy = torch.randn(3, 4, 2000) * 2, torch.randn(3, 4, 2000)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_values_and_grads(m, x, gy))
    finally:
        torch.set_num_threads(previous)
    (y1, gx1, gt1), (y2, gx2, gt2) = results
    assert torch.equal(y1, y2) and torch.equal(gx1, gx2)
    # table gradients summed per thread in double precision, then added: equal to rounding
    torch.testing.assert_close(gt1, gt2, atol=1e-6, rtol=1e-6)


def test_native_lut_leaves_other_inputs_to_inductor():
    x = torch.randn(2, 5, 3)
    offsets = torch.arange(3, dtype=torch.int32).reshape(1, 1, 3) * 10
    assert ditac_module._native_plan(x, None) is not None  # shared
    nchw = x.transpose(1, 2).contiguous()
    assert ditac_module._native_plan(nchw, offsets.transpose(1, 2)) is not None  # per channel, "rows"
    assert ditac_module._native_plan(x, offsets) is None  # channels last ("cols")
    # a channels-last view of NCHW memory is "rows" in memory order: native too
    assert ditac_module._native_plan(nchw.transpose(1, 2), offsets) is not None
    assert ditac_module._native_plan(x.double(), None) is None  # float64
    assert ditac_module._native_plan(x[:0], None) is None  # empty


def test_native_build_failure_warns_once_and_the_inductor_kernels_run(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_libraries", {})
    monkeypatch.setattr(ditac_module, "_NATIVE_FAILED", [])
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)  # no compiler anywhere
    ran = []
    original = ditac_module._run_compiled
    monkeypatch.setattr(ditac_module, "_run_compiled", lambda *a, **k: ran.append(a[0]) or original(*a, **k))
    torch.manual_seed(42)
    m = actlab.DiTAC()
    m.backend = "compiled"
    x, gy = torch.randn(64), torch.randn(64)
    with pytest.warns(RuntimeWarning, match="native CPU kernels could not be built .*no C compiler found"):
        got = _values_and_grads(m, x, gy)
    assert ran == ["ditac_linear_forward", "ditac_linear_backward"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        _values_and_grads(m, x, gy)
    m.backend = "reference"
    for g, e in zip(got, _values_and_grads(m, x, gy)):
        torch.testing.assert_close(g, e, atol=2e-6, rtol=2e-6)


# Native C kernels of the grid tables (actlab/kernels/cpab_grid.c): the torch code of cpab.integrate
# (through _on_grid) is their truth.
@pytest.mark.parametrize("cells", [2, 5, 10, 33])
@pytest.mark.parametrize("scale", [0.0, 0.5, 3.0, 20.0])
def test_native_grid_tables_match_the_torch_integration(cells, scale):
    vmap = torch.tensor(cpab.vertex_map(cells))
    theta = torch.randn(3, cells - 1, dtype=torch.float64, generator=torch.Generator().manual_seed(cells)) * scale
    size = 1000
    expected = ditac_module._on_grid(theta, vmap, size, slope=True, jacobian=True)
    got = ditac_module._native_grid(theta, vmap, size, True, True)
    assert got is not None
    torch.testing.assert_close(got[0], expected[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(got[1], expected[1], atol=0, rtol=1e-10)
    assert torch.equal(got[2].first, expected[2].first) and torch.equal(got[2].last, expected[2].last)
    dense, expected_dense = got[2].dense(), expected[2].dense()
    torch.testing.assert_close(dense, expected_dense, atol=1e-10 * expected_dense.abs().max().item() + 1e-14, rtol=0)
    assert dense.abs().max() > 0  # not a comparison of zeros (at θ = 0 too)
    grad = torch.randn(3, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    contracted = ditac_module._native_contract(list(got[2]), grad)
    reference = expected[2].contract(grad)
    torch.testing.assert_close(contracted, reference, atol=1e-10 * reference.abs().max().item() + 1e-14, rtol=0)
    # without the optional outputs, the same displacement
    alone = ditac_module._native_grid(theta, vmap, size, False, False)
    assert alone[1] is None and alone[2] is None and torch.equal(alone[0], got[0])


def test_native_grid_tables_propagate_nan_and_leave_large_tessellations_to_torch():
    vmap = torch.tensor(cpab.vertex_map(10))
    theta = torch.full((2, 9), float("nan"), dtype=torch.float64)
    expected = ditac_module._on_grid(theta, vmap, 64, slope=True)
    got = ditac_module._native_grid(theta, vmap, 64, True, False)
    assert expected[0].isnan().all() and got[0].isnan().all() and got[1].isnan().all()
    limit = ditac_module._native_library("cpab_grid").cpab_max_cells()
    beyond = torch.zeros(1, limit, dtype=torch.float64)  # cells = limit + 1
    assert ditac_module._native_grid(beyond, torch.eye(limit, dtype=torch.float64), 8, False, False) is None
    # a DiTAC that large builds its tables with torch and contracts them with torch too
    m = actlab.DiTAC(cells=limit + 1, init="identity")
    m.backend = "fused"
    x = torch.linspace(-1, 3, 50, requires_grad=True)
    m(x).sum().backward()
    assert m.theta.grad.isfinite().all() and m.theta.grad.abs().sum() > 0
    terms = ditac_module._on_grid(beyond, torch.eye(limit, dtype=torch.float64), 8, jacobian=True)[2]
    assert ditac_module._native_contract(list(terms), torch.ones(1, 8, dtype=torch.float64)) is None


def test_native_grid_tables_threads_split_the_rows_without_changing_the_result():
    vmap = torch.tensor(cpab.vertex_map(6))
    theta = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grad = torch.randn(5, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            d, s, terms = ditac_module._native_grid(theta, vmap, 300, True, True)
            results.append((d, s, *terms, ditac_module._native_contract(list(terms), grad)))
    finally:
        torch.set_num_threads(previous)
    for one, two in zip(*results):
        assert torch.equal(one, two)


@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_reference_backend_builds_its_tables_with_torch_and_the_others_with_the_native_kernels(monkeypatch, interp):
    calls = []
    original = ditac_module._native_grid
    monkeypatch.setattr(ditac_module, "_native_grid", lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(45)
    m = actlab.DiTAC(lut_interp=interp)
    x, gy = torch.randn(2, 3, 50), torch.randn(2, 3, 50)
    m.backend = "reference"
    expected = _values_and_grads(m, x, gy)
    m.eval()
    with torch.no_grad():
        expected_eval = m(x)
    assert calls == []
    m.train()
    for backend in ("fused", "compiled"):
        m.backend = backend
        got = _values_and_grads(m, x, gy)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, atol=2e-6, rtol=2e-6)
    assert len(calls) == 2
    m.eval()  # the eval cache is keyed by the choice: a switch of backend rebuilds it
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected_eval, atol=2e-6, rtol=2e-6)
        assert len(calls) == 3
        m.backend = "reference"
        assert torch.equal(m(x), expected_eval) and len(calls) == 3


@pytest.mark.parametrize("native", [False, True])
def test_eager_grid_tables_skip_the_custom_op_and_agree_with_it(monkeypatch, native):
    vmap = torch.tensor(cpab.vertex_map(6))
    theta = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6)).requires_grad_()
    grad = torch.randn(2, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    outputs = ditac_module._grid_tables_op(theta, vmap, 33, True, True, native)
    (expected,) = torch.autograd.grad(outputs[0], theta, grad)
    op = ditac_module._grid_tables_op
    monkeypatch.setattr(ditac_module, "_grid_tables_op", lambda *a: pytest.fail("the op ran in eager code"))
    displacement, slope = ditac_module.grid_tables(theta, vmap, 33, torch.float64, native=native)
    assert torch.equal(displacement, outputs[0]) and torch.equal(slope, outputs[1])
    assert not slope.requires_grad
    (got,) = torch.autograd.grad(displacement, theta, grad)
    torch.testing.assert_close(got, expected, atol=1e-13, rtol=0)
    # second derivatives (create_graph) go through the closed form, as with the op
    (first,) = torch.autograd.grad(
        ditac_module.grid_tables(theta, vmap, 33, torch.float64)[0], theta, grad, create_graph=True
    )
    (second,) = torch.autograd.grad(first.sum(), theta)
    outputs = op(theta, vmap, 33, False, True, True)
    (first_op,) = torch.autograd.grad(outputs[0], theta, grad, create_graph=True)
    torch.testing.assert_close(second, torch.autograd.grad(first_op.sum(), theta)[0])


def test_grid_contract_custom_op_passes_opcheck():
    vmap = torch.tensor(cpab.vertex_map(5))
    theta = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, _, terms = ditac_module._native_grid(theta, vmap, 17, False, True)
    grad = torch.randn(2, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    torch.library.opcheck(ditac_module._contract_op, (*terms, grad))


def test_native_library_is_built_once_per_source_flags_compiler_and_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path))
    calls = []
    run = native.subprocess.run
    monkeypatch.setattr(native.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or run(cmd, **kw))
    first, openmp = native._build("ditac_lut")
    assert first.parent == tmp_path / "kernels" and first.exists()
    assert openmp == bool(native._openmp_flags())
    assert sum("-O3" in cmd for cmd in calls) == 1
    assert native._build("ditac_lut") == (first, openmp)  # cached: no second compile
    assert sum("-O3" in cmd for cmd in calls) == 1
    monkeypatch.setattr(native, "_cpu_identity", lambda: "another CPU")
    assert native._build("ditac_lut")[0] != first  # -march=native code is never shared across CPUs
    assert sum("-O3" in cmd for cmd in calls) == 2
    (header,) = [h for h in (tmp_path / "kernels").iterdir() if h.suffix == ".h"] or [None]
    assert header is None  # the headers travel to the build directory only


def test_native_kernels_use_torchs_openmp_runtime_and_fall_back_without_one(monkeypatch, tmp_path):
    # In a torch process on GNU OpenMP (Linux wheels) the kernels are built with -fopenmp, and
    # loading them brings in no OpenMP runtime of their own: their libgomp.so.1 is torch's, already
    # loaded. Where -fopenmp fails, the build goes on without it.
    def runtimes():
        with open("/proc/self/maps") as maps:
            return {line.split()[-1] for line in maps if "libgomp" in line}

    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path))
    if native._openmp_flags():
        path, openmp = native._build("cpab_grid")
        assert openmp
        before = runtimes()
        lib = ctypes.CDLL(str(path))  # a new file (a fresh cache): loaded now
        assert lib.cpab_max_cells() > 0
        assert runtimes() == before and any("torch" in runtime for runtime in before), runtimes()
    monkeypatch.setattr(native, "_openmp_flags", lambda: ("-fno-such-openmp-flag",))
    path, openmp = native._build("cpab_grid")
    assert not openmp and path.exists()


@pytest.mark.parametrize(
    "vendor,status,expected",
    [
        ("GenuineIntel", "Not affected\n", True),
        ("GenuineIntel", "Mitigation: Microcode\n", False),
        ("GenuineIntel", "Vulnerable: No microcode\n", False),
        ("AuthenticAMD", "Not affected\n", False),
    ],
)
def test_hardware_gathers_only_where_the_cpu_has_fast_ones(vendor, status, expected):
    cpuinfo = f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: avx512f\n\nprocessor\t: 1\nvendor_id\t: {vendor}\n"
    assert native.fast_gathers(cpuinfo, status) is expected


def test_a_gather_flag_the_compiler_rejects_leaves_it_out(monkeypatch, tmp_path):
    # clang knows no -mtune-ctrl: the build goes on without it, with OpenMP where there is one.
    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_gather_flags", lambda: ("-mtune-ctrl=no_such_tuning",))
    calls = []
    run = native.subprocess.run
    monkeypatch.setattr(native.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or run(cmd, **kw))
    path, openmp = native._build("ditac_lut")
    assert path.exists() and openmp == bool(native._openmp_flags())
    compiles = [cmd for cmd in calls if "-O3" in cmd]
    assert "-mtune-ctrl=no_such_tuning" in compiles[0] and "-mtune-ctrl=no_such_tuning" not in compiles[-1]


@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_auto_takes_the_native_kernels_below_the_compile_threshold(monkeypatch, interp):
    # They compile nothing per shape, so "auto" runs them for float32 CPU inputs of any size; the
    # eager blocks stay for float64 and for an explicit "fused".
    _without_inductor(monkeypatch)
    eager = []
    names = [f"_{interp}_forward", f"_{interp}_backward"]
    for name in names:
        original = getattr(ditac_module, name)
        monkeypatch.setattr(ditac_module, name, lambda *a, _f=original, _n=name: eager.append(_n) or _f(*a))
    torch.manual_seed(48)
    m = actlab.DiTAC(lut_interp=interp, num_parameters=3)
    x, gy = torch.randn(2, 3, 40), torch.randn(2, 3, 40)
    assert x.numel() < dispatch.COMPILE_THRESHOLD
    got = _values_and_grads(m, x, gy)
    assert eager == []  # the C kernels ran
    m.backend = "reference"
    for g, e in zip(got, _values_and_grads(m, x, gy)):
        torch.testing.assert_close(g, e, atol=2e-6, rtol=2e-6)
    m.backend = "fused"
    _values_and_grads(m, x, gy)
    assert eager == names
    m.backend = None
    _values_and_grads(m.double(), x.double(), gy.double())
    assert eager == names * 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_native_kernels_run_in_a_forked_child_with_one_thread():
    # A DataLoader worker: forked after the parent ran the kernels on two threads (OpenMP or the
    # pool), it sets one thread, as torch's workers do (with more, torch's own OpenMP operations
    # hang in a forked child too), and must run the kernels and give the parent's results.
    torch.manual_seed(47)
    m = actlab.DiTAC()
    m.backend = "compiled"
    x, gy = torch.randn(3000), torch.randn(3000)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = _values_and_grads(m, x, gy)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(60)  # a hang fails the test instead of stalling the run
            torch.set_num_threads(1)
            got = _values_and_grads(m, x, gy)
            ok = torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
            ok = ok and torch.allclose(got[2], expected[2], atol=1e-6, rtol=1e-6)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        torch.set_num_threads(previous)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


@pytest.mark.parametrize("openmp", [False, True])
def test_native_parts_give_the_same_result_on_pool_threads_and_on_openmp_threads(monkeypatch, openmp):
    # run_parts: one call over all parts (OpenMP) or one call per part on the Python pool
    lib = ditac_module._native_library()
    if openmp and not native.uses_openmp(lib):
        pytest.skip("the kernels are not built with OpenMP here")
    monkeypatch.setattr(native, "uses_openmp", lambda lib: openmp)
    torch.manual_seed(46)
    m = actlab.DiTAC(num_parameters=3)
    m.backend = "compiled"
    x, gy = torch.randn(4, 3, 700) * 2, torch.randn(4, 3, 700)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = _values_and_grads(m, x, gy)
        torch.set_num_threads(1)  # one part
        expected = _values_and_grads(m, x, gy)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    torch.testing.assert_close(got[2], expected[2], atol=1e-6, rtol=1e-6)


def test_native_thread_pool_is_renewed_in_a_forked_child(monkeypatch):
    """A forked child (a DataLoader worker) inherits the pool object but none of its threads."""
    pool = native._executor(2)
    assert native._executor(2) is pool
    monkeypatch.setattr(native.os, "getpid", lambda: -1)  # as seen from a child
    child = native._executor(2)
    assert child is not pool
    assert child.submit(lambda: 41 + 1).result(timeout=10) == 42


@pytest.mark.parametrize("march", ["x86-64-v2", "x86-64-v3"])
def test_native_kernels_built_for_older_cpus_give_the_same_results(monkeypatch, tmp_path, march):
    """-march=native picks this machine's vector width; a user's CPU may have narrower vectors
    (SSE4.2, AVX2). The kernels built for those give the reference's results too."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 targets")
    flags = tuple(f"-march={march}" if f == "-march=native" else f for f in native.FLAGS)
    monkeypatch.setattr(native, "FLAGS", flags)
    monkeypatch.setenv("ACTLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_libraries", {})
    _without_inductor(monkeypatch)
    torch.manual_seed(43)
    x, gy = torch.randn(2, 3, 1100) * 2, torch.randn(2, 3, 1100)
    for interp in ("linear", "nearest"):
        m = actlab.DiTAC(lut_interp=interp, num_parameters=3)
        m.backend = "compiled"
        x.view(-1)[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), m.b])
        got = _values_and_grads(m, x, gy)
        m.backend = "reference"
        for g, e in zip(got, _values_and_grads(m, x, gy)):
            torch.testing.assert_close(g, e, equal_nan=True, atol=2e-6, rtol=2e-6)
    assert len(list((tmp_path / "kernels").glob("ditac_lut-*.so"))) == 1  # built here, for this target
