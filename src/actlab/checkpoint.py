"""Checkpoints that know which activation wrote them.

Every actlab activation adds one entry to its ``state_dict``,
``<site>._extra_state``: its registry name as a 1-D ``uint8`` tensor of UTF-8
bytes. A tensor, not a dict of strings, because code everywhere treats every
``state_dict`` value as a tensor (EMA updates that ``copy_`` each value,
``torch.equal`` comparisons, ``{k: v.clone()}`` snapshots); an integer tensor is
handled the way such code already handles BatchNorm's ``num_batches_tracked``,
and ``torch.load(weights_only=True)`` reads it. Loading checks it:

- ``model.load_state_dict(state)`` reports, for every actlab activation of
  ``model``, a checkpoint that holds another actlab activation at that site
  (an error even with ``strict=False``: the weights would be read as something
  they are not); a checkpoint with no record there (saved with a ``torch.nn``
  activation at that site) shows as a missing ``<site>._extra_state`` key, an
  error with ``strict=True`` only;
- :func:`load_state_dict` checks every site *before* anything is copied, also
  where the model has a ``torch.nn`` activation and the checkpoint an actlab
  one, and raises one error listing every mismatch.

``torch.nn`` activations carry no state, so a checkpoint cannot tell a ReLU
from a GELU: swapping two of them is invisible to any check on a state_dict
(PyTorch's own behaviour).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .base import Activation
from .sites import activation_name

__all__ = ["activation_record", "record_name", "check_record", "saved_activations", "load_state_dict"]

_EXTRA_STATE = "_extra_state"


def activation_record(module: nn.Module) -> Tensor:
    """What an actlab activation stores in its state_dict to identify itself: its name's UTF-8 bytes."""
    return torch.tensor(list(activation_name(module).encode("utf-8")), dtype=torch.uint8)


def record_name(record: Any) -> str | None:
    """The activation name in a record written by :func:`activation_record` (None if it is not one)."""
    if isinstance(record, Tensor) and record.dtype == torch.uint8 and record.dim() == 1:
        return bytes(record.tolist()).decode("utf-8", errors="replace")
    return None


def _site(prefix: str) -> str:
    return prefix[:-1] if prefix else "<root>"


def _saved_name(state_dict: Mapping[str, Any], prefix: str) -> str | None:
    return record_name(state_dict.get(prefix + _EXTRA_STATE))


def _describe(module: nn.Module | None) -> str:
    if module is None:
        return "no module there"
    return f"{activation_name(module)!r} ({type(module).__name__})"


def _mismatch(site: str, saved: str | None, module: nn.Module | None) -> str:
    if saved is None:
        return (
            f"activation at {site!r}: the checkpoint holds no actlab activation record (it was saved with another "
            f"activation there, e.g. a torch.nn one), this model has {_describe(module)}. Load it into a model with "
            "the same activation at this site, or pass strict=False to load the other weights anyway"
        )
    return (
        f"activation at {site!r}: the checkpoint holds {saved!r}, this model has {_describe(module)}. "
        "Load it into a model with the same activation at this site (or replace the activation after loading)"
    )


def check_record(module: Activation, state_dict: Mapping[str, Any], prefix: str, error_msgs: list) -> None:
    """Append to ``error_msgs`` when the checkpoint holds another activation at this site.

    Called by :class:`actlab.Activation` while ``load_state_dict`` walks the
    model; torch raises the collected messages together at the end. A missing
    record is left to torch (a missing ``<site>._extra_state`` key, an error
    only with ``strict=True``): ``_load_from_state_dict`` is not told ``strict``.
    """
    saved = _saved_name(state_dict, prefix)
    if saved is not None and saved != activation_name(module):
        error_msgs.append(_mismatch(_site(prefix), saved, module))


def saved_activations(state_dict: Mapping[str, Any]) -> dict[str, str]:
    """``{site: activation name}`` for every actlab activation recorded in a state_dict."""
    sites = {}
    for key in state_dict:
        if key == _EXTRA_STATE or key.endswith("." + _EXTRA_STATE):
            prefix = key[: -len(_EXTRA_STATE)]
            name = _saved_name(state_dict, prefix)
            if name is not None:
                sites[_site(prefix)] = name
    return sites


def _module_at(model: nn.Module, site: str) -> nn.Module | None:
    if site == "<root>":
        return model
    try:
        return model.get_submodule(site)
    except AttributeError:
        return None


def load_state_dict(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """``model.load_state_dict(state_dict, strict)``, after checking every activation site.

    Unlike ``nn.Module.load_state_dict``, which copies what it can and raises
    afterwards, nothing is loaded when an activation differs, and the error
    also covers sites where the model has a ``torch.nn`` activation but the
    checkpoint an actlab one.

    Raises:
        RuntimeError: listing every site whose activation differs (with
            ``strict=True``, also actlab activations the checkpoint has no
            record for).
    """
    problems = []
    saved = saved_activations(state_dict)
    for site, name in saved.items():
        module = _module_at(model, site)
        if isinstance(module, Activation) and activation_name(module) == name:
            continue
        if module is None and not strict:
            continue
        problems.append(_mismatch(site, name, module))
    if strict:
        # An actlab site without a record: the checkpoint had another activation (a torch.nn one) there.
        for site, module in model.named_modules():
            site = site or "<root>"
            if isinstance(module, Activation) and site not in saved:
                problems.append(_mismatch(site, None, module))
    if problems:
        raise RuntimeError(
            f"cannot load the checkpoint into {type(model).__name__}: its activations differ from the model's "
            "(nothing was loaded):\n\t" + "\n\t".join(problems)
        )
    return model.load_state_dict(state_dict, strict=strict)
