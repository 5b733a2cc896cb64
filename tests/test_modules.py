"""Module conventions: parameters, per-channel layout, constraints, state_dict, devices, repr."""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import actlab
from actlab.activations.srs import MAX_BETA_OVER_ALPHA

PARAMETRIC = [n for n in actlab.list_activations() if issubclass(actlab.info(n).cls, actlab.ParametricActivation)]


@pytest.mark.parametrize("name", PARAMETRIC)
def test_state_dict_round_trip_with_weights_only_load(name):
    torch.manual_seed(0)
    a = actlab.create(name, num_parameters=3)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = actlab.create(name, num_parameters=3)
    b.load_state_dict(state)
    x = torch.randn(5, 3, 2)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    for k, v in a.values().items():
        torch.testing.assert_close(v, b.values()[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", PARAMETRIC)
def test_to_dtype_moves_every_tensor(name):
    m = actlab.create(name, num_parameters=2).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in list(m.parameters()) + list(m.buffers()))
    frozen = actlab.create(name, trainable=False).to(torch.float64)
    assert len(list(frozen.parameters())) == 0
    assert all(t.dtype == torch.float64 for t in frozen.buffers()) and len(list(frozen.buffers())) > 0
    assert set(frozen.state_dict()) == set(actlab.create(name).state_dict())


@pytest.mark.parametrize("name", PARAMETRIC)
@pytest.mark.parametrize(
    "shape,channel_dim",
    [((6, 4), 1), ((2, 4, 3, 3), 1), ((2, 5, 4), -1), ((2, 5, 4), 2), ((4, 7), 0)],
)
def test_per_channel_equals_shared_module_per_channel(name, shape, channel_dim):
    """Channel c of a per-channel module behaves exactly like a shared module with channel c's values."""
    torch.manual_seed(1)
    C = shape[channel_dim]
    m = actlab.create(name, num_parameters=C, channel_dim=channel_dim)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    x = torch.randn(shape) * 3
    y = m(x)
    assert y.shape == x.shape
    for c in range(C):
        shared = actlab.create(name)
        with torch.no_grad():
            for (_, p_shared), (_, p) in zip(shared.named_parameters(), m.named_parameters()):
                p_shared.copy_(p[c : c + 1])
        xc, yc = x.select(channel_dim, c), y.select(channel_dim, c)
        torch.testing.assert_close(yc, shared(xc))


@pytest.mark.parametrize("name", PARAMETRIC)
def test_channel_mismatch_is_a_clear_error(name):
    m = actlab.create(name, num_parameters=3)
    with pytest.raises(ValueError, match="3 per-channel values but the input has 5 channels"):
        m(torch.randn(2, 5))
    with pytest.raises(ValueError, match="no channel dimension"):
        m(torch.randn(3))


def _constraint_violations(name: str, m) -> list[str]:
    v = m.values()
    problems = []
    positive = {
        "srs": ["alpha", "beta"],
        "zorro": ["a", "b"],
        "zorro_asymmetric": ["a_neg", "b_neg", "a_pos", "b_pos"],
        "zorro_sigmoid": ["slope", "a", "b"],
        "zorro_tanh": ["slope", "a", "b"],
        "zorro_sloped": ["a", "b"],
        "apa": ["lam"],
        "aglu": ["lam"],
        "sau": ["sigma"],
        "sqish": ["beta"],
    }.get(name, [])
    for key in positive:
        if not (v[key] > 0).all():
            problems.append(f"{key} <= 0: {v[key]}")
    if name == "srs" and not (v["beta"] < MAX_BETA_OVER_ALPHA * v["alpha"] * (1 + 1e-6)).all():
        problems.append(f"beta >= {MAX_BETA_OVER_ALPHA}·alpha")
    if name == "srs" and not (v["beta"] < math.e * v["alpha"]).all():
        problems.append("beta >= e·alpha: SRS has a pole")
    return problems


@pytest.mark.parametrize("name", [n for n in PARAMETRIC if n != "prelu"])
@settings(max_examples=6, deadline=None)
@given(lr=st.floats(1e-1, 1e3), seed=st.integers(0, 2**16))
def test_constraints_hold_after_many_large_optimizer_steps(name, lr, seed):
    """Adam moves each raw parameter by up to ~lr per step: hundreds of units here."""
    torch.manual_seed(seed)
    m = actlab.create(name, num_parameters=2)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    x = torch.randn(64, 2) * 4
    target = torch.randn(64, 2) * 10
    for _ in range(25):
        opt.zero_grad()
        loss = ((m(x) - target) ** 2).mean()
        loss.backward()
        for p in m.parameters():  # random kicks so that every direction is explored
            p.grad = torch.nan_to_num(p.grad) + torch.randn_like(p) * 10
        opt.step()
    assert _constraint_violations(name, m) == []
    # Unconstrained parameters may have grown large (SAU's alpha·x can exceed
    # float range at x = 1e30), so finiteness is checked on moderate inputs.
    y = m(torch.tensor([[-50.0, -3.0], [0.0, 50.0]]))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: actlab.SRS(alpha=-1.0), r"alpha must be a finite number > 0.0001"),
        (lambda: actlab.SRS(alpha=1.0, beta=2.7), r"beta < 2.6·alpha"),
        (lambda: actlab.SRS(beta=0.0), r"beta must be a finite number > 1e-06"),
        (lambda: actlab.Zorro(a=0.0), r"a must be a finite number > 1e-06"),
        (lambda: actlab.Zorro(b=float("nan")), r"b must be a finite number > 1e-06"),
        (lambda: actlab.APA(lam=0.0), r"lam must be a finite number > 0.0001"),
        (lambda: actlab.AGLU(kappa=float("inf")), r"kappa must be finite"),
        (lambda: actlab.SAU(sigma=-2.0), r"sigma must be"),
        (lambda: actlab.Sqish(beta=0.0), r"beta must be"),
        (lambda: actlab.SRS(num_parameters=0), r"num_parameters must be a positive integer"),
        (lambda: actlab.SRS(num_parameters=2.5), r"num_parameters must be a positive integer"),
        (lambda: actlab.SRS(channel_dim="1"), r"channel_dim must be an integer"),
        (lambda: actlab.PAU(degrees=(5,)), r"degrees must be a pair"),
        (lambda: actlab.PAU(degrees=(3, 0)), r"m >= 0 and n >= 1"),
        (lambda: actlab.PAU(init="nope"), r"no coefficient preset named 'nope'"),
        (lambda: actlab.PAU(numerator=(1.0, 2.0)), r"need 6 numerator and 4 denominator coefficients, got 2 and 4"),
        (lambda: actlab.PAU(degrees=(7, 2)), r"no entry for degrees \(7, 2\)"),
        (lambda: actlab.Swish(beta="x"), r"beta must be a number"),
    ],
)
def test_invalid_constructor_values_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_functional_checks_numbers_and_accepts_tensors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="alpha must be"):
        actlab.functional.srs(x, alpha=-2.0)
    with pytest.raises(ValueError, match="beta must be < e·alpha"):
        actlab.functional.srs(x, alpha=1.0, beta=3.0)
    with pytest.raises(TypeError, match="floating-point"):
        actlab.functional.serf(torch.arange(3))
    alpha = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = actlab.functional.srs(x, alpha, 1.5)
    y.sum().backward()
    assert alpha.grad.shape == (3,) and torch.isfinite(alpha.grad).all()
    torch.testing.assert_close(y[:, 1], actlab.functional.srs(x[:, 1], 2.0, 1.5))


