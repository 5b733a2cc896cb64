"""The fitted polynomials behind Serf's and EELU's float32 CPU kernels, against float64 closed forms.

The kernels replace exp/log1p/erf chains by polynomials (module docstrings of
actlab.activations.serf and .eelu); here their accuracy is measured where the
approximation lives: inside the compiled float32 kernels, over a dense grid,
at the seams between the pieces, and at the special values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import actlab
from actlab._math import horner, interpolating_polynomial
from actlab.activations import eelu, serf

K = 2 / math.sqrt(math.pi)


def test_interpolating_polynomial_reproduces_a_polynomial_and_interpolates_at_chebyshev_points():
    # 3x² - x + 2 on [1, 3]: with x = 2 + t the polynomial in t is 3t² + 11t + 12.
    coefficients = interpolating_polynomial(lambda x: 3 * x**2 - x + 2, 1.0, 3.0, 2)
    np.testing.assert_allclose(coefficients, [12.0, 11.0, 3.0], rtol=0, atol=1e-12)
    # exp on [0, 2], degree 6: exact at the 7 Chebyshev points (of the first kind) of [0, 2].
    coefficients = interpolating_polynomial(np.exp, 0.0, 2.0, 6)
    t = np.cos((2 * np.arange(7) + 1) * np.pi / 14)
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(t, coefficients), np.exp(1 + t), rtol=1e-13)


def test_horner_evaluates_constant_term_first():
    t = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(horner(t, (1.0, 2.0, 3.0)), 1 + 2 * t + 3 * t**2, rtol=0, atol=0)
    assert horner(t, (7.0,)).tolist() == [7.0, 7.0, 7.0]


@pytest.mark.parametrize("module", [serf, eelu], ids=["serf", "eelu"])
def test_coefficients_are_of_order_one(module):
    """Horner's rule in float32 is as accurate as the coefficients are small: the bounds below rely on it."""
    for name in ("a", "b", "p", "f"):
        assert max(abs(c) for c in getattr(module.FITTED, name)) < 4, name


def test_fitted_gate_pieces_in_float64():
    """Eager and in float64 the pieces meet the closed forms within the fit's own error (EELU's gate, u = -x)."""
    u = torch.cat([torch.linspace(-40, 40, 8001, dtype=torch.float64), torch.tensor([-1e5, 1e5])])
    value, derivative = _eelu64(-u)
    assert ((eelu.FITTED.value(u) - value).abs() <= 2e-7 * u.abs().clamp(min=1)).all()
    assert ((eelu.FITTED.derivative(u) + derivative).abs() <= 3e-7).all()


def _serf64(x):
    sp = torch.nn.functional.softplus(x)
    value = x * torch.erf(sp)
    derivative = torch.erf(sp) + x * K * torch.exp(-sp * sp) * torch.sigmoid(x)
    return value, derivative


def _eelu64(x):
    w = torch.exp(-x.clamp(min=-30))  # erf(e^30) = 1, and e^{-x} would overflow below -709
    value = -x * torch.erf(w)
    derivative = -torch.erf(w) + x * K * w * torch.exp(-w * w)
    return value, derivative


CASES = {  # name: (float64 closed forms, the seams of the pieces)
    "serf": (_serf64, (0.0, serf.FITTED.end)),
    "eelu": (_eelu64, (0.0, -eelu.FITTED.end)),
}


def _compiled_value_and_derivative(name, x):
    module = actlab.create(name)
    module.backend = "compiled"
    xi = x.clone().requires_grad_(True)
    y = module(xi)
    y.backward(torch.ones_like(y))
    return y.detach(), xi.grad


def _grid():
    dense = torch.linspace(-20, 20, 400_001, dtype=torch.float64)
    tails = torch.logspace(-30, 30, 601, dtype=torch.float64)
    return torch.cat([dense, tails, -tails]).float()


@pytest.mark.compile
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_float32_kernels_are_within_a_few_ulps_of_float64(name):
    """|error| of the value <= 4e-7·max(1, |x|) and of the derivative <= 8e-7 (erf-based kernels: ~4e-7)."""
    closed_forms, _ = CASES[name]
    x = _grid()
    value, derivative = _compiled_value_and_derivative(name, x)
    exact_value, exact_derivative = closed_forms(x.double())
    value_error = (value.double() - exact_value).abs() / x.double().abs().clamp(min=1)
    derivative_error = (derivative.double() - exact_derivative).abs()
    assert value_error.max() <= 4e-7, x[value_error.argmax()].item()
    assert derivative_error.max() <= 8e-7, x[derivative_error.argmax()].item()


@pytest.mark.compile
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_float32_kernels_are_continuous_across_their_seams(name):
    """From one float to the next across each seam, value and derivative move as the function does."""
    closed_forms, seams = CASES[name]
    for seam in seams:
        s = torch.tensor(seam, dtype=torch.float32)
        x = torch.stack([torch.nextafter(s, s - 1), s, torch.nextafter(s, s + 1)])
        value, derivative = _compiled_value_and_derivative(name, x)
        exact_value, exact_derivative = closed_forms(x.double())
        assert (value.double() - exact_value).abs().max() <= 4e-7 * max(1.0, abs(seam)), seam
        assert (derivative.double() - exact_derivative).abs().max() <= 8e-7, seam


#: (value, derivative) at +inf and at -inf: the limits
LIMITS = {"serf": ((math.inf, 1.0), (0.0, 0.0)), "eelu": ((0.0, 0.0), (math.inf, -1.0))}


@pytest.mark.compile
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backend", ["compiled", "fused"])
def test_limits_at_infinity_and_nan(name, backend):
    """±inf give the limits of value and derivative (not ∞·0 = NaN); NaN stays NaN."""
    module = actlab.create(name)
    module.backend = backend
    x = torch.tensor([math.inf, -math.inf, math.nan], requires_grad=True)
    y = module(x)
    y.backward(torch.ones_like(y))
    (value_pos, slope_pos), (value_neg, slope_neg) = LIMITS[name]
    assert y[:2].tolist() == [value_pos, value_neg] and y[2].isnan()
    assert x.grad[:2].tolist() == [slope_pos, slope_neg] and x.grad[2].isnan()


def test_the_polynomials_are_used_only_in_float32_cpu_graphs(monkeypatch):
    """Eager code, float64 and other devices keep the closed forms (the fast path's truth elsewhere)."""
    calls = []

    class Recorder:
        def value(self, u):
            calls.append(u.dtype)
            return u

    monkeypatch.setattr(serf, "FITTED", Recorder())
    x = torch.randn(8)
    serf.SERF_OP.fused_value(x)
    serf.SERF_OP.fused_value(x.double())
    assert calls == []
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    serf.SERF_OP.fused_value(x.double())
    assert calls == []
    serf.SERF_OP.fused_value(x)
    assert calls == [torch.float32]
