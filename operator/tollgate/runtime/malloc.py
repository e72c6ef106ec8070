"""glibc malloc settings and trims for a long-running process with bursts (no-ops off glibc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


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


def trim() -> None:
    """Give the free pages inside glibc's heaps back to the OS (malloc_trim(0)).

    glibc returns memory on its own only from the top of a heap; after a burst (a thousand watch events
    and decisions) the free space lies between live objects and stays in the RSS. A trim costs a few
    milliseconds; the runtime calls it once decisions pause after a burst (runtime.app)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
