"""``actlab list`` and ``actlab show NAME``: the registry, in the terminal."""

from __future__ import annotations

import argparse

from . import UsageError

__all__ = ["configure_list", "run_list", "configure_show", "run_show", "format_table"]


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with left-aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _bounded(info) -> str:
    if info.bounded:
        return "both"
    if info.bounded_below:
        return "below"
    if info.bounded_above:
        return "above"
    return "no"


def configure_list(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--trainable", action="store_true", help="only activations with trainable parameters")
    group.add_argument("--fixed", action="store_true", help="only activations without trainable parameters")
    parser.add_argument("--family", help="only this family (e.g. zorro)")


def run_list(args: argparse.Namespace) -> int:
    import actlab

    trainable = True if args.trainable else False if args.fixed else None
    infos = [actlab.info(n) for n in actlab.list_activations(trainable=trainable)]
    if args.family:
        infos = [i for i in infos if i.family == args.family]
        if not infos:
            families = sorted({actlab.info(n).family for n in actlab.list_activations()})
            raise UsageError(f"no activation in family {args.family!r}; families: {', '.join(families)}")
    rows = [[i.name, i.family, _yes(i.trainable), _bounded(i), i.provenance] for i in infos]
    print(format_table(["name", "family", "trainable", "bounded", "provenance"], rows))
    return 0


def configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registry name or alias (see `actlab list`)")
    parser.add_argument(
        "--at", type=float, nargs="+", default=[-3.0, -1.0, 0.0, 1.0, 3.0], metavar="X", help="inputs to evaluate at"
    )


def run_show(args: argparse.Namespace) -> int:
    import torch

    import actlab

    try:
        info = actlab.info(args.name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    module = actlab.create(info.name)
    print(f"{info.name}  ({info.cls.__module__}.{info.cls.__qualname__})")
    if info.aliases:
        print(f"aliases:     {', '.join(info.aliases)}")
    print(f"family:      {info.family}")
    print(f"formula:     {info.formula}")
    print(f"reference:   {info.reference}")
    print(f"provenance:  {info.provenance}")
    print(
        f"properties:  trainable={_yes(info.trainable)}, bounded={_bounded(info)}, "
        f"smooth (C1)={_yes(info.smooth)}, monotonic={_yes(info.monotonic)}"
    )
    if info.parameters:
        print("parameters:")
        for p in info.parameters:
            print(f"  {p.name} = {p.default!r}  ({p.constraint}{', trainable' if p.trainable else ''})")
    if info.notes:
        print(f"notes:       {info.notes}")
    x = torch.tensor(args.at, dtype=torch.float64)
    with torch.no_grad():
        y = module.to(torch.float64)(x)
    print("values:")
    print(format_table(["x", "f(x)"], [[f"{a:g}", f"{b:.6g}"] for a, b in zip(x.tolist(), y.tolist())]))
    return 0
