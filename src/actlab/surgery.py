"""Model surgery: swap the activations of an existing model for other ones.

:func:`replace_activations` finds the activation sites of a model (modules
anywhere in it, and activation functions held in module attributes such as
``nn.TransformerEncoderLayer.activation``), builds a fresh module for each and
puts it in place, and returns a :class:`ReplacementReport`. Design choices (see
``docs/integration.md``):

- **In place** by default, like ``nn.Module.to``; ``copy=True`` works on a deep copy.
- **All or nothing**: every new module is planned and built before the model is
  touched, so an error leaves the model as it was.
- **A fresh module per slot**: a module instance registered under several
  names is split, one new module per name. A module that ``forward`` *calls*
  several times (torchvision's ``BasicBlock.relu``) cannot be split by surgery
  without rewriting ``forward``: it is replaced by one module, whose parameters
  are then shared by those calls; this is reported and warned about.
- **Functional calls** (``F.relu(x)`` in a ``forward``) are out of reach of
  module surgery; they are found (:mod:`actlab.callsites`) and reported.
- **PyTorch's fused Transformer fast path** (which evaluates ReLU/GELU natively
  in inference, bypassing ``self.activation``) is switched off for every
  encoder layer whose activation was replaced, so the new one is used in
  training and inference alike.
"""

from __future__ import annotations

import copy as copy_module
import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .callsites import (
    Call,
    CallAnalysis,
    ExampleInput,
    FunctionalCall,
    analyse_calls,
    function_attributes,
    is_transparent,
    layer_channels,
    probe_attributes,
)
from .registry import ActivationSpec, _is_module_factory, create, get_class, info
from .sites import HIDDEN_ACTIVATIONS, activation_name, functional_equivalent

__all__ = ["replace_activations", "ReplacementReport", "ReplacedSite"]

OldTypes = type[nn.Module] | Iterable[type[nn.Module]]
NewSpec = ActivationSpec | Mapping[type[nn.Module], ActivationSpec]
SiteFilter = Callable[[str, Any], bool]


@dataclass(frozen=True)
class ReplacedSite:
    """One replaced activation.

    Attributes:
        name: qualified name of the slot (``"layer1.0.relu"``, ``"layers.0.activation"``).
        old: what was there (``"ReLU"``, ``"F.relu"`` for a function attribute).
        new: the new module's class name.
        num_parameters: the new module's ``num_parameters`` (1 = shared, C = per
            channel; ``None`` when it has none).
        channel_dim: the axis its per-channel parameters run along (``None`` if shared).
        parameters_added: number of trainable scalars it brings.
        calls: how often one forward calls it (``None``: unknown); above 1 the
            calls share its parameters.
        split_from: other slots that held the same old module instance (each now
            has its own new module).
        module: the new module.
    """

    name: str
    old: str
    new: str
    num_parameters: int | None
    channel_dim: int | None
    parameters_added: int
    calls: int | None
    split_from: tuple[str, ...] = ()
    module: nn.Module = field(default=None, repr=False, compare=False)


