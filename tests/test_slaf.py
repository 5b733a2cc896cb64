"""SLAF: bases against independent float64 (NumPy) evaluations, statistics, gradients, memory, numerics."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.polynomial import chebyshev as np_cheb
from torch import nn

import actlab
import actlab.sites
from actlab import SLAF, SLAFChebyshev, SLAFFourier
from actlab.activations.slaf import slaf

from .repo_files import REPO, load

EPS = 1e-8
ROUTINES = [
    pytest.param(dict(basis="taylor", normalize=True), id="taylor-bn"),
    pytest.param(dict(basis="taylor", normalize="max"), id="taylor-max"),
    pytest.param(dict(basis="taylor", normalize=False), id="taylor-plain"),
    pytest.param(dict(basis="chebyshev", normalize="max"), id="chebyshev-max"),
    pytest.param(dict(basis="fourier", normalize="max"), id="fourier-emfn"),
]


# --------------------------------------------------------------------------------------
# Independent NumPy float64 evaluations of the official formulas (channel axis 1)
# --------------------------------------------------------------------------------------
def _axes(x: np.ndarray, per_channel: bool) -> tuple[int, ...]:
    return tuple(d for d in range(x.ndim) if d != 1) if per_channel else tuple(range(x.ndim))


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(P,) -> broadcast along axis 1 of x (P = 1 broadcasts everywhere)."""
    return v.reshape([1, -1] + [1] * (x.ndim - 2)) if v.size > 1 else v.reshape([1] * x.ndim)


def np_taylor_bn(x, w, b, per_channel_stats, stats=None):
    """Official taylor_batch_norm.py: BN of each power with batch moments (or given running ones)."""
    axes = _axes(x, per_channel_stats)
    y = _per_channel(b, x).astype(np.float64)
    for i in range(w.shape[1]):
        p = x ** (i + 1)
        if stats is None:
            mu = p.mean(axis=axes, keepdims=True)
            var = ((p - mu) ** 2).mean(axis=axes, keepdims=True)
        else:
            mu = _per_channel(stats[0][:, i], x)
            var = _per_channel(stats[1][:, i], x) ** 2
        y = y + _per_channel(w[:, i], x) * (p - mu) / np.sqrt(var + EPS)
    return y


def np_basis(basis: str, u: np.ndarray, k: int, sines: int = 0) -> list[np.ndarray]:
    if basis == "taylor":
        return [u ** (i + 1) for i in range(k)]
    if basis == "chebyshev":
        return [np_cheb.chebval(u, [0] * (i + 1) + [1]) for i in range(k)]
    out = [np.sin((2 * j - 1) * np.pi * u / 2) for j in range(1, sines + 1)]
    return out + [np.cos(j * np.pi * u) for j in range(1, k - sines + 1)]


def np_scaled(x, w, b, basis, mode, scale=2.0, offset=1e-8, running_max=None, per_channel_stats=False, sines=0):
    if mode == "channel":
        m = (
            np.abs(x).max(axis=_axes(x, per_channel_stats), keepdims=True)
            if running_max is None
            else _per_channel(running_max, x)
        )
        u = x / (scale * m + offset)
    elif mode == "sample":
        m = np.abs(x).reshape(x.shape[0], -1).max(axis=1).reshape([-1] + [1] * (x.ndim - 1))
        u = x / (scale * m + offset)
    else:
        u = x
    y = _per_channel(b, x).astype(np.float64)
    for i, g in enumerate(np_basis(basis, u, w.shape[1], sines)):
        y = y + _per_channel(w[:, i], x) * g
    return y


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def expected_output(m: SLAF, x: torch.Tensor, training: bool) -> np.ndarray:
    xs, w, b = _np(x), _np(m.weight), _np(m.bias)
    per_channel = m.num_features > 1
    if m.normalize is True:
        stats = None if training else (_np(m.running_mean), _np(m.running_std))
        return np_taylor_bn(xs, w, b, per_channel, stats)
    if m.normalize is False:
        return np_scaled(xs, w, b, m.basis, "none")
    mode = "sample" if m.basis == "fourier" else "channel"
    running = None if (training or mode == "sample") else _np(m.running_max)
    return np_scaled(
        xs, w, b, m.basis, mode, float(m.scale.detach()), float(m.offset.detach()), running, per_channel, m.sines or 0
    )


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("channels", [(1, 1), (3, 3), (1, 3)], ids=["shared", "per-channel", "shared-w-channel-stats"])
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_values_match_independent_float64(routine, training, channels, backend):
    torch.manual_seed(0)
    num_parameters, num_features = channels
    m = SLAF(degree=5, num_parameters=num_parameters, num_features=num_features, dtype=torch.float64, **routine)
    m.backend = backend
    with torch.no_grad():  # non-trivial statistics and scale for the evaluation path
        if m.normalize is True:
            m.running_mean.normal_()
            m.running_std.uniform_(0.5, 2.0)
        if hasattr(m, "running_max"):
            m.running_max.uniform_(1.0, 3.0)
        if hasattr(m, "scale"):
            m.scale.fill_(1.3)
    x = torch.randn(6, 3, 4, dtype=torch.float64) * 1.5
    expected = expected_output(m, x, training)
    m.train(training)
    y = m(x)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("routine", ROUTINES)
def test_float32_close_to_float64(routine):
    torch.manual_seed(1)
    m = SLAF(degree=6, num_parameters=4, **routine).train()
    x = torch.randn(16, 4, 5)
    expected = expected_output(m, x, training=True)
    np.testing.assert_allclose(_np(m(x)), expected, rtol=1e-4, atol=1e-4)


