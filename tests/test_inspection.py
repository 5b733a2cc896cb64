"""inspect(), record_inputs() and ParameterRecorder: data arrays, no side effects, streaming histograms."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import actlab
from actlab import inspection
from actlab.base import Activation


def srs_closed_form(x, alpha, beta):
    return x / (x / alpha + np.exp(-x / beta))


def srs_closed_form_derivative(x, alpha, beta):
    d = x / alpha + np.exp(-x / beta)
    return np.exp(-x / beta) * (1 + x / beta) / d**2


def _per_channel_srs(channels=3, channel_dim=1, dtype=torch.float64):
    m = actlab.SRS(num_parameters=channels, channel_dim=channel_dim, dtype=dtype)
    with torch.no_grad():
        m.raw_alpha.copy_(torch.linspace(-0.5, 1.5, channels, dtype=dtype))
        m.raw_beta.copy_(torch.linspace(-1.0, 1.0, channels, dtype=dtype))
    return m


class RunningMeanActivation(Activation):
    """Like SLAF's normalisation: training-mode calls update running statistics (buffers)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        if self.training:
            self.running_mean.mul_(0.9).add_(0.1 * x.mean())
            self.calls += 1
        return torch.tanh(x - self.running_mean)


class MaxScaledActivation(Activation):
    """Like SLAF's Fourier routine: the input is divided by its own max |x|, so it is not elementwise."""

    def forward(self, x):
        return torch.sin(x / (2 * x.abs().amax() + 1))


class ReducingActivation(Activation):
    def forward(self, x):
        return x.sum(dim=0)


# -- inspect ------------------------------------------------------------------------------


def test_inspect_lists_every_site_with_names_types_and_registry_names():
    model = nn.Sequential(
        nn.Linear(2, 3), actlab.SRS(), nn.Sequential(nn.Linear(3, 3), nn.GELU()), nn.PReLU(3), actlab.Serf()
    )
    reports = actlab.inspect(model)
    assert [(r.name, r.type, r.registry_name) for r in reports] == [
        ("1", "SRS", "srs"),
        ("2.1", "GELU", "gelu"),
        ("3", "PReLU", "prelu"),
        ("4", "Serf", "serf"),
    ]
    assert [r.channels for r in reports] == [1, 1, 3, 1]
    assert reports[0].label == "1 (srs)"


def test_inspect_reports_constrained_parameters():
    m = actlab.SRS(alpha=5.0, beta=3.0)
    (report,) = actlab.inspect(m)
    assert report.name == ""
    np.testing.assert_allclose(report.parameters["alpha"], [5.0], rtol=1e-6)
    np.testing.assert_allclose(report.parameters["beta"], [3.0], rtol=1e-6)
    leaky, prelu = actlab.inspect(nn.Sequential(nn.LeakyReLU(0.2), nn.PReLU(2, init=0.1)))
    assert leaky.parameters == {"negative_slope": pytest.approx(0.2)}
    assert set(prelu.parameters) == {"weight"}
    np.testing.assert_allclose(prelu.parameters["weight"], [0.1, 0.1], rtol=1e-6)


