"""The canonical views that the compiled and Triton kernels work on.

An elementwise activation with per-channel parameters only needs to know, for
each element, which channel it belongs to. Any dense input — contiguous, or a
permutation of contiguous such as ``channels_last`` — can be viewed without a
copy as one of three shapes, once its dimensions are put in memory order:

``"shared"``  ``(N,)``
    every parameter is a scalar;
``"rows"``    ``(outer, C, inner)`` with ``inner > 1``
    the channel axis has contiguous runs after it (``NCHW``): each run of
    ``inner`` elements is one channel;
``"cols"``    ``(outer, C)``
    the channel axis is the fastest-varying one (``(N, C)``, ``(N, L, C)``,
    ``channels_last``): channels alternate element by element.

Kernels are therefore compiled for at most three shapes per op and dtype, never
per input rank or memory format, and the output is given the input's strides.
Inputs that are not dense (slices with gaps, expanded tensors) are copied to
contiguous memory first; nothing else is ever copied.

Parameters arrive from :func:`actlab.elementwise.apply` already shaped for
broadcasting against the input (``()`` or ``[1, .., C, .., 1]``). In the
canonical view they become ``()``, ``(C, 1)`` ("rows") or ``(C,)`` ("cols");
scalar parameters mixed with per-channel ones are expanded to ``C`` values and
their gradients summed back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Layout", "plan"]

SHARED, ROWS, COLS = "shared", "rows", "cols"


def _memory_order(x: Tensor) -> tuple[int, ...] | None:
    """A permutation of x's dimensions that makes it contiguous, or None if there is none."""
    if x.is_contiguous():
        return tuple(range(x.dim()))
    # Size-1 dimensions may carry any stride; is_contiguous() ignores them, so
    # their place in the order does not matter.
    order = tuple(sorted(range(x.dim()), key=lambda d: (-x.stride(d), d)))
    return order if x.permute(order).is_contiguous() else None


def _channel_dim(params: Sequence[Tensor]) -> int | None:
    for p in params:
        if p.dim() > 0:
            return max(range(p.dim()), key=lambda d: p.shape[d])
    return None


@dataclass(frozen=True)
class Layout:
    """How one input is viewed by the kernels, and how results are mapped back."""

    kind: str
    #: the input's dimensions in memory order (identity for contiguous inputs)
    order: tuple[int, ...]
    #: the input's shape in memory order
    ordered_shape: tuple[int, ...]
    #: the canonical shape: (N,), (outer, C, inner) or (outer, C)
    shape: tuple[int, ...]
    #: False when the input is not dense and is copied before viewing
    dense: bool

    @property
    def channels(self) -> int:
        return 1 if self.kind == SHARED else self.shape[1]

    def view(self, t: Tensor) -> Tensor:
        """``t`` (the input, or a gradient of its shape) in the canonical shape, contiguous."""
        t = t.permute(self.order)
        # A copy only for non-dense inputs, or for a gradient whose strides differ from the input's.
        return t.reshape(self.shape) if t.is_contiguous() else t.contiguous().view(self.shape)

    def restore(self, y: Tensor) -> Tensor:
        """The inverse of :meth:`view`: a canonical result with the input's shape and strides."""
        inverse = [0] * len(self.order)
        for i, d in enumerate(self.order):
            inverse[d] = i
        return y.view(self.ordered_shape).permute(inverse)

    def params(self, params: Sequence[Tensor], dtype: torch.dtype) -> list[Tensor]:
        """Parameters in the canonical shape: () for "shared", (C, 1) for "rows", (C,) for "cols"."""
        if self.kind == SHARED:
            return [p.reshape(()).to(dtype) for p in params]
        shape = (self.channels, 1) if self.kind == ROWS else (self.channels,)
        return [p.reshape(-1).expand(self.channels).to(dtype).contiguous().view(shape) for p in params]

    def param_grad(self, grad: Tensor, param: Tensor) -> Tensor:
        """A canonical parameter gradient in the parameter's own shape and dtype."""
        if param.numel() == 1 and grad.numel() != 1:
            grad = grad.sum()
        return grad.reshape(param.shape).to(param.dtype)


def plan(x: Tensor, params: Sequence[Tensor]) -> Layout:
    """The canonical layout of ``x`` for parameters shaped as :func:`actlab.elementwise.apply` shapes them."""
    order = _memory_order(x)
    dense = order is not None
    if order is None:
        order = tuple(range(x.dim()))
    ordered_shape = tuple(x.shape[d] for d in order)
    channel_dim = _channel_dim(params)
    if channel_dim is None:
        return Layout(SHARED, order, ordered_shape, (x.numel(),), dense)
    k = order.index(channel_dim)
    outer, channels, inner = math.prod(ordered_shape[:k]), ordered_shape[k], math.prod(ordered_shape[k + 1 :])
    if inner == 1:
        return Layout(COLS, order, ordered_shape, (outer, channels), dense)
    return Layout(ROWS, order, ordered_shape, (outer, channels, inner), dense)
