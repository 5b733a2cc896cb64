"""Where compiling an activation pays off on CPU: the data behind ``actlab.kernels.dispatch.COMPILE_THRESHOLD``.

For a few activations and input sizes it measures the forward+backward time of
one call on the eager fused path and on the compiled path, and the one-off
cost of compiling (the first call's extra time). The break-even is the number
of calls after which compiling has saved more time than it cost:
``compile seconds / (fused - compiled seconds per call)``.

Usage::

    python benchmarks/compile_threshold.py                    # cold compile (fresh inductor cache)
    python benchmarks/compile_threshold.py --warm             # use the existing inductor cache
    python benchmarks/compile_threshold.py --activations srs --json threshold.json

Compare figures only within one run; the machine's load changes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch


def per_call(module, x, grad, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        xi = x.detach().requires_grad_(True)
        start = time.perf_counter()
        module(xi).backward(grad)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", default="swish,srs,serf,zorro", help="comma-separated registry names")
    parser.add_argument("--sizes", default="10,12,14,16,18,20,22", help="log2 of the element counts")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--warm", action="store_true", help="keep the existing inductor cache (default: a fresh one)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if not args.warm:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="actlab-threshold-")
    if args.threads:
        torch.set_num_threads(args.threads)

    import actlab

    sizes = [1 << int(s) for s in args.sizes.split(",")]
    results = []
    print(f"threads={torch.get_num_threads()} cache={'warm' if args.warm else 'cold'}")
    print(
        f"{'activation':12s} {'elements':>9s} {'fused ms':>9s} {'compiled ms':>11s} {'saved ms':>9s} {'compile s':>9s} {'break-even calls':>16s}"
    )
    for name in args.activations.split(","):
        module = actlab.create(name)
        compile_s = None
        for n in sorted(sizes, reverse=True):  # the first compile sees a large size hint, as "auto" would
            x, grad = torch.randn(n) * 3, torch.randn(n)
            module.backend = "compiled"
            if compile_s is None:
                start = time.perf_counter()
                xi = x.detach().requires_grad_(True)
                module(xi).backward(grad)
                first = time.perf_counter() - start
            compiled = per_call(module, x, grad, args.repeats)
            if compile_s is None:
                compile_s = first - compiled
            module.backend = "fused"
            fused = per_call(module, x, grad, args.repeats)
            saved = fused - compiled
            break_even = compile_s / saved if saved > 0 else float("inf")
            results.append(
                {
                    "activation": name,
                    "elements": n,
                    "fused_ms": fused * 1e3,
                    "compiled_ms": compiled * 1e3,
                    "compile_s": compile_s,
                    "break_even_calls": break_even,
                }
            )
            print(
                f"{name:12s} {n:9d} {fused * 1e3:9.3f} {compiled * 1e3:11.3f} {saved * 1e3:9.3f} {compile_s:9.1f} "
                f"{break_even:16.0f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"threads": torch.get_num_threads(), "warm": args.warm, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
