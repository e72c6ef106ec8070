"""Lease-based leader election with client-go's semantics, so two operator replicas never both act.

Why not kopf peering: peering freezes operators of equal priority, so two replicas from one Helm
Deployment (same priority) would both stop. A coordination.k8s.io Lease is what Kubernetes' own
controllers use, and this follows client-go's `leaderelection` package rule for rule:

- Expiry is judged by how long *this* process has observed the same record, on its own monotonic
  clock, never by comparing the holder's `renewTime` with the local wall clock: a holder whose clock
  runs an hour behind would otherwise look expired at once, and one ahead would look alive forever.
  A standby takes the Lease only after it saw one unchanged record for `leaseDurationSeconds`.
- Every Lease request has a timeout, so a hung connection cannot hold up renewal.
- A leader that has not renewed within `renew_deadline` (measured from the start of its last
  successful renewal, on its monotonic clock) stops acting at once: `holds()` turns false and the
  Kubernetes adapter refuses every write (see `Kube.fence`). Because renew_deadline < lease duration
  and the standby's wait starts no earlier than the renewal it observed, the old leader has stopped
  writing before any standby can acquire, even when the old leader was frozen (SIGSTOP, a long GC
  pause, a stalled VM) and wakes up later with stale intentions.
- Updates carry the observed `resourceVersion`: two standbys racing for an expired Lease get one
  success and one 409.
- Lease requests run on a thread of their own (`LEASE_EXECUTOR`), never queued behind decisions: with
  10,000 ModelDeployments created at once, thousands of decisions wait for the shared I/O threads, and
  a renewal waiting among them missed its renew deadline, so the leader deposed itself again and again
  and dropped the decisions it had started (bench, issue 22).

Every replica keeps its watches warm (cheap), but only the holder reconciles.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from kubernetes import client

from tollgate.adapters.errors import ConflictError, KubeError, NotFoundError, TemporaryError, kube_errors

log = logging.getLogger("tollgate.leader")

T = TypeVar("T")

JITTER = 1.2
"""client-go's JitterFactor: retries wait retry_period * [1, 1.2)."""

LEASE_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-lease")
"""The Lease requests' own thread (see the module docstring); one: a round's requests are sequential."""


async def in_lease_thread(fn: Callable[[], T]) -> T:
    """Run a Lease request on LEASE_EXECUTOR (with the caller's context, like asyncio.to_thread)."""
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(LEASE_EXECUTOR, ctx.run, fn)


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseSettings:
    """client-go's defaults (kube-controller-manager uses the same: 15 s, 10 s, 2 s)."""

    namespace: str
    name: str = "tollgate-operator"
    duration: float = 15.0
    """How long a standby waits, after it last saw the record change, before it takes the Lease."""
    renew_deadline: float = 10.0
    """How long the leader keeps acting without a successful renewal; then it stops."""
    retry_period: float = 2.0
    """Time between attempts to acquire or renew."""
    request_timeout: float = 5.0
    """Timeout of each Lease request."""

    def __post_init__(self) -> None:
        # The same checks as client-go's NewLeaderElector, with the flag names in the message.
        if not self.duration > self.renew_deadline:
            raise ValueError(f"--lease-duration ({self.duration:g}s) must be greater than "
                             f"--lease-renew-deadline ({self.renew_deadline:g}s)")
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(f"--lease-renew-deadline ({self.renew_deadline:g}s) must be greater than "
                             f"{JITTER:g} x --lease-retry-period ({self.retry_period:g}s)")
        if self.retry_period <= 0 or self.request_timeout <= 0:
            raise ValueError("--lease-retry-period and the request timeout must be positive")