@dataclass
class ReplacementReport:
    """What :func:`replace_activations` did. ``print(report)`` shows a table.

    Attributes:
        model: the model (the one passed in, or its copy with ``copy=True``).
        sites: the replaced sites, in registration order.
        functional_calls: activations applied as functions in ``forward``
            (matching ``old``), which were *not* replaced.
        analysis: how call counts and functional calls were found
            (``"forward pass"``, ``"torch.fx"``, or ``""`` when neither worked).
        notes: everything else worth knowing (fast paths switched off, why an
            analysis failed, ...).
    """

    model: nn.Module = field(repr=False)
    sites: list[ReplacedSite]
    functional_calls: list[FunctionalCall]
    analysis: str
    notes: list[str]

    @property
    def count(self) -> int:
        """Number of replaced sites."""
        return len(self.sites)

    @property
    def parameters_added(self) -> int:
        """Trainable scalars added by the new modules."""
        return sum(s.parameters_added for s in self.sites)

    @property
    def shared_calls(self) -> list[ReplacedSite]:
        """Sites whose single module ``forward`` calls several times (parameters shared by the calls)."""
        return [s for s in self.sites if s.calls is not None and s.calls > 1]

    def warnings(self) -> list[str]:
        """The findings that may need action, one sentence each."""
        out = []
        if self.shared_calls:
            listed = ", ".join(f"{s.name!r} ({s.calls} calls)" for s in self.shared_calls)
            out.append(
                f"one module serves several calls in forward at {listed}: the calls share its parameters (surgery "
                "cannot split a module that forward reuses; give the model one module per call, e.g. relu1 and "
                "relu2, for separate parameters)"
            )
        out += [f"not replaced (functional call): {c}" for c in self.functional_calls]
        return out

    def __str__(self) -> str:
        header = ("site", "old", "new", "num_parameters", "channel_dim", "calls", "parameters")
        rows = [
            (
                s.name,
                s.old,
                s.new,
                "-" if s.num_parameters is None else str(s.num_parameters),
                "-" if s.channel_dim is None else str(s.channel_dim),
                "?" if s.calls is None else str(s.calls),
                str(s.parameters_added),
            )
            for s in self.sites
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            f"replaced {self.count} activation site{'s' if self.count != 1 else ''}, "
            f"{self.parameters_added:,} trainable parameters added"
            + (f" (call analysis: {self.analysis})" if self.analysis else "")
        ]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        for title, items in (("warnings", self.warnings()), ("notes", self.notes)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  - {item}" for item in items]
        return "\n".join(lines)


# -- what to replace, and by what ---------------------------------------------------------


def _check_spec(spec: Any) -> None:
    """Reject a bad ``new`` before anything is touched (unknown names list close matches)."""
    if isinstance(spec, str):
        info(spec)
    elif isinstance(spec, type):
        if not issubclass(spec, nn.Module):
            raise TypeError(f"new activation class must be an nn.Module subclass, got {spec.__name__}")
    elif not (isinstance(spec, nn.Module) or callable(spec)):
        raise TypeError(
            f"cannot build an activation from {type(spec).__name__}; pass a registry name, an nn.Module subclass, "
            "a factory, a tensor function, a module instance, or a mapping from old class to one of these"
        )


def _module_classes(old: OldTypes, what: str) -> tuple[type[nn.Module], ...]:
    classes = (old,) if isinstance(old, type) else tuple(old)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"{what} must be nn.Module subclasses (e.g. nn.ReLU), got {cls!r}")
    if not classes:
        raise ValueError(f"{what} is empty: name at least one activation class to replace")
    return classes


class _Rules:
    """Which new activation replaces an old class: exact class first, then the
    first entry it is a subclass of (``nn.ReLU6`` is an ``nn.Hardtanh``)."""

    def __init__(self, new: NewSpec, old: OldTypes | None):
        if isinstance(new, Mapping):
            if old is not None:
                raise TypeError("pass either a mapping as `new` (its keys select the sites) or `old`, not both")
            if not new:
                raise ValueError("the mapping `new` is empty: map at least one activation class to a replacement")
            self.pairs = [(_module_classes(k, "the keys of `new`"), v) for k, v in new.items()]
        else:
            self.pairs = [(_module_classes(HIDDEN_ACTIVATIONS if old is None else old, "`old`"), new)]
        for _, spec in self.pairs:
            _check_spec(spec)
        self.classes = tuple(cls for classes, _ in self.pairs for cls in classes)

    def spec_for(self, cls: type) -> ActivationSpec | None:
        for classes, spec in self.pairs:
            if cls in classes:
                return spec
        for classes, spec in self.pairs:
            if issubclass(cls, classes):
                return spec
        return None


@dataclass
class _Slot:
    """One place in the model that holds an activation: ``parent.<attr>``."""

    name: str
    parent: nn.Module
    attr: str
    old: Any  # a module, or a function held in an attribute
    spec: ActivationSpec
    split_from: tuple[str, ...] = ()

    @property
    def is_function(self) -> bool:
        return not isinstance(self.old, nn.Module)