def test_channel_dim_last_matches_channel_first():
    torch.manual_seed(2)
    first = SLAF(degree=4, num_parameters=3)
    last = SLAF(degree=4, num_parameters=3, channel_dim=-1)
    last.load_state_dict(first.state_dict())
    x = torch.randn(5, 3, 7)
    torch.testing.assert_close(last(x.transpose(1, 2)), first(x).transpose(1, 2))
    torch.testing.assert_close(last.running_mean, first.running_mean)


def test_fourier_scaling_is_per_sample():
    """EMFN divides by the max |x| over each sample's features: samples do not interact."""
    torch.manual_seed(3)
    m = SLAFFourier(degree=(2, 2))
    x = torch.randn(4, 3, 5)
    whole = m(x)
    one = m(x[1:2])
    torch.testing.assert_close(whole[1:2], one)
    x_changed = x.clone()
    x_changed[1, 0, 0] = 50.0  # a new max for sample 1 changes all of its outputs
    assert not torch.allclose(m(x_changed)[1, 2], whole[1, 2])
    torch.testing.assert_close(m(x_changed)[0], whole[0])


@pytest.mark.parametrize("sines,cosines", [(1, 1), (0, 3), (3, 0), (4, 5), (1, 0), (0, 1)])
def test_fast_fourier_terms_equal_direct_sines_and_cosines(sines, cosines):
    """The fast paths' Chebyshev-of-one-sine form against sin/cos of each multiple (float64)."""
    from actlab.activations.slaf import _fourier_terms, _fourier_terms_from_sine

    u = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64)
    direct = list(_fourier_terms(u, sines, cosines, True))
    fast = list(_fourier_terms_from_sine(u, sines, cosines, True))
    assert len(fast) == len(direct) == sines + cosines
    for (value, slope), (fast_value, fast_slope) in zip(direct, fast):
        torch.testing.assert_close(fast_value, value, rtol=0, atol=1e-13)
        torch.testing.assert_close(fast_slope, slope, rtol=0, atol=1e-12)


def test_fourier_degree_int_splits_sines_first():
    assert SLAF(basis="fourier", degree=5).sines == 3
    assert SLAFFourier().sines == 1 and SLAFFourier().degree == 2


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------
def test_running_statistics_hand_computation():
    torch.manual_seed(4)
    m = SLAF(degree=3, num_parameters=2)
    x1, x2 = torch.randn(8, 2, 5, dtype=torch.float64), torch.randn(8, 2, 5, dtype=torch.float64) + 0.5
    m.train()
    m(x1.float())
    m(x2.float())
    mean = np.zeros((2, 3))
    var = np.ones((2, 3))
    for x in (_np(x1.float()), _np(x2.float())):
        for i in range(3):
            p = x ** (i + 1)
            mean[:, i] = 0.99 * mean[:, i] + 0.01 * p.mean(axis=(0, 2))
            var[:, i] = 0.99 * var[:, i] + 0.01 * p.var(axis=(0, 2))  # biased, as tf.nn.moments
    np.testing.assert_allclose(_np(m.running_mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(m.running_std), np.sqrt(var), rtol=1e-5)
    # evaluation uses exactly those statistics, and does not change them
    m.eval()
    x3 = torch.randn(3, 2, 4)
    before = m.running_mean.clone()
    expected = np_taylor_bn(_np(x3), _np(m.weight), _np(m.bias), True, (mean, np.sqrt(var)))
    np.testing.assert_allclose(_np(m(x3)), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.running_mean, before)


def test_dense_statistics_per_feature_with_shared_coefficients():
    """Official dense layers: w shared (1 x k) but statistics per neuron."""
    torch.manual_seed(5)
    m = SLAF(degree=2, num_features=4)
    assert m.weight.shape == (1, 2) and m.running_mean.shape == (4, 2)
    x = torch.randn(10, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    m(x)
    np.testing.assert_allclose(_np(m.running_mean[:, 0]), 0.01 * _np(x).mean(axis=0), rtol=1e-5, atol=1e-7)


def test_running_max_hand_computation():
    torch.manual_seed(6)
    m = SLAF(normalize="max", num_parameters=3)
    x1, x2 = torch.randn(4, 3, 6), torch.randn(4, 3, 6) * 3
    m(x1)
    m(x2)
    expected = np.ones(3)
    for x in (x1, x2):
        expected = 0.99 * expected + 0.01 * np.abs(_np(x)).max(axis=(0, 2))
    np.testing.assert_allclose(_np(m.running_max), expected, rtol=1e-6)


def test_state_dict_round_trip_keeps_running_statistics():
    torch.manual_seed(7)
    for kw in (dict(num_parameters=3), dict(normalize="max", num_features=3), dict(basis="fourier")):
        m = SLAF(**kw)
        for _ in range(3):
            m(torch.randn(8, 3, 4) * 2 + 1)
        clone = SLAF(**kw)
        clone.load_state_dict(m.state_dict())
        m.eval()
        clone.eval()
        x = torch.randn(5, 3, 4)
        torch.testing.assert_close(clone(x), m(x), rtol=0, atol=0)
        for name, buf in m.named_buffers():
            torch.testing.assert_close(dict(clone.named_buffers())[name], buf, rtol=0, atol=0)


def test_to_moves_and_casts_every_tensor():
    m = SLAF(num_parameters=2, normalize=True).to(torch.float64)
    assert {t.dtype for t in list(m.parameters()) + list(m.buffers())} == {torch.float64}
    m2 = SLAF(normalize="max").double()
    assert m2.running_max.dtype == m2.offset.dtype == torch.float64


def test_single_value_per_group_in_training_gives_the_bias():
    """The official code divides 0 by sqrt(0 + eps): every normalised power is 0 (BatchNorm would raise)."""
    m = SLAF(num_parameters=3)
    x = torch.randn(1, 3, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, m.bias.detach().reshape(1, 3))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.zeros_like(x))
    m.eval()
    assert not torch.allclose(m(x), m.bias.reshape(1, 3))


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------
def _functional_args(routine, num_parameters, num_features, k=4):
    g = torch.Generator().manual_seed(8)
    kw = dict(basis=routine["basis"], normalize=routine["normalize"])
    tensors = dict(
        weight=torch.randn(num_parameters, k, dtype=torch.float64, generator=g),
        bias=torch.randn(num_parameters, dtype=torch.float64, generator=g),
    )
    if routine["normalize"] is True:
        kw["running_mean"] = torch.randn(num_features, k, dtype=torch.float64, generator=g)
        kw["running_std"] = torch.rand(num_features, k, dtype=torch.float64, generator=g) + 0.5
    if routine["normalize"] == "max":
        tensors["scale"] = torch.tensor([1.7], dtype=torch.float64)
        tensors["offset"] = torch.tensor([0.3], dtype=torch.float64)
        if routine["basis"] != "fourier":
            kw["running_max"] = torch.rand(num_features, dtype=torch.float64, generator=g) + 1
    return tensors, kw


def _call(x, tensors, kw, training, backend):
    kw = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}  # buffers are updated in place
    return slaf(x, training=training, backend=backend, channel_dim=1, **tensors, **kw)


