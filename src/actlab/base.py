"""Base classes shared by every actlab activation module.

:class:`Activation` is an ``nn.Module`` that evaluates an
:class:`~actlab.elementwise.ElementwiseOp`. :class:`ParametricActivation` adds
parameters modelled on ``nn.PReLU``: ``num_parameters`` (1 = one value shared by
the whole layer, C = one value per channel), ``channel_dim`` (1 for ``(N, C, ...)``
inputs, -1 for ``(N, L, C)``), ``trainable`` (parameters or constant buffers),
``device``/``dtype`` factory arguments, ``reset_parameters()`` and ``extra_repr()``.

Constraints are kept by reparameterisation: a positive parameter ``alpha`` is
stored unconstrained as ``raw_alpha`` and read as ``softplus(raw_alpha) + floor``
through the ``alpha`` property, so no optimizer step can break it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backend import check_backend
from .elementwise import ElementwiseOp, apply
from .registry import ParameterInfo

__all__ = ["Real", "Positive", "Param", "Activation", "ParametricActivation", "inverse_softplus", "check_numbers"]


def inverse_softplus(y: Tensor) -> Tensor:
    """The ``r`` with ``softplus(r) = y`` for ``y > 0``, stable for small and large ``y``."""
    return y + torch.log(-torch.expm1(-y))


class Real:
    """No constraint: the stored tensor is the value."""

    description = "real"
    reparameterised = False

    def to_value(self, raw: Tensor) -> Tensor:
        return raw

    def to_raw(self, value: Tensor) -> Tensor:
        return value

    def check(self, name: str, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


@dataclass(frozen=True)
class Positive:
    """``value = softplus(raw) + floor``: strictly above ``floor`` after any update.

    The floor must be positive for "strictly positive" to survive floating point:
    softplus underflows to exactly 0 for raw < -104 in float32.
    """

    floor: float = 1e-6
    reparameterised: ClassVar[bool] = True

    @property
    def description(self) -> str:
        return f"> {self.floor:g}"

    def to_value(self, raw: Tensor) -> Tensor:
        return F.softplus(raw) + self.floor

    def to_raw(self, value: Tensor) -> Tensor:
        return inverse_softplus(value - self.floor)

    def check(self, name: str, value: float) -> None:
        if not (math.isfinite(value) and value > self.floor):
            raise ValueError(f"{name} must be a finite number > {self.floor:g}, got {value}")


Constraint = Real | Positive
ParamDefault = float | Sequence[float]


@dataclass(frozen=True)
class Param:
    """A parameter declaration: name, default initial value, constraint.

    ``default`` is a number, or a sequence of numbers for a vector-valued
    parameter (e.g. the coefficients of a rational function), stored with shape
    ``(num_parameters, len(default))``.
    """

    name: str
    default: ParamDefault
    constraint: Constraint = Real()
    #: Overrides the constraint's description where several parameters interact.
    description: str | None = None

    @property
    def size(self) -> int | None:
        return None if isinstance(self.default, (int, float)) else len(self.default)

    def raw_name(self) -> str:
        return f"raw_{self.name}" if self.constraint.reparameterised else self.name


def check_numbers(owner: str, params: Sequence[Param], values: Sequence[Any]) -> None:
    """Check the plain-number arguments of a functional form against the constraints.

    Tensors are passed through unchecked: validating them would need a device
    synchronisation on every call.
    """
    for p, v in zip(params, values):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            p.constraint.check(f"{owner}: {p.name}", float(v))


def check_channel_arguments(owner: str, num_parameters: Any, channel_dim: Any, dtype: torch.dtype | None) -> None:
    """The PReLU-style constructor arguments every channel-aware activation takes, checked alike."""
    if isinstance(num_parameters, bool) or not isinstance(num_parameters, int) or num_parameters < 1:
        raise ValueError(
            f"{owner}: num_parameters must be a positive integer (1 = shared, C = per channel), got {num_parameters!r}"
        )
    if isinstance(channel_dim, bool) or not isinstance(channel_dim, int):
        raise ValueError(f"{owner}: channel_dim must be an integer axis, got {channel_dim!r}")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"{owner}: dtype must be a floating-point dtype, got {dtype}")


class Activation(nn.Module):
    """An actlab activation: evaluates ``op`` through the selected backend.

    Attributes:
        backend: ``None`` (follow :func:`actlab.get_backend`) or one of
            ``"reference"``, ``"fused"``, ``"auto"`` for this module only.
    """

    op: ClassVar[ElementwiseOp]
    #: True when the output at each position depends only on the input there (and
    #: the parameters). Activations with batch statistics or per-sample scaling
    #: (SLAF's) set it to False; inspection and property measurement honour it.
    elementwise: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._backend: str | None = None

    @property
    def backend(self) -> str | None:
        return self._backend

    @backend.setter
    def backend(self, name: str | None) -> None:
        self._backend = check_backend(name)

    def forward(self, x: Tensor) -> Tensor:
        return apply(self.op, x, (), backend=self._backend)

    # -- checkpoints ------------------------------------------------------------------------
    # The state_dict records which activation wrote it, so that loading it into a
    # model with another activation at this site fails with a message naming both
    # (APA and AGLU, say, have the same parameter names and shapes and would
    # otherwise load into each other silently). The logic is in actlab.checkpoint,
    # imported on use because it builds on actlab.sites, which imports this module.
    def get_extra_state(self) -> Tensor:
        from .checkpoint import activation_record

        return activation_record(self)

    def set_extra_state(self, state: Any) -> None:
        """The record is checked in :meth:`_load_from_state_dict`, where the site's name is known."""

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        from .checkpoint import check_record

        check_record(self, state_dict, prefix, error_msgs)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class ParametricActivation(Activation):
    """Base for activations with parameters (see the module docstring).

    Subclasses declare ``op`` and ``params`` (a tuple of :class:`Param`, in the
    order ``op`` takes them) and call ``super().__init__(values, ...)`` with the
    initial values (``params=`` overrides the class declaration for one instance). Cross-parameter constraints override :meth:`_to_values`,
    :meth:`_to_raw` and :meth:`_check_values`.
    """

    params: ClassVar[tuple[Param, ...]] = ()
    __constants__ = ["num_parameters", "channel_dim", "trainable"]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for p in cls.__dict__.get("params", ()):
            if p.constraint.reparameterised and not isinstance(cls.__dict__.get(p.name), property):
                setattr(
                    cls,
                    p.name,
                    property(lambda self, _n=p.name: self.values()[_n], doc=f"{p.name} ({p.constraint.description})"),
                )

    def __init__(
        self,
        values: Mapping[str, ParamDefault],
        *,
        params: Sequence[Param] | None = None,
        num_parameters: int = 1,
        channel_dim: int = 1,
        trainable: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if params is not None:
            # Declarations that depend on constructor arguments (e.g. PAU's degrees).
            self.params = tuple(params)
        check_channel_arguments(type(self).__name__, num_parameters, channel_dim, dtype)
        self.num_parameters = num_parameters
        self.channel_dim = channel_dim
        self.trainable = bool(trainable)
        self.init_values = self._checked_init_values(values)
        factory = {"device": device, "dtype": dtype}
        for p in self.params:
            shape = (num_parameters,) if p.size is None else (num_parameters, p.size)
            tensor = torch.empty(shape, **factory)
            if self.trainable:
                self.register_parameter(p.raw_name(), nn.Parameter(tensor))
            else:
                self.register_buffer(p.raw_name(), tensor)
        self.reset_parameters()

    # -- values and constraints ---------------------------------------------------------
    def _checked_init_values(self, values: Mapping[str, ParamDefault]) -> dict[str, ParamDefault]:
        name = type(self).__name__
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise TypeError(f"{name}: unknown parameter(s) {sorted(unknown)}")
        out: dict[str, ParamDefault] = {}
        for p in self.params:
            v = values.get(p.name, p.default)
            if v is None:
                v = p.default
            if p.size is None:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{name}: {p.name} must be a number, got {v!r}")
                v = float(v)
                p.constraint.check(f"{name}: {p.name}", v)
            else:
                v = tuple(float(e) for e in v)
                if len(v) != p.size:
                    raise ValueError(f"{name}: {p.name} needs {p.size} values, got {len(v)}")
                for e in v:
                    p.constraint.check(f"{name}: {p.name}", e)
            out[p.name] = v
        self._check_values(out)
        return out

    def _check_values(self, values: Mapping[str, ParamDefault]) -> None:
        """Hook for constraints that involve several parameters (raise ValueError)."""

    def _to_values(self, raw: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {p.name: p.constraint.to_value(raw[p.name]) for p in self.params}

    def _to_raw(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {p.name: p.constraint.to_raw(values[p.name]) for p in self.params}

    def raw(self) -> dict[str, Tensor]:
        """The stored (unconstrained) tensors, keyed by parameter name."""
        return {p.name: getattr(self, p.raw_name()) for p in self.params}

    def values(self) -> dict[str, Tensor]:
        """The constrained parameter values, keyed by name, shape ``(num_parameters[, size])``."""
        return self._to_values(self.raw())

    def op_params(self) -> tuple[Tensor, ...]:
        """The parameters in the order ``op`` takes them."""
        values = self.values()
        return tuple(values[p.name] for p in self.params)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set every parameter back to its initial value."""
        raw = self.raw()
        like = next(iter(raw.values()))
        values = {
            p.name: torch.tensor(self.init_values[p.name], dtype=torch.float64).expand_as(raw[p.name])
            for p in self.params
        }
        for name, r in self._to_raw(values).items():
            raw[name].copy_(r.to(like.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return apply(self.op, x, self.op_params(), channel_dim=self.channel_dim, backend=self._backend)

    # -- metadata -------------------------------------------------------------------------
    @classmethod
    def parameter_infos(cls) -> tuple[ParameterInfo, ...]:
        return tuple(
            ParameterInfo(p.name, p.default, p.description or p.constraint.description, True) for p in cls.params
        )

    def extra_repr(self) -> str:
        parts = []
        if self.num_parameters == 1:
            for name, v in self.values().items():
                flat = v.detach().reshape(-1).tolist()
                shown = f"{flat[0]:.4g}" if len(flat) == 1 else "(" + ", ".join(f"{e:.4g}" for e in flat) + ")"
                parts.append(f"{name}={shown}")
        parts.append(f"num_parameters={self.num_parameters}")
        if self.channel_dim != 1:
            parts.append(f"channel_dim={self.channel_dim}")
        if not self.trainable:
            parts.append("trainable=False")
        if self._backend is not None:
            parts.append(f"backend={self._backend!r}")
        return ", ".join(parts)
