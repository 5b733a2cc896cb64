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
times the needed-gradient patterns seen (usually one).

One numerical repair: inductor's C++ code computes float32 ``erf`` with ATen's
vectorised Abramowitz–Stegun formula, whose *relative* error grows without
bound near 0 (1e-3 at 1e-4, 100 % at 2e-7; float64 uses Sleef and is exact).
Serf and EELU evaluate erf at tiny arguments in their tails, so before handing a
CPU graph to inductor every float32 erf is routed through its Taylor series
below 0.25 (:func:`_erf_float32`).
"""

from __future__ import annotations

import math
import threading
import types
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

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


# erf(t) = 2/√π · (t - t³/3 + t⁵/10 - t⁷/42 + t⁹/216 - ...): below |t| = 0.25 the
# first omitted term is 7e-10 relative, far below float32's resolution.
_ERF_SERIES = tuple(2 / math.sqrt(math.pi) * c for c in (1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216))
_ERF_SERIES_LIMIT = 0.25


def _erf_float32(t: Tensor) -> Tensor:
    """float32 erf with full relative precision near 0 (see the module docstring)."""
    t2 = t * t
    c1, c3, c5, c7, c9 = _ERF_SERIES
    series = t * (c1 + t2 * (c3 + t2 * (c5 + t2 * (c7 + t2 * c9))))
    return torch.where(t.abs() < _ERF_SERIES_LIMIT, series, torch.erf(t))


def _is_float32_erf(node: torch.fx.Node) -> bool:
    is_erf = (node.op == "call_function" and node.target in (torch.erf, torch.special.erf)) or (
        node.op == "call_method" and node.target == "erf"
    )
    value = node.meta.get("example_value")
    return is_erf and isinstance(value, Tensor) and value.dtype == torch.float32


def _inductor(gm: torch.fx.GraphModule, example_inputs):
    """Inductor, with float32 erf made accurate near 0 in CPU graphs."""
    from torch._inductor.compile_fx import compile_fx

    on_cpu = not any(isinstance(t, Tensor) and t.device.type != "cpu" for t in example_inputs)
    erfs = [n for n in gm.graph.nodes if on_cpu and _is_float32_erf(n)]
    for node in erfs:
        with gm.graph.inserting_after(node):
            accurate = gm.graph.call_function(_erf_float32, (node.args[0],))
        accurate.meta = dict(node.meta)
        node.replace_all_uses_with(accurate)
        gm.graph.erase_node(node)
    if erfs:
        gm.recompile()
    return compile_fx(gm, example_inputs)


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


def run(name: str, key: tuple, make: Callable[[], Callable], args: Sequence[Tensor]):
    """Run the kernel ``make()`` on ``args``, compiled by inductor once per ``(name, key)``.

    The generic entry point: the elementwise ops' kernels below, and activations
    with kernels of their own (DiTAC's LUT), go through it. ``key`` must tell
    apart everything that changes the traced graph (dtype, layout, gradients
    needed); sizes need not, the graphs are dynamic. A failed build raises
    :class:`~.dispatch.KernelUnavailable`.
    """
    full_key = (name, *key)
    fn = _cache.get(full_key)
    if fn is None:
        with _lock:
            fn = _cache.get(full_key)
            if fn is None:
                fn = torch.compile(_named(make(), f"actlab_{name}"), backend=_inductor, dynamic=True, fullgraph=True)
                _cache[full_key] = fn
    if full_key in _built:
        return fn(*args)
    try:  # the first call compiles
        # Python numbers the kernels close over (interval ends, table sizes, module constants) become
        # constants of the C++/Triton code: with dynamic=True Dynamo would otherwise pass
        # each as a float64 input that every loop iteration loads and converts. Only this
        # call traces; later calls only check the guards on those values.
        with torch._dynamo.config.patch(specialize_float=True, specialize_int=True):
            out = fn(*args)
    except Exception as err:
        raise KernelUnavailable(f"torch.compile of {name} failed") from err
    _built.add(full_key)
    return out


def forward(op: ElementwiseOp, layout: Layout, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The op's value on a canonical input (see :mod:`.layout`), with canonical parameters."""
    return run(f"{op.name}_forward", (op, x.dtype, layout.kind), lambda: _make_forward(op), (x, *params))


def backward(
    op: ElementwiseOp, layout: Layout, x: Tensor, grad: Tensor, params: Sequence[Tensor], needs: Sequence[bool]
) -> tuple[Tensor | None, ...]:
    """(grad_x, *grad_params) on canonical tensors; parameter gradients in canonical shape."""
    needs = tuple(bool(n) for n in needs)
    key = (op, x.dtype, layout.kind, needs)
    return run(f"{op.name}_backward", key, lambda: _make_backward(op, needs), (x, grad, *params))


def compiled_graph_count() -> int:
    """How many kernels (name, dtype, layout, gradients, ...) this process has set up."""
    return len(_cache)
