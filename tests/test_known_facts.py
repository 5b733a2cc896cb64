"""Facts from the papers and the spec, each computed independently in the test."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special

import actlab
import actlab.functional as AF


def _f64(fn):
    return lambda x: float(fn(torch.tensor([x], dtype=torch.float64))[0])


@pytest.mark.parametrize("alpha,beta", [(2.0, 3.0), (3.0, 2.0), (5.0, 3.0)])
def test_srs_minimum_is_at_minus_beta(alpha, beta):
    f = _f64(lambda x: AF.srs(x, alpha, beta))
    res = optimize.minimize_scalar(f, bounds=(-20, 0), method="bounded", options={"xatol": 1e-10})
    assert res.x == pytest.approx(-beta, abs=1e-5)
    assert res.fun == pytest.approx(alpha * beta / (beta - alpha * math.e), rel=1e-10)
    assert f(1e6) == pytest.approx(alpha, rel=1e-4)


def test_serf_minimum_and_slope_at_zero():
    f = _f64(AF.serf)
    res = optimize.minimize_scalar(f, bounds=(-5, 0), method="bounded", options={"xatol": 1e-10})
    assert res.fun == pytest.approx(-0.348, abs=5e-4) and res.x == pytest.approx(-1.19, abs=5e-3)
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    AF.serf(x).backward()
    assert x.grad.item() == pytest.approx(special.erf(math.log(2)), rel=1e-14)


def test_eelu_as_published():
    f = _f64(AF.eelu)
    assert f(-40.0) == pytest.approx(40.0) and f(0.0) == 0.0 and f(40.0) <= 0.0
    res = optimize.minimize_scalar(f, bounds=(0, 5), method="bounded", options={"xatol": 1e-10})
    assert res.fun == pytest.approx(-0.3985, abs=5e-4) and res.x == pytest.approx(1.08, abs=1e-2)  # spec: ≈ -0.399


@pytest.mark.parametrize(
    "a,b,min_value,min_at,max_value,max_at",
    [(1.2, 1.0, -0.361, -0.92, 1.361, 1.92), (4.0, 2.0, -0.092, -0.25, 1.092, 1.25)],
)
def test_zorro_extremes_from_the_spec(a, b, min_value, min_at, max_value, max_at):
    f = _f64(lambda x: AF.zorro(x, a, b))
    lo = optimize.minimize_scalar(f, bounds=(-6, 0), method="bounded", options={"xatol": 1e-10})
    hi = optimize.minimize_scalar(lambda x: -f(x), bounds=(1, 7), method="bounded", options={"xatol": 1e-10})
    assert lo.fun == pytest.approx(min_value, abs=5e-4) and lo.x == pytest.approx(min_at, abs=1e-2)
    assert -hi.fun == pytest.approx(max_value, abs=5e-4) and hi.x == pytest.approx(max_at, abs=1e-2)


def test_zorro_symmetry_continuity_and_limits():
    x = torch.linspace(-8, 9, 2001, dtype=torch.float64)
    z = AF.zorro(x)
    torch.testing.assert_close(AF.zorro(1 - x), 1 - z)  # point symmetry about (1/2, 1/2)
    assert AF.zorro(torch.tensor([-1e4, 1e4], dtype=torch.float64)).tolist() == pytest.approx([0.0, 1.0], abs=1e-12)
    # C¹: the derivative is continuous at the joins 0 and 1 (slope 1 on both sides)
    for join in (0.0, 1.0):
        pts = torch.tensor([join - 1e-7, join + 1e-7], dtype=torch.float64, requires_grad=True)
        AF.zorro(pts).sum().backward()
        assert pts.grad.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_zorro_variants_reduce_to_each_other():
    x = torch.linspace(-6, 6, 501, dtype=torch.float64)
    torch.testing.assert_close(AF.zorro_sloped(x, 1.2, 1.0, 0.0), AF.zorro(x, 1.2, 1.0))
    torch.testing.assert_close(AF.zorro_asymmetric(x, 2.0, 0.5, 2.0, 0.5), AF.zorro(x, 2.0, 0.5))
    torch.testing.assert_close(AF.zorro_sigmoid(x, 0.5, 4.0, 2.0), AF.zorro(0.5 * x + 0.5, 4.0, 2.0))
    torch.testing.assert_close(AF.zorro_tanh(x, 1.0, 4.0, 2.0), 2 * AF.zorro((x + 1) / 2, 4.0, 2.0) - 1)
    positive = x[x >= 0]
    torch.testing.assert_close(AF.zorro_sloped(positive, 1.2, 1.0, 1.0), positive)  # slope 1: identity for x >= 0


def test_apa_special_cases():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    torch.testing.assert_close(AF.apa(x, 1.0, 1.0), torch.sigmoid(x))
    torch.testing.assert_close(AF.aglu(x, 1.0, 1.0), torch.nn.functional.silu(x))
    # lam -> 0: the Gumbel CDF exp(-exp(-kappa z))
    torch.testing.assert_close(AF.apa(x, 1.01e-4, 1.3), torch.exp(-torch.exp(-1.3 * x)), atol=2e-4, rtol=0)
    # kappa ≈ 1.702, lam = 1: AGLU is close to GELU
    assert (AF.aglu(x, 1.0, 1.702) - torch.nn.functional.gelu(x)).abs().max() < 0.03


def test_sau_is_leaky_relu_convolved_with_a_gaussian():
    alpha, sigma = 0.1, 0.7

    def convolution(x):
        leaky = lambda t: t if t > 0 else alpha * t
        gauss = lambda u: math.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
        return integrate.quad(lambda u: leaky(x - u) * gauss(u), -12 * sigma, 12 * sigma, points=[x], limit=200)[0]

    for x in [-3.0, -0.6, 0.0, 0.2, 1.5, 4.0]:
        got = _f64(lambda t: AF.sau(t, alpha, sigma))(x)
        assert got == pytest.approx(convolution(x), abs=1e-9)
    assert _f64(lambda t: AF.sau(t, alpha, sigma))(0.0) == pytest.approx((1 - alpha) * sigma / math.sqrt(2 * math.pi))


def test_pau_default_is_the_official_leaky_relu_fit():
    num = np.array([0.02979, 0.61837, 2.32331, 3.05194, 1.48542, 0.25102])
    den = np.array([-1.14195, 4.39316, 0.87147, 0.34720])

    def rational(x):
        return np.polyval(num[::-1], x) / (1 + sum(abs(b * x ** (k + 1)) for k, b in enumerate(den)))

    m = actlab.PAU(dtype=torch.float64)
    xs = np.linspace(-3, 3, 601)
    with torch.no_grad():
        got = m(torch.tensor(xs)).numpy()
    np.testing.assert_allclose(got, [rational(x) for x in xs], rtol=1e-12, atol=1e-12)
    leaky = np.where(xs > 0, xs, 0.01 * xs)
    assert np.abs(got - leaky).max() < 0.05
    assert rational(1.0) == pytest.approx(1.0008, abs=1e-4) and rational(-1.0) == pytest.approx(-0.0107, abs=1e-4)


def test_sqish_limits():
    x = torch.tensor([-1e4, 1e4], dtype=torch.float64)
    y = AF.sqish(x, 0.1, 1.0, 1.0)
    assert y.tolist() == pytest.approx([-1e3, 1e4], rel=1e-9)
