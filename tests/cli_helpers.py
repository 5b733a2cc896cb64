"""Running the ``actlab`` command as a user would: a separate process."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import actlab

PACKAGE_PARENT = str(pathlib.Path(actlab.__file__).resolve().parent.parent)


def cli_env(extra: dict | None = None) -> dict:
    """The environment for a subprocess that must import this actlab (installed or not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    env.update(extra or {})
    return env


def run_cli(*args: str, timeout: float = 300, cwd=None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "actlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(env),
    )
