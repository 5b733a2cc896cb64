"""Values and derivatives against independent high-precision references (mpmath)."""

import math

import mpmath as mp
import pytest
import torch

import actlab
import actlab.functional as AF

from .reference_formulas import CASES, PAU_LEAKY, constructor_kwargs

BACKENDS = ("reference", "fused")
# Wide enough to reach the asymptotic regimes, where the stable rewrites take over.
POINTS = [-60.0, -25.0, -9.0, -3.7, -1.19, -0.4, -1e-3, 0.0, 2e-4, 0.3, 0.5, 0.9, 1.0, 1.6, 2.5, 4.0, 11.0, 35.0, 90.0]
DERIV_POINTS = [-40.0, -7.5, -2.2, -0.83, -0.27, 0.13, 0.61, 1.37, 2.9, 6.4, 30.0]

CASE_LIST = [(name, params) for name, (_, sets) in CASES.items() for params in sets]
CASE_IDS = [f"{n}-{i}" for n, (_, sets) in CASES.items() for i in range(len(sets))]
PARAMETRIC = [(c, i) for c, i in zip(CASE_LIST, CASE_IDS) if c[0] not in ("serf", "eelu")]


def _close(actual: float, expected, rel=1e-11, abs_=1e-13) -> bool:
    return math.isclose(actual, float(expected), rel_tol=rel, abs_tol=abs_)


def _module(name, params, backend):
    if issubclass(actlab.info(name).cls, actlab.ParametricActivation):
        m = actlab.create(name, **constructor_kwargs(name, params), dtype=torch.float64)
    else:
        m = actlab.create(name)
    m.backend = backend
    return m


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,params", CASE_LIST, ids=CASE_IDS)
def test_values_match_mpmath(name, params, backend):
    ref, _ = CASES[name]
    m = _module(name, params, backend)
    with torch.no_grad():
        y = m(torch.tensor(POINTS, dtype=torch.float64))
    for xi, yi in zip(POINTS, y.tolist()):
        expected = ref(mp.mpf(xi), **params)
        assert _close(yi, expected), f"{name}{params} at x={xi}: {yi} != {float(expected)}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,params", CASE_LIST, ids=CASE_IDS)
def test_input_derivative_matches_mpmath(name, params, backend):
    ref, _ = CASES[name]
    m = _module(name, params, backend)
    x = torch.tensor(DERIV_POINTS, dtype=torch.float64, requires_grad=True)
    m(x).sum().backward()
    for xi, gi in zip(DERIV_POINTS, x.grad.tolist()):
        expected = mp.diff(lambda t: ref(t, **params), mp.mpf(xi))
        assert _close(gi, expected, rel=1e-9, abs_=1e-12), f"{name}{params} d/dx at {xi}: {gi} != {float(expected)}"


def _functional_call(name, params):
    """(tensors to differentiate, a call x -> y, mpmath partials per tensor)."""
    ref = CASES[name][0]
    if name == "pau":
        num = list(params.get("numerator", PAU_LEAKY[0]))
        den = list(params.get("denominator", PAU_LEAKY[1]))
        tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in num + den]

        def call(x, backend):
            return AF.pau(x, tensors[: len(num)], tensors[len(num) :], backend=backend)

        def partial(i, x):
            def f(t):
                coeffs = num + den
                coeffs = coeffs[:i] + [t] + coeffs[i + 1 :]
                return ref(x, coeffs[: len(num)], coeffs[len(num) :])

            return mp.diff(f, mp.mpf((num + den)[i]))

        return tensors, call, partial
    module = actlab.create(name, **params, dtype=torch.float64)
    values = {p.name: float(v.item()) for p, v in zip(module.params, module.op_params())}
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values.values()]
    fn = getattr(AF, name)

    def call(x, backend):
        return fn(x, *tensors, backend=backend)

    def partial(i, x):
        key = list(values)[i]
        return mp.diff(lambda t: ref(x, **{**values, key: t}), mp.mpf(values[key]))

    return tensors, call, partial


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,params", [c for c, _ in PARAMETRIC], ids=[i for _, i in PARAMETRIC])
def test_parameter_derivatives_match_mpmath(name, params, backend):
    """d(Σ_i f(x_i))/dp for every parameter, against mpmath partials of the textbook formula."""
    tensors, call, partial = _functional_call(name, params)
    points = [p for p in DERIV_POINTS if abs(p) < 35]
    call(torch.tensor(points, dtype=torch.float64), backend).sum().backward()
    for i, t in enumerate(tensors):
        expected = sum(partial(i, mp.mpf(x)) for x in points)
        assert _close(t.grad.item(), expected, rel=1e-8, abs_=1e-11), (
            f"{name} parameter {i}: {t.grad.item()} != {float(expected)}"
        )
