"""kopf handlers: thin wiring from watch events to the reconcile loop of each ModelDeployment.

- create, update, resume: every watch event of a ModelDeployment (`on.event`) stores the latest body
  and wakes that object's loop; the loop is an asyncio task, started by the object's first event
  (when it appears, and for every object when the operator starts: kopf delivers the initial listing
  as events). No kopf progress or diff-base
  annotations are written on the way, so a change costs one decision, and no-op events cost nothing.
- the declarative controls (`paused`, `killSwitch`, `fallback` in spec; the tollgate.dev/approve,
  promote, abort and retry annotations) are ordinary changes of the object: the same event wakes
  the loop, and the engine reads them.
- the tracks' Deployments are watched too, so a canary turning Ready wakes its ModelDeployment.
- delete: the finalizer puts traffic back on stable, removes the sandbox, then releases the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import kopf

from tollgate.adapters.errors import ConflictError, FencedError, KubeError, PermanentError, TemporaryError
from tollgate.adapters.kube import LIST_PAGE
from tollgate.adapters.routers.gateway_api import route_observation
from tollgate.api import resource, templates
from tollgate.api.routers import GatewayDialect
from tollgate.engine.actions import ObjectRef
from tollgate.runtime import metrics
from tollgate.runtime.app import IO_THREADS, Runtime
from tollgate.runtime.health import UnhealthyError
from tollgate.runtime.intent import kill_switch_pending
from tollgate.runtime.reconciler import IN_SLOT
from tollgate.runtime.registry import MDKey, ObjectState
from tollgate.runtime.sharding import CURRENT_SHARD

log = logging.getLogger("tollgate.handlers")

MD = (resource.GROUP, resource.VERSION, resource.PLURAL)
FINALIZER = resource.FINALIZER


def _rt(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff-base storage that stores nothing (no on.create/on.update/on.field handlers use one)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        """Nothing: kopf builds an essence (a deep copy of the whole body) at every event of every watched
        kind, only to diff it against what `fetch` returns (None, always) and hand it to `store` (which
        drops it). That copy was a tenth of the operator's CPU in a bulk create (py-spy, issue 22)."""
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Every kopf setting that matters is set here, explicitly."""
    settings.persistence.finalizer = FINALIZER
    # Progress of the delete handler only (the loop keeps its progress in status): annotations under
    # our own prefix, never status fields the schema would prune.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="tollgate.dev")
    # No handler here reacts to diffs (on.event and the loop decide from the whole object), so kopf
    # keeps no diff base: storing one would PATCH every object on every change of its labels or spec.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.enabled = True
    settings.posting.level = logging.CRITICAL  # only explicit, meaningful Events; logs stay logs
    settings.peering.standalone = True  # Lease-based leader election instead (runtime.leader)
    settings.peering.mandatory = False
    # Only Tollgate's own children are streamed (server-side label selector), not every Service,
    # NetworkPolicy or Namespace of the cluster.
    settings.watching.label_selectors[lambda r: (r.group, r.plural) in WATCHED] = (
        f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}")
    # kopf's start-up listing a page at a time, like ours (adapters.kube.LIST_PAGE): whole, it parsed every
    # child of 10,000 ModelDeployments at once and spawned a worker holding each before any had run.
    settings.watching.chunk_size = LIST_PAGE
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    # kopf's own requests (watches, finalizers, Events) retry 429 after the longer of this backoff and the
    # server's Retry-After (enforce_retry_after=False keeps the backoff when it is the longer one); the
    # operator's own requests honour Retry-After in adapters.kube, the reconcile loop and the elector.
    settings.networking.error_backoffs = (1, 1, 2, 3, 5, 8, 13, 21)
    settings.networking.enforce_retry_after = False
    settings.execution.max_workers = 16
    settings.queueing.idle_timeout = WORKER_IDLE_TIMEOUT
    settings.background.cancellation_polling = 5
    # asyncio.to_thread runs the synchronous clients; size it like the connection pool (app.IO_THREADS).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="tollgate-io"))
    rt = _rt(memo)
    await rt.start()
    if rt.sharding is not None:
        # Nothing is held yet: each shard's objects are listed and decided when it is taken (changed ones
        # first, like decide_changed_first), and dropped when it is lost.
        rt.sharding.on_change = lambda gained, lost: shards_changed(rt, gained, lost)
        return
    await decide_changed_first(rt)


WORKER_IDLE_TIMEOUT = 0.5
"""Seconds kopf keeps an object's stream worker after its last event (kopf's default: 5). An idle worker
still holds the last watch event it parsed (the whole body, managedFields included): during a bulk
create of 1,000 ModelDeployments that is every object with an event in the last 5 s, ~11 per
ModelDeployment, megabytes the heap keeps as scattered free space after the burst (bench/README.md,
issue 22). A later event starts a new worker: events of one object are still handled in order."""


CHANGED_FIRST_SANDBOXES = 20
"""Objects changed while down whose sandboxes are learnt one by one ahead of everything (decide_changed_first);
beyond that, one LIST per kind of everything is fewer requests than a few per sandbox."""

CHANGED_FIRST_WAIT = 5.0
"""Seconds the start-up gives the first decisions of ModelDeployments changed while the operator was
down, before kopf's watches start listing every object (the bound keeps a slow decision, or a replica
that does not lead, from holding up the start)."""


async def decide_changed_first(rt: Runtime) -> None:
    """Decide the ModelDeployments whose spec changed while the operator was down before anything else.

    After a restart kopf lists every watched object and hands each one to a handler: with 1,000
    ModelDeployments that is ~10,000 child events and 1,000 settled decisions on one event loop, and the
    one object somebody changed would wait behind them. Its body comes from one LIST of
    ModelDeployments here instead (runtime.app.changed_while_down), its loop starts at once, and the
    start-up waits (at most CHANGED_FIRST_WAIT) for that first decision. kopf's later listing event for
    the same resourceVersion changes nothing.

    The decision must see its children as they are (tracks, routes, switches, Jobs), so its sandbox is
    learnt first: a few LISTs in that namespace when few objects changed (at most CHANGED_FIRST_SANDBOXES),
    and everything else is learnt after, while it decides. Learning every managed object first took
    ~1.3 s per 1,000 ModelDeployments, so at 10,000 the changed one would have waited ~15 s for it."""
    changed = await rt.changed_while_down()
    few = len(changed) <= CHANGED_FIRST_SANDBOXES
    for body in changed if few else ():
        sandbox = (body.get("status") or {}).get("sandboxNamespace")
        if sandbox:
            await rt.learn_managed(sandbox)
    if not few:
        await rt.learn_managed()
    await _decide_first(rt, changed)
    if few:
        await rt.learn_managed()  # everything else, before kopf's watches list it all


async def _decide_first(rt: Runtime, changed: list[dict[str, Any]]) -> None:
    states = []
    for body in changed:
        meta = body["metadata"]
        st = rt.registry.state(meta["namespace"], meta["name"])
        st.adopt(dict(body))  # stored serialised without managedFields (ObjectState.body)
        ensure_loop(rt, st)
        st.kick()
        states.append(st)
    if not states:
        return
    log.info("deciding ModelDeployments changed while down first", extra={"objects": len(states)})
    deadline = time.monotonic() + CHANGED_FIRST_WAIT
    while (left := deadline - time.monotonic()) > 0:
        rt.registry.decided.clear()  # before the check: a decision landing in between is not missed
        if not any(st.attempts == 0 and not st.stopped and st.task is not None for st in states):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.registry.decided.wait(), left)


def shards_changed(rt: Runtime, gained: frozenset[int], lost: frozenset[int]) -> None:
    """A shard lost: its objects' loops stop and their state goes (another replica decides them now). A
    shard gained: its objects come from one LIST, not from waiting for their next watch events."""
    if lost:
        gone = [st for st in rt.registry.objects.values() if st.shard in lost]
        for st in gone:
            rt.registry.forget(*st.key)
            metrics.forget(*st.key)  # its series are the new holder's to export now
        log.info("shards handed over; their ModelDeployments dropped",
                 extra={"shards": sorted(lost), "objects": len(gone)})
    if gained:
        task = asyncio.create_task(_take_shards(rt, gained), name=f"take shards {sorted(gained)}")
        rt.background.add(task)
        task.add_done_callback(rt.background.discard)


TAKE_RETRY = 2.0
"""Seconds between LISTs of a gained shard's ModelDeployments when one fails (at most 30 s apart)."""


