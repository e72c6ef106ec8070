"""In-memory state the runtime keeps between decisions: one entry per ModelDeployment.

Nothing here is the source of truth (status is): it holds what watches delivered (the latest body,
the tracks' Deployments) and the wake-up signal of each ModelDeployment's loop, so decisions happen
on events and at the times the engine asked for, never by polling the API server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollgate.adapters import json_codec
from tollgate.api import resource
from tollgate.api.spec import RouterKind
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.autoscale import ANNOTATION_AUTOSCALED
from tollgate.engine.dataplane import DATAPLANE_KINDS, route_name, service_name
from tollgate.engine.hook_observations import JobObservation
from tollgate.engine.naming import fit
from tollgate.engine.observations import PodProblem, RouteObservation, RoutingObservation, Track, TrackObservation
from tollgate.engine.serving import route_routing, service_routing
from tollgate.engine.workloads import deployment_name
from tollgate.runtime.jobs import job_observation
from tollgate.runtime.pods import pod_problem, worst
from tollgate.runtime.templates import TemplateIndex, TemplateKey, references

MDKey = tuple[str, str]

REMOVABLE_KINDS = DATAPLANE_KINDS | {"HorizontalPodAutoscaler"}
"""Managed kinds a spec change can make unwanted (Registry.removable)."""


@dataclass
class PendingEvidence:
    name: str
    payload: Mapping[str, Any]
    dropped: frozenset[str] = frozenset()
    """Records whose incident left the bounded history: deleted by name once this one is written."""
    rebuilt: bool = False
    """Rebuilt from status after a restart: written only if no record of that name exists (create)."""
    attempts: int = 0


class Wake:
    """asyncio.Event's set, clear, is_set and wait, for the few waiters of one object (its loop).

    An asyncio.Event keeps a deque of waiters from its creation (~1.1 KB with its attribute dict), one per
    ModelDeployment; this keeps two slots, and a list only while someone waits (issue 22)."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter (each returns True), as asyncio.Event.set."""
        if self._flag:
            return
        self._flag = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        """Return True at once if set, else once `set` is called (cancellable, as asyncio.Event.wait)."""
        if self._flag:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._waiters = None


@dataclass
class ObjectState:
    """What the runtime remembers about one ModelDeployment."""

    key: MDKey
    wake: Wake = field(default_factory=Wake)
    raw: bytes | None = None
    """The latest body as compact JSON, zlib-compressed (level 1): a tenth of the memory of the parsed
    dicts as JSON, a third of that again compressed (a bench ModelDeployment with status: 3.1 KB -> 1.1 KB;
    ~80 us to compress at each event taken, and nothing measurable to decompress next to the parse)."""
    revision: int = 0
    """Counts the bodies taken, so a decision can tell whether a newer one arrived meanwhile."""
    deciding_on: int = 0
    """`revision` of the body the running (or last) decision started from."""
    sandbox_ready: bool = False
    written_resource_version: str | None = None
    """resourceVersion our last status write produced: its watch event needs no new decision."""
    pending_evidence: PendingEvidence | None = None
    """A rollback's evidence not recorded yet (its write failed): retried at the next decisions."""
    drifted: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(kind, namespace, name) -> 'deleted' or 'changed': children someone else removed or edited since
    our last apply; the next decision restores them and reports each in an Event."""
    decisions: int = 0
    attempts: int = 0
    """Decisions tried, failed ones included (the start-up waits for the first one of changed objects)."""
    adopted_resource_version: str | None = None
    """resourceVersion of the body last taken from a watch event or listing: the same one again (kopf's
    listing of an object already decided at start-up) carries nothing new."""
    hold_until: float = 0.0
    """Monotonic time before which the loop does not decide again, whatever wakes it: the end of the
    last temporary failure's delay (the server's Retry-After when it sent one)."""
    shard: int = 0
    """Its shard (runtime.shard_plan.shard_of its UID) when the operator runs with --shards; else 0."""
    stopped: bool = False
    task: asyncio.Task[None] | None = None
    """The object's reconcile loop (runtime.handlers.rollout_loop) while it runs."""

    @property
    def body(self) -> dict[str, Any] | None:
        """A fresh dict of the latest body each time (parsing 4 KB costs microseconds, once a decision;
        keeping 1,000 parsed bodies costs tens of megabytes)."""
        if self.raw is None:
            return None
        body: dict[str, Any] = json_codec.loads(zlib.decompress(self.raw))
        return body

    @body.setter
    def body(self, value: Mapping[str, Any] | None) -> None:
        """Stored without metadata.managedFields (often half of an object, never read), whichever path the
        body came by (a watch event, a LIST, a status write's response, a re-read after a conflict)."""
        if value is None:
            self.raw = None
        else:
            meta = {k: v for k, v in (value.get("metadata") or {}).items() if k != "managedFields"}
            kept = {**value, "metadata": meta}
            self.raw = zlib.compress(json_codec.dumps(kept), 1)
        self.revision += 1

    def kick(self) -> None:
        self.wake.set()

    def adopt(self, body: dict[str, Any]) -> None:
        """Take the latest body. Before the first decision (e.g. after a restart) the sandbox counts as
        ready when status says it was: the first decision re-applies it anyway (skipping what is
        unchanged), so this only avoids flipping SandboxReady off and on again with two status writes."""
        self.body = body
        self.adopted_resource_version = (body.get("metadata") or {}).get("resourceVersion")
        if self.decisions == 0 and not self.sandbox_ready:
            conditions = (body.get("status") or {}).get("conditions") or []
            self.sandbox_ready = any(c.get("type") == "SandboxReady" and c.get("status") == "True"
                                     for c in conditions)


