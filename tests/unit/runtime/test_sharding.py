"""Shard Leases (runtime.sharding) over an in-memory coordination API: replicas share the shards, a dead
replica's shards move after one lease duration of observation, a clean stop hands them over at once, and
the write fence follows the shard of the object being decided.

The store keeps resourceVersions and answers 409 to stale ones, like the API server; time is an injected
monotonic clock. Two real replicas on the real API server: tests/integration/runtime/test_sharding.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from tollgate.runtime.leader import LeaderElector, LeaseSettings
from tollgate.runtime.sharding import CURRENT_SHARD, ShardCoordinator, shards_still_active


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Leases:
    """Leases of one namespace by name: list by label, read, create, patch and delete with preconditions."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    rv: int = 0
    failing: set[str] = field(default_factory=set)
    """Names whose reads answer 503 (one Lease's requests failing while the others work)."""

    def _obj(self, name: str) -> SimpleNamespace:
        it = self.items[name]
        s = it["spec"]
        return SimpleNamespace(
            metadata=SimpleNamespace(name=name, resource_version=str(it["rv"]), labels=it["labels"]),
            spec=SimpleNamespace(holder_identity=s.get("holderIdentity"),
                                 lease_duration_seconds=s.get("leaseDurationSeconds"),
                                 lease_transitions=s.get("leaseTransitions")))

    def _bump(self, name: str) -> None:
        self.rv += 1
        self.items[name]["rv"] = self.rv

    def list_namespaced_lease(self, namespace: str, label_selector: str, **_: Any) -> SimpleNamespace:
        key, _, value = label_selector.partition("=")
        return SimpleNamespace(items=[self._obj(n) for n, it in self.items.items() if it["labels"].get(key) == value])

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> SimpleNamespace:
        if name in self.failing:
            raise ApiException(status=503)
        if name not in self.items:
            raise ApiException(status=404)
        return self._obj(name)

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> SimpleNamespace:
        name = body["metadata"]["name"]
        if name in self.items:
            raise ApiException(status=409)
        self.items[name] = {"spec": dict(body["spec"]), "labels": dict(body["metadata"].get("labels") or {})}
        self._bump(name)
        return self._obj(name)

    def patch_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> SimpleNamespace:
        if body["metadata"].get("resourceVersion") != str(self.items[name]["rv"]):
            raise ApiException(status=409)
        self.items[name]["spec"] = {**self.items[name]["spec"], **body["spec"]}
        self._bump(name)
        return self._obj(name)

    def delete_namespaced_lease(self, name: str, namespace: str, body: Any = None, **_: Any) -> None:
        if name not in self.items:
            raise ApiException(status=404)
        pre = getattr(getattr(body, "preconditions", None), "resource_version", None)
        if pre is not None and pre != str(self.items[name]["rv"]):
            raise ApiException(status=409)
        del self.items[name]

    def holders(self) -> dict[int, str | None]:
        return {int(it["labels"]["tollgate.dev/shard"]): it["spec"].get("holderIdentity")
                for it in self.items.values() if it["labels"].get("tollgate.dev/lease-role") == "shard"
                and it["labels"].get("tollgate.dev/shards") == "6"}


SETTINGS = LeaseSettings("ns", "tollgate-operator", duration=15, renew_deadline=10, retry_period=2)


