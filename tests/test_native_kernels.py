"""The native C kernels of the elementwise activations (backend "native", actlab/kernels/elementwise_*.c).

Every op with C kernels is held against the reference on every canonical layout, with and without
NaN/±inf inputs (the cases of tests/fastpath_cases.py, which the compiled and Triton kernels meet
too), and the dispatch rule, threads, fallbacks and memory are checked once.
"""

import pytest
import torch

import actlab
from actlab.elementwise import ElementwiseOp, apply
from actlab.kernels import dispatch, native, native_elementwise

from .fastpath_cases import ELEMENTWISE, LAYOUTS, compare, op_and_params, run, saved_input_sized

NATIVE = [n for n in ELEMENTWISE if actlab.create(n).op.native is not None]


def test_every_elementwise_activation_has_native_kernels():
    assert NATIVE == ELEMENTWISE


@pytest.mark.parametrize("specials", [False, True], ids=["finite", "nan_inf"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay[0] for lay in LAYOUTS])
@pytest.mark.parametrize("name", NATIVE)
def test_native_kernels_match_the_reference(name, layout, specials):
    compare(name, layout, torch.float32, "native", specials=specials)


@pytest.mark.parametrize("name", NATIVE)
def test_native_kernels_save_only_the_input(name):
    assert saved_input_sized(name, "native") == (1, True)


def _values_and_grads(name, x, channels, channel_dim=1):
    op, params = op_and_params(name, channels, torch.float32)
    return run(op, params, x, channel_dim, "native")


@pytest.mark.parametrize(
    "shape, channels, channel_dim",
    [((1 << 17,), None, 1), ((4, 6, 9000), 6, 1), ((9000, 24), 24, -1)],
    ids=["shared", "rows", "cols"],
)
def test_threads_split_the_work_without_changing_the_result(shape, channels, channel_dim):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3)) * 3
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_values_and_grads("zorro", x, channels, channel_dim))
    finally:
        torch.set_num_threads(previous)
    (y1, gx1, gp1), (y2, gx2, gp2) = results
    assert torch.equal(y1, y2) and torch.equal(gx1, gx2)
    for a, b in zip(gp1, gp2):  # summed per part in double precision, then added
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_calls_are_split_only_above_the_grain(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert len(native.element_parts(1, 1000, grain=native_elementwise.GRAIN)) == 1
    assert len(native.element_parts(1, 3 * native_elementwise.GRAIN, grain=native_elementwise.GRAIN)) == 3
    assert len(native.element_parts(64, 10**6, grain=native_elementwise.GRAIN)) == 4
    assert native.element_parts(3, 10, grain=1) == ((0, 1, 0, 10), (1, 1, 0, 10), (2, 1, 0, 10))


@pytest.mark.parametrize("openmp", [False, True])
def test_parts_give_the_same_result_on_pool_threads_and_on_openmp_threads(monkeypatch, openmp):
    lib = native.library(actlab.create("zorro").op.native)
    if openmp and not native.uses_openmp(lib):
        pytest.skip("the kernels are not built with OpenMP here")
    monkeypatch.setattr(native, "uses_openmp", lambda lib: openmp)
    x = torch.randn(4, 6, 9000, generator=torch.Generator().manual_seed(4))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = _values_and_grads("zorro", x, 6)
        torch.set_num_threads(1)
        expected = _values_and_grads("zorro", x, 6)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    for a, b in zip(got[2], expected[2]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


# -- the dispatch rule --------------------------------------------------------------------------------


@pytest.fixture
def zorro_op():
    return actlab.create("zorro").op


def test_auto_takes_the_native_kernels_for_float32_cpu_inputs_from_their_threshold(zorro_op, monkeypatch):
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "COMPILE_THRESHOLD", 1000)
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 100)
    assert dispatch.choose(zorro_op, torch.empty(99), "auto") == "fused"
    for size in (100, 999, 1000, 1 << 22):
        assert dispatch.choose(zorro_op, torch.empty(size), "auto") == "native"
    # other dtypes keep the rule of the other backends
    assert dispatch.choose(zorro_op, torch.empty(999, dtype=torch.float64), "auto") == "fused"
    assert dispatch.choose(zorro_op, torch.empty(1000, dtype=torch.float64), "auto") == "compiled"
    assert dispatch.choose(zorro_op, torch.empty(1000, dtype=torch.bfloat16), "auto") == "compiled"
    # empty inputs, traced code and transforms as for every backend
    assert dispatch.choose(zorro_op, torch.empty(0, 3), "native") == "fused"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert dispatch.choose(zorro_op, torch.empty(10), "native") == "fused"


