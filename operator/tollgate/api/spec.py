
"""The desired state of a ModelDeployment, as users write it in Git.

These pydantic models are the single source of the CRD's OpenAPI schema (`make crds`): attribute
docstrings become field descriptions, so they are written for a person running `kubectl explain`.
Every rule the API server can enforce lives here (patterns, ranges, enums) or as a CEL rule in
`x-kubernetes-validations`, so bad input is refused at `kubectl apply` time, not by the operator.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.autoscaling import Autoscaling
from tollgate.api.delivery import ModelDelivery
from tollgate.api.hooks import SYNTHETIC_PROFILES, Hooks
from tollgate.api.pod_template import PodTemplate
from tollgate.api.probes import Probes
from tollgate.api.routers import RouterKind as RouterKind  # noqa: PLC0414  (re-exported: part of the spec)
from tollgate.api.routers import capability_rules
from tollgate.api.scheduling import Scheduling
from tollgate.api.validation import cel

# Patterns shared by the schema and the operator. Kept deliberately close to Kubernetes' own grammar.
DURATION_PATTERN = r"^([0-9]{1,5}(\.[0-9]{1,9})?(ms|s|m|h))+$"
"""Go-style durations with at most 5 digits per part (and at most 32 characters): the largest value the
pattern admits is far inside what CEL's duration() and Python's timedelta hold, so no rule evaluation and
no engine computation can overflow. Each duration field also carries a CEL maximum with its reason."""
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$"
CIDR_PATTERN = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$|^[0-9a-fA-F:]+/[0-9]{1,3}$"
RESOURCE_NAME_PATTERN = r"^([a-z0-9.-]+/)?[a-z0-9A-Z._-]+$"

BUILTIN_SLO_TEMPLATES = (
    "error-rate", "latency-p50", "latency-p95", "latency-p99", "request-rate", "score-shift",
    "invalid-output-rate",
)
"""SLO names that need no query: Tollgate ships their PromQL."""
_SYNTHETIC_CEL = "[" + ", ".join(f"'{p}'" for p in SYNTHETIC_PROFILES) + "]"
_TEMPLATES_CEL = "[" + ", ".join(f"'{t}'" for t in BUILTIN_SLO_TEMPLATES) + "]"
_BUILTIN = "!has(self.query) && !has(self.templateRef) && "
"""CEL prefix of the rules that only concern built-in templates."""

# Caps that keep a ModelDeployment (spec, plus the stable revision's runtime in status) far below etcd's
# 1.5 MiB request limit: a maximal runtime is about 70 KiB (see tests/unit/api/test_api_caps.py).
ARGS_MAX_ITEMS = 32
ARG_MAX_LENGTH = 1024
ENV_MAX_ITEMS = 32
ENV_VALUE_MAX_LENGTH = 1024

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""metadata.name of a ModelDeployment: a DNS-1035 label (RFC 1035: starts with a letter, no dots), the
strictest name of the objects named after it (its Service); checked by the CEL rule at the CRD's root."""
NAME_MAX_LENGTH = 63

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]


class _Model(BaseModel):
    """Base: camelCase stays camelCase (the YAML is the API), unknown fields are an error."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        populate_by_name=True,
    )


class RiskTier(StrEnum):
    """How strict a rollout is when steps or analysis are omitted; see `tollgate.api.tiers`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class NoDataPolicy(StrEnum):
    """What a missing, empty, NaN or infinite SLO result means."""

    HOLD = "hold"
    FAIL = "fail"
    PASS = "pass"


class ApprovalMode(StrEnum):
    """Whether a step waits for a person before its weight is set."""

    REQUIRED = "required"
    NONE = "none"


class ModelRef(_Model):
    """The model version being served."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=40)]
    """Model name, a DNS label (lower case, digits and '-'), used in object names and metric labels."""
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=63)]
    """Model version, e.g. "2.4.0". A change of version (or uri, digest, runtime) starts a canary."""
    uri: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Where the weights are, e.g. s3://models/fraud/2.4.0: fetched by the storage initializer into the model
    cache before the server starts (spec.modelDelivery); also passed as MODEL_URI."""
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN, max_length=71)] | None = None
    """Content digest of the model artifact (sha256:<64 hex>). Pins the exact bytes: the storage initializer
    verifies it after the download and a mismatch fails the version (never served); recorded as evidence."""