async def _take_shards(rt: Runtime, shards: frozenset[int]) -> None:
    """Load a gained shard's objects; a failed LIST is tried again while any of the shards is still held:
    idle objects send no watch events, so nothing else would ever load them."""
    delay = TAKE_RETRY
    while True:
        try:
            bodies = await rt.models(shards, strict=True)
            break
        except KubeError as exc:
            if rt.sharding is None or not shards & rt.sharding.owned:
                return
            log.warning("could not list a gained shard's ModelDeployments; retrying",
                        extra={"shards": sorted(shards), "retry_in": delay, "error": str(exc)[:300]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    taken = 0
    for body in bodies:
        if rt.owns(body):  # still held after the LIST
            meta = body["metadata"]
            taken += take(rt, meta["namespace"], meta["name"], body)
    log.info("shards taken; their ModelDeployments loaded", extra={"shards": sorted(shards), "objects": taken})


@kopf.on.probe(id="apiserver")
async def apiserver_probe(memo: Any, **_: Any) -> str:
    """Part of /healthz: fails once the API server (and so every watch) has been unreachable too long."""
    try:
        return await asyncio.to_thread(_rt(memo).health.check)
    except UnhealthyError as exc:
        raise kopf.PermanentError(str(exc)) from exc  # no retries inside the probe request: fail now


@kopf.on.cleanup()
async def shutdown(memo: Any, **_: Any) -> None:
    await _rt(memo).stop()


@kopf.on.event(*MD)
async def md_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, memo: Any,
                   **_: Any) -> None:
    rt = _rt(memo)
    metrics.WATCH_EVENTS.labels("ModelDeployment").inc()
    assert namespace is not None  # ModelDeployments are namespaced
    if event.get("type") == "DELETED":
        rt.registry.forget(namespace, name)
        metrics.forget(namespace, name)
        return
    if not rt.owns(body):
        if (namespace, name) in rt.registry.objects:
            rt.registry.forget(namespace, name)  # its shard moved to another replica meanwhile
        return
    take(rt, namespace, name, body)


def take(rt: Runtime, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
    """Store the newest body of a ModelDeployment and wake its loop (starting it if needed); False when
    the body carried nothing new."""
    st = rt.registry.state(namespace, name)
    rv = (body.get("metadata") or {}).get("resourceVersion")
    if st.task is not None and rv is not None and rv in (st.adopted_resource_version, st.written_resource_version):
        # the body the loop already has: kopf's listing of an object decided at start-up, or the echo of our
        # own status write (its response is stored already; storing it again cost a serialisation and a
        # compression per status write)
        return False
    raw = dict(body)  # shallow: ObjectState stores it serialised, which is the copy
    if is_older(rv, st.written_resource_version) or is_older(rv, st.adopted_resource_version):
        return False  # older than what we wrote or already hold (a LIST that raced a watch event)
    st.adopt(raw)
    st.shard = rt.shard_of(raw)
    if st.task is None and not taken_on(raw):
        return False  # a new object: kopf's finalizer comes next, and its event starts the loop
    if st.task is None:
        ensure_loop(rt, st, delay=0.0 if needs_attention(raw) else SETTLED_FIRST_DELAY)
        st.kick()
        return True
    st.kick()
    return True


def taken_on(body: Mapping[str, Any]) -> bool:
    """Whether the loop may start: the object carries our finalizer, or is being deleted.

    kopf adds the finalizer right after a new object's first event reaches this handler. Deciding on that
    first body raced kopf's patch: the decision's status write, conditioned on the older resourceVersion,
    was answered 409 after its actions had run, and the decision was made again, its Events posted twice
    (one 409 and one duplicate Event per new ModelDeployment in a bulk create). It could also create a
    sandbox before the finalizer that makes a delete clean it up."""
    meta = body.get("metadata") or {}
    return FINALIZER in (meta.get("finalizers") or []) or meta.get("deletionTimestamp") is not None


def is_older(rv: str | None, than: str | None) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers; compare only when both are."""
    if rv is None or than is None or not rv.isdigit() or not than.isdigit():
        return False
    return int(rv) < int(than)


@kopf.on.event("apps", "v1", "deployments",
               labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})
async def deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    deployment_seen(_rt(memo), event, body)


def deployment_seen(rt: Runtime, event: kopf.RawEvent, body: kopf.Body) -> None:
    """The tracks' Deployments: a rollout that progresses or stalls wakes its ModelDeployment."""
    _wake_owner(rt, "Deployment", event, body, rt.registry.observe_deployment, drift=True)


@kopf.on.event("", "v1", "pods", labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})
async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    pod_seen(_rt(memo), event, body)


def pod_seen(rt: Runtime, event: kopf.RawEvent, body: kopf.Body) -> None:
    """The tracks' pods: a container that never pulls or crash-loops, or a pod no node takes, wakes its
    ModelDeployment with the kubelet's or the scheduler's own reason (runtime.pods)."""
    _wake_owner(rt, "Pod", event, body, rt.registry.observe_pod, drift=False)


def _wake_owner(rt: Runtime, kind: str, event: kopf.RawEvent, body: kopf.Body,
                observe: Callable[[kopf.Body, bool], MDKey | None], *, drift: bool) -> None:
    """One path for the children whose state feeds a decision (Deployments, Pods, Jobs): count the
    event, note a (re)listing, restore what someone else changed (drift=True: objects we apply), record
    the observation and wake the owner. A drift has already woken it; the observation is still kept."""
    metrics.WATCH_EVENTS.labels(kind).inc()
    deleted = event.get("type") == "DELETED"
    if drift and event.get("type") is None:
        rt.watch_listed(kind)
    drifted = child_drift(rt, body, deleted) if drift else None
    owner = observe(body, deleted)
    if owner is None or drifted:
        return
    st = rt.registry.by_labels(*owner)
    if st is not None:
        st.kick()


# The other objects Tollgate writes into sandboxes (and the sandbox namespaces themselves): watched by
# its labels, so an edit or a deletion by anyone else wakes the owner, whose next decision puts it back.
CHILD_KINDS = (
    ("", "v1", "namespaces"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
)
DIALECT_CHILD_KINDS = {
    GatewayDialect.STANDARD: (),
    GatewayDialect.TRAEFIK: (("traefik.io", "v1alpha1", "traefikservices"), ("traefik.io", "v1alpha1", "middlewares")),
}
"""The gatewayAPI router's objects beyond the HTTPRoute in each dialect (engine.dataplane): watched like the other
children, but only in that dialect (`watch_dialect`): the chart grants them, and their CRDs exist, only then."""
WATCHED = {("apps", "deployments"), ("", "pods"), ("batch", "jobs"),
           *((group, plural) for group, _, plural in CHILD_KINDS if plural != "namespaces"),
           *((group, plural) for kinds in DIALECT_CHILD_KINDS.values() for group, _, plural in kinds)}
"""Watched with a server-side label selector. Not Namespaces: kopf resolves the namespace globs of
--namespace from its own Namespace watch, which must see every namespace (the handler filters by label)."""


async def child_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    child_seen(_rt(memo), event, body)


def child_seen(rt: Runtime, event: kopf.RawEvent, body: kopf.Body) -> None:
    """The other children: an edit or a deletion by anyone else wakes the owner (drift); an HPA or a
    dialect object that appears or goes, and a router object moving during a drill, wake it too."""
    metrics.WATCH_EVENTS.labels(body.get("kind") or "child").inc()
    if event.get("type") is None:
        rt.watch_listed(body.get("kind") or "child")
    deleted = event.get("type") == "DELETED"
    drift = child_drift(rt, body, deleted)
    appeared = rt.registry.observe_removable(body, deleted)
    if appeared is not None and not drift:
        appeared.kick()  # an HPA or a dialect object appeared or went: the next decision knows whether to remove it
    owner = rt.registry.observe_routing(body, deleted)
    if owner is not None and drill_running(owner.body):
        owner.kick()  # a drill times the moment the router really moved: decide on it now


def drill_running(body: dict[str, Any] | None) -> bool:
    """The ModelDeployment's last drill is still running (status.lastDrill.outcome Running)."""
    drill = ((body or {}).get("status") or {}).get("lastDrill") or {}
    return bool(drill.get("outcome") == "Running")


for _group, _version, _plural in CHILD_KINDS:
    kopf.on.event(_group, _version, _plural, id=f"child-{_plural}",
                  labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})(child_event)


def watch_dialect(dialect: GatewayDialect) -> None:
    """Watch the dialect's own children too (called once, before kopf runs, with --gateway-dialect)."""
    for group, version, plural in DIALECT_CHILD_KINDS[dialect]:
        kopf.on.event(group, version, plural, id=f"child-{plural}",
                      labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})(child_event)


