"""What the runtime observed, handed to the decision core as plain values.

The engine never reads a clock, a cluster or Prometheus: the runtime gathers these values (from the
watch cache, the Prometheus adapter and the object's annotations) and passes them in, so every
decision is a pure function of its inputs and can be replayed from a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tollgate.api.controls import ControlTokens
from tollgate.api.spec import SLO
from tollgate.engine.hook_observations import JobObservation, WebhookAnswer
from tollgate.model_digest import DigestMismatch

MDKey = tuple[str, str]
"""(namespace, name) of a ModelDeployment."""


class Track(StrEnum):
    STABLE = "stable"
    CANARY = "canary"
    FALLBACK = "fallback"


class PodProblemKind(StrEnum):
    UNSCHEDULABLE = "Unschedulable"
    """The scheduler found no node (PodScheduled=False): it may resolve (a node joins), so it is reported,
    and the progress deadline decides."""
    FAILING = "Failing"
    """A container cannot start (image never pulls, crash loop, bad config): it will not resolve by
    waiting, so a canary is rolled back at once."""


@dataclass(frozen=True)
class PodProblem:
    """Why a pod of a track is not Ready, in the words of the scheduler or the kubelet."""

    kind: PodProblemKind
    reason: str
    """The container's waiting reason (ImagePullBackOff, CrashLoopBackOff, ...) or the scheduler's
    (Unschedulable)."""
    message: str
    """Their message, e.g. "0/4 nodes are available: 4 Insufficient nvidia.com/gpu"."""
    pod: str
    container: str | None = None
    restarts: int = 0
    last_exit: str | None = None
    """The container's last termination (crash loop), e.g. "Error, exit code 1"."""
    digest: DigestMismatch | None = None
    """The storage initializer refused the model's bytes (reason ModelDigestMismatch)."""

    def describe(self) -> str:
        """One line for status, events and evidence."""
        where = f"pod {self.pod}" + (f" container {self.container}" if self.container else "")
        detail = f": {self.message}" if self.message else ""
        extra = []
        if self.restarts:
            extra.append(f"{self.restarts} restarts")
        if self.last_exit:
            extra.append(f"last exit {self.last_exit}")
        tail = f" ({', '.join(extra)})" if extra else ""
        if self.digest is not None:
            detail = (f": the fetched model's digest is {self.digest.actual}, spec.model.digest is "
                      f"{self.digest.expected}; the model was not served")
        return f"{where}: {self.reason}{detail}{tail}"


@dataclass(frozen=True)
class TrackObservation:
    """Pods of one track as the workload controller reports them."""

    revision: str | None
    """Revision label of the track's Deployment (None: no Deployment)."""
    desired: int = 0
    ready: int = 0
    updated: int = 0
    """Pods of the current template (Deployment status.updatedReplicas)."""
    problem: PodProblem | None = None
    """A pod of the track's revision that is not Ready, and why (failing before unschedulable)."""
    autoscaled: bool = False
    """The Deployment is marked as an autoscaler's to size (engine.autoscale.ANNOTATION_AUTOSCALED)."""


@dataclass(frozen=True)
class MetricValue:
    """One SLO value for one track over one window, as the provider returned it.

    `value` is None when the provider returned an empty result; NaN and +-Inf are passed through as
    floats and the engine treats them as no data.
    """

    value: float | None
    samples: int = 0
    """Requests that contributed to the value (from the request-count query over the same window)."""
    buckets: tuple[tuple[float, float], ...] | None = None
    """Built-in latency quantiles whose limit is judged on the window: the window's cumulative histogram
    buckets (le in seconds, ascending, the last le +Inf) the value was read from, so the limit is tested on
    counts (engine.limits); score-shift with a max or maxIncreaseOverBaseline: the track's score histogram
    (le in scores). None when not asked for (no limit, or judged on the stream's buckets)."""


@dataclass(frozen=True)
class StreamData:
    """One track's requests since the start of the sequential test's data stream (the canary's start):
    what the canary-versus-baseline test judges. Cumulative, so every look sees all data so far."""

    samples: int
    """Requests since the stream began."""
    events: float | None = None
    """Ratio SLOs: requests counted by the ratio (errors, invalid outputs)."""
    buckets: tuple[tuple[float, float], ...] | None = None
    """Distribution SLOs: cumulative histogram buckets (le, count), ascending, the last le +Inf."""


@dataclass(frozen=True)
class SLOObservation:
    """The result of one SLO query for one ModelDeployment at one analysis tick."""

    name: str
    canary: MetricValue | None = None
    stable: MetricValue | None = None
    error: str | None = None
    """Provider error (unreachable, timeout, bad query): counted apart from failures."""
    query: str = ""
    """The PromQL as executed, kept for evidence."""
    window: str = ""
    """The range the query covered, e.g. 1m."""
    stream_since: str | None = None
    """Start (RFC 3339) of the stream the cumulative data below covers, set whenever the stream was asked
    for (canary_stream None: the provider's answer held none yet); None: no stream was asked for."""
    canary_stream: StreamData | None = None
    stable_stream: StreamData | None = None


@dataclass(frozen=True)
class ParentRouteStatus:
    """What one parent (Gateway) of the HTTPRoute reported in the route's status.parents[]."""

    name: str
    namespace: str
    section: str | None = None
    accepted: bool | None = None
    """Accepted condition: True, False, or None (absent, or written for an older generation)."""
    accepted_reason: str = ""
    accepted_message: str = ""
    resolved_refs: bool | None = None
    """ResolvedRefs condition, like `accepted`."""
    resolved_reason: str = ""
    resolved_message: str = ""


