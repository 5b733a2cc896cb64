"""Where runs execute: in this process, or in a pool of worker processes.

An :class:`Executor` takes run specs and yields :class:`~actlab.lab.runner.RunResult`
objects as the runs complete. Executors never write results anywhere: the
driver (:func:`actlab.lab.run_study`) is the only writer of the results store,
which keeps the store consistent whatever executes the runs (a later Dask
executor returns results to the driver the same way).

Progress arrives through ``on_event`` as :class:`RunEvent` objects (a run
started, an epoch finished), always on the driver's own thread.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

from .config import RunSpec
from .runner import RunResult, execute_run

__all__ = [
    "RunEvent",
    "Executor",
    "SerialExecutor",
    "LocalExecutor",
    "ExecutorError",
    "make_executor",
    "EXECUTORS",
    "plan_workers",
    "cpu_count",
]


@dataclass(frozen=True)
class RunEvent:
    """Progress of one run: ``kind`` is ``"start"`` or ``"epoch"``."""

    kind: str
    config_hash: str
    epoch: int = 0
    epochs: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)


EventCallback = Callable[[RunEvent], None]


class ExecutorError(RuntimeError):
    """The executor itself broke (e.g. a worker process was killed); finished results are kept."""


class _Aborted(BaseException):
    """Raised inside a worker's run when the driver gives up; a BaseException so the run is not recorded."""


class _AbortFlag:
    """A flag the driver sets and the workers read, with no lock to leave held.

    ``multiprocessing.Event`` guards its flag with a semaphore: a worker killed
    (OOM, SIGKILL) inside ``is_set()`` leaves it held for ever, and the driver's
    ``set()`` then blocks for ever. A single shared byte needs no lock: the
    driver is its only writer and a worker only has to see the change at its
    next epoch boundary.
    """

    def __init__(self, ctx) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


def cpu_count() -> int:
    """CPU cores this process may use (the affinity mask where available)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs specs and yields results in completion order.

    Attributes:
        workers: how many runs execute at the same time.
        threads: torch threads per run (``None``: torch's default).
    """

    workers: int = 1
    threads: int | None = None

    @abstractmethod
    def run(self, specs: Sequence[RunSpec], on_event: EventCallback | None = None) -> Iterator[RunResult]:
        """Yield one :class:`RunResult` per spec, as each completes."""

    def describe(self, runs: int) -> str:
        """Where ``runs`` runs will execute, for the user: ``"2 workers x 1 thread"``."""
        workers, threads = min(self.workers, runs), self.threads
        text = f"{workers} worker{'s' * (workers != 1)}"
        return text + (f" x {threads} thread{'s' * (threads != 1)}" if threads else "")


class SerialExecutor(Executor):
    """Runs every spec in this process, one after another (``--workers 1``)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, specs: Sequence[RunSpec], on_event: EventCallback | None = None) -> Iterator[RunResult]:
        import torch

        previous = torch.get_num_threads()
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            for spec in specs:
                key = spec.config_hash()
                if on_event is not None:
                    on_event(RunEvent("start", key, 0, spec.epochs))
                progress = None
                if on_event is not None:
                    progress = lambda epoch, epochs, metrics, _k=key: on_event(
                        RunEvent("epoch", _k, epoch, epochs, metrics)
                    )
                yield execute_run(spec, progress)
        finally:
            torch.set_num_threads(previous)


# -- worker side of LocalExecutor -----------------------------------------------------------------
_worker_events: Any = None
_worker_abort: Any = None


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the driver dies, even by SIGKILL, so no run goes on orphaned."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:  # portable fallback: poll for re-parenting
        while os.getppid() == parent_pid:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="actlab-parent-watch", daemon=True).start()


def _init_worker(threads: int, parent_pid: int, events, abort) -> None:
    global _worker_events, _worker_abort
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the driver decides what to do, the workers stop via `abort`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    _worker_events, _worker_abort = events, abort


def _run_in_worker(spec: RunSpec) -> RunResult:
    key = spec.config_hash()
    if _worker_abort.is_set():
        raise _Aborted()
    if _worker_events is not None:
        _worker_events.put(RunEvent("start", key, 0, spec.epochs))

    def progress(epoch: int, epochs: int, metrics: Mapping[str, float]) -> None:
        if _worker_abort.is_set():
            raise _Aborted()
        if _worker_events is not None:
            _worker_events.put(RunEvent("epoch", key, epoch, epochs, dict(metrics)))

    return execute_run(spec, progress)


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (spawn context), each with its own thread budget.

    Args:
        workers: number of processes (capped at the number of specs).
        threads: torch threads per worker; default: the CPU cores shared evenly.
    """

    def __init__(self, workers: int, threads: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)

    def run(self, specs: Sequence[RunSpec], on_event: EventCallback | None = None) -> Iterator[RunResult]:
        if not specs:
            return
        ctx = multiprocessing.get_context("spawn")
        events = ctx.Queue() if on_event is not None else None
        abort = _AbortFlag(ctx)
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(specs)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads, os.getpid(), events, abort),
        )
        finished = False
        try:
            pending = {pool.submit(_run_in_worker, spec) for spec in specs}
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                self._drain(events, on_event)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool as err:
                        raise ExecutorError(
                            "a worker process died (killed, out of memory or crashed); "
                            "the runs finished so far are stored — run the same command again to resume"
                        ) from err
                    self._drain(events, on_event)
                    yield result
            finished = True
        finally:
            if not finished:
                abort.set()  # running workers stop at their next epoch boundary
            pool.shutdown(wait=True, cancel_futures=True)
            if events is not None:
                events.close()
                events.join_thread()

    @staticmethod
    def _drain(events, on_event: EventCallback | None) -> None:
        if events is None or on_event is None:
            return
        while True:
            try:
                event = events.get_nowait()
            except Empty:
                return
            on_event(event)


def plan_workers(workers: int | None, threads: int | None, runs: int) -> tuple[int, int]:
    """``(workers, threads)``: by default one worker per core (at most one per run), cores shared evenly."""
    cores = cpu_count()
    workers = workers or max(1, min(cores, runs))
    return workers, threads or max(1, cores // workers)


EXECUTORS = ("local", "dask")


def make_executor(
    workers: int | None,
    threads: int | None = None,
    *,
    kind: str = "local",
    scheduler: str | None = None,
    retries: int = 2,
) -> Executor:
    """An executor by ``kind``.

    ``"local"``: this process when ``workers == 1``, otherwise a :class:`LocalExecutor`
    (``workers`` is required). ``"dask"``: a
    :class:`~actlab.lab.dask_executor.DaskExecutor` on a loopback cluster of
    ``workers`` processes, or on the existing ``scheduler``; a worker that dies
    mid-run costs that run up to ``retries`` new attempts.

    Raises:
        ValueError: an unknown ``kind``, or options that the kind does not take.
        actlab.lab.dask_executor.DaskMissingError: ``kind="dask"`` without dask.distributed.
    """
    if kind == "dask":
        from .dask_executor import DaskExecutor

        return DaskExecutor(workers, threads, scheduler=scheduler, retries=retries)
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
    if scheduler is not None:
        raise ValueError("a scheduler address needs the dask executor (--executor dask)")
    if workers is None:
        raise ValueError("the local executor needs a number of workers")
    if workers == 1:
        return SerialExecutor(threads)
    return LocalExecutor(workers, threads)
