"""properties(): measured facts against closed forms, mpmath and the registry's declared flags."""

import math

import mpmath as mp
import pytest
import torch
from scipy import integrate

import actlab
from actlab import Properties


def _normal_moments(f):
    """E f(Z) and Var f(Z) for Z ~ N(0, 1), by adaptive quadrature (scipy), split at 0."""
    phi = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # noqa: E731
    e1 = sum(
        integrate.quad(lambda x: f(x) * phi(x), a, b, epsabs=1e-13, epsrel=1e-12)[0] for a, b in ((-30, 0), (0, 30))
    )
    e2 = sum(
        integrate.quad(lambda x: f(x) ** 2 * phi(x), a, b, epsabs=1e-13, epsrel=1e-12)[0]
        for a, b in ((-30, 0), (0, 30))
    )
    return e1, e2 - e1 * e1


def test_relu_known_facts():
    p = actlab.properties("relu")
    assert isinstance(p, Properties) and p.registry_name == "relu"
    assert p.bounded_below and not p.bounded_above
    assert p.monotonic and not p.smooth_c1
    assert p.minimum == (-math.inf, 0.0) and p.maximum is None
    assert p.limits == (0.0, math.inf)
    assert p.mean == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-9)
    assert p.var == pytest.approx(0.5 - 1 / (2 * math.pi), abs=1e-9)
    assert p.derivative_range == (0.0, 1.0)
    assert p.zero_crossings == ()  # touching zero on x <= 0 is not a crossing
    assert p.value_at_zero == 0.0


def test_tanh_known_facts():
    p = actlab.properties("tanh")
    assert p.bounded_below and p.bounded_above and p.monotonic and p.smooth_c1
    assert p.minimum == (-math.inf, -1.0) and p.maximum == (math.inf, 1.0)
    assert p.limits == (-1.0, 1.0)
    mean, var = _normal_moments(math.tanh)
    assert p.mean == pytest.approx(mean, abs=1e-12)
    assert p.var == pytest.approx(var, abs=1e-9)
    assert p.derivative_range == pytest.approx((0.0, 1.0), abs=1e-15)
    assert p.zero_crossings == (0.0,) and p.derivative_at_zero == 1.0


@pytest.mark.parametrize("alpha,beta", [(2.0, 3.0), (5.0, 3.0), (3.0, 2.0)])
def test_srs_bounded_with_minimum_at_minus_beta(alpha, beta):
    p = actlab.properties("srs", alpha=alpha, beta=beta)
    assert p.bounded_below and p.bounded_above and not p.monotonic and p.smooth_c1
    x_min, y_min = p.minimum
    assert x_min == pytest.approx(-beta, abs=1e-9)
    assert y_min == pytest.approx(alpha * beta / (beta - alpha * math.e), rel=1e-12)
    assert p.maximum == (math.inf, pytest.approx(alpha, rel=1e-12))  # the supremum, approached as x → ∞
    assert p.limits == (0.0, pytest.approx(alpha, rel=1e-12))
    srs = lambda x: x / (x / alpha + math.exp(-x / beta))  # noqa: E731
    mean, var = _normal_moments(srs)
    assert p.mean == pytest.approx(mean, abs=1e-9) and p.var == pytest.approx(var, abs=1e-8)
    assert p.zero_crossings == (0.0,)


def test_serf_minimum_matches_mpmath():
    serf = lambda x: x * mp.erf(mp.log1p(mp.exp(x)))  # noqa: E731
    with mp.workdps(30):
        x_star = mp.findroot(lambda x: mp.diff(serf, x), -1.19)
        y_star = serf(x_star)
    p = actlab.properties("serf")
    assert p.minimum[0] == pytest.approx(float(x_star), abs=1e-9)
    assert p.minimum[1] == pytest.approx(float(y_star), rel=1e-12)
    assert p.minimum[1] == pytest.approx(-0.348, abs=5e-4)  # the published "minimum near -0.348"
    assert p.bounded_below and not p.bounded_above and not p.monotonic
    assert p.limits == (0.0, math.inf)
    assert p.derivative_at_zero == pytest.approx(math.erf(math.log(2)), rel=1e-12)


def test_gelu_minimum_and_moments_against_references():
    gelu = lambda x: x * 0.5 * (1 + mp.erf(x / mp.sqrt(2)))  # noqa: E731
    with mp.workdps(30):
        x_star = mp.findroot(lambda x: mp.diff(gelu, x), -0.75)
    p = actlab.properties("gelu")
    assert p.minimum[0] == pytest.approx(float(x_star), abs=1e-9)
    assert p.minimum[1] == pytest.approx(float(gelu(x_star)), rel=1e-12)
    # E[Z·Φ(Z)] = 1/(2√π) in closed form.
    assert p.mean == pytest.approx(1 / (2 * math.sqrt(math.pi)), abs=1e-10)


# -- the decision rules, on functions whose answers are known ---------------------------------


