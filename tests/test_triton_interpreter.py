"""The Triton kernels without a GPU: run in Triton's CPU interpreter, and compiled for a real GPU target.

The interpreter must be switched on before Triton decorates any kernel, so the
cases run in a subprocess with ``TRITON_INTERPRET=1`` (tests/fastpath_cases.py):
every elementwise op, every layout (shared, rows, cols, channels_last,
non-dense) in float32, bfloat16/float16 in two layouts (all with ``-m slow``), NaN/±Inf inputs, empty inputs and the
saved-for-backward memory, against the reference. The interpreter accepts some
code that the GPU compiler rejects, so every kernel is also compiled to an
``sm_90`` and an ``sm_80`` binary here (Triton ships its own ``ptxas``). On a
machine with CUDA, tests/test_fastpath.py runs the same cases on the device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import actlab

from .fastpath_cases import ELEMENTWISE

pytest.importorskip("triton")


def _pythonpath() -> str:
    # The directory that contains the imported actlab (src/ in development, site-packages when installed).
    package_root = str(Path(actlab.__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return package_root + (os.pathsep + existing if existing else "")


def _run_interpreter(*flags: str) -> dict[str, list[str]]:
    """The cases of every op, in one interpreter process per CPU core (the interpreter is single-threaded)."""
    script = Path(__file__).with_name("fastpath_cases.py")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": _pythonpath()}
    workers = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 4))
    shares = [ELEMENTWISE[i::workers] for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *flags, *share],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
        if share
    ]
    results: dict[str, list[str]] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        assert proc.returncode == 0, err[-4000:]
        results.update((r["name"], r["failures"]) for r in map(json.loads, out.splitlines()))
    return results


@pytest.fixture(scope="module")
def interpreter_failures() -> dict[str, list[str]]:
    return _run_interpreter()


@pytest.fixture(scope="module")
def full_interpreter_failures() -> dict[str, list[str]]:
    return _run_interpreter("--full")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_match_reference_in_interpreter(interpreter_failures, name):
    assert name in interpreter_failures, f"{name} was not run"
    assert interpreter_failures[name] == [], "\n".join(interpreter_failures[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_match_reference_in_interpreter_in_every_dtype_and_layout(full_interpreter_failures, name):
    assert name in full_interpreter_failures, f"{name} was not run"
    assert full_interpreter_failures[name] == [], "\n".join(full_interpreter_failures[name])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_compile_for_gpu(name):
    from actlab.kernels import triton_kernels

    op = actlab.create(name).op
    triton_kernels.build(op, arch=90, dtype=torch.float32, kind="rows")
    triton_kernels.build(op, arch=80, dtype=torch.bfloat16, kind="cols")
