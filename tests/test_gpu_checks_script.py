"""scripts/gpu_checks.sh: the one command that runs every GPU check (CI has no GPU to run it on)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from .repo_files import REPO

SCRIPT = REPO / "scripts" / "gpu_checks.sh"


def test_script_is_valid_bash_and_names_every_step():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    for command in ("-m gpu tests", "benchmarks/speed.py --device cuda", "benchmarks/ditac_speed.py --device cuda"):
        assert command in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_with_a_clear_message(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    out = tmp_path / "results"
    result = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "sees no CUDA device" in result.stderr and "NVIDIA GPU" in result.stderr
    assert (out / "environment.txt").read_text().startswith("torch ")
    assert not (REPO / "tmp").exists()  # the output folder is used as given, never under the checkout
