"""The fast paths against the reference: dispatch rules, layouts, the kernel Function, inductor and Triton kernels.

Compiling is slow (about 10-20 s per graph cold on 2 cores), so the default run
compiles few graphs: the kernel Function and the layouts are checked for every
op through a plain (uncompiled) engine, the inductor kernels for two ops and
the parameter-gradient layouts; ``-m slow`` compiles every op. The Triton
kernels are checked in tests/test_triton_interpreter.py, and here on CUDA.
"""

import math
import types
import warnings

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import actlab
from actlab.elementwise import apply, backward_grads, forward_value
from actlab.kernels import dispatch
from actlab.kernels.layout import plan

from .fastpath_cases import ELEMENTWISE, LAYOUTS, SPECIALS, compare, make_input, op_and_params, run, saved_input_sized

CUDA = torch.cuda.is_available()


# -- dispatch rules (nothing is compiled) --------------------------------------------------------------


@pytest.fixture
def srs_op():
    return actlab.create("srs").op


def test_auto_on_cpu_is_fused_below_the_threshold_and_compiled_above(srs_op, monkeypatch):
    # float64: float32 takes the native kernels at every size (tests/test_native_kernels.py)
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 1000)
    monkeypatch.setattr(dispatch, "_disabled", {})
    assert dispatch.choose(srs_op, torch.empty(999, dtype=torch.float64), "auto") == "fused"
    assert dispatch.choose(srs_op, torch.empty(1000, dtype=torch.float64), "auto") == "compiled"


def test_auto_does_not_choose_a_backend_that_failed_to_build(srs_op, monkeypatch):
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    monkeypatch.setattr(dispatch, "_disabled", {"compiled": "no compiler", "native": "no compiler"})
    assert dispatch.choose(srs_op, torch.empty(10), "auto") == "fused"


def test_explicit_backends_are_honoured_and_reference_is_always_reference(srs_op):
    x = torch.empty(10)
    assert dispatch.choose(srs_op, x, "reference") == "reference"
    assert dispatch.choose(srs_op, x, "fused") == "fused"
    assert dispatch.choose(srs_op, x, "compiled") == "compiled"
    assert dispatch.choose(srs_op, x, "native") == "native"


def test_under_export_auto_is_the_reference_and_fast_paths_are_the_fused_function(srs_op, monkeypatch):
    monkeypatch.setattr(dispatch, "_is_exporting", lambda: True)
    x = torch.empty(1 << 20)
    assert dispatch.choose(srs_op, x, "auto") == "reference"
    assert dispatch.choose(srs_op, x, "compiled") == "fused"


