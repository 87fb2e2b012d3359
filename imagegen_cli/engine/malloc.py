"""glibc malloc settings for a run of many concurrent calls (memory that would
otherwise grow with -j)."""

from __future__ import annotations

# Buffers of this size and up are mmapped and given back when freed: the 64 KiB socket
# reads in each worker, the images in the writer. Measured (bench_batch, 200 images
# at -j 16, 3 runs each): 64 KiB peaks at 54-55 MiB in 7.11-7.15 s; 32 KiB at 51-52
# MiB but in 7.24-7.44 s (each worker's 48 KiB pieces of decoded base64 then cost an
# mmap and a dozen page faults: +0.4 s of system time); 128 KiB at 62-65 MiB.
MMAP_THRESHOLD = 64 * 1024


def tame() -> None:
    """glibc only: hand big buffers (response chunks, decoded images) straight back to
    the system. By default glibc raises its mmap threshold after the first big free,
    and each worker thread's arena then keeps megabytes it no longer uses: peak memory
    would grow with -j. No effect elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
