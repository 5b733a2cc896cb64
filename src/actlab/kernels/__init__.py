"""Fast paths for elementwise activations: compiled (inductor), native (C) and Triton kernels.

Nothing here is imported eagerly except :mod:`.dispatch` (which decides, per
call, which path computes an activation); the compilers and Triton are touched
only when a kernel is first needed. See ``docs/performance.md``.
"""
