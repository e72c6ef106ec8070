"""The desired workloads and routing objects for one traffic plan (pure).

Tracks are Deployments named <name>-stable, <name>-canary and <name>-fallback in the sandbox
namespace; each is rendered from a RevisionRef (which carries the model and runtime it runs), so the
stable track can be re-created exactly while a different revision is the canary. Pods meet Pod Security
`restricted`: non-root (uid 65532 unless the image sets more), no privilege escalation, all
capabilities dropped, seccomp RuntimeDefault, read-only root filesystem with a writable emptyDir /tmp.

Routing:
- replicas router: one Service <name> over the pods of the "main" pool (stable and canary); at canary
  weight 0 it selects the stable track only; with the kill switch it selects the fallback track.
- gatewayAPI router: Services <name>-stable, <name>-canary, <name>-fallback (one per track) and an
  HTTPRoute <name> whose backendRefs carry the weights, rendered in the platform's data-plane dialect
  (engine.dataplane: the standard Gateway API, or Traefik with its own mirroring and rate-limit objects).
"""

from __future__ import annotations

from dataclasses import dataclass

from tollgate.api import resource
from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec, RouterKind
from tollgate.api.status import RevisionRef
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.autoscale import ANNOTATION_AUTOSCALED, hpa
from tollgate.engine.dataplane import Manifest, RouteTraffic, route_objects, service_name
from tollgate.engine.labels import (
    LABEL_POOL,
    POOL_FALLBACK,
    POOL_MAIN,
    canary_selector,
    owner_labels,
    selector_labels,
    track_labels,
)
from tollgate.engine.model_delivery import (
    DEFAULT_INITIALIZER_IMAGE,
    cache_volume,
    credentials_copy,
    delivers,
    initializer_container,
    server_mount,
)
from tollgate.engine.naming import fit
from tollgate.engine.observations import Track
from tollgate.engine.placement import pod_placement
from tollgate.engine.pod_overlay import overlay_pod
from tollgate.engine.probes import container_probes
from tollgate.engine.sandbox import sandbox_namespace, service_account_name

CONTAINER_NAME = "model-server"
NON_ROOT_UID = 65532
RESERVED_ENV = frozenset({"MODEL_NAME", "MODEL_VERSION", "MODEL_URI"})
"""Variables Tollgate sets on the model-server container; spec.podTemplate cannot override them."""


def restricted_pod(*, fs_group: bool) -> Manifest:
    """The pod securityContext of every pod Tollgate creates: non-root identity and RuntimeDefault
    seccomp, as Pod Security `restricted` requires. Model pods also own their volumes' files
    (fs_group); hook pods mount only an emptyDir /tmp and do without."""
    ctx: Manifest = {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID, "runAsGroup": NON_ROOT_UID}
    if fs_group:
        ctx["fsGroup"] = NON_ROOT_UID
    ctx["seccompProfile"] = {"type": "RuntimeDefault"}
    return ctx


def restricted_container() -> Manifest:
    """The container securityContext of every pod Tollgate creates (model tracks and hook Jobs): what
    Pod Security `restricted` requires, plus a read-only root filesystem (writes go to /tmp)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }

@dataclass(frozen=True)
class TrackPlan:
    """One track to run: which revision, how many pods."""

    ref: RevisionRef
    replicas: int | None
    """None: an autoscaler owns the count (engine.autoscale); the Deployment is rendered without it."""


@dataclass(frozen=True)
class TrafficPlan:
    """What should run and where traffic goes."""

    stable: TrackPlan | None
    canary: TrackPlan | None
    fallback: TrackPlan | None
    canary_weight: int
    """Percent to the canary (0..100)."""
    to_fallback: bool
    """All traffic to the fallback track (kill switch, once the fallback is ready)."""
    kept: bool = False
    """A failed canary is kept for debugging (status.keptCanary): its Deployment stays, and no Service
    selects its pods."""
    canary_alone: bool = False
    """The replicas router's Service selects the canary track alone (autoscaled stable at weight 100)."""
    mirror: int = 0
    """Percent of live requests copied to the canary (a shadow step); the gatewayAPI router carries it in the
    platform's dialect (engine.dataplane). 0: none."""
    canary_rate_limit: int | None = None
    """Requests per second the gateway lets reach the canary, in force now (status.rateLimits.canary)."""
    rate_limit: int | None = None
    """Requests per second the gateway lets reach the model, in force now (status.rateLimits.model)."""

    @property
    def route(self) -> RouteTraffic:
        """What the gatewayAPI router's route carries for this plan."""
        on_canary = self.canary is not None and not self.to_fallback
        return RouteTraffic.of(self.canary_weight if self.canary is not None else 0, to_fallback=self.to_fallback,
                               mirror=self.mirror if on_canary else 0,
                               canary_rate_limit=self.canary_rate_limit if on_canary else None,
                               rate_limit=self.rate_limit)


