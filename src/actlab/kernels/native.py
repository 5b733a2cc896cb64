"""C kernels for the CPU, built with the system's C compiler at first use and called through ctypes.

Where inductor's C++ cannot express what a kernel needs (DiTAC's table lookups: it loads each lane
of a gather separately, through the stack), actlab ships the kernel's C source
(``actlab/kernels/*.c``, no Python headers, no torch headers) and compiles it the first time a
call needs it: about a second, once per machine, nothing at install or import. The library is
cached under ``$ACTLAB_CACHE_DIR`` (default ``~/.cache/actlab``, else a temporary directory),
keyed by the source, the flags, the compiler's version and the CPU (``-march=native``), so a
cache shared between machines never hands one machine another's code.

A kernel that cannot be built (no compiler, a compiler error) raises
:class:`~actlab.kernels.dispatch.KernelUnavailable`; its callers then use their other paths.
Calls run on ``torch.get_num_threads()`` Python threads, each on its own part of the input
(ctypes releases the GIL for the duration of a foreign call).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch

from .._cache import cache_root
from .dispatch import KernelUnavailable

__all__ = ["library", "run_parallel", "split", "FLAGS"]

#: -fno-trapping-math lets the compiler evaluate both sides of a select (so loops with selects
#: vectorise); -fno-math-errno lets it inline floor. Neither changes a result: no fast-math.
#: The default GNU dialect, not -std=c99, whose strict ISO mode turns off fused multiply-adds
#: (DiTAC's forward kernel 3.7 against 2.9 ms at 2^22); -mtune=generic because a compiler older
#: than the CPU guesses its tuning (gcc 12 on AMD Zen 5: forward 4.0 against 3.1 ms).
FLAGS = ("-O3", "-march=native", "-mtune=generic", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")

_libraries: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate.split()[0]
    raise KernelUnavailable("native kernels") from FileNotFoundError(
        "no C compiler found (set CC, or install gcc or clang)"
    )


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU's model and feature flags (Linux), else the platform."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() + platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(keep)))


def _cache_dir() -> Path:
    path = cache_root() / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
        return path
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"actlab-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def _build(name: str) -> Path:
    source = resources.files("actlab.kernels").joinpath(f"{name}.c").read_bytes()
    compiler = _compiler()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelUnavailable(f"native kernel {name!r}") from err
    key = hashlib.sha256(
        b"\0".join([source, " ".join(FLAGS).encode(), compiler.encode(), version.encode(), _cpu_identity().encode()])
    ).hexdigest()[:24]
    directory = _cache_dir()
    target = directory / f"{name}-{key}.so"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=directory) as work:
        src = Path(work) / f"{name}.c"
        src.write_bytes(source)
        built = Path(work) / f"{name}.so"
        try:
            result = subprocess.run(
                [compiler, *FLAGS, str(src), "-o", str(built)], capture_output=True, text=True, timeout=300
            )
        except (OSError, subprocess.SubprocessError) as err:
            raise KernelUnavailable(f"native kernel {name!r}") from err
        if result.returncode != 0:
            raise KernelUnavailable(f"native kernel {name!r}") from RuntimeError(
                f"{compiler} failed ({result.returncode}): {result.stderr.strip()[:2000]}"
            )
        os.replace(built, target)  # atomic: concurrent builders leave one complete file
    return target


def library(name: str) -> ctypes.CDLL:
    """The compiled ``actlab/kernels/<name>.c``, built on first use (then cached on disk and here)."""
    lib = _libraries.get(name)
    if lib is None:
        with _lock:
            lib = _libraries.get(name)
            if lib is None:
                try:
                    lib = ctypes.CDLL(str(_build(name)))
                except OSError as err:
                    raise KernelUnavailable(f"native kernel {name!r}") from err
                _libraries[name] = lib
    return lib


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool for ``workers`` threads; a new one after a fork (a forked child, e.g. a DataLoader
    worker, inherits the pool but not its threads, and work submitted to it would never run)."""
    global _pool, _pool_key
    key = (workers, os.getpid())
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[1] == key[1]:
                _pool.shutdown(wait=False)
            _pool, _pool_key = ThreadPoolExecutor(workers, thread_name_prefix="actlab-native"), key
        return _pool


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """``count`` items as at most ``parts`` (start, length) ranges of near-equal length."""
    parts = max(1, min(parts, count))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def run_parallel(calls: Sequence[Callable[[], None]]) -> None:
    """Run the calls (each a foreign call on its own part of the data) on the thread pool."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    for future in [_executor(torch.get_num_threads()).submit(call) for call in calls]:
        future.result()
