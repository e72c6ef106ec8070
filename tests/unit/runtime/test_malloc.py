"""glibc's malloc statistics (mallinfo2): read, logged at each trim, served as gauges; nothing off glibc.

The tests that read the real allocator run where mallinfo2 exists (glibc >= 2.33, the operator's image
has 2.36) and are skipped elsewhere; the mapping and the degraded paths run everywhere.
"""

from __future__ import annotations

import ctypes
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tollgate.runtime import malloc, metrics

MiB = 1024 * 1024
HAS_MALLINFO2 = malloc.heap_stats() is not None


def test_mallinfo2_fields_map_to_in_use_free_and_releasable() -> None:
    # given glibc's struct as it comes back from mallinfo2
    raw = malloc._Mallinfo2(arena=100 * MiB, ordblks=5000, smblks=3, hblks=2, hblkhd=4 * MiB, usmblks=0,
                            fsmblks=1024, uordblks=70 * MiB, fordblks=30 * MiB, keepcost=128 * 1024)
    # when it is read
    stats = malloc.HeapStats.from_mallinfo2(raw)
    # then in use counts the heaps' allocations and the mmapped blocks; free and releasable are glibc's own
    assert stats == malloc.HeapStats(heap=100 * MiB, in_use=74 * MiB, mmapped=4 * MiB, free=30 * MiB,
                                     free_chunks=5000, releasable=128 * 1024)
    assert stats.fields("after")["after_in_use"] == 74 * MiB


@pytest.mark.skipif(not HAS_MALLINFO2, reason="no glibc mallinfo2 here")
def test_a_large_block_shows_as_in_use_while_held_and_not_after_free() -> None:
    # given a block above glibc's largest mmap threshold (32 MiB), so it is its own mapping
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    before = malloc.heap_stats()
    # when it is allocated, then freed
    block = libc.malloc(64 * MiB)
    assert block
    held = malloc.heap_stats()
    libc.free(block)
    after = malloc.heap_stats()
    # then mallinfo2 counts it as in use (mmapped) only while it is held
    assert before is not None and held is not None and after is not None
    assert held.mmapped - before.mmapped >= 64 * MiB
    assert held.in_use - before.in_use >= 64 * MiB
    assert held.mmapped - after.mmapped >= 64 * MiB


@pytest.mark.skipif(not HAS_MALLINFO2, reason="no glibc mallinfo2 here")
def test_a_trim_logs_the_heap_before_and_after_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # when the heap is trimmed
    with caplog.at_level(logging.INFO, logger="tollgate.malloc"):
        malloc.trim()
    # then one record carries both readings, in bytes
    [record] = [r for r in caplog.records if r.name == "tollgate.malloc"]
    assert record.getMessage() == "heap trimmed"
    for when in ("before", "after"):
        for figure in ("rss", "heap", "in_use", "mmapped", "free", "free_chunks", "releasable"):
            assert isinstance(getattr(record, f"{when}_{figure}"), int)
    assert record.after_in_use > 0  # type: ignore[attr-defined]


@pytest.mark.skipif(not HAS_MALLINFO2, reason="no glibc mallinfo2 here")
def test_the_gauges_serve_the_heap_by_kind() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.Heap())
    text = generate_latest(registry).decode()
    for kind in ("heap", "in_use", "mmapped", "free", "releasable"):
        assert f'tollgate_malloc_bytes{{kind="{kind}"}}' in text
    assert "tollgate_malloc_free_chunks " in text


def test_without_mallinfo2_nothing_is_read_logged_or_served(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # given an allocator without mallinfo2 (musl, macOS, glibc < 2.33)
    monkeypatch.setattr(malloc, "_mallinfo2", lambda: None)
    # then there are no statistics, a trim logs nothing, and the gauges are absent (not zero)
    assert malloc.heap_stats() is None
    with caplog.at_level(logging.INFO, logger="tollgate.malloc"):
        malloc.trim()
    assert not [r for r in caplog.records if r.name == "tollgate.malloc"]
    registry = CollectorRegistry()
    registry.register(metrics.Heap())
    assert "tollgate_malloc" not in generate_latest(registry).decode()
