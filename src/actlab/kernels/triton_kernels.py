"""Hand-written Triton kernels: the ``"triton"`` backend (CUDA; Triton's interpreter on CPU for tests).

Two generic kernels serve every op; the op's math comes in as compile-time
functions from :mod:`.triton_math`. Both work on a 2-D row-major view
``(R, K)`` of the canonical input (:mod:`.layout`):

=========  ==================  =========================
layout     (R, K)              channel of element (r, k)
=========  ==================  =========================
shared     (1, N)              0 (one set of parameters)
rows       (outer·C, inner)    r mod C
cols       (outer, C)          k
=========  ==================  =========================

Forward: each program reads one ``BLOCK_R × BLOCK_K`` tile of ``x`` and writes
``y``. Backward: each program reads ``x`` and ``grad`` and writes ``grad_x``
for ``ROW_STEPS`` such tiles stacked along rows, and sums ``grad · dy/dp`` for
every parameter — per row ("rows", "shared": complete within a tile, stored per
row and column block) or per column ("cols": accumulated over the row steps) —
into a small float32 buffer of partial sums that one ``torch.sum`` reduces to
one value per channel. That two-stage reduction is deterministic (no atomics)
and costs ``P·numel/1024`` floats for "shared"/"rows" with long rows and
``P·numel/(BLOCK_R·ROW_STEPS)`` (≤ ``P·numel/128``) for "cols". Everything is
computed in float32; half inputs are read and written in their own dtype.

Kernels are compiled by Triton on first launch per (op, dtype, layout, block
shape) and cached on disk by Triton.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..elementwise import ElementwiseOp
from .dispatch import KernelUnavailable
from .layout import COLS, ROWS, SHARED, Layout
from .triton_math import lookup

__all__ = ["NAME", "forward", "backward", "tile", "Tiling", "build"]

NAME = "triton"

#: elements per tile; 8 per thread with 4 warps keeps every load vectorised
_TILE = 1024
_NUM_WARPS = 4
#: "cols": at most this many channels per tile, and tiles per backward program
_MAX_COLS = 128
_COLS_ROW_STEPS = 16


@triton.jit
def _load_params(P, channel, C, mask, NUM_PARAMS: tl.constexpr):
    """The parameters of each element's channel, as a tuple of float32 tensors."""
    params = ()
    for i in tl.static_range(NUM_PARAMS):
        params = params + (tl.load(P + i * C + channel, mask=mask, other=1.0),)
    return params


