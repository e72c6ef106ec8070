"""Shard Leases: `--shards N` splits the ModelDeployments across replicas (the rules: runtime.shard_plan).

Each shard is a coordination.k8s.io Lease held with the single leader's rules (runtime.leader: expiry
judged by how long this process saw one record unchanged, renew deadline shorter than the duration,
optimistic concurrency on every update), so the guarantees of leader election hold per shard: a
replica past its renew deadline for a shard writes nothing more for that shard's objects (the adapter's
fence reads the shard of the object being decided from `CURRENT_SHARD`), and a dead replica's shards
are taken over one lease duration after its last renewal was observed.

Each replica also holds one of N member Leases (`<lease-name>-member-<k>`, taken and renewed by the same
rules), so the others know how many replicas share the work. Fixed names keep the RBAC to named Leases
(no delete, nothing to collect after a replica is gone); more replicas than shards would have nothing to
decide, so a replica that finds no free member Lease waits as a standby for one (and takes it a lease
duration after its holder stopped renewing).

All the Leases of one operator carry the label `tollgate.dev/lease-group=<--lease-name>`: one LIST per
round reads them all.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from kubernetes import client

from tollgate.adapters.errors import KubeError, NotFoundError, TemporaryError, kube_errors
from tollgate.runtime.leader import JITTER, LeaderElector, LeaseSettings, _wall, default_identity, in_lease_thread
from tollgate.runtime.shard_plan import ShardMoves, ShardView, plan

log = logging.getLogger("tollgate.sharding")

LABEL_GROUP = "tollgate.dev/lease-group"
LABEL_ROLE = "tollgate.dev/lease-role"
LABEL_SHARD = "tollgate.dev/shard"
LABEL_SHARDS = "tollgate.dev/shards"

CURRENT_SHARD: contextvars.ContextVar[int | None] = contextvars.ContextVar("tollgate_shard", default=None)
"""The shard of the ModelDeployment the running code decides for (set by its loop and its finalizer;
asyncio tasks and asyncio.to_thread carry it along). A write with none set is refused when sharded."""


def shard_lease_name(group: str, shard: int, shards: int) -> str:
    """The count is part of the name: shard 0 of 2 and shard 0 of 4 hold different objects, so replicas
    of an old and a new --shards never share (or fight over) a Lease; see LeaseWatch for who waits."""
    return f"{group}-shard-{shard}-of-{shards}"


def member_lease_name(group: str, slot: int, shards: int) -> str:
    return f"{group}-member-{slot}-of-{shards}"


class LeaseWatch:
    """Other replicas' Leases judged alive by observation, as runtime.leader judges the leader's: alive
    while its record changed within its duration on this process's monotonic clock."""

    def __init__(self, identity: str, clock: Callable[[], float]):
        self.identity = identity
        self._clock = clock
        self._seen: dict[str, tuple[str | None, float]] = {}

    def alive(self, lease: client.V1Lease, default_duration: float) -> bool:
        meta, spec = lease.metadata, lease.spec
        if meta is None or spec is None or not meta.name:
            return False
        now = self._clock()
        seen = self._seen.get(meta.name)
        if seen is None or seen[0] != meta.resource_version:
            seen = self._seen[meta.name] = (meta.resource_version, now)
        holder = spec.holder_identity or ""
        return bool(holder) and holder != self.identity and now < seen[1] + float(
            spec.lease_duration_seconds or default_duration)


def other_mode_active(watch: LeaseWatch, leases: list[client.V1Lease], shards: int, settings: LeaseSettings,
                      leader: client.V1Lease | None) -> str | None:
    """Which live Lease of another shard count (or of the single leader, `leader`) makes this replica wait.

    Changing --shards (1 to N, N to M) with a rolling update runs old and new replicas side by side for a
    while, and a shard of one count is not a shard of the other: both could decide one object. So no
    replica takes anything while a Lease of another count is alive; it keeps renewing what it holds.
    The old replicas, stopping, release theirs, and the new ones take over at their next round."""
    for lease in leases:
        labels = (lease.metadata.labels if lease.metadata else None) or {}
        if labels.get(LABEL_SHARDS) != str(shards) and watch.alive(lease, settings.duration):
            return lease.metadata.name if lease.metadata else "?"
    if leader is not None and watch.alive(leader, settings.duration):
        return settings.name
    return None


