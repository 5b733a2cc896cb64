"""The machinery shared by every elementwise activation.

An activation family describes its math once, as an :class:`ElementwiseOp`:

``forward(x, *params)``
    the value, written in PyTorch ops so that autograd through it is exact and
    finite (this is the *reference*: the truth every fast path is tested against);
``derivatives(x, *params)``
    the closed-form partial derivatives ``(dy/dx, dy/dp_1, ...)``, elementwise;
``value(x, *params)`` (optional)
    a cheaper formula for the value alone, for the paths that never
    differentiate it (the reference must keep each autograd branch finite, which
    can cost extra transcendentals; the value alone often needs fewer).

``native``, ``native_constants`` (optional)
    the name of the C file (``actlab/kernels/<native>.c``) with the op's native CPU
    kernels (:mod:`actlab.kernels.native_elementwise`), and the constants they read
    (e.g. fitted coefficients), in the order the C code expects them.

``cpu_vectors`` (optional, default 4)
    how many SIMD vectors each iteration of the inductor-compiled float32 CPU
    loops processes (see :mod:`actlab.kernels.compiled`): more independent work
    in flight for the long chains of transcendental functions most ops are;
    an op whose loop is short arithmetic with many parameter-gradient
    accumulators (PAU) asks for fewer. Inputs whose vectorised runs are short
    (few channels last, small feature maps) get fewer
    (:func:`actlab.kernels.compiled.loop_vectors`).

From these two, this module builds the paths that :func:`apply` chooses from:
the reference (autograd through ``forward``) and a fused
``torch.autograd.Function`` that computes :attr:`ElementwiseOp.fused_value`
(``value``, else ``forward``), saves only ``x`` and the parameters and
recomputes the derivatives in backward, reducing the parameter gradients to the
parameters' (shared or per-channel) shape with ``sum_to_size``. The faster
kernels of :mod:`actlab.kernels` are chosen per call by
:mod:`actlab.kernels.dispatch`: inductor's are compiled from the same two
functions; the native C kernels (CPU, float32) and the Triton kernels (CUDA)
restate the math, and the tests hold them against the reference.

Every path computes in float32 at least: half-precision inputs are upcast inside
the op and the result is cast back, which keeps exp/erf/softplus stable under
autocast. Parameters always arrive already constrained (positive where they must
be); modules keep the unconstrained values and map them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .backend import check_backend, get_backend
from .kernels import dispatch

__all__ = ["ElementwiseOp", "apply", "compute_dtype", "param_tensor", "forward_value", "backward_grads", "ParamLike"]

ParamLike = float | int | Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types, the dtype itself for float32/float64."""
    return torch.promote_types(dtype, torch.float32)


