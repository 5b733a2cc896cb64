"""What a study is: the grid of runs, each run's full configuration, and its hash.

A :class:`RunSpec` holds everything that influences one run's result; its
:meth:`~RunSpec.config_hash` (SHA-256 of canonical JSON) is the run's identity
in the results store, so the same configuration is never trained or stored
twice. A :class:`StudyConfig` describes a whole study (tasks × models ×
activations × seeds plus the training settings) and expands into run specs.

What the hash covers, and what it deliberately leaves out:

* covered: task, ``limit``, model and its options, activation name and keyword
  arguments, seed, epochs, batch size, optimizer, learning rate, weight decay,
  gradient clipping, device, and :data:`RUN_PROTOCOL`;
* left out: ``data_dir`` (where the files are does not change them), the thread
  count (it can change float rounding, not the experiment) and the actlab
  version. A version bump must not throw away hours of finished runs for a
  change that does not touch training; a change that *does* alter results (the
  training loop, a metric, a data split) bumps :data:`RUN_PROTOCOL`, which
  invalidates exactly what it should. The version is stored with every run and
  ``actlab results`` warns when one study mixes versions.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_PROTOCOL",
    "ConfigError",
    "ActivationChoice",
    "RunSpec",
    "StudyConfig",
    "parse_activation",
    "parse_activation_list",
    "ModelChoice",
    "parse_model",
    "call_label",
    "split_top_level",
    "parse_option",
    "canonical_json",
    "load_config_file",
    "SEED_ACTIVATIONS",
    "BASELINE_ACTIVATIONS",
    "default_activations",
    "OPTIMIZERS",
    "TESTS",
    "DEVICES",
    "DEFAULT_TRAINING",
    "TASK_DEFAULTS",
]

#: Version of the training protocol (loop, metrics, splits) that run hashes
#: include. Bump it when a change makes old results incomparable with new ones.
RUN_PROTOCOL = 1

#: The activations the seed papers propose, in the order the default study shows them.
SEED_ACTIVATIONS = ("srs", "serf", "zorro", "ditac", "slaf")
#: The standard activations every default study compares against.
BASELINE_ACTIVATIONS = ("relu", "gelu", "silu")

OPTIMIZERS = ("adam", "adamw", "sgd")
TESTS = ("welch", "paired", "wilcoxon")
DEVICES = ("cpu", "cuda")

#: Training settings used when neither the task, the config file nor a flag sets them.
DEFAULT_TRAINING: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "grad_clip": None,
    "limit": None,
}


#: Built-in per-task defaults where the generic ones do not fit the task's size.
#: digits: validation accuracy of the default MLP plateaus at 20-30 epochs (Adam,
#: lr 1e-3). Image sets: one epoch of the default CNN over 60 000 images takes
#: minutes on a CPU core, so fewer epochs and larger batches.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30},
    "fashion_mnist": {"epochs": 5, "batch_size": 128},
    "mnist": {"epochs": 5, "batch_size": 128},
    "cifar10": {"epochs": 10, "batch_size": 128},
}


class ConfigError(ValueError):
    """A study configuration that cannot be run; the message says what to change."""


# -- canonical JSON and option values ------------------------------------------------------
def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready plain data (tuples become lists); rejects what JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: option names must be strings, got {k!r}")
            out[k] = _plain(v, where)
        return out
    raise ConfigError(f"{where}: {value!r} ({type(value).__name__}) is not a number, string, boolean, list or table")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, no NaN (the basis of config hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE a Python literal (``64``, ``[32, 64]``, ``True``) or else a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"option {text!r} must look like KEY=VALUE, e.g. hidden=128 or channels=[16,32]")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, _plain(value, f"option {key}")


# -- activation and model choices ------------------------------------------------------------
def call_label(name: str, kwargs: Mapping[str, Any]) -> str:
    """``name`` alone, or ``name(key=value,...)`` with the keywords sorted (the label of a choice)."""
    if not kwargs:
        return name
    return f"{name}(" + ",".join(f"{k}={v!r}" for k, v in sorted(kwargs.items())) + ")"


@dataclass(frozen=True)
class ActivationChoice:
    """One activation of a study: a registry name plus constructor keyword arguments.

    ``label`` identifies it in tables and reports: the name alone, or
    ``name(key=value,...)`` with the keywords sorted, so ``srs(beta=3,alpha=5)``
    and ``srs(alpha=5, beta=3)`` are the same choice.
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return call_label(self.name, self.kwargs)

    def create(self):
        """A fresh module (one per activation site)."""
        import actlab

        return actlab.create(self.name, **self.kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(sorted(self.kwargs.items()))}