@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    "channels", [(1, 1), (2, 2), (1, 2), (2, 1)], ids=["shared", "per-channel", "w-shared", "stats-shared"]
)
def test_gradcheck_fused_float64(routine, training, channels):
    tensors, kw = _functional_args(routine, *channels)
    x = torch.randn(3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    names = list(tensors)
    inputs = (x.requires_grad_(), *(tensors[n].requires_grad_() for n in names))

    def fn(x, *params):
        return _call(x, dict(zip(names, params)), kw, training, "fused")

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_gradients_match_reference(routine, training):
    tensors, kw = _functional_args(routine, 3, 3, k=6)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(10)).requires_grad_()
    for t in tensors.values():
        t.requires_grad_()
    inputs = (x, *tensors.values())
    y_fused = _call(x, tensors, kw, training, "fused")
    y_ref = _call(x, tensors, kw, training, "reference")
    g = torch.randn_like(y_fused)
    torch.testing.assert_close(y_fused, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(y_fused, inputs, g), torch.autograd.grad(y_ref, inputs, g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_max_gradient_is_shared_among_ties_like_amax():
    tensors, kw = _functional_args(dict(basis="taylor", normalize="max"), 1, 1)
    x = torch.tensor([[3.0, -3.0, 1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    gf = torch.autograd.grad(_call(x, tensors, kw, True, "fused").sum(), x)[0]
    gr = torch.autograd.grad(_call(x, tensors, kw, True, "reference").sum(), x)[0]
    torch.testing.assert_close(gf, gr)


# --------------------------------------------------------------------------------------
# Compiled kernels (backend "compiled", chosen by "auto" at or above the compile threshold)
# --------------------------------------------------------------------------------------
from actlab.kernels import compiled as compiled_kernels  # noqa: E402
from actlab.kernels import dispatch  # noqa: E402


@pytest.mark.compile
@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_compiled_matches_fused_and_auto_selects_it(monkeypatch, routine, training):
    """float64, per-channel coefficients and statistics, every gradient; the kernels must be the
    ones "auto" ran (the threshold is lowered so that a small input compiles)."""
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    tensors, kw = _functional_args(routine, 3, 3, k=6)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(11)) * 2
    x.requires_grad_()
    for t in tensors.values():
        t.requires_grad_()
    inputs = (x, *tensors.values())
    ran = []
    run = compiled_kernels.run
    monkeypatch.setattr(compiled_kernels, "run", lambda name, *args: ran.append(name) or run(name, *args))
    y_auto = _call(x, tensors, kw, training, "auto")
    g = torch.randn_like(y_auto)
    grads_auto = torch.autograd.grad(y_auto, inputs, g)
    if routine["normalize"] is not True:
        expected = ["slaf_basis_forward", "slaf_basis_backward"]
    elif training:
        expected = ["slaf_power_moments", "slaf_power_centred", "slaf_power_grad_sums", "slaf_power_input_grad"]
    else:
        expected = ["slaf_power_polynomial", "slaf_power_grad_sums", "slaf_polynomial_input_grad"]
    assert ran == expected
    y_fused = _call(x, tensors, kw, training, "fused")
    grads_fused = torch.autograd.grad(y_fused, inputs, g)
    assert len(ran) == len(expected)  # "fused" runs no kernel
    torch.testing.assert_close(y_auto, y_fused, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(("x", *tensors), grads_auto, grads_fused):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"d/d{name}: {m}")


@pytest.mark.compile
def test_auto_compiles_slaf_from_a_quarter_of_the_elementwise_threshold(monkeypatch):
    tensors, kw = _functional_args(dict(basis="taylor", normalize=True), 3, 3, k=6)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    ran = []
    run = compiled_kernels.run
    monkeypatch.setattr(compiled_kernels, "run", lambda name, *args: ran.append(name) or run(name, *args))
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 4 * x.numel())
    _call(x, tensors, kw, False, "auto")
    assert ran == ["slaf_power_polynomial"]
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 4 * x.numel() + 4)
    _call(x, tensors, kw, False, "auto")
    assert ran == ["slaf_power_polynomial"]  # below the threshold: eager


@pytest.mark.compile
def test_compiled_running_statistics_and_float32_agree_with_fused():
    """The batch statistics a compiled training step returns update the running ones as the
    eager step does; float32 values stay within float32 rounding of the fused path."""
    x = torch.randn(8, 4, 6, 6) * 3 + 1
    ms = {}
    for backend in ("fused", "compiled"):
        torch.manual_seed(0)
        m = SLAF(degree=5, num_parameters=4)
        m.backend = backend
        y = m(x)
        ms[backend] = (m, y)
    (mf, yf), (mc, yc) = ms["fused"], ms["compiled"]
    torch.testing.assert_close(yc, yf, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(mc.running_mean, mf.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mc.running_std, mf.running_std, rtol=1e-5, atol=1e-6)


@pytest.mark.compile
@pytest.mark.parametrize("layout", ["channels-last-axis", "non-contiguous"])
def test_compiled_handles_channel_axis_and_strides_like_fused(layout):
    base = torch.randn(6, 5, 14, generator=torch.Generator().manual_seed(13))
    if layout == "channels-last-axis":
        x, kwargs = base, dict(num_parameters=14, channel_dim=-1)
    else:
        x, kwargs = base[:, :, ::2], dict(num_parameters=5)
        assert not x.is_contiguous()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(14))
    results = []
    for backend in ("fused", "compiled"):
        torch.manual_seed(0)
        m = SLAF(degree=3, **kwargs)
        m.backend = backend
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.backward(g)
        results.append((y, xi.grad, m.weight.grad, m.bias.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.gpu
@pytest.mark.compile
@pytest.mark.parametrize("routine", ROUTINES)
@pytest.mark.parametrize("backend", ["fused", "compiled"])
def test_cuda_matches_cpu(routine, backend):
    """Both fast paths on CUDA (the compiled one as inductor's Triton kernels) against the CPU
    fused path, float64, per-channel, training: values and every gradient."""
    tensors, kw = _functional_args(routine, 3, 3, k=5)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(15)) * 2
    g = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(16))
    results = []
    for device, path in (("cpu", "fused"), ("cuda", backend)):
        on = {k: v.to(device).requires_grad_() for k, v in tensors.items()}
        kw_on = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        xd = x.to(device).requires_grad_()
        y = _call(xd, on, kw_on, True, path)
        results.append([t.cpu() for t in (y, *torch.autograd.grad(y, (xd, *on.values()), g.to(device)))])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.compile
def test_compiled_power_sum_gradcheck_float64():
    tensors, kw = _functional_args(dict(basis="taylor", normalize=True), 3, 3, k=6)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    names = list(tensors)
    inputs = (x.requires_grad_(), *(tensors[n].requires_grad_() for n in names))

    def fn(x, *params):
        return _call(x, dict(zip(names, params)), kw, True, "compiled")

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.compile
def test_compiled_path_reports_bad_shapes_as_errors_not_as_failed_builds(monkeypatch):
    monkeypatch.setattr(dispatch, "_disabled", {})
    m = SLAF(degree=3, num_parameters=5)
    m.backend = "compiled"
    with pytest.raises(ValueError, match="5 per-channel values but the input has 3 channels"):
        m(torch.randn(4, 3, 8))
    m.backend = "auto"
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    with pytest.raises(ValueError, match="5 per-channel values"):
        m(torch.randn(4, 3, 8))
    assert "compiled" not in dispatch._disabled


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
# The benchmark's own measurement, so that the test asserts exactly what it reports.
saved_input_multiples = load("benchmarks/slaf_memory.py").saved_input_multiple


@pytest.mark.parametrize("routine", ROUTINES)
def test_fused_saves_at_most_two_inputs_for_any_degree(routine):
    x = torch.randn(4, 8, 8, 8, requires_grad=True)
    for k in range(2, 9):
        m = SLAF(degree=k, num_parameters=8, **routine)
        fused = saved_input_multiples(m, x)
        assert fused <= 2.0, (k, fused)
        m.backend = "reference"
        assert saved_input_multiples(m, x) >= k  # the measurement does see a naive graph


@pytest.mark.compile
def test_compiled_saves_what_fused_saves():
    x = torch.randn(4, 8, 8, 8, requires_grad=True)
    m = SLAF(degree=8, num_parameters=8)
    fused = saved_input_multiples(m, x)
    m.backend = "compiled"
    assert saved_input_multiples(m, x) == fused <= 2.0


# --------------------------------------------------------------------------------------
# Native C kernels (backend "native": the normalised power basis and the EMFN routine, float32 CPU)
# --------------------------------------------------------------------------------------
from actlab.activations import slaf_native  # noqa: E402
from actlab.kernels import native as native_build  # noqa: E402


def _train_step(m: SLAF, x: torch.Tensor, g: torch.Tensor, backend: str):
    m.backend = backend
    xi = x.clone().requires_grad_()
    y = m(xi)
    y.backward(g)
    return [y, xi.grad, *(p.grad for p in m.parameters()), m.running_mean.clone(), m.running_std.clone()]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    "channels", [(1, 1), (4, 4), (1, 4), (4, 1)], ids=["shared", "per-channel", "w-shared", "stats-shared"]
)
@pytest.mark.parametrize("degree", [1, 4, 9])  # 9: past the kernels' unrolled degrees
def test_native_matches_fused_in_float32(training, channels, degree):
    """Values, every gradient and the running statistics of a step, against the eager fused path."""
    x = torch.randn(6, 4, 5, 7, generator=torch.Generator().manual_seed(20)) * 2 + 0.5
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(21))
    results = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAF(degree=degree, num_parameters=channels[0], num_features=channels[1])
        with torch.no_grad():
            m.running_mean.normal_(0, 0.5)
            m.running_std.uniform_(0.5, 2.0)
        m.train(training)
        results.append(_train_step(m, x, g, backend))
    names = ["y", "dx", "dweight", "dbias", "running_mean", "running_std"]
    for name, got, expected in zip(names, results[1], results[0]):
        scale = expected.abs().max().item()
        torch.testing.assert_close(
            got, expected, rtol=2e-5, atol=2e-6 * max(scale, 1.0), msg=lambda m, n=name: f"{n}: {m}"
        )


