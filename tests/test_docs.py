"""The README stays in step with the registry."""

import pathlib
import re

import actlab

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_table_lists_every_registered_activation():
    text = README.read_text(encoding="utf-8")
    table = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    listed = set(re.findall(r"`([a-z0-9_]+)`", table))
    missing = set(actlab.list_activations()) - listed
    assert not missing, f"README activation table lacks: {sorted(missing)}"


def test_readme_starts_with_the_two_commands():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.strip()]
    commands = [line for line in lines[:8] if line.startswith("./scripts/setup.sh")]
    assert len(commands) == 2 and commands[1].endswith("-m pytest")
    assert commands[0].endswith("actlab compare"), "the main job is the lab's comparison on the default dataset"