def test_inside_torch_compile_every_fast_path_is_the_fused_function(srs_op, monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    x = torch.empty(1 << 20)
    for backend in ("auto", "fused", "compiled", "native", "triton"):
        assert dispatch.choose(srs_op, x, backend) == "fused"


def test_empty_inputs_take_the_fused_path(srs_op, monkeypatch):
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    assert dispatch.choose(srs_op, torch.empty(0, 3), "auto") == "fused"
    assert dispatch.choose(srs_op, torch.empty(0, 3), "compiled") == "fused"


def test_triton_on_a_cpu_tensor_is_a_clear_error(srs_op, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend='triton' needs a CUDA tensor, got one on cpu"):
        actlab.functional.srs(torch.randn(4), backend="triton")


def test_triton_rejects_float64_and_ops_without_triton_math(srs_op, monkeypatch):
    pytest.importorskip("triton")
    # Triton decides at decoration time whether a kernel is interpreted: import the kernels
    # before switching the interpreter on, or later GPU builds in this process get interpreted ones.
    from actlab.kernels import triton_kernels, triton_math  # noqa: F401

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # lets CPU tensors through to the dtype and op checks
    with pytest.raises(ValueError, match="supports float32, float16 and bfloat16, got torch.float64"):
        dispatch.choose(srs_op, torch.empty(3, dtype=torch.float64), "triton")
    no_math = actlab.elementwise.ElementwiseOp("no_triton_math", (), lambda x: x, lambda x: (torch.ones_like(x),))
    with pytest.raises(ValueError, match="no Triton kernel for this op"):
        dispatch.choose(no_math, torch.empty(3), "triton")


def test_backend_names_are_accepted_globally_and_per_module():
    m = actlab.Serf()
    for name in ("compiled", "native", "triton", "fused", "auto", "reference"):
        m.backend = name
        with actlab.set_backend(name):
            assert actlab.get_backend() == name
    with pytest.raises(ValueError, match="choose one of: auto, reference, fused, compiled, native, triton"):
        m.backend = "cuda"


def test_compile_threshold_can_be_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACTLAB_COMPILE_THRESHOLD", "123")
    assert dispatch._threshold_from_env(7) == 123
    monkeypatch.setenv("ACTLAB_COMPILE_THRESHOLD", "lots")
    with pytest.raises(ValueError, match="ACTLAB_COMPILE_THRESHOLD must be an integer"):
        dispatch._threshold_from_env(7)
    monkeypatch.delenv("ACTLAB_COMPILE_THRESHOLD")
    assert dispatch._threshold_from_env(7) == 7


# -- layouts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,channel_dim,fmt,kind,canonical",
    [
        ((2, 3, 4, 5), None, None, "shared", (120,)),
        ((2, 3, 4, 5), 1, None, "rows", (2, 3, 20)),
        ((2, 3, 4, 5), 1, torch.channels_last, "cols", (40, 3)),
        ((6, 3), 1, None, "cols", (6, 3)),
        ((2, 7, 3), 2, None, "cols", (14, 3)),
        ((3, 2, 4), 0, None, "rows", (1, 3, 8)),
    ],
)
def test_layout_views_dense_inputs_without_copying(shape, channel_dim, fmt, kind, canonical):
    x = torch.randn(shape)
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
    params = []
    if channel_dim is not None:
        p_shape = [1] * x.dim()
        p_shape[channel_dim] = x.shape[channel_dim]
        params = [torch.randn(p_shape)]
    layout = plan(x, params)
    assert (layout.kind, layout.shape) == (kind, canonical)
    view = layout.view(x)
    assert view.data_ptr() == x.data_ptr() and view.is_contiguous()
    back = layout.restore(view)
    assert back.shape == x.shape and back.stride() == x.stride() and torch.equal(back, x)
    # Each element of the canonical view sits in its own channel's run.
    if kind != "shared":
        channel_of = torch.arange(x.shape[channel_dim]).reshape(params[0].shape).expand(x.shape)
        channel_of = channel_of.contiguous(memory_format=fmt) if fmt else channel_of.contiguous()
        expected = torch.arange(canonical[1]).reshape((1, -1, 1) if kind == "rows" else (1, -1)).expand(canonical)
        assert torch.equal(layout.view(channel_of), expected)


def test_layout_copies_non_dense_inputs_and_gradients_with_other_strides():
    x = torch.randn(4, 10)[:, ::2]
    layout = plan(x, [torch.randn(1, 5)])
    assert not layout.dense and layout.kind == "cols"
    assert torch.equal(layout.view(x), x.contiguous())
    g = torch.randn(5, 4).t()  # same shape as x, transposed strides
    assert torch.equal(layout.view(g), g.contiguous())


def test_layout_expands_scalar_parameters_next_to_per_channel_ones_and_sums_their_gradients():
    x = torch.randn(2, 3, 4)
    shared, per_channel = torch.tensor(2.0), torch.randn(1, 3, 1)
    layout = plan(x, [shared, per_channel])
    canonical = layout.params([shared, per_channel], torch.float32)
    assert [tuple(p.shape) for p in canonical] == [(3, 1), (3, 1)]
    grad = torch.tensor([[1.0], [2.0], [3.0]])
    assert layout.param_grad(grad, shared).item() == 6.0
    assert layout.param_grad(grad, per_channel).shape == per_channel.shape


# -- the fast value formulas ---------------------------------------------------------------------

#: ops whose fused paths compute the value with a cheaper formula than the reference's
WITH_VALUE = [n for n in ELEMENTWISE if actlab.create(n).op.value is not None]


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("name", WITH_VALUE)
def test_value_formula_matches_reference_over_the_float_range(name, dtype):
    """``op.value`` equals the reference ``op.forward`` at every magnitude, special values included."""
    op, params = op_and_params(name, None, dtype)
    finfo = torch.finfo(dtype)
    magnitudes = torch.logspace(math.log10(finfo.tiny), math.log10(finfo.max), 1201, dtype=torch.float64)
    x = torch.cat(
        [-magnitudes, magnitudes, torch.linspace(-12, 12, 2401, dtype=torch.float64), torch.tensor(SPECIALS)]
    ).to(dtype)
    tol = {"rtol": 2e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(op.value(x, *params), op.forward(x, *params), equal_nan=True, **tol)


# -- the kernel Function, for every op, through an uncompiled engine ------------------------------------


class EagerEngine(types.SimpleNamespace):
    """The engine interface computed with the eager fused math: checks function.py and layout.py alone."""

    NAME = "eager-test"

    @staticmethod
    def forward(op, layout, x, params):
        assert x.is_contiguous() and tuple(x.shape) == layout.shape
        return forward_value(op.fused_value, x, params)

    @staticmethod
    def backward(op, layout, x, grad, params, needs):
        assert grad.is_contiguous() and tuple(grad.shape) == layout.shape
        return backward_grads(op.derivatives, x, params, grad, needs)


@pytest.fixture
def eager_engine(monkeypatch):
    monkeypatch.setattr(dispatch, "_engine", lambda path: EagerEngine)


@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay[0] for lay in LAYOUTS])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_kernel_function_matches_reference_in_float64(eager_engine, name, layout):
    compare(name, layout, torch.float64, "compiled")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_kernel_function_matches_reference_with_nan_and_inf(eager_engine, name):
    compare(name, LAYOUTS[3], torch.float32, "compiled", specials=True)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_kernel_function_saves_only_the_input(eager_engine, name):
    assert saved_input_sized(name, "compiled") == (1, True)