@pytest.mark.parametrize(
    "fn,below,above",
    [
        (lambda x: 1 - 1 / (1 + x.abs()), True, True),  # approaches its bound only like 1/x
        (lambda x: torch.sign(x) * (1 - (1 + x.abs()) ** -0.5), True, True),  # like 1/sqrt(x)
        (lambda x: torch.log1p(x.abs()), True, False),  # unbounded, but slowly
        (lambda x: torch.sign(x) * torch.log1p(x.abs()), False, False),
        (lambda x: x.abs().sqrt(), True, False),
        (lambda x: -torch.exp(-x * x), True, True),
        (lambda x: 0.01 * torch.minimum(x, torch.zeros_like(x)), False, True),
    ],
    ids=["1-1/x", "1-1/sqrt", "log", "signed-log", "sqrt", "gaussian", "small-slope"],
)
def test_boundedness_rule_uses_asymptotics_not_a_window(fn, below, above):
    p = actlab.properties(fn)
    assert (p.bounded_below, p.bounded_above) == (below, above)


def test_limits_per_side():
    p = actlab.properties(lambda x: torch.where(x < 0, -x, torch.tanh(x)))
    assert p.limits == (math.inf, 1.0)
    assert p.bounded_below and not p.bounded_above


@pytest.mark.parametrize(
    "fn,monotonic",
    [
        (lambda x: x + 0.5 * torch.sin(x), True),
        (lambda x: x + 2 * torch.sin(x), False),
        (lambda x: -torch.tanh(x), True),  # non-increasing counts
        (lambda x: torch.tanh(x) - 1e-3 * torch.exp(-((x - 30) ** 2)), False),  # a dip far from 0
    ],
)
def test_monotonic_rule(fn, monotonic):
    assert actlab.properties(fn).monotonic is monotonic


@pytest.mark.parametrize(
    "fn,c1",
    [
        (lambda x: x.abs(), False),
        (lambda x: x * x.abs(), True),  # C¹ but not C²
        (lambda x: x + 0.01 * torch.relu(x - 0.3137), False),  # a small kink between grid points
        (lambda x: torch.nn.functional.softplus(x), True),
        (lambda x: torch.nn.functional.elu(x), True),
        (lambda x: torch.nn.functional.elu(x, alpha=0.5), False),
        (lambda x: 2 * x, True),
    ],
    ids=["abs", "x|x|", "small-kink", "softplus", "elu", "elu0.5", "linear"],
)
def test_c1_rule(fn, c1):
    assert actlab.properties(fn).smooth_c1 is c1


def test_minimum_at_a_kink_is_located():
    p = actlab.properties(lambda x: torch.tanh((x - 0.3137).abs()))
    assert p.minimum == (pytest.approx(0.3137, abs=1e-9), pytest.approx(0.0, abs=1e-9))
    assert p.maximum == (-math.inf, 1.0) and not p.smooth_c1 and not p.monotonic


def test_zero_crossings_are_refined():
    p = actlab.properties(lambda x: x**3 - 2.0001 * x)
    root = math.sqrt(2.0001)
    assert len(p.zero_crossings) == 3
    assert p.zero_crossings == pytest.approx((-root, 0.0, root), abs=1e-12)


@pytest.mark.parametrize(
    "fn,mean,var",
    [
        (lambda x: x, 0.0, 1.0),
        (lambda x: x * x, 1.0, 2.0),
        (lambda x: x.abs(), math.sqrt(2 / math.pi), 1 - 2 / math.pi),
    ],
)
def test_normal_moments_closed_forms(fn, mean, var):
    p = actlab.properties(fn)
    assert p.mean == pytest.approx(mean, abs=1e-10) and p.var == pytest.approx(var, abs=1e-9)


# -- modules, channels, errors ------------------------------------------------------------


def test_per_channel_module_needs_a_channel_and_is_left_untouched():
    m = actlab.SRS(num_parameters=3)
    with torch.no_grad():
        m.raw_alpha.copy_(torch.tensor([0.0, 1.0, 2.0]))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="pass channel=i"):
        actlab.properties(m)
    with pytest.raises(ValueError, match="channel must be in"):
        actlab.properties(m, channel=3)
    p = actlab.properties(m, channel=1)
    alpha, beta = (m.values()[k][1].item() for k in ("alpha", "beta"))
    assert p.minimum[0] == pytest.approx(-beta, abs=1e-6)
    assert p.maximum[1] == pytest.approx(alpha, rel=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert m.raw_alpha.dtype == torch.float32


def test_nan_output_is_an_error_naming_the_point():
    with pytest.raises(ValueError, match="returned NaN"):
        actlab.properties(lambda x: torch.sqrt(x))


def test_mismatches_against_declared_flags():
    p = actlab.properties("tanh")
    assert p.mismatches() == []
    wrong = actlab.info("relu")  # unbounded above, not C¹
    assert p.mismatches(wrong) == [
        "bounded_above: declared False, measured True",
        "smooth: declared False, measured True",
    ]


def _random_default(name):
    """Does the default construction draw random parameters (so the shape depends on the seed)?"""
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(actlab.create(name).state_dict())
    return any(not torch.equal(a, states[1][k]) for k, a in states[0].items())


@pytest.mark.parametrize("name", actlab.list_activations())
def test_measured_properties_agree_with_registry(name):
    """The registry's flags are claims; the measurement must confirm every one."""
    if _random_default(name):
        pytest.skip(f"{name}: randomly initialised, so its default shape (and its flags) depend on the seed")
    p = actlab.properties(name)
    assert p.mismatches() == [], f"{name}: registry flags disagree with the measurement: {p.mismatches()}"