#: the values :attr:`ElementwiseOp.cpu_vectors` may take (inductor's ``VectorizedN`` widths)
CPU_VECTOR_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True, eq=False)
class ElementwiseOp:
    """The math of one elementwise activation (see the module docstring)."""

    name: str
    param_names: tuple[str, ...]
    forward: Callable[..., Tensor]
    derivatives: Callable[..., Sequence[Tensor]]
    value: Callable[..., Tensor] | None = None
    native: str | None = None
    native_constants: tuple[float, ...] = ()
    cpu_vectors: int = 4
    function: type = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cpu_vectors not in CPU_VECTOR_COUNTS:
            raise ValueError(f"{self.name}: cpu_vectors must be 1, 2, 4 or 8, got {self.cpu_vectors!r}")
        object.__setattr__(self, "function", _make_fused_function(self))

    @property
    def fused_value(self) -> Callable[..., Tensor]:
        """The value formula of every path except the reference: ``value`` if given, else ``forward``."""
        return self.forward if self.value is None else self.value


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)``, without the dispatcher call when it already has it (most calls: a
    microsecond each, several per call of a small activation)."""
    return t if t.dtype == dtype else t.to(dtype)


def _cast(ts: Sequence[Tensor], dtype: torch.dtype) -> list[Tensor]:
    return [_as(t, dtype) for t in ts]


# These take the op's functions rather than the op: torch.compile traces the
# fused Function's body and can follow plain functions through closures, not
# arbitrary objects. They are the one definition of "value" and "gradients"
# that the fused Function and the compiled kernels (actlab.kernels.compiled) share.
def forward_value(forward: Callable, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """``forward(x, *params)`` computed in :func:`compute_dtype`, returned in ``x.dtype``."""
    cd = compute_dtype(x.dtype)
    return _as(forward(_as(x, cd), *_cast(params, cd)), x.dtype)


def backward_grads(derivatives: Callable, x: Tensor, params: Sequence[Tensor], grad: Tensor, needs: Sequence[bool]):
    """``(grad_x, *grad_params)``: ``grad · derivatives``, parameter gradients reduced to each parameter's shape.

    Entries whose ``needs`` flag is False are None (and not computed).
    """
    cd = compute_dtype(x.dtype)
    g = _as(grad, cd)
    partials = derivatives(_as(x, cd), *_cast(params, cd))
    grad_x = _as(g * partials[0], x.dtype) if needs[0] else None
    grad_params = [
        _as((g * d).sum_to_size(p.shape), p.dtype) if need else None
        for p, d, need in zip(params, partials[1:], needs[1:])
    ]
    return (grad_x, *grad_params)


def _make_fused_function(op: ElementwiseOp) -> type:
    value_fn, derivatives_fn = op.fused_value, op.derivatives

    def forward(x: Tensor, *params: Tensor) -> Tensor:
        return forward_value(value_fn, x, params)

    def setup_context(ctx, inputs, output) -> None:
        # Only the input and the (tiny) parameters are kept for backward; every
        # intermediate is recomputed there.
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad: Tensor):
        x, *params = ctx.saved_tensors
        return backward_grads(derivatives_fn, x, params, grad, ctx.needs_input_grad)

    # Built with type() so that autograd names the graph node after the op
    # (e.g. ``SrsFunctionBackward``), which keeps profiles and errors readable.
    name = "".join(part.title() for part in op.name.split("_")) + "Function"
    body = {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "__doc__": f"Fused forward/backward of {op.name}: saves only the input and parameters.",
        "__module__": __name__,
    }
    return type(name, (torch.autograd.Function,), body)


def channel_axis(x: Tensor, channels: int, channel_dim: int, subject: str) -> int:
    """The non-negative axis of ``x`` that holds ``channels`` channels, or a ValueError that says
    what to change. ``subject`` names what has that many channels ("parameter 'alpha' has 4
    per-channel values")."""
    if x.dim() < 2:
        raise ValueError(
            f"{subject} but the input has {x.dim()} dimension(s) "
            "and so no channel dimension; use num_parameters=1 or give the input a channel dimension"
        )
    dim = channel_dim if channel_dim >= 0 else channel_dim + x.dim()
    if not 0 <= dim < x.dim():
        raise ValueError(f"channel_dim={channel_dim} is out of range for an input with {x.dim()} dimensions")
    if x.shape[dim] != channels:
        raise ValueError(
            f"{subject} but the input has {x.shape[dim]} channels "
            f"along channel_dim={channel_dim} (input shape {tuple(x.shape)}); "
            "set num_parameters to the channel count, or channel_dim to the right axis"
        )
    return dim


def param_tensor(value: ParamLike, name: str, x: Tensor, channel_dim: int) -> Tensor:
    """Shape a parameter for broadcasting against ``x``: scalar, or one value per channel."""
    if not isinstance(value, Tensor):
        return torch.tensor(float(value), dtype=compute_dtype(x.dtype), device=x.device)
    if value.numel() == 1:
        return value.reshape(())
    if value.dim() != 1:
        raise ValueError(
            f"parameter {name!r} must be a scalar or a 1-D tensor of per-channel values, got shape {tuple(value.shape)}"
        )
    dim = channel_axis(x, value.numel(), channel_dim, f"parameter {name!r} has {value.numel()} per-channel values")
    shape = [1] * x.dim()
    shape[dim] = value.numel()
    return value.reshape(shape)


def apply(
    op: ElementwiseOp,
    x: Tensor,
    params: Sequence[ParamLike] = (),
    *,
    channel_dim: int = 1,
    backend: str | None = None,
) -> Tensor:
    """Evaluate ``op`` on ``x`` with the given (already constrained) parameters.

    Args:
        op: the activation's math.
        x: input of any shape, floating point.
        params: one entry per ``op.param_names``: a Python number, a scalar
            tensor, or a 1-D tensor with one value per channel of ``x``.
        channel_dim: the axis of ``x`` that per-channel parameters run along.
        backend: one of :data:`actlab.backend.BACKENDS`; ``None`` uses
            :func:`actlab.get_backend`. ``"auto"`` picks the fastest correct path
            for this call (see :func:`actlab.kernels.dispatch.choose`).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{op.name}: expected a torch.Tensor input, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{op.name}: input must be a floating-point tensor, got dtype {x.dtype}; convert it with x.float()"
        )
    if len(params) != len(op.param_names):
        raise TypeError(f"{op.name} takes {len(op.param_names)} parameter(s) {op.param_names}, got {len(params)}")
    ps = [param_tensor(p, n, x, channel_dim) for p, n in zip(params, op.param_names)]
    requested = check_backend(backend) or get_backend()
    path = dispatch.choose(op, x, requested)
    if path == "reference":
        return forward_value(op.forward, x, ps)
    if path == "fused":
        return dispatch.apply_function(op.function, x, *ps)
    return dispatch.run_kernel(op, path, x, ps, strict=requested != "auto")