def test_kernel_function_gradcheck_and_double_backward(eager_engine):
    op, params = op_and_params("srs", 4, torch.float64)
    x = make_input(("cols", (3, 2, 4), -1, True, None), torch.float64).requires_grad_(True)
    params = [p.requires_grad_(True) for p in params]
    fn = lambda x, *p: apply(op, x, p, channel_dim=-1, backend="compiled")
    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)
    assert gradgradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def test_kernel_function_handles_inputs_that_need_no_gradient(eager_engine):
    op, params = op_and_params("sqish", 4, torch.float64)
    x = make_input(LAYOUTS[1], torch.float64)
    p = [v.requires_grad_(True) for v in params]
    apply(op, x, p, backend="compiled").sum().backward()
    ref = [v.detach().clone().requires_grad_(True) for v in params]
    apply(op, x, ref, backend="reference").sum().backward()
    for a, b in zip(p, ref):
        torch.testing.assert_close(a.grad, b.grad)
    xi = x.clone().requires_grad_(True)
    apply(op, xi, [v.detach() for v in params], backend="compiled").sum().backward()
    assert xi.grad is not None


class BrokenEngine(EagerEngine):
    NAME = "broken-test"

    @staticmethod
    def forward(op, layout, x, params):
        raise dispatch.KernelUnavailable("cannot build") from OSError("no compiler")


def test_a_kernel_that_cannot_be_built_falls_back_under_auto_and_raises_when_asked_for(monkeypatch):
    monkeypatch.setattr(dispatch, "_engine", lambda path: BrokenEngine)
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 0)
    x = torch.randn(50)
    with pytest.warns(RuntimeWarning, match="could not be built .*OSError: no compiler"):
        y = actlab.functional.serf(x, backend="auto")
    torch.testing.assert_close(y, actlab.functional.serf(x, backend="reference"))
    assert "broken-test" in dispatch._disabled
    with pytest.raises(dispatch.KernelUnavailable):
        actlab.functional.serf(x, backend="compiled")


# -- inductor kernels -----------------------------------------------------------------------------------


@pytest.mark.compile
def test_compiled_kernels_match_reference_and_serve_every_size():
    """Two ops, two layouts: the value, input and (per-channel) parameter gradients, and no recompiles."""
    from actlab.kernels import compiled

    compare("srs", LAYOUTS[1], torch.float32, "compiled")  # per-channel, NCHW-like
    compare("serf", LAYOUTS[0], torch.float32, "compiled")  # no parameters
    count = compiled.compiled_graph_count()
    for layout in (("rows", (5, 4, 9), 1, True, None), ("rows", (2, 4, 3, 3), 1, True, None)):
        compare("srs", layout, torch.float32, "compiled")  # other sizes and ranks, runs as short: the same graphs
    compare("serf", ("shared", (40,), 1, False, None), torch.float32, "compiled")
    assert compiled.compiled_graph_count() == count
    # Runs long enough for wider loops get one graph per direction and width, which serves every such size.
    for n in (1000, 3000):
        compare("serf", ("shared", (n,), 1, False, None), torch.float32, "compiled")
    widths = {compiled.loop_vectors(4, torch.empty(n)) for n in (37, 1000, 3000)}
    assert compiled.compiled_graph_count() == count + 2 * (len(widths) - 1)
    assert saved_input_sized("srs", "compiled") == (1, True)


