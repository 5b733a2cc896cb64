"""Which path computes one call of an elementwise activation.

The rule, applied on every call (nothing is decided at import):

1. ``"reference"`` is always the reference.
2. Under a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``, ``jacrev``,
   ``hessian``, ...) or forward-mode AD (``torch.autograd.forward_ad``): every
   backend is the reference. Its plain aten ops have batching rules and
   forward derivatives, which the custom Functions lack; the transforms then
   cost the reference's memory and speed.
3. Under ``torch.export`` (``torch.compiler.is_exporting()``, which
   ``torch.onnx.export(dynamo=True)`` also sets): ``"auto"`` is the reference —
   plain aten ops that every exporter and runtime understands; an explicit
   ``"fused"``, ``"compiled"`` or ``"triton"`` is the fused Function.
4. Inside ``torch.compile`` (``torch.compiler.is_compiling()``): every other
   backend is the fused Function. Dynamo inlines it and inductor fuses it with
   its neighbours; compiled kernels are never nested in a compiled graph.
5. Empty inputs take the fused path: there is nothing to compute.
6. ``"fused"``, ``"compiled"``, ``"native"`` and ``"triton"`` are honoured as
   asked (``"triton"`` needs a CUDA tensor of float32/float16/bfloat16 and an op
   with Triton math, ``"native"`` a float32 CPU tensor and an op with C kernels;
   anything else is a ``ValueError`` naming what to change).
7. ``"auto"``:

   * CPU, float32, an op with C kernels (:mod:`.native_elementwise`), at or
     above :data:`NATIVE_THRESHOLD` elements: ``"native"`` (they compile
     nothing per shape: one build per family and machine). Below it, the
     fixed cost of a kernel call (about 60 µs more per training call than the
     eager Function's) outweighs the work for the cheaper ops: ``"fused"``.
   * CUDA: ``"triton"`` when Triton is installed, the dtype is
     float32/float16/bfloat16 and the op has Triton math; otherwise
     ``"compiled"`` at or above :data:`COMPILE_THRESHOLD` elements; otherwise
     ``"fused"``.
   * other CPU inputs: ``"compiled"`` at or above :data:`COMPILE_THRESHOLD` elements (where
     the speed-up repays the one-off compile, measured in
     ``docs/performance.md``), else ``"fused"``.
   * other devices: ``"fused"``.

   SLAF's threshold is a quarter of :data:`COMPILE_THRESHOLD`
   (:func:`actlab.activations.slaf.compile_threshold`): its eager path is many
   kernels per basis element, so compiling repays at smaller sizes.

   A kernel that fails to build (no C++ compiler, an unsupported GPU) is
   reported once with a warning, and that backend is not chosen by ``"auto"``
   again in this process; the failed call is computed by the fused math, so a
   user's forward never fails for it. With an explicit backend the error is
   raised instead.

``ACTLAB_COMPILE_THRESHOLD`` (elements) overrides the threshold, e.g. ``0`` to
compile everything or a huge value never to compile automatically.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..elementwise import ElementwiseOp

__all__ = [
    "choose",
    "run_kernel",
    "guarded",
    "apply_function",
    "functorch_active",
    "transform_active",
    "COMPILE_THRESHOLD",
    "NATIVE_THRESHOLD",
    "KernelUnavailable",
    "TRITON_DTYPES",
]


def _threshold_from_env(default: int) -> int:
    value = os.environ.get("ACTLAB_COMPILE_THRESHOLD")
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ACTLAB_COMPILE_THRESHOLD must be an integer number of elements, got {value!r}") from None


#: Inputs with at least this many elements use the compiled kernels under
#: ``"auto"`` (benchmarks/compile_threshold.py, docs/performance.md): from 2^20
#: elements every activation measured repays a cold compile within about 3,000
#: calls (15-350 at 2^22); at 2^18 the cheaper ones need over 6,000, and below
#: 2^16 the compiled call is not faster at all. The lab's small models stay eager.
COMPILE_THRESHOLD: int = _threshold_from_env(1 << 20)

#: float32 CPU inputs with at least this many elements take the native C kernels under ``"auto"``
#: (see :func:`choose`; measured in docs/performance.md, *Native C kernels*).
NATIVE_THRESHOLD: int = 1 << 14

TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

T = TypeVar("T")


class KernelUnavailable(RuntimeError):
    """A compiled or Triton kernel could not be built; ``__cause__`` holds the reason."""


_disabled: dict[str, str] = {}


def disable(path: str, reason: str) -> None:
    """Stop ``"auto"`` from choosing ``path`` for the rest of the process (warns once)."""
    if path not in _disabled:
        _disabled[path] = reason
        warnings.warn(
            f'actlab: the {path!r} kernels could not be built ({reason}); "auto" uses the fused path instead '
            f"for the rest of this process. Select backend={path!r} explicitly to see the full error.",
            RuntimeWarning,
            stacklevel=4,
        )


def _compiler_usable() -> bool:
    if "compiled" in _disabled:
        return False
    return torch._dynamo.is_dynamo_supported()


_triton_installed: bool | None = None


def _triton_installed_now() -> bool:
    global _triton_installed
    if _triton_installed is None:
        _triton_installed = importlib.util.find_spec("triton") is not None
    return _triton_installed


def _interpreting_triton() -> bool:
    """Triton's CPU interpreter is on: kernels run on CPU tensors (slowly); used to test them."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _has_triton_math(op: ElementwiseOp) -> bool:
    from . import triton_math

    return triton_math.lookup(op) is not None