@dataclass(frozen=True)
class ModelChoice:
    """One model arm of a study: a model name plus options that only this arm uses.

    ``mlp(depth=8)`` and ``mlp(depth=16)`` in one study are two arms of the same
    model: each forms its own comparison. Inline options override the study's
    ``model_options`` for that model (they are what defines the arm).
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return call_label(self.name, self.kwargs)


def _canonical_activation_name(name: str) -> str:
    import actlab

    try:
        return actlab.info(name).name
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


def _parse_call(text: str, what: str, example: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name(key=literal, ...)"`` → ``(name, kwargs)``; ``what`` names the thing in errors."""
    text = text.strip()
    name, paren, rest = text.partition("(")
    name = name.strip()
    if not name:
        raise ConfigError(f"empty {what} name in {text!r}")
    kwargs: dict[str, Any] = {}
    if paren:
        if not rest.rstrip().endswith(")"):
            raise ConfigError(f"{what} {text!r}: missing closing parenthesis")
        try:
            call = ast.parse(f"f({rest}", mode="eval").body
        except SyntaxError:
            raise ConfigError(
                f"{what} {text!r}: cannot parse the arguments; write them as name(key=value, ...)"
            ) from None
        if call.args:
            raise ConfigError(f"{what} {text!r}: arguments must be given by keyword, e.g. {example}")
        for kw in call.keywords:
            if kw.arg is None:
                raise ConfigError(f"{what} {text!r}: **kwargs are not supported")
            try:
                kwargs[kw.arg] = _plain(ast.literal_eval(kw.value), f"{what} {text!r}")
            except ValueError:
                raise ConfigError(
                    f"{what} {text!r}: the value of {kw.arg} must be a literal (number, string, list)"
                ) from None
    return name, kwargs


def parse_activation(text: str) -> ActivationChoice:
    """``"srs"`` or ``"srs(alpha=5, beta=3)"`` → :class:`ActivationChoice` (name checked against the registry).

    Keyword values must be Python literals; aliases resolve to the canonical name.
    """
    name, kwargs = _parse_call(text, "activation", "srs(alpha=5, beta=3)")
    return ActivationChoice(_canonical_activation_name(name), kwargs)


def parse_model(text: str) -> ModelChoice:
    """``"mlp"`` or ``"mlp(depth=8, batch_norm=True)"`` → :class:`ModelChoice`.

    The name and options are checked when the study is prepared (they need the task's data).
    """
    return ModelChoice(*_parse_call(text, "model", "mlp(depth=8)"))


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``relu,srs(alpha=5,beta=3)`` → 2 items."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced brackets in {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ConfigError(f"unbalanced brackets in {text!r}")
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


def parse_activation_list(spec: str | Sequence[str]) -> list[ActivationChoice]:
    """A comma list (or a list of strings) of activations; duplicates are an error."""
    texts = split_top_level(spec) if isinstance(spec, str) else [t for s in spec for t in split_top_level(s)]
    if not texts:
        raise ConfigError("no activation given")
    choices, seen = [], set()
    for t in texts:
        c = parse_activation(t)
        if c.label in seen:
            raise ConfigError(f"activation {c.label!r} is listed twice")
        seen.add(c.label)
        choices.append(c)
    return choices


def default_activations() -> list[str]:
    """The registered seed activations (SRS, Serf, Zorro, DiTAC, SLAF) plus ReLU, GELU and SiLU."""
    import actlab

    registered = set(actlab.list_activations())
    return [a for a in SEED_ACTIVATIONS if a in registered] + list(BASELINE_ACTIVATIONS)


# -- one run ---------------------------------------------------------------------------------
#: RunSpec fields that do not change what is being measured (see the module docstring).
_UNHASHED = ("data_dir", "threads")


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to execute one run; plain data, picklable, JSON round-trippable."""

    task: str
    model: str
    activation: ActivationChoice
    seed: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adam"
    grad_clip: float | None = None
    limit: int | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    data_dir: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        # 1 and 1.0 are the same learning rate and must give the same hash.
        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    def hashed_fields(self) -> dict[str, Any]:
        """The configuration the hash is computed from."""
        d = self.to_dict()
        for k in _UNHASHED:
            d.pop(k)
        d["protocol"] = RUN_PROTOCOL
        return d

    def config_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`hashed_fields`."""
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()

    def group_key(self) -> str:
        """Identifies the comparison this run belongs to: everything but the activation and the seed."""
        d = self.hashed_fields()
        d.pop("activation")
        d.pop("seed")
        return hashlib.sha256(canonical_json(d).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["activation"] = self.activation.to_dict()
        d["model_options"] = dict(sorted(self.model_options.items()))
        return _plain(d, "run")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        d = dict(d)
        act = d.pop("activation")
        d.pop("protocol", None)
        return cls(activation=ActivationChoice(act["name"], dict(act.get("kwargs", {}))), **d)

    @property
    def label(self) -> str:
        return f"{self.task}/{self.model}/{self.activation.label}/seed{self.seed}"


# -- a study ----------------------------------------------------------------------------------
#: Settings that may differ per task (``[task_settings.<task>]`` in a config file).
TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "grad_clip", "limit")