def _parent_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def _find_slots(model: nn.Module, rules: _Rules, site_filter: SiteFilter | None) -> list[_Slot]:
    slots: dict[tuple[int, str], _Slot] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        spec = rules.spec_for(type(module))
        if spec is None:
            continue
        if not name:
            raise ValueError(
                f"the model is itself an activation ({type(module).__name__}); build the new one with actlab.create"
            )
        parent, attr = _parent_of(model, name)
        key = (id(parent), attr)
        # A shared *parent* reaches the same slot under several names: one slot.
        if key not in slots and (site_filter is None or site_filter(name, module)):
            slots[key] = _Slot(name, parent, attr, module, spec)
    for name, parent, attr, fn in function_attributes(model):
        spec = rules.spec_for(functional_equivalent(fn))
        if spec is not None and (site_filter is None or site_filter(name, fn)):
            slots.setdefault((id(parent), attr), _Slot(name, parent, attr, fn, spec))
    ordered = list(slots.values())
    by_instance: dict[int, list[_Slot]] = {}
    for slot in ordered:
        if not slot.is_function:
            by_instance.setdefault(id(slot.old), []).append(slot)
    for group in by_instance.values():
        for slot in group:
            slot.split_from = tuple(s.name for s in group if s is not slot)
    return ordered


# -- per-channel: how many channels, along which axis ------------------------------------


def _scan_back(modules: Iterable[nn.Module | None]) -> nn.Module | None | bool:
    """The last channel-defining layer among ``modules`` (given last first);
    ``True`` when all are transparent, ``None`` at the first unknown module."""
    for m in modules:
        if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
            found = _scan_back(reversed(list(m)))
            if found is True:
                continue
            return found
        if layer_channels(m) is not None:
            return m
        if not is_transparent(m):
            return None
    return True


def _preceding_layer(model: nn.Module, name: str) -> nn.Module | None:
    """The layer feeding ``name`` in a plain ``nn.Sequential`` (registration order
    is execution order only there), looking back through dropout, identity,
    activations and enclosing Sequentials."""
    while name:
        parent, attr = _parent_of(model, name)
        if not (isinstance(parent, nn.Sequential) and type(parent).forward is nn.Sequential.forward):
            return None
        keys = list(parent._modules)
        before = keys[: keys.index(attr)]
        found = _scan_back(parent._modules[k] for k in reversed(before))
        if found is not True:
            return found
        name = name.rpartition(".")[0]
    return None


class _ChannelError(ValueError):
    pass


