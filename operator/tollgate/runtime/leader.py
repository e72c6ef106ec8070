"""Lease-based leader election, so two operator replicas never both act.

Why not kopf peering: peering freezes operators of equal priority, so two replicas from one Helm
Deployment (same priority) would both stop. A coordination.k8s.io Lease is what Kubernetes' own
controllers use: the holder renews it; a standby takes it over only after it expired. Every replica
keeps its watches warm (cheap), but only the holder reconciles, so fail-over takes one lease period.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from kubernetes import client

from tollgate.adapters.errors import ConflictError, KubeError, NotFoundError, kube_errors

log = logging.getLogger("tollgate.leader")


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = "tollgate-operator"
    duration: float = 15.0
    renew_every: float = 5.0
    retry_every: float = 2.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    """Holds `is_leader` set while this process holds the Lease."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, identity: str | None = None):
        self._coord = client.CoordinationV1Api(api)
        self.settings = settings
        self.identity = identity or default_identity()
        self.is_leader = asyncio.Event()
        self.transitions = 0

    def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(s.duration),
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            with kube_errors():
                lease = self._coord.read_namespaced_lease(s.name, s.namespace)
        except NotFoundError:
            body = {"metadata": {"name": s.name, "namespace": s.namespace},
                    "spec": {**spec, "acquireTime": spec["renewTime"], "leaseTransitions": 0}}
            try:
                with kube_errors():
                    self._coord.create_namespaced_lease(s.namespace, body)  # type: ignore[arg-type]
            except ConflictError:
                return False
            return True
        assert lease.spec is not None and lease.metadata is not None
        holder = lease.spec.holder_identity
        renew = lease.spec.renew_time
        duration = lease.spec.lease_duration_seconds or int(s.duration)
        expired = renew is None or (renew + dt.timedelta(seconds=duration)) < now
        if holder != self.identity and not expired:
            return False
        patch_spec = dict(spec)
        if holder != self.identity:
            patch_spec["acquireTime"] = spec["renewTime"]
            patch_spec["leaseTransitions"] = (lease.spec.lease_transitions or 0) + 1
        body = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": patch_spec}
        try:  # optimistic concurrency: a racing standby gets 409 and stays standby
            with kube_errors():
                self._coord.patch_namespaced_lease(s.name, s.namespace, body)
        except ConflictError:
            return False
        return True

    async def run(self, stopped: asyncio.Event | None = None) -> None:
        """Acquire, renew, and step down on failure; runs until cancelled."""
        while stopped is None or not stopped.is_set():
            try:
                held = await asyncio.to_thread(self._try_acquire_or_renew)
            except KubeError as exc:  # the API server may be briefly unreachable
                log.warning("lease renewal failed", extra={"error": str(exc)})
                held = False
            if held and not self.is_leader.is_set():
                self.transitions += 1
                log.info("became leader", extra={"identity": self.identity})
                self.is_leader.set()
            elif not held and self.is_leader.is_set():
                log.warning("lost leadership", extra={"identity": self.identity})
                self.is_leader.clear()
            await asyncio.sleep(self.settings.renew_every if held else self.settings.retry_every)

    def release(self) -> None:
        """Give the Lease up on clean shutdown so a standby takes over at once."""
        if not self.is_leader.is_set():
            return
        try:
            with kube_errors():
                self._coord.patch_namespaced_lease(
                    self.settings.name, self.settings.namespace,
                    {"spec": {"holderIdentity": None, "renewTime": None}})
        except KubeError as exc:  # the Lease then expires on its own after its duration
            log.info("could not release the lease", extra={"error": str(exc)})
        self.is_leader.clear()
