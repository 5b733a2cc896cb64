"""Runs on a Dask cluster: a local one bound to 127.0.0.1, or an existing scheduler.

Each run is one Dask task. Workers only compute: they return
:class:`~actlab.lab.runner.RunResult` objects to the driver, which alone writes
the results store (see :func:`actlab.lab.run_study`), so a shared SQLite file is
never written from several machines.

Failures come in two kinds, handled differently:

* a run that fails for its own reasons (diverges, raises) is not a task
  failure: :func:`~actlab.lab.runner.execute_run` returns a failed result with
  the error, which is stored like any other result and never retried;
* a worker that dies mid-run (killed, out of memory, machine lost) makes the
  scheduler report :class:`distributed.KilledWorker` for the task. The run is
  then submitted again (the scheduler places it on a live worker) up to
  ``retries`` times; after that it comes back as a failed result whose error
  says so, and everything finished is kept.

Dask's own ``retries=`` argument of ``Client.submit`` is not the mechanism for
the second case: it re-runs tasks that *raise*, whereas a worker's death is
counted by the scheduler against ``distributed.scheduler.allowed-failures`` and
ends in ``KilledWorker`` without consulting ``retries``. The local cluster
started here sets ``allowed-failures`` to 0 so that every death reaches the
driver and ``retries`` means exactly what it says; an existing scheduler applies
its own ``allowed-failures`` (default 3) before reporting (see docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .config import RunSpec
from .executors import EventCallback, Executor, ExecutorError, RunEvent, cpu_count
from .runner import RunResult, execute_run

__all__ = ["DaskExecutor", "DaskMissingError", "import_distributed", "run_on_worker", "LOOPBACK"]

#: The only interface a cluster started by actlab listens on.
LOOPBACK = "127.0.0.1"

INSTALL_HINT = "pip install 'actlab[dist]'"


class DaskMissingError(ImportError):
    """``distributed`` is not installed."""


def import_distributed():
    """The ``distributed`` module, or :class:`DaskMissingError` naming the extra to install."""
    try:
        import distributed
    except ImportError as err:
        raise DaskMissingError(f"the dask executor needs dask.distributed: {INSTALL_HINT}") from err
    return distributed


# -- worker side --------------------------------------------------------------------------------
def run_on_worker(spec: RunSpec, threads: int | None, topic: str | None) -> RunResult:
    """The task body: one run on a Dask worker, its progress published on ``topic``.

    Events travel as plain dicts through the scheduler's event log
    (``Worker.log_event`` / ``Client.subscribe_topic``); a lost event only
    costs a progress bar update, never a result.
    """
    import torch

    if threads:
        # One run per worker process (threads_per_worker=1), so the process-wide setting is this run's.
        torch.set_num_threads(threads)
    key = spec.config_hash()
    publish = None
    if topic is not None:
        from distributed import get_worker

        worker = get_worker()

        def publish(kind: str, epoch: int, metrics: Mapping[str, float]) -> None:
            event = {"kind": kind, "config_hash": key, "epoch": epoch, "epochs": spec.epochs}
            event["metrics"] = {k: float(v) for k, v in metrics.items()}
            worker.log_event(topic, event)

        publish("start", 0, {})
    progress = None if publish is None else (lambda epoch, epochs, metrics: publish("epoch", epoch, metrics))
    return execute_run(spec, progress)


# -- driver side --------------------------------------------------------------------------------
def _failed(spec: RunSpec, error: str) -> RunResult:
    return RunResult(config_hash=spec.config_hash(), status="failed", error=error)


class DaskExecutor(Executor):
    """Each run is a Dask task; results come back to the driver in completion order.

    Args:
        workers: worker processes of the local cluster started when ``scheduler``
            is ``None`` (capped at the number of runs; default: CPU cores).
            Ignored with ``scheduler``: the cluster has the workers it has.
        threads: torch threads per run; default: the cores shared evenly between
            the local workers, or the workers' own setting on an existing cluster.
        scheduler: address of an existing scheduler (``tcp://host:8786``); ``None``
            starts a :class:`distributed.LocalCluster` listening on 127.0.0.1 only.
        retries: how many times a run is submitted again after the worker running
            it died; after that it is stored as failed with a ``KilledWorker`` error.

    Raises:
        DaskMissingError: ``distributed`` is not installed.
    """

    #: The task body (a seam for tests: a subclass may wrap it, e.g. to kill its worker).
    task = staticmethod(run_on_worker)

    def __init__(
        self,
        workers: int | None = None,
        threads: int | None = None,
        *,
        scheduler: str | None = None,
        retries: int = 2,
    ) -> None:
        import_distributed()
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.scheduler = scheduler
        self.retries = retries
        self.workers = workers or cpu_count()
        self.threads = threads if threads or scheduler else max(1, cpu_count() // self.workers)

    def describe(self, runs: int) -> str:
        if self.scheduler:
            return f"dask scheduler {self.scheduler}"
        return "dask local cluster, " + super().describe(runs)

    @contextlib.contextmanager
    def connect(self, runs: int) -> Iterator[Any]:
        """A :class:`distributed.Client`: to ``scheduler``, or to a loopback LocalCluster closed on exit."""
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                client = Client(self.scheduler)
            except (OSError, ValueError) as err:  # TimeoutError is an OSError
                raise ExecutorError(f"cannot connect to the Dask scheduler at {self.scheduler}: {err}") from None
            with client:
                yield client
            return
        # Every death reaches the driver at once, so `retries` counts attempts exactly.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=min(self.workers, runs),
                threads_per_worker=1,
                processes=True,
                host=LOOPBACK,
                # No dashboard; the scheduler's health/metrics endpoint, which exists regardless,
                # on a free loopback port rather than the default 8787 (often taken).
                dashboard_address=f"{LOOPBACK}:0",
                scheduler_kwargs={"dashboard": False},
                worker_dashboard_address=None,
                # Shutdown notices ("worker process still alive after 4 s, killing": torch's slow
                # interpreter exit on a busy machine) are noise here; errors still show.
                silence_logs=logging.ERROR,
            )
        with cluster, Client(cluster) as client:
            yield client

    def run(self, specs: Sequence[RunSpec], on_event: EventCallback | None = None) -> Iterator[RunResult]:
        if not specs:
            return
        from distributed import KilledWorker, as_completed

        events: queue.SimpleQueue = queue.SimpleQueue()
        topic = f"actlab-progress-{uuid.uuid4().hex}" if on_event is not None else None
        with self.connect(len(specs)) as client:
            if topic is not None:
                # Called on the client's event-loop thread; on_event must run on this one.
                client.subscribe_topic(topic, lambda event: events.put(event[1]))
            spec_of: dict[Any, RunSpec] = {}
            attempts: dict[str, int] = {}

            def submit(spec: RunSpec):
                attempt = attempts[spec.config_hash()] = attempts.get(spec.config_hash(), -1) + 1
                future = client.submit(
                    self.task, spec, self.threads, topic,
                    key=f"actlab-run-{spec.config_hash()[:16]}-{uuid.uuid4().hex[:8]}-{attempt}",
                    pure=False,
                )  # fmt: skip
                spec_of[future] = spec
                return future

            completions = as_completed([submit(s) for s in specs], with_results=False)
            try:
                while not completions.is_empty():
                    self._drain(events, on_event)
                    if not completions.has_ready():
                        with contextlib.suppress(queue.Empty):
                            # Sleeps until an event arrives or 0.1 s pass, whichever is first.
                            event = events.get(timeout=0.1)
                            if on_event is not None:
                                on_event(self._event(event))
                        continue
                    for future in completions.next_batch(block=False):
                        spec = spec_of.pop(future)
                        retry_left = attempts[spec.config_hash()] < self.retries
                        result = self._result(future, spec, KilledWorker, retry_left)
                        if result is None:  # its worker died and a retry is left
                            completions.add(submit(spec))
                            continue
                        self._drain(events, on_event)
                        yield result
            finally:
                client.cancel(list(spec_of))
                if topic is not None:
                    client.unsubscribe_topic(topic)

    def _result(self, future, spec: RunSpec, killed_worker: type, retry_left: bool) -> RunResult | None:
        """The run's result; ``None`` when it should be submitted again."""
        if future.status == "finished":
            return future.result()
        error = future.exception()
        if isinstance(error, killed_worker):
            if retry_left:
                return None
            tries = self.retries + 1
            return _failed(
                spec,
                f"KilledWorker: the worker running this run died {tries} time{'s' * (tries != 1)} "
                f"(killed, out of memory or lost); gave up after {self.retries} retr{'ies' if self.retries != 1 else 'y'}. "
                "Run again with --retry-failed (and more memory per worker) to execute it again.\n\n"
                f"{error}",
            )
        # The task itself raised outside the run (e.g. actlab or a dependency is missing on the worker).
        return _failed(
            spec,
            f"{type(error).__name__} on the Dask worker, outside the run: {error}\n"
            "Check that the workers have actlab installed in the same environment as the driver "
            "(docs/cluster.md).",
        )

    @staticmethod
    def _event(message: Mapping[str, Any]) -> RunEvent:
        return RunEvent(
            message["kind"], message["config_hash"], message["epoch"], message["epochs"], message["metrics"]
        )

    def _drain(self, events: queue.SimpleQueue, on_event: EventCallback | None) -> None:
        while on_event is not None:
            try:
                message = events.get_nowait()
            except queue.Empty:
                return
            on_event(self._event(message))