class ShardCoordinator:
    """Holds this replica's share of the shard Leases; `holds(shard)` is the rule every write obeys."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, shards: int, identity: str | None = None,
                 *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], dt.datetime] = _wall):
        self.settings = settings
        self.shards = shards
        self.identity = identity or default_identity()
        self._coord = client.CoordinationV1Api(api)
        self._clock = clock
        group = {LABEL_GROUP: settings.name, LABEL_SHARDS: str(shards)}
        self._electors = [
            LeaderElector(api, replace(settings, name=shard_lease_name(settings.name, k, shards)), self.identity,
                          clock=clock, wall=wall, labels={**group, LABEL_ROLE: "shard", LABEL_SHARD: str(k)})
            for k in range(shards)]
        self._slots = [
            LeaderElector(api, replace(settings, name=member_lease_name(settings.name, k, shards)), self.identity,
                          clock=clock, wall=wall, labels={**group, LABEL_ROLE: "member", LABEL_SHARD: str(k)})
            for k in range(shards)]
        self._watch = LeaseWatch(self.identity, clock)
        for e in self._electors:
            e.blocked = self._other_count_alive  # asked before and right after taking a shard
        self.waiting_for: str | None = None
        """A live Lease of another --shards (or the single leader's) this replica waits for, if any."""
        self.members: frozenset[str] = frozenset({self.identity})
        self.last_moves: ShardMoves | None = None
        self.on_change: Callable[[frozenset[int], frozenset[int]], None] | None = None
        """Called on the event loop with (gained, lost) shards whenever what this replica holds changes."""
        self._reported: frozenset[int] = frozenset()

    # -- the rule every write obeys --------------------------------------------------------------------
    def holds(self, shard: int) -> bool:
        return 0 <= shard < self.shards and self._electors[shard].holds()

    def held(self) -> frozenset[int]:
        return frozenset(k for k in range(self.shards) if self._electors[k].holds())

    @property
    def owned(self) -> frozenset[int]:
        """The shards last reported held (on_change): what this replica keeps objects for."""
        return self._reported

    def fence(self) -> bool:
        """Kube.fence when sharded: a write may leave only for an object of a shard held now."""
        shard = CURRENT_SHARD.get()
        return shard is not None and self.holds(shard)

    async def wait_holding(self, shard: int) -> None:
        await self._electors[shard].wait_holding()

    # -- one round -----------------------------------------------------------------------------------------
    def round(self) -> ShardMoves:
        """List the group's Leases, renew what is held, and take or give up shards (shard_plan.plan)."""
        s = self.settings
        leases, leader = read_group(self._coord, s, with_leader=True)
        members: set[str] = set()
        taken: set[int] = set()
        slots_taken: set[int] = set()
        ours = [lease for lease in leases if ((lease.metadata.labels if lease.metadata else None) or {}).get(
            LABEL_SHARDS) == str(self.shards)]
        for lease in ours:
            meta, spec = lease.metadata, lease.spec
            labels = (meta.labels if meta else None) or {}
            k = _index(labels.get(LABEL_SHARD), self.shards)
            if k is None or meta is None or spec is None:
                continue
            alive = self._watch.alive(lease, s.duration)
            if labels.get(LABEL_ROLE) == "member":
                self._slots[k].note(meta.resource_version)
                if alive:
                    members.add(spec.holder_identity or "")
                    slots_taken.add(k)
            elif labels.get(LABEL_ROLE) == "shard":
                self._electors[k].note(meta.resource_version)
                if alive:
                    taken.add(k)
        waiting = other_mode_active(self._watch, leases, self.shards, s, leader)
        if waiting != self.waiting_for:
            if waiting:
                log.warning("another shard count is active; taking nothing until its Leases are released or "
                            "expire", extra={"lease": waiting, "shards": self.shards})
            self.waiting_for = waiting
        slot = self._renew_slot(frozenset(slots_taken))
        held = self.held()
        if slot is not None:
            members.add(self.identity)
        self.members = frozenset(members)
        free = frozenset(range(self.shards)) - taken - held
        moves = plan(ShardView(self.identity, self.shards, self.members, held, free))
        if slot is None or waiting:  # a standby: it renews what it still holds and takes nothing new
            moves = ShardMoves(acquire=(), release=(), target=len(held))
        for k in sorted(held - set(moves.release)):
            _attempt(self._electors[k])
        for k in moves.release:
            log.info("handing a shard over", extra={"shard": k, "members": len(members), "target": moves.target})
            self._electors[k].release()
        for k in moves.acquire:
            _attempt(self._electors[k])
        self.last_moves = moves
        return moves

    def _other_count_alive(self) -> str | None:
        """A live Lease of another shard count, or the single leader's, read now (runtime.leader asks it
        before and right after taking a shard, so a replica of the other kind taking its own Lease at the
        same moment is seen by at least one of the two)."""
        s = self.settings
        leases, leader = read_group(self._coord, s, with_leader=True)
        return other_mode_active(self._watch, leases, self.shards, s, leader)

    def _renew_slot(self, taken: frozenset[int]) -> int | None:
        """Renew this replica's member Lease, or take the first free one; None while none is to be had."""
        for k, slot in enumerate(self._slots):
            if slot.holds() and _attempt(slot):
                return k
        for k in range(self.shards):
            if k not in taken and _attempt(self._slots[k]):
                return k
        return None

    # -- the loop ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """A round every retry period until cancelled; shards past their renew deadline stop at once."""
        watchdog = asyncio.create_task(self._watch_deadlines())
        try:
            while True:
                asked = 0.0
                try:
                    await in_lease_thread(self.round)
                except KubeError as exc:  # the API server may be briefly unreachable; holds() decides
                    log.warning("shard lease round failed", extra={"status": exc.status, "error": str(exc)[:300]})
                    if isinstance(exc, TemporaryError) and exc.status == 429:
                        asked = exc.delay
                self.sync()
                period = self.settings.retry_period
                await asyncio.sleep(max(asked, period * random.uniform(1.0, JITTER)))
        finally:
            watchdog.cancel()

    async def _watch_deadlines(self) -> None:
        while True:
            self.sync()
            await asyncio.sleep(min(0.5, self.settings.retry_period / 2))

    def sync(self) -> None:
        for e in self._electors:
            e.sync()
        held = self.held()
        if held != self._reported:
            gained, lost = held - self._reported, self._reported - held
            self._reported = held
            log.info("shards changed", extra={"held": sorted(held), "gained": sorted(gained), "lost": sorted(lost)})
            if self.on_change is not None:
                self.on_change(gained, lost)

    def release(self) -> None:
        """On clean shutdown: every held shard and the member Lease released, so the others take them
        at their next round instead of a lease duration later."""
        for k in sorted(self.held()):
            self._electors[k].release()
        for slot in self._slots:
            slot.release()


def read_group(coord: client.CoordinationV1Api, settings: LeaseSettings, *,
               with_leader: bool) -> tuple[list[client.V1Lease], client.V1Lease | None]:
    """The operator's shard and member Leases (one LIST by the group label) and, when asked, the single
    leader's Lease (one GET; None when it does not exist)."""
    with kube_errors():
        leases: list[client.V1Lease] = coord.list_namespaced_lease(
            settings.namespace, label_selector=f"{LABEL_GROUP}={settings.name}",
            _request_timeout=settings.request_timeout).items
    if not with_leader:
        return leases, None
    try:
        with kube_errors():
            leader = coord.read_namespaced_lease(settings.name, settings.namespace,
                                                 _request_timeout=settings.request_timeout)
    except NotFoundError:
        leader = None
    return leases, leader


def _attempt(elector: LeaderElector) -> bool:
    """One Lease's acquire or renew; a failure is that Lease's alone, so the round goes on with the others
    (each shard's renew deadline decides on its own whether it may still act)."""
    try:
        return elector.try_acquire_or_renew()
    except KubeError as exc:
        log.warning("lease request failed", extra={"lease": elector.settings.name, "status": exc.status,
                                                   "error": str(exc)[:300]})
        return False


def shards_still_active(coord: client.CoordinationV1Api, settings: LeaseSettings,
                        clock: Callable[[], float] = time.monotonic) -> Callable[[], str | None]:
    """For the single leader (--shards 1): a check that names a live shard Lease of replicas still running
    with --shards N > 1 (one LIST, asked only while it does not hold its Lease), so it waits for them."""
    watch = LeaseWatch("", clock)

    def check() -> str | None:
        leases, _ = read_group(coord, settings, with_leader=False)
        shard_leases = [lease for lease in leases
                        if ((lease.metadata.labels if lease.metadata else None) or {}).get(LABEL_ROLE) == "shard"]
        return other_mode_active(watch, shard_leases, 1, settings, None)

    return check


def _index(text: str | None, shards: int) -> int | None:
    """The shard a Lease's label names, if it is one of ours (a Lease left from a larger --shards is not)."""
    return int(text) if text is not None and text.isdigit() and int(text) < shards else None
