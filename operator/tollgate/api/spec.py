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

from tollgate.api.validation import cel

# Patterns shared by the schema and the operator. Kept deliberately close to Kubernetes' own grammar.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$"
CIDR_PATTERN = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$|^[0-9a-fA-F:]+/[0-9]{1,3}$"
RESOURCE_NAME_PATTERN = r"^([a-z0-9.-]+/)?[a-z0-9A-Z._-]+$"

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


class RouterKind(StrEnum):
    """How traffic is split between the stable and the canary track."""

    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"


class ApprovalMode(StrEnum):
    """Whether a step waits for a person before its weight is set."""

    REQUIRED = "required"
    NONE = "none"


@cel(
    "!has(self.digest) || self.digest.startsWith('sha256:')",
    "spec.model.digest must look like sha256:<64 hex characters>; copy it from your model registry",
    field_path=".digest",
)
class ModelRef(_Model):
    """The model version being served."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=40)]
    """Model name, a DNS label (lower case, digits and '-'), used in object names and metric labels."""
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
    """Model version, e.g. "2.4.0". A change of version (or uri, digest, runtime) starts a canary."""
    uri: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Where the model server loads the weights from, e.g. s3://models/fraud/2.4.0. Passed as MODEL_URI."""
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)] | None = None
    """Content digest of the model artifact (sha256:<64 hex>). Pins the exact bytes; recorded as evidence."""


class EnvVar(_Model):
    """An environment variable of the model server. Literal values only: reference Secrets by mounting."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    """Variable name, a C identifier."""
    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """Literal value."""


class Resources(_Model):
    """Compute resources per model-server pod. GPUs are extended resources such as nvidia.com/gpu."""

    requests: dict[Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN)], Quantity] = Field(
        default_factory=dict
    )
    """Requested resources, e.g. {cpu: "2", memory: 4Gi}."""
    limits: dict[Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN)], Quantity] = Field(
        default_factory=dict
    )
    """Resource limits, e.g. {memory: 8Gi, nvidia.com/gpu: "1"}. GPUs must have equal request and limit."""


class Runtime(_Model):
    """The model-server container. Its pods run under the restricted Pod Security profile."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")]
    """Container image of the model server; pin it by digest (image@sha256:...) for reproducible rollbacks."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    """Port the server listens on for inference and /metrics."""
    args: Annotated[list[Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)] = Field(
        default_factory=list
    )
    """Arguments passed to the container's entrypoint."""
    env: Annotated[list[EnvVar], Field(max_length=64)] = Field(default_factory=list)
    """Environment variables (literal values)."""
    resources: Resources = Field(default_factory=Resources)
    """Requests and limits per pod."""
    readinessPath: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=256)] = "/ready"
    """HTTP path that answers 200 once the model is loaded."""


class LabelSelector(_Model):
    """Equality-based label selector (matchLabels)."""

    matchLabels: dict[Annotated[str, StringConstraints(max_length=317)], Annotated[str, StringConstraints(max_length=63)]] = (
        Field(default_factory=dict)
    )
    """Labels that must all match."""


@cel(
    "has(self.namespaceSelector) || has(self.podSelector)",
    "each spec.sandbox.ingressFrom entry needs namespaceSelector, podSelector or both",
)
class IngressPeer(_Model):
    """Who may call the model. An empty selector matches everything in its scope."""

    namespaceSelector: LabelSelector | None = None
    """Namespaces whose pods may call the model."""
    podSelector: LabelSelector | None = None
    """Pods that may call the model (in the namespaces selected, or in the sandbox if none)."""


class EgressRule(_Model):
    """A destination the model may reach; everything else is denied (DNS is always allowed)."""

    cidr: Annotated[str, StringConstraints(pattern=CIDR_PATTERN)]
    """Destination network, e.g. 10.20.0.0/16 for the model store."""
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    """TCP ports allowed; empty allows every port of that network."""