def _channel_layout(slot: _Slot, calls: list[Call] | None, model: nn.Module, channel_dim: int | None):
    """``(channels, channel_dim, input shapes or None)`` for a per-channel module at ``slot``.

    Sources, first match wins: the calls seen by a forward pass (shapes and
    producing layers), the producing layers torch.fx found for every call, the
    preceding layer in a plain ``nn.Sequential`` (see docs/integration.md).
    """
    structural = None if slot.is_function else _preceding_layer(model, slot.name)
    advice = "pass example_input= (a tensor shaped like the model's input) so that it is read from a forward pass"
    if calls is not None and not calls and structural is None:
        raise _ChannelError(f"forward never calls it (as analysed); {advice}, or leave it out with filter=")
    shapes_known = bool(calls) and all(c.shape is not None for c in calls)
    producers_known = bool(calls) and all(c.producer is not None for c in calls)
    layouts = {layer_channels(c.producer) for c in calls or () if c.producer is not None}

    if shapes_known:
        if channel_dim is not None:
            dim = channel_dim
        elif len({d for _, d in layouts}) > 1:
            raise _ChannelError("its inputs come from layers with different channel axes; pass channel_dim=")
        elif layouts:
            dim = next(iter(layouts))[1]
        elif structural is not None:
            dim = layer_channels(structural)[1]
        elif all(len(c.shape) == 2 for c in calls):
            dim = 1
        else:
            shapes = ", ".join(str(c.shape) for c in calls)
            raise _ChannelError(
                f"its input (shape {shapes}) is not produced directly by a Linear, Conv or norm layer, so the channel "
                "axis is unknown; pass channel_dim="
            )
        counts = set()
        for c in calls:
            if not -len(c.shape) <= dim < len(c.shape):
                raise _ChannelError(f"channel_dim={dim} is out of range for its input of shape {c.shape}")
            counts.add(c.shape[dim])
        if len(counts) > 1 and slot.split_from and structural is not None:
            # One instance at several slots, fed different channel counts: the
            # Sequential structure tells which slot gets which.
            counts = {layer_channels(structural)[0]}
        if len(counts) > 1:
            raise _ChannelError(
                f"it is called with inputs of different channel counts {sorted(counts)} along axis {dim} (shapes "
                f"{', '.join(str(c.shape) for c in calls)}); one per-channel module cannot serve them: use "
                "per_channel=False, or give the model one activation module per call"
            )
        return counts.pop(), dim, [c.shape for c in calls]
    if producers_known:
        if len(layouts) > 1:
            raise _ChannelError(
                "its calls are fed by layers of different widths or layouts "
                f"({', '.join(f'{n} channels on axis {d}' for n, d in sorted(layouts))}); use per_channel=False"
            )
        channels, dim = next(iter(layouts))
        return channels, dim if channel_dim is None else channel_dim, None
    if structural is not None:
        channels, dim = layer_channels(structural)
        return channels, dim if channel_dim is None else channel_dim, None
    if calls:
        why = "what feeds one of its calls is not a Linear, Conv or norm layer (e.g. a residual sum)"
    elif slot.is_function:
        why = "it is a function attribute of a module, so nothing in the model's structure says what feeds it"
    else:
        why = (
            f"its parent ({type(slot.parent).__name__}) is not an nn.Sequential, so the model's structure does not "
            "say what feeds it"
        )
    raise _ChannelError(f"{why}; {advice}")


def _constructor(spec: ActivationSpec) -> Callable | None:
    """The callable whose signature says which keywords ``spec`` accepts (``None``: none)."""
    if isinstance(spec, str):
        return get_class(spec)
    if isinstance(spec, nn.Module):
        return None
    if isinstance(spec, type) or (callable(spec) and _is_module_factory(spec)):
        return spec
    return None


def _accepts(spec: ActivationSpec, keyword: str) -> bool:
    fn = _constructor(spec)
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    # Only an explicit keyword counts: nn.Module.__init__ itself takes **kwargs.
    return keyword in params


def _per_channel_kwargs(slot, spec, calls, model, channel_dim) -> dict[str, int]:
    channels, dim, shapes = _channel_layout(slot, calls, model, channel_dim)
    if _accepts(spec, "channel_dim"):
        return {"num_parameters": channels, "channel_dim": dim}
    # e.g. nn.PReLU: per-channel parameters always run along axis 1.
    if dim == 1 or (dim == -1 and shapes and all(len(s) == 2 for s in shapes)):
        return {"num_parameters": channels}
    raise _ChannelError(
        f"its channels run along axis {dim}, but {_spec_name(spec)} has no channel_dim argument (its per-channel "
        "parameters run along axis 1); use an actlab activation or per_channel=False"
    )


def _spec_name(spec: ActivationSpec) -> str:
    if isinstance(spec, str):
        return repr(spec)
    return getattr(spec, "__name__", None) or type(spec).__name__


# -- building and placing the new modules -----------------------------------------------


def _placement(slot: _Slot, model: nn.Module) -> tuple[torch.device, torch.dtype] | None:
    """Device and floating dtype of the old module's tensors, else of its parent's, else the model's."""
    for source in (slot.old, slot.parent, model):
        if not isinstance(source, nn.Module):
            continue
        for t in (*source.parameters(), *source.buffers()):
            if t.is_floating_point():
                return t.device, t.dtype
    return None


