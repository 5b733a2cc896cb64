"""The ``"native"`` backend: actlab's own C kernels for elementwise activations on the CPU, float32.

Inductor's C++ loops call ATen's vectorised transcendental functions out of line (Sleef's exp,
with the loop's live vector registers spilled around each call), which is most of why a
compiled activation took 1.5-3x native SiLU's time at 2^22 elements (``docs/performance.md``).
These kernels inline their exponential and everything else (``kernels/fastmath.h``), so gcc
vectorises the whole loop body. An op opts in with ``ElementwiseOp(native="elementwise_<family>")``:
the family's C file (``kernels/elementwise_<family>.c``) restates the op's fused torch forms in C
and expands the loops of ``kernels/elementwise.h`` for it; the tests hold every op's kernels
against the reference, as they do the compiled and Triton kernels.

Built by :mod:`actlab.kernels.native` at first use (one compile per family and machine, about a
second, nothing per shape), and called on the canonical views of :mod:`.layout`: the forward
writes y, the backward grad_x and, per part, the parameter gradients summed in double precision.
An engine of :mod:`.function`'s kernel Function, like :mod:`.compiled` and :mod:`.triton_kernels`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import torch
from torch import Tensor

from ..elementwise import ElementwiseOp
from . import native
from .layout import COLS, SHARED, Layout

__all__ = ["NAME", "forward", "backward", "supports"]

NAME = "native"

#: Elements per part below which a call is not split between threads: an OpenMP team's start
#: costs more than the work it would share.
GRAIN = 1 << 15

_constants: dict[ElementwiseOp, Tensor] = {}
_EMPTY = torch.zeros(1, dtype=torch.float32)  # what kernels without parameters or derived values get


def supports(op: ElementwiseOp, x: Tensor) -> bool:
    """Whether these kernels take ``op`` on ``x`` (a float32 CPU tensor, an op with C kernels)."""
    return op.native is not None and x.device.type == "cpu" and x.dtype == torch.float32


def _typed(op: ElementwiseOp) -> tuple[ctypes.CDLL, int]:
    """The op's library with the argument types of its entry points, and how many derived values per
    channel its kernels keep (raises KernelUnavailable). Parameters and constants must be as many
    as the C code reads: anything else is an error of the op's definition, not a result."""
    lib = native.library(op.native)
    name = op.name
    counts = getattr(lib, f"_actlab_typed_{name}", None)
    if counts is None:
        ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
        signatures = {
            f"{name}_derive_all": ([ptr] * 3 + [i64], None),
            f"{name}_forward_parts": ([ptr, i64] + [ptr] * 5 + [i64, i64, i32], None),
            f"{name}_backward_parts": ([ptr, i64] + [ptr] * 7 + [i64, i64, i32, i32], None),
            f"{name}_parameter_count": ([], i32),
            f"{name}_derived_count": ([], i32),
            f"{name}_constant_count": ([], i32),
        }
        for function_name, (argtypes, restype) in signatures.items():
            function = getattr(lib, function_name)
            function.argtypes, function.restype = argtypes, restype
        counts = tuple(getattr(lib, f"{name}_{what}_count")() for what in ("parameter", "derived", "constant"))
        setattr(lib, f"_actlab_typed_{name}", counts)
    parameters, derived, constants = counts
    if parameters != len(op.param_names):
        raise RuntimeError(f"{op.native}.c: {name} takes {parameters} parameters, the op {len(op.param_names)}")
    if constants != len(op.native_constants):
        raise RuntimeError(f"{op.native}.c: {name} reads {constants} constants, the op has {len(op.native_constants)}")
    return lib, derived


def _op_constants(op: ElementwiseOp) -> Tensor:
    table = _constants.get(op)
    if table is None:
        table = _constants.setdefault(op, torch.tensor(op.native_constants or (0.0,), dtype=torch.float32))
    return table


def _runs(layout: Layout, x: Tensor) -> tuple[int, int, bool]:
    """(runs, elements per run, whether channels alternate within a run) of a canonical input."""
    if layout.kind == SHARED:
        return 1, x.numel(), False
    if layout.kind == COLS:
        return layout.shape[0], layout.shape[1], True
    return layout.shape[0] * layout.shape[1], layout.shape[2], False


def _prepare(op: ElementwiseOp, layout: Layout, x: Tensor, params: Sequence[Tensor]):
    """(library, parts, run arguments, parameter table, derived table, constants) for one call."""
    lib, derived_count = _typed(op)
    channels = layout.channels
    # The parameters arrive in float32, in canonical shape (layout.params): one (P, channels) table.
    if len(params) == 1:
        table = params[0].reshape(channels)
    else:
        table = torch.stack([p.reshape(channels) for p in params]) if params else _EMPTY
    constants = _op_constants(op)
    derived = _EMPTY
    if derived_count:
        derived = torch.empty(derived_count * channels, dtype=torch.float32)
        getattr(lib, f"{op.name}_derive_all")(table.data_ptr(), derived.data_ptr(), constants.data_ptr(), channels)
    runs, inner, cols = _runs(layout, x)
    parts = native.element_parts(runs, inner, grain=GRAIN)
    return lib, parts, (channels, inner, int(cols)), table, derived, constants


def forward(op: ElementwiseOp, layout: Layout, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The op's value on a canonical float32 input (see :mod:`.layout`)."""
    lib, parts, run_args, table, derived, constants = _prepare(op, layout, x, params)
    y = torch.empty_like(x)
    pointers = [t.data_ptr() for t in (x, y, table, derived, constants)]
    native.run_parts(lib, f"{op.name}_forward_parts", parts, [*pointers, *run_args])
    return y


def backward(
    op: ElementwiseOp, layout: Layout, x: Tensor, grad: Tensor, params: Sequence[Tensor], needs: Sequence[bool]
) -> tuple[Tensor | None, ...]:
    """(grad_x, *grad_params) on canonical tensors; parameter gradients in canonical shape."""
    lib, parts, run_args, table, derived, constants = _prepare(op, layout, x, params)
    grad = grad.to(torch.float32).contiguous()
    grad_x = torch.empty_like(x)  # written even when not needed (rare: an input that needs no gradient)
    need_params = any(needs[1:])
    channels = layout.channels
    # One row of sums per part, added up in double precision afterwards.
    sums = torch.zeros((len(parts), max(len(params), 1) * channels), dtype=torch.float64)
    pointers = [t.data_ptr() for t in (x, grad, grad_x, table, derived, constants)]
    per_part = native.PerPart(sums.data_ptr(), sums[0].nbytes)
    native.run_parts(lib, f"{op.name}_backward_parts", parts, [*pointers, per_part, *run_args, int(need_params)])
    totals = sums.sum(0).view(-1, channels) if need_params else None
    grad_params = [
        totals[j].to(torch.float32).reshape(p.shape) if need and totals is not None else None
        for j, (p, need) in enumerate(zip(params, needs[1:]))
    ]
    return (grad_x if needs[0] else None, *grad_params)
