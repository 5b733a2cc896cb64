"""Speed and memory of every actlab activation, as ratios to native SiLU measured in the same process.

For each activation and each path (reference, eager fused, compiled, actlab's
native C kernels for float32 on CPU, and Triton on CUDA) it measures forward+backward time and the bytes kept for backward, at
2^22 elements (float32) on CPU and 2^26 elements (float32 and bfloat16) on a
GPU, as ratios to ``F.silu`` on the same input. Then it times training steps of
a small CNN (28×28 inputs) and a small Transformer block with each activation,
as ratios to the same model with ReLU and with GELU.

Usage::

    python benchmarks/speed.py                          # everything, on CUDA if present, else CPU
    python benchmarks/speed.py --quick                  # fewer repeats, smaller end-to-end run
    python benchmarks/speed.py --activations srs,serf --json speed.json
    python benchmarks/speed.py --device cpu --per-channel --no-end-to-end
    python benchmarks/speed.py --threads 1 --keep-freed-memory     # no page faults in any path (glibc)

Timing method: every candidate is run in the same loop as SiLU, round-robin,
so that load on a shared machine affects both alike; the figure is the ratio
of medians over ``--repeats`` rounds after warm-up. First-call (compile) time is
reported separately and never enters a ratio. Saved-for-backward bytes are
counted with ``torch.autograd.graph.saved_tensors_hooks`` (distinct storages).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import _allocator  # a sibling module: the scripts run from benchmarks/
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.elementwise import ElementwiseOp

#: in the order of preference of the "fast" column: the last one measured is what "auto" takes
PATHS = ("reference", "fused", "compiled", "native", "triton")


# -- measurement ----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_bytes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Bytes of distinct storages that autograd keeps for backward when computing ``fn(x)``."""
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.detach().requires_grad_(True))
    return sum(storages.values())


def _step(fn, x, grad) -> None:
    xi = x.detach().requires_grad_(True)
    fn(xi).backward(grad)