def _triton_usable(op: ElementwiseOp, x: Tensor) -> bool:
    return "triton" not in _disabled and x.dtype in TRITON_DTYPES and _triton_installed_now() and _has_triton_math(op)


def _native_usable(op: ElementwiseOp, x: Tensor) -> bool:
    from . import native_elementwise

    return "native" not in _disabled and native_elementwise.supports(op, x)


def native_enabled() -> bool:
    """Whether ``"auto"`` may take native C kernels now: not disabled by a failed build, not while
    ``torch.compile`` traces or an exporter runs (a foreign call is opaque to both). For activations
    that apply their own rule for ``"native"`` (see :func:`choose`)."""
    return "native" not in _disabled and not torch.compiler.is_compiling() and not _is_exporting()


def _check_native_request(op: ElementwiseOp | str, x: Tensor, native: bool) -> None:
    name = op if isinstance(op, str) else op.name
    if not (native if isinstance(op, str) else op.native is not None):
        raise ValueError(f"{name}: no native C kernels for this activation; use backend='compiled' (inductor) instead")
    if x.device.type != "cpu":
        raise ValueError(
            f"{name}: backend='native' runs on the CPU, got a tensor on {x.device}; "
            "use backend='auto' (or 'triton'/'compiled') for other devices"
        )
    if x.dtype != torch.float32:
        raise ValueError(
            f"{name}: backend='native' supports float32, got {x.dtype}; use backend='compiled' or 'fused' for this dtype"
        )


def _check_triton_request(op: ElementwiseOp | str, x: Tensor) -> None:
    name = op if isinstance(op, str) else op.name
    if not (x.is_cuda or (x.device.type == "cpu" and _interpreting_triton())):
        raise ValueError(
            f"{name}: backend='triton' needs a CUDA tensor, got one on {x.device}; "
            "use backend='auto' (or 'compiled'/'fused') for other devices"
        )
    if x.dtype not in TRITON_DTYPES:
        raise ValueError(
            f"{name}: backend='triton' supports float32, float16 and bfloat16, got {x.dtype}; "
            "use backend='compiled' or 'fused' for this dtype"
        )
    if not _triton_installed_now():
        raise ValueError(f"{name}: backend='triton' needs Triton: pip install 'actlab[triton]'")
    if isinstance(op, str) or not _has_triton_math(op):
        raise ValueError(f"{name}: no Triton kernel for this op; use backend='compiled' (inductor) instead")


def functorch_active() -> bool:
    """A ``torch.func`` transform (``vmap``, ``grad``, ``jvp``, ...) is active."""
    # A private hook that torch.autograd.Function.apply reads for the same purpose;
    # a torch without it has no transforms in this form.
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return active is not None and active()