def _vector_isa_or_skip():
    from torch._inductor import cpu_vec_isa

    isa = cpu_vec_isa.pick_vec_isa()
    if not isa:
        pytest.skip("inductor found no vector ISA on this CPU: its loops are scalar")
    return isa


def test_wider_cpu_loops_apply_to_the_compiling_thread_only():
    """The ISA's table is scaled inside the context on this thread, and nowhere else, and restored after."""
    import threading

    from actlab.kernels import compiled

    isa = _vector_isa_or_skip()
    narrow = isa.nelements(torch.float)
    seen_elsewhere = []
    with compiled._wider_cpu_loops(4) as wider:
        assert wider
        assert isa.nelements(torch.float) == 4 * narrow
        thread = threading.Thread(target=lambda: seen_elsewhere.append(isa.nelements(torch.float)))
        thread.start()
        thread.join()
    assert seen_elsewhere == [narrow]
    assert isa.nelements(torch.float) == narrow
    with compiled._wider_cpu_loops(1) as wider:
        assert not wider and isa.nelements(torch.float) == narrow


@pytest.mark.parametrize(
    "extent, requested, expected",
    [
        (2**22, 4, 4),  # the shared layout of a large input
        (64, 4, 4),  # exactly one wide vector: no tail
        (784, 4, 4),  # 28x28 feature maps: at least four wide vectors
        (196, 4, 2),  # 14x14: 3 wide vectors and a tail of 4 lanes, but 6 of 32
        (32, 4, 2),
        (49, 4, 1),  # 7x7: most of one wide vector would be empty lanes
        (16, 4, 1),
        (8, 4, 1),  # fewer elements than one vector
        (784, 2, 2),  # never wider than the op asks (PAU)
        (2**22, 1, 1),
    ],
)
def test_loop_width_shrinks_for_short_vectorised_runs(extent, requested, expected, monkeypatch):
    """With 16 float32 lanes (AVX-512): halve the width until the run is a multiple of it or at least four of it."""
    from actlab.kernels import compiled

    monkeypatch.setattr(compiled, "_float32_lanes", lambda: 16)
    assert compiled.loop_vectors(requested, torch.empty(3, extent)) == expected


def test_loop_width_is_one_for_other_dtypes_devices_and_scalar_isas(monkeypatch):
    from actlab.kernels import compiled

    monkeypatch.setattr(compiled, "_float32_lanes", lambda: 16)
    assert compiled.loop_vectors(4, torch.empty(2**12, dtype=torch.float64)) == 1
    assert compiled.loop_vectors(4, torch.empty(2**12, dtype=torch.bfloat16)) == 1
    assert compiled.loop_vectors(4, torch.empty(2**12, device="meta")) == 1
    monkeypatch.setattr(compiled, "_float32_lanes", lambda: 0)
    assert compiled.loop_vectors(4, torch.empty(2**12)) == 1


def test_kernels_are_built_at_the_width_for_their_input(monkeypatch):
    """forward and backward ask run() for loop_vectors of the canonical input; an explicit width wins."""
    from actlab.kernels import compiled
    from actlab.kernels.layout import plan

    asked = []
    monkeypatch.setattr(compiled, "_float32_lanes", lambda: 16)
    monkeypatch.setattr(compiled, "run", lambda name, key, make, args, *, cpu_vectors: asked.append(cpu_vectors))
    op = actlab.create("zorro").op
    cases = [  # input shape, parameter shape (per channel), width
        ((8, 64, 7, 7), (1, 64, 1, 1), 1),  # "rows", runs of 49
        ((8, 64, 28, 28), (1, 64, 1, 1), 4),  # "rows", runs of 784
        ((8, 14, 14, 32), (1, 1, 1, 32), 2),  # "cols", 32 channels
        ((8, 14, 14, 32), (), 4),  # "shared"
    ]
    for shape, param_shape, expected in cases:
        x = torch.randn(shape)
        params = [torch.ones(param_shape) for _ in op.param_names]
        layout = plan(x, params)
        xv, pv = layout.view(x), layout.params(params, torch.float32)
        compiled.forward(op, layout, xv, pv)
        compiled.backward(op, layout, xv, torch.ones_like(xv), pv, (True,) * (1 + len(pv)))
        assert asked[-2:] == [expected, expected], shape
    compiled.forward(op, layout, xv, pv, vectors=8)
    assert asked[-1] == 8


