"""Finding the activation modules ("sites") inside a model.

One definition of "what counts as an activation" serves model surgery,
optimizer groups, checkpoints, inspection and input recording alike:

- :func:`is_activation` says whether a module is an activation site;
- :data:`HIDDEN_ACTIVATIONS` are the ``torch.nn`` classes that act as a
  network's hidden nonlinearity (what model surgery replaces by default);
- :func:`functional_equivalent` maps the functional spellings (``F.relu``,
  ``torch.tanh``, ``Tensor.relu``) to the module class they stand for, so that
  calls that module surgery cannot reach can at least be found;
- :func:`activation_name` is the stable name an activation is known by (its
  registry name where it has one), used in reports and checkpoint records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Activation
from .registry import FunctionalActivation, info, list_activations

__all__ = [
    "NATIVE_ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "is_activation",
    "activation_sites",
    "activation_parameters",
    "functional_equivalent",
    "activation_name",
]

#: ``torch.nn`` activation classes recognised as activation sites.
NATIVE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
)

#: Native classes that are mostly gates, output squashers or positivity maps
#: (squeeze-excitation gates, LSTM-style gates, variance heads): replacing them
#: changes what the model computes, not just its nonlinearity, so model surgery
#: leaves them alone unless asked for them explicitly.
GATE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
)

#: The native classes that serve as a network's hidden-layer nonlinearity: the
#: native activations less the gates above (model surgery's default ``old``).
HIDDEN_ACTIVATIONS: tuple[type[nn.Module], ...] = tuple(c for c in NATIVE_ACTIVATIONS if c not in GATE_ACTIVATIONS)


def is_activation(module: nn.Module) -> bool:
    """True for actlab activations (tensor functions wrapped by :func:`actlab.create` included)
    and the ``torch.nn`` activation classes above."""
    return isinstance(module, (Activation, FunctionalActivation, *NATIVE_ACTIVATIONS))


def activation_sites(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every activation module, in registration order.

    A module instance reachable under several names is reported once, under its
    first name (as ``named_modules`` does).
    """
    return [(name, m) for name, m in model.named_modules() if is_activation(m)]


def activation_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The trainable parameters that belong to activation modules (each once)."""
    seen: set[int] = set()
    for _, module in activation_sites(model):
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield p


def _is_tensor_method(fn: Any) -> bool:
    return getattr(fn, "__objclass__", None) in torch.Tensor.__mro__


# The functional spellings of each activation: torch.nn.functional, the torch
# namespace (in-place variants included) and Tensor methods. F.gelu, F.softplus
# and F.logsigmoid are the C builtins themselves, so one entry covers both names.
_FUNCTIONAL_SPELLINGS: dict[type[nn.Module], tuple[Callable[..., Any], ...]] = {
    nn.ReLU: (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_),
    nn.ReLU6: (F.relu6,),
    nn.LeakyReLU: (F.leaky_relu, F.leaky_relu_),
    nn.PReLU: (F.prelu, torch.prelu),
    nn.RReLU: (F.rrelu, F.rrelu_, torch.rrelu, torch.rrelu_),
    nn.ELU: (F.elu, F.elu_),
    nn.CELU: (F.celu, F.celu_, torch.celu, torch.celu_),
    nn.SELU: (F.selu, F.selu_, torch.selu, torch.selu_),
    nn.GELU: (F.gelu,),
    nn.SiLU: (F.silu,),
    nn.Mish: (F.mish,),
    nn.Hardswish: (F.hardswish,),
    nn.Softplus: (F.softplus,),
    nn.Tanh: (F.tanh, torch.tanh, torch.tanh_, torch.Tensor.tanh, torch.Tensor.tanh_),
    nn.Sigmoid: (F.sigmoid, torch.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_),
    nn.Hardtanh: (F.hardtanh, F.hardtanh_),
    nn.Hardsigmoid: (F.hardsigmoid,),
    nn.Softsign: (F.softsign,),
    nn.Tanhshrink: (F.tanhshrink,),
    nn.LogSigmoid: (F.logsigmoid,),
}
_FUNCTIONAL: dict[Any, type[nn.Module]] = {fn: cls for cls, fns in _FUNCTIONAL_SPELLINGS.items() for fn in fns}
# torch.fx records Tensor methods by name (``call_method`` nodes).
_METHODS: dict[str, type[nn.Module]] = {fn.__name__: cls for fn, cls in _FUNCTIONAL.items() if _is_tensor_method(fn)}


def functional_equivalent(fn: Any) -> type[nn.Module] | None:
    """The ``torch.nn`` class a functional activation stands for, or ``None``.

    ``fn`` is a function (``F.relu``, ``torch.tanh``, ``torch.Tensor.relu``) or
    the name of a Tensor method (``"relu"``, as torch.fx records method calls).
    """
    if isinstance(fn, str):
        return _METHODS.get(fn)
    try:
        return _FUNCTIONAL.get(fn)
    except TypeError:  # unhashable callables are no activation functions
        return None


def _function_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    if _is_tensor_method(fn):
        return f"Tensor.{name}"
    for prefix, namespace in (("F", F), ("torch", torch)):
        if getattr(namespace, name, None) is fn:
            return f"{prefix}.{name}"
    return f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', name)}"


def activation_name(activation: nn.Module | Callable[..., Any]) -> str:
    """The name an activation is known by: the registry name of its class or of
    the nearest registered base class (``"srs"``, ``"relu"``), else its qualified
    class name; functions are named as written (``"F.relu"``, ``"Tensor.relu"``)."""
    if not isinstance(activation, nn.Module):
        return _function_name(activation)
    registered = {info(name).cls: name for name in list_activations()}
    # The first registered class in the MRO: wrappers such as FSDP2's fully_shard
    # swap a module's class for a subclass made on the fly (FSDPSRS).
    for cls in type(activation).__mro__:
        if cls in registered:
            return registered[cls]
    cls = type(activation)
    return f"{cls.__module__}.{cls.__qualname__}"