@triton.jit
def _tile(row_block, col_block, R, K, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = row_block * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = col_block * BLOCK_K + tl.arange(0, BLOCK_K)
    mask = (rows[:, None] < R) & (cols[None, :] < K)
    offsets = rows[:, None].to(tl.int64) * K + cols[None, :]
    return rows, cols, mask, offsets


@triton.jit
def _zeros(shape: tl.constexpr, COUNT: tl.constexpr):
    out = ()
    for _ in tl.static_range(COUNT):
        out = out + (tl.zeros(shape, tl.float32),)
    return out


@triton.jit
def _tile_params(P, rows, cols, R, K, C, NUM_PARAMS: tl.constexpr, CHANNEL_ON_ROWS: tl.constexpr):
    if CHANNEL_ON_ROWS:
        return _load_params(P, (rows % C)[:, None], C, (rows < R)[:, None], NUM_PARAMS)
    else:
        return _load_params(P, cols[None, :], C, (cols < K)[None, :], NUM_PARAMS)


@triton.jit
def _forward_kernel(
    X,
    Y,
    P,
    R,
    K,
    C,
    VALUE: tl.constexpr,
    META: tl.constexpr,
    NUM_PARAMS: tl.constexpr,
    CHANNEL_ON_ROWS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    blocks_k = tl.cdiv(K, BLOCK_K)
    rows, cols, mask, offsets = _tile(pid // blocks_k, pid % blocks_k, R, K, BLOCK_R, BLOCK_K)
    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
    params = _tile_params(P, rows, cols, R, K, C, NUM_PARAMS, CHANNEL_ON_ROWS)
    y = VALUE(x, params, META)
    tl.store(Y + offsets, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(
    X,
    G,
    DX,
    P,
    S,
    R,
    K,
    C,
    PARTIALS: tl.constexpr,
    META: tl.constexpr,
    NUM_PARAMS: tl.constexpr,
    CHANNEL_ON_ROWS: tl.constexpr,
    NEED_X: tl.constexpr,
    NEED_PARAMS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_K: tl.constexpr,
    ROW_STEPS: tl.constexpr,
):
    pid = tl.program_id(0)
    blocks_k = tl.cdiv(K, BLOCK_K)
    super_row, col_block = pid // blocks_k, pid % blocks_k
    column_sums = _zeros((BLOCK_K,), NUM_PARAMS)
    for step in range(ROW_STEPS):
        rows, cols, mask, offsets = _tile(super_row * ROW_STEPS + step, col_block, R, K, BLOCK_R, BLOCK_K)
        x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(G + offsets, mask=mask, other=0.0).to(tl.float32)
        params = _tile_params(P, rows, cols, R, K, C, NUM_PARAMS, CHANNEL_ON_ROWS)
        partials = PARTIALS(x, params, META)
        if NEED_X:
            tl.store(DX + offsets, (g * partials[0]).to(DX.dtype.element_ty), mask=mask)
        if NEED_PARAMS:
            updated = ()
            for i in tl.static_range(NUM_PARAMS):
                contribution = tl.where(mask, g * partials[i + 1], 0.0)
                if CHANNEL_ON_ROWS:
                    # S has shape (NUM_PARAMS, R, blocks_k): one sum per row and column block.
                    target = S + (i * R + rows.to(tl.int64)) * blocks_k + col_block
                    tl.store(target, tl.sum(contribution, axis=1), mask=rows < R)
                    updated = updated + (column_sums[i],)
                else:
                    updated = updated + (column_sums[i] + tl.sum(contribution, axis=0),)
            column_sums = updated
    if NEED_PARAMS and not CHANNEL_ON_ROWS:
        # S has shape (NUM_PARAMS, super-row blocks, K): one sum per column and super-row block.
        super_rows = tl.cdiv(R, BLOCK_R * ROW_STEPS)
        cols = col_block * BLOCK_K + tl.arange(0, BLOCK_K)
        for i in tl.static_range(NUM_PARAMS):
            tl.store(S + (i * super_rows + super_row) * K + cols, column_sums[i], mask=cols < K)


@dataclass(frozen=True)
class Tiling:
    """How a canonical tensor is cut into tiles (see the module docstring)."""

    rows: int
    cols: int
    channels: int
    channel_on_rows: bool
    block_r: int
    block_k: int
    #: tiles per backward program, stacked along rows
    row_steps: int

    @property
    def blocks_k(self) -> int:
        return triton.cdiv(self.cols, self.block_k)

    @property
    def super_rows(self) -> int:
        return triton.cdiv(self.rows, self.block_r * self.row_steps)


def tile(kind: str, shape: Sequence[int]) -> Tiling:
    """The tiling of a canonical shape of the given layout kind."""
    if kind == COLS:
        rows, cols = shape
        block_k = min(triton.next_power_of_2(cols), _MAX_COLS)
        return Tiling(rows, cols, cols, False, _TILE // block_k, block_k, _COLS_ROW_STEPS)
    rows, cols, channels = (1, shape[0], 1) if kind == SHARED else (shape[0] * shape[1], shape[2], shape[1])
    block_k = min(triton.next_power_of_2(cols), _TILE)
    return Tiling(rows, cols, channels, True, _TILE // block_k, block_k, 1)


def _stack(params: Sequence[Tensor], channels: int, like: Tensor) -> Tensor:
    if not params:
        return like  # never read: the kernels load NUM_PARAMS = 0 parameters
    return torch.stack([p.reshape(-1).expand(channels) for p in params]).to(torch.float32).contiguous()


def _math(op: ElementwiseOp):
    math = lookup(op)
    if math is None:
        raise ValueError(f"{op.name}: no Triton kernel for this op")
    return math


#: kernel specialisations that have launched once: later errors are not build failures
_built: set[tuple] = set()


def _launch(op: ElementwiseOp, kernel, grid: int, args: tuple, constants: dict) -> None:
    key = (op, kernel, args[0].dtype, *(v for k, v in sorted(constants.items()) if k not in ("VALUE", "PARTIALS")))
    if key in _built:
        kernel[(grid,)](*args, **constants, num_warps=_NUM_WARPS)
        return
    try:  # the first launch compiles
        kernel[(grid,)](*args, **constants, num_warps=_NUM_WARPS)
    except Exception as err:
        raise KernelUnavailable(f"Triton kernel for {op.name} failed to build or launch") from err
    _built.add(key)


def forward(op: ElementwiseOp, layout: Layout, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The op's value on a canonical input, through :func:`_forward_kernel`."""
    value, _, meta = _math(op)
    t = tile(layout.kind, layout.shape)
    y = torch.empty_like(x)
    grid = triton.cdiv(t.rows, t.block_r) * t.blocks_k
    constants = dict(
        VALUE=value,
        META=meta,
        NUM_PARAMS=len(params),
        CHANNEL_ON_ROWS=t.channel_on_rows,
        BLOCK_R=t.block_r,
        BLOCK_K=t.block_k,
    )
    _launch(op, _forward_kernel, grid, (x, y, _stack(params, t.channels, x), t.rows, t.cols, t.channels), constants)
    return y


def backward(
    op: ElementwiseOp, layout: Layout, x: Tensor, grad: Tensor, params: Sequence[Tensor], needs: Sequence[bool]
) -> tuple[Tensor | None, ...]:
    """(grad_x, *grad_params) on canonical tensors; parameter gradients in canonical shape, float32."""
    _, partials, meta = _math(op)
    t = tile(layout.kind, layout.shape)
    need_x, need_params = bool(needs[0]), any(needs[1:])
    grad_x = torch.empty_like(x) if need_x else None
    n = len(params)
    sums_shape = (n, t.rows, t.blocks_k) if t.channel_on_rows else (n, t.super_rows, t.cols)
    sums = torch.empty(sums_shape if need_params else (0,), device=x.device, dtype=torch.float32)
    constants = dict(
        PARTIALS=partials,
        META=meta,
        NUM_PARAMS=n,
        CHANNEL_ON_ROWS=t.channel_on_rows,
        NEED_X=need_x,
        NEED_PARAMS=need_params,
        BLOCK_R=t.block_r,
        BLOCK_K=t.block_k,
        ROW_STEPS=t.row_steps,
    )
    args = (x, grad, x if grad_x is None else grad_x, _stack(params, t.channels, x), sums, t.rows, t.cols, t.channels)
    _launch(op, _backward_kernel, t.super_rows * t.blocks_k, args, constants)
    if not need_params:
        return (grad_x, *([None] * n))
    if t.channel_on_rows:
        per_channel = sums.sum(2).view(n, t.rows // t.channels, t.channels).sum(1)
    else:
        per_channel = sums.sum(1)
    grads = [per_channel[i].reshape(p.shape) if need else None for i, (p, need) in enumerate(zip(params, needs[1:]))]
    return (grad_x, *grads)


def build(op: ElementwiseOp, arch: int = 90, dtype: torch.dtype = torch.float32, kind: str = ROWS) -> None:
    """Compile the forward and backward kernels of ``op`` for CUDA ``sm_<arch>``, without a GPU.

    Triton's interpreter runs the kernels on CPU but accepts code that the real
    compiler rejects (e.g. non-constexpr globals); this builds the actual GPU
    binaries, so that such errors are found on machines without a GPU too.
    """
    from triton.backends.compiler import GPUTarget

    value, partials, meta = _math(op)
    shape = (7, 4, 33) if kind == ROWS else (7, 33) if kind == COLS else (33,)
    t = tile(kind, shape)
    pointer = "*" + {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    n = len(op.param_names)
    common = dict(META=meta, NUM_PARAMS=n, CHANNEL_ON_ROWS=t.channel_on_rows, BLOCK_R=t.block_r, BLOCK_K=t.block_k)
    sizes = {"R": "i32", "K": "i32", "C": "i32"}
    kernels = (
        (_forward_kernel, {"X": pointer, "Y": pointer, "P": "*fp32"}, {"VALUE": value}),
        (
            _backward_kernel,
            {"X": pointer, "G": pointer, "DX": pointer, "P": "*fp32", "S": "*fp32"},
            {"PARTIALS": partials, "NEED_X": True, "NEED_PARAMS": n > 0, "ROW_STEPS": t.row_steps},
        ),
    )
    for kernel, pointers, specific in kernels:
        constants = {**specific, **common}
        signature = {**pointers, **sizes, **{k: "constexpr" for k in constants}}
        source = triton.compiler.ASTSource(kernel, signature, constants)
        triton.compile(source, target=GPUTarget("cuda", arch, 32))
