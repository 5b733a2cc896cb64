"""The autograd Function around the kernel backends ("compiled", "native", "triton").

Like the eager fused Function it saves only the input and the parameters; the
forward and backward each run one kernel on the canonical view of the input
(:mod:`.layout`). An engine is a module with ``NAME``, ``forward(op, layout, x,
params)`` and ``backward(op, layout, x, grad, params, needs)`` that raises
:class:`~.dispatch.KernelUnavailable` when its kernel cannot be built.

Double backward (``create_graph=True``) runs the closed-form backward in eager,
differentiable ops: the kernels compute gradients, not graphs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..elementwise import ElementwiseOp, backward_grads, compute_dtype, forward_value
from . import dispatch
from .layout import Layout, plan

__all__ = ["kernel_function"]

_functions: dict[ElementwiseOp, type] = {}


def _restore_grads(layout: Layout, grads, x: Tensor, params) -> tuple:
    grad_x, *grad_params = grads
    return (
        None if grad_x is None else layout.restore(grad_x),
        *(None if g is None else layout.param_grad(g, p) for g, p in zip(grad_params, params)),
    )


def _make(op: ElementwiseOp) -> type:
    def forward(engine, strict: bool, x: Tensor, *params: Tensor) -> Tensor:
        x, params = x.detach(), [p.detach() for p in params]
        layout = plan(x, params)

        def kernel():
            args = (op, layout, layout.view(x), layout.params(params, compute_dtype(x.dtype)))
            if not torch.is_autocast_enabled(x.device.type):  # the context costs a few µs per call
                return layout.restore(engine.forward(*args))
            with torch.autocast(x.device.type, enabled=False):
                return layout.restore(engine.forward(*args))

        return dispatch.guarded(engine.NAME, strict, kernel, lambda: forward_value(op.fused_value, x, params))

    def setup_context(ctx, inputs, output) -> None:
        engine, strict, *tensors = inputs
        ctx.engine, ctx.strict = engine, strict
        # Only the input and the (tiny) parameters are kept for backward.
        ctx.save_for_backward(*tensors)

    def backward(ctx, grad: Tensor):
        x, *params = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled():
            # create_graph=True: gradients that can themselves be differentiated.
            return (None, None, *backward_grads(op.derivatives, x, params, grad, needs))
        x, params = x.detach(), [p.detach() for p in params]
        layout = plan(x, params)

        def kernel():
            grads = ctx.engine.backward(
                op, layout, layout.view(x), layout.view(grad), layout.params(params, compute_dtype(x.dtype)), needs
            )
            return _restore_grads(layout, grads, x, params)

        fallback = lambda: backward_grads(op.derivatives, x, params, grad, needs)
        return (None, None, *dispatch.guarded(ctx.engine.NAME, ctx.strict, kernel, fallback))

    name = "".join(part.title() for part in op.name.split("_")) + "KernelFunction"
    body = {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "__doc__": f"{op.name} through the compiled, native or Triton kernels: saves only the input and parameters.",
        "__module__": __name__,
    }
    return type(name, (torch.autograd.Function,), body)


def kernel_function(op: ElementwiseOp) -> type:
    """The kernel-backed autograd Function of ``op`` (one class per op, named after it)."""
    function = _functions.get(op)
    if function is None:
        function = _functions.setdefault(op, _make(op))
    return function
