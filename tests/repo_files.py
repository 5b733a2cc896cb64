"""Loading the repository's scripts and benchmarks (not packages) as modules, for their tests."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

REPO = pathlib.Path(__file__).resolve().parent.parent


def load(relative_path: str) -> ModuleType:
    """Import ``REPO/relative_path`` (e.g. ``"scripts/fit_pau_presets.py"``) as a module.

    Its directory is on ``sys.path`` while it loads, as when Python runs it as a script, so that
    it can import its sibling modules (the benchmarks import ``_allocator``).
    """
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there while the class is built
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
