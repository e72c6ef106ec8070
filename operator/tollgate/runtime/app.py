"""The composition root: builds the adapters, the scheduler and the reconciler from Settings.

Tests and the demo build a Runtime the same way the entrypoint does, with a different Settings or
metrics provider, so what they exercise is the real wiring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from kubernetes import client, config

from tollgate import __version__
from tollgate.adapters.errors import KubeError
from tollgate.adapters.evidence import EvidenceStore
from tollgate.adapters.kube import Kube
from tollgate.adapters.no_provider import NoProvider
from tollgate.adapters.prometheus import Credentials, PrometheusProvider
from tollgate.adapters.routers import router_for
from tollgate.api import resource
from tollgate.api.invalid import InvalidSpecError, parse_spec
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import ObjectRef
from tollgate.engine.sandbox import sandbox_namespace
from tollgate.ports.metrics import MetricsProvider
from tollgate.runtime import metrics
from tollgate.runtime.analysis import AnalysisScheduler
from tollgate.runtime.config import Settings
from tollgate.runtime.health import ApiHealth
from tollgate.runtime.leader import LeaderElector, LeaseSettings
from tollgate.runtime.reconciler import Reconciler, context_of
from tollgate.runtime.registry import Registry

log = logging.getLogger("tollgate.app")

USER_AGENT = f"tollgate-operator/{__version__}"

IO_THREADS = 32
"""Worker threads for the synchronous Kubernetes and Prometheus clients (asyncio.to_thread), and the
HTTP connections kept per API server to match. The defaults (min(32, cores + 4) threads, urllib3's 4
pooled connections) serialise a bulk create of hundreds of ModelDeployments on a small node, and every
connection beyond the pool's 4 is opened and thrown away again."""

# What the finalizer removes when the sandbox namespace is not Tollgate's own (kind -> apiVersion).
SANDBOX_KINDS = (
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("v1", "ServiceAccount"),
)


# Everything the engine's desired state may contain (warm-up lists these once at start).
MANAGED_KINDS = (
    ("v1", "Namespace"),
    *SANDBOX_KINDS,
)


def api_client() -> client.ApiClient:
    """Kubeconfig when one is there (KUBECONFIG or ~/.kube/config), else the in-cluster identity."""
    cfg = client.Configuration()
    try:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = IO_THREADS
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
    registry: Registry = field(default_factory=Registry)
    scheduler: AnalysisScheduler = field(init=False)
    reconciler: Reconciler = field(init=False)
    elector: LeaderElector | None = None
    health: ApiHealth = field(init=False)
    error_backoff: float = 5.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kube = Kube(self.api)
        self.health = ApiHealth(self.api, grace=self.settings.health_grace)
        self.scheduler = AnalysisScheduler(self.provider)
        self.reconciler = Reconciler(self.kube, self.registry, self.scheduler, EvidenceStore(self.kube),
                                     post_event)
        if self.settings.leader_election:
            self.elector = LeaderElector(self.api, LeaseSettings(self.settings.lease_namespace,
                                                                 self.settings.lease_name))

    @classmethod
    def from_settings(cls, settings: Settings, provider: MetricsProvider | None = None) -> Runtime:
        api = api_client()
        if provider is None:
            provider = build_provider(settings, api)
        return cls(settings=settings, api=api, provider=provider)

    async def start(self) -> None:
        try:
            n = await asyncio.to_thread(self.kube.warm, MANAGED_KINDS,
                                        f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}",
                                        self._seen)
            log.info("learned managed objects", extra={"objects": n})
        except KubeError as exc:  # e.g. a kind not installed: fall back to a GET before each apply
            log.warning("could not list managed objects; will read each before applying",
                        extra={"error": str(exc)})
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run()))
            self._tasks.append(asyncio.create_task(self._leader_gauge()))
        else:
            metrics.IS_LEADER.set(1)

    def _seen(self, kind: str, item: dict[str, Any]) -> None:
        """The tracks' Deployments from the start-up LIST: the first decision after a restart sees them
        as they are, instead of as absent until the Deployment watch catches up (which would flip
        Ready off and on with two status writes per ModelDeployment)."""
        if kind == "Deployment":
            self.registry.observe_deployment(item, deleted=False)

    async def _leader_gauge(self) -> None:
        assert self.elector is not None
        while True:
            metrics.IS_LEADER.set(1 if self.elector.is_leader.is_set() else 0)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        self.registry.stop_all()
        for t in self._tasks:
            t.cancel()
        if self.elector is not None:
            await asyncio.to_thread(self.elector.release)

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader.is_set()

    async def wait_leadership(self) -> None:
        if self.elector is not None:
            await self.elector.is_leader.wait()

    async def finalize(self, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self._finalize, body)

    def _finalize(self, body: dict[str, Any]) -> None:
        """Traffic back on stable, then remove what Tollgate created. Never a namespace it did not create."""
        ctx = context_of(body)
        spec: ModelDeploymentSpec | None
        try:
            spec = parse_spec(body.get("spec"))
        except InvalidSpecError:
            spec = None
        status = body.get("status") or {}
        sandbox = status.get("sandboxNamespace") or (sandbox_namespace(spec, ctx) if spec else None)
        if not sandbox:
            return
        ns_obj = self.kube.get(ObjectRef("v1", "Namespace", sandbox))
        if ns_obj is None:
            return
        if spec is not None:
            with contextlib.suppress(KubeError):
                router_for(spec.traffic.router, self.kube).finalize(ctx, sandbox, spec.replicas)
        owner = f"{ctx.namespace}/{ctx.name}"
        if (ns_obj["metadata"].get("annotations") or {}).get(resource.ANNOTATION_OWNER) == owner:
            self.kube.delete(ObjectRef("v1", "Namespace", sandbox))
            log.info("deleted sandbox namespace", extra={"namespace": sandbox, "md": owner})
            return
        selector = f"{resource.LABEL_MD_NAME}={ctx.name},{resource.LABEL_MD_NAMESPACE}={ctx.namespace}"
        for api_version, kind in SANDBOX_KINDS:
            probe = ObjectRef(api_version, kind, "x", sandbox)
            try:
                items = self.kube.list(probe, selector)
            except KubeError as exc:  # e.g. the Gateway API is not installed
                log.info("skipping kind during cleanup", extra={"kind": kind, "error": str(exc)})
                continue
            for item in items:
                self.kube.delete(ObjectRef(api_version, kind, item["metadata"]["name"], sandbox))


def build_provider(settings: Settings, api: client.ApiClient) -> MetricsProvider:
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
    return PrometheusProvider(settings.prometheus_url, credentials=creds)
