"""The fixed cost of one activation call: forward+backward on a tiny tensor, where the arithmetic is
nothing and the Python around it is everything (small models, the lab's MLPs, per-sample work).

For every actlab activation with a fused Function it times, round-robin in one run, one training
call (forward + backward, 16 elements, shared parameters) on:

- ``reference``: the plain PyTorch formula under autograd;
- ``fused``: the fused Function as actlab calls it (``dispatch.apply_function``);
- ``fused, Function.apply``: the same Function called through ``Function.apply``, which binds the
  arguments with ``inspect.signature`` on every call (what ``apply_function`` avoids outside
  ``torch.func`` transforms);

and native ``F.silu`` as the yardstick. Medians in microseconds and ratios to SiLU.

    python benchmarks/call_overhead.py --threads 1
    python benchmarks/call_overhead.py --activations srs,serf --json overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import actlab
from actlab.elementwise import ElementwiseOp
from actlab.kernels import dispatch


def _time(step, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _through_function_apply(function, *args):
    return function.apply(*args)


def _step(module, x, grad, through_apply: bool):
    def step():
        saved = dispatch.apply_function
        if through_apply:
            dispatch.apply_function = _through_function_apply
        try:
            module(x).backward(grad)
        finally:
            dispatch.apply_function = saved

    return step


def elementwise_names(spec: str | None) -> list[str]:
    """The activations to time: every one with a fused Function (an ``op``), or those named (checked)."""
    known = [n for n in actlab.list_activations() if isinstance(getattr(actlab.create(n), "op", None), ElementwiseOp)]
    if spec is None:
        return known
    names = spec.split(",")
    wrong = [n for n in names if n not in known]
    if wrong:
        raise SystemExit(f"call_overhead.py: no fused elementwise Function for {wrong}; choose from {known}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", default=None, help="comma-separated registry names")
    parser.add_argument("--size", type=int, default=16, help="elements per call (default 16)")
    parser.add_argument("--repeats", type=int, default=400, help="timed calls per path and round")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default 5)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    names = elementwise_names(args.activations)
    if args.threads:
        torch.set_num_threads(args.threads)

    x = torch.randn(args.size, requires_grad=True)
    grad = torch.randn(args.size)
    paths: dict[str, object] = {"silu": lambda: F.silu(x).backward(grad)}
    for name in names:
        for backend, through_apply, label in (
            ("reference", False, "reference"),
            ("fused", False, "fused"),
            ("fused", True, "fused, Function.apply"),
        ):
            module = actlab.create(name)
            module.backend = backend
            paths[f"{name}/{label}"] = _step(module, x, grad, through_apply)
    samples: dict[str, list[float]] = {key: [] for key in paths}
    for step in paths.values():  # warm-up
        for _ in range(20):
            step()
    for _ in range(args.rounds):
        for key, step in paths.items():
            samples[key] += _time(step, args.repeats)
    median = {key: statistics.median(v) * 1e6 for key, v in samples.items()}
    silu = median["silu"]
    print(f"forward+backward of {args.size} elements, {torch.get_num_threads()} threads; median µs and / SiLU")
    print(f"{'activation':<18}{'reference':>16}{'fused':>16}{'fused, Function.apply':>26}")
    print(f"{'silu':<18}{silu:>9.1f} (1.00)")
    rows = {}
    for name in names:
        cells = [median[f"{name}/{label}"] for label in ("reference", "fused", "fused, Function.apply")]
        rows[name] = dict(zip(("reference_us", "fused_us", "fused_function_apply_us"), cells))
        print(
            f"{name:<18}"
            + "".join(f"{c:>9.1f} ({c / silu:5.2f})" for c in cells[:2])
            + f"{cells[2]:>19.1f} ({cells[2] / silu:5.2f})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"size": args.size, "threads": torch.get_num_threads(), "silu_us": silu, "activations": rows},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
