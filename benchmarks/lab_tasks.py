"""Load time and size of every lab task, and the cost of one training step of its default model.

Optionally (``--train-epochs``) trains the default model with a GELU activation
and Adam to show that the default sizes give a learnable, non-saturated
problem. This is a sanity probe, not the lab's runner: no early stopping,
no repeats.

Usage::

    python benchmarks/lab_tasks.py                       # all tasks whose data are present
    python benchmarks/lab_tasks.py --tasks num2words --train-epochs 20 --json out.json

Timings are wall-clock on this machine, single process, ``torch`` threads as set
by ``--threads``; compare them only within one run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from actlab.lab.datasets import DatasetNotFoundError
from actlab.lab.models import build_model
from actlab.lab.tasks import get_task, list_tasks


def step_seconds(task, model, data, batch_size: int, repeats: int = 5) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = task.forward_train(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def train(task, model, data, epochs: int, batch_size: int, lr: float) -> list[dict]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(data.y_train), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = task.forward_train(model, data.x_train[idx], data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        metrics = task.evaluate(model, data.x_val, data.y_val)
        history.append({"epoch": epoch, "seconds": round(time.perf_counter() - start, 2), **metrics})
        print(f"  epoch {epoch:3d}  {history[-1]}", flush=True)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list_tasks())
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = []
    for name in args.tasks:
        task = get_task(name)
        row: dict = {"task": name}
        try:
            for attempt in ("first_load_s", "second_load_s"):
                start = time.perf_counter()
                data = task.load(data_dir=args.data_dir, seed=0)
                row[attempt] = round(time.perf_counter() - start, 3)
        except DatasetNotFoundError as err:
            print(f"{name}: skipped ({str(err).split('.')[0]})")
            continue
        torch.manual_seed(0)
        model = build_model(task.default_model, data, nn.GELU)
        row.update(
            sizes=data.sizes,
            input_shape=list(data.input_shape),
            model=task.default_model,
            parameters=sum(p.numel() for p in model.parameters()),
            train_step_ms=round(1e3 * step_seconds(task, model, data, args.batch_size), 2),
        )
        print(row, flush=True)
        if args.train_epochs:
            torch.manual_seed(0)
            model = build_model(task.default_model, data, nn.GELU)
            row["training"] = train(task, model, data, args.train_epochs, args.batch_size, args.lr)
            row["test"] = task.evaluate(model, data.x_test, data.y_test)
            print(f"  test {row['test']}", flush=True)
        results.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