def _build(slot: _Slot, kwargs: dict[str, int], model: nn.Module) -> nn.Module:
    try:
        module = create(slot.spec, **kwargs)
    except TypeError as err:
        raise TypeError(f"building the replacement for {slot.name!r}: {err}") from err
    placement = _placement(slot, model)
    if placement is not None:
        device, dtype = placement
        module.to(device=device, dtype=dtype)  # casts floating-point tensors only
    return module.train(slot.parent.training)


def _fast_path_flag(activation: Any) -> int:
    """PyTorch's own rule for ``TransformerEncoderLayer.activation_relu_or_gelu``, strictly."""
    if activation is torch.nn.functional.relu or type(activation) is nn.ReLU:
        return 1
    if activation is torch.nn.functional.gelu or (type(activation) is nn.GELU and activation.approximate == "none"):
        return 2
    return 0


def _disable_native_fast_paths(model: nn.Module, parents: Iterable[nn.Module]) -> list[str]:
    notes = []
    names = {id(m): n for n, m in model.named_modules()}
    for parent in parents:
        if hasattr(parent, "activation_relu_or_gelu"):
            flag = _fast_path_flag(parent.activation)
            if flag != parent.activation_relu_or_gelu:
                parent.activation_relu_or_gelu = flag
                if flag == 0:
                    notes.append(
                        f"{type(parent).__name__} {names.get(id(parent), '?')!r}: PyTorch's fused inference fast path "
                        "(native ReLU/GELU) switched off, so the new activation also runs in eval mode"
                    )
    for name, module in model.named_modules():
        if isinstance(module, nn.TransformerEncoder) and getattr(module, "use_nested_tensor", False):
            if any(getattr(layer, "activation_relu_or_gelu", 1) == 0 for layer in module.layers):
                module.use_nested_tensor = False
                notes.append(
                    f"TransformerEncoder {name or '<root>'!r}: nested-tensor fast path switched off (it needs the "
                    "layers' native activation)"
                )
    return notes