class EnvVar(_Model):
    """An environment variable of the model server. Literal values only: reference Secrets by mounting."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    """Variable name, a C identifier."""
    value: Annotated[str, StringConstraints(max_length=ENV_VALUE_MAX_LENGTH)] = ""
    """Literal value (at most 1024 characters)."""


ResourceName = Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN, max_length=253)]
ResourceList = Annotated[dict[ResourceName, Quantity], Field(max_length=16)]


@cel(
    "!has(self.requests) || self.requests.all(k, !k.contains('/') || !isQuantity(self.requests[k]) || "
    "(has(self.limits) && k in self.limits && isQuantity(self.limits[k]) && "
    "quantity(self.limits[k]).compareTo(quantity(self.requests[k])) == 0))",
    "spec.runtime.resources.limits must equal requests for extended resources such as nvidia.com/gpu: "
    "set the same quantity in limits (or set it in limits only)",
    field_path=".limits",
)
@cel(
    "!has(self.requests) || !has(self.limits) || self.limits.all(k, !(k in self.requests) || "
    "!isQuantity(self.limits[k]) || !isQuantity(self.requests[k]) || "
    "quantity(self.requests[k]).compareTo(quantity(self.limits[k])) <= 0)",
    "spec.runtime.resources.requests must not exceed limits: lower the request or raise the limit",
    field_path=".requests",
)
@cel(
    "(!has(self.requests) || self.requests.all(k, !k.contains('/') || !isQuantity(self.requests[k]) || "
    "quantity(self.requests[k]).isInteger())) && (!has(self.limits) || self.limits.all(k, !k.contains('/') || "
    "!isQuantity(self.limits[k]) || quantity(self.limits[k]).isInteger()))",
    "spec.runtime.resources: extended resources such as nvidia.com/gpu are whole devices: write \"1\", "
    "not \"0.5\" or \"500m\" (to share a GPU, use a MIG or time-slicing resource name your cluster offers)",
)
class Resources(_Model):
    """Compute resources per model-server pod. GPUs are extended resources such as nvidia.com/gpu."""

    requests: ResourceList = Field(default_factory=dict)
    """Requested resources, e.g. {cpu: "2", memory: 4Gi}."""
    limits: ResourceList = Field(default_factory=dict)
    """Resource limits, e.g. {memory: 8Gi, nvidia.com/gpu: "1"}. GPUs must have equal request and limit."""


@cel(
    "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
    "spec.runtime.env names must be unique: remove or rename the repeated variable",
    field_path=".env",
)
class Runtime(_Model):
    """The model-server container. Its pods run under the restricted Pod Security profile."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")]
    """Container image of the model server; pin it by digest (image@sha256:...) for reproducible rollbacks."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    """Port the server listens on for inference and /metrics."""
    args: Annotated[
        list[Annotated[str, StringConstraints(max_length=ARG_MAX_LENGTH)]], Field(max_length=ARGS_MAX_ITEMS)
    ] = Field(default_factory=list)
    """Arguments passed to the container's entrypoint (at most 32, each at most 1024 characters: the
    runtime is kept in the Deployments and, for the stable revision, in status; put large configuration
    in the model artifact or a mounted ConfigMap)."""
    env: Annotated[list[EnvVar], Field(max_length=ENV_MAX_ITEMS)] = Field(default_factory=list)
    """Environment variables (literal values; at most 32)."""
    resources: Resources = Field(default_factory=Resources)
    """Requests and limits per pod."""
    readinessPath: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=256)] = "/ready"
    """HTTP path that answers 200 once the model is loaded."""


class LabelSelector(_Model):
    """Equality-based label selector (matchLabels)."""

    matchLabels: Annotated[
        dict[
            Annotated[str, StringConstraints(max_length=317)],
            Annotated[str, StringConstraints(max_length=63)],
        ],
        Field(max_length=32),
    ] = Field(default_factory=dict)
    """Labels that must all match."""


@cel(
    "has(self.namespaceSelector) || has(self.podSelector)",
    "each spec.sandbox.ingressFrom entry needs namespaceSelector, podSelector or both: "
    "use podSelector: {} for every pod of the sandbox",
)
class IngressPeer(_Model):
    """Who may call the model. An empty selector matches everything in its scope."""

    namespaceSelector: LabelSelector | None = None
    """Namespaces whose pods may call the model."""
    podSelector: LabelSelector | None = None
    """Pods that may call the model (in the namespaces selected, or in the sandbox if none)."""


@cel(
    "isCIDR(self.cidr)",
    "spec.sandbox.egressTo[].cidr must be a network in CIDR notation, e.g. 10.20.0.0/16 or fd00::/8",
    field_path=".cidr",
)
class EgressRule(_Model):
    """A destination the model may reach; everything else is denied (DNS is always allowed)."""

    cidr: Annotated[str, StringConstraints(pattern=CIDR_PATTERN, max_length=64)]
    """Destination network, e.g. 10.20.0.0/16 for the model store."""
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    """TCP ports allowed; empty allows every port of that network."""


@cel(
    "!has(self.__namespace__) || !self.__namespace__.matches('-[0-9a-f]{6,16}$')",
    "spec.sandbox.namespace must not end in a dash and 6 to 16 hex digits: that is the shape of default sandbox "
    "names (<namespace>-<name>-<hash>), each of which belongs to the ModelDeployment it is derived from; "
    "choose another name, or remove the field to use this ModelDeployment's default",
    field_path=".namespace",
)
class Sandbox(_Model):
    """The isolated namespace the model runs in, created and owned by Tollgate."""

    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)] | None = None
    """Sandbox namespace name, only where the platform team granted it: it must start with a prefix listed
    in the tollgate.dev/sandbox-prefixes annotation of the ModelDeployment's namespace (refused at admission
    by the chart's sandbox-grants policy, and Stalled by the operator, otherwise), must not have the shape of
    a default name, and must not exist yet: Tollgate creates it for this ModelDeployment (its UID in the
    tollgate.dev/owner-uid label) and refuses (Stalled) a namespace it did not create for it. Default:
    <metadata.namespace>-<metadata.name>-<6 hex of a hash of both>; if that exceeds 63 characters, cut to
    fit with up to 16 hex, <metadata.namespace>- kept whole where it fits, so two ModelDeployments never
    share one. Fixed once the sandbox exists: delete and re-create the ModelDeployment to move it. Tollgate
    only ever deletes a namespace it created itself."""
    ingressFrom: Annotated[list[IngressPeer], Field(max_length=32)] = Field(default_factory=list)
    """Callers allowed to reach the model port. Empty: nobody but Prometheus (default deny)."""
    egressTo: Annotated[list[EgressRule], Field(max_length=32)] = Field(default_factory=list)
    """Networks the model may reach. Empty: only DNS."""
    quota: ResourceList = Field(default_factory=dict)
    """ResourceQuota hard limits of the sandbox, e.g. {requests.cpu: "16", requests.memory: 64Gi,
    requests.nvidia.com/gpu: "2", pods: "20"}; pods must be at least twice replicas. Empty: derived from
    replicas and runtime resources with room for one full canary."""
    prometheusNamespace: Annotated[
        str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)
    ] = "monitoring"
    """Namespace of the Prometheus that scrapes the model; allowed in by NetworkPolicy."""


class ParentRef(_Model):
    """A Gateway the HTTPRoute attaches to."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=253)]
    """Gateway name."""
    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)] | None = None
    """Gateway namespace; default: the sandbox namespace."""
    sectionName: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Listener name on the Gateway."""


class GatewayAPI(_Model):
    """Settings of the Gateway API router: one HTTPRoute weighted across a stable and a canary Service."""

    parentRefs: Annotated[list[ParentRef], Field(min_length=1, max_length=16)]
    """Gateways the route attaches to."""
    hostnames: Annotated[list[Annotated[str, StringConstraints(max_length=253)]], Field(max_length=16)] = (
        Field(default_factory=list)
    )
    """Hostnames the route answers for."""


@cel(
    "!has(self.router) || self.router != 'gatewayAPI' || has(self.gatewayAPI)",
    "spec.traffic.gatewayAPI is required when spec.traffic.router is gatewayAPI: add gatewayAPI.parentRefs",
    field_path=".gatewayAPI",
)
@cel(
    "!has(self.gatewayAPI) || (has(self.router) && self.router == 'gatewayAPI')",
    "spec.traffic.gatewayAPI is only used with router: gatewayAPI: "
    "set router: gatewayAPI or remove gatewayAPI",
    field_path=".router",
)
class Traffic(_Model):
    """How traffic reaches the stable and canary tracks."""

    router: RouterKind = RouterKind.REPLICAS
    """replicas: one Service over both tracks, split by replica ratio (works anywhere).
    gatewayAPI: an HTTPRoute with weighted backendRefs (exact weights), mirroring during shadow steps and rate
    limits, written in the data-plane dialect the platform team chose (the chart's gatewayAPI.dialect:
    standard or traefik). What each can do: docs/api.md, What each router can do."""
    gatewayAPI: GatewayAPI | None = None
    """Required when router is gatewayAPI."""
    canaryRateLimit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """At most this many requests per second reach the canary (a burst of one second's worth), whatever the
    traffic spike, in weighted and shadow steps alike; over it, requests go to stable. Needs router gatewayAPI
    (the API server refuses it with replicas) in a dialect that limits rates (traefik; in the standard dialect
    the ModelDeployment is Stalled before any traffic moves). status.rateLimits shows it while in force."""
    rateLimit: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """At most this many requests per second reach the model (all tracks, the fallback under the kill switch
    too; over it, 429): a protective control the platform team can flip declaratively, like the kill switch.
    Needs router gatewayAPI in a dialect that limits rates (traefik), like canaryRateLimit."""
    shareTolerance: Annotated[int, Field(ge=0, le=100)] | None = None
    """Percentage points a step's real traffic share may miss its weight by (replicas router: the canary
    rounds up to whole pods, so at 2 replicas a 10% step gets 50%). Set: a step plan the replicas cannot
    give within it is refused when applied. Unset: the operator reports each step's real share
    (status.steps) and warns beyond 5 points (ShareWithinTolerance condition and an Event)."""


class Shadow(_Model):
    """A shadow step: live requests are copied to the canary, users get stable's answers only."""

    percent: Annotated[int, Field(ge=1, le=100)]
    """Percent of live requests copied (mirrored) to the canary (1-100). The canary's answers are
    discarded; its own metrics count only these copies and are judged against stable's like a canary
    step's."""