def test_cpu_vectors_must_be_a_supported_count():
    with pytest.raises(ValueError, match="cpu_vectors must be 1, 2, 4 or 8"):
        actlab.elementwise.ElementwiseOp("probe", (), torch.sigmoid, lambda x: (x,), cpu_vectors=3)


@pytest.mark.compile
@pytest.mark.parametrize("name, vectors", [("serf", 4), ("pau", 2)])
def test_float32_cpu_kernels_take_the_ops_vectors_per_iteration(name, vectors, monkeypatch):
    """Forward and backward loops use ``VectorizedN<float, cpu_vectors>``; float64 loops keep inductor's width."""
    from torch._inductor.utils import run_and_get_code

    from actlab.kernels import compiled

    _vector_isa_or_skip()
    monkeypatch.setattr(compiled, "_cache", {})
    monkeypatch.setattr(compiled, "_built", set())
    module = actlab.create(name)
    assert module.op.cpu_vectors == vectors
    module.backend = "compiled"
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 5, 70, dtype=dtype, requires_grad=True)

        def step():
            module.to(dtype)(x).sum().backward()

        _, codes = run_and_get_code(step)
        kernels = [c for c in codes if 'extern "C"' in c]
        assert len(kernels) == 2  # forward and backward
        wide = [f"VectorizedN<float,{vectors}>" in c for c in kernels]
        assert wide == ([True, True] if dtype == torch.float32 else [False, False])


@pytest.mark.compile
def test_the_loop_width_is_part_of_inductors_cache_key():
    """The same graph compiled narrow, then wide: the wide compile must not be served the cached narrow kernel."""
    from torch._inductor.utils import run_and_get_code

    from actlab.kernels import compiled

    _vector_isa_or_skip()
    x = torch.randn(100)
    make = lambda: lambda t: torch.exp(-torch.exp(-t.abs()))
    codes = {}
    for vectors in (1, 4):
        out, code = run_and_get_code(lambda: compiled.run("width_probe", (), make, (x,), cpu_vectors=vectors))
        torch.testing.assert_close(out, torch.exp(-torch.exp(-x.abs())))
        codes[vectors] = "\n".join(code)
    assert "VectorizedN<float,4>" in codes[4]
    assert "VectorizedN<float,4>" not in codes[1]


@pytest.mark.compile
def test_cpu_kernels_fuse_multiply_adds_and_the_setting_is_part_of_the_cache_key(monkeypatch):
    """t·t - c rounded once: with t = 1 + 2^-12 and c = fl(t²) = 1 + 2^-11, exactly 2^-24 (two roundings: 0).

    Built first without the setting and then with it, the same graph in one
    process: the second build must not be served the first one's kernel.
    """
    from actlab.kernels import compiled

    _vector_isa_or_skip()
    assert compiled._contraction_patch(), "this torch's inductor has no FP-contraction setting"
    t = torch.full((100,), 1 + 2**-12)
    c = torch.full((100,), 1 + 2**-11)
    assert (t * t == c).all()  # torch's own multiply rounds t² to c
    make = lambda: lambda a, b: a * a - b
    monkeypatch.setattr(compiled, "_contraction_patch", lambda: {})
    separate = compiled.run("contract_probe_off", (), make, (t, c))
    monkeypatch.undo()
    fused = compiled.run("contract_probe_on", (), make, (t, c))
    assert (separate == 0).all()
    assert (fused == 2**-24).all()


