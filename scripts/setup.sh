#!/usr/bin/env bash
# Create ./.venv (if missing) and install actlab in it, editable, with every extra
# (lab, plotting, export, distributed, tests). Versions are pinned by
# requirements/constraints.txt: in particular torch==2.13.0, whose CPU build lies
# on disk here, instead of a multi-GB CUDA build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# torch first, on its own, so that nothing later can pull another build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt torch
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[all]"
echo "actlab is installed in .venv ($(.venv/bin/python -c 'import actlab, torch; print("actlab", actlab.__version__, "/ torch", torch.__version__)'))"