@pytest.mark.parametrize("name", PARAMETRIC)
def test_reset_parameters_restores_initial_values(name):
    m = actlab.create(name, num_parameters=2)
    before = {k: v.detach().clone() for k, v in m.values().items()}
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    m.reset_parameters()
    for k, v in m.values().items():
        torch.testing.assert_close(v, before[k])


def test_values_match_constructor_arguments():
    m = actlab.SRS(alpha=5.0, beta=3.0, dtype=torch.float64)
    assert m.alpha.item() == pytest.approx(5.0, rel=1e-12) and m.beta.item() == pytest.approx(3.0, rel=1e-12)
    z = actlab.Zorro(a=4.0, b=2.0, num_parameters=3, dtype=torch.float64)
    assert z.a.shape == (3,) and torch.allclose(z.a, torch.full((3,), 4.0, dtype=torch.float64))
    p = actlab.PAU()
    assert p.numerator.shape == (1, 6) and p.denominator.shape == (1, 4)


def test_extra_repr_reports_values_and_layout():
    assert repr(actlab.SRS()) == "SRS(alpha=2, beta=3, num_parameters=1)"
    r = repr(actlab.Zorro(num_parameters=8, channel_dim=-1, trainable=False))
    assert r == "Zorro(num_parameters=8, channel_dim=-1, trainable=False)"
    m = actlab.AGLU()
    m.backend = "reference"
    assert "backend='reference'" in repr(m)


def test_backend_switch():
    m = actlab.Serf()
    with pytest.raises(ValueError, match="unknown backend 'turbo'"):
        m.backend = "turbo"
    with pytest.raises(ValueError, match="unknown backend"):
        actlab.set_backend("turbo")
    assert actlab.get_backend() == "auto"
    with actlab.set_backend("reference"):
        assert actlab.get_backend() == "reference"
        y = m(torch.randn(3, requires_grad=True))
        assert "Fused" not in type(y.grad_fn).__name__
    assert actlab.get_backend() == "auto"
    y = m(torch.randn(3, requires_grad=True))
    assert type(y.grad_fn).__name__ == "SerfFunctionBackward"


@pytest.mark.parametrize("name", PARAMETRIC + ["serf", "eelu"])
def test_fused_path_saves_only_the_input(name):
    """Saved for backward: the input and the (parameter-sized) values, nothing input-sized besides."""
    m = actlab.create(name)
    m.backend = "fused"
    x = torch.randn(64, 32, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x)
    big = [t for t in saved if t.numel() >= x.numel()]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()
    assert sum(t.numel() for t in saved if t.numel() < x.numel()) <= 16


def test_trainable_false_keeps_constants_as_buffers():
    m = actlab.SRS(trainable=False)
    assert list(m.parameters()) == []
    assert set(dict(m.named_buffers())) == {"raw_alpha", "raw_beta"}
    x = torch.randn(5, requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None