@pytest.mark.compile
def test_a_recompile_after_the_first_call_keeps_python_numbers_as_constants():
    """An inference-mode input fails a guard of the first graph; the graph traced for it must still
    compile the kernel's Python floats into the code rather than take them as float64 inputs."""
    from torch._inductor.utils import run_and_get_code

    from actlab.kernels import compiled

    def make():
        scale, shift = 2.5, 1.25  # closed over, as the kernels' interval ends and constants are

        return lambda t: t * scale + shift

    x = torch.randn(100)
    compiled.run("specialize_probe", (), make, (x,))
    with torch.inference_mode():
        frozen = torch.randn(100)
        out, codes = run_and_get_code(lambda: compiled.run("specialize_probe", (), make, (frozen,)))
    torch.testing.assert_close(out, frozen * 2.5 + 1.25)
    kernels = [c for c in codes if 'extern "C"' in c]
    assert len(kernels) == 1, "the inference-mode call was expected to trace a second graph"
    assert "double" not in kernels[0] and "2.5" in kernels[0]


@pytest.mark.compile
def test_models_using_fast_paths_compile_with_fullgraph():
    """Inside torch.compile every backend is the fused Function: one graph, no nested compiled kernels."""
    from actlab.kernels import compiled

    model = nn.Sequential(nn.Linear(8, 8), actlab.SRS(num_parameters=8), nn.Linear(8, 8), actlab.Serf())
    model[1].backend = "compiled"
    x = torch.randn(16, 8)
    before = compiled.compiled_graph_count()
    eager = model(x)
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fn = torch.compile(model, fullgraph=True)
    out = fn(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    assert compiled.compiled_graph_count() - before <= 2  # only the eager call above compiled kernels


@pytest.mark.compile
def test_torch_export_sees_the_reference_path(monkeypatch):
    """The rule exporters rely on: under torch.export, "auto" is the reference (plain aten ops)."""
    chosen = []
    choose = dispatch.choose
    monkeypatch.setattr(dispatch, "choose", lambda *a: chosen.append(choose(*a)) or chosen[-1])
    model = nn.Sequential(nn.Linear(4, 4), actlab.Sqish(num_parameters=4))
    x = torch.randn(3, 4)
    program = torch.export.export(model, (x,))
    assert chosen and set(chosen) == {"reference"}
    torch.testing.assert_close(program.module()(x), model(x))


@pytest.mark.slow
@pytest.mark.compile
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_compiled_kernels_of_every_op(name, dtype):
    for layout in LAYOUTS:
        compare(name, layout, dtype, "compiled")
    compare(name, LAYOUTS[3], torch.float32, "compiled", specials=True)
    # Long enough for the widest loops (compiled.loop_vectors), NaN and ±inf included.
    compare(name, ("shared", (1100,), 1, False, None), torch.float32, "compiled", specials=True)
    assert saved_input_sized(name, "compiled", dtype) == (1, True)


@pytest.mark.slow
@pytest.mark.compile
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_compiled_backward_gradcheck(name):
    op, params = op_and_params(name, 4, torch.float64)
    x = make_input(("cols", (3, 2, 4), -1, True, None), torch.float64).requires_grad_(True)
    params = [p.requires_grad_(True) for p in params]
    fn = lambda x, *p: apply(op, x, p, channel_dim=-1, backend="compiled")
    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)


# -- CUDA ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_on_cuda(name, dtype):
    for layout in LAYOUTS:
        compare(name, layout, dtype, "triton", device="cuda")
    if dtype == torch.float32:
        compare(name, LAYOUTS[3], dtype, "triton", specials=True, device="cuda")
    assert saved_input_sized(name, "triton", dtype, device="cuda") == (1, True)


@pytest.mark.gpu
@pytest.mark.compile
@pytest.mark.parametrize("name", ["srs", "pau"])
def test_compiled_kernels_on_cuda(name):
    compare(name, LAYOUTS[1], torch.float32, "compiled", device="cuda")
    compare(name, LAYOUTS[2], torch.bfloat16, "compiled", device="cuda")


@pytest.mark.gpu
def test_auto_picks_triton_on_cuda():
    op = actlab.create("serf").op
    assert dispatch.choose(op, torch.empty(10, device="cuda"), "auto") == "triton"
    assert dispatch.choose(op, torch.empty(10, device="cuda", dtype=torch.float64), "auto") in ("compiled", "fused")


# -- the figures the benchmark reports --------------------------------------------------------------------