def replica(store: Leases, clock: Clock, identity: str, shards: int = 6) -> ShardCoordinator:
    c = ShardCoordinator(None, SETTINGS, shards, identity, clock=clock,  # type: ignore[arg-type]
                         wall=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    c._coord = store  # type: ignore[assignment]
    for e in [*c._electors, *c._slots]:
        e._coord = store  # type: ignore[assignment]
    return c


def rounds(clock: Clock, replicas: list[ShardCoordinator], n: int) -> None:
    for _ in range(n):
        for r in replicas:
            r.round()
        clock.t += 2


def test_two_replicas_share_the_shards_and_each_holds_what_its_lease_says() -> None:
    # given one replica that started first, then a second
    store, clock = Leases(), Clock()
    a = replica(store, clock, "op-a")
    rounds(clock, [a], 2)
    assert a.held() == set(range(6))
    b = replica(store, clock, "op-b")
    # when both run a few rounds
    rounds(clock, [a, b], 5)
    # then each holds three, no shard twice, and the Leases name the same holders
    assert len(a.held()) == 3 and len(b.held()) == 3 and not a.held() & b.held()
    assert store.holders() == {k: ("op-a" if k in a.held() else "op-b") for k in range(6)}


def test_a_dead_replicas_shards_move_after_one_lease_duration_and_not_before() -> None:
    # given two replicas sharing six shards
    store, clock = Leases(), Clock()
    a, b = replica(store, clock, "op-a"), replica(store, clock, "op-b")
    rounds(clock, [a, b], 6)
    theirs = b.held()
    assert len(theirs) == 3
    # when b stops renewing (killed): a keeps its rounds
    rounds(clock, [a], 6)  # 12 s: less than the 15 s lease duration since a last saw b's records change
    # then its shards are not taken early
    assert a.held() & theirs == set()
    rounds(clock, [a], 3)  # past 15 s
    # and then a holds every shard
    assert a.held() == set(range(6))


def test_a_clean_stop_hands_the_shards_over_at_the_next_round() -> None:
    store, clock = Leases(), Clock()
    a, b = replica(store, clock, "op-a"), replica(store, clock, "op-b")
    rounds(clock, [a, b], 6)
    # when b stops cleanly (releases its shards and its member Lease)
    b.release()
    # then a takes them in its next round, without waiting a lease duration
    rounds(clock, [a], 1)
    assert a.held() == set(range(6))


def test_the_fence_lets_a_write_leave_only_for_an_object_of_a_held_shard() -> None:
    store, clock = Leases(), Clock()
    a, b = replica(store, clock, "op-a"), replica(store, clock, "op-b")
    rounds(clock, [a, b], 6)
    mine, other = min(a.held()), min(b.held())
    # given code deciding for an object of a held shard, of another replica's shard, and of none
    assert CURRENT_SHARD.get() is None
    assert not a.fence()  # no object: refused
    token = CURRENT_SHARD.set(mine)
    try:
        assert a.fence()
        CURRENT_SHARD.set(other)
        assert not a.fence()
        # and once the renew deadline passes without a renewal, its own shard is refused too
        CURRENT_SHARD.set(mine)
        clock.t += 10
        assert not a.fence()
    finally:
        CURRENT_SHARD.reset(token)


def test_a_replica_beyond_the_shard_count_stands_by_and_takes_over_a_dead_members_place() -> None:
    # given two shards and three replicas: two members, one standby (no member Lease left for it)
    store, clock = Leases(), Clock()
    a, b = replica(store, clock, "op-a", shards=2), replica(store, clock, "op-b", shards=2)
    rounds(clock, [a, b], 4)
    c = replica(store, clock, "op-c", shards=2)
    rounds(clock, [a, b, c], 4)
    assert len(a.held()) == 1 and len(b.held()) == 1 and c.held() == set()
    # when b dies
    rounds(clock, [a, c], 12)
    # then, a lease duration later, c has its member Lease and a shard: the work is shared again
    assert len(a.held()) == 1 and len(c.held()) == 1 and not a.held() & c.held()
    assert a.members == {"op-a", "op-c"}


def test_replicas_of_a_new_shard_count_take_nothing_until_the_old_ones_are_gone() -> None:
    # given two replicas running with --shards 2 (a rolling change to --shards 6 has started)
    store, clock = Leases(), Clock()
    old_a, old_b = replica(store, clock, "old-a", shards=2), replica(store, clock, "old-b", shards=2)
    rounds(clock, [old_a, old_b], 4)
    new = replica(store, clock, "new-a", shards=6)
    # when the new replica runs beside them (shard 0 of 2 and shard 0 of 6 hold different objects)
    rounds(clock, [old_a, old_b, new], 4)
    # then it takes nothing while their Leases are alive
    assert new.held() == set() and new.waiting_for is not None
    # and once the old replicas stop (released on their way out), it takes every shard of its count
    old_a.release()
    old_b.release()
    rounds(clock, [new], 2)
    assert new.held() == set(range(6)) and new.waiting_for is None


def test_a_single_leader_waits_for_the_replicas_of_a_shard_count_still_running() -> None:
    # given sharded replicas (--shards 6) running, and a replica started with --shards 1
    store, clock = Leases(), Clock()
    sharded = replica(store, clock, "sharded")
    rounds(clock, [sharded], 3)
    leader = LeaderElector(None, SETTINGS, "single", clock=clock,  # type: ignore[arg-type]
                           wall=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    leader._coord = store  # type: ignore[assignment]
    leader.blocked = shards_still_active(store, SETTINGS, clock)  # type: ignore[arg-type]
    # when it tries to lead while their Leases are alive, it does not
    assert leader.try_acquire_or_renew() is False
    # and once the sharded replica stops (releasing its Leases), it leads
    sharded.release()
    assert leader.try_acquire_or_renew() is True
    # and a sharded replica started now takes nothing while the leader renews
    late = replica(store, clock, "late")
    for _ in range(3):
        late.round()
        leader.try_acquire_or_renew()
        clock.t += 2
    assert late.held() == set() and late.waiting_for == "tollgate-operator"



def test_one_lease_failing_to_renew_does_not_hold_up_the_others() -> None:
    # given a replica holding every shard
    store, clock = Leases(), Clock()
    a = replica(store, clock, "op-a")
    rounds(clock, [a], 2)
    assert a.held() == set(range(6))
    # when requests for shard 0's Lease fail for longer than the renew deadline
    store.failing.add("tollgate-operator-shard-0-of-6")
    rounds(clock, [a], 6)
    # then shard 0 stops acting at its deadline, and the five others were renewed all along
    assert a.held() == {1, 2, 3, 4, 5}