def test_auto_takes_the_native_kernels_where_they_apply(monkeypatch):
    """float32 CPU inputs from the elementwise ops' threshold (no compile to repay), with channels not
    last in memory; not float64, not channels-last per-channel inputs, not the other routines or
    degrees beyond the kernels', not while tracing."""
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 24)
    ran = []
    run = slaf_native.run
    monkeypatch.setattr(slaf_native, "run", lambda name, *args: ran.append(name) or run(name, *args))
    SLAF(num_parameters=4)(torch.randn(1, 4, 5))  # 20 elements
    assert ran == []
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 0)
    m = SLAF(num_parameters=4)
    m(torch.randn(2, 4, 3))
    assert ran == ["slaf_power_moments", "slaf_power_centred"]
    ran.clear()
    m.eval()
    m(torch.randn(2, 4, 3))
    assert ran == ["slaf_power_polynomial"]
    ran.clear()
    SLAF(num_parameters=4, dtype=torch.float64)(torch.randn(2, 4, 3, dtype=torch.float64))
    SLAF(num_parameters=4, channel_dim=-1)(torch.randn(2, 3, 4))  # (N, L, C): channels last
    SLAFChebyshev()(torch.randn(2, 4, 3))
    SLAF(normalize=False)(torch.randn(2, 4, 3))
    SLAF(degree=slaf_native.MAX_DEGREE + 1)(torch.randn(2, 4, 3))
    assert ran == []
    SLAF(channel_dim=-1)(torch.randn(2, 3, 4))  # shared values: any layout
    assert ran == ["slaf_power_moments", "slaf_power_centred"]
    ran.clear()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    SLAF()(torch.randn(2, 4, 3))
    assert ran == []


