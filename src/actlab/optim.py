"""Optimizer parameter groups that keep weight decay off activation parameters.

Weight decay pulls every parameter towards 0. For a weight matrix that is
regularisation; for an activation's shape parameters it is a bias towards one
particular, usually degenerate, function (PReLU's slope towards ReLU, a PAU
towards the zero function, an SRS alpha towards its floor). The PReLU paper
applies no decay to the slopes, PyTorch's PReLU docs say not to, and studies
that forgot it (ACON in YOLOv5) got worse results. :func:`param_groups` puts
activation parameters in a group of their own, with no decay by default and
optionally their own learning rate.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from .sites import activation_parameters

__all__ = ["param_groups", "NORM_LAYERS"]

#: Layers whose parameters are scales and shifts, not weights
#: (``no_decay_norm_and_bias=True`` keeps decay off them).
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def _check_rate(name: str, value: float, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")


def _norm_and_bias_ids(model: nn.Module) -> set[int]:
    ids = set()
    for module in model.modules():
        norm = isinstance(module, NORM_LAYERS)
        for name, p in module.named_parameters(recurse=False):
            if norm or name.endswith("bias"):
                ids.add(id(p))
    return ids


def param_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    activation_weight_decay: float = 0.0,
    activation_lr: float | None = None,
    no_decay_norm_and_bias: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim`` with activation parameters in a group of their own.

    Every trainable parameter (``requires_grad=True``) of ``model`` appears in
    exactly one group; frozen parameters are left out. Groups that would be
    empty are omitted. Each group has a ``"name"`` (``"decay"``, ``"no_decay"``,
    ``"activation"``), which torch.optim keeps alongside the other settings.

    Args:
        model: the model (plain, ``DistributedDataParallel`` or ``fully_shard``-ed).
        weight_decay: decay of the ordinary parameters. Required: every group
            carries its own ``weight_decay``, which overrides the optimizer's
            default, so an implicit value would silently replace yours.
        activation_weight_decay: decay of activation parameters. Default: 0.
        activation_lr: learning rate of activation parameters (default: the
            optimizer's ``lr``).
        no_decay_norm_and_bias: also keep decay off biases and the parameters of
            normalisation layers (:data:`NORM_LAYERS`), the usual recipe for
            vision and language models. Default: ``False``.

    Raises:
        ValueError: a negative or non-finite rate; a model wrapped by FSDP1 with
            flattened parameters (activation parameters cannot be told apart there).

    Example::

        >>> opt = torch.optim.AdamW(actlab.param_groups(model, weight_decay=0.05), lr=1e-3)
    """
    _check_rate("weight_decay", weight_decay)
    _check_rate("activation_weight_decay", activation_weight_decay)
    if activation_lr is not None:
        _check_rate("activation_lr", activation_lr, positive=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if any(getattr(p, "_is_flat_param", False) for p in trainable):
        raise ValueError(
            "the model's parameters are flattened by FullyShardedDataParallel (use_orig_params=False), so activation "
            "parameters cannot be given their own group; wrap with use_orig_params=True, or use "
            "torch.distributed.fsdp.fully_shard"
        )
    activation_ids = {id(p) for p in activation_parameters(model)}
    plain_ids = _norm_and_bias_ids(model) if no_decay_norm_and_bias else set()

    activation = {"name": "activation", "params": [], "weight_decay": activation_weight_decay}
    if activation_lr is not None:
        activation["lr"] = activation_lr
    no_decay = {"name": "no_decay", "params": [], "weight_decay": 0.0}
    decay = {"name": "decay", "params": [], "weight_decay": weight_decay}
    for p in trainable:
        if id(p) in activation_ids:
            activation["params"].append(p)
        elif id(p) in plain_ids:
            no_decay["params"].append(p)
        else:
            decay["params"].append(p)
    return [g for g in (decay, no_decay, activation) if g["params"]]
