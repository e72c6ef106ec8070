"""runtime.collector: start-up's objects frozen, the young threshold raised, the rest of the thresholds kept."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tollgate.runtime.collector import YOUNG_THRESHOLD, settle_after_startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The interpreter's collector as it was: thresholds restored, nothing left frozen."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_startup_objects_are_frozen_and_the_young_threshold_raised() -> None:
    # given a long-lived container made during start-up, and CPython's own middle and old thresholds
    kept = {"made": ["at start-up"]}
    _, middle, old = gc.get_threshold()
    gc.unfreeze()
    # when
    settle_after_startup()
    # then it sits in the permanent generation (no collection walks it), and only the young threshold moved
    assert gc.get_freeze_count() > 0
    assert all(o is not kept for o in gc.get_objects())  # gc.get_objects() lists the collected generations
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_gc")
def test_cycles_made_after_startup_are_still_collected_by_the_collector_itself() -> None:
    # given the collector tuned
    settle_after_startup()

    class Node:
        other: object = None

    # when a reference cycle is made and dropped, and the process goes on allocating containers
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    kept = [[] for _ in range(3 * YOUNG_THRESHOLD)]
    # then an automatic collection (no gc.collect here) freed it: the collector is on and its young
    # threshold reached
    assert gc.isenabled()
    assert gone() is None
    assert len(kept) == 3 * YOUNG_THRESHOLD
