"""``actlab properties [NAMES... | --all] [--markdown FILE] [--check]``: measured properties as a table.

The table compares what is measured (:func:`actlab.properties`) with what the
registry declares; ``--check`` turns any disagreement into exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys

from . import UsageError
from .catalogue import format_table

__all__ = ["configure", "run", "HEADERS", "property_cells", "markdown_table"]

HEADERS = [
    "name",
    "bounded",
    "monotonic",
    "C1",
    "minimum (x, f)",
    "maximum (x, f)",
    "f(0)",
    "f'(0)",
    "f' range",
    "zero crossings",
    "E f(Z)",
    "Var f(Z)",
    "registry",
]


def _number(v: float) -> str:
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    # Rounding residue (e.g. E tanh(Z) = -1e-16) is shown as the 0 it is.
    return "0" if abs(v) < 1e-12 else f"{v:.4g}"


def _point(p: tuple[float, float] | None) -> str:
    return "none" if p is None else f"({_number(p[0])}, {_number(p[1])})"


def _bounded(p) -> str:
    if p.bounded_below and p.bounded_above:
        return "both"
    return "below" if p.bounded_below else "above" if p.bounded_above else "no"


def property_cells(p) -> list[str]:
    """One table row for a :class:`actlab.Properties` (in the order of :data:`HEADERS`)."""
    mismatches = p.mismatches()
    zeros = ", ".join(_number(z) for z in p.zero_crossings[:4]) + (", ..." if len(p.zero_crossings) > 4 else "")
    return [
        p.name,
        _bounded(p),
        "yes" if p.monotonic else "no",
        "yes" if p.smooth_c1 else "no",
        _point(p.minimum),
        _point(p.maximum),
        _number(p.value_at_zero),
        _number(p.derivative_at_zero),
        f"[{_number(p.derivative_range[0])}, {_number(p.derivative_range[1])}]",
        zeros or "none",
        _number(p.mean),
        _number(p.var),
        "-" if p.registry_name is None else ("agrees" if not mismatches else "DIFFERS: " + "; ".join(mismatches)),
    ]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="registry names or aliases (see `actlab list`)")
    parser.add_argument("--all", action="store_true", help="every registered activation")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown to FILE")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if a measurement disagrees with the registry's flags"
    )


def run(args: argparse.Namespace) -> int:
    import actlab

    if args.all and args.names:
        raise UsageError("give activation names or --all, not both")
    if not args.all and not args.names:
        raise UsageError("give activation names (see `actlab list`) or --all")
    names = actlab.list_activations() if args.all else args.names
    for name in names:
        try:
            actlab.info(name)
        except ValueError as err:
            raise UsageError(str(err)) from None
    rows, failed, differ = [], [], []
    for name in names:
        try:
            p = actlab.properties(name)
        except (ValueError, RuntimeError) as err:
            failed.append(f"{name}: {err}")
            continue
        rows.append(property_cells(p))
        if p.mismatches():
            differ.append(name)
    print(format_table(HEADERS, rows))
    print("\nZ ~ N(0, 1); E and Var by Simpson's rule on [-20, 20]. Decision rules: help(actlab.properties).")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown_table(HEADERS, rows) + "\n")
        print(f"wrote {args.markdown}")
    for line in failed:
        print(f"actlab properties: could not measure {line}", file=sys.stderr)
    if differ:
        print(f"measured properties differ from the registry for: {', '.join(differ)}", file=sys.stderr)
    return 1 if failed or (args.check and differ) else 0
