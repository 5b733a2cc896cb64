"""Finding the activation modules ("sites") inside a model.

One definition of "what counts as an activation" serves model surgery,
optimizer groups, inspection and input recording alike.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from .base import Activation

__all__ = ["NATIVE_ACTIVATIONS", "is_activation", "activation_sites", "activation_parameters"]

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


def is_activation(module: nn.Module) -> bool:
    """True for actlab activations and the ``torch.nn`` activation classes above."""
    return isinstance(module, (Activation, *NATIVE_ACTIVATIONS))


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
