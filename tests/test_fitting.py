"""actlab.fit: closed-form and optimizer fitting of trainable activations to targets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab import SLAF
from actlab.fitting import grid_input, solve_least_squares

from .repo_files import load

#: PAU version A (5/4) leaky_relu coefficients of rational_activations (spec §6.6).
PUBLISHED_LEAKY_A = ([0.02979, 0.61837, 2.32331, 3.05194, 1.48542, 0.25102], [-1.14195, 4.39316, 0.87147, 0.34720])


class RationalA(nn.Module):
    """Test-local rational, version A: P(x) / (1 + sum_k |b_k x^k|) (written independently of actlab)."""

    def __init__(self, numerator, denominator):
        super().__init__()
        self.numerator = nn.Parameter(torch.tensor(numerator, dtype=torch.float64))
        self.denominator = nn.Parameter(torch.tensor(denominator, dtype=torch.float64))

    def forward(self, x):
        p = sum(c * x**j for j, c in enumerate(self.numerator))
        q = 1 + sum((c * x ** (j + 1)).abs() for j, c in enumerate(self.denominator))
        return p / q


def leaky_relu(x):
    return F.leaky_relu(x, 0.01)


def grid_errors(module, target, lo=-3.0, hi=3.0, points=2001):
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    with torch.no_grad():
        e = (module(x).double() - target(x)).numpy()
    return np.abs(e).max(), np.sqrt(np.mean(e**2))


def test_rational_fit_is_as_good_as_the_published_preset():
    """From the official LM start (all ones), fit() reaches the published leaky_relu fit."""
    published_max, published_rmse = grid_errors(RationalA(*PUBLISHED_LEAKY_A), leaky_relu)
    assert published_max == pytest.approx(0.02979, abs=1e-4)  # R(0) = a_0 is the largest error
    module = RationalA([1.0] * 6, [1.0] * 4)
    fitted, max_error = actlab.fit(module, leaky_relu, points=1001, steps=200)
    assert fitted is module  # in place
    ours_max, ours_rmse = grid_errors(module, leaky_relu)
    assert max_error == pytest.approx(grid_errors(module, leaky_relu, points=1001)[0], rel=1e-9)
    assert ours_rmse <= published_rmse * (1 + 1e-3)
    assert ours_max <= published_max + 1e-3


def test_slaf_closed_form_matches_numpy_and_optimizer_approaches_it():
    target = torch.tanh
    closed, closed_error = actlab.fit(SLAF(degree=5, normalize=False), target, method="lstsq")
    xs = np.linspace(-3, 3, 2001)
    vander = np.vander(xs, 6)
    coef = np.linalg.lstsq(vander, np.tanh(xs), rcond=None)[0]
    assert closed_error == pytest.approx(np.abs(vander @ coef - np.tanh(xs)).max(), abs=1e-5)
    torch.manual_seed(0)
    optimised, opt_error = actlab.fit(
        SLAF(degree=5, normalize=False, dtype=torch.float64), target, method="optimizer", steps=300
    )
    assert opt_error < closed_error * 1.05


def test_registry_name_target():
    """A degree-4 SLAF (a polynomial in eval mode) is fitted exactly by a degree-6 SLAF."""
    torch.manual_seed(1)
    target = actlab.create("slaf")  # the same seed builds the same target inside fit()
    torch.manual_seed(1)
    _, error = actlab.fit(SLAF(degree=6), "slaf")
    with torch.no_grad():
        assert error < 1e-3 * float(target.eval()(torch.tensor([3.0])).abs())


def test_module_target_is_not_modified():
    target = SLAF(degree=3)
    before = copy.deepcopy(target.state_dict())
    target.train()
    actlab.fit(SLAF(degree=4), target)
    assert target.training
    for name, value in target.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_mode_restored_and_per_channel_module():
    module = SLAF(degree=6, num_parameters=3, channel_dim=-1).train()
    _, error = actlab.fit(module, F.gelu)
    assert module.training and error < 0.021
    x = torch.linspace(-3, 3, 50).reshape(1, 50, 1).expand(2, 50, 3)
    with torch.no_grad():
        assert float((module.eval()(x) - F.gelu(x)).abs().max()) < 0.021


def test_grid_input_layouts():
    grid = torch.linspace(-1, 1, 7)
    assert grid_input(SLAF(num_parameters=4), grid).shape == (1, 4, 7)
    assert grid_input(SLAF(num_parameters=4, channel_dim=-1), grid).shape == (1, 7, 4)
    assert grid_input(nn.Tanh(), grid).shape == (1, 1, 7)
    with pytest.raises(ValueError, match="channel_dim=2"):
        grid_input(SLAF(num_parameters=4, channel_dim=2), grid)


def test_solve_least_squares_badly_scaled_columns():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    design = torch.stack([x * 1e-9, x**2 * 1e9, torch.ones_like(x)], 1)
    y = 3 * x - 2 * x**2 + 0.5
    c = solve_least_squares(design, y)
    torch.testing.assert_close(design @ c, y, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="not finite"):
        solve_least_squares(design, y * float("nan"))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(x_range=(1, 1)), ValueError, "low < high"),
        (dict(x_range=(0, float("inf"))), ValueError, "low < high"),
        (dict(points=1), ValueError, "points"),
        (dict(steps=-1), ValueError, "steps"),
        (dict(lr=0), ValueError, "lr"),
        (dict(method="newton"), ValueError, "method"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        actlab.fit(SLAF(), torch.tanh, **kwargs)


def test_bad_modules_and_targets():
    with pytest.raises(ValueError, match="no closed-form linear_fit"):
        actlab.fit(RationalA([1.0] * 3, [1.0]), torch.tanh, method="lstsq")
    with pytest.raises(ValueError, match="no trainable parameters"):
        actlab.fit(nn.Tanh(), torch.relu, method="optimizer")
    with pytest.raises(ValueError, match="elementwise to finite values"):
        actlab.fit(SLAF(), torch.log, x_range=(-1, 1))
    with pytest.raises(TypeError, match="name, a module or a tensor function"):
        actlab.fit(SLAF(), 3.0)
    with pytest.raises(ValueError, match="unknown activation"):
        actlab.fit(SLAF(), "no_such_activation")


def test_pau_preset_script_writes_the_format_pau_reads(tmp_path):
    import json

    script = load("scripts/fit_pau_presets.py")
    output = tmp_path / "presets.json"
    official = {
        "numerator": PUBLISHED_LEAKY_A[0],
        "denominator": PUBLISHED_LEAKY_A[1],
        "x_range": [-3, 3],
        "source": "ml-research/rational_activations rational/rationals_config.json",
    }
    output.write_text(json.dumps({"version": 1, "presets": {"leaky_relu": {"5,4": official}}}))
    assert (
        script.main(
            ["--targets", "tanh", "--degrees", "3,2", "--points", "401", "--steps", "150", "--output", str(output)]
        )
        == 0
    )
    data = json.loads(output.read_text())
    assert data["version"] == 1 and data["presets"]["leaky_relu"]["5,4"]["numerator"] == PUBLISHED_LEAKY_A[0]
    entry = data["presets"]["tanh"]["3,2"]
    assert set(entry) >= {"numerator", "denominator", "x_range", "max_error"} and entry["x_range"] == [-3.0, 3.0]
    pau = actlab.PAU((3, 2), numerator=entry["numerator"], denominator=entry["denominator"], dtype=torch.float64)
    max_error, _ = grid_errors(pau, torch.tanh, points=401)
    assert max_error == pytest.approx(entry["max_error"], rel=1e-6) and max_error < 0.01


def test_optimizer_never_returns_worse_than_its_start():
    """Starting at the published optimum, a large-step Adam run cannot make the result worse."""
    module = RationalA(*PUBLISHED_LEAKY_A)
    before = grid_errors(module, leaky_relu, points=501)[1]
    actlab.fit(module, leaky_relu, points=501, steps=30, lr=0.5)
    assert grid_errors(module, leaky_relu, points=501)[1] <= before