class Sandbox(_Model):
    """The isolated namespace the model runs in, created and owned by Tollgate."""

    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)] | None = None
    """Sandbox namespace name. Default: <metadata.namespace>-<metadata.name>, shortened with a hash if long.
    Tollgate only ever deletes a namespace it created itself."""
    ingressFrom: Annotated[list[IngressPeer], Field(max_length=32)] = Field(default_factory=list)
    """Callers allowed to reach the model port. Empty: nobody but Prometheus (default deny)."""
    egressTo: Annotated[list[EgressRule], Field(max_length=32)] = Field(default_factory=list)
    """Networks the model may reach. Empty: only DNS."""
    quota: dict[Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN)], Quantity] = Field(
        default_factory=dict
    )
    """ResourceQuota hard limits of the sandbox, e.g. {cpu: "16", memory: 64Gi, nvidia.com/gpu: "2", pods: "20"}.
    Empty: derived from replicas and runtime resources with room for one full canary."""
    prometheusNamespace: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)] = "monitoring"
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
    "self.router != 'gatewayAPI' || has(self.gatewayAPI)",
    "spec.traffic.gatewayAPI is required when spec.traffic.router is gatewayAPI: add parentRefs",
)
class Traffic(_Model):
    """How traffic reaches the stable and canary tracks."""

    router: RouterKind = RouterKind.REPLICAS
    """replicas: one Service over both tracks, split by replica ratio (works anywhere).
    gatewayAPI: an HTTPRoute with weighted backendRefs (exact weights)."""
    gatewayAPI: GatewayAPI | None = None
    """Required when router is gatewayAPI."""


@cel(
    "!(has(self.pause) && self.approval == 'required')",
    "a step is either a timed pause or an approval gate, not both: split it into two steps",
)
class Step(_Model):
    """One traffic step of a canary."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """Percent of traffic on the canary during this step (1-100). The last step's weight is the maximum."""
    pause: Duration | None = None
    """Hold this weight for this long before the step can pass (e.g. 2m)."""
    analysis: bool = True
    """Judge the SLOs during this step; the step passes only after a passing analysis."""
    approval: ApprovalMode = ApprovalMode.NONE
    """required: wait for the tollgate.dev/approve annotation before setting this weight."""


class AnalysisSettings(_Model):
    """How often and how strictly the SLOs are judged. Omitted fields come from the risk tier."""

    interval: Duration | None = None
    """Time between two analysis ticks (e.g. 30s). Minimum 1s."""
    failureLimit: Annotated[int, Field(ge=0, le=100)] | None = None
    """Failed checks tolerated; one more rolls back at once (in the same tick). 0: the first failure."""
    consecutiveErrorLimit: Annotated[int, Field(ge=0, le=100)] | None = None
    """Provider errors (Prometheus unreachable, bad query) in a row tolerated before failing closed."""
    minSamples: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    """Canary requests needed in the window before any verdict; below it the check is inconclusive."""
    window: Duration | None = None
    """Range over which each SLO is computed (PromQL range, e.g. 1m). Default: twice the interval."""


@cel(
    "!has(self.steps) || self.steps.map(s, s.weight).isSorted()",
    "spec.rollout.steps weights must be strictly increasing (e.g. 5, 25, 50, 100): sort the steps",
    field_path=".steps",
)
@cel(
    "!has(self.steps) || self.steps.all(s, self.steps.filter(t, t.weight == s.weight).size() == 1)",
    "spec.rollout.steps weights must be strictly increasing (e.g. 5, 25, 50, 100): remove the repeated weight",
    field_path=".steps",
)
class Rollout(_Model):
    """The canary plan. Omitted steps and analysis settings come from the risk tier."""

    steps: Annotated[list[Step], Field(max_length=20)] | None = None
    """Traffic steps in order, weights strictly increasing. Omitted: the risk tier's steps."""
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    """Analysis cadence and limits."""
    progressDeadline: Duration | None = None
    """A canary not Ready within this time is rolled back (e.g. 2m). Default: from the risk tier."""


