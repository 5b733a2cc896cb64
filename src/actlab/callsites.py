"""How a model calls its activations: call counts, input layouts and functional calls.

Module surgery sees a model's *structure*; what the model *does* with it is in
``forward``. Two analyses recover that:

- a **forward pass** on an example input, with hooks on every module and a
  ``TorchFunctionMode`` (exact for that input, whatever the control flow);
- a **torch.fx symbolic trace** (no input needed, but it fails on forward
  code that branches on tensor values or shapes).

Both give, per activation module: how often ``forward`` calls it, the shape of
its input (forward pass only) and the layer that produced that input (a
Linear, Conv or norm layer, looked through dropout, identity and other
activations), which tells the channel count and axis; and the activations that
``forward`` calls as functions (``F.relu(x)``, ``torch.tanh(x)``,
``x.relu()``), which no module surgery can reach.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .sites import activation_name, functional_equivalent, is_activation

__all__ = [
    "FunctionalCall",
    "CallAnalysis",
    "analyse_calls",
    "find_functional_activations",
    "layer_channels",
    "is_transparent",
]

ExampleInput = Tensor | tuple | list


def layer_channels(layer: nn.Module) -> tuple[int, int] | None:
    """``(channels, channel_dim)`` of a layer's output, for the layers whose type says it.

    Convolutions and batch/instance/group norms put channels on axis 1; Linear,
    LayerNorm, RMSNorm and Embedding act on the last axis, so ``-1`` is right
    for ``(N, F)`` and ``(N, L, F)`` alike.
    """
    if isinstance(layer, (nn.Linear, nn.Bilinear)):
        return layer.out_features, -1
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer.out_channels, 1
    if isinstance(layer, nn.modules.batchnorm._NormBase):
        return layer.num_features, 1
    if isinstance(layer, nn.GroupNorm):
        return layer.num_channels, 1
    if isinstance(layer, (nn.LayerNorm, *_RMS_NORM)) and len(layer.normalized_shape) == 1:
        return layer.normalized_shape[0], -1
    if isinstance(layer, nn.Embedding):
        return layer.embedding_dim, -1
    return None


_RMS_NORM = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()


def is_transparent(module: nn.Module | None) -> bool:
    """Modules that pass the channel layout of their input through unchanged."""
    return module is None or isinstance(module, (nn.modules.dropout._DropoutNd, nn.Identity)) or is_activation(module)


@dataclass(frozen=True)
class FunctionalCall:
    """An activation called as a function in ``forward`` rather than through a module.

    Attributes:
        module: qualified name of the module whose ``forward`` makes the call
            (``""``: the model itself).
        module_type: that module's class name.
        function: the function as written (``"F.relu"``, ``"torch.tanh"``, ``"Tensor.relu"``).
        equivalent: the ``torch.nn`` class it stands for (``nn.ReLU``).
        calls: how often one forward makes it (``None`` where unknown).
        attribute: set when the function is held in a module attribute (e.g.
            ``nn.TransformerEncoderLayer.activation = F.relu``):
            :func:`actlab.replace_activations` can swap those.
    """

    module: str
    module_type: str
    function: str
    equivalent: type[nn.Module]
    calls: int | None
    attribute: str | None = None

    def __str__(self) -> str:
        where = f"{self.module!r} ({self.module_type})" if self.module else f"the model ({self.module_type})"
        held = f" held in attribute {self.attribute!r}" if self.attribute else ""
        times = "" if self.calls is None else f", {self.calls} call{'s' if self.calls != 1 else ''} per forward"
        return f"{self.function}{held} in {where}{times}"


@dataclass(frozen=True)
class Call:
    """One call of an activation module: its input's shape (``None`` when traced
    symbolically) and the layer that produced the input (``None``: unknown)."""

    shape: tuple[int, ...] | None
    producer: nn.Module | None


@dataclass
class CallAnalysis:
    """What one analysis found (see the module docstring)."""

    #: ``"forward pass"``, ``"torch.fx"``, or ``""`` when no analysis succeeded.
    method: str
    #: Calls of each watched module, keyed by ``id(module)``; a watched module
    #: missing here has an unknown call count (e.g. it sits inside a module that
    #: torch.fx does not trace into).
    calls: dict[int, list[Call]] = field(default_factory=dict)
    functional: list[FunctionalCall] = field(default_factory=list)
    #: Why the analysis failed, when it did.
    problem: str | None = None


def _first_tensor(args: tuple, kwargs: dict) -> Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


def _as_args(example_input: ExampleInput) -> tuple:
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


class _ForwardRecorder(TorchFunctionMode):
    """Hooks on every module (a stack of the modules running, the calls of the
    watched ones, who produced each tensor) and functional activation calls."""

    def __init__(self, model: nn.Module, watched: set[int]):
        super().__init__()
        self.names = {id(m): name for name, m in model.named_modules()}
        self.watched = watched
        self.calls: dict[int, list[Call]] = {i: [] for i in watched}
        self.functional: Counter[tuple[str, str, Any]] = Counter()
        self.stack: list[tuple[nn.Module, Tensor | None]] = []
        # id(tensor) -> (tensor, producing layer). Holding the tensor keeps its
        # id from being reused by another tensor during the pass.
        self.producers: dict[int, tuple[Tensor, nn.Module | None]] = {}
        self.handles = []
        for m in model.modules():
            self.handles.append(m.register_forward_pre_hook(self._enter, with_kwargs=True))
            self.handles.append(m.register_forward_hook(self._leave, always_call=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _producer(self, x: Tensor | None) -> nn.Module | None:
        entry = self.producers.get(id(x)) if x is not None else None
        return entry[1] if entry is not None and entry[0] is x else None

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = _first_tensor(args, kwargs)
        self.stack.append((module, x))
        if id(module) in self.watched:
            self.calls[id(module)].append(Call(None if x is None else tuple(x.shape), self._producer(x)))

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        _, x = self.stack.pop()
        if not isinstance(output, Tensor):
            return
        if layer_channels(module) is not None:
            producer = module
        elif is_transparent(module):
            producer = self._producer(x)
        else:
            producer = None
        self.producers[id(output)] = (output, producer)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        equivalent = functional_equivalent(func)
        if equivalent is not None and self.stack:
            owner = self.stack[-1][0]
            # Calls inside an activation module are its own implementation.
            if not is_activation(owner):
                self.functional[(self.names.get(id(owner), "?"), type(owner).__name__, func)] += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _evaluation(model: nn.Module) -> Iterator[None]:
    """Eval mode (no batch-norm statistics updated), the CPU RNG left as it was,
    gradients on (as in training: this keeps PyTorch's fused inference fast
    paths, which bypass the activation modules, out of the way)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _forward_analysis(model: nn.Module, example_input: ExampleInput, watched: set[int]) -> CallAnalysis:
    recorder = _ForwardRecorder(model, watched)
    try:
        with _evaluation(model), recorder:
            model(*_as_args(example_input))
    finally:
        recorder.remove()
    functional = [
        FunctionalCall(name, type_name, activation_name(fn), functional_equivalent(fn), n)
        for (name, type_name, fn), n in recorder.functional.items()
    ]
    return CallAnalysis("forward pass", recorder.calls, functional)