@cel(
    "has(self.weight) || has(self.shadow)",
    "spec.rollout.steps[] needs weight (percent of users on the canary) or shadow (requests mirrored to the "
    "canary, no users): add weight: N or shadow: {percent: N}",
    field_path=".weight",
)
@cel(
    "!(has(self.weight) && has(self.shadow))",
    "spec.rollout.steps[] has both weight and shadow: a shadow step sends no user to the canary; make it two "
    "steps, the shadow step first",
    field_path=".shadow",
)
@cel(
    "!has(self.pause) || duration(self.pause) <= duration('168h')",
    "spec.rollout.steps[].pause must be at most 168h (7 days): for a longer hold set spec.paused or add a "
    "step with approval: required",
    field_path=".pause",
)
@cel(
    "!(has(self.pause) && has(self.approval) && self.approval == 'required')",
    "spec.rollout.steps[] is either a timed pause or an approval gate, not both: split it into two steps",
    field_path=".pause",
)
class Step(_Model):
    """One step of a canary: a weight (users on the canary) or a shadow (requests mirrored to it)."""

    weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Percent of traffic on the canary during this step (1-100); increasing, the last one 100. Required
    unless the step is a shadow step."""
    shadow: Shadow | None = None
    """A shadow step instead of a weight: the router copies this percent of live requests to the canary and
    users get stable's answers only (canary weight 0). Judged like a canary step (same SLOs, same tests
    against stable); a failure rolls back with zero user requests served by the new version. Only before
    the first weighted step, percents increasing; needs spec.traffic.router: gatewayAPI."""
    pause: Duration | None = None
    """Hold this weight for this long before the step can pass (e.g. 2m)."""
    analysis: bool = True
    """Judge the SLOs during this step; the step passes only after a passing analysis."""
    approval: ApprovalMode = ApprovalMode.NONE
    """required: wait for the tollgate.dev/approve annotation before setting this weight."""

    @property
    def canary_weight(self) -> int:
        """Percent of user traffic on the canary while this step holds (0 for a shadow step)."""
        return self.weight if self.weight is not None else 0

    @property
    def mirror(self) -> int:
        """Percent of live requests mirrored to the canary while this step holds (0 unless shadow)."""
        return self.shadow.percent if self.shadow is not None else 0

    @property
    def load(self) -> int:
        """Percent of the requests the canary's pods answer: its weight, or the mirrored percent. Sizes the
        canary (engine.routing)."""
        return max(self.canary_weight, self.mirror)

    def describe(self) -> str:
        """The step in a few words, e.g. "25%" or "shadow 50%"."""
        return f"shadow {self.mirror}%" if self.shadow is not None else f"{self.canary_weight}%"


@cel(
    "!has(self.interval) || duration(self.interval) <= duration('1h')",
    "spec.rollout.analysis.interval must be at most 1h: a regression would go unjudged longer; set e.g. 30s",
    field_path=".interval",
)
@cel(
    "!has(self.window) || duration(self.window) <= duration('24h')",
    "spec.rollout.analysis.window must be at most 24h: set e.g. twice the interval",
    field_path=".window",
)
@cel(
    "!has(self.interval) || duration(self.interval) >= duration('1s')",
    "spec.rollout.analysis.interval must be at least 1s: set e.g. 30s",
    field_path=".interval",
)
@cel(
    "!has(self.window) || !has(self.interval) || duration(self.window) >= duration(self.interval)",
    "spec.rollout.analysis.window must be at least the interval, or analysis ticks skip data: "
    "raise window (e.g. twice the interval)",
    field_path=".window",
)
class AnalysisSettings(_Model):
    """How often and how strictly the SLOs are judged. Omitted fields come from the risk tier."""

    interval: Duration | None = None
    """Time between two analysis ticks (e.g. 30s). Minimum 1s."""
    failureLimit: Annotated[int, Field(ge=0, le=100)] | None = None
    """Failed checks tolerated; one more rolls back at once (in the same tick). 0: the first failure."""
    consecutiveErrorLimit: Annotated[int, Field(ge=0, le=100)] | None = None
    """Provider errors (Prometheus unreachable, bad query) in a row tolerated before failing closed."""
    minSamples: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    """Canary requests needed in the window before any verdict (for SLOs compared with the baseline by a
    test: since the canary started); below it the check is inconclusive (the step holds). Bounded per SLO by
    maxNoDataDuration, after which onNoData decides."""
    window: Duration | None = None
    """Range over which each SLO is computed (PromQL range, e.g. 1m). Default: twice the interval."""
    confidence: Annotated[float, Field(ge=0.5, le=0.9999)] | None = None
    """Confidence of the verdicts' tests. Canary versus baseline (SLOs with maxIncreaseOverBaseline): a
    rollback needs a regression significant at this level over every look at the canary, so a healthy
    canary is rolled back by chance at most 1 - confidence of the time per SLO. The min and max of
    error-rate, invalid-output-rate and the latency quantiles: a check fails only when the look's requests
    show the version beyond the limit at this level (an exact binomial test, look by look). Default 0.99."""


@cel(
    "!has(self.steps) || (self.steps.filter(s, has(s.weight)).map(s, s.weight).isSorted() && "
    "self.steps.all(s, !has(s.weight) || self.steps.exists_one(t, has(t.weight) && t.weight == s.weight)))",
    "spec.rollout.steps weights must be strictly increasing (e.g. 5, 25, 50, 100): "
    "sort the steps and remove repeated weights",
    field_path=".steps",
)
@cel(
    "!has(self.steps) || self.steps.map(s, has(s.shadow) ? 0 : 1).isSorted()",
    "spec.rollout.steps: shadow steps come before the first weighted step (once users are on the canary, a "
    "shadow step would take them off it): move the shadow steps to the front",
    field_path=".steps",
)
@cel(
    "!has(self.steps) || (self.steps.filter(s, has(s.shadow)).map(s, s.shadow.percent).isSorted() && "
    "self.steps.all(s, !has(s.shadow) || "
    "self.steps.exists_one(t, has(t.shadow) && t.shadow.percent == s.shadow.percent)))",
    "spec.rollout.steps shadow percents must be strictly increasing (e.g. shadow 10, then shadow 50): sort "
    "the shadow steps and remove repeated percents",
    field_path=".steps",
)
@cel(
    "!has(self.steps) || size(self.steps) == 0 || (has(self.steps[size(self.steps) - 1].weight) && "
    "self.steps[size(self.steps) - 1].weight == 100)",
    "spec.rollout.steps must end with weight 100: add a last step {weight: 100}; "
    "the canary is promoted only after full traffic passed",
    field_path=".steps",
)
@cel(
    "!has(self.bakeWindow) || duration(self.bakeWindow) <= duration('24h')",
    "spec.rollout.bakeWindow must be at most 24h: a version that served a day at full traffic has baked; "
    "set e.g. 30m, or 0s for no bake window",
    field_path=".bakeWindow",
)
@cel(
    "!has(self.bakeWindow) || duration(self.bakeWindow) == duration('0s') || !has(self.analysis) || "
    "!has(self.analysis.interval) || duration(self.bakeWindow) >= duration(self.analysis.interval)",
    "spec.rollout.bakeWindow must be at least spec.rollout.analysis.interval, or the window ends before its "
    "first look: raise bakeWindow (e.g. 10 intervals) or set 0s for no bake window",
    field_path=".bakeWindow",
)
@cel(
    "!has(self.keepFailedCanary) || duration(self.keepFailedCanary) <= duration('24h')",
    "spec.rollout.keepFailedCanary must be at most 24h: a failed canary's pods are kept for debugging, not "
    "indefinitely; set e.g. 30m, or 0s to remove a failed canary at once",
    field_path=".keepFailedCanary",
    message_expression=(
        "'spec.rollout.keepFailedCanary is ' + self.keepFailedCanary + ', more than the 24h maximum: the pods of "
        "a failed canary are kept for debugging, not indefinitely; set e.g. 30m, or 0s to remove a failed canary "
        "at once'"
    ),
)
@cel(
    "!has(self.progressDeadline) || duration(self.progressDeadline) <= duration('24h')",
    "spec.rollout.progressDeadline must be at most 24h: a canary that is not Ready in a day will not be; "
    "set e.g. 10m",
    field_path=".progressDeadline",
)
@cel(
    "!has(self.progressDeadline) || duration(self.progressDeadline) >= duration('10s')",
    "spec.rollout.progressDeadline must be at least 10s: set e.g. 5m",
    field_path=".progressDeadline",
)
class Rollout(_Model):
    """The canary plan. Omitted steps and analysis settings come from the risk tier."""

    steps: Annotated[list[Step], Field(min_length=1, max_length=20)] | None = None
    """Traffic steps in order, weights strictly increasing, the last one 100; shadow steps (mirrored
    requests, no users) only before the first weighted one. Each step sets the weight or the mirror (after
    its approval, if any), waits for the pause and passes with a passing analysis. Omitted: the risk tier's
    steps (see docs/api.md)."""
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    """Analysis cadence and limits."""
    progressDeadline: Duration | None = None
    """A canary not Ready within this time is rolled back (e.g. 2m), counted from the moment its pods are
    scheduled (time waiting for a node is reported in status, not counted). Default: from the risk tier."""
    bakeWindow: Duration | None = None
    """After promotion the new stable stays under analysis this long (e.g. 30m), judged on the SLOs'
    absolute limits and against the baseline the previous version recorded during the canary; a failure
    inside it rolls back to status.lastKnownGood with evidence, like a canary failure. 0s: none. Default:
    from the risk tier (none for low and medium)."""
    keepFailedCanary: Duration | None = None
    """After a rollback or abort, keep the failed canary's Deployment and pods this long (e.g. 30m) for
    debugging (logs, exec), with zero traffic: its router weight is 0 and no Service Tollgate manages selects
    its pods. status.keptCanary names it and when it is removed; a new version or tollgate.dev/retry removes it
    first, as does the kill switch. Omitted or 0s: removed at once (Argo Rollouts' abortScaleDownDelaySeconds).
    At most 24h."""


class MetricsProfile(StrEnum):
    """The dialect of the series the built-in SLO templates read (see docs/operations.md)."""

    MLSERVER = "mlserver"
    ISTIO = "istio"
    OTEL = "otel"


class Metrics(_Model):
    """Where the model's metrics are scraped from, and in which dialect the built-in SLOs read them."""

    profile: MetricsProfile | None = None
    """mlserver (MLServer's own metrics), istio (istio_requests_total from the pod's sidecar) or otel
    (OpenTelemetry http.server.request.duration). Default: the operator's --metrics-profile (chart value
    metrics.profile)."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Port the model's pods serve their metrics on (MLServer: 8082, Istio's merged metrics: 15020).
    Written to the pod annotation tollgate.dev/metrics-port, which the shipped scrape configuration reads.
    Default: spec.runtime.port."""
    path: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=256)] = "/metrics"
    """HTTP path of the metrics (Istio's merged metrics: /stats/prometheus); pod annotation
    tollgate.dev/metrics-path."""


