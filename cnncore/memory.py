"""Keep freed memory for reuse during training (glibc only; a no-op elsewhere).

A training step allocates the same multi-megabyte arrays (im2col columns, activations,
gradients) every step. By default glibc serves each from a fresh mmap and returns it to the OS
when freed, so every step page-faults on first touch: measured, 6 ms of a 15.5 ms LeNet batch-64
step. Raising the mmap and trim thresholds lets freed blocks be reused instead. This changes the
whole process, so only the training loop and the benchmarks call it, never an import.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems


def keep_freed_memory(top_pad: int = 64 << 20) -> bool:
    """Serve blocks up to 32 MiB from the heap and keep freed memory. True if glibc agreed."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    ok &= mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX + top_pad)
    ok &= mallopt(_M_TOP_PAD, top_pad)
    return bool(ok)


def share_one_arena() -> bool:
    """Make every thread allocate from glibc's main arena (as MALLOC_ARENA_MAX=1 does). True if
    glibc agreed.

    A server that trains in a thread per run otherwise gives each new thread an arena of its
    own, and an arena's freed blocks stay with the process after its thread ends, even after
    malloc_trim. Measured with benchmarks/bench_train_ws.py --only-load (four runs + API load,
    twice): RSS after the runs 505 and 635 MB with per-thread arenas, 297 and 293 MB with one
    (95 MB before; the MNIST arrays, kept once per worker, are 220 MB). It must run before any
    other thread allocates: the server calls it when a worker starts.
    """
    name = ctypes.util.find_library("c")
    try:
        return bool(ctypes.CDLL(name).mallopt(_M_ARENA_MAX, 1))
    except (OSError, AttributeError, TypeError):
        return False