def test_an_explicit_native_request_that_cannot_be_met_says_what_to_use():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="and the EMFN routine"):
        slaf(
            x,
            torch.randn(1, 3),
            torch.zeros(1),
            basis="chebyshev",
            normalize="max",
            backend="native",
            scale=torch.ones(1),
            offset=torch.zeros(1),
            running_max=torch.ones(1),
        )
    m = SLAF(num_parameters=4, channel_dim=-1)
    m.backend = "native"
    with pytest.raises(ValueError, match="channels not last in memory"):
        m(torch.randn(2, 3, 4))
    m = SLAF(num_parameters=3, dtype=torch.float64)
    m.backend = "native"
    with pytest.raises(ValueError, match="supports float32"):
        m(x.double())


def test_native_handles_strided_and_channels_last_inputs_like_fused():
    base = torch.randn(4, 6, 10, 10, generator=torch.Generator().manual_seed(22))
    for x in (base[:, :, ::2], base.to(memory_format=torch.channels_last)):
        g = torch.randn(x.shape, generator=torch.Generator().manual_seed(23))
        results = []
        for backend in ("fused", "native"):
            torch.manual_seed(0)
            m = SLAF(degree=3)  # shared: channels-last memory is one run
            results.append(_train_step(m, x, g, backend))
        for a, b in zip(results[1], results[0]):
            torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)
        assert results[1][0].stride() == results[0][0].stride()


def test_native_nan_and_inf_stay_in_their_group_as_in_fused():
    x = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(24))
    x[1, 2, 3] = float("nan")
    x[0, 1, 0] = float("inf")
    outputs = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAF(num_parameters=4)
        m.backend = backend
        outputs.append(m(x))
    expected, y = outputs
    torch.testing.assert_close(y, expected, rtol=2e-5, atol=2e-5, equal_nan=True)
    assert torch.isnan(y[:, 2]).all() and torch.isfinite(y[:, [0, 3]]).all()


def test_native_moments_keep_a_small_variance_around_a_large_mean():
    """Chan's merge in double: the variance of x^p for x = 1000 + 0.01·N(0, 1) (relative spread 1e-5)
    against float64 (8e-5 relative at most, measured). A float32 Σx² - (Σx)²/n is off by 150-1250×."""
    x = 1000 + 0.01 * torch.randn(4, 3, 4096, generator=torch.Generator().manual_seed(25), dtype=torch.float64)
    e, means, variances = slaf_native._moments(x.float(), k=3, dims=(0, 2))
    u = x * torch.exp2(-e.double())
    for p in range(3):
        expected = (u ** (p + 1)).var(dim=(0, 2), correction=0, keepdim=True)
        torch.testing.assert_close(variances[..., p].double(), expected, rtol=5e-4, atol=0)
        torch.testing.assert_close(
            means[..., p].double(), (u ** (p + 1)).mean(dim=(0, 2), keepdim=True), rtol=1e-6, atol=0
        )


@pytest.mark.parametrize("openmp", [False, True])
def test_native_parts_merge_to_the_single_thread_result(monkeypatch, openmp):
    """Two parts per call (per-part maxima, moments and sums merged in Python), on OpenMP threads
    or on the pool; the same statistics and values as one part."""
    lib = native_build.library(slaf_native.LIBRARY)
    if openmp and not native_build.uses_openmp(lib):
        pytest.skip("the kernels are not built with OpenMP here")
    monkeypatch.setattr(native_build, "uses_openmp", lambda lib: openmp)
    x = torch.randn(4, 2, 3 * slaf_native.GRAIN // 4, generator=torch.Generator().manual_seed(26)) * 3
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(27))
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            assert len(native_build.element_parts(8, x.shape[-1], grain=slaf_native.GRAIN)) == threads
            for per_channel in (1, 2):
                torch.manual_seed(0)
                results.append(_train_step(SLAF(degree=5, num_parameters=per_channel), x, g, "native"))
    finally:
        torch.set_num_threads(previous)
    for two, one in zip(results[:2], results[2:]):
        for a, b in zip(two, one):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_native_that_cannot_be_built_falls_back_under_auto_and_raises_when_asked_for(monkeypatch):
    def no_compiler(name):
        raise dispatch.KernelUnavailable(f"native kernel {name!r}") from FileNotFoundError("no C compiler found")

    monkeypatch.setattr(native_build, "library", no_compiler)
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 0)
    x = torch.randn(4, 3, 5)
    torch.manual_seed(0)
    m = SLAF(num_parameters=3)
    m.backend = "fused"
    expected = m(x)
    torch.manual_seed(0)
    m = SLAF(num_parameters=3)
    m.backend = "native"
    with pytest.raises(dispatch.KernelUnavailable):
        m(x)
    torch.manual_seed(0)
    m = SLAF(num_parameters=3)
    with pytest.warns(RuntimeWarning, match="'native' kernels could not be built"):
        got = m(x)
    torch.testing.assert_close(got, expected)


