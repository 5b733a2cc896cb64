"""torch.func transforms (vmap, jvp, jacrev, hessian, per-sample gradients) and forward-mode AD
over every activation, checked against per-sample loops and reverse-mode autograd; the dispatch
rule that sends them to the reference; and the cheap path around ``Function.apply``."""

import inspect

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call, grad, hessian, jacrev, jvp, vmap

import actlab
from actlab.elementwise import apply
from actlab.kernels import dispatch

# torch loads its forward-AD decompositions with torch.jit.script, which warns in torch 2.13.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

NAMES = actlab.list_activations()
TRAINABLE = actlab.list_activations(trainable=True)


def _module(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    m = actlab.create(name, **kwargs).double()
    with torch.no_grad():  # away from the initial values, so that every parameter matters
        for p in m.parameters():
            p.mul_(1 + 0.05 * torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape)).add_(0.01)
    # SLAF's training mode updates running statistics (a clear error under transforms, tested below).
    return m.eval()


def _inputs(*shape: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(*shape, dtype=torch.float64) * 2 + 0.0123


@pytest.mark.parametrize("name", NAMES)
def test_vmap_gives_the_per_sample_results(name):
    m = _module(name)
    x = _inputs(3, 2, 5)
    expected = torch.stack([m(sample) for sample in x])
    torch.testing.assert_close(vmap(m)(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_jvp_and_forward_ad_match_the_reverse_mode_jacobian(name):
    m = _module(name)
    x, t = _inputs(2, 6), torch.randn(2, 6, dtype=torch.float64)
    # Reverse mode through the default path (the fused Functions for actlab's activations).
    jacobian = torch.autograd.functional.jacobian(m, x).reshape(12, 12)
    expected = (jacobian @ t.reshape(12)).reshape(2, 6)
    value, tangent = jvp(m, (x,), (t,))
    torch.testing.assert_close(value, m(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tangent, expected, rtol=1e-9, atol=1e-10)
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(m(fwAD.make_dual(x, t)))
    torch.testing.assert_close(dual.tangent, expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(jacrev(m)(x).reshape(12, 12), jacobian, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", TRAINABLE)
def test_per_sample_parameter_gradients_by_vmap_of_grad(name):
    m = _module(name)
    params = {k: v.detach() for k, v in m.named_parameters()}
    x, target = _inputs(4, 1, 5), torch.randn(4, 1, 5, dtype=torch.float64)

    def loss(p, sample, goal):
        return ((functional_call(m, p, (sample,)) - goal) ** 2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, target)
    for i in range(4):
        m.zero_grad()
        loss(dict(m.named_parameters()), x[i], target[i]).backward()
        for k, p in m.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad, rtol=1e-9, atol=1e-11, msg=f"{name}.{k}, sample {i}")


@pytest.mark.parametrize("name", ["srs", "serf", "pau", "zorro", "apa", "ditac"])
def test_hessian_matches_reverse_over_reverse(name):
    m = _module(name)
    x = _inputs(7)
    f = lambda z: m(z).sum()
    expected = torch.autograd.functional.hessian(f, x)
    torch.testing.assert_close(hessian(f)(x), expected, rtol=1e-8, atol=1e-10)


def test_every_backend_is_the_reference_under_transforms_and_forward_ad():
    op = actlab.create("srs").op
    seen = []

    def record(x):
        seen.extend(dispatch.choose(op, x, backend) for backend in ("auto", "fused", "compiled"))
        return x

    x = torch.randn(3, 4)
    vmap(record)(x)
    grad(lambda z: record(z).sum())(x)
    with fwAD.dual_level():
        record(fwAD.make_dual(x, torch.ones_like(x)))
    assert seen == ["reference"] * 9
    assert dispatch.choose(op, x, "fused") == "fused"  # and nothing lingers afterwards


def test_slaf_training_mode_under_a_transform_is_a_clear_error():
    m = actlab.create("slaf").double().train()
    before = {k: v.clone() for k, v in m.state_dict().items() if isinstance(v, torch.Tensor)}
    x = _inputs(3, 2, 5)
    with pytest.raises(ValueError, match=r"running statistics.*\.eval\(\)"):
        vmap(m)(x)
    with pytest.raises(ValueError, match=r"running statistics.*\.eval\(\)"):
        grad(lambda z: m(z).sum())(x)
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    # Without running statistics there is nothing to update, and training mode works.
    free = actlab.SLAF(normalize=False).double().train()
    torch.testing.assert_close(vmap(free)(x), free(x))


def test_slaf_training_under_forward_ad_updates_the_statistics_as_autograd_does():
    m, twin = actlab.create("slaf").double(), actlab.create("slaf").double()
    twin.load_state_dict(m.state_dict())
    x, t = _inputs(4, 6), torch.randn(4, 6, dtype=torch.float64)
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(m(fwAD.make_dual(x, t)))
    torch.testing.assert_close(dual.primal, twin(x))
    for (k, v), w in zip(m.state_dict().items(), twin.state_dict().values()):
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, w), k
            assert fwAD.unpack_dual(v).tangent is None, k


def test_function_calls_skip_the_signature_binding_outside_transforms(monkeypatch):
    """``Function.apply`` binds arguments with ``inspect.signature`` on every call (about 12 µs);
    actlab's call does not, and gives the same graph and gradients."""
    op = actlab.create("swish").op
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    expected = torch.autograd.grad(apply(op, x, (beta,), backend="reference").sum(), (x, beta))
    # Inside a transform the call goes through Function.apply (its functorch handling).
    under_grad = grad(lambda z: dispatch.apply_function(op.function, z, beta.detach()).sum())(x.detach())
    torch.testing.assert_close(under_grad, expected[0])

    def no_binding(*args, **kwargs):
        raise AssertionError("inspect.signature called")

    monkeypatch.setattr(inspect, "signature", no_binding)
    with pytest.raises(AssertionError, match="inspect.signature called"):
        op.function.apply(x, beta)  # what the binding costs: torch's own call makes it
    y = apply(op, x, (beta,), backend="fused")
    assert type(y.grad_fn).__name__ == "SwishFunctionBackward"
    got = torch.autograd.grad(y.sum(), (x, beta))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
