"""One registry for every activation: names, aliases, metadata and the factory.

Modelled on timm's ``create_act.py``: a name, an ``nn.Module`` subclass or a
callable are accepted interchangeably by :func:`create`. Registering a name or
alias twice is an error, never a silent override.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "ActivationInfo",
    "ParameterInfo",
    "PROVENANCES",
    "ActivationSpec",
    "register",
    "register_alias",
    "create",
    "get_class",
    "list_activations",
    "info",
    "canonical_name",
    "name_of",
    "FunctionalActivation",
]

#: Where an activation's formula comes from. ``paper``: read in the paper;
#: ``official-code``: taken from the authors' (or a co-author's) released code;
#: ``secondary``: from surveys or independent reimplementations that agree with
#: each other, the paper itself not read; ``reconstruction``: the source could
#: not be read and the form is our own reading (never claimed as the paper's);
#: ``pytorch``: PyTorch's own implementation, re-exported.
PROVENANCES = ("paper", "official-code", "secondary", "reconstruction", "pytorch")

ActivationSpec = str | type | Callable[..., Any] | nn.Module


@dataclass(frozen=True)
class ParameterInfo:
    """A constructor hyperparameter of an activation."""

    name: str
    default: Any
    constraint: str = "real"
    trainable: bool = True


@dataclass(frozen=True)
class ActivationInfo:
    """Everything the registry knows about one activation.

    The shape properties (``bounded_below``, ``bounded_above``, ``smooth`` meaning
    continuously differentiable, ``monotonic``) describe the function **at its
    default parameters**; trained parameters can change them (Swish with beta < 0
    is bounded above instead of below, SAU with alpha < 0 is not monotonic).
    :func:`actlab.properties` measures them for any parameter values.
    """

    name: str
    family: str
    cls: type = field(repr=False, compare=False)
    formula: str
    paper: str | None = None
    arxiv: str | None = None
    parameters: tuple[ParameterInfo, ...] = ()
    trainable: bool = False
    bounded_below: bool = False
    bounded_above: bool = False
    smooth: bool = True
    monotonic: bool = False
    provenance: str = "paper"
    notes: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def bounded(self) -> bool:
        """True when the output is bounded both below and above."""
        return self.bounded_below and self.bounded_above

    @property
    def reference(self) -> str:
        """A one-line citation: paper title and arXiv id where known."""
        parts = [p for p in (self.paper, f"arXiv:{self.arxiv}" if self.arxiv else None) if p]
        return "; ".join(parts) if parts else "-"


_REGISTRY: dict[str, ActivationInfo] = {}
_ALIASES: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Normalise a user-supplied name: case-insensitive, ``-`` and ``_`` equivalent."""
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, got {type(name).__name__}")
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _check_free(key: str) -> None:
    if key in _REGISTRY or key in _ALIASES:
        owner = _ALIASES.get(key, key)
        raise ValueError(f"activation name {key!r} is already registered (by {owner!r}); names must be unique")


def register(
    name: str,
    *,
    family: str,
    formula: str,
    paper: str | None = None,
    arxiv: str | None = None,
    parameters: tuple[ParameterInfo, ...] | None = None,
    trainable: bool | None = None,
    bounded_below: bool = False,
    bounded_above: bool = False,
    smooth: bool = True,
    monotonic: bool = False,
    provenance: str = "paper",
    notes: str = "",
    aliases: tuple[str, ...] = (),
    cls: type | None = None,
):
    """Register an activation class under ``name`` (usable as a class decorator).

    ``parameters`` and ``trainable`` default to what the class declares through
    ``parameter_infos()`` (see :class:`actlab.base.ParametricActivation`).
    """
    if provenance not in PROVENANCES:
        raise ValueError(f"provenance must be one of {PROVENANCES}, got {provenance!r}")

    def decorator(klass: type) -> type:
        key = canonical_name(name)
        _check_free(key)
        alias_keys = tuple(canonical_name(a) for a in aliases)
        for a in alias_keys:
            _check_free(a)
        params = parameters
        if params is None:
            params = tuple(klass.parameter_infos()) if hasattr(klass, "parameter_infos") else ()
        is_trainable = trainable if trainable is not None else any(p.trainable for p in params)
        _REGISTRY[key] = ActivationInfo(
            name=key,
            family=family,
            cls=klass,
            formula=formula,
            paper=paper,
            arxiv=arxiv,
            parameters=params,
            trainable=is_trainable,
            bounded_below=bounded_below,
            bounded_above=bounded_above,
            smooth=smooth,
            monotonic=monotonic,
            provenance=provenance,
            notes=notes,
            aliases=alias_keys,
        )
        for a in alias_keys:
            _ALIASES[a] = key
        return klass

    if cls is not None:
        return decorator(cls)
    return decorator


