"""The composition root: builds the adapters, the scheduler and the reconciler from Settings.

Tests and the demo build a Runtime the same way the entrypoint does, with a different Settings or
metrics provider, so what they exercise is the real wiring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import kopf
from kubernetes import client, config
from urllib3.util.retry import Retry

from tollgate import __version__
from tollgate.adapters.errors import KubeError
from tollgate.adapters.evidence import EvidenceStore
from tollgate.adapters.kube import Kube
from tollgate.adapters.no_provider import NoProvider
from tollgate.adapters.notifier import Notifier, Webhook
from tollgate.adapters.prometheus import Credentials, PrometheusProvider
from tollgate.adapters.routers import router_for
from tollgate.adapters.routers.gateway_api import route_observation
from tollgate.adapters.server_clock import ServerClock
from tollgate.api import resource, templates
from tollgate.api.invalid import InvalidSpecError, parse_spec
from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import ObjectRef
from tollgate.engine.dataplane import TRAEFIK_API
from tollgate.engine.platform import PlatformLimits
from tollgate.engine.sandbox import sandbox_namespace
from tollgate.ports.metrics import MetricsProvider
from tollgate.runtime import malloc, metrics
from tollgate.runtime.analysis import AnalysisScheduler
from tollgate.runtime.config import Settings
from tollgate.runtime.decision_slots import DecisionSlots
from tollgate.runtime.faults import crash_hook_from_env
from tollgate.runtime.health import ApiHealth
from tollgate.runtime.leader import LeaderElector, LeaseSettings, in_lease_thread
from tollgate.runtime.ownership import SandboxOwnership
from tollgate.runtime.reconciler import Reconciler, context_of
from tollgate.runtime.registry import REMOVABLE_KINDS, ObjectState, Registry
from tollgate.runtime.shard_plan import shard_of
from tollgate.runtime.sharding import ShardCoordinator, shards_still_active

log = logging.getLogger("tollgate.app")

USER_AGENT = f"tollgate-operator/{__version__}"

IO_THREADS = 32
"""Worker threads for the synchronous Kubernetes and Prometheus clients (asyncio.to_thread), and the
HTTP connections kept per API server to match. The defaults (min(32, cores + 4) threads, urllib3's 4
pooled connections) serialise a bulk create of hundreds of ModelDeployments on a small node, and every
connection beyond the pool's 4 is opened and thrown away again."""

DECISION_SLOTS = 2 * IO_THREADS
"""Decisions under way at once (the rest wait before they parse anything). Without a bound, 10,000
ModelDeployments created at once all started deciding together: each parsed its body, spec and desired
objects and then queued for the I/O threads holding them, ~80 KB apiece, and the RSS passed 1 GB while
glibc's heap held under 100 MB of it (bench/README.md, issue 22). Twice the I/O threads keeps every
thread busy while some decisions compute between requests. Objects decided before go ahead of first
decisions (runtime.decision_slots), so a bulk create turns objects Ready as they become ready."""

# What Tollgate writes into sandbox namespaces (apiVersion, kind).
SANDBOX_KINDS = (
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("v1", "ServiceAccount"),
)


TRIM_QUIET = 5.0
"""Seconds without a decision after which the heap is trimmed, if anything happened since the last trim
(runtime.malloc.trim; a trim of a few hundred MB of heap takes milliseconds)."""

RELIST_GAP = 5.0
"""Seconds between two listings of one kind after which the second counts as a re-listing."""

