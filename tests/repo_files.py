"""Loading the repository's scripts and benchmarks (not packages) as modules, for their tests."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

REPO = pathlib.Path(__file__).resolve().parent.parent


def load(relative_path: str) -> ModuleType:
    """Import ``REPO/relative_path`` (e.g. ``"scripts/fit_pau_presets.py"``) as a module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
