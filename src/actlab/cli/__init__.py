"""The ``actlab`` command line.

Each sub-command lives in its own module and is imported only when used, so
``actlab list`` stays fast and needs no optional dependency. A sub-command module
provides ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "COMMANDS"]

#: sub-command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("actlab.cli.catalogue", "list the registered activations"),
    "show": ("actlab.cli.catalogue", "show one activation: formula, parameters, reference, values"),
    "plot": ("actlab.cli.plot", "draw activations and their derivatives to an image file"),
    "properties": ("actlab.cli.properties", "measured properties (bounds, monotonicity, extrema, N(0,1) moments)"),
}


class UsageError(Exception):
    """A problem with the user's input: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="actlab", description="Trainable activation functions: library and lab.")
    parser.add_argument("--version", action="version", version=f"actlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module, _command=name)
        _configure = (
            getattr(importlib.import_module(module), f"configure_{name}", None)
            or importlib.import_module(module).configure
        )
        _configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    run = getattr(module, f"run_{args._command}", None) or module.run
    try:
        return int(run(args) or 0)
    except UsageError as err:
        print(f"actlab {args._command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