def test_inspect_curve_equals_closed_form_for_shared_module():
    m = actlab.SRS(alpha=2.0, beta=3.0, dtype=torch.float64)
    (r,) = actlab.inspect(m, x_range=(-6, 4), points=57, derivative=True)
    assert r.x.shape == (57,) and r.y.shape == (1, 57) and r.dy.shape == (1, 57)
    np.testing.assert_allclose(r.x, np.linspace(-6, 4, 57), rtol=1e-14, atol=1e-15)
    alpha, beta = (m.values()[k].item() for k in ("alpha", "beta"))
    np.testing.assert_allclose(r.y[0], srs_closed_form(r.x, alpha, beta), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.dy[0], srs_closed_form_derivative(r.x, alpha, beta), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("channel_dim", [0, 1, 2, -1, -2])
def test_inspect_per_channel_rows_follow_channel_dim(channel_dim):
    m = _per_channel_srs(3, channel_dim)
    (r,) = actlab.inspect(m, points=41, derivative=True)
    assert r.y.shape == (3, 41)
    alphas, betas = (m.values()[k].detach().numpy() for k in ("alpha", "beta"))
    assert len(set(alphas.round(6))) == 3  # the channels really differ
    for c in range(3):
        np.testing.assert_allclose(r.y[c], srs_closed_form(r.x, alphas[c], betas[c]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            r.dy[c], srs_closed_form_derivative(r.x, alphas[c], betas[c]), rtol=1e-10, atol=1e-13
        )
    np.testing.assert_allclose(r.mean, r.y.mean(axis=0))
    np.testing.assert_array_equal(r.min, r.y.min(axis=0))
    np.testing.assert_array_equal(r.max, r.y.max(axis=0))
    np.testing.assert_allclose(r.parameters["alpha"], alphas)


def test_inspect_equals_module_forward_on_grid_in_module_dtype():
    for m in (
        actlab.Swish(beta=1.7, dtype=torch.bfloat16),
        nn.PReLU(4),
        actlab.Sqish(num_parameters=2, channel_dim=-1),
    ):
        (r,) = actlab.inspect(m, x_range=(-3, 2), points=33)
        dtype = next(m.parameters()).dtype
        x = torch.linspace(-3, 2, 33, dtype=torch.float64).to(dtype)
        np.testing.assert_array_equal(r.x, x.double().numpy())
        channels = r.channels
        with torch.no_grad():
            expected = m(x[:, None].expand(33, channels)).T if channels > 1 else m(x)[None]
        np.testing.assert_array_equal(r.y, expected.double().numpy())


@pytest.mark.parametrize("derivative", [False, True])
def test_inspect_handles_in_place_activations(derivative):
    model = nn.Sequential(nn.ReLU(inplace=True), nn.LeakyReLU(0.1, inplace=True))
    relu, leaky = actlab.inspect(model, x_range=(-2, 2), points=9, derivative=derivative)
    x = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(relu.x, x, atol=1e-7)  # the grid itself is not overwritten
    np.testing.assert_allclose(relu.y[0], np.maximum(x, 0), atol=1e-7)
    np.testing.assert_allclose(leaky.y[0], np.where(x > 0, x, 0.1 * x), atol=1e-7)
    if derivative:
        np.testing.assert_allclose(leaky.dy[0], np.where(x > 0, 1.0, 0.1), atol=1e-7)


def test_inspect_has_no_side_effects():
    act = RunningMeanActivation()
    model = nn.Sequential(nn.Linear(2, 2), act, actlab.SRS(), nn.Dropout(0.5))
    model.train()
    model[2].eval()  # a mixed state must come back exactly
    calls = []
    handle = act.register_forward_hook(lambda *a: calls.append(1))
    params_before = {k: v.clone() for k, v in model.state_dict().items()}
    reports = actlab.inspect(model, derivative=True)
    handle.remove()
    assert [r.name for r in reports] == ["1", "2"]
    assert calls == [], "inspection must not run the model's hooks"
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    for k, v in model.state_dict().items():
        assert torch.equal(v, params_before[k]), f"{k} changed"
    assert all(p.grad is None for p in model.parameters())
    # The eval-mode curve uses the (unchanged) running statistic.
    np.testing.assert_allclose(reports[0].y[0], np.tanh(reports[0].x), rtol=1e-6, atol=1e-7)


def test_inspect_flags_modules_that_are_not_elementwise():
    model = nn.Sequential(MaxScaledActivation(), nn.Tanh())
    with pytest.warns(UserWarning, match="'0' .*is not elementwise"):
        scaled, tanh = actlab.inspect(model)
    assert (scaled.elementwise, tanh.elementwise) == (False, True)
    with pytest.raises(ValueError, match="not elementwise"):
        actlab.properties(MaxScaledActivation())
    declared = actlab.Serf()
    declared.elementwise = False  # a module can say so where the grid cannot reveal it
    with pytest.warns(UserWarning, match="not elementwise"):
        (report,) = actlab.inspect(declared)
    assert not report.elementwise


def test_inspect_restores_mode_after_an_error():
    model = nn.Sequential(ReducingActivation())
    model.train()
    with pytest.raises(TypeError, match="not an elementwise activation"):
        actlab.inspect(model)
    assert model.training and model[0].training


@pytest.mark.parametrize("bad", [dict(x_range=(1, 1)), dict(x_range=(0, math.inf)), dict(points=1), dict(points=2.5)])
def test_inspect_rejects_bad_grids(bad):
    with pytest.raises(ValueError):
        actlab.inspect(actlab.SRS(), **bad)


# -- record_inputs ------------------------------------------------------------------------


def _small_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 6), actlab.SRS(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 1))


def _pre_activations(model, batches):
    """What the two activation sites receive, computed directly."""
    with torch.no_grad():
        first = torch.cat([model[0](b) for b in batches])
        second = torch.cat([model[2](model[1](model[0](b))) for b in batches])
    return {"1": first.double().numpy().ravel(), "3": second.double().numpy().ravel()}