def _wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """`holds()` is true only while this process may act; `is_leader` lets loops wait for it."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, identity: str | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], dt.datetime] = _wall,
                 labels: Mapping[str, str] | None = None):
        self._coord = client.CoordinationV1Api(api)
        self.labels = dict(labels or {})
        """Labels of the Lease when this process creates it (the shard Leases are listed by them)."""
        self.blocked: Callable[[], str | None] | None = None
        """Asked before taking the Lease (never before renewing it): the name of a live Lease that must go
        first, or None (runtime.sharding: replicas of a --shards N > 1 still running)."""
        self.settings = settings
        self.identity = identity or default_identity()
        self.is_leader = asyncio.Event()
        self.transitions = 0
        self._clock = clock
        self._wall = wall
        self._observed_rv: str | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        """Monotonic time at which the last successful acquire or renew request was *sent*."""

    # -- the rule every write obeys --------------------------------------------------------------------
    def holds(self) -> bool:
        """True while the last successful renewal started less than renew_deadline ago."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.settings.renew_deadline

    async def wait_holding(self) -> None:
        """Return once this process holds the Lease (at once if it does)."""
        while not self.holds():
            self.sync()
            await self.is_leader.wait()

    # -- one attempt -------------------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One attempt, as client-go's tryAcquireOrRenew; True when this process holds the Lease now."""
        s = self.settings
        started = self._clock()
        now = _micro(self._wall())
        if self.blocked is not None and not self.holds() and (waiting := self.blocked()):
            log.info("not taking the Lease while another is alive", extra={"lease": s.name, "waiting_for": waiting})
            return False
        try:
            with kube_errors():
                lease = self._coord.read_namespaced_lease(s.name, s.namespace, _request_timeout=s.request_timeout)
        except NotFoundError:
            body = {"metadata": {"name": s.name, "namespace": s.namespace, "labels": self.labels},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": round(s.duration),
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
            try:
                with kube_errors():
                    created = self._coord.create_namespaced_lease(s.namespace, body,  # type: ignore[arg-type]
                                                                  _request_timeout=s.request_timeout)
            except ConflictError:  # another replica created it first
                return False
            self._observe(created.metadata.resource_version if created.metadata else None)
            if self._yield_if_blocked():
                return False
            self._renewed_at = started
            return True
        assert lease.spec is not None and lease.metadata is not None
        rv = lease.metadata.resource_version
        if rv != self._observed_rv:
            self._observe(rv)
        holder = lease.spec.holder_identity or ""
        duration = float(lease.spec.lease_duration_seconds or s.duration)
        if holder and holder != self.identity and self._clock() < self._observed_at + duration:
            return False  # held by another, and we have not yet seen its record unchanged for long enough
        spec: dict[str, object] = {"holderIdentity": self.identity, "leaseDurationSeconds": round(s.duration),
                                   "renewTime": now}
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = (lease.spec.lease_transitions or 0) + 1
        body = {"metadata": {"resourceVersion": rv}, "spec": spec}
        try:  # optimistic concurrency: a racing standby gets 409 and stays standby
            with kube_errors():
                written = self._coord.patch_namespaced_lease(s.name, s.namespace, body,
                                                             _request_timeout=s.request_timeout)
        except ConflictError:
            return False
        self._observe(written.metadata.resource_version if written.metadata else None)
        if holder != self.identity and self._yield_if_blocked():
            return False
        self._renewed_at = started
        return True

    def _yield_if_blocked(self) -> bool:
        """Asked again right after taking the Lease, before it counts as held: `blocked` is asked before
        the take too, but a replica of the other kind may have taken its own Lease in between, having
        asked before our take. Each side writes before it reads here, so at least one sees the other;
        the one that does gives its Lease back at once and has never acted on it."""
        if self.blocked is None or not (waiting := self.blocked()):
            return False
        log.info("gave the Lease back: another is alive", extra={"lease": self.settings.name, "waiting_for": waiting})
        self._write_release()
        return True

    def _observe(self, rv: str | None) -> None:
        self._observed_rv = rv
        self._observed_at = self._clock()

    def note(self, rv: str | None) -> None:
        """A record of this Lease seen elsewhere (runtime.sharding lists all shard Leases at once): its
        expiry is judged from the first time this resourceVersion was seen, as if read here."""
        if rv != self._observed_rv:
            self._observe(rv)

    # -- the loop ------------------------------------------------------------------------------------------
    async def run(self, stopped: asyncio.Event | None = None) -> None:
        """Acquire, renew every retry period, and stop acting past the renew deadline; until cancelled."""
        watchdog = asyncio.create_task(self._watch_deadline())
        try:
            while stopped is None or not stopped.is_set():
                asked = 0.0
                try:
                    await in_lease_thread(self.try_acquire_or_renew)
                except KubeError as exc:  # the API server may be briefly unreachable; holds() decides
                    log.warning("lease request failed", extra={"status": exc.status, "error": str(exc)[:300]})
                    if isinstance(exc, TemporaryError) and exc.status == 429:
                        asked = exc.delay  # throttled: the next attempt no sooner than its Retry-After
                self.sync()
                delay = self.settings.retry_period
                await asyncio.sleep(max(asked, delay if self.holds() else delay * random.uniform(1.0, JITTER)))
        finally:
            watchdog.cancel()

    async def _watch_deadline(self) -> None:
        """Clear `is_leader` as soon as the renew deadline passes, not only after the next attempt."""
        while True:
            self.sync()
            await asyncio.sleep(min(0.5, self.settings.retry_period / 2))

    def sync(self) -> None:
        held = self.holds()
        if held and not self.is_leader.is_set():
            self.transitions += 1
            log.info("became leader", extra={"identity": self.identity, "lease": self.settings.name})
            self.is_leader.set()
        elif not held and self.is_leader.is_set():
            log.warning("lost leadership: not renewed within the renew deadline; stopped acting",
                        extra={"identity": self.identity, "lease": self.settings.name,
                               "renew_deadline": self.settings.renew_deadline})
            self.is_leader.clear()

    def release(self) -> None:
        """Give the Lease up on clean shutdown so a standby takes over at once (client-go's
        ReleaseOnCancel): only while still holding it, and only our own record."""
        if not self.holds():
            return
        self._renewed_at = None
        self.is_leader.clear()
        self._write_release()

    def _write_release(self) -> None:
        s = self.settings
        body = {"metadata": {"resourceVersion": self._observed_rv},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": None,
                         "acquireTime": None}}
        try:
            with kube_errors():
                self._coord.patch_namespaced_lease(s.name, s.namespace, body, _request_timeout=s.request_timeout)
        except KubeError as exc:  # shutting down: the Lease then expires on its own
            log.info("lease not released", extra={"status": exc.status, "error": str(exc)[:200]})
