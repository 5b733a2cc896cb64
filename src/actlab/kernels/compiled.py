"""Inductor kernels of the fused math: the ``"compiled"`` backend.

The kernels are ``torch.compile`` of the very functions the eager fused path
runs — :func:`actlab.elementwise.forward_value` (the op's ``fused_value`` with the
dtype handling) and :func:`actlab.elementwise.backward_grads` (``grad ·
derivatives`` with the ``sum_to_size`` parameter reductions) — so there is one
source of truth for the math. Inductor turns each into a single loop: C++/OpenMP
vectorised with at::vec on CPU, Triton on CUDA. The backward computes the input
gradient and every parameter-gradient reduction in the same pass over memory.

Compilation is lazy (first use) and keyed by (op, direction, dtype, layout kind,
which gradients are needed). Every key gets a code object of its own, so that
Dynamo's per-code-object cache limit (``torch._dynamo.config.recompile_limit``,
8 by default) is never shared between ops or dtypes and no global setting has to
be changed; ``dynamic=True`` makes one graph serve every size. Inductor's
on-disk cache (``TORCHINDUCTOR_CACHE_DIR``) makes later processes compile in a
fraction of the cold time.

Inputs reach these kernels already in a canonical layout (:mod:`.layout`), so
the number of graphs per op and dtype is at most three (shared, rows, cols)
times the needed-gradient patterns seen (usually one), times the loop widths
below (usually one).

Wider CPU loops. Inductor's C++ loops process one SIMD vector per iteration
(16 float32 with AVX-512). An activation's loop body is a chain of dependent
transcendental calls (exp, then log1p, then exp ...), each tens of cycles of
latency, and one iteration's chain is longer than the core's out-of-order
window can overlap with the next. Asking inductor for ``n`` vectors per
iteration (``at::vec::VectorizedN<float, n>``, the type it already uses for
half-precision inputs) puts ``n`` independent chains side by side, op by op.
Inductor has no setting for this: it derives the width from the vector ISA's
elements-per-vector table, so while actlab compiles a float32 CPU graph that
table is multiplied by ``n`` *on the compiling thread only*
(:func:`_wider_cpu_loops`); other threads and every other compilation see
inductor's own numbers. A no-op post-grad pass whose ``uuid`` names ``n`` puts
the width in inductor's cache key, so a cached narrower kernel is never served
for a wider one. The width is the op's :attr:`ElementwiseOp.cpu_vectors`
(default 4), reduced for inputs whose vectorised dimension is short
(:func:`loop_vectors`), so a layout can have up to three graphs, one per
width. Measured by ``benchmarks/cpu_loop_width.py``; the figures are in
``docs/performance.md``. DiTAC's gathers and SLAF's staged reductions got
slower with wider loops, so they keep inductor's width.

Fused multiply-adds. Inductor builds its C++ kernels with
``-ffp-contract=off``, and its vector types spell ``a * b + c`` as a multiply
and an add, so the polynomials the kernels are made of (the series for log1p
and erf, Abramowitz–Stegun's erf, PAU's rationals, Serf's and EELU's fitted
polynomials) took two instructions and two roundings per term. CPU
graphs built here are compiled with ``-ffp-contract=fast`` instead (inductor's
``cpp.enable_floating_point_contract_flag``; the setting is part of inductor's
cache key like any config): GCC then emits one FMA, rounded once, so values
are as accurate or more, and kernels with long polynomials get markedly faster
(PAU's forward about 25 %, EELU's backward 27 %; every op at least as fast,
measured kernel by kernel in one process, ``docs/performance.md``).

One numerical repair: inductor's C++ code computes float32 ``erf`` with ATen's
vectorised Abramowitz–Stegun formula, whose *relative* error grows without
bound near 0 (1e-3 at 1e-4, 100 % at 2e-7; float64 uses Sleef and is exact).
Serf and EELU evaluate erf at tiny arguments in their tails, so before handing a
CPU graph to inductor every float32 erf is routed through its Taylor series
below 0.25 (:func:`_erf_float32`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from .._math import ERF_SERIES_LIMIT, erf_series
from ..elementwise import ElementwiseOp, backward_grads, forward_value
from .dispatch import KernelUnavailable
from .layout import Layout

__all__ = ["NAME", "run", "forward", "backward", "compiled_graph_count"]

NAME = "compiled"

_cache: dict[tuple, Callable] = {}
#: keys whose kernel has run once: later errors are the caller's, not the compiler's
_built: set[tuple] = set()
_lock = threading.Lock()


def _named(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with a code object of its own (Dynamo keeps its cache per code object)."""
    renames = {"co_name": name}
    if hasattr(fn.__code__, "co_qualname"):  # Python >= 3.11
        renames["co_qualname"] = name
    code = fn.__code__.replace(**renames)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _erf_float32(t: Tensor) -> Tensor:
    """float32 erf with full relative precision near 0 (see the module docstring)."""
    return torch.where(t.abs() < ERF_SERIES_LIMIT, erf_series(t), torch.erf(t))


