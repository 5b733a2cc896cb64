"""float64 gradcheck of every custom backward, shared and per-channel, plus the APA λ-gradient bug."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import actlab
from actlab.elementwise import apply

PARAMETRIC = [n for n in actlab.list_activations() if issubclass(actlab.info(n).cls, actlab.ParametricActivation)]
FIXED_OPS = ["serf", "eelu"]


def _op_and_values(name, num_parameters=1):
    m = actlab.create(name, num_parameters=num_parameters, dtype=torch.float64)
    with torch.no_grad():
        # Move away from the defaults (and from symmetric settings) to exercise every term.
        values = [v * (1 + 0.1 * torch.arange(v.numel(), dtype=v.dtype).reshape(v.shape)) for v in m.op_params()]
    return m.op, [v.detach().clone().requires_grad_(True) for v in values]


def _inputs(shape):
    # Spread over the interesting range, avoiding exact kinks (e.g. PAU's |b1·x| at 0).
    return (torch.randn(shape, dtype=torch.float64) * 3 + 0.0123).requires_grad_(True)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_fused_gradcheck_shared(name):
    op, params = _op_and_values(name)
    x = _inputs((7, 3))
    assert gradcheck(lambda x, *p: apply(op, x, p, backend="fused"), (x, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", PARAMETRIC)
@pytest.mark.parametrize("channel_dim,shape", [(1, (2, 3, 4)), (-1, (2, 5, 3))])
def test_fused_gradcheck_per_channel(name, channel_dim, shape):
    op, params = _op_and_values(name, num_parameters=3)
    x = _inputs(shape)
    fn = lambda x, *p: apply(op, x, p, channel_dim=channel_dim, backend="fused")
    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", FIXED_OPS)
def test_fused_gradcheck_parameter_free(name):
    op = actlab.create(name).op
    x = _inputs((40,))
    assert gradcheck(lambda x: apply(op, x, (), backend="fused"), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["srs", "serf", "zorro", "aglu", "sau", "sqish", "pau"])
def test_fused_backward_is_twice_differentiable(name):
    """The closed-form backward is built from differentiable ops, so double backward works."""
    if name in FIXED_OPS:
        op, params = actlab.create(name).op, []
    else:
        op, params = _op_and_values(name)
    x = _inputs((6,))
    assert gradgradcheck(lambda x, *p: apply(op, x, p, backend="fused"), (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", PARAMETRIC + FIXED_OPS)
def test_module_gradients_agree_between_backends(name):
    """Module level: gradients w.r.t. the unconstrained parameters, reference vs fused."""
    x = torch.randn(4, 3, 5, dtype=torch.float64) * 4
    grads = {}
    for backend in ("reference", "fused"):
        kwargs = {"dtype": torch.float64, "num_parameters": 3} if name in PARAMETRIC else {}
        torch.manual_seed(1)
        m = actlab.create(name, **kwargs)
        m.backend = backend
        xi = x.clone().requires_grad_(True)
        (m(xi) * torch.linspace(-1, 1, 60, dtype=torch.float64).reshape(4, 3, 5)).sum().backward()
        grads[backend] = [xi.grad] + [p.grad for p in m.parameters()]
    for a, b in zip(grads["reference"], grads["fused"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _aglu_lambda_grad_released(z, lam, kappa, g):
    """The λ-gradient of the released UniRect backward (kostas1515/AGLU), with its missing term."""
    p = (lam * torch.exp(-kappa * z) + 1) ** (-1 / lam)
    return (g * -(z / lam) * p / (lam + torch.exp(kappa * z))).sum()


def test_aglu_lambda_gradient_includes_the_term_the_released_code_drops():
    torch.manual_seed(3)
    z = torch.randn(1000, dtype=torch.float64)
    g = torch.randn(1000, dtype=torch.float64)
    lam = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    kappa = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    (actlab.functional.aglu(z, lam, kappa, backend="fused") * g).sum().backward()
    # Independent: autograd through the textbook formula.
    lam2 = lam.detach().clone().requires_grad_(True)
    (z * (lam2 * torch.exp(-1.1 * z) + 1) ** (-1 / lam2) * g).sum().backward()
    torch.testing.assert_close(lam.grad, lam2.grad, rtol=1e-12, atol=1e-12)
    released = _aglu_lambda_grad_released(z, 0.7, 1.1, g)
    missing = (
        g * z * (0.7 * torch.exp(-1.1 * z) + 1) ** (-1 / 0.7) * torch.log1p(0.7 * torch.exp(-1.1 * z)) / 0.49
    ).sum()
    torch.testing.assert_close(lam.grad, released + missing, rtol=1e-12, atol=1e-12)
    assert abs(lam.grad - released) > 0.1  # the released value is materially wrong
