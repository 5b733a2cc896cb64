"""Fit PAU (version A) coefficient presets with ``actlab.fit`` and write ``actlab/data/pau_presets.json``.

For every target and degree pair, the rational function is fitted by least squares on a uniform grid
over ``--range`` (Adam, then L-BFGS; float64) from a few starts, keeping the best mean squared error:
all ones (the start of the official fitting routine, ``rational/utils/utils.py``), all 0.1, the preset
already in the file if there is one, and the best fit of the next lower degree pair padded to this one
(the same function, so a higher degree never fits worse). Entries whose ``source`` names the official package
(the leaky_relu (5, 4) coefficients of ``rational_activations``) are kept as they are; the script
refits them anyway and prints both errors, so that the fitting method is checked against them.

    python scripts/fit_pau_presets.py                         # all targets, degrees 3/2 4/3 5/4 6/5
    python scripts/fit_pau_presets.py --targets gelu --degrees 5,4 --output /tmp/presets.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import torch
from torch import nn

import actlab
from actlab import PAU, fit
from actlab.fitting import target_function

#: target name -> what actlab.fit is given (registry names where the registry has the function).
TARGETS: dict[str, object] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",  # nn.LeakyReLU's default slope 0.01, PAU's default
    "gelu": "gelu",
    "silu": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "identity": nn.Identity(),
}
DEGREES = ((3, 2), (4, 3), (5, 4), (6, 5))
OFFICIAL_SOURCE = "rational_activations"


def grid_errors(module: nn.Module, target, x_range: tuple[float, float], points: int) -> tuple[float, float]:
    """(max, root-mean-square) error of ``module`` against ``target`` on the uniform grid."""
    x = torch.linspace(*x_range, points, dtype=torch.float64)
    with torch.no_grad():
        error = module.double().eval()(x) - target_function(target)(x)
    return float(error.abs().max()), float(error.square().mean().sqrt())


def fit_preset(
    target,
    degrees: tuple[int, int],
    x_range: tuple[float, float] = (-3.0, 3.0),
    *,
    points: int = 2001,
    steps: int = 500,
    starts: list[tuple[list[float], list[float]]] | None = None,
) -> dict:
    """Best least-squares PAU fit over the starts; a preset entry (numerator, denominator, errors)."""
    m, n = degrees
    starts = list(starts or []) + [([1.0] * (m + 1), [1.0] * n), ([0.1] * (m + 1), [0.1] * n)]
    best: dict | None = None
    for numerator, denominator in starts:
        module = PAU(degrees, numerator=numerator, denominator=denominator, dtype=torch.float64)
        fit(module, target, x_range, points=points, steps=steps, method="optimizer")
        max_error, rmse = grid_errors(module, target, x_range, points)
        if not math.isfinite(rmse):
            continue
        if best is None or rmse < best["rmse"]:
            best = {
                "numerator": module.numerator.detach()[0].tolist(),
                "denominator": module.denominator.detach()[0].tolist(),
                "x_range": list(x_range),
                "max_error": max_error,
                "rmse": rmse,
            }
    if best is None:
        raise RuntimeError(f"no start gave a finite fit for degrees {degrees}")
    best["source"] = (
        f"scripts/fit_pau_presets.py: actlab.fit least squares on {points} points, best of {len(starts)} starts"
    )
    return best


def padded(entry: dict, degrees: tuple[int, int]) -> tuple[list[float], list[float]]:
    """A lower-degree preset as a start for ``degrees``: the same function up to tiny denominator terms.

    New denominator coefficients start at 1e-9, not 0: |b x^k| has zero gradient at b = 0 but a
    full one (sign(b) |x^k|) at any b != 0, and 1e-9 |x^k| changes nothing on the fitting range.
    """
    m, n = degrees
    numerator = entry["numerator"] + [0.0] * (m + 1 - len(entry["numerator"]))
    denominator = entry["denominator"] + [1e-9] * (n - len(entry["denominator"]))
    return numerator, denominator


def dumps(data: dict) -> str:
    """JSON with each coefficient list on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--degrees", nargs="+", default=[f"{m},{n}" for m, n in DEGREES], help="pairs m,n")
    parser.add_argument("--range", type=float, nargs=2, default=(-3.0, 3.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--points", type=int, default=2001)
    parser.add_argument("--steps", type=int, default=500)
    default_path = Path(actlab.__file__).resolve().parent / "data" / "pau_presets.json"
    parser.add_argument(
        "--output", type=Path, default=default_path, help=f"JSON file to update (default: {default_path})"
    )
    args = parser.parse_args(argv)
    try:
        degrees = sorted(tuple(int(v) for v in d.split(",")) for d in args.degrees)
    except ValueError:
        parser.error(f"--degrees takes pairs like 5,4; got {args.degrees}")
    x_range = (float(args.range[0]), float(args.range[1]))
    torch.set_num_threads(1)  # tiny problems: intra-op threads only add overhead

    data = (
        json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() else {"version": 1, "presets": {}}
    )
    if data.get("version") != 1:
        print(f"{args.output}: unknown preset file version {data.get('version')!r}", file=sys.stderr)
        return 2
    presets = data["presets"]
    print(f"{'target':<11} {'m,n':>4} {'max err':>9} {'rmse':>9}  note")
    for name in args.targets:
        lower: dict | None = None
        for m, n in degrees:
            key = f"{m},{n}"
            existing = presets.get(name, {}).get(key)
            starts = [(existing["numerator"], existing["denominator"])] if existing else []
            if lower is not None and len(lower["numerator"]) <= m + 1 and len(lower["denominator"]) <= n:
                starts.append(padded(lower, (m, n)))
            start = time.perf_counter()
            entry = fit_preset(TARGETS[name], (m, n), x_range, points=args.points, steps=args.steps, starts=starts)
            note = f"{time.perf_counter() - start:.0f} s"
            if existing and OFFICIAL_SOURCE in existing.get("source", ""):
                official = PAU((m, n), numerator=existing["numerator"], denominator=existing["denominator"])
                off_max, off_rmse = grid_errors(official, TARGETS[name], x_range, args.points)
                existing.update(max_error=off_max, rmse=off_rmse)
                note += f"; official kept: max {off_max:.5f}, rmse {off_rmse:.6f} (refit/official rmse {entry['rmse'] / off_rmse:.4f})"
            else:
                presets.setdefault(name, {})[key] = entry
            lower = entry
            print(f"{name:<11} {key:>4} {entry['max_error']:>9.5f} {entry['rmse']:>9.6f}  {note}")
    args.output.write_text(dumps(data) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
