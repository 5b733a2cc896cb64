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
A call's work is split into ``torch.get_num_threads()`` parts (:func:`split`). Where torch runs on
GNU OpenMP (Linux), the kernels are built with ``-fopenmp`` and bind to torch's own libgomp, so
one call runs the parts on torch's OpenMP threads (:func:`run_parts`): threads of actlab's own
would compete for the cores with torch's workers, which spin for a while after each parallel
torch operation (a kernel ran 1.7-2x slower after one). In a forked child they then need one
thread, as torch's own operations do (libgomp's team does not survive a fork; DataLoader workers
set one thread). Elsewhere the parts run on a pool of Python threads (ctypes releases the GIL for
the duration of a foreign call), renewed after a fork.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch

from .._cache import cache_root
from .dispatch import KernelUnavailable

__all__ = ["library", "uses_openmp", "run_parts", "PerPart", "run_parallel", "split", "element_parts", "FLAGS"]

#: -fno-trapping-math lets the compiler evaluate both sides of a select (so loops with selects
#: vectorise); -fno-math-errno lets it inline floor. Neither changes a result: no fast-math.
#: The default GNU dialect, not -std=c99, whose strict ISO mode turns off fused multiply-adds
#: (DiTAC's forward kernel 3.7 against 2.9 ms at 2^22); -mtune=generic because a compiler older
#: than the CPU guesses its tuning (gcc 12 on AMD Zen 5: forward 4.0 against 3.1 ms).
FLAGS = ("-O3", "-march=native", "-mtune=generic", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")

#: Hardware vector gathers, which gcc's x86 tunings (generic, and in gcc 12 every Intel one alike)
#: replace by scalar loads. DiTAC's table lookups are gathers (no other kernel has one).
GATHER_FLAGS = ("-mtune-ctrl=use_gather_2parts,use_gather_4parts,use_gather",)

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


def fast_gathers(cpuinfo: str, gather_data_sampling: str) -> bool:
    """Whether hardware gathers beat gcc's scalar loads: on Intel CPUs that the Gather Data Sampling
    microcode mitigation, which slows gathers several-fold, does not concern ("Not affected"). On an
    Emerald Rapids Xeon a DiTAC training call took 1.82x GELU's with them, 2.48x without
    (``benchmarks/ditac_speed.py``, one thread, 2^22); elsewhere (AMD, mitigated or unknown CPUs) the
    scalar loads stay, as measured before (1.63x on the machine of ``docs/ditac.md``)."""
    vendors = {line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("vendor_id")}
    return vendors == {"GenuineIntel"} and gather_data_sampling.strip() == "Not affected"


def _gather_flags() -> tuple[str, ...]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        status = Path("/sys/devices/system/cpu/vulnerabilities/gather_data_sampling").read_text()
    except OSError:
        return ()
    return GATHER_FLAGS if fast_gathers(cpuinfo, status) else ()


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


def _openmp_flags() -> tuple[str, ...]:
    """-fopenmp where the kernels' OpenMP runtime would be torch's own: a Linux process whose torch
    runs its CPU operations on GNU OpenMP, already loaded (the dynamic loader then binds the
    kernels' libgomp.so.1 to that copy). Elsewhere the kernels' parts run on Python threads."""
    if "ATen parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return ()
    try:
        with open("/proc/self/maps") as maps:
            # the soname the kernels will ask for (not e.g. scikit-learn's renamed libgomp-<hash>.so)
            loaded = any(re.fullmatch(r"libgomp\.so\.1(\.[0-9.]+)?", Path(line.split()[-1]).name) for line in maps)
    except OSError:
        return ()
    return ("-fopenmp",) if loaded else ()


def _compile(compiler: str, flags: tuple[str, ...], source: Path, built: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [compiler, *flags, str(source), "-o", str(built)], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelUnavailable(f"native kernel {source.stem!r}") from err


def _build(name: str) -> tuple[Path, bool]:
    """(the built library, whether it was built with OpenMP)."""
    package = resources.files("actlab.kernels")
    source = package.joinpath(f"{name}.c").read_bytes()
    # The headers the sources include (parallel.h) travel with them and are part of the key.
    headers = {h.name: h.read_bytes() for h in package.iterdir() if h.name.endswith(".h")}
    compiler = _compiler()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelUnavailable(f"native kernel {name!r}") from err
    directory = _cache_dir()
    openmp, gather = _openmp_flags(), _gather_flags()
    # The preferred flags first, then without what the compiler may reject (-fopenmp without an
    # OpenMP library; -mtune-ctrl in clang): each variant has a key of its own.
    for extra in dict.fromkeys((openmp + gather, openmp, gather, ())):
        flags = FLAGS + extra
        parts = [source, *(headers[h] for h in sorted(headers)), " ".join(flags).encode(), compiler.encode()]
        key = hashlib.sha256(b"\0".join([*parts, version.encode(), _cpu_identity().encode()])).hexdigest()[:24]
        target = directory / f"{name}-{key}.so"
        with_openmp = bool(openmp) and set(openmp) <= set(extra)
        if target.exists():
            return target, with_openmp
        with tempfile.TemporaryDirectory(dir=directory) as work:
            for header, text in headers.items():
                (Path(work) / header).write_bytes(text)
            src = Path(work) / f"{name}.c"
            src.write_bytes(source)
            built = Path(work) / f"{name}.so"
            result = _compile(compiler, flags, src, built)
            if result.returncode == 0:
                os.replace(built, target)  # atomic: concurrent builders leave one complete file
                return target, with_openmp
    raise KernelUnavailable(f"native kernel {name!r}") from RuntimeError(
        f"{compiler} failed ({result.returncode}): {result.stderr.strip()[:2000]}"
    )


def library(name: str) -> ctypes.CDLL:
    """The compiled ``actlab/kernels/<name>.c``, built on first use (then cached on disk and here).
    ``uses_openmp(lib)`` tells whether its parts run on OpenMP threads (see :func:`run_parts`)."""
    lib = _libraries.get(name)
    if lib is None:
        with _lock:
            lib = _libraries.get(name)
            if lib is None:
                path, openmp = _build(name)
                try:
                    lib = ctypes.CDLL(str(path))
                except OSError as err:
                    raise KernelUnavailable(f"native kernel {name!r}") from err
                lib._actlab_openmp = openmp
                _libraries[name] = lib
    return lib


def uses_openmp(lib: ctypes.CDLL) -> bool:
    return getattr(lib, "_actlab_openmp", False)


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


def element_parts(runs: int, inner: int, grain: int = 1) -> tuple[tuple[int, int, int, int], ...]:
    """The parts of a call over ``runs`` runs of ``inner`` elements (rows of parallel.h: first run,
    runs, element offset, elements per run): one per thread, the runs split between them, or one
    run's elements when there is only one; no part smaller than ``grain`` elements (but one)."""
    return _element_parts(runs, inner, grain, torch.get_num_threads())


@functools.lru_cache(maxsize=1024)  # a few µs per call otherwise, as much as a small kernel
def _element_parts(runs: int, inner: int, grain: int, threads: int) -> tuple[tuple[int, int, int, int], ...]:
    threads = max(1, min(threads, runs * inner // max(grain, 1)))
    if runs == 1:
        return tuple((0, 1, start, length) for start, length in split(inner, threads))
    return tuple((first, count, 0, inner) for first, count in split(runs, threads))


@functools.lru_cache(maxsize=1024)
def _parts_array(parts: tuple[tuple[int, ...], ...]) -> ctypes.Array:
    """The parts as one C array of int64 rows (kept alive by the cache while a call reads it)."""
    return (ctypes.c_int64 * sum(len(row) for row in parts))(*(v for row in parts for v in row))


def run_parallel(calls: Sequence[Callable[[], None]]) -> None:
    """Run the calls (each a foreign call on its own part of the data) on the thread pool."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    for future in [_executor(torch.get_num_threads()).submit(call) for call in calls]:
        future.result()


class PerPart(NamedTuple):
    """An argument of :func:`run_parts` that differs between parts: a buffer of ``step`` bytes per
    part starting at address ``base`` (e.g. per-thread sums)."""

    base: int
    step: int


def run_parts(lib: ctypes.CDLL, name: str, parts: Sequence[Sequence[int]], args: Sequence) -> None:
    """Call ``name(parts, count, *args)``, a kernel's entry point that runs each part (a row of ints:
    see ``parallel.h``) of one call. Built with OpenMP, one call runs them all on torch's OpenMP
    threads; otherwise each part is a call of its own on the thread pool, its
    :class:`PerPart` arguments shifted to its own buffer."""
    parts = tuple(tuple(row) for row in parts)
    table = _parts_array(parts)
    function, width, base = getattr(lib, name), len(parts[0]), ctypes.addressof(table)
    if uses_openmp(lib) or len(parts) == 1:
        function(base, len(parts), *(a.base if isinstance(a, PerPart) else a for a in args))
        return
    run_parallel(
        [
            functools.partial(
                function,
                base + ctypes.sizeof(ctypes.c_int64) * width * i,
                1,
                *(a.base + a.step * i if isinstance(a, PerPart) else a for a in args),
            )
            for i in range(len(parts))
        ]
    )