# Everything the engine's desired state may contain (warm-up lists these once at start).
MANAGED_KINDS = (
    ("v1", "Namespace"),
    *SANDBOX_KINDS,
)
# Evidence ConfigMaps are not listed: the operator may not read ConfigMaps (issue 14); a record rebuilt
# after a restart is written by create, which leaves an existing one alone.
WARM_KINDS = MANAGED_KINDS
DIALECT_KINDS: Mapping[GatewayDialect, tuple[tuple[str, str], ...]] = {
    GatewayDialect.STANDARD: (),
    GatewayDialect.TRAEFIK: ((TRAEFIK_API, "TraefikService"), (TRAEFIK_API, "Middleware")),
}
"""What the gatewayAPI router writes beyond the HTTPRoute in each dialect (engine.dataplane): listed and
watched only in that dialect, since the chart grants them only then (and their CRDs exist only then)."""


def managed_kinds(dialect: GatewayDialect) -> tuple[tuple[str, str], ...]:
    return (*MANAGED_KINDS, *DIALECT_KINDS[dialect])



def api_client() -> client.ApiClient:
    """Kubeconfig when one is there (KUBECONFIG or ~/.kube/config), else the in-cluster identity."""
    cfg = client.Configuration()
    try:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = IO_THREADS
    # urllib3's default Retry answers a 429 with Retry-After itself, up to three times, for reads and
    # deletes, out of sight: the throttle (adapters.throttle) never saw those 429s (so did not slow down)
    # and tollgate_api_throttled_total missed them. Throttling is the adapter's to handle, in one place; a
    # dropped connection is still retried here.
    cfg.retries = Retry(total=3, respect_retry_after_header=False)
    api = client.ApiClient(cfg)
    api.user_agent = USER_AGENT
    return api


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(kopf.Body(cast(kopf.RawBody, dict(body))), type=type_, reason=reason, message=message[:1000])