DRAIN_SECONDS = 5
"""How long a model-server pod being removed keeps serving before its server is told to stop (a preStop
sleep; the grace period is the default 30 s). The pod leaves the Service's endpoints when it starts
terminating, but a gateway or kube-proxy reloads its endpoints moments later, and a server that stops at
once answers what still reaches it with 500s and then refused connections: seen on the real node while a
promoted stable's old pod was replaced, 24 requests through Traefik in 1.6 s. Five seconds covers the
endpoint propagation of kube-proxy and of Traefik (providers throttled at 2 s by default)."""


def deployment_name(ctx: Context, track: Track) -> str:
    return fit(f"{ctx.name}-{track.value}")


def deployment_ref(ctx: Context, namespace: str, track: Track) -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", deployment_name(ctx, track), namespace)


def _container(spec: ModelDeploymentSpec, ref: RevisionRef) -> Manifest:
    model = ref.model if ref.model is not None else spec.model
    runtime = ref.runtime if ref.runtime is not None else spec.runtime
    ours = [{"name": "MODEL_NAME", "value": model.name}, {"name": "MODEL_VERSION", "value": model.version}]
    if model.uri is not None:
        ours.append({"name": "MODEL_URI", "value": model.uri})
    fetched = delivers(spec, model)
    if fetched:
        ours.append({"name": "MODEL_DIR", "value": spec.modelDelivery.mountPath})
    reserved = {e["name"] for e in ours}
    env = ours + [{"name": e.name, "value": e.value} for e in runtime.env if e.name not in reserved]
    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": runtime.image,
        "env": env,
        "ports": [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"}],
        **container_probes(spec, runtime.readinessPath),
        # a pod being removed keeps serving while the data plane stops sending to it (DRAIN_SECONDS)
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "securityContext": restricted_container(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *([server_mount(spec)] if fetched else [])],
    }
    if runtime.args:
        container["args"] = list(runtime.args)
    resources: Manifest = {}
    if runtime.resources.requests:
        resources["requests"] = dict(runtime.resources.requests)
    if runtime.resources.limits:
        resources["limits"] = dict(runtime.resources.limits)
    if resources:
        container["resources"] = resources
    return container


def metrics_annotations(spec: ModelDeploymentSpec, ref: RevisionRef) -> dict[str, str]:
    """Where a pod serves its metrics, for the shipped scrape configuration (deploy/prometheus).

    The port defaults to the revision's serving port, so a fallback or previous revision that serves
    on another port is still scraped where it listens."""
    runtime = ref.runtime if ref.runtime is not None else spec.runtime
    port = spec.metrics.port if spec.metrics.port is not None else runtime.port
    return {resource.ANNOTATION_METRICS_PORT: str(port), resource.ANNOTATION_METRICS_PATH: spec.metrics.path}


def _pod_spec(spec: ModelDeploymentSpec, ctx: Context, track: Track, plan: TrackPlan,
              initializer_image: str) -> Manifest:
    """The pod of one track: the model server, after the storage initializer when the model is fetched."""
    model = plan.ref.model if plan.ref.model is not None else spec.model
    pod: Manifest = {
        "serviceAccountName": service_account_name(ctx),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod(fs_group=True),
    }
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {}}]
    if delivers(spec, model):
        pod["initContainers"] = [initializer_container(spec, model, initializer_image, restricted_container())]
        volumes.append(cache_volume(spec))
    pod["containers"] = [_container(spec, plan.ref)]
    pod["volumes"] = volumes
    return {**pod, **pod_placement(spec.scheduling, ctx, track.value)}


