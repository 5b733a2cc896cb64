"""One error for an unknown name, shared by the task and model catalogues."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["unknown_name"]


def unknown_name(kind: str, name: object, known: Iterable[str]) -> ValueError:
    """A ``ValueError`` for an unknown ``kind`` name that lists every known name, closest first.

    Listing all names (not only the close ones) matters because the catalogues are
    short and a user who misremembers a name usually wants to see the choices.
    """
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=len(known), cutoff=0.0)
    return ValueError(f"unknown {kind} {name!r}; known {kind}s (closest first): {', '.join(close)}")
