"""The reconcile loop's retry timing: a temporary failure (the server's Retry-After) is a floor.

The real API server's 429s are in tests/integration/runtime/test_backpressure.py; here the clocks are
injected, so the rules are checked exactly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tollgate.adapters.errors import TemporaryError
from tollgate.runtime import handlers
from tollgate.runtime.registry import ObjectState

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@dataclass
class SlowThrottledReconciler:
    """A decision whose requests were throttled and retried for `spent` seconds, then gave up."""

    now: datetime = T0
    spent: float = 8.0
    delay: float = 1.0
    calls: list[datetime] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    async def reconcile(self, st: ObjectState) -> datetime | None:
        self.calls.append(self.now)
        self.now += timedelta(seconds=self.spent)
        raise TemporaryError("HTTP 429: Too Many Requests", 429, delay=self.delay)


@dataclass
class FakeRuntime:
    reconciler: Any
    error_backoff: float = 5.0


def test_the_retry_after_a_throttled_decision_counts_from_the_failure_not_from_the_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.time, "monotonic", lambda: 500.0)
    # given a decision that spent 8 s in throttled retries before the server's last 429 (Retry-After 1)
    rec = SlowThrottledReconciler(spent=8.0, delay=1.0)
    st = ObjectState(("ns", "md"))
    # when the loop asks when to try again
    wake = asyncio.run(handlers._reconcile_once(FakeRuntime(rec), st))  # type: ignore[arg-type]
    # then it is 1 s after the failure (not 1 s after the start, which is already past)
    assert wake == T0 + timedelta(seconds=9)
    # and no event may start the next decision sooner
    assert st.hold_until == 501.0


def test_an_event_during_the_hold_waits_out_the_rest_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(handlers.time, "monotonic", lambda: 500.25)
    monkeypatch.setattr(handlers.asyncio, "sleep", sleep)
    # given a loop held until 501.0 (the server asked for 1 s at 500.0), and a watch event at 500.25
    st = ObjectState(("ns", "md"), hold_until=501.0)
    st.kick()
    # when the loop was woken by that event
    asyncio.run(handlers._hold(st))
    # then it sleeps the remaining 0.75 s before deciding, and the event is still pending afterwards
    assert slept == [0.75]
    assert st.wake.is_set()


def test_no_hold_without_a_temporary_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(handlers.asyncio, "sleep", sleep)
    asyncio.run(handlers._hold(ObjectState(("ns", "md"))))
    assert slept == []
