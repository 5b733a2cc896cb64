"""``actlab plot NAMES... --out FILE``: draw activations and their derivatives to a file."""

from __future__ import annotations

import argparse

from . import UsageError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="registry names or aliases (see `actlab list`)")
    parser.add_argument(
        "--out", "-o", required=True, help="output file; the format follows the extension (.png, .svg, .pdf)"
    )
    parser.add_argument(
        "--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("LOW", "HIGH"), help="x range (default: -5 5)"
    )
    parser.add_argument("--no-derivative", action="store_true", help="draw the functions only")
    parser.add_argument("--points", type=int, default=401, help="grid points (default: 401)")
    parser.add_argument("--title", help="figure title")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster formats (default: 150)")


def run(args: argparse.Namespace) -> int:
    import os

    import actlab

    for name in args.names:
        try:
            actlab.info(name)
        except ValueError as err:
            raise UsageError(str(err)) from None
    low, high = args.range
    if not low < high:
        raise UsageError(f"--range needs LOW < HIGH, got {low:g} {high:g}")
    if args.points < 2:
        raise UsageError(f"--points must be at least 2, got {args.points}")
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'actlab[plot]'") from None
    matplotlib.use("Agg")  # a file is written; never open a window
    import matplotlib.pyplot as plt

    from ..plotting import plot

    extension = os.path.splitext(args.out)[1].lstrip(".").lower()
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if extension not in supported:
        raise UsageError(f"cannot write {args.out!r}: unknown format {extension!r}; use one of .png, .svg, .pdf")
    fig, _ = plot(
        args.names,
        x_range=(low, high),
        derivative=not args.no_derivative,
        save=args.out,
        points=args.points,
        title=args.title,
        dpi=args.dpi,
    )
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0
