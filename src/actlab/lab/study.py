"""The study driver: validate everything, skip finished runs, execute the rest, store, report.

Only this driver writes the results store; executors just return results. The
order of work makes failures cheap and results safe:

1. validate the whole configuration before any training (each activation
   created once, each task's data loaded once, each model built once), so a
   typo fails in seconds with a clear message;
2. look up the finished runs in the store and skip them (resume);
3. execute the remaining runs and store each result in its own transaction the
   moment it arrives, so an interruption loses at most the runs in flight;
4. analyse the study's runs and write the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import ComparisonTable, analyse
from .config import ActivationChoice, ConfigError, RunSpec, StudyConfig
from .executors import EventCallback, Executor, make_executor, plan_workers
from .runner import RunResult
from .store import ResultStore

__all__ = ["StudyOutcome", "prepare_study", "run_study", "default_out_dir", "ResultCallback"]

#: ``on_result(spec, result, stored)`` after each run (``stored`` is False for a duplicate).
ResultCallback = Callable[[RunSpec, RunResult, bool], None]


@dataclass
class StudyOutcome:
    """What a study did: its runs, how many were skipped/executed/failed, its tables and report."""

    config: StudyConfig
    out_dir: Path
    specs: list[RunSpec]
    skipped: int = 0
    executed: int = 0
    failed: int = 0
    tables: list[ComparisonTable] = field(default_factory=list)
    report: tuple[Path, Path] | None = None


def _check_activation(choice: ActivationChoice) -> None:
    try:
        choice.create()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"activation {choice.label}: {err}") from None


def _load_task(name: str, data_dir: str | None, seed: int, limit: int | None):
    from .tasks import DatasetFormatError, DatasetNotFoundError, get_task

    try:
        task = get_task(name)
    except (KeyError, ValueError) as err:
        raise ConfigError(str(err.args[0]) if err.args else str(err)) from None
    try:
        return task.load(data_dir=data_dir, seed=seed, limit=limit)
    except (DatasetNotFoundError, DatasetFormatError) as err:
        raise ConfigError(f"task {name}: {err}") from None


def _check_model(label: str, name: str, data, choice: ActivationChoice, options: dict) -> None:
    from .models import build_model

    try:
        build_model(name, data, choice.create, **options)
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(f"model {label}: {err.args[0] if err.args else err}") from None


def prepare_study(config: StudyConfig) -> list[RunSpec]:
    """Validate ``config`` completely and expand it into run specs (no training).

    Raises:
        ConfigError: anything that would make a run fail for a reason the user
            can fix (unknown names, bad options, missing or damaged data, no GPU).
    """
    from .models import default_model

    config.validate()
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device cuda requested, but no CUDA device is available")
    choices = config.activation_choices()
    for choice in choices:
        _check_activation(choice)
    models_for_task: dict[str, list[str]] = {}
    for task in config.tasks:
        training = config.training_for(task)
        data = _load_task(task, config.data_dir_for(task), config.seeds[0], training["limit"])
        models = config.models if config.models is not None else [default_model(task)]
        models_for_task[task] = list(models)
        for model in config.model_choices(models):
            _check_model(model.label, model.name, data, choices[0], config.options_for(model))
    return config.run_specs(models_for_task)


def default_out_dir(specs: Sequence[RunSpec]) -> Path:
    """``runs/<task>-<model>`` (several tasks or models are joined with ``+``)."""
    tasks = "+".join(dict.fromkeys(s.task for s in specs))
    models = "+".join(dict.fromkeys(s.model for s in specs))
    return Path("runs") / f"{tasks}-{models}"


def run_study(
    config: StudyConfig,
    *,
    executor: Executor | None = None,
    retry_failed: bool = False,
    on_start: Callable[[list[RunSpec], int, Executor | None], None] | None = None,
    on_event: EventCallback | None = None,
    on_result: ResultCallback | None = None,
    report: bool = True,
    command: str | None = None,
) -> StudyOutcome:
    """Run a study (resuming from the store in its output folder) and report on it.

    Args:
        config: the study.
        executor: where runs execute; default: one process per core (at most one
            per pending run), or this process when a single worker suffices.
        retry_failed: run again the runs stored as failed (otherwise they are skipped).
        on_start: ``on_start(pending_specs, skipped, executor)`` once the work is
            known (``executor`` is ``None`` when nothing is pending).
        on_event: progress of individual runs (see :class:`~actlab.lab.executors.RunEvent`).
        on_result: called after each run is stored.
        report: write ``report.md`` and ``report.html`` into the output folder.
        command: the command line, quoted in the report.
    """
    specs = prepare_study(config)
    out_dir = Path(config.out) if config.out else default_out_dir(specs)
    outcome = StudyOutcome(config, out_dir, specs)
    with ResultStore(out_dir) as store:
        done = store.statuses(s.config_hash() for s in specs)
        skip = {h for h, status in done.items() if status == "ok" or not retry_failed}
        pending = [s for s in specs if s.config_hash() not in skip]
        outcome.skipped = len(specs) - len(pending)
        store.set_meta("study", config.to_dict())
        if pending and executor is None:
            executor = make_executor(*plan_workers(config.workers, config.threads, len(pending)))
        if on_start is not None:
            on_start(pending, outcome.skipped, executor if pending else None)
        if pending:
            by_hash = {s.config_hash(): s for s in pending}
            for result in executor.run(pending, on_event):
                spec = by_hash[result.config_hash]
                stored = store.record(spec, result)
                outcome.executed += 1
                outcome.failed += not result.ok
                if on_result is not None:
                    on_result(spec, result, stored)
        runs = store.runs(s.config_hash() for s in specs)
    order = [c.label for c in config.activation_choices()]
    outcome.tables = analyse(runs, config.baseline_choice().label, config.test, order)
    if report and outcome.tables:
        from .report import write_report

        outcome.report = write_report(out_dir, outcome.tables, command=command)
    return outcome
