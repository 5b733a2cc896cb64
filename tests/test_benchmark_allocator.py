"""benchmarks/_allocator.py: the opt-in malloc setting of the speed benchmarks."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import subprocess
import sys

import pytest

from .repo_files import REPO

LIBC = ctypes.util.find_library("c") if platform.system() == "Linux" else None
HAS_MALLINFO2 = bool(LIBC) and hasattr(ctypes.CDLL(LIBC), "mallinfo2")


@pytest.mark.skipif(not HAS_MALLINFO2, reason="needs glibc >= 2.33 (mallopt and mallinfo2)")
def test_keep_freed_memory_serves_large_blocks_from_a_heap_that_is_never_trimmed():
    """By default glibc maps a 64 MiB block on its own (and unmaps it on free: the next one
    page-faults again); after keep_freed_memory() the block comes from the heap, which keeps
    it after free."""
    script = f"""
import ctypes, ctypes.util, sys
sys.path.insert(0, {str(REPO / "benchmarks")!r})
from _allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20

def mapped_while_held_and_heap_after_free():
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd
    libc.free(block)
    return mapped, libc.mallinfo2().arena

print(*mapped_while_held_and_heap_after_free())
keep_freed_memory()
print(*mapped_while_held_and_heap_after_free())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    default_mapped, _, kept_mapped, kept_heap = (int(v) for v in out)
    size = 64 << 20
    assert default_mapped >= size, "by default a 64 MiB block was expected to be mapped on its own"
    assert kept_mapped < size, "after keep_freed_memory() the block was still mapped on its own"
    assert kept_heap >= size, "after keep_freed_memory() the heap did not keep the freed block"
