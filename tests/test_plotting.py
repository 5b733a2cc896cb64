"""Figures (headless, Agg), the plot/properties CLI commands and the gallery."""

import importlib.util
import pathlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import actlab  # noqa: E402
from actlab import plotting  # noqa: E402
from actlab.cli import main  # noqa: E402

from .cli_helpers import cli_env  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF", ".gif": b"GIF89a"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _curves(ax):
    """The labelled lines (zero lines and grid are unlabelled)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def _assert_file(path, suffix):
    data = pathlib.Path(path).read_bytes()
    assert data.startswith(MAGIC[suffix]), f"{path} is not a {suffix} file"
    assert len(data) > 2000


def _trained_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), actlab.SRS(num_parameters=6), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 1))
    with torch.no_grad():
        model[1].raw_alpha.add_(torch.randn(6))
    return model


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_overlay_saves_each_format(tmp_path, suffix):
    path = tmp_path / f"fig{suffix}"
    fig, axes = actlab.plot(["srs", "serf", "gelu"], save=path)
    _assert_file(path, suffix)
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["srs", "serf", "gelu"]
    assert axes[0].get_xlabel() == "x" and axes[0].get_ylabel() == "f(x)" and axes[1].get_ylabel() == "f′(x)"


def test_plot_draws_the_inspected_curves():
    fig, axes = actlab.plot(["relu", torch.tanh], x_range=(-2, 3), points=51)
    relu_line, tanh_line = _curves(axes[0])
    x = np.linspace(-2, 3, 51)
    np.testing.assert_allclose(relu_line.get_xdata(), x, atol=1e-6)
    np.testing.assert_allclose(relu_line.get_ydata(), np.maximum(x, 0), atol=1e-6)
    np.testing.assert_allclose(tanh_line.get_ydata(), np.tanh(x), atol=1e-6)
    d_relu, d_tanh = _curves(axes[1])
    np.testing.assert_allclose(d_tanh.get_ydata(), 1 - np.tanh(x) ** 2, atol=1e-6)
    assert tanh_line.get_label() == "tanh"
    assert axes[0].get_xlim() == (-2, 3)


def test_plot_on_one_axes_draws_derivative_dashed():
    fig, ax = plt.subplots()
    _, axes = actlab.plot("srs", ax=ax)
    assert axes == (ax,)
    styles = [(line.get_label(), line.get_linestyle()) for line in _curves(ax)]
    assert styles == [("f(x)", "-"), ("f′(x)", "--")]
    assert ax.get_title() == "srs"


def test_plot_per_channel_module_shows_spread_and_accepts_labels():
    model = _trained_model()
    fig, axes = actlab.plot({"learned SRS": model[1], "init": actlab.SRS()}, derivative=False)
    assert len(axes) == 1
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["learned SRS", "init"]
    assert len(axes[0].collections) == 1  # one min–max band, for the per-channel module only


def test_plot_errors():
    with pytest.raises(ValueError, match="empty"):
        actlab.plot([])
    with pytest.raises(ValueError, match="unknown activation"):
        actlab.plot("no_such_thing")
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="pair"):
        actlab.plot("srs", derivative=False, ax=[ax, ax])


def test_plot_sites_with_histograms(tmp_path):
    model = _trained_model()
    with actlab.record_inputs(model, range=(-4, 4)) as rec:
        model(torch.randn(500, 3) * 3)
    reports = actlab.inspect(model, derivative=True)
    path = tmp_path / "sites.png"
    fig, axes = plotting.plot_sites(reports, rec.histograms, derivative=True, save=path, title="learned")
    _assert_file(path, ".png")
    assert [ax.get_title() for ax in axes] == ["1 (srs)", "3 (relu)"]
    assert len(fig.axes) == 4  # two panels and their histogram twins
    twin = fig.axes[2]
    heights = twin.collections[0].get_paths()[0].vertices[:, 1]
    assert heights.max() == pytest.approx(rec.histograms["1"].density().max())
    texts = [t.get_text() for ax in axes for t in ax.texts]
    assert any("outside plot" in t for t in texts)  # inputs * 3 exceed (-5, 5)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == [
        "mean of 6 channels",
        "channel min–max",
        "f′(x)",
    ]


def test_plot_sites_errors():
    model = _trained_model()
    with pytest.raises(ValueError, match="no activation sites"):
        plotting.plot_sites([])
    with pytest.raises(ValueError, match="derivative=True"):
        plotting.plot_sites(actlab.inspect(model), derivative=True)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="one Axes per site"):
        plotting.plot_sites(actlab.inspect(model), axes=[ax])


def test_evolution_figure_and_gif(tmp_path):
    model = _trained_model()
    rec = actlab.ParameterRecorder(model, every=2, points=31)
    for _ in range(6):
        with torch.no_grad():
            model[1].raw_alpha.add_(0.2)
        rec.step()
    png, gif = tmp_path / "evolution.png", tmp_path / "evolution.gif"
    fig, axes = plotting.plot_evolution(rec, save=png)
    _assert_file(png, ".png")
    assert [ax.get_title() for ax in axes] == ["1 (srs)", "3 (relu)"]
    assert len(axes[0].get_lines()) == 4 + 2  # one curve per snapshot (steps 0, 2, 4, 6) + zero lines
    assert fig.axes[-1].get_ylabel() == "training step"
    assert plotting.animate_evolution(rec, gif, sites=["1"], dpi=40) == str(gif)
    _assert_file(gif, ".gif")
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 4
    with pytest.raises(ValueError, match="unknown site"):
        plotting.plot_evolution(rec, sites=["nope"])
    with pytest.raises(ValueError, match="curves=True"):
        plotting.plot_evolution(actlab.ParameterRecorder(model, curves=False))


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'actlab\[plot\]'"):
        actlab.plot("srs")


# -- CLI ------------------------------------------------------------------------------------


def test_cli_plot_writes_the_file(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert main(["plot", "srs", "serf", "gelu", "--out", str(out), "--range", "-3", "3", "--no-derivative"]) == 0
    _assert_file(out, ".png")
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["plot", "nope", "--out", "x.png"], "unknown activation"),
        (["plot", "srs", "--out", "x.png", "--range", "2", "1"], "LOW < HIGH"),
        (["plot", "srs", "--out", "x.nope"], "unknown format"),
        (["properties"], "--all"),
        (["properties", "relu", "--all"], "not both"),
        (["properties", "nope"], "unknown activation"),
    ],
)
def test_cli_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_properties_table_and_markdown(tmp_path, capsys):
    md = tmp_path / "props.md"
    assert main(["properties", "relu", "tanh", "srs", "--markdown", str(md), "--check"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:5]}
    assert set(rows) == {"relu", "tanh", "srs"}
    assert "below" in rows["relu"] and "both" in rows["tanh"] and "(-3, -2.462)" in rows["srs"]
    assert "agrees" in rows["srs"]
    text = md.read_text()
    assert text.splitlines()[0].startswith("| name | bounded |")
    assert "| srs | both | no | yes | (-3, -2.462) |" in text


def test_cli_properties_check_fails_on_a_disagreement(monkeypatch, capsys):
    from actlab import registry

    real = registry._REGISTRY["tanh"]
    monkeypatch.setitem(registry._REGISTRY, "tanh", type(real)(**{**real.__dict__, "monotonic": False}))
    assert main(["properties", "tanh", "--check"]) == 1
    captured = capsys.readouterr()
    assert "DIFFERS: monotonic: declared False, measured True" in captured.out
    assert "differ from the registry for: tanh" in captured.err


def test_import_is_matplotlib_free_and_cli_runs_as_a_subprocess(tmp_path):
    """One fresh interpreter: importing actlab loads no matplotlib; ``python -m actlab plot`` works."""
    out = tmp_path / "fig.svg"
    code = (
        "import runpy, sys\n"
        "import actlab, actlab.plotting, actlab.inspection\n"
        "assert 'matplotlib' not in sys.modules, 'importing actlab imported matplotlib'\n"
        f"sys.argv = ['actlab', 'plot', 'relu', '--out', {str(out)!r}]\n"
        "runpy.run_module('actlab', run_name='__main__')\n"
    )
    env = cli_env()
    env.pop("MPLBACKEND")  # the command must select Agg itself
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    _assert_file(out, ".svg")


# -- gallery --------------------------------------------------------------------------------


def _gallery_module():
    spec = importlib.util.spec_from_file_location("make_gallery", REPO / "scripts" / "make_gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gallery_figure_and_section(tmp_path):
    gallery = _gallery_module()
    path = tmp_path / "srs.png"
    gallery.draw("srs", str(path))
    _assert_file(path, ".png")
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (600, 400)
    text = gallery.section(actlab.info("srs"), actlab.properties("srs"), "gallery/srs.png")
    assert "![srs: function and derivative](gallery/srs.png)" in text
    assert "x / (x/alpha + exp(-x/beta))" in text and "arXiv:2003.00547" in text and "minimum (-3, -2.462)" in text


def test_gallery_is_up_to_date_with_the_registry():
    names = set(actlab.list_activations())
    images = {p.stem for p in (REPO / "docs" / "gallery").glob("*.png")}
    page = (REPO / "docs" / "gallery.md").read_text(encoding="utf-8")
    stale = sorted(names ^ images) + sorted(n for n in names if f"## {n}\n" not in page)
    assert not stale, f"docs/gallery is out of date for {stale}; run: PYTHONPATH=src python scripts/make_gallery.py"


def test_plot_sites_marks_sites_that_are_not_elementwise():
    class MaxScaled(actlab.Activation):
        def forward(self, x):
            return x / (x.abs().amax() + 1)

    with pytest.warns(UserWarning, match="not elementwise"):
        reports = actlab.inspect(nn.Sequential(MaxScaled()))
    fig, axes = plotting.plot_sites(reports)
    assert any("not elementwise" in t.get_text() for t in axes[0].texts)