_STUDY_KEYS = {
    "tasks",
    "models",
    "activations",
    "baseline",
    "seeds",
    "device",
    "data_dir",
    "workers",
    "threads",
    "out",
    "test",
    "model_options",
    "task_settings",
    *TRAINING_KEYS,
}


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _non_negative_float(name: str, value: Any, *, positive: bool = False, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _check_training(where: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(settings) - set(TRAINING_KEYS) - {"data_dir"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {sorted(unknown)}; allowed: {', '.join(TRAINING_KEYS)}, data_dir"
        )
    out = dict(settings)
    if "epochs" in out:
        _positive_int(f"{where}: epochs", out["epochs"])
    if "batch_size" in out:
        _positive_int(f"{where}: batch_size", out["batch_size"])
    if "limit" in out:
        _positive_int(f"{where}: limit", out["limit"], allow_none=True)
    if "lr" in out:
        out["lr"] = _non_negative_float(f"{where}: lr", out["lr"], positive=True)
    if "weight_decay" in out:
        out["weight_decay"] = _non_negative_float(f"{where}: weight_decay", out["weight_decay"])
    if "grad_clip" in out:
        out["grad_clip"] = _non_negative_float(f"{where}: grad_clip", out["grad_clip"], positive=True, allow_none=True)
    if "optimizer" in out and out["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{where}: optimizer must be one of {', '.join(OPTIMIZERS)}, got {out['optimizer']!r}")
    return out


@dataclass
class StudyConfig:
    """A study: the grid ``tasks × models × activations × seeds`` and how to train and compare.

    ``models=None`` picks each task's default model. A task's training settings
    come from ``task_settings[task]``, then the study's own values (those not
    ``None``), then :data:`TASK_DEFAULTS`, then :data:`DEFAULT_TRAINING`.
    ``workers=None`` uses one process per CPU core (at most one per run);
    ``threads=None`` shares the cores evenly between the workers.
    """

    tasks: list[str] = field(default_factory=lambda: ["digits"])
    models: list[str] | None = None
    activations: list[str] = field(default_factory=default_activations)
    baseline: str = "relu"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    grad_clip: float | None = None
    limit: int | None = None
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    data_dir: str | None = None
    workers: int | None = None
    threads: int | None = None
    out: str | None = None
    test: str = "welch"

    # -- validation --------------------------------------------------------------------
    def validate(self) -> None:
        """Check types and names that need no data or model; raises :class:`ConfigError`."""
        if not self.tasks:
            raise ConfigError("no task given")
        if self.models is not None and not self.models:
            raise ConfigError("no model given")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks lists a name twice: {self.tasks}")
        labels = [c.label for c in self.model_choices(self.models or [])]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"models lists a model twice: {labels}")
        if not self.seeds:
            raise ConfigError("no seed given")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ConfigError(f"seeds must be non-negative integers, got {s!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"a seed is listed twice: {self.seeds}")
        _check_training("study", {k: getattr(self, k) for k in TRAINING_KEYS if getattr(self, k) is not None})
        for task, settings in self.task_settings.items():
            if not isinstance(settings, Mapping):
                raise ConfigError(f"task_settings.{task} must be a table of settings")
            _check_training(f"task_settings.{task}", settings)
        for model, options in self.model_options.items():
            if not isinstance(options, Mapping):
                raise ConfigError(f"model_options.{model} must be a table of options")
            _plain(options, f"model_options.{model}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.test not in TESTS:
            raise ConfigError(f"test must be one of {', '.join(TESTS)}, got {self.test!r}")
        _positive_int("workers", self.workers, allow_none=True)
        _positive_int("threads", self.threads, allow_none=True)
        self.activation_choices()

    def activation_choices(self) -> list[ActivationChoice]:
        """The parsed activations, the baseline included (appended when not listed)."""
        choices = parse_activation_list(self.activations)
        base = self.baseline_choice()
        if base.label not in {c.label for c in choices}:
            choices.append(base)
        return choices

    def baseline_choice(self) -> ActivationChoice:
        return parse_activation(self.baseline)

    @staticmethod
    def model_choices(models: Sequence[str]) -> list[ModelChoice]:
        """``models`` (names, optionally with inline options) parsed."""
        return [parse_model(m) for m in models]

    def options_for(self, model: ModelChoice) -> dict[str, Any]:
        """The options of one model arm: ``model_options[name]`` updated with the arm's inline options."""
        return {**self.model_options.get(model.name, {}), **model.kwargs}

    # -- expansion ---------------------------------------------------------------------
    def training_for(self, task: str) -> dict[str, Any]:
        """The training settings of ``task``: its ``task_settings``, else the study's,
        else :data:`TASK_DEFAULTS`, else :data:`DEFAULT_TRAINING`."""
        per_task = self.task_settings.get(task, {})
        builtin = {**DEFAULT_TRAINING, **TASK_DEFAULTS.get(task, {})}
        out = {}
        for k in TRAINING_KEYS:
            if k in per_task:
                out[k] = per_task[k]
            else:
                v = getattr(self, k)
                out[k] = v if v is not None else builtin[k]
        return out

    def data_dir_for(self, task: str) -> str | None:
        return self.task_settings.get(task, {}).get("data_dir", self.data_dir)

    def run_specs(self, models_for_task: Mapping[str, Sequence[str]] | None = None) -> list[RunSpec]:
        """The grid, ordered task, model, seed, activation (each seed completes a comparison early).

        ``models_for_task`` gives the models of each task when :attr:`models` is
        ``None`` (the driver fills in each task's default model).
        """
        specs = []
        for task in self.tasks:
            models = self.models if self.models is not None else (models_for_task or {}).get(task)
            if not models:
                raise ConfigError(f"no model chosen for task {task!r}")
            training = self.training_for(task)
            for model in self.model_choices(models):
                options = self.options_for(model)
                for seed in self.seeds:
                    for act in self.activation_choices():
                        specs.append(
                            RunSpec(
                                task=task,
                                model=model.name,
                                activation=act,
                                seed=seed,
                                model_options=options,
                                device=self.device,
                                data_dir=self.data_dir_for(task),
                                threads=self.threads,
                                **training,
                            )
                        )
        return specs

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self), "study")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> StudyConfig:
        """Build from a mapping with the config-file keys (see ``docs/lab.md``)."""
        unknown = set(data) - _STUDY_KEYS
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {sorted(unknown)}; known keys: {', '.join(sorted(_STUDY_KEYS))}"
            )
        kw = dict(data)
        for key in ("tasks", "models"):
            if isinstance(kw.get(key), str):
                kw[key] = [kw[key]]
        if isinstance(kw.get("activations"), str):
            kw["activations"] = split_top_level(kw["activations"])
        if "seeds" in kw:
            kw["seeds"] = seed_list(kw["seeds"])
        config = cls(**kw)
        try:
            config.validate()
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        return config

    def merged(self, overrides: Mapping[str, Any]) -> StudyConfig:
        """A copy with ``overrides`` applied (``None`` values mean "not given" and are skipped).

        An overridden training setting (or ``data_dir``) also replaces the
        per-task values of ``task_settings``: a command-line flag always takes effect.
        """
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "model_options" in changes:
            merged_options = {m: dict(o) for m, o in self.model_options.items()}
            for model, options in changes["model_options"].items():
                merged_options.setdefault(model, {}).update(options)
            changes["model_options"] = merged_options
        overridden = set(changes) & {*TRAINING_KEYS, "data_dir"}
        if overridden:
            changes["task_settings"] = {
                task: {k: v for k, v in settings.items() if k not in overridden}
                for task, settings in changes.get("task_settings", self.task_settings).items()
            }
        return dataclasses.replace(self, **changes)


def seed_list(value: Any) -> list[int]:
    """``3`` → ``[0, 1, 2]``; a list is taken as the seeds themselves."""
    if isinstance(value, bool):
        raise ConfigError(f"seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        _positive_int("seeds", value)
        return list(range(value))
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return list(value)
    raise ConfigError(f"seeds must be a count or a list of integers, got {value!r}")


def load_config_file(path: str | os.PathLike) -> StudyConfig:
    """Read a study from a TOML (``.toml``) or JSON (``.json``) file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"config file {path} must end in .toml or .json")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        if suffix == ".json":
            data = json.loads(raw)
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ConfigError("reading TOML on Python 3.10 needs tomli: pip install 'actlab[lab]'") from None
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"config file {path} is not valid {suffix[1:].upper()}: {err}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a table of settings")
    return StudyConfig.from_dict(data, source=str(path))
