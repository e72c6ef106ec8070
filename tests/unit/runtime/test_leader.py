"""Leader election follows client-go's rules: expiry by observed time, a renew deadline, optimistic updates.

A small in-memory Lease store stands in for the coordination API (with resourceVersions that change on
every write and 409 on a stale one); time is an injected monotonic clock. The behaviour against the
real API server, including a frozen leader, is proven in tests/integration/runtime/test_leader.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tollgate.adapters.errors import TemporaryError
from tollgate.runtime.leader import LeaderElector, LeaseSettings

HOUR_AGO = "2026-01-01T00:00:00.000000Z"


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class LeaseStore:
    """read/create/patch of one Lease with resourceVersion preconditions; `down` makes every call fail."""

    spec: dict[str, Any] | None = None
    rv: int = 0
    down: bool = False
    writes: list[dict[str, Any]] = field(default_factory=list)

    def _lease(self) -> SimpleNamespace:
        assert self.spec is not None
        s = self.spec
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.rv)),
            spec=SimpleNamespace(holder_identity=s.get("holderIdentity"),
                                 lease_duration_seconds=s.get("leaseDurationSeconds"),
                                 lease_transitions=s.get("leaseTransitions"), renew_time=s.get("renewTime")))

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> SimpleNamespace:
        if self.down:
            raise ApiException(status=503)
        if self.spec is None:
            raise ApiException(status=404)
        return self._lease()

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> SimpleNamespace:
        if self.down:
            raise ApiException(status=503)
        if self.spec is not None:
            raise ApiException(status=409)
        self.spec, self.rv = dict(body["spec"]), self.rv + 1
        self.writes.append(body)
        return self._lease()

    def patch_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> SimpleNamespace:
        if self.down:
            raise ApiException(status=503)
        if body["metadata"].get("resourceVersion") != str(self.rv):
            raise ApiException(status=409)
        assert self.spec is not None
        self.spec = {**self.spec, **body["spec"]}
        self.rv += 1
        self.writes.append(body)
        return self._lease()

    def held_by(self, holder: str, renew_time: str = HOUR_AGO, duration: int = 15) -> None:
        """Another replica (re)writes the record, with whatever its own clock says."""
        self.spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renew_time,
                     "leaseTransitions": 0}
        self.rv += 1


def elector(store: LeaseStore, clock: Clock, identity: str = "me", **settings: float) -> LeaderElector:
    e = LeaderElector(None, LeaseSettings("ns", **settings), identity, clock=clock,  # type: ignore[arg-type]
                      wall=lambda: dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC))
    e._coord = store  # type: ignore[assignment]
    return e


def test_a_holder_whose_renew_time_is_an_hour_old_is_not_expired_while_its_record_keeps_changing() -> None:
    # given another replica holding the Lease, whose clock is an hour behind (renewTime long past)
    store, clock = LeaseStore(), Clock()
    store.held_by("other", renew_time=HOUR_AGO)
    me = elector(store, clock)
    # when it keeps renewing (a new record every 2 s) for a minute while we try
    for _ in range(30):
        assert me.try_acquire_or_renew() is False
        clock.t += 2
        store.held_by("other", renew_time=HOUR_AGO)
    # then we never took it: expiry is judged by our own observation, not by its wall clock
    assert store.spec is not None and store.spec["holderIdentity"] == "other"
    assert not me.holds()


def test_a_standby_takes_over_only_after_seeing_the_same_record_for_the_lease_duration() -> None:
    # given a holder that stopped renewing
    store, clock = LeaseStore(), Clock()
    store.held_by("other", duration=15)
    me = elector(store, clock)
    assert me.try_acquire_or_renew() is False  # first sight of the record starts our own timer
    # when just under the lease duration has passed on our clock
    clock.t += 14.9
    # then it is still theirs
    assert me.try_acquire_or_renew() is False
    # when the lease duration has passed
    clock.t += 0.2
    # then we take it, with a transition counted and the resourceVersion we read as precondition
    assert me.try_acquire_or_renew() is True
    assert store.spec is not None and store.spec["holderIdentity"] == "me"
    assert store.spec["leaseTransitions"] == 1
    assert me.holds()


def test_a_leader_that_cannot_renew_stops_acting_at_the_renew_deadline() -> None:
    # given a leader (duration 15 s, renew deadline 10 s)
    store, clock = LeaseStore(), Clock()
    me = elector(store, clock)
    assert me.try_acquire_or_renew() is True
    renewed = clock.t
    # when the API server stops answering
    store.down = True
    clock.t = renewed + 9.9
    with pytest.raises(TemporaryError):
        me.try_acquire_or_renew()
    # then it still acts just before the deadline, and not from the deadline on
    assert me.holds()
    clock.t = renewed + 10.0
    assert not me.holds()


def test_the_old_leader_stops_before_any_standby_can_take_over() -> None:
    # given a leader and a standby that sees its record (the last renewal)
    store, clock = LeaseStore(), Clock()
    leader, standby = elector(store, clock, "a"), elector(store, clock, "b")
    assert leader.try_acquire_or_renew() is True
    assert standby.try_acquire_or_renew() is False
    # when the leader is frozen: it renews nothing more; for every instant after, at most one may act
    for _ in range(200):
        clock.t += 0.1
        took = standby.try_acquire_or_renew()
        assert not (leader.holds() and (took or standby.holds()))
    # then the standby took over, and the old leader, woken up, holds nothing and cannot renew
    assert standby.holds() and not leader.holds()
    assert leader.try_acquire_or_renew() is False
    assert store.spec is not None and store.spec["holderIdentity"] == "b"


def test_a_released_lease_is_taken_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    # when the leader shuts down cleanly
    a.release()
    # then the standby acquires without waiting a lease duration
    assert b.try_acquire_or_renew() is True
    assert not a.holds()


def test_two_standbys_racing_for_an_expired_lease_get_one_winner() -> None:
    store, clock = LeaseStore(), Clock()
    store.held_by("dead")
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew() is False and b.try_acquire_or_renew() is False
    clock.t += 16
    # given both read the same expired record, and a writes first
    before = store._lease()
    assert a.try_acquire_or_renew() is True
    store.read_namespaced_lease = lambda *_, **__: before  # type: ignore[method-assign]
    # when b writes with the resourceVersion it read
    # then the API server refuses it (409) and b stays standby
    assert b.try_acquire_or_renew() is False
    assert store.spec is not None and store.spec["holderIdentity"] == "a"
    assert not b.holds()


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0)])
def test_settings_that_would_let_two_leaders_act_are_refused(duration: float, deadline: float,
                                                             retry: float) -> None:
    with pytest.raises(ValueError, match="--lease-"):
        LeaseSettings("ns", duration=duration, renew_deadline=deadline, retry_period=retry)


def test_a_throttled_lease_request_is_tried_again_no_sooner_than_the_servers_retry_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from tollgate.runtime import leader

    class Throttled(LeaseStore):
        def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> SimpleNamespace:
            exc = ApiException(status=429, reason="Too Many Requests")
            exc.headers = {"Retry-After": "7"}
            raise exc

    stopped = asyncio.Event()
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        if seconds != 0.5:  # not the renew-deadline watchdog's tick
            waits.append(seconds)
            stopped.set()
        await real_sleep(0)

    monkeypatch.setattr(leader.asyncio, "sleep", sleep)
    # given an API server that sheds load with 429 and Retry-After: 7 (longer than the 2 s retry period)
    me = elector(Throttled(), Clock())
    # when the election loop makes one attempt
    asyncio.run(me.run(stopped))
    # then it waits what the server asked before the next one
    assert waits == [7.0]


def test_renewals_do_not_wait_behind_decisions_that_fill_the_shared_io_threads() -> None:
    """A bulk create queues thousands of decisions on the shared I/O threads; a renewal queued behind
    them missed its deadline and the leader deposed itself over and over (the 10,000 bench)."""
    import asyncio
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        # given every shared I/O thread busy with a decision that does not finish during the test
        shared = ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(shared)
        release = threading.Event()
        busy = loop.run_in_executor(None, release.wait)
        store = LeaseStore()
        me = elector(store, Clock(), duration=1, renew_deadline=0.5, retry_period=0.1)
        me._clock = time.monotonic  # real time: the loop really runs
        # when the elector runs
        task = asyncio.create_task(me.run())
        try:
            await asyncio.wait_for(me.is_leader.wait(), timeout=30)
            return me.holds()
        except TimeoutError:
            return False
        finally:
            task.cancel()
            release.set()
            await busy

    # then it took the Lease: its requests have a thread of their own
    assert asyncio.run(scenario()) is True


def test_a_lease_taken_while_another_kind_took_its_own_is_given_back_before_it_counts() -> None:
    """Switching between one leader and N shards: both sides check the other before taking; one that took
    its Lease between the other's check and take is seen by the re-check right after the take."""
    store, clock = LeaseStore(), Clock()
    me = elector(store, clock)
    answers = iter([None, "tollgate-operator-shard-0-of-4"])  # clear before the take, alive right after
    me.blocked = lambda: next(answers)
    # when it takes the Lease and the re-check sees the other kind alive
    assert me.try_acquire_or_renew() is False
    # then it never held it, and gave the record back (no holder) for the other side's replicas
    assert not me.holds()
    assert store.spec is not None and store.spec["holderIdentity"] is None