def time_round_robin(fns: dict[str, Callable], x, grad, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of forward+backward per candidate, candidates interleaved round by round."""
    device = x.device
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            _step(fn, x, grad)
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def first_call_seconds(fn, x, grad) -> float:
    """Time of the first forward+backward (includes any compilation)."""
    _sync(x.device)
    start = time.perf_counter()
    _step(fn, x, grad)
    _sync(x.device)
    return time.perf_counter() - start


# -- what to measure ------------------------------------------------------------------------------


def activation_names(requested: str | None) -> list[str]:
    ours = [n for n in actlab.list_activations() if issubclass(actlab.info(n).cls, actlab.Activation)]
    if not requested:
        return ours
    names = [actlab.info(n).name for n in requested.split(",") if n]
    unknown = [n for n in names if n not in ours]
    if unknown:
        raise SystemExit(f"not actlab activations: {unknown}; choose from {ours}")
    return names


def make_module(name: str, per_channel: int | None, device, dtype) -> nn.Module:
    kwargs = {}
    if per_channel and issubclass(actlab.info(name).cls, actlab.ParametricActivation):
        kwargs["num_parameters"] = per_channel
    return actlab.create(name, **kwargs).to(device=device, dtype=dtype if dtype == torch.float64 else None)


def paths_for(module: nn.Module, device: torch.device, dtype: torch.dtype) -> list[str]:
    if not isinstance(getattr(module, "op", None), ElementwiseOp):
        return ["reference", "fused", "compiled"]  # own autograd Function and inductor kernels (DiTAC, SLAF)
    paths = ["reference", "fused", "compiled"]
    if device.type == "cpu" and dtype == torch.float32 and module.op.native is not None:
        paths.append("native")
    if device.type == "cuda":
        from actlab.kernels import dispatch

        try:
            dispatch.choose(module.op, torch.empty(1, device=device, dtype=dtype), "triton")
            paths.append("triton")
        except ValueError as err:  # no Triton, or no Triton math for this op
            print(f"# {module.op.name}: {err}")
    return paths


def with_backend(module: nn.Module, path: str) -> Callable:
    def run(x):
        module.backend = path
        return module(x)

    return run


@dataclass
class Row:
    activation: str
    dtype: str
    path: str
    ms: float
    ratio_to_silu: float
    saved_bytes: int
    saved_inputs: float
    first_call_s: float | None = None
    speedup_over_reference: float | None = None


@dataclass
class Report:
    device: str
    shape: list[int]
    per_channel: int | None
    repeats: int
    silu_ms: dict[str, float] = field(default_factory=dict)
    silu_saved_inputs: float = 0.0
    rows: list[Row] = field(default_factory=list)
    end_to_end: list[dict] = field(default_factory=list)
    environment: dict = field(default_factory=dict)


def micro(report: Report, names, device, dtype, shape, repeats, warmup) -> None:
    x = torch.randn(shape, device=device, dtype=dtype) * 3
    grad = torch.randn(shape, device=device, dtype=dtype)
    input_bytes = x.numel() * x.element_size()
    silu = nn.SiLU()
    report.silu_saved_inputs = saved_bytes(silu, x) / input_bytes
    for name in names:
        module = make_module(name, report.per_channel, device, dtype)
        paths = paths_for(module, device, dtype)
        firsts = {p: first_call_seconds(with_backend(module, p), x, grad) for p in paths}
        fns = {"silu": silu, **{p: with_backend(module, p) for p in paths}}
        medians = time_round_robin(fns, x, grad, repeats, warmup)
        key = str(dtype).replace("torch.", "")
        report.silu_ms.setdefault(key, [])
        report.silu_ms[key].append(medians["silu"] * 1e3)
        for p in paths:
            saved = saved_bytes(with_backend(module, p), x)
            report.rows.append(
                Row(
                    activation=name,
                    dtype=key,
                    path=p,
                    ms=medians[p] * 1e3,
                    ratio_to_silu=medians[p] / medians["silu"],
                    saved_bytes=saved,
                    saved_inputs=saved / input_bytes,
                    first_call_s=firsts[p] if p in ("compiled", "triton") else None,
                    speedup_over_reference=medians["reference"] / medians[p],
                )
            )
        print_rows(report, name, key)


# -- end to end ----------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Two 3×3 convolutions on 28×28 inputs, each followed by the activation under test."""

    def __init__(self, act: Callable[[int], nn.Module]):
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(1, 32, 3, padding=1), act(32)
        self.conv2, self.act2 = nn.Conv2d(32, 64, 3, padding=1), act(64)
        self.head = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(self.act1(self.conv1(x)), 2)
        x = F.max_pool2d(self.act2(self.conv2(x)), 2)
        return self.head(x.flatten(1))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP (4× width) with the activation under test in the MLP."""

    def __init__(self, act: Callable[[int], nn.Module], dim: int = 256, heads: int = 4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), act(4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def _act_factory(name: str) -> Callable[[int], nn.Module]:
    def make(channels: int) -> nn.Module:
        if name in ("relu", "gelu"):
            return actlab.create(name)
        return make_module(name, None, "cpu", torch.float32)

    return make


def end_to_end(report: Report, names, device, repeats, warmup, quick: bool) -> None:
    """Training-step time of each model, all models of one kind timed round-robin (as in :func:`micro`)."""
    batch_cnn, batch_tf, seq = (64, 8, 64) if quick else (128, 16, 128)
    setups = {
        "cnn": (lambda act: SmallCNN(act), torch.randn(batch_cnn, 1, 28, 28, device=device)),
        "transformer": (lambda act: TransformerBlock(act), torch.randn(batch_tf, seq, 256, device=device)),
    }
    for model_name, (build, x) in setups.items():
        steps, firsts = {}, {}
        for name in ["relu", "gelu", *names]:
            torch.manual_seed(0)
            model = build(_act_factory(name)).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)

            def train_step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                model(x).square().mean().backward()
                opt.step()

            steps[name] = train_step
            firsts[name] = _time(train_step, 1, 0, device)  # includes any compile
        medians = time_steps_round_robin(steps, repeats, warmup, device)
        for name, median in medians.items():
            report.end_to_end.append(
                {
                    "model": model_name,
                    "activation": name,
                    "ms": median * 1e3,
                    "first_s": firsts[name],
                    "vs_relu": median / medians["relu"],
                    "vs_gelu": median / medians["gelu"],
                }
            )


def _time(step, repeats, warmup, device) -> float:
    return time_steps_round_robin({"step": step}, repeats, warmup, device)["step"]


def time_steps_round_robin(steps: dict[str, Callable], repeats, warmup, device) -> dict[str, float]:
    """Median seconds of each no-argument call, the calls interleaved round by round."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(warmup + repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


# -- output ---------------------------------------------------------------------------------------


def _fmt(v, spec=".2f") -> str:
    return "—" if v is None else format(v, spec)


def print_rows(report: Report, name: str, dtype: str) -> None:
    rows = {r.path: r for r in report.rows if r.activation == name and r.dtype == dtype}
    cells = [f"{name:18s}", f"{dtype:8s}"]
    for p in PATHS:
        cells.append(f"{_fmt(rows[p].ratio_to_silu) if p in rows else '—':>9s}")
    fast = rows.get("triton") or rows.get("native") or rows.get("compiled") or rows.get("fused")
    cells += [
        f"{rows['reference'].saved_inputs:>8.2f}",
        f"{fast.saved_inputs:>8.2f}",
        f"{_fmt(fast.speedup_over_reference):>9s}",
        f"{_fmt(fast.first_call_s, '.1f'):>8s}",
    ]
    print(" ".join(cells), flush=True)


def print_header(report: Report) -> None:
    print(
        f"device={report.device} shape={report.shape} per_channel={report.per_channel} repeats={report.repeats}; "
        "time = forward+backward as a multiple of F.silu on the same input; saved = multiples of the input's bytes"
    )
    print(
        f"{'activation':18s} {'dtype':8s} "
        + " ".join(f"{p + '×':>9s}" for p in PATHS)
        + f" {'saved ref':>8s} {'saved fast':>8s} {'fast/ref':>9s} {'build s':>8s}"
    )


def print_end_to_end(report: Report) -> None:
    print("\ntraining step time (forward, backward, SGD step) as a ratio to the same model with ReLU / GELU")
    print(f"{'model':12s} {'activation':18s} {'ms':>9s} {'vs relu':>8s} {'vs gelu':>8s} {'first s':>8s}")
    for r in report.end_to_end:
        print(
            f"{r['model']:12s} {r['activation']:18s} {r['ms']:9.2f} {r['vs_relu']:8.2f} {r['vs_gelu']:8.2f} "
            f"{r['first_s']:8.1f}"
        )


def summary(report: Report) -> dict:
    """Goal check: the auto (fastest) path of each elementwise activation against the issue's targets."""
    out = {}
    for dtype in sorted({r.dtype for r in report.rows}):
        fast = {}
        for r in report.rows:
            if r.dtype == dtype and r.path in ("compiled", "native", "triton", "fused"):
                best = fast.get(r.activation)
                if best is None or PATHS.index(r.path) > PATHS.index(best.path):
                    fast[r.activation] = r
        ratios = [r.ratio_to_silu for r in fast.values()]
        out[dtype] = {
            "median_ratio": statistics.median(ratios) if ratios else math.nan,
            "max_ratio": max(ratios) if ratios else math.nan,
            "worst": max(fast.values(), key=lambda r: r.ratio_to_silu).activation if fast else None,
            "min_speedup_over_reference": min(r.speedup_over_reference for r in fast.values()) if fast else math.nan,
            "max_saved_inputs": max(r.saved_inputs for r in fast.values()) if fast else math.nan,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--activations", help="comma-separated registry names (default: every actlab activation)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller end-to-end run")
    parser.add_argument("--repeats", type=int, help="timed rounds per measurement (default 21; 7 with --quick)")
    parser.add_argument("--per-channel", type=int, metavar="C", help="per-channel parameters (C channels on dim 1)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the training-step figures")
    parser.add_argument("--no-micro", action="store_true", help="skip the per-activation figures")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    _allocator.add_option(parser)
    args = parser.parse_args(argv)
    _allocator.apply_option(args)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    names = activation_names(args.activations)
    repeats = args.repeats or (7 if args.quick else 21)
    warmup = 2
    numel = 1 << (26 if device.type == "cuda" else 22)
    channels = args.per_channel or 64
    shape = [numel // (channels * 64 * 64), channels, 64, 64]
    dtypes = [torch.float32, torch.bfloat16] if device.type == "cuda" else [torch.float32]

    report = Report(device=str(device), shape=shape, per_channel=args.per_channel, repeats=repeats)
    report.environment = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "keep_freed_memory": args.keep_freed_memory,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "compile_threshold": __import__("actlab.kernels.dispatch", fromlist=["x"]).COMPILE_THRESHOLD,
    }
    if not args.no_micro:
        print_header(report)
        for dtype in dtypes:
            micro(report, names, device, dtype, shape, repeats, warmup)
    for dtype, s in summary(report).items():
        print(
            f"\n[{dtype}] fast path: median {s['median_ratio']:.2f}× SiLU, worst {s['max_ratio']:.2f}× ({s['worst']}), "
            f"at least {s['min_speedup_over_reference']:.1f}× faster than the reference, "
            f"saves at most {s['max_saved_inputs']:.2f} inputs (SiLU: {report.silu_saved_inputs:.2f})"
        )
    if not args.no_end_to_end:
        end_to_end(report, names, device, repeats, warmup, args.quick)
        print_end_to_end(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({**asdict(report), "summary": summary(report)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
