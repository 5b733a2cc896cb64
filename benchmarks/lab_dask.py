"""The Dask executor on a loopback LocalCluster: scaling from 1 to 2 workers, and the cost per task.

1. Scaling: wall time of an 8-run study (digits / mlp, 4 activations x 2 seeds)
   with 1 and with 2 worker processes (one torch thread each), cluster start-up
   and shutdown included, as ``actlab compare --executor dask`` pays them; printed
   with their ratio. On a machine with fewer free cores than workers the ratio
   says so (the load average is printed too).
2. Overhead per task: trivially short runs (1 epoch on 64 samples) executed
   in this process (SerialExecutor) and as Dask tasks on one warm worker (worker
   imports and data caches filled by a first pass; progress events on, as in
   the CLI); the difference per run is what Dask adds (pickling, scheduling,
   the result's round trip, the event log).

Usage::

    python benchmarks/lab_dask.py [--epochs 3] [--tiny-runs 16]
"""

from __future__ import annotations

import argparse
import os
import time

from actlab.lab.config import ActivationChoice, RunSpec
from actlab.lab.dask_executor import DaskExecutor
from actlab.lab.executors import SerialExecutor


def specs(activations, seeds, epochs: int, limit: int, hidden: int) -> list[RunSpec]:
    return [
        RunSpec(
            task="digits",
            model="mlp",
            activation=ActivationChoice(a),
            seed=s,
            epochs=epochs,
            batch_size=32,
            lr=1e-3,
            limit=limit,
            model_options={"hidden": hidden},
            threads=1,
        )
        for a in activations
        for s in seeds
    ]


def timed(executor, runs: list[RunSpec]) -> float:
    started = time.perf_counter()
    results = list(executor.run(runs, lambda event: None))
    elapsed = time.perf_counter() - started
    failed = [r.error for r in results if not r.ok]
    assert len(results) == len(runs) and not failed, failed
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run of the 8-run study (default: 3)")
    parser.add_argument("--tiny-runs", type=int, default=16, help="trivial runs for the overhead (default: 16)")
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    study = specs(("relu", "gelu", "silu", "srs"), (0, 1), args.epochs, limit=None, hidden=64)
    walls = {}
    for workers in (1, 2):
        walls[workers] = timed(DaskExecutor(workers, threads=1), study)
        print(
            f"8-run study, {workers} worker{'s' * (workers > 1)}: {walls[workers]:.1f} s (cluster start/stop included)"
        )
    print(f"speed-up 1 -> 2 workers: {walls[1] / walls[2]:.2f}x (wall time ratio)")

    tiny = specs(("relu", "gelu", "silu", "srs"), range(args.tiny_runs // 4), 1, limit=64, hidden=4)
    serial = SerialExecutor(threads=1)
    timed(serial, tiny)  # warm: imports, data cache
    serial_s = timed(serial, tiny)
    with DaskExecutor(1, threads=1).connect(runs=1) as client:
        on_cluster = DaskExecutor(threads=1, scheduler=client.scheduler.address)
        timed(on_cluster, tiny)  # warm the worker the same way
        dask_s = timed(on_cluster, tiny)
    n = len(tiny)
    print(
        f"{n} trivial runs: in process {serial_s / n * 1e3:.1f} ms/run, as Dask tasks {dask_s / n * 1e3:.1f} ms/run; "
        f"overhead {(dask_s - serial_s) / n * 1e3:.1f} ms per task"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