def child_drift(rt: Runtime, body: kopf.Body, deleted: bool) -> str | None:
    """Someone else's change or deletion of an object we applied: wake its ModelDeployment (its next
    decision re-applies it, and says so in an Event); None for everything else."""
    drift = rt.kube.observe(body, deleted=deleted)
    if drift is None:
        return None
    labels = body.get("metadata", {}).get("labels") or {}
    st = rt.registry.by_labels(labels.get(resource.LABEL_MD_NAMESPACE, ""), labels.get(resource.LABEL_MD_NAME, ""))
    if st is None:
        return drift
    meta = body.get("metadata", {})
    st.drifted[(body.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""))] = drift
    log.info("managed object changed by someone else; restoring",
             extra={"md": "/".join(st.key), "kind": body.get("kind"), "object": meta.get("name"), "drift": drift})
    st.kick()
    return drift


@kopf.on.event("batch", "v1", "jobs", labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})
async def job_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    job_seen(_rt(memo), event, body)


def job_seen(rt: Runtime, event: kopf.RawEvent, body: kopf.Body) -> None:
    """Hook Jobs (spec.hooks): one that completes, fails or times out wakes its ModelDeployment; one someone
    else deleted or edited is restored like any other child."""
    _wake_owner(rt, "Job", event, body, rt.registry.observe_job, drift=True)


