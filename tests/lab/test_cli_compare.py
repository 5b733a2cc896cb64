"""``actlab compare`` / ``actlab results`` end to end, run as a user runs them (subprocesses).

The acceptance scenarios: the default code path completes on tiny settings, a
second invocation skips everything, a study whose driver is SIGKILLed mid-way
and then re-run ends with every run stored exactly once in a sound database,
and bad input (names, data folders, results files) fails fast with exit code 2.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import actlab
from actlab.cli import main

from ..cli_helpers import cli_env, run_cli

TINY = ["--epochs", "1", "--limit", "120", "--model-option", "hidden=8", "--quiet"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, timeout=300)


def db_rows(out: Path) -> list[tuple]:
    """The stored runs, read-only ([] while the driver is still creating the database)."""
    if not (out / "results.sqlite").exists():
        return []
    db = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT config_hash, activation, seed, status, created_at FROM runs").fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return []
        raise
    finally:
        db.close()


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_block(text: str) -> str:
    """The first comparison table printed (caption to the line before the blank after the rows)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("digits / mlp(hidden=8): test accuracy"))
    end = next(i for i in range(start + 3, len(lines)) if not lines[i].strip())
    return "\n".join(lines[start:end])


def test_default_study_completes_then_resumes_and_exports(tmp_path, capsys):
    expected = [a for a in ("srs", "serf", "zorro", "ditac", "slaf") if a in actlab.list_activations()]
    expected += ["relu", "gelu", "silu"]
    out = tmp_path / "study"
    first = cli("compare", "--seeds", "2", "--workers", "2", "--out", str(out), *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    n = 2 * len(expected)
    assert f"{n} runs: 0 already stored, {n} to run (2 workers x 1 thread)" in first.stdout
    assert first.stdout.count("digits/mlp/") == n  # one line per finished run (--quiet)
    rows = db_rows(out)
    assert sorted((a, s) for _, a, s, _, _ in rows) == sorted((a, s) for a in expected for s in (0, 1))
    assert {status for *_, status, _ in rows} == {"ok"}
    table = table_block(first.stdout)
    assert "relu (baseline)" in table and all(f" {a} " in table or f" {a}\n" in table for a in expected)
    assert "too few seeds for a significance test" in first.stdout  # 2 seeds: said plainly
    assert (out / "report.md").exists() and "data:image/png;base64," in (out / "report.html").read_text()
    assert f"report:  {out / 'report.md'}" in first.stdout

    second = cli("compare", "--seeds", "2", "--workers", "2", "--out", str(out), *TINY, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"{n} runs: {n} already stored, 0 to run" in second.stdout
    assert "digits/mlp/" not in second.stdout
    assert db_rows(out) == rows  # nothing re-run, nothing rewritten
    assert table_block(second.stdout) == table

    shown = cli("results", str(out), cwd=tmp_path)
    assert shown.returncode == 0 and table_block(shown.stdout) == table
    code, csv_text, _ = run_main(capsys, "results", str(out), "--format", "csv")
    summary = list(csv.DictReader(io.StringIO(csv_text)))
    assert code == 0 and sorted(r["activation"] for r in summary) == sorted(expected)
    assert next(r for r in summary if r["activation"] == "relu")["is_baseline"] == "True"
    code, json_text, _ = run_main(capsys, "results", str(out), "--format", "json", "--runs")
    runs = json.loads(json_text)
    assert code == 0 and len(runs) == n and {r["config_hash"] for r in runs} == {r[0] for r in rows}


def _children(pid: int) -> set[int]:
    kids = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(k) for k in (task / "children").read_text().split()}
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker processes from /proc")
def test_sigkill_of_the_driver_mid_study_then_rerun_stores_every_run_exactly_once(tmp_path):
    out = tmp_path / "killed"
    args = ["compare", "--activations", "relu,gelu,srs", "--seeds", "2", "--epochs", "20", "--limit", "400"]
    args += ["--model-option", "hidden=16", "--workers", "2", "--out", str(out), "--quiet", "--no-report"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "actlab", *args], env=cli_env(), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not db_rows(out):
            assert driver.poll() is None, "the study ended before it could be killed"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.1)
        workers = _children(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    stored_before = len(db_rows(out))
    assert 1 <= stored_before < 6, "the kill must land in the middle of the study"
    assert workers, "the study ran no worker processes"
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived their driver"

    rerun = cli(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 runs: {stored_before} already stored, {6 - stored_before} to run" in rerun.stdout
    rows = db_rows(out)
    assert sorted((a, s) for _, a, s, _, _ in rows) == sorted((a, s) for a in ("relu", "gelu", "srs") for s in (0, 1))
    assert len({h for h, *_ in rows}) == 6 and {r[3] for r in rows} == {"ok"}
    db = sqlite3.connect(out / "results.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_unknown_task_fails_fast_with_exit_code_2_and_writes_nothing(tmp_path):
    result = cli("compare", "--task", "nosuch", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 2
    assert "actlab compare: error: unknown task 'nosuch'" in result.stderr and "digits" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--activations", "relu,sirs"], "unknown activation 'sirs'. Did you mean: srs"),
        (["--activations", "relu,srs(alpha=-1)"], "activation srs(alpha=-1): SRS: alpha must be"),
        (["--activations", "relu,srs(5)"], "arguments must be given by keyword"),
        (["--activations", "relu,relu"], "listed twice"),
        (["--model-option", "hidden"], "must look like KEY=VALUE"),
        (["--model-option", "no_such_option=3"], "model mlp"),
        (["--task", "fashion_mnist", "--data-dir", "/nonexistent/folder"], "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(capsys, tmp_path, argv, message):
    code, _, err = run_main(capsys, "compare", *argv, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2
    assert message in err
    assert not (tmp_path / "o").exists()


def test_damaged_data_files_are_a_clear_error(capsys, tmp_path):
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / f"{name}.gz").write_bytes(b"not gzip at all")
    code, _, err = run_main(capsys, "compare", "--task", "fashion_mnist", "--data-dir", str(tmp_path), "--quiet")
    assert code == 2 and "task fashion_mnist:" in err and str(tmp_path) in err


def test_damaged_results_file_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"garbage " * 512)
    code, _, err = run_main(capsys, "compare", "--activations", "relu", *TINY, "--seeds", "1", "--out", str(tmp_path))
    assert code == 2 and "not a readable actlab results database" in err
    code, _, err = run_main(capsys, "results", str(tmp_path))
    assert code == 2 and "not a readable actlab results database" in err
    code, _, err = run_main(capsys, "results", str(tmp_path / "missing"))
    assert code == 2 and "no results database" in err


def test_config_file_describes_the_study_and_flags_override_it(capsys, tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(
        """
tasks = ["digits"]
models = ["mlp"]
activations = ["relu", "srs(alpha=5, beta=3)"]
baseline = "relu"
seeds = [4]
epochs = 3
limit = 100
workers = 1
threads = 1

[model_options.mlp]
hidden = 8
depth = 1
"""
    )
    out = tmp_path / "o"
    code, stdout, err = run_main(
        capsys, "compare", "--config", str(config), "--epochs", "1", "--out", str(out), "--quiet"
    )
    assert code == 0, err
    assert "2 runs: 0 already stored, 2 to run (1 worker x 1 thread)" in stdout
    runs = actlab.lab.load_results(out)
    assert sorted(r.spec.activation.label for r in runs) == ["relu", "srs(alpha=5,beta=3)"]
    assert {(r.spec.epochs, r.spec.limit, r.spec.seed) for r in runs} == {(1, 100, 4)}  # --epochs won
    assert all(r.spec.model_options == {"hidden": 8, "depth": 1} for r in runs)
    srs = next(r for r in runs if r.spec.activation.name == "srs")
    alpha = srs.result.activations[0]["parameters"]["alpha"][0]
    assert 4.0 < alpha < 6.0  # created with alpha=5, one short epoch of training

    config.write_text('tasks = ["digits"]\nepochs = "many"\n')
    code, _, err = run_main(capsys, "compare", "--config", str(config))
    assert code == 2 and "epochs must be a positive integer" in err
    config.write_text("tasks = [digits\n")
    code, _, err = run_main(capsys, "compare", "--config", str(config))
    assert code == 2 and "is not valid TOML" in err
    config.write_text('taks = ["digits"]\n')
    code, _, err = run_main(capsys, "compare", "--config", str(config))
    assert code == 2 and "unknown key(s) ['taks']" in err


def test_failed_runs_are_stored_skipped_on_resume_and_retried_on_request(capsys, tmp_path):
    argv = ["compare", "--activations", "relu", "--optimizer", "sgd", "--lr", "1e12", "--seeds", "1", "--epochs", "2"]
    argv += ["--limit", "100", "--model-option", "hidden=8", "--workers", "1", "--threads", "1"]
    argv += ["--out", str(tmp_path), "--quiet", "--no-report"]
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    assert "FAILED: diverged at epoch" in out
    assert "relu (baseline)  failed" in out and "relu: 1 of 1 runs failed (diverged at epoch" in out
    code, out, _ = run_main(capsys, *argv)
    assert code == 0 and "1 runs: 1 already stored, 0 to run" in out
    code, out, _ = run_main(capsys, *argv, "--retry-failed")
    assert code == 0 and "1 runs: 0 already stored, 1 to run" in out and "FAILED: diverged" in out
    assert [r.result.status for r in actlab.lab.load_results(tmp_path)] == ["failed"]
    code, _, err = run_main(capsys, "results", str(tmp_path), "--report")
    assert code == 0 and "report.html" in err and (tmp_path / "report.html").exists()


def test_model_arms_on_the_command_line_keep_their_commas():
    import argparse

    from actlab.cli.compare import _study_from_args, configure_compare

    parser = argparse.ArgumentParser()
    configure_compare(parser)
    args = parser.parse_args(["--model", "mlp(depth=1,hidden=4), mlp(depth=3)", "--model-option", "hidden=8"])
    config = _study_from_args(args)
    assert config.models == ["mlp(depth=1,hidden=4)", "mlp(depth=3)"]
    assert config.model_options == {"mlp": {"hidden": 8}}  # the flag applies per model name
    assert [dict(s.model_options) for s in config.run_specs()][:: len(config.activation_choices()) * 3] == [
        {"hidden": 4, "depth": 1},  # the arm's own option wins over the flag
        {"hidden": 8, "depth": 3},
    ]