def test_native_saves_what_fused_saves():
    x = torch.randn(4, 8, 8, 8, requires_grad=True)
    m = SLAF(degree=8, num_parameters=8)
    m.backend = "fused"
    fused = saved_input_multiples(m, x)
    m.backend = "native"
    assert saved_input_multiples(m, x) == fused <= 2.0


def test_native_double_backward_runs_the_eager_stages():
    """create_graph=True: the backward's stages run as differentiable torch ops (as for every kernel)."""
    x = torch.randn(3, 2, 5, dtype=torch.float32, requires_grad=True)
    grads = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAF(degree=3, num_parameters=2)
        m.backend = backend
        (gx,) = torch.autograd.grad(m(x).square().sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(gx.sum(), x)[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("degree", [(1, 1), (2, 3), (3, 0), (0, 2), (16, 16)])
@pytest.mark.parametrize("shape", [(6, 4, 5, 7), (37,), (3, 1000)], ids=["4d", "1d-one-sample", "2d"])
def test_native_emfn_matches_fused_in_float32(degree, shape):
    """The Fourier basis scaled per sample (EMFN) on the C kernels: value and every gradient (x through
    the per-sample max too, weights, bias, scale m, offset n) against the eager fused path."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(30)) * 2
    g = torch.randn(shape, generator=torch.Generator().manual_seed(31))
    results = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAFFourier(degree=degree)
        m.backend = backend
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.backward(g)
        results.append([y, xi.grad, *(p.grad for p in m.parameters())])
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=2e-5, atol=2e-5 * max(expected.abs().max().item(), 1.0))


def test_native_emfn_shares_the_max_gradient_among_ties_like_amax():
    x = torch.tensor([[3.0, -3.0, 1.0, 0.5], [0.25, -2.0, 2.0, 2.0]])
    grads = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAFFourier(degree=(2, 1))
        m.backend = backend
        xi = x.clone().requires_grad_()
        m(xi).square().sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_native_emfn_sends_values_beyond_its_sine_to_the_torch_code(monkeypatch):
    """|u| = |x|/(m·M + n) above MAX_SCALED (here: m near 0, so u ≈ x/n): the stage's torch code runs,
    and the result is still the fused path's."""
    x = torch.randn(4, 50, generator=torch.Generator().manual_seed(32)) * 1e4
    outputs, ran = [], []
    run = slaf_native.run
    monkeypatch.setattr(slaf_native, "run", lambda name, *args: ran.append(run(name, *args) is None))
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAFFourier()
        with torch.no_grad():
            m.scale.fill_(1e-6)
        m.backend = backend
        outputs.append(m(x))
    assert ran == [True]  # the native stage declined
    torch.testing.assert_close(outputs[1], outputs[0])


def test_native_emfn_nan_stays_in_its_sample():
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(33))
    x[1, 4] = float("nan")
    outputs = []
    for backend in ("fused", "native"):
        torch.manual_seed(0)
        m = SLAFFourier()
        m.backend = backend
        outputs.append(m(x))
    torch.testing.assert_close(outputs[1], outputs[0], equal_nan=True)
    assert torch.isnan(outputs[1][1]).all() and torch.isfinite(outputs[1][[0, 2]]).all()


def test_auto_takes_the_native_emfn_kernels_where_they_apply(monkeypatch):
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 0)
    ran = []
    run = slaf_native.run
    monkeypatch.setattr(slaf_native, "run", lambda name, *args: ran.append(name) or run(name, *args))
    x = torch.randn(2, 4, 3, requires_grad=True)
    SLAFFourier()(x).sum().backward()
    assert ran == ["slaf_basis_forward", "slaf_basis_backward"]
    ran.clear()
    SLAFFourier(num_parameters=4)(x)  # per-channel coefficients: compiled or fused
    SLAFFourier(dtype=torch.float64)(x.detach().double())
    SLAFChebyshev()(x)  # max-scaled per channel: no C kernels
    assert ran == []
    m = SLAFFourier(num_parameters=4)
    m.backend = "native"
    with pytest.raises(ValueError, match="coefficients shared by all channels"):
        m(x)


def test_global_backend_reference_is_honoured():
    x = torch.randn(4, 8, 8, requires_grad=True)
    m = SLAF(degree=6, num_parameters=8)
    with actlab.set_backend("reference"):
        assert saved_input_multiples(m, x) >= 6
    assert saved_input_multiples(m, x) <= 2


