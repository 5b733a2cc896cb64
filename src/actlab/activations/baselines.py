"""The standard activations, registered under their usual names.

These are PyTorch's own modules (native kernels, nothing re-implemented), so
that the registry, the lab and model surgery treat them like every other
activation. ``gelu_tanh`` is ``nn.GELU(approximate="tanh")`` as a named class,
so that it can be told apart from exact GELU by type.
"""

from __future__ import annotations

import inspect

from torch import nn

from ..registry import ParameterInfo, register

__all__ = ["GELUTanh", "BASELINES"]


class GELUTanh(nn.GELU):
    r"""GELU with the tanh approximation: :math:`\tfrac{x}{2}\big(1 + \tanh(\sqrt{2/\pi}(x + 0.044715x^3))\big)`.

    The same module as ``nn.GELU(approximate="tanh")``, as a class of its own.
    """

    def __init__(self) -> None:
        super().__init__(approximate="tanh")


def _defaults(cls: type) -> tuple[ParameterInfo, ...]:
    """Constructor hyperparameters of a torch activation (``inplace``, device, dtype left out)."""
    skip = {"self", "inplace", "device", "dtype"}
    sig = inspect.signature(cls.__init__)
    return tuple(
        ParameterInfo(p.name, p.default, "real", cls is nn.PReLU)
        for p in sig.parameters.values()
        if p.name not in skip and p.default is not inspect.Parameter.empty
    )


# name: (class, formula, bounded below, bounded above, smooth (C¹), monotonic, aliases)
BASELINES = {
    "relu": (nn.ReLU, "max(0, x)", True, False, False, True, ()),
    "leaky_relu": (nn.LeakyReLU, "max(0, x) + negative_slope·min(0, x)", False, False, False, True, ("lrelu",)),
    "prelu": (nn.PReLU, "max(0, x) + a·min(0, x), a learned", False, False, False, True, ()),
    "elu": (nn.ELU, "x if x > 0 else alpha·(exp(x) - 1)", True, False, True, True, ()),
    "gelu": (nn.GELU, "x · Phi(x)", True, False, True, False, ()),
    "gelu_tanh": (GELUTanh, "x/2 · (1 + tanh(sqrt(2/pi)·(x + 0.044715·x³)))", True, False, True, False, ()),
    "silu": (nn.SiLU, "x · sigmoid(x)", True, False, True, False, ()),
    "mish": (nn.Mish, "x · tanh(softplus(x))", True, False, True, False, ()),
    "softplus": (nn.Softplus, "log(1 + exp(beta·x)) / beta", True, False, True, True, ()),
    "tanh": (nn.Tanh, "tanh(x)", True, True, True, True, ()),
    "sigmoid": (nn.Sigmoid, "1 / (1 + exp(-x))", True, True, True, True, ("logistic",)),
}

for _name, (_cls, _formula, _below, _above, _smooth, _mono, _aliases) in BASELINES.items():
    register(
        _name,
        family="baseline",
        formula=_formula,
        parameters=_defaults(_cls),
        trainable=_cls is nn.PReLU,
        bounded_below=_below,
        bounded_above=_above,
        smooth=_smooth,
        monotonic=_mono,
        provenance="pytorch",
        notes=f"torch.nn.{_cls.__name__}" if _cls is not GELUTanh else 'torch.nn.GELU(approximate="tanh")',
        aliases=_aliases,
        cls=_cls,
    )