class TemplateKind(StrEnum):
    """Which kind of reusable SLO template a templateRef names."""

    CLUSTER = "ClusterSLOTemplate"
    NAMESPACED = "SLOTemplate"


class TemplateRef(_Model):
    """A reusable SLO template, by kind and name."""

    kind: TemplateKind = TemplateKind.CLUSTER
    """ClusterSLOTemplate (cluster-wide, written by the platform team) or SLOTemplate (in the
    ModelDeployment's own namespace)."""
    name: Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    """metadata.name of the template."""


@cel(
    "has(self.query) || has(self.templateRef) || self.name in " + _TEMPLATES_CEL,
    "spec.slos[].name must be a built-in template (" + ", ".join(BUILTIN_SLO_TEMPLATES) + ") "
    "or the SLO needs a query or a templateRef: fix the name, or add query or templateRef",
    field_path=".name",
)
@cel(
    "!has(self.query) || !has(self.templateRef)",
    "spec.slos[] has both query and templateRef: keep one (templateRef names a reusable template, "
    "query is written inline)",
    field_path=".templateRef",
)
@cel(
    "has(self.max) || has(self.min) || has(self.maxIncreaseOverBaseline)",
    "spec.slos[] needs a threshold: set max, min or maxIncreaseOverBaseline",
)
@cel(
    "!has(self.min) || !has(self.max) || self.min <= self.max",
    "spec.slos[].min must not exceed spec.slos[].max: swap them or widen the range",
    field_path=".min",
)
@cel(
    "!(" + _BUILTIN + "self.name == 'score-shift') || !has(self.min) || !has(self.maxIncreaseOverBaseline) || "
    "self.min <= self.maxIncreaseOverBaseline",
    "spec.slos[].min of score-shift must not exceed its maxIncreaseOverBaseline (for a shift both limit the "
    "same distance, so no canary could pass): lower min or raise maxIncreaseOverBaseline",
    field_path=".min",
)
@cel(
    "!(" + _BUILTIN + "self.name in ['error-rate', 'invalid-output-rate']) || "
    "((!has(self.max) || (self.max >= 0.0 && self.max <= 1.0)) && "
    "(!has(self.min) || (self.min >= 0.0 && self.min <= 1.0)))",
    "spec.slos[].max of a -rate SLO is a ratio between 0 and 1: write 0.01 for 1%",
    field_path=".max",
)
@cel(
    "!(" + _BUILTIN + "self.name.startsWith('latency-')) || !has(self.max) || self.max <= 60.0",
    "spec.slos[].max of a latency SLO is in seconds and at most 60: write 0.25 for 250ms",
    field_path=".max",
)
@cel(
    "!has(self.maxNoDataDuration) || duration(self.maxNoDataDuration) <= duration('24h')",
    "spec.slos[].maxNoDataDuration must be at most 24h: a check without data for a day is a failure; "
    "set e.g. 5m",
    field_path=".maxNoDataDuration",
)
@cel(
    "!has(self.onNoData) || self.onNoData != 'hold' || "
    "(has(self.maxNoDataDuration) && duration(self.maxNoDataDuration) > duration('0s'))",
    "spec.slos[].maxNoDataDuration must be a positive bound (e.g. 5m) with onNoData: hold, "
    "after which missing data fails the check; or choose onNoData: fail",
    field_path=".maxNoDataDuration",
)
class SLO(_Model):
    """A service-level objective the canary must meet at every analysis tick."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
    """A built-in template (error-rate, latency-p50/p95/p99, request-rate, score-shift, invalid-output-rate)
    or any name when `query` or `templateRef` is set."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """Custom PromQL returning one value per track; may use {{namespace}}, {{name}}, {{track}}, {{window}},
    {{sandbox}} and {{selector}} (see docs/operations.md, "Connecting your metrics")."""
    templateRef: TemplateRef | None = None
    """A reusable template instead of a built-in or inline query: a ClusterSLOTemplate the platform team
    wrote, or an SLOTemplate in this ModelDeployment's namespace. A missing template holds the rollout
    with the condition TemplatesResolved=False; it never rolls back."""
    dryRun: bool = False
    """true: measured and shown in status (and evidence) at every analysis, but never gates: a failing
    dry-run SLO neither holds nor rolls back. Use it to calibrate a threshold on real traffic."""
    min: float | None = None
    """Lowest acceptable value (absolute). For error-rate, invalid-output-rate and latency-p50/p95/p99 a check
    fails only when the requests show the version below it at analysis.confidence (exact binomial test; for a
    quantile, on the requests at or below it in the latency histogram); below it but unproven, the step
    waits."""
    max: float | None = None
    """Highest acceptable value (absolute). For error-rate, invalid-output-rate and latency-p50/p95/p99 a check
    fails only when the requests show the version above it at analysis.confidence (exact binomial test; 3
    errors in 200 requests is no evidence against max 0.01, 8 are; a p99 max counts the requests slower than
    it in the latency histogram against 1 %, so put it on a bucket bound); for score-shift, when the spread
    of the two tracks' scores shows their distance over it (z-test); above it but unproven, the step
    waits."""
    maxIncreaseOverBaseline: Annotated[float, Field(ge=0)] | None = None
    """Largest acceptable canary value minus stable value over the same window. For score-shift (already the
    two tracks' distance) the same limit as max, tested the same way; with both set, the smaller applies."""
    onNoData: NoDataPolicy = NoDataPolicy.HOLD
    """What a missing, empty or NaN result means. hold: no verdict, retry (bounded by maxNoDataDuration);
    fail: counts as a failed check; pass: ignore. Fewer than minSamples canary requests is no verdict
    (Inconclusive) under every policy until maxNoDataDuration has passed; then this policy decides
    (pass: the check passes; hold or fail: it fails)."""
    maxNoDataDuration: Duration | None = "5m"
    """How long a run of checks without a verdict (missing data, or fewer than minSamples requests) is
    tolerated before onNoData decides: with hold the check then fails. Also bounds Inconclusive checks
    under fail and pass. Counts only time the SLO was looked at: not time paused, not time the metrics
    provider did not answer (bounded by consecutiveErrorLimit), and of a longer gap between two looks (a
    step without analysis, a missing template, the operator down) two analysis intervals at most."""
    minSamples: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    """Overrides spec.rollout.analysis.minSamples for this SLO. Below it: Inconclusive, bounded by
    maxNoDataDuration."""


class Fallback(_Model):
    """The pinned safe version the kill switch sends all traffic to."""

    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN, max_length=63)]
    """Model version of the fallback."""
    uri: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Where the fallback's weights are; default: the model uri with the version replaced."""
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN, max_length=71)] | None = None
    """Digest of the fallback artifact."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")] | None = None
    """Model-server image of the fallback; default: spec.runtime.image."""


@cel(
    "!has(self.fallback) || self.fallback.version != self.model.version",
    "spec.fallback.version must differ from spec.model.version: the fallback is the version you trust "
    "when this one misbehaves; pin the previous good version",
    field_path=".fallback.version",
)
@cel(
    "!has(self.riskTier) || self.riskTier != 'critical' || !has(self.rollout) || !has(self.rollout.steps) || "
    "self.rollout.steps.exists(s, has(s.approval) && s.approval == 'required')",
    "spec.rollout.steps of a critical riskTier needs a step with approval: required; "
    "add one or omit steps to use the tier's",
    field_path=".rollout.steps",
)
@cel(
    "!has(self.sandbox) || !has(self.sandbox.quota) || !('pods' in self.sandbox.quota) || "
    "!isQuantity(self.sandbox.quota['pods']) || (quantity(self.sandbox.quota['pods']).isInteger() && "
    "quantity(self.sandbox.quota['pods']).asInteger() >= (has(self.autoscaling) ? self.autoscaling.maxReplicas : "
    "(has(self.replicas) ? self.replicas : 2)) * 2)",
    "spec.sandbox.quota.pods must be at least twice spec.replicas, or twice spec.autoscaling.maxReplicas with "
    "autoscaling (stable plus a full canary): raise pods or lower replicas",
    field_path=".sandbox.quota",
)
@cel(
    "!has(self.sandbox) || !has(self.sandbox.quota) || size(self.sandbox.quota) == 0 || "
    "!has(self.runtime.resources) || "
    "((has(self.runtime.resources.requests) ? self.runtime.resources.requests.filter(k, k.contains('/')) : [])"
    " + (has(self.runtime.resources.limits) ? self.runtime.resources.limits.filter(k, k.contains('/')) : []))"
    ".all(k, k in self.sandbox.quota || ('requests.' + k) in self.sandbox.quota)",
    "spec.sandbox.quota must list every extended resource spec.runtime.resources asks for (e.g. "
    "requests.nvidia.com/gpu: \"4\" for 2 replicas of 1 GPU with room for a canary): a quota that omits it "
    "does not limit it; add it, or leave quota empty to derive it",
    field_path=".sandbox.quota",
)
@cel(
    "!has(self.rollout) || !has(self.rollout.progressDeadline) || !has(self.probes) || !has(self.probes.startup) || "
    "(has(self.probes.startup.enabled) && !self.probes.startup.enabled) || "
    "duration(self.rollout.progressDeadline).getSeconds() >= "
    "(has(self.probes.startup.initialDelaySeconds) ? self.probes.startup.initialDelaySeconds : 0) + "
    "(has(self.probes.startup.periodSeconds) ? self.probes.startup.periodSeconds : 10) * "
    "(has(self.probes.startup.failureThreshold) ? self.probes.startup.failureThreshold : 6)",
    "spec.rollout.progressDeadline is shorter than the time spec.probes.startup gives the model to load "
    "(initialDelaySeconds + periodSeconds x failureThreshold): a slow load would be rolled back; raise "
    "progressDeadline or lower the startup budget",
    field_path=".rollout.progressDeadline",
)
@cel(
    "!has(self.hooks) || !has(self.hooks.syntheticTraffic) || self.hooks.syntheticTraffic != 'exclude' || "
    "(has(self.metrics) && has(self.metrics.profile) && self.metrics.profile in " + _SYNTHETIC_CEL + ")",
    "spec.hooks.syntheticTraffic is exclude, but spec.metrics.profile does not label synthetic requests: only "
    + ", ".join(SYNTHETIC_PROFILES) + " can (with the Telemetry tag override in docs/operations.md); set "
    "spec.metrics.profile: istio, or syntheticTraffic: include",
    field_path=".hooks.syntheticTraffic",
    message_expression=(
        "'spec.hooks.syntheticTraffic is exclude, but spec.metrics.profile is ' + "
        "(has(self.metrics) && has(self.metrics.profile) ? self.metrics.profile : 'unset (the operator default)') + "
        "', which does not label synthetic requests: only " + ", ".join(SYNTHETIC_PROFILES) + " can (with the "
        "Telemetry tag override in docs/operations.md); set spec.metrics.profile: istio, or syntheticTraffic: include'"
    ),
)
@cel(
    "!has(self.hooks) || !has(self.hooks.syntheticTraffic) || self.hooks.syntheticTraffic != 'exclude' || "
    "!has(self.slos) || self.slos.all(s, !has(s.query) || s.query.contains('{{selector}}'))",
    "spec.hooks.syntheticTraffic is exclude, but a spec.slos[].query does not use {{selector}}, which carries the "
    "exclusion: its value would count synthetic requests; write {{selector}} in every selector of the query",
    field_path=".slos",
)
@cel(
    "!has(self.slos) || self.slos.all(s, self.slos.exists_one(t, t.name == s.name))",
    "spec.slos names must be unique: rename or merge the repeated SLO",
    field_path=".slos",
)
class ModelDeploymentSpec(_Model):
    """A model server rolled out as a guarded, reversible canary."""

    model: ModelRef
    """The model version to serve."""
    runtime: Runtime
    """The model-server container."""
    replicas: Annotated[int, Field(ge=1, le=1000)] = 2
    """Pods of the stable track. A canary gets as many at full weight. Not used with spec.autoscaling (the
    autoscaler owns the stable track's count)."""
    autoscaling: Autoscaling | None = None
    """An autoscaler owns the stable track's replica count (an HPA Tollgate creates, or an external scaler such
    as KEDA); Tollgate never writes it and sizes the canary from the stable track's current size."""
    riskTier: RiskTier = RiskTier.MEDIUM
    """low | medium | high | critical: picks steps, analysis strictness and approvals when omitted."""
    sandbox: Sandbox = Field(default_factory=Sandbox)
    """Isolation of the namespace the model runs in."""
    probes: Probes = Field(default_factory=Probes)
    """Startup, readiness and liveness probes of the model server (defaults suit slow-loading models). Not part
    of the revision."""
    modelDelivery: ModelDelivery = Field(default_factory=ModelDelivery)
    """How spec.model.uri gets into the pod: the storage initializer, its credentials (a Secret reference) and
    the model cache. Not part of the revision."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Where the pods run (node selector, tolerations, affinity, topology spread, priority class); the
    same for every track. Not part of the revision: a change rolls the running tracks, no canary."""
    podTemplate: PodTemplate | None = None
    """An overlay on the pods of every track for what the spec does not cover (Secrets as variables or files,
    a model cache volume, image pull secrets, a runtime class, extra labels), merged as a strategic merge
    patch would be and held to Pod Security restricted (see docs/api.md). Not part of the revision: a change
    rolls the running tracks, it does not start a canary."""
    traffic: Traffic = Field(default_factory=Traffic)
    """Traffic routing between the tracks."""
    rollout: Rollout = Field(default_factory=Rollout)
    """The canary plan."""
    slos: Annotated[list[SLO], Field(max_length=32)] = Field(default_factory=list)
    """Objectives judged at every analysis step. Empty: the risk tier's default SLOs."""
    metrics: Metrics = Field(default_factory=Metrics)
    """Where the model's metrics come from: their dialect (profile), port and path."""
    fallback: Fallback | None = None
    """Pinned safe version for the kill switch. Default: status.lastKnownGood."""
    killSwitch: bool = False
    """true: all traffic to the fallback within seconds and the canary scaled to zero, whatever the phase."""
    paused: bool = False
    """true: hold the rollout where it is (weights stay, no analysis verdicts count)."""
    hooks: Hooks = Field(default_factory=Hooks)
    """Jobs run in the sandbox before traffic, during analysis and before promotion, and an HTTP
    confirmation gate (see docs/api.md, Hooks)."""


for _rule in capability_rules():  # what the router cannot do is refused at admission (api.routers)
    cel(_rule.rule, _rule.message, field_path=_rule.field_path,
        message_expression=_rule.message_expression)(ModelDeploymentSpec)