# --------------------------------------------------------------------------------------
# Numerics
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "degree,backend",
    [(d, b) for d in (2, 4, 6, 8) for b in ("fused", "reference", "native")]
    + [pytest.param(8, "compiled", marks=pytest.mark.compile)],
)
def test_large_inputs_finite_and_accurate_with_normalisation(degree, backend):
    """±1e4 in float32: the variance of x^8 (1e64) would overflow; outputs stay finite and exact."""
    torch.manual_seed(11)
    m = SLAF(degree=degree, num_parameters=3)
    m.backend = backend
    x = ((torch.rand(16, 3, 6) * 2 - 1) * 1e4).requires_grad_()
    y = m(x)
    y.square().mean().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    expected = np_taylor_bn(_np(x), _np(m.weight), _np(m.bias), True)  # float64: 1e64 is fine there
    np.testing.assert_allclose(_np(y), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    assert torch.isfinite(m.running_std).all() and torch.isfinite(m.running_mean).all()
    m.eval()
    x_eval = x.detach().clone().requires_grad_()
    y_eval = m(x_eval)
    y_eval.sum().backward()
    assert torch.isfinite(y_eval).all() and torch.isfinite(x_eval.grad).all()


def test_plain_polynomial_overflow_is_the_documented_bound():
    """normalize=False evaluates the polynomial as written: ±inf beyond 3.4e38^(1/k), never NaN."""
    m = SLAF(degree=8, normalize=False, init_std=0.0)  # w = e_1, then make it x + x^8
    with torch.no_grad():
        m.weight.fill_(0.0)
        m.weight[0, 0] = 1.0
        m.weight[0, 7] = 1.0
    bound = torch.finfo(torch.float32).max ** (1 / 8)  # 6.6e4
    x = torch.tensor([0.5 * bound, -0.5 * bound, 2 * bound, -2 * bound], requires_grad=True)
    y = m(x)
    assert torch.isfinite(y[:2]).all()
    assert torch.isinf(y[2:]).all() and not torch.isnan(y).any()
    y.sum().backward()
    assert not torch.isnan(x.grad).any()


def test_overflowing_polynomial_is_inf_not_nan():
    """Horner's scheme: x^3 + x^2 at x = -1e20 is -inf (the summed form gives inf - inf = NaN)."""
    m = SLAF(degree=3, normalize=False, init_std=0.0)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.0, 1.0, 1.0]]))
    x = torch.tensor([-1e20, 1e20, -2.0], requires_grad=True)
    y = m(x)
    y0, y1, y2 = y.detach().tolist()
    assert y0 == -math.inf and y1 == math.inf and y2 == pytest.approx(-4 + 0.1)
    y.sum().backward()
    assert not torch.isnan(x.grad).any()


@pytest.mark.parametrize("backend", ["fused", "native", pytest.param("compiled", marks=pytest.mark.compile)])
def test_normalised_training_finite_at_float32_extremes_and_eval_saturates_to_inf(backend):
    torch.manual_seed(16)
    big = torch.finfo(torch.float32).max
    m = SLAF(degree=8, num_parameters=2)
    m.backend = backend
    x = torch.randn(6, 2, 3)
    x[0, 0, 0], x[1, 1, 1] = big, -big
    x.requires_grad_()
    y = m(x)
    y.square().mean().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    m.reset_running_stats()
    m(torch.randn(64, 2, 3))  # statistics of an ordinary batch
    m.eval()
    far = torch.tensor([[[-1e30, 1e30, 1.0]] * 2] * 1)
    out = m(far)
    assert not torch.isnan(out).any() and torch.isfinite(out[..., 2]).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    torch.manual_seed(12)
    m = SLAF(degree=6, num_parameters=3)
    x = torch.randn(8, 3, 5).to(dtype)
    y = m(x)
    assert y.dtype == dtype
    m32 = SLAF(degree=6, num_parameters=3)
    m32.load_state_dict(m.state_dict())
    m32.reset_running_stats()
    torch.testing.assert_close(y.float(), m32(x.float()).to(dtype).float(), rtol=0, atol=0)
    x.requires_grad_()
    m(x).float().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


# --------------------------------------------------------------------------------------
# Initialisation, fitting, regulariser
# --------------------------------------------------------------------------------------
def test_identity_init_is_official():
    m = SLAF(degree=4, num_parameters=5, init_std=0.0)
    torch.testing.assert_close(m.weight, torch.eye(4)[:1].expand(5, 4))
    torch.testing.assert_close(m.bias, torch.full((5,), 0.1))
    torch.manual_seed(13)
    noisy = SLAF(degree=4, num_parameters=256)
    noise = noisy.weight.detach() - torch.eye(4)[:1]
    assert 0.85 < float(noise.std()) < 1.15 and abs(float(noise.mean())) < 0.15


def test_default_init_follows_each_official_routine():
    assert SLAF().init == "identity"
    assert SLAF(normalize="max").init == "normal"
    assert SLAFFourier().init == "normal"
    assert SLAFChebyshev().init == "identity"


@pytest.mark.parametrize(
    "target, degree, bound",
    [
        (F.gelu, 6, 0.021),
        (F.gelu, 8, 0.005),
        (torch.tanh, 6, 0.07),
        (torch.tanh, 8, 0.029),
        (F.relu, 6, 0.13),
        (F.relu, 8, 0.102),
    ],
)
@pytest.mark.parametrize("routine", [ROUTINES[0], ROUTINES[1], ROUTINES[3], ROUTINES[4]])
def test_fitted_init_reproduces_target_in_eval_mode(target, degree, bound, routine):
    m = SLAF(degree=degree, init=target, **routine)
    grid = torch.linspace(-3, 3, 2001)
    assert m.training  # the fit leaves the mode alone
    with torch.no_grad():
        error = float((m.eval()(grid) - target(grid)).abs().max())
    assert error < bound
    assert abs(error - m.init_fit_error) < 1e-4
    if routine["basis"] != "fourier":  # same function space as an ordinary polynomial fit
        xs = np.linspace(-3, 3, 2001)
        vander = np.vander(xs, degree + 1)
        coef = np.linalg.lstsq(vander, _np(target(torch.from_numpy(xs))), rcond=None)[0]
        assert error <= np.abs(vander @ coef - _np(target(torch.from_numpy(xs)))).max() + 1e-4


def test_fitted_init_per_channel_and_unknown_name():
    m = SLAF(degree=6, num_parameters=4, init="tanh").eval()  # a registry name
    x = torch.linspace(-3, 3, 101).repeat(2, 4, 1)
    with torch.no_grad():
        assert float((m(x) - torch.tanh(x)).abs().max()) < 0.07
    with pytest.raises(ValueError, match="unknown activation"):
        SLAF(init="no_such_activation")


