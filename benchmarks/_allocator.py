"""Keeping freed memory inside the process, so that timings compare computation with computation.

glibc hands large freed blocks back to the kernel (blocks above ``M_MMAP_THRESHOLD`` are
``mmap``-ed, and the top of the heap is trimmed above ``M_TRIM_THRESHOLD``). The next
allocation of that size then page-faults on every 4 KiB page it touches. A native op and an
actlab path allocate different numbers of fresh buffers, and whether a given buffer comes
back faulting depends on the history of the heap, so a ratio can jump between runs: native
GELU forward+backward on 2^22 float32 elements took 26.9 ms in one run of
``ditac_speed.py`` and 16.2 ms in another on the same machine, while DiTAC took 51.9 and
51.7 ms. :func:`keep_freed_memory` asks glibc to serve large blocks from the heap and never
to trim it, so that no timed path pays those faults. It is opt-in (``--keep-freed-memory``
in the benchmarks that use it): a training process does page-fault, sometimes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> None:
    """Raise glibc's mmap and trim thresholds to 1 GiB and 2 GiB for this process.

    Raises ``SystemExit`` with the reason where that is not possible (no glibc ``mallopt``).
    """
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        raise SystemExit("--keep-freed-memory needs glibc's mallopt (Linux with glibc); run without it")
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)):
        raise SystemExit("--keep-freed-memory: glibc refused the new malloc thresholds; run without it")


def add_option(parser) -> None:
    """Give a benchmark's ``argparse`` parser the ``--keep-freed-memory`` flag (acted on by :func:`apply_option`)."""
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="keep freed memory in the process (glibc), so no path pays page faults for fresh buffers",
    )


def apply_option(args) -> None:
    """Call :func:`keep_freed_memory` if the parsed arguments ask for it."""
    if args.keep_freed_memory:
        keep_freed_memory()