def _assert_matches(h, values, edges):
    counts, _ = np.histogram(values, bins=edges)
    np.testing.assert_array_equal(h.edges, edges)
    np.testing.assert_array_equal(h.counts, counts)
    assert h.underflow == int((values < edges[0]).sum())
    assert h.overflow == int((values > edges[-1]).sum())
    assert h.count == values.size
    assert h.min == values.min() and h.max == values.max()
    assert h.mean == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
    assert h.var == pytest.approx(values.var(), rel=1e-10)


def test_record_inputs_fixed_range_matches_numpy():
    model = _small_model()
    batches = [torch.randn(50, 4) * 2, torch.randn(30, 4) * 2, torch.randn(7, 4) * 2]
    with actlab.record_inputs(model, bins=16, range=(-2.0, 2.0)) as rec:
        for b in batches:
            model(b)
    expected = _pre_activations(model, batches)
    assert set(rec.histograms) == {"1", "3"}
    for name, values in expected.items():
        h = rec.histograms[name]
        _assert_matches(h, values, np.linspace(-2.0, 2.0, 17))
        assert h.underflow + h.overflow > 0  # the range was deliberately too narrow
        assert h.fraction_outside == pytest.approx((h.underflow + h.overflow) / values.size)
        np.testing.assert_allclose((h.density() * np.diff(h.edges)).sum(), 1 - h.fraction_outside)


def test_record_inputs_automatic_range_from_first_batch():
    model = _small_model()
    batches = [torch.randn(40, 4), torch.randn(40, 4) * 5]
    with actlab.record_inputs(model, bins=10) as rec:
        for b in batches:
            model(b)
    expected = _pre_activations(model, batches)
    for name, values in expected.items():
        first = values[: values.size // 2]
        span = first.max() - first.min()
        edges = np.linspace(first.min() - 0.25 * span, first.max() + 0.25 * span, 11)
        _assert_matches(rec.histograms[name], values, edges)


def test_record_inputs_streams_in_chunks(monkeypatch):
    monkeypatch.setattr(inspection, "_CHUNK", 7)
    model = _small_model()
    batches = [torch.randn(13, 4), torch.randn(9, 4)]
    with actlab.record_inputs(model, bins=5, range=(-1, 1)) as rec:
        for b in batches:
            model(b)
    for name, values in _pre_activations(model, batches).items():
        _assert_matches(rec.histograms[name], values, np.linspace(-1, 1, 6))


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=1, max_size=60),
    split=st.integers(0, 60),
    bins=st.integers(1, 12),
    lo=st.floats(-20, 0),
    width=st.floats(0.5, 30),
)
def test_streaming_histogram_equals_numpy_on_any_split(data, split, bins, lo, width):
    values = np.array(data, dtype=np.float32).astype(np.float64)
    acc = inspection._StreamingHistogram(bins, (lo, lo + width))
    for part in (values[:split], values[split:]):
        if part.size:
            acc.update(torch.from_numpy(part).float())
    _assert_matches(acc.snapshot(), values, np.linspace(lo, lo + width, bins + 1))


def test_record_inputs_counts_nan_and_inf_apart():
    act = nn.Tanh()
    x = torch.tensor([0.5, float("nan"), float("inf"), -float("inf"), -0.5, 3.0])
    with actlab.record_inputs(act, bins=4, range=(-1, 1)) as rec:
        act(x)
    h = rec.histograms[""]
    assert (h.count, h.nan_count, h.inf_count) == (3, 1, 2)
    assert (h.underflow, h.overflow) == (1, 2)
    assert h.counts.tolist() == [0, 1, 0, 1]  # edges -1, -0.5, 0, 0.5, 1: bins are closed on the left
    assert (h.min, h.max) == (-0.5, 3.0)
    assert h.mean == pytest.approx(1.0) and h.var == pytest.approx(np.var([0.5, -0.5, 3.0]))


def test_record_inputs_leaves_outputs_and_gradients_unchanged():
    model = _small_model()
    x = torch.randn(16, 4)
    out_plain = model(x)
    grads_plain = torch.autograd.grad(out_plain.sum(), list(model.parameters()))
    with actlab.record_inputs(model) as rec:
        out_rec = model(x)
        grads_rec = torch.autograd.grad(out_rec.sum(), list(model.parameters()))
    assert torch.equal(out_plain, out_rec)
    assert all(torch.equal(a, b) for a, b in zip(grads_plain, grads_rec))
    assert rec.histograms["1"].count == 16 * 6