def test_l1_penalty():
    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(3, 4), SLAF(num_features=4), nn.Linear(4, 2), SLAF(degree=2), nn.ReLU())
    s1, s2 = model[1], model[3]
    assert float(s1.l1_penalty().detach()) == pytest.approx(1e-4 * float(s1.weight.detach().abs().sum()))
    total = actlab.slaf_l1_penalty(model, strength=0.5)
    assert float(total.detach()) == pytest.approx(
        0.5 * float(s1.weight.detach().abs().sum() + s2.weight.detach().abs().sum())
    )
    total.backward()
    torch.testing.assert_close(s2.weight.grad, 0.5 * torch.sign(s2.weight))
    assert float(actlab.slaf_l1_penalty(nn.Linear(2, 2))) == 0.0


# --------------------------------------------------------------------------------------
# Construction, registry, repr
# --------------------------------------------------------------------------------------
def test_registry_entries():
    for name, cls, provenance in (
        ("slaf", SLAF, "official-code"),
        ("slaf_chebyshev", SLAFChebyshev, "reconstruction"),
        ("slaf_fourier", SLAFFourier, "official-code"),
    ):
        entry = actlab.info(name)
        assert entry.cls is cls and entry.provenance == provenance and entry.trainable
        assert entry.arxiv == "1906.09529" and entry.paper.startswith("Learning Activation Functions")
        assert isinstance(actlab.create(name), cls)
    assert "project design" in actlab.info("slaf_chebyshev").notes.lower()
    fourier = actlab.create("slaf_fourier")
    assert (fourier.degree, fourier.sines, fourier.normalize) == (2, 1, "max")
    assert actlab.sites.is_activation(actlab.create("slaf"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(basis="legendre"), "unknown basis"),
        (dict(basis="chebyshev", normalize=True), "normalize must be one of"),
        (dict(basis="fourier", normalize=False), "normalize must be one of"),
        (dict(basis="chebyshev", normalize=False), "normalize must be one of"),
        (dict(normalize=1), "normalize must be one of"),
        (dict(normalize="batch"), "normalize must be one of"),
        (dict(degree=0), "degree must be a positive integer"),
        (dict(basis="fourier", degree=(0, 0)), "fourier degree"),
        (dict(num_parameters=3, num_features=4), "must agree"),
        (dict(num_parameters=0), "num_parameters must be a positive integer"),
        (dict(momentum=1.5), "momentum"),
        (dict(init_range=(3, -3)), "init_range"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SLAF(**kwargs)


def test_input_errors():
    m = SLAF(num_parameters=3)
    with pytest.raises(ValueError, match="3 per-channel values but the input has 4 channels"):
        m(torch.randn(2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.ones(2, 3, dtype=torch.long))


def test_trainable_false_makes_constants():
    m = SLAF(normalize="max", trainable=False)
    assert list(m.parameters()) == [] and {"weight", "bias", "scale", "offset"} <= dict(m.named_buffers()).keys()


def test_extra_repr():
    text = repr(SLAF(basis="fourier", degree=(2, 1), num_features=5, channel_dim=-1, init=torch.tanh))
    for part in (
        "basis='fourier'",
        "degree=(2, 1)",
        "normalize='max'",
        "num_features=5",
        "channel_dim=-1",
        "init='tanh'",
    ):
        assert part in text


# --------------------------------------------------------------------------------------
# The hybrid routine pattern in docs/slaf.md (executed, so the docs cannot rot)
# --------------------------------------------------------------------------------------
def test_docs_hybrid_snippet_runs():
    doc = REPO / "docs" / "slaf.md"
    text = doc.read_text(encoding="utf-8")
    block = re.search(r"<!-- tested: hybrid -->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/slaf.md lost its tested hybrid snippet"
    namespace: dict = {}
    exec(compile(block.group(1), str(doc), "exec"), namespace)
    model = namespace["model"]
    kinds = [type(m).__name__ for _, m in actlab.sites.activation_sites(model)]
    assert kinds.count("SLAF") == 2 and kinds.count("ReLU") == 1
    loss = namespace["loss"]
    assert loss.requires_grad and math.isfinite(float(loss.detach()))


# --------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------
@pytest.mark.compile
def test_compile_fullgraph_matches_eager():
    """One compiled model holding the normalised (running statistics) and EMFN routines."""
    torch.manual_seed(15)

    def build():
        return nn.Sequential(SLAF(degree=4, num_parameters=3), SLAFFourier(degree=(2, 1)))

    eager, compiled_model = build(), build()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    for training in (True, False):
        eager.train(training)
        compiled_model.train(training)
        x = torch.randn(4, 3, 5, requires_grad=True)
        y = compiled(x)
        (gx,) = torch.autograd.grad(y.square().sum(), x)
        y_ref = eager(x)
        (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
        torch.testing.assert_close(y, y_ref)
        torch.testing.assert_close(gx, gx_ref)
    for (name, a), b in zip(eager.named_buffers(), compiled_model.buffers()):
        torch.testing.assert_close(a, b, msg=name)


# --------------------------------------------------------------------------------------
# Export (evaluation mode: the deployed function)
# --------------------------------------------------------------------------------------
def _trained_pair():
    torch.manual_seed(17)
    model = nn.Sequential(SLAF(degree=4, num_parameters=3), SLAF(normalize="max", num_features=3), SLAFFourier())
    model(torch.randn(8, 3, 5))  # non-trivial running statistics
    return model.eval(), torch.randn(4, 3, 5)


def test_torch_export_matches_eager():
    model, x = _trained_pair()
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x))


@pytest.mark.slow
def test_onnx_export_matches_eager():
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, x = _trained_pair()
    proto = torch.onnx.export(model, (x,), dynamo=True).model_proto
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(out, _np(model(x)), rtol=1e-5, atol=1e-5)
