"""The lab: train, compare and report on activations.

Quick start::

    from actlab.lab import StudyConfig, run_study, load_results

    outcome = run_study(StudyConfig(tasks=["digits"], models=["mlp"],
                                    activations=["relu", "gelu", "srs"], seeds=[0, 1, 2]))
    print(outcome.report)                       # report.md, report.html
    runs = load_results(outcome.out_dir)        # every stored run

A single run is :func:`execute_run` of a :class:`RunSpec`. The command line
front end is ``actlab compare`` / ``actlab results`` (see ``docs/lab.md``).
Names are imported lazily, so ``import actlab.lab`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StudyConfig": "config",
    "RunSpec": "config",
    "ActivationChoice": "config",
    "ConfigError": "config",
    "load_config_file": "config",
    "parse_activation": "config",
    "RunResult": "runner",
    "execute_run": "runner",
    "Executor": "executors",
    "SerialExecutor": "executors",
    "LocalExecutor": "executors",
    "RunEvent": "executors",
    "make_executor": "executors",
    "DaskExecutor": "dask_executor",
    "ResultStore": "store",
    "StoredRun": "store",
    "StoreError": "store",
    "read_results": "store",
    "ComparisonTable": "analysis",
    "analyse": "analysis",
    "run_study": "study",
    "prepare_study": "study",
    "StudyOutcome": "study",
    "write_report": "report",
    "format_comparison": "report",
}

__all__ = sorted([*_EXPORTS, "load_results"])


def load_results(location) -> list:
    """Every run stored in an output folder: a list of :class:`StoredRun` (spec, result, time)."""
    from .store import read_results

    return read_results(location)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'actlab.lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
