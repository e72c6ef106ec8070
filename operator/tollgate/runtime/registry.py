"""In-memory state the runtime keeps between decisions: one entry per ModelDeployment.

Nothing here is the source of truth (status is): it holds what watches delivered (the latest body,
the tracks' Deployments) and the wake-up signal of each ModelDeployment's loop, so decisions happen
on events and at the times the engine asked for, never by polling the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollgate.api import resource
from tollgate.engine.actions import Context
from tollgate.engine.observations import Track, TrackObservation
from tollgate.engine.workloads import deployment_name

MDKey = tuple[str, str]


@dataclass
class ObjectState:
    """What the runtime remembers about one ModelDeployment."""

    key: MDKey
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    body: dict[str, Any] | None = None
    sandbox_ready: bool = False
    sandbox_applied_generation: int | None = None
    written_resource_version: str | None = None
    """resourceVersion our last status write produced: its watch event needs no new decision."""
    last_weight: int = 0
    decisions: int = 0
    stopped: bool = False

    def kick(self) -> None:
        self.wake.set()

    def adopt(self, body: dict[str, Any]) -> None:
        """Take the latest body. Before the first decision (e.g. after a restart) the sandbox counts as
        ready when status says it was: the first decision re-applies it anyway (skipping what is
        unchanged), so this only avoids flipping SandboxReady off and on again with two status writes."""
        self.body = body
        if self.decisions == 0 and not self.sandbox_ready:
            conditions = (body.get("status") or {}).get("conditions") or []
            self.sandbox_ready = any(c.get("type") == "SandboxReady" and c.get("status") == "True"
                                     for c in conditions)


@dataclass
class Registry:
    objects: dict[MDKey, ObjectState] = field(default_factory=dict)
    tracks: dict[tuple[str, str, str], dict[str, TrackObservation]] = field(default_factory=dict)
    """(sandbox namespace, deployment name) -> observation; filled by Deployment watch events."""

    def state(self, namespace: str, name: str) -> ObjectState:
        key = (namespace, name)
        st = self.objects.get(key)
        if st is None:
            st = self.objects[key] = ObjectState(key)
        return st

    def forget(self, namespace: str, name: str) -> None:
        st = self.objects.pop((namespace, name), None)
        if st is not None:
            st.stopped = True
            st.kick()

    # --- the tracks' Deployments, as watch events report them -----------------------------------
    def observe_deployment(self, body: Mapping[str, Any], deleted: bool) -> MDKey | None:
        """Record a Tollgate-managed Deployment; returns the ModelDeployment it belongs to."""
        meta = body.get("metadata", {})
        labels = meta.get("labels") or {}
        md_ns = labels.get(resource.LABEL_MD_NAMESPACE)
        md_name = labels.get(resource.LABEL_MD_NAME)
        if not md_ns or not md_name:
            return None
        key = (meta.get("namespace", ""), meta.get("name", ""))
        slot = self.tracks.setdefault((*key, ""), {})
        if deleted:
            self.tracks.pop((*key, ""), None)
        else:
            spec = body.get("spec") or {}
            status = body.get("status") or {}
            fresh = (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
            slot["obs"] = TrackObservation(
                revision=labels.get(resource.LABEL_REVISION),
                desired=int(spec.get("replicas") or 0),
                ready=int(status.get("readyReplicas") or 0) if fresh else 0,
                updated=int(status.get("updatedReplicas") or 0) if fresh else 0,
            )
        return (md_ns, md_name)

    def track(self, sandbox: str | None, ctx: Context, track: Track) -> TrackObservation:
        if not sandbox:
            return TrackObservation(revision=None)
        slot = self.tracks.get((sandbox, deployment_name(ctx, track), ""))
        if not slot or "obs" not in slot:
            return TrackObservation(revision=None)
        return slot["obs"]
