"""The Triton kernels without a GPU: run in Triton's CPU interpreter, and compiled for a real GPU target.

The interpreter must be switched on before Triton decorates any kernel, so the
cases run in a subprocess with ``TRITON_INTERPRET=1`` (tests/fastpath_cases.py):
every elementwise op, every layout (shared, rows, cols, channels_last,
non-dense), float32/bfloat16/float16, NaN/±Inf inputs, empty inputs and the
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


@pytest.fixture(scope="module")
def interpreter_failures() -> dict[str, list[str]]:
    script = Path(__file__).with_name("fastpath_cases.py")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": _pythonpath()}
    proc = subprocess.run(
        [sys.executable, str(script), *ELEMENTWISE], env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r["name"]: r["failures"] for r in map(json.loads, proc.stdout.splitlines())}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_match_reference_in_interpreter(interpreter_failures, name):
    assert name in interpreter_failures, f"{name} was not run"
    assert interpreter_failures[name] == [], "\n".join(interpreter_failures[name])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_triton_kernels_compile_for_gpu(name):
    from actlab.kernels import triton_kernels

    op = actlab.create(name).op
    triton_kernels.build(op, arch=90, dtype=torch.float32, kind="rows")
    triton_kernels.build(op, arch=80, dtype=torch.bfloat16, kind="cols")
