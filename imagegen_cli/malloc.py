"""glibc malloc settings for a run of many concurrent calls (memory that would
otherwise grow with -j)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagegen_cli.providers.base import Provider


def in_process(provider: Provider) -> bool:
    """Whether PROVIDER (or a member of its fallback chain) runs a model in this
    process: torch allocates many mid-size tensors per step, and a fixed 64 KiB mmap
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
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
