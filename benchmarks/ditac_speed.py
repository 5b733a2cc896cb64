"""Forward + backward time of DiTAC against native GELU on the same tensor, as ratios from one run.

Paths timed (θ drawn from the prior, ``init="prior"``; regulariser not included; the
released-code gradient quirk is not reproduced), each as ``<mode>/<backend>``:

- ``lut-linear``: the default, table + linear interpolation;
- ``lut-nearest``: the released code's nearest-grid table with straight-through backward;
- ``lut-linear/inductor`` (CPU): the compiled path with inductor's loops instead of the native C
  kernels that both LUTs use for float32 on the CPU, for comparison in the same run;
- ``exact``: closed-form integration of every input, analytic backward;
- backends: ``auto`` (the default: the compiled kernels at or above
  ``actlab.kernels.dispatch.COMPILE_THRESHOLD`` elements on CPU, else eager),
  ``fused`` (the eager custom autograd Function), ``compiled`` (inductor, one loop per
  direction) and ``reference`` (plain autograd; fewer repeats);
- ``gelu``: ``torch.nn.functional.gelu`` (native kernel), the reference of every ratio.

Then the table itself: the time to build the linear LUT's table from θ for 1 and 64 θ rows
(``--table-rows``), with its Jacobian and backward (every training call) and without (what
eval mode rebuilds after θ changes); it does not depend on the input size, so it is what small
inputs and per-channel θ pay.

Each repeat times all candidates in turn (round-robin, each repeat starting one further), so machine load affects them
alike; the median over repeats is reported. Forward-only (``torch.no_grad``, eval mode:
the table is cached) is timed as well. The first call of each path (for ``auto`` and
``compiled`` at this size: the inductor compile, cold when ``TORCHINDUCTOR_CACHE_DIR`` is
empty) is reported separately. The goal for ``lut-linear`` is a ratio below 2 at 2^22
elements.

    python benchmarks/ditac_speed.py --threads 1            # 2^22 float32 on CPU (and CUDA if present)
    python benchmarks/ditac_speed.py --log2-size 20 --threads 1 --json out.json
    python benchmarks/ditac_speed.py --threads 1 --keep-freed-memory   # no page faults in any path (glibc)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time

import _allocator  # a sibling module: the scripts run from benchmarks/
import torch
import torch.nn.functional as F

import actlab
from actlab.activations import ditac as ditac_module
from actlab.kernels import dispatch

MODES = {
    "lut-linear": dict(mode="lut", lut_interp="linear"),
    "lut-nearest": dict(mode="lut", lut_interp="nearest"),
}
LUT_BACKENDS = ("auto", "fused", "compiled", "reference")
#: paths timed only ``--slow-repeats`` times (they are many times slower)
SLOW = ("exact/auto", "lut-linear/reference", "lut-nearest/reference")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def _without_native(active: bool):
    """While active, the linear LUT's compiled path skips its native C kernels (inductor's run)."""
    if not active:
        yield
        return
    original = ditac_module._native_plan
    ditac_module._native_plan = lambda *args: None
    try:
        yield
    finally:
        ditac_module._native_plan = original


def _modules(device: torch.device, backends: tuple[str, ...]) -> dict:
    modules = {"gelu": F.gelu}
    for mode, kw in MODES.items():
        for backend in backends:
            module = actlab.DiTAC(**kw, device=device)
            module.backend = None if backend == "auto" else backend
            modules[f"{mode}/{backend}"] = module
    if "compiled" in backends and device.type == "cpu":
        # the linear LUT's compiled path without its native C kernels: inductor's loops
        module = actlab.DiTAC(**MODES["lut-linear"], device=device)
        module.backend = "compiled"
        modules["lut-linear/inductor"] = module
    modules["exact/auto"] = actlab.DiTAC(mode="exact", device=device)
    return modules


def bench(device: torch.device, size: int, repeats: int, slow_repeats: int, backends=LUT_BACKENDS) -> dict:
    torch.manual_seed(0)
    x = torch.randn(size, device=device)
    grad = torch.randn_like(x)
    modules = _modules(device, backends)

    def train_step(module):
        xi = x.detach().requires_grad_()
        module(xi).backward(grad)

    def eval_step(module):
        with torch.no_grad():
            module(x)

    def timed(name, module, fn, kind):
        is_module = isinstance(module, torch.nn.Module)
        if is_module:
            module.train(kind == "fwd_bwd")
        with _without_native(name.endswith("/inductor")):
            results[name][kind].append(_time(lambda: fn(module), device))
        if is_module:
            module.train()

    results = {name: {"fwd_bwd": [], "fwd": []} for name in modules}
    first_call = {}
    for name, module in modules.items():  # warm-up: compiles where the path compiles
        with _without_native(name.endswith("/inductor")):
            first_call[name] = _time(lambda: train_step(module), device) + _time(lambda: eval_step(module), device)
    names = list(modules)
    for r in range(repeats):
        # A rotating order: a path that always ran right after the same other one would carry
        # that one's after-effects in every sample (measured: the path right after F.gelu ran
        # 0.3-0.5 ms slower with two threads).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            module = modules[name]
            if name in SLOW and r >= slow_repeats:
                continue
            timed(name, module, train_step, "fwd_bwd")
            timed(name, module, eval_step, "fwd")
    medians = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    base = medians["gelu"]
    return {
        name: {
            "fwd_bwd_ms": 1e3 * m["fwd_bwd"],
            "fwd_ms": 1e3 * m["fwd"],
            "fwd_bwd_ratio": m["fwd_bwd"] / base["fwd_bwd"],
            "fwd_ratio": m["fwd"] / base["fwd"],
            "first_call_s": first_call[name],
            "repeats": len(results[name]["fwd_bwd"]),
        }
        for name, m in medians.items()
    }


def table_costs(device: torch.device, rows: tuple[int, ...], repeats: int) -> dict:
    """Milliseconds to build the linear LUT's table from θ, per number of θ rows (1: the paper's
    shared θ; C: per channel): with its Jacobian and backward (every training call) and without
    (what eval mode rebuilds after θ changes). Independent of the input size."""
    from actlab.activations.ditac import lut_tables

    out = {}
    for count in rows:
        module = actlab.DiTAC(num_parameters=count, device=device)
        theta = module.theta.detach().clone().requires_grad_(True)

        def build(theta=theta, module=module):
            return lut_tables(theta, module.vertex_map, module.a, module.b, module.lut_size, "linear", torch.float32)[0]

        def train(build=build):
            table = build()
            table.backward(torch.ones_like(table))

        def rebuild(build=build):
            with torch.no_grad():
                build()

        for fn in (train, rebuild):  # warm-up (and the allocator's first growth)
            fn()
        times = {"train": [], "rebuild": []}
        for _ in range(repeats):
            times["train"].append(_time(train, device))
            times["rebuild"].append(_time(rebuild, device))
        out[count] = {f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log2-size", type=int, default=22, help="number of elements is 2^N (default 22)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slow-repeats", type=int, default=3, help="repeats for the exact mode and the references")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if available)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--table-rows", default="1,64", help="θ rows to time the table build for (comma list; default 1,64)"
    )
    _allocator.add_option(parser)
    args = parser.parse_args()
    _allocator.apply_option(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    size = 2**args.log2_size
    report = {
        "size": size,
        "dtype": "float32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "keep_freed_memory": args.keep_freed_memory,
        "compile_threshold": dispatch.COMPILE_THRESHOLD,
        "machine": platform.processor() or platform.machine(),
        "init": "prior",
        "released_gradient_quirk": False,
        "results": {},
    }
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda":
            report["cuda_device"] = torch.cuda.get_device_name(device)
        results = bench(device, size, args.repeats, args.slow_repeats)
        report["results"][name] = results
        print(f"\n{name}: 2^{args.log2_size} float32 elements, {torch.get_num_threads()} threads, ratios to F.gelu")
        print(f"{'path':<22} {'fwd+bwd ms':>11} {'ratio':>7} {'fwd (eval) ms':>14} {'ratio':>7} {'first call s':>13}")
        for path, r in results.items():
            print(
                f"{path:<22} {r['fwd_bwd_ms']:>11.1f} {r['fwd_bwd_ratio']:>7.2f} {r['fwd_ms']:>14.1f} "
                f"{r['fwd_ratio']:>7.2f} {r['first_call_s']:>13.2f}"
            )
        rows = tuple(int(r) for r in args.table_rows.split(","))
        tables = table_costs(device, rows, args.repeats)
        report.setdefault("tables", {})[name] = tables
        print(f"\n{name}: the linear table ({actlab.DiTAC().lut_size} points) built from θ, ms")
        print(f"{'θ rows':>7} {'training call (with Jacobian, backward)':>40} {'eval rebuild':>13}")
        for count, r in tables.items():
            print(f"{count:>7} {r['train_ms']:>40.2f} {r['rebuild_ms']:>13.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
