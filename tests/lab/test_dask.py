"""The Dask executor on loopback clusters: same results as the local pool, nothing lost when a worker dies.

One two-worker cluster, started by the executor itself (so its loopback-only
binding is what is tested), serves the in-process tests through its scheduler
address; the CLI test starts its own as a user's command does.
"""

from __future__ import annotations

import builtins
import functools
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from actlab.cli import main
from actlab.lab import run_study
from actlab.lab.config import StudyConfig
from actlab.lab.executors import make_executor
from actlab.lab.store import ResultStore

from ..cli_helpers import run_cli

distributed = pytest.importorskip("distributed")

from actlab.lab.dask_executor import DaskExecutor, run_on_worker  # noqa: E402

TINY = dict(epochs=1, limit=120, model_options={"mlp": {"hidden": 8}}, threads=1)
TINY_ARGS = ["--epochs", "1", "--limit", "120", "--model-option", "hidden=8", "--threads", "1", "--quiet"]


def study(out: Path, activations=("relu", "gelu"), seeds=(0, 1)) -> StudyConfig:
    return StudyConfig(activations=list(activations), seeds=list(seeds), out=str(out), **TINY)


def stored_rows(out: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT config_hash, activation, seed, status FROM runs").fetchall()
    finally:
        db.close()


def metrics(out: Path) -> dict[str, tuple]:
    with ResultStore(out, create=False) as store:
        runs = store.runs()
    return {
        r.spec.config_hash(): (r.result.status, r.result.test_metrics, [h["train_loss"] for h in r.result.history])
        for r in runs
    }


@pytest.fixture(scope="module")
def client():
    with DaskExecutor(workers=2, threads=1).connect(runs=2) as client:
        yield client


# -- a worker that dies in the middle of a run ------------------------------------------------
def kill_own_worker_once(marker: str, spec, threads, topic):
    """Run the spec, except that the first task to get here SIGKILLs its worker process mid-run."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # atomic: exactly one task wins
    except FileExistsError:
        return run_on_worker(spec, threads, topic)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_costs_a_retry_and_every_run_is_stored_exactly_once(client, tmp_path):
    executor = DaskExecutor(threads=1, scheduler=client.scheduler.address, retries=1)
    executor.task = functools.partial(kill_own_worker_once, str(tmp_path / "killed"))
    events = []
    outcome = run_study(study(tmp_path / "out"), executor=executor, on_event=events.append, report=False)
    assert (tmp_path / "killed").exists(), "no worker was killed"
    assert outcome.executed == 4 and outcome.failed == 0
    rows = stored_rows(tmp_path / "out")
    assert sorted((a, s, st) for _, a, s, st in rows) == sorted((a, s, "ok") for a in ("relu", "gelu") for s in (0, 1))
    assert len({h for h, *_ in rows}) == 4
    # Progress comes from the workers: a start and one epoch per completed run (the killed attempt
    # may have announced its start before it died).
    by_run = {h: sorted(e.kind for e in events if e.config_hash == h) for h, *_ in rows}
    assert all(kinds.count("epoch") == 1 and kinds.count("start") in (1, 2) for kinds in by_run.values()), by_run


def test_retries_exhausted_is_a_failed_run_with_a_clear_error_and_the_rest_is_kept(client, tmp_path):
    executor = DaskExecutor(threads=1, scheduler=client.scheduler.address, retries=0)
    executor.task = functools.partial(kill_own_worker_once, str(tmp_path / "killed"))
    outcome = run_study(study(tmp_path / "out", activations=("relu",)), executor=executor, report=False)
    assert outcome.executed == 2 and outcome.failed == 1
    with ResultStore(tmp_path / "out", create=False) as store:
        results = sorted((r.result for r in store.runs()), key=lambda r: r.status)
    failed, ok = results
    assert failed.status == "failed" and failed.error.startswith(
        "KilledWorker: the worker running this run died 1 time"
    )
    assert "--retry-failed" in failed.error
    assert ok.status == "ok" and ok.test_metrics


def test_a_run_that_fails_on_its_own_is_stored_failed_and_not_retried(client, tmp_path):
    # SGD at lr=1e12 diverges: a result of the run, not a failure of its task.
    config = study(tmp_path / "out", activations=("relu",), seeds=(0,)).merged(
        {"optimizer": "sgd", "lr": 1e12, "epochs": 2}
    )
    executor = DaskExecutor(threads=1, scheduler=client.scheduler.address, retries=3)
    executor.task = functools.partial(kill_own_worker_once, str(tmp_path / "never"))
    (tmp_path / "never").touch()  # no kill in this test
    outcome = run_study(config, executor=executor, report=False)
    assert outcome.executed == 1 and outcome.failed == 1
    [(_, _, _, status)] = stored_rows(tmp_path / "out")
    assert status == "failed"
    with ResultStore(tmp_path / "out", create=False) as store:
        [run] = store.runs()
    assert run.result.error.startswith("diverged at epoch")


# -- loopback only --------------------------------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").iterdir():
            kids = {int(k) for k in (task / "children").read_text().split()}
            todo += kids - found
            found |= kids
    return found


def _socket_inodes(pids) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except FileNotFoundError:  # a process that just exited
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except FileNotFoundError:  # closed meanwhile (e.g. the descriptor iterdir itself used)
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def _listening(table: str, inodes: set[str]) -> list[str]:
    """Local addresses (kernel hex) of the listening TCP sockets among ``inodes``."""
    rows = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    fields = [row.split() for row in rows]
    return [f[1] for f in fields if f[3] == "0A" and f[9] in inodes]  # 0A: LISTEN


def test_the_cluster_is_bound_to_127_0_0_1_only(client):
    client.wait_for_workers(2, timeout=120)  # a worker killed by another test may still be restarting
    addresses = [client.scheduler.address, *client.scheduler_info()["workers"]]
    addresses += [w["nanny"] for w in client.scheduler_info()["workers"].values()]
    assert len(addresses) == 5
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    if not sys.platform.startswith("linux"):
        return
    inodes = _socket_inodes({os.getpid(), *_descendants(os.getpid())})
    v4 = _listening("tcp", inodes)
    # Scheduler comm + its HTTP endpoint, two nannies, two workers with an HTTP endpoint each.
    assert len(v4) >= 8 and all(a.startswith("0100007F:") for a in v4), v4
    assert _listening("tcp6", inodes) == []


# -- the command, as a user runs it ---------------------------------------------------------------
def test_cli_dask_study_matches_the_local_pool_and_resumes(capsys, tmp_path):
    out = tmp_path / "dask"
    args = ["compare", "--executor", "dask", "--workers", "2", "--activations", "relu,gelu", "--seeds", "2"]
    args += [*TINY_ARGS, "--out", str(out), "--no-report"]
    first = run_cli(*args, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "4 runs: 0 already stored, 4 to run (dask local cluster, 2 workers x 1 thread)" in first.stdout
    assert "4 run(s) executed, 0 skipped, 0 failed" in first.stdout

    # The local pool computes what this process computes (test_executors), so in-process stands for it.
    run_study(study(tmp_path / "local"), executor=make_executor(1, threads=1), report=False)
    dask, local = metrics(out), metrics(tmp_path / "local")
    assert len(dask) == 4 and dask == local  # same hashes, statuses, test metrics and loss curves

    assert main(args) == 0  # in this process: nothing to run, so no cluster starts
    assert "4 runs: 4 already stored, 0 to run\n" in capsys.readouterr().out
    assert len(stored_rows(out)) == 4


def test_without_dask_the_error_names_the_extra(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    code = main(["compare", "--executor", "dask", "--out", str(tmp_path / "o"), *TINY_ARGS])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'actlab[dist]'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_scheduler_address_needs_the_dask_executor(capsys, tmp_path):
    code = main(["compare", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o"), *TINY_ARGS])
    assert code == 2 and "--scheduler needs --executor dask" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        make_executor(2, kind="ray")