def _is_float32_erf(node: torch.fx.Node) -> bool:
    is_erf = (node.op == "call_function" and node.target in (torch.erf, torch.special.erf)) or (
        node.op == "call_method" and node.target == "erf"
    )
    value = node.meta.get("example_value")
    return is_erf and isinstance(value, Tensor) and value.dtype == torch.float32


class _ThreadScaledCounts(dict):
    """A vector ISA's elements-per-vector table, scaled by the compiling thread's loop width."""

    def __getitem__(self, dtype):
        return super().__getitem__(dtype) * getattr(_compiling, "vectors", 1)


_compiling = threading.local()


@contextlib.contextmanager
def _wider_cpu_loops(vectors: int) -> Iterator[bool]:
    """Make inductor's C++ loops on this thread take ``vectors`` SIMD vectors per iteration.

    Yields whether it could: it cannot where inductor picked no vector ISA or no
    longer keeps the table this relies on (then the loops keep inductor's width).
    """
    from torch._inductor import cpu_vec_isa

    isa = cpu_vec_isa.pick_vec_isa()
    counts = getattr(isa, "_dtype_nelements", None)
    if vectors == 1 or not isa or not isinstance(counts, dict):
        yield False
        return
    if not isinstance(counts, _ThreadScaledCounts):
        isa._dtype_nelements = _ThreadScaledCounts(counts)
    _compiling.vectors = vectors
    try:
        yield True
    finally:
        _compiling.vectors = 1


def _width_cache_key(vectors: int):
    """A post-grad pass that does nothing but put the loop width in inductor's cache key."""
    from torch._inductor.custom_graph_pass import CustomGraphPass

    class LoopWidth(CustomGraphPass):
        def __call__(self, graph: torch.fx.Graph) -> None:
            pass

        def uuid(self):
            return f"actlab-cpu-loop-vectors-{vectors}"

    return LoopWidth()


@functools.cache
def _float32_lanes() -> int:
    """float32 elements per SIMD vector of inductor's CPU loops (0: no vector ISA, scalar loops)."""
    from torch._inductor import cpu_vec_isa

    isa = cpu_vec_isa.pick_vec_isa()
    return isa.bit_width() // 32 if isa else 0


def loop_vectors(requested: int, x: Tensor) -> int:
    """SIMD vectors per loop iteration for an elementwise kernel on the canonical input ``x``.

    Inductor vectorises the last dimension of the canonical view (every element
    for ``"shared"``, the run of one channel for ``"rows"``, the channels for
    ``"cols"``) and finishes each run in a tail loop as wide as the main one. A
    run shorter than the wide vector is then mostly empty lanes: measured at
    2^22 float32 elements, AGLU per channel with 8 channels as the fastest
    dimension took 2.1x longer at 4 vectors than at 1, and 4x4 feature maps
    2.4x. So the width is halved from ``requested`` until the run is a multiple
    of the wide vector or at least four of them (then the tail costs at most a
    quarter); float64, half and non-CPU inputs always get 1.
    """
    lanes = _float32_lanes() if x.device.type == "cpu" and x.dtype == torch.float32 else 0
    if not lanes:
        return 1
    extent, vectors = x.shape[-1], requested
    while vectors > 1 and extent % (lanes * vectors) and extent < 4 * lanes * vectors:
        vectors //= 2
    return vectors


def _contraction_patch() -> dict[str, str]:
    """Inductor config that lets the C++ compiler fuse a multiply and an add into one FMA (see the module docstring).

    Empty where this torch's inductor has no such setting (the kernels are then
    built as inductor would, only slower).
    """
    from torch._inductor import config

    if not hasattr(config.cpp, "enable_floating_point_contract_flag"):
        return {}
    return {"cpp.enable_floating_point_contract_flag": "fast"}


def _inductor(gm: torch.fx.GraphModule, example_inputs, cpu_vectors: int = 1):
    """Inductor, with float32 erf made accurate near 0, fused multiply-adds and ``cpu_vectors`` per loop iteration in CPU graphs.

    The wider loops apply to graphs whose floating-point inputs are all float32
    (the case measured; float64 and half inputs keep inductor's width).
    """
    from torch._inductor.compile_fx import compile_fx

    tensors = [t for t in example_inputs if isinstance(t, Tensor)]
    on_cpu = all(t.device.type == "cpu" for t in tensors)
    erfs = [n for n in gm.graph.nodes if on_cpu and _is_float32_erf(n)]
    for node in erfs:
        with gm.graph.inserting_after(node):
            accurate = gm.graph.call_function(_erf_float32, (node.args[0],))
        accurate.meta = dict(node.meta)
        node.replace_all_uses_with(accurate)
        gm.graph.erase_node(node)
    if erfs:
        gm.recompile()
    float32_only = all(t.dtype == torch.float32 for t in tensors if t.is_floating_point())
    vectors = cpu_vectors if on_cpu and float32_only else 1
    with _wider_cpu_loops(vectors) as wider:
        patches = {"post_grad_custom_post_pass": _width_cache_key(vectors)} if wider else {}
        if on_cpu:
            patches.update(_contraction_patch())
        return compile_fx(gm, example_inputs, config_patches=patches or None)