def _hook_counts(model):
    return [len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules()]


def test_record_inputs_removes_hooks_on_exit_and_on_exception():
    model = _small_model()
    before = _hook_counts(model)
    with actlab.record_inputs(model) as rec:
        assert rec.active and sum(_hook_counts(model)) == 2
    assert _hook_counts(model) == before and not rec.active
    with pytest.raises(RuntimeError, match="boom"):
        with actlab.record_inputs(model) as rec:
            model(torch.randn(2, 4))
            raise RuntimeError("boom")
    assert _hook_counts(model) == before
    # Recording stopped: later calls are not counted, what was seen is kept.
    model(torch.randn(3, 4))
    assert rec.histograms["1"].count == 2 * 6


def test_record_inputs_start_stop_and_misuse():
    model = _small_model()
    rec = actlab.record_inputs(model, range=(-3, 3)).start()
    with pytest.raises(RuntimeError, match="already recording"):
        rec.start()
    model(torch.randn(2, 4))
    rec.stop()
    rec.start()
    model(torch.randn(3, 4))
    rec.stop()
    assert rec.histograms["3"].count == 5 * 5
    with pytest.raises(ValueError, match="bins"):
        actlab.record_inputs(model, bins=0)
    with pytest.raises(ValueError, match="range"):
        actlab.record_inputs(model, range=(2, 1))


def test_record_inputs_sees_keyword_inputs_and_is_not_fed_by_inspect():
    act = actlab.Serf()
    with actlab.record_inputs(act, range=(-1, 1)) as rec:
        act(x=torch.zeros(5))
        actlab.inspect(act)  # grid evaluations must not pollute the record
    assert rec.histograms[""].count == 5


# -- ParameterRecorder ----------------------------------------------------------------------


def _train(model, recorder, steps, attach=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    if attach:
        recorder.attach(opt)
    seen = {0: model[1].values()["alpha"].detach().clone()}
    for step in range(1, steps + 1):
        x = torch.randn(32, 2)
        loss = (model(x).squeeze(-1) - x[:, 0].abs()).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not attach:
            recorder.step()
        seen[step] = model[1].values()["alpha"].detach().clone()
    return seen


@pytest.mark.parametrize("attach", [False, True])
def test_parameter_recorder_snapshots_every_n_steps(attach):
    model = nn.Sequential(nn.Linear(2, 4), actlab.SRS(num_parameters=4), nn.Linear(4, 1))
    rec = actlab.ParameterRecorder(model, every=3, points=11)
    seen = _train(model, rec, 9, attach=attach)
    assert [s.step for s in rec.snapshots] == [0, 3, 6, 9]
    steps, alphas = rec.history("1", "alpha")
    np.testing.assert_array_equal(steps, [0, 3, 6, 9])
    assert alphas.shape == (4, 4)
    for row, step in zip(alphas, steps):
        np.testing.assert_allclose(row, seen[int(step)].double().numpy(), rtol=1e-7)
    assert not np.allclose(alphas[0], alphas[-1])  # it did learn
    mean, low, high = rec.snapshots[-1].curves["1"]
    (now,) = actlab.inspect(model[1], points=11)
    np.testing.assert_allclose(mean, now.mean, rtol=1e-6)
    np.testing.assert_array_equal(low, now.min)
    np.testing.assert_array_equal(high, now.max)
    assert rec.snapshots[-1].kinds == {"1": "srs"}
    rec.detach()


def test_parameter_recorder_detach_and_errors():
    model = nn.Sequential(nn.Linear(2, 4), actlab.SRS(), nn.Linear(4, 1))
    rec = actlab.ParameterRecorder(model, every=1, curves=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec.attach(opt)
    with pytest.raises(RuntimeError, match="already attached"):
        rec.attach(opt)
    model(torch.randn(2, 2)).sum().backward()
    opt.step()
    rec.detach()
    opt.step()
    assert [s.step for s in rec.snapshots] == [0, 1]
    assert rec.snapshots[0].curves == {} and rec.snapshots[0].x is None
    with pytest.raises(KeyError, match="no activation site named 'nope'"):
        rec.history("nope", "alpha")
    with pytest.raises(KeyError, match="parameters: alpha, beta"):
        rec.history("1", "gamma")
    with pytest.raises(ValueError, match="every"):
        actlab.ParameterRecorder(model, every=0)