@dataclass(frozen=True)
class RouteObservation:
    """The gatewayAPI router's HTTPRoute as its watch reports it (None in Observations: no route seen)."""

    parents: tuple[ParentRouteStatus, ...] = ()


@dataclass(frozen=True)
class RoutingObservation:
    """Where the router sends requests, as the watch of its own object reports it (not what a decision
    meant to do): the replicas router's Service selector, or the gatewayAPI router's HTTPRoute weights."""

    sole: Track | None
    """The one track that gets every request (the Service selects only its pods; the route weighs it 100
    and every other backend 0), or None while traffic is split between tracks."""


Controls = ControlTokens
"""Control annotations on the ModelDeployment, one token each (api.controls)."""


@dataclass(frozen=True)
class Observations:
    """Everything the runtime saw for one ModelDeployment at one moment."""

    generation: int
    stable: TrackObservation = field(default_factory=lambda: TrackObservation(revision=None))
    canary: TrackObservation = field(default_factory=lambda: TrackObservation(revision=None))
    fallback: TrackObservation = field(default_factory=lambda: TrackObservation(revision=None))
    sandbox_ready: bool = False
    """True when every sandbox object exists as desired."""
    slos: tuple[SLOObservation, ...] | None = None
    """None: no analysis ran for this decision (not an analysis tick).
    Empty tuple: ran, nothing configured."""
    controls: Controls = field(default_factory=Controls)
    route: RouteObservation | None = None
    """The HTTPRoute's status (gatewayAPI router only); None when the route has not been seen yet."""
    missing_templates: tuple[str, ...] = ()
    """SLO templates named in spec.slos[].templateRef that the runtime could not find, each as a message
    naming the SLO and the template: the analysis tick holds (no verdict, no failure, no rollback)."""
    jobs: tuple[JobObservation, ...] = ()
    """The ModelDeployment's hook Jobs in its sandbox (engine.rules.hooks)."""
    webhook: WebhookAnswer | None = None
    """The confirmation gate's answer, when the runtime asked it for this decision (Case.webhook_due)."""
    autoscalers: tuple[str, ...] = ()
    """Names of the HorizontalPodAutoscalers Tollgate made for this ModelDeployment in its sandbox, as the
    watch reports them (one the spec no longer asks for is removed)."""
    dataplane_objects: tuple[tuple[str, str], ...] = ()
    """(kind, name) of the traefik dialect's objects Tollgate made for this ModelDeployment in its sandbox, as the
    watch reports them: one the spec no longer asks for (a rate limit removed) is removed, so the data plane
    stops enforcing it even where something else still names it."""
    routing: RoutingObservation | None = None
    """Where the router sends requests now (None: its object has not been seen): a drill's time to fallback
    ends when every request goes to the target track (engine.rules.drills)."""
    replicas_service: bool = False
    """Under the gatewayAPI router: the replicas router's Service is seen, left from an earlier spec (under the
    replicas router `routing` says it; this stays False)."""

    def job(self, name: str) -> JobObservation | None:
        return next((j for j in self.jobs if j.name == name), None)


@dataclass(frozen=True)
class TemplateQuery:
    """The PromQL of the template an SLO names (spec.slos[].templateRef), as the runtime found it."""

    kind: str
    """ClusterSLOTemplate (trusted, platform-written) or SLOTemplate (the tenant's own)."""
    name: str
    query: str


@dataclass(frozen=True)
class AnalysisRequest:
    """What to measure for one ModelDeployment in this tick: which SLOs, over which window.

    Built by the engine (rollout.Case.analysis_request) when a tick is due; the runtime batches the
    requests of one grid point and hands them to the metrics provider (tollgate.ports.metrics).
    """

    namespace: str
    name: str
    slos: tuple[SLO, ...]
    window: str
    """PromQL range, e.g. 1m (spec.rollout.analysis.window, default twice the interval). For a canary it
    never reaches back before the canary's current attempt started (status.canaryStartedAt): while the
    canary is younger than the window it is its age, floored to whole look intervals
    (engine.policy.Policy.analysis_range), so requests of one tick share a range, and a batched query,
    unless their canaries started in different look intervals."""
    versions: tuple[tuple[str, str], ...] = ()
    """(track, model version) under analysis. Series of other versions on the same track (the previous
    canary, still inside the window) are ignored. A previous attempt of the same version (a superseded
    revision of it, or the rolled-back revision a retry starts again) carries the same labels: it is kept
    out by `window`, which never reaches back before the current attempt started. Empty: every version of
    the track counts."""
    stream_since: str | None = None
    """Start (RFC 3339) of the canary's stream: SLOs compared with the baseline by a test are also
    measured as counts since then (engine.comparison). None: no stream."""
    sandbox: str = ""
    """Namespace the ModelDeployment's pods run in: the `namespace` label of their series."""
    profile: str | None = None
    """Metric profile (spec.metrics.profile); None: the provider's default (--metrics-profile)."""
    templates: tuple[tuple[str, TemplateQuery], ...] = ()
    """(SLO name, its template) for SLOs with a templateRef, resolved by the runtime."""
    exclude_synthetic: bool = False
    """spec.hooks.syntheticTraffic is exclude: leave out requests hook Jobs sent (tagged X-Tollgate-Synthetic)."""

    def template_of(self, slo: str) -> TemplateQuery | None:
        return dict(self.templates).get(slo)

    @property
    def key(self) -> MDKey:
        return (self.namespace, self.name)

    def version_of(self, track: str) -> str | None:
        return dict(self.versions).get(track)