@dataclass
class Runtime:
    settings: Settings
    api: client.ApiClient
    provider: MetricsProvider
    kube: Kube = field(init=False)
    clock: ServerClock = field(default_factory=ServerClock)
    """The API server's time (learnt from its responses): what the engine and the analysis read."""
    ownership: SandboxOwnership = field(init=False)
    registry: Registry = field(default_factory=Registry)
    scheduler: AnalysisScheduler = field(init=False)
    reconciler: Reconciler = field(init=False)
    elector: LeaderElector | None = None
    sharding: ShardCoordinator | None = None
    """With --shards N > 1, in place of the elector: this replica decides only the shards it holds."""
    notifier: Notifier | None = None
    """Notifications of rollbacks, stalls, approvals, promotions and the kill switch (--notify-secret)."""
    health: ApiHealth = field(init=False)
    error_backoff: float = 5.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """One-off tasks (taking a shard's objects): referenced here so the event loop cannot drop them."""
    decision_slots: DecisionSlots = field(default_factory=lambda: DecisionSlots(DECISION_SLOTS))
    """Held by each loop while it decides (DECISION_SLOTS; resuming decisions first: runtime.decision_slots)."""
    _listed: dict[str, float] = field(default_factory=dict)
    _resync: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.kube = Kube(self.api, concurrency=IO_THREADS)
        metrics.API_WINDOW.throttle = self.kube.throttle
        self.kube.clock = self.clock
        self.kube.after_write = crash_hook_from_env()
        self.health = ApiHealth(self.api, grace=self.settings.health_grace)
        self.scheduler = AnalysisScheduler(self.provider)
        self.ownership = SandboxOwnership(self.kube)
        if self.settings.leader_election:
            s = self.settings
            lease = LeaseSettings(s.lease_namespace, s.lease_name, duration=s.lease_duration,
                                  renew_deadline=s.lease_renew_deadline, retry_period=s.lease_retry_period)
            if s.shards > 1:
                self.sharding = ShardCoordinator(self.api, lease, s.shards)
                self.kube.fence = self.sharding.fence  # a write leaves only for an object of a held shard
            else:
                self.elector = LeaderElector(self.api, lease)
                # after a change from --shards N > 1, the replicas still running with it go first
                self.elector.blocked = shards_still_active(client.CoordinationV1Api(self.api), lease)
                self.kube.fence = self.elector.holds  # no write leaves a replica that may not act
        # Durations that gate a rollout are timed by the API server's clock, not this node's.
        self.reconciler = Reconciler(self.kube, self.registry, self.scheduler, EvidenceStore(self.kube),
                                     self._post_event, self.ownership, clock=self.clock.now,
                                     scrape_interval=self.settings.scrape_interval,
                                     initializer_image=self.settings.storage_initializer_image,
                                     dialect=self.settings.gateway_dialect,
                                     destinations=self.settings.confirm_rollout_destinations,
                                     limits=PlatformLimits(self.settings.max_replicas,
                                                           dict(self.settings.max_pod_resources)))
        self.reconciler.slots = self.decision_slots

    def _post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        if self.is_leader(self.shard_of(body)):  # Events are writes too: fenced like the adapter's
            try:
                post_event(body, type_, reason, message)
            except LookupError:
                # kopf's event queue lives in the context kopf gives each object's handlers; a loop
                # started at start-up (handlers.decide_changed_first) runs outside it for good.
                self.kube.post_event(body, type_, reason, message)
            if self.notifier is not None:  # queued: a slow receiver delays nothing
                self.notifier.on_event(body, type_, reason, message)

    @classmethod
    def from_settings(cls, settings: Settings, provider: MetricsProvider | None = None) -> Runtime:
        api = api_client()
        clock = ServerClock()
        if provider is None:
            provider = build_provider(settings, api, clock.epoch)
        return cls(settings=settings, api=api, provider=provider, clock=clock,
                   notifier=build_notifier(settings, api, clock.now))

    async def start(self) -> None:
        """Templates, then the elector or the shard coordinator. With shards, every managed object is learnt
        first (a shard is taken, and its objects decided, at the coordinator's first round); without, the
        start-up handler learns the sandboxes of the objects changed while down first, and then the rest
        (runtime.handlers.decide_changed_first)."""
        if self.sharding is not None:
            await self.learn_managed()
        try:
            await asyncio.to_thread(self._learn_templates)
        except KubeError as exc:  # the template watch fills the index instead
            log.warning("could not list SLO templates at start", extra={"error": str(exc)[:300]})
        self._tasks.append(asyncio.create_task(self._trim_after_bursts()))
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run()))
            self._tasks.append(asyncio.create_task(self._leader_gauge()))
        elif self.sharding is not None:
            self._tasks.append(asyncio.create_task(self.sharding.run()))
            self._tasks.append(asyncio.create_task(self._leader_gauge()))
        else:
            metrics.IS_LEADER.set(1)

    async def learn_managed(self, namespace: str | None = None) -> None:
        """The managed objects from LISTs: every one, or one sandbox's ahead of the rest.

        Each kind is listed a page at a time (Kube.listing, LIST_PAGE objects) in a worker thread, the
        kinds side by side; each page is recorded here, on the event loop, before the next is fetched:
        the registry belongs to the loop's decisions, the decisions of the changed objects run between
        the pages, and no more than a page per kind is ever held (whole LISTs of 10,000 ModelDeployments'
        children held ~1 GB at once, which the allocator kept after the restart)."""
        kinds = tuple(managed_kinds(self.settings.gateway_dialect))
        selector = f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}"

        async def learn(kind: tuple[str, str]) -> int:
            pages = self.kube.listing(kind, selector, namespace=namespace)
            learnt = 0
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                for item in page:
                    self._seen(kind[1], item)
                learnt += self.kube.learn(kind, page)
            return learnt

        failed: list[BaseException] = []
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other kinds' listings
                counts = [group.create_task(learn(kind)) for kind in kinds]
        except* KubeError as errors:  # e.g. a kind not installed: fall back to a GET before each apply
            failed.extend(errors.exceptions)
        if failed:
            log.warning("could not list managed objects; will read each before applying",
                        extra={"error": str(failed[0])[:300], "namespace": namespace or "(all)"})
            return
        if namespace is None:
            self.kube.warmed(kinds)
        log.info("learned managed objects", extra={"objects": sum(c.result() for c in counts),
                                                   "namespace": namespace or "(all)"})

    def _seen(self, kind: str, item: dict[str, Any]) -> None:
        """The children from the start-up LIST, recorded as their watch events would record them: the
        first decision after a restart sees the tracks, routes, switches and hook Jobs as they are,
        instead of as absent until each watch catches up (which would flip Ready off and on with two
        status writes per ModelDeployment, or decide a changed one on half the picture)."""
        if kind == "Deployment":
            self.registry.observe_deployment(item, deleted=False)
        elif kind in REMOVABLE_KINDS:
            self.registry.observe_removable(item, deleted=False)
        elif kind == "Namespace":
            self.ownership.learn(item)
        elif kind == "Job":
            self.registry.observe_job(item, deleted=False)
        elif kind in ("Service", "HTTPRoute"):
            self.registry.observe_routing(item, deleted=False)
            if kind == "HTTPRoute":
                self.registry.observe_route(item, route_observation(item))

    def _scopes(self) -> list[str | None] | None:
        """Where the start-up LISTs look: [None] cluster-wide, else each --namespace that is a name.
        Patterns (`team-*`) are left to the watches (kopf resolves them from its Namespace watch): their
        objects are decided as their events arrive, as before. None: nothing to list."""
        if self.settings.clusterwide:
            return [None]
        names: list[str | None] = [ns for ns in self.settings.namespaces if not any(ch in ns for ch in "*?[!")]
        return names or None

    def _learn_templates(self) -> None:
        """SLO templates into the index before the first decision (the template watch keeps it current)."""
        scopes = self._scopes()
        if scopes is None:
            return
        for body in self.kube.list_all(resource.API_VERSION, templates.CLUSTER_PLURAL):
            self.registry.templates.observe(templates.CLUSTER_KIND, body, deleted=False)
        for ns in scopes:
            for body in self.kube.list_all(resource.API_VERSION, templates.PLURAL, ns):
                self.registry.templates.observe(templates.KIND, body, deleted=False)

    async def changed_while_down(self) -> list[dict[str, Any]]:
        """ModelDeployments whose spec changed since their last decision (status.observedGeneration
        behind metadata.generation) and that carry our finalizer (so kopf has taken them on before:
        new ones wait for kopf, which adds the finalizer first). One paged LIST per scope, only the changed
        kept; [] when it fails."""
        return await self.models(keep=lambda body: changed_since_decided(body, resource.FINALIZER))

    async def models(self, shards: frozenset[int] | None = None, *, strict: bool = False,
                     keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """The ModelDeployments in scope (of `shards` when given; those `keep` accepts): one paged LIST per
        scope, each page judged as it arrives; [] when it fails (the watch events still bring them, one
        by one), or the error when `strict`."""
        scopes = self._scopes()
        if scopes is None:
            return []

        def wanted(body: dict[str, Any]) -> bool:
            return (shards is None or self.shard_of(body) in shards) and (keep is None or keep(body))

        try:
            lists = [await asyncio.to_thread(self.kube.list_all, resource.API_VERSION, resource.PLURAL, ns, wanted)
                     for ns in scopes]
        except KubeError as exc:
            if strict:
                raise
            log.warning("could not list ModelDeployments", extra={"error": str(exc)[:300]})
            return []
        return [body for items in lists for body in items]

    # --- watches that re-listed: deletions made meanwhile sent no event ---------------------------
    def watch_listed(self, kind: str) -> None:
        """A listing event of a child kind. The first listing is the start-up one; a listing long after
        the previous one means the watch was re-established from scratch (its resourceVersion expired
        during an outage), and deletions made meanwhile must be found by listing."""
        now = time.monotonic()
        last = self._listed.get(kind)
        self._listed[kind] = now
        if last is not None and now - last > RELIST_GAP and self._resync is None:
            self._resync = asyncio.create_task(self._resync_children())

    async def _resync_children(self) -> None:
        try:
            await asyncio.sleep(RELIST_GAP / 2)  # let the rest of the listing arrive: one resync for it all
            gone = await asyncio.to_thread(self.kube.resync, managed_kinds(self.settings.gateway_dialect),
                                           f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}")
            by_sandbox: dict[str, ObjectState] = {}
            for st in list(self.registry.objects.values()):
                sandbox = ((st.body or {}).get("status") or {}).get("sandboxNamespace")
                if sandbox:
                    by_sandbox[sandbox] = st
            for ref in gone:
                if ref.kind == "Deployment" and ref.namespace:
                    self.registry.tracks.pop((ref.namespace, ref.name), None)
                owner = by_sandbox.get(ref.namespace or ref.name)
                if owner is not None:
                    owner.drifted[(ref.kind, ref.namespace or "", ref.name)] = "deleted"
                    owner.kick()
            if gone:
                log.info("objects deleted while the watches were down; restoring", extra={"objects": len(gone)})
        except KubeError as exc:  # the next re-listing tries again
            log.warning("resync after a re-listing failed", extra={"error": str(exc)[:300]})
        finally:
            self._resync = None

    async def _trim_after_bursts(self) -> None:
        """malloc_trim once decisions have paused for TRIM_QUIET seconds after activity (a bulk create, a
        restart): what the burst freed leaves the RSS instead of staying in glibc's heap. Watch events
        alone (pods and Deployments settling) do not hold the trim off; they only count as activity."""
        decided, active = metrics.decisions(), metrics.activity()
        trimmed_at = active
        while True:
            await asyncio.sleep(TRIM_QUIET)
            now_decided, now_active = metrics.decisions(), metrics.activity()
            if now_decided == decided and now_active != trimmed_at:
                malloc.trim()
                trimmed_at = now_active
            decided = now_decided

    async def _leader_gauge(self) -> None:
        while True:
            if self.elector is not None:
                metrics.IS_LEADER.set(1 if self.elector.is_leader.is_set() else 0)
            elif self.sharding is not None:
                held = len(self.sharding.held())
                metrics.IS_LEADER.set(1 if held else 0)
                metrics.SHARDS_HELD.set(held)
                metrics.SHARD_MEMBERS.set(len(self.sharding.members))
            await asyncio.sleep(1)

    async def stop(self) -> None:
        self.registry.stop_all()
        for t in self._tasks:
            t.cancel()
        if self.elector is not None:
            await in_lease_thread(self.elector.release)
        if self.sharding is not None:
            await in_lease_thread(self.sharding.release)

    # --- who may act: the leader, or with --shards the holder of the object's shard ------------------------
    def shard_of(self, body: Mapping[str, Any] | None) -> int:
        """The shard of a ModelDeployment (0 unless sharded; an object without a UID is shard 0)."""
        if self.sharding is None:
            return 0
        return shard_of(str(((body or {}).get("metadata") or {}).get("uid") or ""), self.sharding.shards)

    def owns(self, body: Mapping[str, Any]) -> bool:
        """Whether this replica keeps and decides this ModelDeployment: always when one leader decides all
        (a standby keeps its state warm to take over at once), else while its shard is in the set last
        reported held (ShardCoordinator.owned): the same set the gained/lost hand-over works from, so a
        renewal landing a moment after its deadline cannot drop an object that nothing would load again.
        Writes are still fenced by the Lease itself."""
        return self.sharding is None or self.shard_of(body) in self.sharding.owned

    def is_leader(self, shard: int = 0) -> bool:
        if self.sharding is not None:
            return self.sharding.holds(shard)
        return self.elector is None or self.elector.holds()

    async def wait_leadership(self, shard: int = 0) -> None:
        if self.elector is not None:
            await self.elector.wait_holding()
        elif self.sharding is not None:
            await self.sharding.wait_holding(shard)

    async def finalize(self, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self._finalize, body)

    def _finalize(self, body: dict[str, Any]) -> None:
        """Traffic back on stable, then delete the sandbox namespace: only one Tollgate created for this
        very ModelDeployment (its UID in tollgate.dev/owner-uid). Any other namespace is left as it is:
        Tollgate never wrote into it (ownership.py)."""
        ctx = context_of(body)
        spec: ModelDeploymentSpec | None
        try:
            spec = parse_spec(body.get("spec"))
        except InvalidSpecError:
            spec = None
        status = body.get("status") or {}
        if spec is not None:
            ctx = self.ownership.with_legacy(ctx, explicit=bool(spec.sandbox.namespace))
        sandbox = status.get("sandboxNamespace") or (sandbox_namespace(spec, ctx) if spec else None)
        if not sandbox:
            return
        ns_obj = self.kube.get(ObjectRef("v1", "Namespace", sandbox))
        if ns_obj is None:
            return
        owner_uid = (ns_obj["metadata"].get("labels") or {}).get(resource.LABEL_OWNER_UID)
        md = f"{ctx.namespace}/{ctx.name}"
        if not ctx.uid or owner_uid != ctx.uid:
            log.info("sandbox namespace is not this ModelDeployment's; leaving it alone",
                     extra={"namespace": sandbox, "md": md, "owner_uid": owner_uid})
            return
        if spec is not None:
            with contextlib.suppress(KubeError):
                router_for(spec.traffic.router, self.kube).finalize(ctx, sandbox, spec.replicas)
        self.kube.delete(ObjectRef("v1", "Namespace", sandbox))
        self.ownership.forget(sandbox)
        log.info("deleted sandbox namespace", extra={"namespace": sandbox, "md": md})


def changed_since_decided(body: Mapping[str, Any], finalizer: str) -> bool:
    """Decided before (it has a status and our finalizer), not being deleted, and its spec changed since
    (metadata.generation ahead of status.observedGeneration)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    return (bool(status) and meta.get("deletionTimestamp") is None and finalizer in (meta.get("finalizers") or [])
            and status.get("observedGeneration") != meta.get("generation"))


def build_provider(settings: Settings, api: client.ApiClient,
                   clock: Callable[[], float] = time.time) -> MetricsProvider:
    if not settings.prometheus_url:
        log.warning("no --prometheus-url: analysis steps will fail closed")
        return NoProvider()
    creds = Credentials()
    ref = settings.prometheus_token_secret
    if ref is not None:
        secret = client.CoreV1Api(api).read_namespaced_secret(ref.name, ref.namespace)
        raw = (secret.data or {}).get(ref.key)
        if raw is None:
            raise SystemExit(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}: "
                             "fix --prometheus-token-secret")
        creds = Credentials(bearer_token=base64.b64decode(raw).decode().strip())
    return PrometheusProvider(settings.prometheus_url, credentials=creds, profile=settings.metrics_profile,
                              clock=clock)


def build_notifier(settings: Settings, api: client.ApiClient, clock: Callable[[], datetime]) -> Notifier | None:
    """The webhook of --notify-secret (NAMESPACE/NAME), read once at start; None without one."""
    ref = settings.notify_secret
    if ref is None:
        return None
    where = f"{ref[0]}/{ref[1]}"
    secret = client.CoreV1Api(api).read_namespaced_secret(ref[1], ref[0])
    data = {k: base64.b64decode(v).decode().strip() for k, v in (secret.data or {}).items()}
    try:
        hook = Webhook.from_secret(data, where)
    except ValueError as exc:
        raise SystemExit(f"{exc} (--notify-secret)") from None
    notifier = Notifier(hook, clock=clock)
    log.info("notifications on", extra={"host": hook.host, "format": hook.format.value, "secret": where})
    return notifier
