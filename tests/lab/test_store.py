"""The SQLite results store: round trips, no duplicates, crash safety, concurrent writers, clear errors."""

from __future__ import annotations

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actlab.lab.config import ActivationChoice, RunSpec
from actlab.lab.store import SCHEMA_VERSION, ResultStore, StoreError, read_results

from ..cli_helpers import cli_env
from .factories import make_result, make_spec

ROOT = str(Path(__file__).resolve().parents[2])


def test_record_and_read_round_trip(tmp_path):
    spec = make_spec(model_options={"hidden": [8, 8]}, activation="srs")
    spec = RunSpec(**{**spec.__dict__, "activation": ActivationChoice("srs", {"alpha": 5.0, "beta": 3.0})})
    result = make_result(spec, 0.875)
    with ResultStore(tmp_path) as store:
        assert store.record(spec, result)
    runs = read_results(tmp_path)
    assert len(runs) == 1
    assert runs[0].spec == spec
    assert runs[0].result == result
    assert runs[0].spec.activation.label == "srs(alpha=5.0,beta=3.0)"
    db = sqlite3.connect(tmp_path / "results.sqlite")
    row = db.execute("SELECT status, activation, seed, test_value, task FROM runs").fetchone()
    assert row == ("ok", "srs(alpha=5.0,beta=3.0)", 0, 0.875, "digits")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_run_is_never_stored_twice_and_an_ok_row_is_never_replaced(tmp_path):
    spec = make_spec()
    with ResultStore(tmp_path) as store:
        assert store.record(spec, make_result(spec, 0.9))
        assert not store.record(spec, make_result(spec, 0.1))
        assert not store.record(spec, make_result(spec, status="failed", error="boom"))
        runs = store.runs()
    assert len(runs) == 1 and runs[0].result.test_value == 0.9


def test_a_failed_row_is_replaced_by_its_retry(tmp_path):
    spec = make_spec()
    with ResultStore(tmp_path) as store:
        store.record(spec, make_result(spec, status="failed", error="diverged at epoch 1"))
        assert store.statuses() == {spec.config_hash(): "failed"}
        assert store.record(spec, make_result(spec, status="failed", error="diverged at epoch 2"))
        assert store.runs()[0].result.error == "diverged at epoch 2"
        assert store.record(spec, make_result(spec, 0.7))
        assert store.statuses() == {spec.config_hash(): "ok"}


def test_a_result_must_belong_to_its_spec(tmp_path):
    with ResultStore(tmp_path) as store, pytest.raises(ValueError, match="does not belong"):
        store.record(make_spec(seed=0), make_result(make_spec(seed=1)))


def test_statuses_can_be_restricted_and_meta_round_trips(tmp_path):
    a, b = make_spec(seed=0), make_spec(seed=1)
    with ResultStore(tmp_path) as store:
        store.record(a, make_result(a))
        store.record(b, make_result(b))
        assert store.statuses([a.config_hash()]) == {a.config_hash(): "ok"}
        store.set_meta("study", {"baseline": "relu", "activations": ["relu", "srs"]})
        assert store.get_meta("study")["activations"] == ["relu", "srs"]
        assert store.get_meta("missing", 3) == 3
        assert store.integrity_check() == "ok"


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no results database"):
        read_results(tmp_path / "nowhere")


def test_a_damaged_file_is_a_clear_error(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match="not a readable actlab results database"):
        read_results(tmp_path)
    with pytest.raises(StoreError, match="damaged"):
        ResultStore(tmp_path)


def test_another_sqlite_database_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("CREATE TABLE something (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not an actlab results database"):
        read_results(tmp_path)


def test_a_newer_schema_is_refused(tmp_path):
    with ResultStore(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this actlab"):
        read_results(tmp_path)


def _write_many(path: str, seeds: list[int], barrier) -> None:
    barrier.wait()
    with ResultStore(path) as store:
        for s in seeds:
            spec = make_spec(seed=s)
            store.record(spec, make_result(spec, value=s / 1000))


def test_two_processes_writing_the_same_database_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    # Overlapping ranges: 10 runs written by both, 50 distinct in all.
    a = ctx.Process(target=_write_many, args=(str(tmp_path), list(range(0, 30)), barrier))
    b = ctx.Process(target=_write_many, args=(str(tmp_path), list(range(20, 50)), barrier))
    a.start(), b.start()
    a.join(120), b.join(120)
    assert a.exitcode == 0 and b.exitcode == 0
    runs = read_results(tmp_path)
    assert sorted(r.spec.seed for r in runs) == list(range(50))
    assert all(r.result.test_value == r.spec.seed / 1000 for r in runs)


def _open_fresh_folders(folders: list[str], barrier) -> None:
    for folder in folders:
        barrier.wait(30)  # a worker that failed breaks the barrier instead of hanging the others
        with ResultStore(folder) as store:
            spec = make_spec(seed=0)
            store.record(spec, make_result(spec, value=0.5))


def test_processes_creating_the_same_fresh_database_at_once_all_succeed(tmp_path):
    # Workers of one study starting together on a new --out folder. SQLite refuses the switch to
    # WAL with "database is locked" without waiting when another process opens the file at that
    # moment; before the store retried, about half of these openings failed.
    ctx = multiprocessing.get_context("spawn")
    folders = [str(tmp_path / f"study{i}") for i in range(6)]
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_open_fresh_folders, args=(folders, barrier)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    for folder in folders:
        assert len(read_results(folder)) == 1
        db = sqlite3.connect(Path(folder) / "results.sqlite")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


_WRITER = """
import sys
sys.path.insert(0, {root!r})
from tests.lab.factories import make_spec, make_result
from actlab.lab.store import ResultStore
with ResultStore({path!r}) as store:
    print("ready", flush=True)
    for s in range(100000):
        spec = make_spec(seed=s)
        store.record(spec, make_result(spec, value=s / 7))
"""


def test_sigkill_during_writes_leaves_a_sound_database_with_complete_rows(tmp_path):
    code = _WRITER.format(root=ROOT, path=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=cli_env())
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with ResultStore(tmp_path, create=False) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
    assert len(runs) > 0
    seeds = sorted(r.spec.seed for r in runs)
    assert seeds == list(range(len(seeds)))  # every committed row, in order, none partial
    assert all(r.result.test_value == r.spec.seed / 7 and r.result.history for r in runs)
