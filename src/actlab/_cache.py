"""Where actlab keeps what it builds or generates on first use (native kernels, generated datasets)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ACTLAB_CACHE_DIR``, else ``~/.cache/actlab`` (not created here)."""
    return Path(os.environ.get("ACTLAB_CACHE_DIR") or Path.home() / ".cache" / "actlab")