@cel(
    "has(self.query) || self.name in ['error-rate', 'latency-p50', 'latency-p95', 'latency-p99', "
    "'request-rate', 'score-shift', 'invalid-output-rate']",
    "spec.slos[].name must be a built-in template (error-rate, latency-p50, latency-p95, latency-p99, "
    "request-rate, score-shift, invalid-output-rate) or the SLO needs a query",
    field_path=".name",
)
@cel(
    "has(self.max) || has(self.min) || has(self.maxIncreaseOverBaseline)",
    "each SLO needs at least one threshold: max, min or maxIncreaseOverBaseline",
)
@cel(
    "!has(self.min) || !has(self.max) || self.min <= self.max",
    "spec.slos[].min must not exceed max",
    field_path=".min",
)
@cel(
    "self.onNoData != 'hold' || has(self.maxNoDataDuration)",
    "onNoData: hold needs maxNoDataDuration (e.g. 5m), the bound after which missing data fails the check",
    field_path=".maxNoDataDuration",
)
class SLO(_Model):
    """A service-level objective the canary must meet at every analysis tick."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
    """A built-in template (error-rate, latency-p50/p95/p99, request-rate, score-shift, invalid-output-rate)
    or any name when `query` is set."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """Custom PromQL returning one value per track; may use {{namespace}}, {{name}}, {{track}}, {{window}}."""
    min: float | None = None
    """Lowest acceptable value (absolute)."""
    max: float | None = None
    """Highest acceptable value (absolute)."""
    maxIncreaseOverBaseline: Annotated[float, Field(ge=0)] | None = None
    """Largest acceptable canary value minus stable value over the same window."""
    onNoData: NoDataPolicy = NoDataPolicy.HOLD
    """hold: no verdict, retry (bounded by maxNoDataDuration); fail: counts as a failed check; pass: ignore."""
    maxNoDataDuration: Duration | None = "5m"
    """With onNoData hold: how long missing data is tolerated before the check fails."""
    minSamples: Annotated[int, Field(ge=0)] | None = None
    """Overrides spec.rollout.analysis.minSamples for this SLO."""


class Fallback(_Model):
    """The pinned safe version the kill switch sends all traffic to."""

    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
    """Model version of the fallback."""
    uri: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Where the fallback's weights are; default: the model uri with the version replaced."""
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)] | None = None
    """Digest of the fallback artifact."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")] | None = None
    """Model-server image of the fallback; default: spec.runtime.image."""


@cel(
    "!has(self.fallback) || self.fallback.version != self.model.version",
    "spec.fallback.version must differ from spec.model.version: the fallback is the version you trust "
    "when this one misbehaves",
    field_path=".fallback.version",
)
@cel(
    "self.riskTier != 'critical' || (has(self.rollout) && has(self.rollout.steps) && "
    "self.rollout.steps.exists(s, s.approval == 'required')) || !has(self.rollout) || !has(self.rollout.steps)",
    "riskTier critical needs at least one step with approval: required (or omit steps to use the tier's)",
    field_path=".rollout.steps",
)
@cel(
    "!has(self.sandbox) || !has(self.sandbox.quota) || !has(self.sandbox.quota.pods) || "
    "quantity(self.sandbox.quota.pods).compareTo(quantity(string(self.replicas * 2))) >= 0",
    "spec.sandbox.quota.pods must allow twice spec.replicas (stable plus a full canary)",
    field_path=".sandbox.quota",
)
class ModelDeploymentSpec(_Model):
    """A model server rolled out as a guarded, reversible canary."""

    model: ModelRef
    """The model version to serve."""
    runtime: Runtime
    """The model-server container."""
    replicas: Annotated[int, Field(ge=1, le=1000)] = 2
    """Pods of the stable track. A canary gets as many at full weight."""
    riskTier: RiskTier = RiskTier.MEDIUM
    """low | medium | high | critical: picks steps, analysis strictness and approvals when omitted."""
    sandbox: Sandbox = Field(default_factory=Sandbox)
    """Isolation of the namespace the model runs in."""
    traffic: Traffic = Field(default_factory=Traffic)
    """Traffic routing between the tracks."""
    rollout: Rollout = Field(default_factory=Rollout)
    """The canary plan."""
    slos: Annotated[list[SLO], Field(max_length=32)] = Field(default_factory=list)
    """Objectives judged at every analysis step. Empty: the risk tier's default SLOs."""
    fallback: Fallback | None = None
    """Pinned safe version for the kill switch. Default: status.lastKnownGood."""
    killSwitch: bool = False
    """true: all traffic to the fallback within seconds and the canary scaled to zero, whatever the phase."""
    paused: bool = False
    """true: hold the rollout where it is (weights stay, no analysis verdicts count)."""