def _parameters_added(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def replace_activations(
    model: nn.Module,
    new: NewSpec,
    *,
    old: OldTypes | None = None,
    filter: SiteFilter | None = None,
    per_channel: bool = False,
    channel_dim: int | None = None,
    example_input: ExampleInput | None = None,
    copy: bool = False,
    warn: bool = True,
) -> ReplacementReport:
    """Replace the activations of ``model`` by fresh instances of ``new``.

    Finds activation modules anywhere in the model (nested modules,
    ``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) and activation
    functions held in module attributes (``nn.TransformerEncoderLayer``'s
    ``activation``), and puts a new module in each place. Every slot gets its
    own module, so no two sites share parameters by accident.

    Args:
        model: the model, changed in place (see ``copy``).
        new: what to put in: a registry name (``"srs"``), an ``nn.Module``
            subclass, a factory (``functools.partial(actlab.SRS, alpha=3.0)``),
            a tensor function (``torch.tanh``), a module instance (deep-copied
            per site), or a mapping from old class to any of these
            (``{nn.ReLU: "srs", nn.GELU: "pau"}``), whose keys then select the sites.
        old: the classes to replace, matched with ``isinstance``. Default:
            :data:`actlab.sites.HIDDEN_ACTIVATIONS` (ReLU, ReLU6, LeakyReLU,
            PReLU, RReLU, ELU, CELU, SELU, GELU, SiLU, Mish, Hardswish): hidden
            nonlinearities, not gates (Sigmoid, Tanh, ...); name those
            explicitly to replace them. Functional attributes match through
            the class they stand for (``F.relu`` → ``nn.ReLU``).
        filter: ``filter(name, old) -> bool`` selects sites by qualified name and
            old module (or function); e.g. the first N sites only.
        per_channel: give each new module one set of parameters per channel
            (``num_parameters=C`` and ``channel_dim``), where the new activation
            accepts ``num_parameters``. C and the channel axis come from a
            forward pass on ``example_input`` when given, else from the layer
            feeding the site as torch.fx or an ``nn.Sequential`` shows it
            (Linear/LayerNorm: last axis; Conv/BatchNorm/GroupNorm: axis 1).
            A site whose channels cannot be told is an error naming it.
        channel_dim: force this channel axis for every per-channel site.
        example_input: a tensor (or tuple of positional arguments) for one
            forward pass in eval mode, with the model's training flags and the
            CPU RNG restored afterwards: gives exact channel counts, call counts
            and functional calls for any forward. Without it torch.fx traces
            the model (and says so in the report when it cannot).
        copy: work on a deep copy and leave ``model`` untouched.
        warn: issue a ``UserWarning`` for shared call sites and functional
            calls not replaced (they are in the report either way).

    Returns:
        A :class:`ReplacementReport`; ``report.model`` is the changed model.

    Raises:
        ValueError: unknown activation name; a per-channel site whose channels
            cannot be inferred; the model itself is an activation. Nothing is
            changed when an error is raised.
        TypeError: ``new`` or ``old`` of the wrong kind.
    """
    rules = _Rules(new, old)
    if channel_dim is not None and (isinstance(channel_dim, bool) or not isinstance(channel_dim, int)):
        raise TypeError(f"channel_dim must be an integer axis, got {channel_dim!r}")
    if copy:
        model = copy_module.deepcopy(model)
    slots = _find_slots(model, rules, filter)

    function_slots = [(s.parent, s.attr) for s in slots if s.is_function]
    with probe_attributes(function_slots) as probes:
        watched = {id(s): (s.old if not s.is_function else probes[(id(s.parent), s.attr)]) for s in slots}
        analysis: CallAnalysis = analyse_calls(model, example_input, watched.values())

    planned: list[tuple[_Slot, nn.Module, list[Call] | None]] = []
    for slot in slots:
        calls = analysis.calls.get(id(watched[id(slot)]))
        kwargs = {}
        if per_channel and _accepts(slot.spec, "num_parameters"):
            try:
                kwargs = _per_channel_kwargs(slot, slot.spec, calls, model, channel_dim)
            except _ChannelError as err:
                raise ValueError(
                    f"per_channel=True: cannot tell the channel count of the activation at {slot.name!r} "
                    f"({_describe_old(slot)}): {err}. Nothing was changed."
                ) from None
        planned.append((slot, _build(slot, kwargs, model), calls))

    for slot, module, _ in planned:
        if slot.is_function:
            delattr(slot.parent, slot.attr)
        setattr(slot.parent, slot.attr, module)
    notes = _disable_native_fast_paths(model, {id(s.parent): s.parent for s, _, _ in planned}.values())

    sites = [_site_report(slot, module, calls) for slot, module, calls in planned]
    functional = [c for c in analysis.functional if issubclass(c.equivalent, rules.classes)]
    if analysis.problem:
        notes.append(
            f"{analysis.problem}: call counts and functional calls are unknown; pass example_input= to find them "
            "with a forward pass"
        )
    split = [s for s in sites if s.split_from]
    if split:
        notes.append(
            "one old module instance was registered at several places; each now has its own new module: "
            + "; ".join(f"{s.name!r} (with {', '.join(map(repr, s.split_from))})" for s in split)
        )
    report = ReplacementReport(model, sites, functional, analysis.method, notes)
    if warn and report.warnings():
        warnings.warn("replace_activations: " + " | ".join(report.warnings()), UserWarning, stacklevel=2)
    return report


def _describe_old(slot: _Slot) -> str:
    return activation_name(slot.old) if slot.is_function else type(slot.old).__name__


def _site_report(slot: _Slot, module: nn.Module, calls: list[Call] | None) -> ReplacedSite:
    num_parameters = getattr(module, "num_parameters", None)
    per_channel = isinstance(num_parameters, int) and num_parameters > 1
    return ReplacedSite(
        name=slot.name,
        old=_describe_old(slot),
        new=type(module).__name__,
        num_parameters=num_parameters if isinstance(num_parameters, int) else None,
        channel_dim=getattr(module, "channel_dim", 1) if per_channel else None,
        parameters_added=_parameters_added(module),
        # An instance split over several slots was counted as one: per slot unknown.
        calls=None if calls is None or slot.split_from else len(calls),
        split_from=slot.split_from,
        module=module,
    )
