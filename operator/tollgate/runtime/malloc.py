"""glibc malloc settings, trims and heap statistics for a long-running process with bursts (no-ops off glibc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import cast

log = logging.getLogger("tollgate.malloc")


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name or sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc() -> None:
    """glibc malloc settings for a long-running process with bursts of TLS connections and threads.

    At a burst (1,000 ModelDeployments created at once) kopf's aiohttp pool opens a hundred TLS
    connections, each with a 128 KiB read buffer, and 32 I/O threads each get a malloc arena. After the
    burst Python frees all of it, but glibc keeps it: its mmap threshold has risen above 128 KiB
    (so the buffers came from the heap, and fragment it) and every arena holds its own free memory.
    A fixed 64 KiB mmap threshold returns such buffers to the OS on free, and two arenas bound the
    per-thread free lists. Measured at 200 objects: see bench/README.md.
    """
    libc = _libc()
    if libc is None:
        return
    m_mmap_threshold, m_arena_max = -3, -8
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_arena_max, 2)


class _Mallinfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (malloc.h, glibc >= 2.33): every field a size_t, summed over all arenas."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@dataclass(frozen=True)
class HeapStats:
    """What glibc's malloc holds, in bytes (mallinfo2). `free` counts the free chunks inside the heaps,
    including pages a trim has already given back (glibc does not track which are resident), so
    `heap - in_use` (not `free`) bounds the free memory still in the RSS."""

    heap: int
    """Bytes of the arenas' heaps (brk and per-thread heaps), in use or free (arena)."""
    in_use: int
    """Bytes handed out and not freed: in the heaps (uordblks) and in their own mmaps (hblkhd)."""
    mmapped: int
    """Of in_use, the large blocks in their own mmaps (hblkhd)."""
    free: int
    """Free bytes inside the heaps (fordblks)."""
    free_chunks: int
    """Number of free chunks (ordblks): many small ones is a fragmented heap."""
    releasable: int
    """Free bytes at the top of the main heap, which a trim gives back in one piece (keepcost)."""

    @classmethod
    def from_mallinfo2(cls, m: _Mallinfo2) -> HeapStats:
        return cls(heap=m.arena, in_use=m.uordblks + m.hblkhd, mmapped=m.hblkhd, free=m.fordblks,
                   free_chunks=m.ordblks, releasable=m.keepcost)

    def fields(self, prefix: str) -> dict[str, int]:
        """Log fields in bytes, one key per figure: `<prefix>_heap`, `<prefix>_in_use`, ..."""
        return {f"{prefix}_{k}": v for k, v in asdict(self).items()}


@cache
def _mallinfo2() -> Callable[[], _Mallinfo2] | None:
    fn = getattr(_libc(), "mallinfo2", None)  # glibc >= 2.33
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    fn.argtypes = []
    return cast(Callable[[], _Mallinfo2], fn)


def _rss() -> int | None:
    """Resident bytes of this process (/proc/self/statm), None where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def heap_stats() -> HeapStats | None:
    """glibc's malloc statistics now, or None where there is no mallinfo2 (not glibc, or glibc < 2.33).

    It walks the free lists of every arena under its lock: about a millisecond on a fragmented heap of
    a few hundred MB; fine at a trim or a scrape, not per request."""
    fn = _mallinfo2()
    return HeapStats.from_mallinfo2(fn()) if fn is not None else None


def trim() -> None:
    """Give the free pages inside glibc's heaps back to the OS (malloc_trim(0)), logging glibc's
    statistics before and after (one line, `before_*` and `after_*` fields in bytes).

    glibc returns memory on its own only from the top of a heap; after a burst (a thousand watch events
    and decisions) the free space lies between live objects and stays in the RSS. A trim costs a few
    milliseconds; the runtime calls it once decisions pause after a burst (runtime.app)."""
    libc = _libc()
    if libc is None:
        return
    before, rss_before = heap_stats(), _rss()
    libc.malloc_trim(0)
    after, rss_after = heap_stats(), _rss()
    if before is not None and after is not None:
        log.info("heap trimmed", extra={"before_rss": rss_before, **before.fields("before"),
                                        "after_rss": rss_after, **after.fields("after")})