def _make_forward(op: ElementwiseOp) -> Callable:
    value_fn = op.fused_value

    def kernel(x: Tensor, *params: Tensor) -> Tensor:
        return forward_value(value_fn, x, params)

    return kernel


def _make_backward(op: ElementwiseOp, needs: tuple[bool, ...]) -> Callable:
    derivatives_fn = op.derivatives

    def kernel(x: Tensor, grad: Tensor, *params: Tensor):
        return backward_grads(derivatives_fn, x, params, grad, needs)

    return kernel


@contextlib.contextmanager
def _specialized_numbers() -> Iterator[None]:
    """Dynamo's ``specialize_float`` and ``specialize_int`` on, for the calls of actlab's kernels only.

    Python numbers the kernels close over (interval ends, table sizes, module
    constants) then become constants of the C++/Triton code: with dynamic=True
    Dynamo would otherwise pass each as a float64 input that every loop
    iteration loads and converts. On for every call, not only the first: a
    guard can fail later and Dynamo then traces again (an input made under
    ``torch.inference_mode`` lacks the autograd dispatch key), and such a
    recompile without it made Serf's forward 2× slower on every call that
    used that graph. Set directly rather than by ``config.patch``, which costs twice
    as much per call (8 against 18 µs).
    """
    config = torch._dynamo.config
    saved = config.specialize_float, config.specialize_int
    config.specialize_float = config.specialize_int = True
    try:
        yield
    finally:
        config.specialize_float, config.specialize_int = saved


def run(name: str, key: tuple, make: Callable[[], Callable], args: Sequence[Tensor], *, cpu_vectors: int = 1):
    """Run the kernel ``make()`` on ``args``, compiled by inductor once per ``(name, key, cpu_vectors)``.

    The generic entry point: the elementwise ops' kernels below, and activations
    with kernels of their own (DiTAC's LUT), go through it. ``key`` must tell
    apart everything that changes the traced graph (dtype, layout, gradients
    needed); sizes need not, the graphs are dynamic. A failed build raises
    :class:`~.dispatch.KernelUnavailable`. ``cpu_vectors``: SIMD vectors per
    iteration of float32 CPU loops (see the module docstring).
    """
    full_key = (name, *key, cpu_vectors)
    fn = _cache.get(full_key)
    if fn is None:
        with _lock:
            fn = _cache.get(full_key)
            if fn is None:
                backend = functools.partial(_inductor, cpu_vectors=cpu_vectors)
                fn = torch.compile(_named(make(), f"actlab_{name}"), backend=backend, dynamic=True, fullgraph=True)
                _cache[full_key] = fn
    with _specialized_numbers():
        if full_key in _built:
            return fn(*args)
        try:  # the first call compiles
            out = fn(*args)
        except Exception as err:
            raise KernelUnavailable(f"torch.compile of {name} failed") from err
    _built.add(full_key)
    return out


def forward(
    op: ElementwiseOp, layout: Layout, x: Tensor, params: Sequence[Tensor], *, vectors: int | None = None
) -> Tensor:
    """The op's value on a canonical input (see :mod:`.layout`), with canonical parameters.

    ``vectors``: SIMD vectors per CPU loop iteration; by default
    :func:`loop_vectors` of the op's ``cpu_vectors`` (benchmarks pass others).
    """
    key = (op, x.dtype, layout.kind)
    vectors = vectors or loop_vectors(op.cpu_vectors, x)
    return run(f"{op.name}_forward", key, lambda: _make_forward(op), (x, *params), cpu_vectors=vectors)


def backward(
    op: ElementwiseOp,
    layout: Layout,
    x: Tensor,
    grad: Tensor,
    params: Sequence[Tensor],
    needs: Sequence[bool],
    *,
    vectors: int | None = None,
) -> tuple[Tensor | None, ...]:
    """(grad_x, *grad_params) on canonical tensors; parameter gradients in canonical shape (``vectors``: as in :func:`forward`)."""
    needs = tuple(bool(n) for n in needs)
    key = (op, x.dtype, layout.kind, needs)
    make = lambda: _make_backward(op, needs)
    vectors = vectors or loop_vectors(op.cpu_vectors, x)
    return run(f"{op.name}_backward", key, make, (x, grad, *params), cpu_vectors=vectors)


def compiled_graph_count() -> int:
    """How many kernels (name, dtype, layout, gradients, ...) this process has set up."""
    return len(_cache)