def register_alias(alias: str, name: str) -> None:
    """Make ``alias`` resolve to the registered activation ``name``."""
    key = _resolve(name)
    a = canonical_name(alias)
    _check_free(a)
    _ALIASES[a] = key
    old = _REGISTRY[key]
    _REGISTRY[key] = ActivationInfo(**{**old.__dict__, "aliases": old.aliases + (a,)})


def _resolve(name: str) -> str:
    key = canonical_name(name)
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = sorted(set(_REGISTRY) | set(_ALIASES))
        close = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown activation {name!r}.{hint} Run `actlab list` or call actlab.list_activations() for all names."
        )
    return key


def info(name: str) -> ActivationInfo:
    """The :class:`ActivationInfo` of a registered activation (aliases accepted)."""
    return _REGISTRY[_resolve(name)]


def get_class(name: str) -> type:
    """The module class registered under ``name``."""
    return info(name).cls


def name_of(module: nn.Module) -> str | None:
    """The registry name whose class is exactly ``type(module)``, or ``None`` if unregistered.

    Matching is by exact class: ``nn.GELU(approximate="tanh")`` reports as ``gelu``
    (its class), while :class:`~actlab.activations.baselines.GELUTanh` reports as
    ``gelu_tanh``.
    """
    cls = type(module)
    return next((name for name, entry in _REGISTRY.items() if entry.cls is cls), None)


def list_activations(trainable: bool | None = None) -> list[str]:
    """Sorted canonical names; ``trainable`` filters on having trainable parameters."""
    return sorted(k for k, v in _REGISTRY.items() if trainable is None or v.trainable == trainable)


def _all_infos() -> list[ActivationInfo]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


class FunctionalActivation(nn.Module):
    """Wraps a plain tensor function (``torch.tanh``, ``F.relu``, a lambda) as a module."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"expected a callable, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__qualname__", None) or getattr(self.fn, "__name__", None) or repr(self.fn)


def _is_module_factory(fn: Callable) -> bool:
    """A partial of a Module class, or a callable that can be called with no argument."""
    target = fn.func if isinstance(fn, functools.partial) else None
    if isinstance(target, type) and issubclass(target, nn.Module):
        return True
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def create(spec: ActivationSpec, **kwargs: Any) -> nn.Module:
    """Build an activation module from a name, a class, a callable or a module.

    Args:
        spec: a registry name (case-insensitive, ``-`` and ``_`` equivalent,
            aliases such as ``swish``), an ``nn.Module`` subclass, a factory
            (a ``functools.partial`` of a Module class or any zero-argument
            callable returning a module), a tensor function such as
            ``torch.tanh`` (wrapped in :class:`FunctionalActivation`), or a
            module instance (a deep copy is returned, so that two call sites
            never share parameters by accident).
        **kwargs: constructor arguments.

    Raises:
        ValueError: unknown name (the message lists the closest known names).
        TypeError: ``spec`` is none of the above, or kwargs the class rejects.
    """
    if isinstance(spec, str):
        cls = get_class(spec)
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise TypeError(f"{spec!r}: {err}") from err
    if isinstance(spec, nn.Module):
        if kwargs:
            raise TypeError("keyword arguments cannot be applied to an existing module instance")
        return copy.deepcopy(spec)
    if isinstance(spec, type):
        if not issubclass(spec, nn.Module):
            raise TypeError(f"activation class must be an nn.Module subclass, got {spec.__name__}")
        return spec(**kwargs)
    if callable(spec):
        if _is_module_factory(spec):
            module = spec(**kwargs)
            if not isinstance(module, nn.Module):
                raise TypeError(f"factory {spec!r} returned {type(module).__name__}, not an nn.Module")
            return module
        if kwargs:
            raise TypeError("keyword arguments cannot be applied to a tensor function")
        return FunctionalActivation(spec)
    raise TypeError(
        f"cannot create an activation from {type(spec).__name__}; "
        "pass a registry name, an nn.Module subclass, a factory or a tensor function"
    )