@dataclass
class Registry:
    objects: dict[MDKey, ObjectState] = field(default_factory=dict)
    tracks: dict[tuple[str, str], TrackObservation] = field(default_factory=dict)
    """(sandbox namespace, deployment name) -> observation; filled by Deployment watch events."""

    routes: dict[tuple[str, str], RouteObservation] = field(default_factory=dict)
    """(sandbox namespace, route name) -> the HTTPRoute's parents status; filled by HTTPRoute watch events."""

    pods: dict[tuple[str, str], dict[str, tuple[str | None, PodProblem | None]]] = field(default_factory=dict)
    """(sandbox namespace, track) -> pod name -> (revision label, why it is not Ready or None); filled by
    the pod watch, so a canary that never pulls its image or crash-loops is seen when the kubelet says so."""

    jobs: dict[str, dict[str, JobObservation]] = field(default_factory=dict)
    """sandbox namespace -> hook Job name -> its state; filled by the Job watch (runtime.jobs)."""

    switches: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    """(sandbox namespace, kind, name) -> the traffic switch of a managed Service (its selector) or
    HTTPRoute (its rules), as their watch events deliver them; read through engine.serving."""

    removable: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """sandbox namespace -> (kind, name) of the Tollgate-managed objects in it that a spec change can make
    unwanted (REMOVABLE_KINDS: the stable track's HPA, the traefik dialect's TraefikServices and Middlewares),
    from their watches: the engine removes the ones its desired objects no longer hold."""

    labels: dict[MDKey, MDKey] = field(default_factory=dict)
    """(namespace, name) as the children's labels carry them (fit to 63 characters) -> the key."""
    templates: TemplateIndex = field(default_factory=TemplateIndex)
    """SLO templates (ClusterSLOTemplate, SLOTemplate), filled by their watch events."""

    decided: asyncio.Event = field(default_factory=asyncio.Event)
    """Set each time a reconcile loop finishes a decision or ends: the start-up waits on it for the first
    decisions of objects changed while down (one event for all, not one per object: objects are many)."""

    def naming(self, key: TemplateKey) -> list[ObjectState]:
        """The ModelDeployments whose latest body names this template (a scan: templates change rarely)."""
        return [st for st in self.objects.values() if (body := st.body) is not None and references(body, key)]

    def state(self, namespace: str, name: str) -> ObjectState:
        key = (namespace, name)
        st = self.objects.get(key)
        if st is None:
            st = self.objects[key] = ObjectState(key)
            self.labels[(fit(namespace), fit(name))] = key
        return st

    def by_labels(self, namespace: str, name: str) -> ObjectState | None:
        """The ModelDeployment a child's md-namespace/md-name labels point to (a dict lookup, not a scan)."""
        key = self.labels.get((namespace, name))
        return None if key is None else self.objects.get(key)

    def forget(self, namespace: str, name: str) -> None:
        st = self.objects.pop((namespace, name), None)
        self.labels.pop((fit(namespace), fit(name)), None)
        if st is not None:
            st.stopped = True
            st.kick()

    def stop_all(self) -> None:
        for st in self.objects.values():
            st.stopped = True
            if st.task is not None:
                st.task.cancel()

    # --- the tracks' Deployments, as watch events report them -----------------------------------
    def observe_deployment(self, body: Mapping[str, Any], deleted: bool) -> MDKey | None:
        """Record a Tollgate-managed Deployment; returns the ModelDeployment it belongs to, or None when
        nothing the engine observes changed (most Deployment status updates: conditions, timestamps),
        so such events wake nobody."""
        meta, labels, owner = _owner(body)
        if owner is None:
            return None
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if deleted:
            self.tracks.pop(key, None)
        else:
            spec = body.get("spec") or {}
            status = body.get("status") or {}
            fresh = (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
            updated = int(status.get("updatedReplicas") or 0) if fresh else 0
            obs = TrackObservation(
                revision=labels.get(resource.LABEL_REVISION),
                desired=int(spec.get("replicas") or 0),
                ready=ready_on_template(status, updated) if fresh else 0,
                updated=updated,
                autoscaled=(meta.get("annotations") or {}).get(ANNOTATION_AUTOSCALED) == "true",
            )
            if self.tracks.get(key) == obs:
                return None
            self.tracks[key] = obs
        return owner

    def track(self, sandbox: str | None, ctx: Context, track: Track) -> TrackObservation:
        if not sandbox:
            return TrackObservation(revision=None)
        obs = self.tracks.get((sandbox, deployment_name(ctx, track))) or TrackObservation(revision=None)
        pods = self.pods.get((sandbox, track.value))
        if obs.revision is None or not pods:
            return obs
        problem = worst([p for revision, p in pods.values() if p is not None and revision == obs.revision])
        return dataclasses.replace(obs, problem=problem) if problem is not None else obs

    # --- the tracks' pods: why a pod is not Ready ----------------------------------------------------
    def observe_pod(self, body: Mapping[str, Any], deleted: bool) -> MDKey | None:
        """Record why a Tollgate-managed pod is not Ready (runtime.pods); returns its ModelDeployment when
        that changed, else None (pods come and go, turn Ready, restart: most events wake nobody)."""
        meta, labels, owner = _owner(body)
        track = labels.get(resource.LABEL_TRACK)
        if owner is None or not track:
            return None
        key = (meta.get("namespace", ""), track)
        name = meta.get("name", "")
        pods = self.pods.setdefault(key, {})
        before = pods.get(name)
        if deleted:
            pods.pop(name, None)
            if not pods:
                self.pods.pop(key, None)
            return owner if before is not None and before[1] is not None else None
        now = (labels.get(resource.LABEL_REVISION), pod_problem(body))
        pods[name] = now
        if (before[1] if before else None) == now[1]:
            return None
        return owner

    # --- hook Jobs (spec.hooks) ----------------------------------------------------------------------
    def observe_job(self, body: Mapping[str, Any], deleted: bool) -> MDKey | None:
        """Record a Tollgate-managed hook Job's state; returns its ModelDeployment when the state changed."""
        meta, _, owner = _owner(body)
        if owner is None:
            return None
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        jobs = self.jobs.setdefault(ns, {})
        before = jobs.get(name)
        if deleted:
            jobs.pop(name, None)
            if not jobs:
                self.jobs.pop(ns, None)
            return owner if before is not None else None
        now = job_observation(body)
        if before == now:
            return None
        jobs[name] = now
        return owner

    def jobs_of(self, sandbox: str | None) -> tuple[JobObservation, ...]:
        return tuple(sorted(self.jobs.get(sandbox, {}).values(), key=lambda j: j.name)) if sandbox else ()

    # --- objects a spec change can make unwanted (the HPA, the traefik dialect's objects) ------------------
    def observe_removable(self, body: Mapping[str, Any], deleted: bool) -> ObjectState | None:
        """Record that a Tollgate-managed object of REMOVABLE_KINDS exists (or went); returns its
        ModelDeployment's state when that changed, so its next decision can remove it if unwanted. Their
        status is not read (for an HPA, the stable Deployment's replicas, which it writes, are what the engine
        plans from: registry.tracks)."""
        kind = body.get("kind")
        if kind not in REMOVABLE_KINDS:
            return None
        meta, _, owner = _owner(body)
        if owner is None:
            return None
        ns, key = meta.get("namespace", ""), (str(kind), str(meta.get("name", "")))
        present = self.removable.setdefault(ns, set())
        before = key in present
        if deleted:
            present.discard(key)
            if not present:
                self.removable.pop(ns, None)
        else:
            present.add(key)
        if before == (not deleted):
            return None
        return self.by_labels(*owner)

    def _removable_of(self, sandbox: str | None, kinds: frozenset[str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(k for k in self.removable.get(sandbox, set()) if k[0] in kinds)) if sandbox else ()

    def autoscalers_of(self, sandbox: str | None) -> tuple[str, ...]:
        return tuple(name for _, name in self._removable_of(sandbox, frozenset({"HorizontalPodAutoscaler"})))

    def dataplane_objects_of(self, sandbox: str | None) -> tuple[tuple[str, str], ...]:
        """(kind, name) of the traefik dialect's objects in the sandbox."""
        return self._removable_of(sandbox, DATAPLANE_KINDS)

    # --- the gatewayAPI router's HTTPRoutes ----------------------------------------------------------
    def observe_route(self, body: Mapping[str, Any], observation: RouteObservation | None) -> MDKey | None:
        """Record a Tollgate-managed HTTPRoute's status (None: deleted); returns its ModelDeployment when
        what the engine judges changed, else None (so the route's own weight patches wake nobody)."""
        meta, _, owner = _owner(body)
        if owner is None:
            return None
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if observation is None:
            if self.routes.pop(key, None) is None:
                return None
        elif self.routes.get(key) == observation:
            return None
        else:
            self.routes[key] = observation
        return owner

    def route(self, sandbox: str | None, name: str) -> RouteObservation | None:
        return self.routes.get((sandbox, name)) if sandbox else None

    def forget_router_object(self, ref: ObjectRef) -> None:
        """An HTTPRoute or Service a DELETE found gone: no DELETED event may come for it (a watch gap), and
        the engine, still seeing it, would delete it again at every decision."""
        if ref.kind == "HTTPRoute":
            self.routes.pop((ref.namespace or "", ref.name), None)
        if ref.kind in ("HTTPRoute", "Service"):
            self.switches.pop((ref.namespace or "", ref.kind, ref.name), None)

    # --- the router's switch: the replicas router's Service selector, the HTTPRoute's weights ----------
    def observe_routing(self, body: Mapping[str, Any], deleted: bool) -> ObjectState | None:
        """Record the switch of a Tollgate-managed Service or HTTPRoute (its selector, its rules), also
        before its ModelDeployment is known (a restart lists children first); returns that ModelDeployment's
        state when the switch changed, else None."""
        kind = body.get("kind", "")
        if kind not in ("Service", "HTTPRoute"):
            return None
        meta = body.get("metadata", {})
        labels = meta.get("labels") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        spec = body.get("spec") or {}
        switch = {"selector": spec.get("selector")} if kind == "Service" else {"rules": spec.get("rules")}
        if deleted:
            if self.switches.pop(key, None) is None:
                return None
        elif self.switches.get(key) == switch:
            return None
        else:
            self.switches[key] = switch
        return self.by_labels(labels.get(resource.LABEL_MD_NAMESPACE, ""), labels.get(resource.LABEL_MD_NAME, ""))

    def routing_of(self, sandbox: str | None, ctx: Context, router: RouterKind) -> RoutingObservation | None:
        """Where the router sends requests now (engine.serving), None when its object was not seen."""
        if not sandbox:
            return None
        if router is RouterKind.GATEWAY_API:
            route = self.switches.get((sandbox, "HTTPRoute", route_name(ctx)))
            return None if route is None else route_routing({"spec": route}, ctx)
        service = self.switches.get((sandbox, "Service", service_name(ctx)))
        return None if service is None else service_routing({"spec": service})


def ready_on_template(status: Mapping[str, Any], updated: int) -> int:
    """Ready pods of the Deployment's current template, at least: readyReplicas counts the old template's
    pods too, and during a rolling update (maxUnavailable 0, a surge pod) they are the Ready ones while the
    new pod starts. Every pod beyond the updated ones is counted as an old Ready pod, so the figure is a
    lower bound until the old pods are gone. Without this, a promotion saw the stable track "Ready on the
    new revision" half a second after it began (the surge pod just created, the old pod Ready), moved
    users to stable's old pod and removed the canary (real node: 24 requests answered 5xx)."""
    total = int(status.get("replicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    return max(0, min(ready - max(0, total - updated), updated))


def _owner(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], MDKey | None]:
    """An object's metadata, its labels and the ModelDeployment its owner labels name (None when they
    name none: not one of ours, so its events wake nobody)."""
    meta: Mapping[str, Any] = body.get("metadata") or {}
    labels: Mapping[str, Any] = meta.get("labels") or {}
    md_ns, md_name = labels.get(resource.LABEL_MD_NAMESPACE), labels.get(resource.LABEL_MD_NAME)
    return meta, labels, ((md_ns, md_name) if md_ns and md_name else None)