def test_an_explicit_native_request_says_what_to_use_instead(zorro_op):
    with pytest.raises(ValueError, match="backend='native' supports float32, got torch.float64"):
        dispatch.choose(zorro_op, torch.empty(3, dtype=torch.float64), "native")
    with pytest.raises(ValueError, match="backend='native' runs on the CPU, got a tensor on meta"):
        dispatch.choose(zorro_op, torch.empty(3, device="meta"), "native")
    no_kernels = ElementwiseOp("no_kernels", (), lambda x: x, lambda x: (torch.ones_like(x),))
    with pytest.raises(ValueError, match="no native C kernels for this activation"):
        dispatch.choose(no_kernels, torch.empty(3), "native")
    with pytest.raises(ValueError, match="slaf: no native C kernels"):
        dispatch.choose("slaf", torch.empty(3), "native")
    assert dispatch.choose("ditac", torch.empty(3), "native", native=True) == "native"


def test_ditac_and_slaf_modules_take_the_native_backend_name():
    x = torch.randn(8, 4)
    m = actlab.DiTAC()
    expected = m(x)
    m.backend = "native"
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)
    slaf = actlab.SLAF()
    expected = slaf(x)
    slaf.backend = "native"
    torch.testing.assert_close(slaf(x), expected, rtol=1e-5, atol=1e-5)
    chebyshev = actlab.SLAFChebyshev()
    chebyshev.backend = "native"
    with pytest.raises(ValueError, match="slaf: backend='native' has C kernels for the normalised power basis"):
        chebyshev(x)


def test_a_library_that_cannot_be_built_falls_back_under_auto_and_raises_when_asked_for(zorro_op, monkeypatch):
    def no_compiler(name):
        raise dispatch.KernelUnavailable(f"native kernel {name!r}") from FileNotFoundError("no C compiler found")

    monkeypatch.setattr(native, "library", no_compiler)
    monkeypatch.setattr(dispatch, "_disabled", {})
    monkeypatch.setattr(dispatch, "NATIVE_THRESHOLD", 0)
    x = torch.randn(5, 3)
    expected = apply(zorro_op, x, (1.2, 1.0), backend="fused")
    with pytest.raises(dispatch.KernelUnavailable):
        apply(zorro_op, x, (1.2, 1.0), backend="native")
    with pytest.warns(RuntimeWarning, match="'native' kernels could not be built"):
        got = apply(zorro_op, x, (1.2, 1.0), backend="auto")
    torch.testing.assert_close(got, expected)
    assert dispatch.choose(zorro_op, x, "auto") != "native"  # not chosen again in this process


def test_an_op_whose_c_code_has_other_parameters_is_an_error_not_a_result():
    wrong = ElementwiseOp(
        "swish", ("beta", "extra"), lambda x, b, e: x, lambda x, b, e: (x, x, x), native="elementwise_swish"
    )
    with pytest.raises(RuntimeError, match="takes 1 parameters, the op 2"):
        apply(wrong, torch.randn(3), (1.0, 2.0), backend="native")


def test_an_op_whose_c_code_reads_other_constants_is_an_error_not_a_result():
    serf = actlab.create("serf").op
    short = ElementwiseOp(
        "serf",
        (),
        serf.forward,
        serf.derivatives,
        native="elementwise_serf",
        native_constants=serf.native_constants[:-1],
    )
    with pytest.raises(RuntimeError, match=f"reads {len(serf.native_constants)} constants, the op has"):
        apply(short, torch.randn(3), (), backend="native")


def test_fitted_coefficients_split_otherwise_than_the_c_code_expects_give_nan_everywhere():
    serf = actlab.create("serf").op
    counts = list(serf.native_constants[:4])
    counts[0], counts[1] = counts[0] - 1, counts[1] + 1  # the same total, another split
    split = ElementwiseOp(
        "serf",
        (),
        serf.forward,
        serf.derivatives,
        native="elementwise_serf",
        native_constants=(*counts, *serf.native_constants[4:]),
    )
    x = torch.linspace(-5, 5, 11).requires_grad_(True)
    y = apply(split, x, (), backend="native")
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert y.isnan().all() and grad.isnan().all()
    assert apply(serf, x, (), backend="native").isfinite().all()


def test_double_backward_through_the_native_path_is_the_closed_form():
    op, params = op_and_params("zorro", None, torch.float32)
    x = torch.randn(50, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    results = []
    for backend in ("native", "fused"):
        (gx,) = torch.autograd.grad(apply(op, x, params, backend=backend).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sum(), x)
        results.append((gx, ggx))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(results[0][1], results[1][1])


def test_modules_train_through_the_native_kernels_with_per_channel_parameters():
    torch.manual_seed(6)
    m = actlab.create("zorro", num_parameters=4)
    m.backend = "native"
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.randn(16, 4, 5, 5)
    before = [p.detach().clone() for p in m.parameters()]
    for _ in range(3):
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, m.parameters()))
    assert all(p.isfinite().all() for p in m.parameters())