def test_no_fast_path_keeps_more_than_the_input_for_backward(eager_engine):
    """Native SiLU keeps one input-sized tensor; so do the fused and kernel paths of every op."""
    silu_saved = []
    x = torch.randn(16, 8, 4, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: silu_saved.append(t) or t, lambda t: t):
        nn.functional.silu(x)
    assert len([t for t in silu_saved if t.numel() >= x.numel()]) == 1
    for name in ELEMENTWISE:
        assert saved_input_sized(name, "fused") == (1, True), name


def test_empty_inputs_on_every_path():
    for name in ELEMENTWISE:
        op, params = op_and_params(name, None, torch.float32)
        for backend in ("reference", "fused", "compiled"):
            x = torch.empty(0, 5, requires_grad=True)
            y = apply(op, x, params, backend=backend)
            y.sum().backward()
            assert y.shape == (0, 5) and x.grad.shape == (0, 5)


def test_non_finite_parameters_propagate(eager_engine):
    op, params = op_and_params("swish", None, torch.float32)
    y, gx, _ = run(op, [torch.tensor(math.nan)], torch.randn(10), 1, "compiled")
    assert y.isnan().all() and gx.isnan().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(op, params, torch.randn(10), 1, "compiled")


def test_traced_for_the_cpu_float32_erf_shares_its_exponential_with_the_gaussian():
    """actlab._math.erf_and_gaussian under torch.compile on CPU, float32: erf written out (A&S 7.1.26 around
    e^{-z²}, the Taylor series below 0.25), within 4e-7 of erf, full relative precision near 0."""
    from actlab._math import erf_and_gaussian

    graphs = []

    def capture(gm, example_inputs):  # a Dynamo backend that runs the traced graph as it is
        graphs.append(gm)
        return gm.forward

    tiny = torch.logspace(-40, -1, 400, dtype=torch.float64)
    z64 = torch.cat([torch.linspace(-7, 7, 28001, dtype=torch.float64), tiny, -tiny])
    z = z64.float()
    traced = torch.compile(erf_and_gaussian, backend=capture, fullgraph=True, dynamic=False)
    erf, gaussian = traced(z)
    assert len(graphs) == 1 and "erf" not in graphs[0].code and graphs[0].code.count("exp(") == 1
    want = torch.erf(z.double())
    # A&S's 1.5e-7 plus float32 rounding: 3.5e-7 here; inductor's own float32 erf, which it replaces, is 4.0e-7 off.
    assert (erf.double() - want).abs().max().item() <= 4e-7
    near0 = (z.abs() < 0.25) & (want.abs() >= torch.finfo(torch.float32).tiny)  # subnormals have fewer bits
    rel = ((erf.double() - want).abs() / want.abs())[near0]
    assert rel.max().item() <= 2 * torch.finfo(torch.float32).eps
    assert torch.equal(gaussian, torch.exp(-z * z))
    specials = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, -0.0])
    erf_s, gaussian_s = traced(specials)
    torch.testing.assert_close(erf_s, torch.erf(specials), equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(gaussian_s, torch.exp(-specials * specials), equal_nan=True, rtol=0, atol=0)
    # float64 keeps torch.erf when traced; eager code is torch.erf itself.
    graphs.clear()
    traced(z64)
    assert "erf" in graphs[-1].code
    assert torch.equal(erf_and_gaussian(z)[0], torch.erf(z))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_traced_for_the_cpu_log1p_is_a_series_as_accurate_as_log1p(dtype):
    """Under torch.compile on CPU, log1p on [0, 1] is a series (actlab._math.log1p_of_unit): within 2 ulp of log1p."""
    from actlab._math import log1p_of_unit

    graphs = []

    def capture(gm, example_inputs):  # a Dynamo backend that runs the traced graph as it is
        graphs.append(gm)
        return gm.forward

    e = torch.cat([torch.linspace(0, 1, 20001, dtype=torch.float64), torch.logspace(-40, -1, 400, dtype=torch.float64)])
    e = e.to(dtype)
    got = torch.compile(log1p_of_unit, backend=capture, fullgraph=True, dynamic=False)(e).double()
    assert len(graphs) == 1 and "log1p" not in graphs[0].code
    want = torch.log1p(e.double())
    rel = ((got - want).abs() / want.clamp_min(torch.finfo(dtype).tiny)).max().item()
    assert rel <= 2 * torch.finfo(dtype).eps
    assert torch.equal(log1p_of_unit(e), torch.log1p(e))  # eager: torch.log1p itself
