"""Saved-for-backward memory and time of SLAF: fused autograd Function vs the plain-PyTorch reference.

For each routine and degree k = 2..8, one forward under ``saved_tensors_hooks`` counts the bytes
autograd keeps for backward (each storage once) as a multiple of the input's bytes, and forward +
backward is timed (median of ``--repeats`` after a warm-up) for both backends. Goal: the fused path
keeps at most 2 input-sized tensors whatever k.

    python benchmarks/slaf_memory.py                 # table, 8x64x32x32 float32 on CPU
    python benchmarks/slaf_memory.py --json out.json --shape 8 64 16 16 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from torch import nn

ROUTINES = {
    "taylor-bn": dict(basis="taylor", normalize=True),
    "taylor-max": dict(basis="taylor", normalize="max"),
    "chebyshev-max": dict(basis="chebyshev", normalize="max"),
    "fourier-emfn": dict(basis="fourier", normalize="max"),
}


def saved_input_multiple(module: nn.Module, x: torch.Tensor) -> float:
    """Bytes autograd saves for backward during ``module(x)`` (each storage once), over x's bytes."""
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return total / (x.numel() * x.element_size())


def time_forward_backward(modules: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of forward + backward per module, timed alternately (after one warm-up each).

    Alternating the candidates within each repeat exposes them to the same machine load.
    """
    grad = torch.randn_like(x)

    def step(module: nn.Module) -> float:
        x.grad = None
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        module(x).backward(grad)
        if x.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for module in modules.values():
        step(module)
    times: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(repeats):
        for name, module in modules.items():
            times[name].append(step(module))
    return {name: statistics.median(t) for name, t in times.items()}


def measure(shape: tuple[int, ...], degrees: range, repeats: int, device: str) -> list[dict]:
    from actlab import SLAF

    torch.manual_seed(0)
    x = torch.randn(*shape, device=device, requires_grad=True)
    rows = []
    for name, routine in ROUTINES.items():
        for k in degrees:
            modules = {}
            for backend in ("reference", "fused"):
                modules[backend] = SLAF(degree=k, num_parameters=shape[1], device=device, **routine).train()
                modules[backend].backend = backend
            row = {"routine": name, "degree": k}
            for backend, module in modules.items():
                row[f"saved_{backend}"] = round(saved_input_multiple(module, x), 3)
            for backend, seconds in time_forward_backward(modules, x, repeats).items():
                row[f"seconds_{backend}"] = seconds
            row["speedup"] = row["seconds_reference"] / row["seconds_fused"]
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 64, 32, 32], help="input shape (N, C, ...)")
    parser.add_argument("--degrees", type=int, nargs=2, default=[2, 8], metavar=("LOW", "HIGH"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if len(args.shape) < 2:
        parser.error("--shape needs at least (N, C)")
    rows = measure(tuple(args.shape), range(args.degrees[0], args.degrees[1] + 1), args.repeats, args.device)
    print(
        f"SLAF saved-for-backward memory (x input size) and forward+backward time; input {tuple(args.shape)} float32 on {args.device}"
    )
    print(f"{'routine':<14} {'k':>2} {'saved ref':>9} {'saved fused':>11} {'ms ref':>8} {'ms fused':>8} {'speedup':>7}")
    for r in rows:
        print(
            f"{r['routine']:<14} {r['degree']:>2} {r['saved_reference']:>9.2f} {r['saved_fused']:>11.2f} "
            f"{1e3 * r['seconds_reference']:>8.1f} {1e3 * r['seconds_fused']:>8.1f} {r['speedup']:>7.2f}"
        )
    if args.json:
        meta = {
            "shape": args.shape,
            "device": args.device,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    worst = max(r["saved_fused"] for r in rows)
    if worst > 2.0:
        print(f"GOAL MISSED: the fused path saves {worst:.2f}x the input (goal <= 2)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