def transform_active() -> bool:
    """A ``torch.func`` transform or a forward-mode AD level is active (both need plain aten ops)."""
    return functorch_active() or getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0


try:  # what Function.apply does to its arguments outside transforms
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:  # pragma: no cover - a torch without it: always the public path
    _unwrap_dead_wrappers = None


def apply_function(function: type[torch.autograd.Function], *args):
    """``function.apply(*args)``, without the per-call signature binding where nothing needs it.

    ``Function.apply`` binds the arguments to ``forward``'s signature with
    :mod:`inspect` on every call of a Function that defines ``setup_context``
    (about 12 µs, as much as a small activation's whole forward); the binding only
    serves ``torch.func`` transforms, which never reach actlab's Functions (the
    reference runs under them, :func:`choose`). Outside transforms and tracing this
    makes the call that ``Function.apply`` itself ends in; Dynamo traces
    ``function.apply`` only, and transforms need its checks, so those go the usual way.
    """
    if torch.compiler.is_compiling() or _unwrap_dead_wrappers is None or functorch_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*_unwrap_dead_wrappers(args))


def _is_exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting and is_exporting())


def choose(
    op: ElementwiseOp | str, x: Tensor, backend: str, *, threshold: int | None = None, native: bool = False
) -> str:
    """The path for this call: ``"reference"``, ``"fused"``, ``"compiled"``, ``"native"`` or ``"triton"`` (see the module doc).

    ``op`` is an :class:`~actlab.elementwise.ElementwiseOp`, or the name of an
    activation with compiled kernels of its own and no Triton math (DiTAC's
    LUT, SLAF): the same rule, with ``"triton"`` never chosen, and ``"native"``
    only when asked for and ``native`` says the activation has C kernels (it
    applies its own rule under ``"auto"``). ``threshold`` replaces
    :data:`COMPILE_THRESHOLD` for an activation whose compiled path repays its
    compile at a different size (measured; SLAF's).
    """
    if backend == "reference" or transform_active():
        return "reference"
    if _is_exporting():
        return "reference" if backend == "auto" else "fused"
    if torch.compiler.is_compiling():
        return "fused"
    if backend == "triton":
        _check_triton_request(op, x)
    if backend == "native":
        _check_native_request(op, x, native)
    if x.numel() == 0 or backend == "fused":
        return "fused"
    if backend != "auto":
        return backend
    if not isinstance(op, str):
        if x.is_cuda and _triton_usable(op, x):
            return "triton"
        if x.numel() >= NATIVE_THRESHOLD and _native_usable(op, x):
            return "native"
    limit = COMPILE_THRESHOLD if threshold is None else threshold
    if x.device.type in ("cpu", "cuda") and x.numel() >= limit and _compiler_usable():
        return "compiled"
    return "fused"


def guarded(path: str, strict: bool, kernel: Callable[[], T], fallback: Callable[[], T]) -> T:
    """``kernel()``; if its kernel cannot be built, raise (``strict``: an explicit
    request) or disable ``path`` for ``"auto"`` with one warning and return ``fallback()``."""
    try:
        return kernel()
    except KernelUnavailable as err:
        if strict:
            raise
        disable(path, f"{type(err.__cause__).__name__}: {err.__cause__}"[:300])
        return fallback()


def _engine(path: str):
    if path == "compiled":
        from . import compiled

        return compiled
    if path == "native":
        from . import native_elementwise

        return native_elementwise
    from . import triton_kernels

    return triton_kernels


def run_kernel(op: ElementwiseOp, path: str, x: Tensor, params: Sequence[Tensor], *, strict: bool) -> Tensor:
    """Evaluate ``op`` with the ``"compiled"``, ``"native"`` or ``"triton"`` kernels (autograd-aware).

    ``strict``: raise if the kernel cannot be built (an explicit request),
    rather than warn and compute the call with the fused math ("auto").
    """
    from .function import kernel_function

    return apply_function(kernel_function(op), _engine(path), strict, x, *params)