@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes",
               labels={resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE})
async def route_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    route_seen(_rt(memo), event, body)


def route_seen(rt: Runtime, event: kopf.RawEvent, body: kopf.Body) -> None:
    """The gatewayAPI router's route: its status.parents decide whether the model is serving (Ready)."""
    metrics.WATCH_EVENTS.labels("HTTPRoute").inc()
    deleted = event.get("type") == "DELETED"
    owner = rt.registry.observe_route(body, None if deleted else route_observation(dict(body)))
    if owner is None:
        return
    st = rt.registry.by_labels(*owner)
    if st is not None:
        st.kick()


DirectHandler = Callable[[kopf.RawEvent], None]


def direct_routes(rt: Runtime) -> dict[tuple[str, str], DirectHandler]:
    """The children's watch events, each kind to the same functions its kopf handlers above call.

    kopf hands every watch event to a worker task of its object and through its cause detection, handler
    selection, per-object memory and invocation context before our handler runs; for the ~20 events of its
    children per new ModelDeployment (its pods and Deployment changing state, the quota's usage) that was
    the operator's largest cost in a bulk create after the requests themselves (issue 22). These kinds have
    only the event handlers above, which decide nothing and never await, so runtime.kopf_fixes delivers
    their stream straight here (kopf still starts, pauses and re-lists the streams). Not Namespaces (kopf's
    namespace observer reads that stream too), nor ModelDeployments and templates (their handlers are
    kopf's own business: finalizer, delete, adoption)."""
    def each(*seen: Callable[[Runtime, kopf.RawEvent, kopf.Body], None]) -> DirectHandler:
        def deliver(event: kopf.RawEvent) -> None:
            body = kopf.Body(event["object"])
            failed: list[Exception] = []
            for fn in seen:  # each runs, as each kopf handler did: one failing does not skip the next
                try:
                    fn(rt, event, body)
                except Exception as exc:
                    failed.append(exc)
            if len(failed) == 1:
                raise failed[0]
            if failed:
                raise ExceptionGroup("watch event handlers failed", failed)
        return deliver

    routes: dict[tuple[str, str], DirectHandler] = {
        ("apps", "deployments"): each(deployment_seen),
        ("", "pods"): each(pod_seen),
        ("batch", "jobs"): each(job_seen),
        ("gateway.networking.k8s.io", "httproutes"): each(child_seen, route_seen),  # kopf's order: child first
    }
    for kind in WATCHED:  # the kinds streamed by our label selector: every child but the Namespace
        routes.setdefault(kind, each(child_seen))
    return routes