class _ActivationLeafTracer(torch.fx.Tracer):
    """Treats activation modules as leaves: their internals are theirs, not the model's."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_activation(m) or super().is_leaf_module(m, module_qualified_name)


def _fx_producer(model: nn.Module, node: Any) -> nn.Module | None:
    while isinstance(node, torch.fx.Node) and node.op == "call_module":
        module = model.get_submodule(node.target)
        if layer_channels(module) is not None:
            return module
        if not is_transparent(module) or not node.args:
            return None
        node = node.args[0]
    return None


def _fx_analysis(model: nn.Module, watched: set[int]) -> CallAnalysis:
    try:
        graph = _ActivationLeafTracer().trace(model)
    except Exception as err:  # fx raises many types (TraceError, TypeError, ...)
        first_line = (str(err).strip().splitlines() or [""])[0]
        return CallAnalysis("", problem=f"torch.fx could not trace the model ({type(err).__name__}: {first_line})")
    calls: dict[int, list[Call]] = {}
    called: set[str] = set()
    functional: Counter[tuple[str, str, Any]] = Counter()
    for node in graph.nodes:
        if node.op == "call_module":
            called.add(node.target)
            module = model.get_submodule(node.target)
            if id(module) in watched:
                producer = _fx_producer(model, node.args[0]) if node.args else None
                calls.setdefault(id(module), []).append(Call(None, producer))
        elif node.op in ("call_function", "call_method") and functional_equivalent(node.target) is not None:
            stack = node.meta.get("nn_module_stack") or {}
            name, owner = next(reversed(stack.values())) if stack else ("", type(model))
            functional[(name, owner.__name__, node.target)] += 1
    # Watched modules that fx never reached are called 0 times, unless they sit
    # inside a leaf module (a torch.nn container fx does not enter): unknown.
    for name, module in model.named_modules():
        if id(module) in watched and id(module) not in calls:
            inside_leaf = any(name.startswith(leaf + ".") for leaf in called)
            if not inside_leaf:
                calls[id(module)] = []
    items = [
        FunctionalCall(
            name,
            type_name,
            f"Tensor.{fn}" if isinstance(fn, str) else activation_name(fn),
            functional_equivalent(fn),
            n,
        )
        for (name, type_name, fn), n in functional.items()
    ]
    return CallAnalysis("torch.fx", calls, items)


def analyse_calls(
    model: nn.Module, example_input: ExampleInput | None = None, watched: Iterable[nn.Module] = ()
) -> CallAnalysis:
    """Analyse how ``model`` calls the ``watched`` modules and functional activations.

    With ``example_input`` (a tensor, or a tuple of positional arguments) one
    forward pass runs in eval mode, the model's training flags and the CPU RNG
    restored afterwards; without it, torch.fx traces ``forward`` symbolically,
    and a failure is reported in :attr:`CallAnalysis.problem` rather than raised.
    """
    ids = {id(m) for m in watched}
    if example_input is not None:
        return _forward_analysis(model, example_input, ids)
    return _fx_analysis(model, ids)


@contextlib.contextmanager
def probe_attributes(slots: Iterable[tuple[nn.Module, str]]) -> Iterator[dict[tuple[int, str], nn.Module]]:
    """Temporarily wrap function-valued attributes (``layer.activation = F.relu``)
    in modules, so that the analyses see their calls; restored on exit."""
    from .registry import FunctionalActivation

    probes: dict[tuple[int, str], nn.Module] = {}
    originals = []
    try:
        for parent, attr in slots:
            fn = getattr(parent, attr)
            probe = FunctionalActivation(fn)
            originals.append((parent, attr, fn))
            setattr(parent, attr, probe)
            probes[(id(parent), attr)] = probe
        yield probes
    finally:
        for parent, attr, fn in reversed(originals):
            delattr(parent, attr)
            setattr(parent, attr, fn)


def function_attributes(model: nn.Module) -> list[tuple[str, nn.Module, str, Callable]]:
    """``(qualified name, owner, attribute, function)`` of every activation function held in a module attribute."""
    found = []
    for owner_name, owner in model.named_modules():
        if is_activation(owner):  # e.g. the function a FunctionalActivation wraps
            continue
        for attr, value in vars(owner).items():
            if attr.startswith("_") or isinstance(value, (nn.Module, type)) or not callable(value):
                continue
            if functional_equivalent(value) is not None:
                found.append((f"{owner_name}.{attr}" if owner_name else attr, owner, attr, value))
    return found


def find_functional_activations(
    model: nn.Module,
    example_input: ExampleInput | None = None,
    *,
    old: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
) -> list[FunctionalCall]:
    """The activations ``model`` applies as functions, which module surgery cannot swap.

    Lists calls such as ``F.relu(x)``, ``torch.tanh(x)`` or ``x.relu()`` made in
    the ``forward`` of the model or its submodules (calls inside activation
    modules are their implementation and not listed), and activation functions
    held in module attributes (``nn.TransformerEncoderLayer``'s default
    ``activation=F.relu``), which :func:`actlab.replace_activations` does swap.

    Args:
        model: the model.
        example_input: a tensor or tuple of positional arguments for one forward
            pass (exact for that input). Without it, torch.fx traces the model
            symbolically: no input needed, but models whose forward branches on
            tensor values or shapes cannot be traced, and calls inside
            ``torch.nn`` container modules (which fx does not enter) are not seen.
        old: only report activations standing for these ``torch.nn`` classes.

    Raises:
        RuntimeError: torch.fx could not trace the model (pass ``example_input``).
    """
    attributes = function_attributes(model)
    with probe_attributes((owner, attr) for _, owner, attr, _ in attributes) as probes:
        analysis = analyse_calls(model, example_input, probes.values())
    if analysis.problem:
        raise RuntimeError(f"{analysis.problem}; pass example_input= to find the calls with a forward pass instead")
    found = list(analysis.functional)
    for name, owner, attr, fn in attributes:
        owner_name = name.rpartition(".")[0]
        recorded = analysis.calls.get(id(probes[(id(owner), attr)]))
        found.append(
            FunctionalCall(
                owner_name,
                type(owner).__name__,
                activation_name(fn),
                functional_equivalent(fn),
                None if recorded is None else len(recorded),
                attribute=attr,
            )
        )
    if old is not None:
        found = [c for c in found if issubclass(c.equivalent, old)]
    return found
