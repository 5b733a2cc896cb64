"""The README's "Using actlab in your model" snippets run as written, so the README cannot rot.

The snippets run in order in one namespace, in a temporary directory (they
write model files). A snippet with an ``if __name__ == "__main__":`` block is a
script (it spawns processes, whose target functions must be importable): it
runs as a file in a subprocess instead.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import actlab

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Using actlab in your model"


def snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README lacks the section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_covers_surgery_groups_export_func_checkpoints_and_ddp():
    code = "\n".join(snippets())
    for needle in (
        "replace_activations",
        "param_groups",
        "torch.onnx.export",
        "torch.export.export",
        "weights_only=True",
        "DistributedDataParallel",
        "vmap(grad(",
    ):
        assert needle in code, needle


def _is_script(snippet: str) -> bool:
    return 'if __name__ == "__main__":' in snippet


def test_inline_snippets_run(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the export snippet needs the `export` extra")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    inline = [s for s in snippets() if not _is_script(s)]
    assert len(inline) >= 4
    for i, snippet in enumerate(inline):
        try:
            exec(compile(snippet, f"README.md snippet {i + 1}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"README snippet {i + 1} failed: {err!r}\n{snippet}") from err
    assert (tmp_path / "model.onnx").exists() and (tmp_path / "model.pt").exists()


def test_script_snippets_run(tmp_path):
    scripts = [s for s in snippets() if _is_script(s)]
    assert scripts, "the distributed example is a script"
    package_root = pathlib.Path(actlab.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")])),
        "GLOO_SOCKET_IFNAME": "lo" if sys.platform.startswith("linux") else "lo0",  # loopback only
        "OMP_NUM_THREADS": "1",
    }
    for i, snippet in enumerate(scripts):
        path = tmp_path / f"readme_script_{i}.py"
        path.write_text(snippet, encoding="utf-8")
        done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README script {i + 1} failed:\n{done.stderr[-3000:]}"
