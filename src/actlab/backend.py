"""Which implementation computes an activation: the global and per-module switch.

``"reference"``
    The pure-PyTorch formula, differentiated by autograd. The truth every other
    path is tested against; also the simplest graph for export.
``"fused"``
    A custom ``torch.autograd.Function`` that saves only the input and the
    parameters and recomputes what backward needs from closed-form derivatives,
    in eager PyTorch ops.
``"compiled"``
    The same Function with its forward and backward compiled by inductor
    (``torch.compile``): one loop over memory each, C++/OpenMP on CPU, Triton on
    CUDA. Compiled lazily on first use, per op, dtype and layout.
``"native"``
    actlab's own C kernels (CPU, float32; elementwise activations and DiTAC's
    LUT), built with the system's C compiler at first use: every
    transcendental function inlined, so that the whole loop is vectorised.
``"triton"``
    Hand-written Triton kernels (CUDA tensors only; float32, float16, bfloat16).
``"auto"`` (default)
    The fastest correct path for the tensor at hand, chosen at call time from its
    device, dtype and size (never at import): see :func:`actlab.kernels.dispatch.choose`.

Every path but ``"reference"`` keeps only the input (and the parameters) for
backward. Inside ``torch.compile`` every fast path is the fused Function, which
the compiler fuses with its neighbours; under ``torch.export`` ``"auto"`` is the
reference (plain aten ops).

The global backend is set with :func:`set_backend` (also usable as a context
manager); a module's ``backend`` attribute, when not ``None``, overrides it.
"""

from __future__ import annotations

import contextlib

__all__ = ["BACKENDS", "set_backend", "get_backend", "check_backend"]

BACKENDS = ("auto", "reference", "fused", "compiled", "native", "triton")

_backend = "auto"


def check_backend(name: str | None) -> str | None:
    """Validate a backend name (``None`` means: inherit the global choice)."""
    if name is None:
        return None
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def get_backend() -> str:
    """The backend currently selected for all activations without their own choice."""
    return _backend


class _Restorer(contextlib.AbstractContextManager):
    def __init__(self, previous: str):
        self.previous = previous

    def __exit__(self, *exc) -> None:
        global _backend
        _backend = self.previous


def set_backend(name: str) -> contextlib.AbstractContextManager:
    """Select the backend for all actlab activations.

    Takes effect immediately; used as a context manager, the previous choice is
    restored on exit::

        actlab.set_backend("reference")          # from now on
        with actlab.set_backend("fused"):        # only inside the block
            ...
    """
    global _backend
    check_backend(name)
    restorer = _Restorer(_backend)
    _backend = name
    return restorer