def deployment(spec: ModelDeploymentSpec, ctx: Context, track: Track, plan: TrackPlan,
               initializer_image: str = DEFAULT_INITIALIZER_IMAGE) -> Manifest:
    """The Deployment of one track running `plan.ref` with `plan.replicas` pods."""
    model_name = plan.ref.model.name if plan.ref.model is not None else spec.model.name
    labels = track_labels(ctx, model_name, track.value, plan.ref)
    pod_labels = {**labels, LABEL_POOL: POOL_FALLBACK if track is Track.FALLBACK else POOL_MAIN}
    meta: Manifest = {"name": deployment_name(ctx, track), "namespace": sandbox_namespace(spec, ctx), "labels": labels}
    # Autoscaled: no replicas in what Tollgate applies (the autoscaler's writes stand), and the mark that
    # tells the drift check so (engine.autoscale).
    template: Manifest = {
        "metadata": {"labels": pod_labels, "annotations": metrics_annotations(spec, plan.ref)},
        "spec": _pod_spec(spec, ctx, track, plan, initializer_image),
    }
    template = overlay_pod(template, spec.podTemplate, RESERVED_ENV)
    count: Manifest = {"replicas": plan.replicas} if plan.replicas is not None else {}
    if plan.replicas is None:
        meta["annotations"] = {ANNOTATION_AUTOSCALED: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            **count,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector_labels(ctx, track.value)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": template,
        },
    }


def _service(spec: ModelDeploymentSpec, ctx: Context, name: str, selector: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": sandbox_namespace(spec, ctx),
                     "labels": owner_labels(ctx, spec.model.name)},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": spec.runtime.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def replicas_service(spec: ModelDeploymentSpec, ctx: Context, plan: TrafficPlan) -> Manifest:
    """The one Service of the replicas router; its selector is the traffic switch. Without a canary taking
    traffic it selects the stable track only, so a kept failed canary (same pool) is never behind it."""
    if plan.to_fallback:
        selector = selector_labels(ctx, Track.FALLBACK.value)
    elif plan.canary is not None and plan.canary_alone:
        selector = selector_labels(ctx, Track.CANARY.value)
    elif plan.canary is None or plan.canary_weight == 0:
        selector = selector_labels(ctx, Track.STABLE.value)
    else:
        selector = {**selector_labels(ctx), LABEL_POOL: POOL_MAIN}
    return _service(spec, ctx, service_name(ctx), selector)


def track_services(spec: ModelDeploymentSpec, ctx: Context, plan: TrafficPlan) -> list[Manifest]:
    """Per-track Services of the gatewayAPI router (kept even while a track has no pods). The canary's
    selects no pod while only a kept failed canary has pods: its weight 0 is not its only protection."""
    kept_only = plan.kept and plan.canary is None
    selectors = {Track.STABLE: selector_labels(ctx, Track.STABLE.value),
                 Track.CANARY: canary_selector(ctx, kept_only=kept_only),
                 Track.FALLBACK: selector_labels(ctx, Track.FALLBACK.value)}
    return [_service(spec, ctx, service_name(ctx, track), selector) for track, selector in selectors.items()]


def workload_objects(spec: ModelDeploymentSpec, ctx: Context, plan: TrafficPlan,
                     initializer_image: str = DEFAULT_INITIALIZER_IMAGE,
                     dialect: GatewayDialect = DEFAULT_DIALECT) -> tuple[Manifest, ...]:
    """The credentials copy (spec.modelDelivery), Deployments of the planned tracks, then Services, then the
    routing objects in the platform's dialect and the HTTPRoute (gatewayAPI; engine.dataplane)."""
    out: list[Manifest] = []
    secret = credentials_copy(spec, ctx, sandbox_namespace(spec, ctx))
    if secret is not None:
        out.append(secret)
    for track, track_plan in ((Track.STABLE, plan.stable), (Track.CANARY, plan.canary),
                              (Track.FALLBACK, plan.fallback)):
        if track_plan is not None:
            out.append(deployment(spec, ctx, track, track_plan, initializer_image))
            scaler = hpa(spec, ctx, deployment_name(ctx, track)) if track is Track.STABLE else None
            if scaler is not None:
                out.append(scaler)
    if spec.traffic.router is RouterKind.GATEWAY_API:
        out.extend(track_services(spec, ctx, plan))
        out.extend(route_objects(spec, ctx, plan.route, dialect))
    else:
        out.append(replicas_service(spec, ctx, plan))
    return tuple(out)
