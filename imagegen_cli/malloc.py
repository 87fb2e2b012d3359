"""glibc malloc settings for a run of many concurrent calls (memory that would
otherwise grow with -j)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider


# Buffers of this size and up are mmapped and given back when freed: the 64 KiB socket
# reads and their 48 KiB of decoded base64 in each worker, the images in the writer.
# Measured (bench_batch, 200 images at -j 16): peak 53-54 MiB at 64 KiB, 50 at 32 KiB,
# 50 at 16 KiB; wall time the same.
MMAP_THRESHOLD = 32 * 1024


def in_process(provider: Provider) -> bool:
    """Whether PROVIDER (or a member of its fallback chain) runs a model in this
    process: torch allocates many mid-size tensors per step, and a fixed, low mmap
    threshold makes each one a fresh mmap (a local batch's images took 1.3-3x as long
    as one `generate`'s). Its calls run one at a time: there is no per-thread growth
    to tame."""
    members = getattr(provider, "members", None) or []
    return provider.in_process or any(m.provider.in_process for m in members)


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