@kopf.on.event(resource.GROUP, resource.VERSION, templates.CLUSTER_PLURAL)
async def cluster_template_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _template_event(_rt(memo), templates.CLUSTER_KIND, event, body)


@kopf.on.event(resource.GROUP, resource.VERSION, templates.PLURAL)
async def template_event(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _template_event(_rt(memo), templates.KIND, event, body)


async def _template_event(rt: Runtime, kind: str, event: kopf.RawEvent, body: kopf.Body) -> None:
    """Keep the template index current; wake the ModelDeployments that name the template, so a missing
    template that appears resumes their analysis at once."""
    metrics.WATCH_EVENTS.labels(kind).inc()
    key = rt.registry.templates.observe(kind, dict(body), deleted=event.get("type") == "DELETED")
    for st in rt.registry.naming(key):
        st.kick()


SETTLED_FIRST_DELAY = 1.0
"""At start, objects whose status already reflects their spec decide this much later than those changed
while the operator was down, so 1,000 settled objects do not queue in front of the one that changed."""


def needs_attention(body: dict[str, Any]) -> bool:
    """New, changed since the last decision, or being deleted: decide at once."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    return (meta.get("deletionTimestamp") is not None or not status
            or status.get("observedGeneration") != meta.get("generation"))


async def rollout_loop(rt: Runtime, st: ObjectState, delay: float = 0.0) -> None:
    """One loop per ModelDeployment: wait for an event or the engine's next time, then reconcile.

    A plain asyncio task, started by the first watch event of the object (kopf delivers the initial
    listing as events too, so a restart resumes every object). Not a kopf daemon: kopf keeps a daemon's
    latest body, stopper and logger per object on top of ours, which at 1,000 objects costs more memory
    than the object itself.
    """
    wake_at: datetime | None = None
    if delay:
        await asyncio.sleep(delay)
    while not st.stopped:
        await _until_event_or(st, wake_at, rt.reconciler.clock)
        await _hold(st)
        st.wake.clear()
        if st.stopped:
            break
        deleting, slotless = _look(st)
        if deleting:
            break
        await rt.wait_leadership(st.shard)
        # Waiting for a slot holds nothing parsed (runtime.app.DECISION_SLOTS); a kill switch just turned on
        # does not wait for one (runtime.intent.kill_switch_pending), nor gives back one it never took.
        # A loop that has decided before goes ahead of first decisions (runtime.decision_slots).
        async with contextlib.nullcontext() if slotless else rt.decision_slots.hold(first=st.decisions == 0):
            if st.stopped:  # dropped while it waited (its shard went to another replica): its body is stale
                break
            CURRENT_SHARD.set(st.shard)  # this decision's writes are fenced by its shard's Lease
            IN_SLOT.set(not slotless)
            wake_at = await _reconcile_once(rt, st)
        st.attempts += 1
        rt.registry.decided.set()
    st.task = None
    rt.registry.decided.set()


def _look(st: ObjectState) -> tuple[bool, bool]:
    """From one parse of the latest body: whether it has a deletionTimestamp (kopf's delete handler takes
    over then), and whether its kill switch was just turned on (runtime.intent.kill_switch_pending).

    A function of its own so the parsed body is dropped at once: as a local of the loop it stayed alive
    while the loop waited for the next event, ~14 KB of dicts per ModelDeployment (bench/README.md)."""
    body = st.body
    return bool(body and body.get("metadata", {}).get("deletionTimestamp")), kill_switch_pending(body)


async def _reconcile_once(rt: Runtime, st: ObjectState) -> datetime | None:
    """One decision; a failure is logged with the object's name and retried later, never a hot loop.

    Typed errors come from the adapters (already retried there, bounded); the catch-all below is the
    runtime's only one: whatever else goes wrong in one object's decision must not end its loop.
    """
    md = "/".join(st.key)
    clock = rt.reconciler.clock
    # Every delay below counts from when the failure happened (clock() after the await), not from when
    # the decision started: a decision whose requests were throttled and retried for seconds would
    # otherwise come back with a wake-up time already past, and send again at once.
    try:
        return await rt.reconciler.reconcile(st)
    except FencedError:
        # Leadership lapsed mid-decision: nothing was sent; the loop waits to lead, then decides again.
        log.info("not leading any more; decision dropped", extra={"md": md})
        return clock()
    except TemporaryError as exc:
        # The server said when to come back (Retry-After on 429/503), or the adapter chose a backoff:
        # a floor that watch events cannot shorten (see _hold).
        st.hold_until = time.monotonic() + exc.delay
        log.warning("reconcile failed temporarily, retrying later",
                    extra={"md": md, "retry_in": exc.delay, "error": str(exc)})
        return clock() + timedelta(seconds=exc.delay)
    except ConflictError as exc:
        log.info("conflict while reconciling; deciding again from the newest object",
                 extra={"md": md, "error": str(exc)})
        return clock() + timedelta(seconds=CONFLICT_RETRY)
    except PermanentError as exc:
        log.error("reconcile refused by the API server; retrying later in case it was fixed",
                  extra={"md": md, "retry_in": rt.error_backoff, "status": exc.status, "error": str(exc)})
    except Exception:
        log.exception("reconcile failed unexpectedly, retrying later",
                      extra={"md": md, "retry_in": rt.error_backoff})
    return clock() + timedelta(seconds=rt.error_backoff)


async def _hold(st: ObjectState) -> None:
    """Sleep out the delay of the last temporary failure, even when an event woke the loop earlier.

    Watch events keep coming while the API server sheds load (a child's status, our own earlier
    writes): without this floor each one would start a decision that re-sends the throttled request
    before the server's Retry-After. Events that arrive meanwhile are not lost: `wake` stays set."""
    hold = st.hold_until - time.monotonic()
    if hold > 0:
        await asyncio.sleep(hold)


CONFLICT_RETRY = 1.0
"""Seconds before deciding again after a conflict (the adapter already retried it a few times)."""


async def _until_event_or(st: ObjectState, at: datetime | None, clock: Callable[[], datetime]) -> None:
    """Wait for the object's next event, or until the wall-clock time `at` (None: events only)."""
    while True:
        timeout = None if at is None else (at - clock()).total_seconds()
        if timeout is not None and timeout <= 0:
            return
        try:
            await asyncio.wait_for(st.wake.wait(), timeout=timeout)
            return
        except TimeoutError:
            continue  # the event loop's timer may fire a hair before the wall clock reaches `at`


def ensure_loop(rt: Runtime, st: ObjectState, delay: float = 0.0) -> None:
    if st.task is None and not st.stopped:
        st.task = asyncio.create_task(rollout_loop(rt, st, delay), name=f"rollout {'/'.join(st.key)}")


@kopf.on.delete(*MD)
async def finalize(body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: kopf.Logger,
                   **_: Any) -> None:
    """Traffic back on stable, the sandbox removed; then kopf removes the finalizer. Only the leader.

    A replica that does not lead (a standby, or a deposed leader that woke up) waits here instead of
    failing: a failed or delayed handler makes kopf write its progress annotation onto the object, and a
    touch annotation at every retry, which are writes from a replica that may not act. Waiting sends
    nothing. If this replica comes to lead, it finalizes; if the object disappears meanwhile (the leader
    released it), it stands down, and kopf's finalizer removal meets a 404 and changes nothing. Losing
    the Lease part-way (FencedError: nothing more was sent) goes back to waiting.
    """
    assert namespace is not None
    rt = _rt(memo)
    shard = rt.shard_of(body)
    CURRENT_SHARD.set(shard)  # the finalizer's writes are fenced by the object's shard
    while True:
        if not await _lead_or_gone(rt, namespace, name, shard):
            log.info("released by the leader while standing by", extra={"md": f"{namespace}/{name}"})
            return
        try:
            await rt.finalize(copy.deepcopy(dict(body)))
            break
        except FencedError:
            log.info("lost the Lease while finalizing; waiting to lead", extra={"md": f"{namespace}/{name}"})
    rt.registry.forget(namespace, name)
    metrics.forget(namespace, name)
    logger.info("sandbox removed; releasing the ModelDeployment")


GONE_CHECK = 5.0
"""Seconds between a standby's reads of an object it waits to finalize: has the leader released it?"""


async def _lead_or_gone(rt: Runtime, namespace: str, name: str, shard: int) -> bool:
    """True once this replica leads (holds the object's shard); False once the object no longer exists.
    Reads only."""
    ref = ObjectRef(resource.API_VERSION, resource.KIND, name, namespace)
    while not rt.is_leader(shard):
        try:
            await asyncio.wait_for(rt.wait_leadership(shard), timeout=GONE_CHECK)
        except TimeoutError:
            try:
                if await asyncio.to_thread(rt.kube.get, ref) is None:
                    return False
            except KubeError:
                continue  # the API server is busy or away: ask again later
    return True
