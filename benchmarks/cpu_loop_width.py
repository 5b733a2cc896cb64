"""SIMD vectors per loop iteration in the compiled CPU kernels: forward and backward at each width, as ratios to SiLU.

The measurement behind ``ElementwiseOp.cpu_vectors`` (``docs/performance.md``,
"Wider CPU loops"). For each elementwise activation, the inductor kernels of its
op are built at every requested width (``compiled.forward(..., vectors=n)``)
and called directly on the canonical view of one float32 input, forward and
backward separately, round-robin with ATen's ``silu`` and ``silu_backward`` on
the same input in one process. Each figure is a median over ``--repeats``
rounds divided by SiLU's median in the same rounds. The width actlab picks for
this input (``compiled.loop_vectors`` of the op's ``cpu_vectors``) is marked
with ``*``. Build time is excluded (every kernel is called once before timing).

Usage::

    python benchmarks/cpu_loop_width.py --threads 1 --keep-freed-memory
    python benchmarks/cpu_loop_width.py --activations serf,pau --widths 1,2,4
    python benchmarks/cpu_loop_width.py --layout cols --channels 8    # per-channel, channels fastest
    python benchmarks/cpu_loop_width.py --layout rows --channels 64 --inner 49

Only float32 CPU graphs are widened (see ``actlab.kernels.compiled``); on a CPU
where inductor finds no vector ISA every width runs the same scalar loops.
"""

from __future__ import annotations

import argparse
import json
import platform

import _allocator  # a sibling module: the scripts run from benchmarks/
import torch
import torch.nn.functional as F
from speed import activation_names, time_steps_round_robin  # sibling modules: the scripts run from benchmarks/

import actlab
from actlab.elementwise import CPU_VECTOR_COUNTS, ElementwiseOp, param_tensor
from actlab.kernels import compiled
from actlab.kernels.layout import plan


def elementwise_names(requested: str | None) -> list[str]:
    names = activation_names(requested)
    ours = [n for n in names if isinstance(getattr(actlab.create(n), "op", None), ElementwiseOp)]
    if requested and len(ours) < len(names):
        raise SystemExit(f"not elementwise (no ElementwiseOp, no such kernels): {sorted(set(names) - set(ours))}")
    return ours


def make_input(layout: str, channels: int, inner: int, size: int) -> tuple[torch.Tensor, int | None]:
    """A float32 input of about ``size`` elements in the requested canonical layout, and its channel dim."""
    if layout == "shared":
        return torch.randn(size) * 3, None
    if layout == "rows":
        return torch.randn(max(1, size // (channels * inner)), channels, inner) * 3, 1
    return torch.randn(max(1, size // channels), channels) * 3, 1


def kernels_for(module, x: torch.Tensor, widths: list[int]) -> tuple[dict[str, callable], int]:
    """Forward and backward closures over the op's compiled kernels at each width, and the width actlab picks."""
    op = module.op
    raw = module.op_params() if hasattr(module, "op_params") else ()
    # Shaped for broadcasting against x, as actlab.elementwise.apply shapes them.
    params = [param_tensor(p.detach(), n, x, getattr(module, "channel_dim", 1)) for p, n in zip(raw, op.param_names)]
    layout = plan(x, params)
    xv, pv = layout.view(x), layout.params(params, torch.float32)
    grad = torch.randn_like(xv)
    needs = (True,) * (1 + len(pv))
    fns = {}
    for w in widths:
        fns[f"fwd{w}"] = lambda w=w: compiled.forward(op, layout, xv, pv, vectors=w)
        fns[f"bwd{w}"] = lambda w=w: compiled.backward(op, layout, xv, grad, pv, needs, vectors=w)
    return fns, compiled.loop_vectors(op.cpu_vectors, xv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activations", help="comma-separated registry names (default: every elementwise one)")
    parser.add_argument("--widths", default="1,2,4,8", help="vectors per iteration to compare (default 1,2,4,8)")
    parser.add_argument("--layout", choices=("shared", "rows", "cols"), default="shared")
    parser.add_argument("--channels", type=int, default=64, help="per-channel parameters (rows/cols layouts)")
    parser.add_argument("--inner", type=int, default=64, help="elements per channel run (rows layout)")
    parser.add_argument("--log2-size", type=int, default=22, help="about 2^N elements (default 22)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    _allocator.add_option(parser)
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",") if w]
    if any(w not in CPU_VECTOR_COUNTS for w in widths):
        raise SystemExit(f"--widths: each must be 1, 2, 4 or 8, got {args.widths!r}")
    _allocator.apply_option(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    x, channel_dim = make_input(args.layout, args.channels, args.inner, 2**args.log2_size)
    grad = torch.randn_like(x)
    silu = {"silu_fwd": lambda: F.silu(x), "silu_bwd": lambda: torch.ops.aten.silu_backward(grad, x)}
    report = {
        "shape": list(x.shape),
        "layout": args.layout,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "keep_freed_memory": args.keep_freed_memory,
        "repeats": args.repeats,
        "results": {},
    }
    print(
        f"shape={list(x.shape)} layout={args.layout} threads={torch.get_num_threads()} "
        f"capability={report['cpu_capability']}; ratios to SiLU's forward / backward; * = the width actlab picks here"
    )
    print(f"{'activation':<18} {'forward, widths ' + args.widths:>34}   {'backward, widths ' + args.widths:>34}")
    for name in elementwise_names(args.activations):
        kwargs = {}
        if channel_dim is not None:
            if not issubclass(actlab.info(name).cls, actlab.ParametricActivation):
                print(f"{name:<18} (no trainable parameters: always the shared layout)")
                continue
            kwargs = {"num_parameters": args.channels, "channel_dim": channel_dim}
        module = actlab.create(name, **kwargs)
        kernels, chosen = kernels_for(module, x, widths)
        fns = {**silu, **kernels}
        for fn in fns.values():  # build every kernel before timing
            fn()
        t = time_steps_round_robin(fns, args.repeats, 2, torch.device("cpu"))
        row = {
            "chosen_width": chosen,
            "forward": {w: t[f"fwd{w}"] / t["silu_fwd"] for w in widths},
            "backward": {w: t[f"bwd{w}"] / t["silu_bwd"] for w in widths},
            "silu_ms": {"forward": 1e3 * t["silu_fwd"], "backward": 1e3 * t["silu_bwd"]},
        }
        report["results"][name] = row

        def cells(ratios):
            return " ".join(f"{r:5.2f}{'*' if w == row['chosen_width'] else ' '}" for w, r in ratios.items())

        print(f"{name:<18} {cells(row['forward']):>34}   {cells(row['backward']):>34}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
