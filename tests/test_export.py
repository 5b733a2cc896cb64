"""torch.export and ONNX export (dynamo exporter, checked with ONNX Runtime) for every activation.

An ONNX export costs about 1.5 s of fixed overhead, so the default run exports
*one* model holding every registered activation (per channel, after a Conv),
with a dynamic batch size, through torch.export and then ONNX, and checks each
activation's outputs on its own. Should that joint export fail, each test
exports its activation alone, so the failures name exactly the activations at
fault. ``-m slow`` exports every activation alone in three layouts (per-channel
conv, shared dense, per-channel on the last axis) with both backends.
Tolerances are widened by PyTorch's own float32 error (see :func:`assert_matches_eager`).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

import actlab

from .model_zoo import make, perturb

NAMES = actlab.list_activations()
WIDTH = 5
#: Where the activation sits, and how its parameters are laid out.
LAYOUTS = {
    "conv": "Conv2d -> per-channel activation (axis 1) -> Conv2d, input (N, 3, 4, 4)",
    "dense": "Linear -> shared activation -> Linear, input (N, 4)",
    "tokens": "Linear -> per-channel activation (axis -1) -> Linear, input (N, 6, 4)",
}


def branch(name: str, layout: str) -> nn.Sequential:
    torch.manual_seed(sum(map(ord, name + layout)))
    if layout == "conv":
        model = nn.Sequential(nn.Conv2d(3, WIDTH, 1), make(name, WIDTH), nn.Conv2d(WIDTH, 2, 1))
    elif layout == "dense":
        model = nn.Sequential(nn.Linear(4, WIDTH), make(name), nn.Linear(WIDTH, 3))
    else:
        model = nn.Sequential(nn.Linear(4, WIDTH), make(name, WIDTH, channel_dim=-1), nn.Linear(WIDTH, 3))
    return perturb(model, 0.05).eval()


class Zoo(nn.Module):
    """One branch per activation, all on the same input: one export covers them all."""

    def __init__(self, names, layout: str = "conv"):
        super().__init__()
        self.names = list(names)
        self.branches = nn.ModuleList(branch(n, layout) for n in self.names)

    def forward(self, x: torch.Tensor):
        return tuple(b(x) for b in self.branches)


def example(batch: int, layout: str = "conv") -> torch.Tensor:
    shape = {"conv": (3, 4, 4), "dense": (4,), "tokens": (6, 4)}[layout]
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch)) * 3
    x[0] *= 10  # reach the tails of every activation
    return x


def export(model: nn.Module, layout: str) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=2, max=1024)
    return torch.export.export(model, (example(3, layout),), dynamic_shapes=({0: batch},))


def onnx_runner(program: torch.export.ExportedProgram):
    """The ExportedProgram through the ONNX (dynamo) exporter, as an ONNX Runtime function."""
    ort = pytest.importorskip("onnxruntime", reason="ONNX checks need the `export` extra")
    pytest.importorskip("onnxscript", reason="ONNX checks need the `export` extra")
    proto = torch.onnx.export(program, verbose=False).model_proto
    options = ort.SessionOptions()
    options.log_severity_level = 3  # constant-folding notices are not findings
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda x: [torch.from_numpy(y) for y in session.run(None, {session.get_inputs()[0].name: x.numpy()})]


def torch_runner(program: torch.export.ExportedProgram):
    """The exported program's module, run for inference (as ONNX Runtime runs it)."""
    module = program.module()

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(module(x))

    return run


@functools.cache
def zoo() -> Zoo:
    return Zoo(NAMES)


@functools.cache
def zoo_program() -> torch.export.ExportedProgram | None:
    try:
        return export(zoo(), "conv")
    except Exception:  # any exporter failure: each test then exports its activation alone
        return None


@functools.cache
def zoo_outputs(runner) -> list[torch.Tensor] | None:
    """The zoo's exported outputs on a batch size not seen at export (``None``: the joint export failed)."""
    program = zoo_program()
    if program is None:
        return None
    try:
        return runner(program)(example(7))
    except Exception:  # e.g. ONNX translation or ONNX Runtime: each test then runs its activation alone
        return None


def assert_matches_eager(got: torch.Tensor, model: nn.Module, x: torch.Tensor, tolerance: float) -> None:
    """``got`` equals eager float32 PyTorch to ``tolerance``, widened by PyTorch's own float32
    error on this input (measured against float64): an ill-conditioned activation (SLAF's
    Chebyshev basis far outside [-1, 1]) may differ between two correct float32 implementations
    by more than ``tolerance``, but not by more than their own error."""
    with torch.no_grad():
        expected = model(x)
        exact = copy.deepcopy(model).double()(x.double())
    assert got.shape == expected.shape
    own_error = (expected.double() - exact).abs().max().item()
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance + 2 * own_error)


def check(name: str, runner, tolerance: float) -> None:
    """The exported ``name`` branch against eager PyTorch."""
    x = example(7)
    outputs = zoo_outputs(runner)
    if outputs is not None:
        i = zoo().names.index(name)
        got, model = outputs[i], zoo().branches[i]
    else:
        alone = Zoo([name])
        got, model = runner(export(alone, "conv"))(x)[0], alone.branches[0]
    assert_matches_eager(got, model, x, tolerance)


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_matches_eager(name):
    check(name, torch_runner, 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_runtime_matches_pytorch(name):
    check(name, onnx_runner, 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", NAMES)
def test_each_activation_alone_in_every_layout(name, layout, backend):
    model = Zoo([name], layout)
    x = example(6, layout)
    with actlab.set_backend(backend):
        program = export(model, layout)
        (exported,) = torch_runner(program)(x)
        (onnx,) = onnx_runner(program)(x)
        assert_matches_eager(exported, model.branches[0], x, 1e-6)
        assert_matches_eager(onnx, model.branches[0], x, 1e-5)


@pytest.mark.slow
def test_surgery_then_export_round_trip():
    """A model converted by replace_activations exports like one written by hand."""
    from .model_zoo import ResNet

    model = ResNet()
    x = torch.randn(2, 3, 8, 8)
    actlab.replace_activations(model, "pau", per_channel=True, example_input=x, warn=False)
    model.eval()
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-6, atol=1e-6)
