"""The observed state of a ModelDeployment, written only by the operator.

kstatus-compatible so `kubectl wait`, Argo CD, Flux and Helm can wait on it: an integer
`observedGeneration`, and `Ready`, `Reconciling` and `Stalled` conditions. Every field here is declared
in the CRD schema, so the API server prunes nothing. Rollout progress lives here (not in the operator's
memory), which is what lets a restarted operator resume at the persisted step.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.controls import ControlTokens
from tollgate.api.drills import DrillStatus
from tollgate.api.hook_status import HookStatus
from tollgate.api.spec import ModelRef, Runtime

HISTORY_LIMIT = 10
TIMELINE_LIMIT = 50
STATUS_STRING_MAX_LENGTH = 4096
"""Every status string is capped in the CRD; `bounded` cuts what the operator writes to fit, so a long
provider error or annotation value can neither fail a status write nor grow the object."""


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class Phase(StrEnum):
    """Where the ModelDeployment is in its life."""

    PENDING = "Pending"
    """Accepted; the sandbox and the first version are being created."""
    STABLE = "Stable"
    """Serving one version with no rollout in progress (first deployment or after promotion)."""
    PROGRESSING = "Progressing"
    """A canary is taking traffic step by step."""
    PAUSED = "Paused"
    """spec.paused is true: weights hold, no verdicts count."""
    AWAITING_APPROVAL = "AwaitingApproval"
    """A step with approval: required waits for the tollgate.dev/approve annotation."""
    PROMOTING = "Promoting"
    """The canary passed every step and is becoming stable."""
    SUCCEEDED = "Succeeded"
    """The last rollout promoted; the canary is now stable."""
    BAKING = "Baking"
    """Promoted and serving all traffic, still under analysis until status.bake.until; a failure rolls
    back to status.lastKnownGood."""
    ROLLING_BACK = "RollingBack"
    """An SLO failed, the deadline passed or someone aborted: traffic is going back to stable."""
    ROLLED_BACK = "RolledBack"
    """All traffic is on stable; the canary revision stays rolled back until it changes or is retried."""
    STALLED = "Stalled"
    """The spec cannot be acted on (see message)."""
    FALLBACK = "Fallback"
    """The kill switch is on: all traffic is on the pinned fallback."""


ROLLOUT_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.AWAITING_APPROVAL, Phase.PROMOTING})
"""A canary rollout is under way (the controls promote and abort apply)."""
ROLLBACK_PHASES = frozenset({Phase.ROLLING_BACK, Phase.ROLLED_BACK})
"""The last canary was rolled back and its revision stays so (the retry control applies)."""
SERVING_PHASES = frozenset({Phase.STABLE, Phase.SUCCEEDED, Phase.BAKING})
"""One version serves all traffic with no canary (Baking: still under analysis, see status.bake)."""


class Verdict(StrEnum):
    """The outcome of one SLO check."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    NO_DATA = "NoData"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Status):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str
    """Condition type: Ready, Reconciling, Stalled, SandboxReady, Progressing, AwaitingApproval, RolledBack."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = ""
    """CamelCase machine-readable reason."""
    message: str = ""
    """Human-readable detail."""
    lastTransitionTime: str | None = None
    """When status last changed (RFC 3339)."""
    observedGeneration: int | None = None
    """metadata.generation this condition was computed from."""


class RevisionRef(_Status):
    """One revision of the model: a hash of what changes the running model (model + runtime)."""

    revision: str
    """Revision hash."""
    version: str
    """Model version."""
    digest: str | None = None
    """Model artifact digest, when known."""
    image: str | None = None
    """Model-server image."""
    model: ModelRef | None = None
    """The model this revision serves, kept so the operator can re-create the revision exactly
    (stable track during a rollout, fallback from lastKnownGood)."""
    runtime: Runtime | None = None
    """The model-server container of this revision, kept for the same reason as `model`."""


class SLOStatus(_Status):
    """The latest analysis of one SLO for the current canary."""

    name: str
    """SLO name."""
    verdict: Verdict | None = None
    """Latest verdict."""
    value: float | None = None
    """Canary value at the latest check."""
    baseline: float | None = None
    """Stable value over the same window."""
    threshold: str | None = None
    """The limits it was judged against, in words."""
    samples: int = 0
    """Canary requests in the window."""
    failures: int = 0
    """Failed checks in this rollout."""
    consecutiveErrors: int = 0
    """Provider errors in a row."""
    noDataSince: str | None = None
    """When the current run without a verdict (missing data, too few samples) began (RFC 3339), moved
    forward by time nobody looked (provider errors, long gaps between looks), restarted by a resume:
    maxNoDataDuration counts from here."""
    lastCheckedAt: str | None = None
    """Time of the latest check (RFC 3339)."""
    lastFailedAt: str | None = None
    """Time of the latest counted failure (RFC 3339): a failure that is not a significant regression
    counts at most once per analysis interval, however often the canary is looked at."""
    test: str | None = None
    """How canary was compared with baseline: two-proportion, mann-whitney, or difference (raw)."""
    effect: float | None = None
    """Canary minus baseline since the canary started: rate difference (two-proportion) or probability that a
    canary observation exceeds a baseline one, minus 0.5 (mann-whitney)."""
    effectLower: float | None = None
    """Lower end of the effect's interval at the configured confidence."""
    effectUpper: float | None = None
    """Upper end of the effect's interval at the configured confidence."""
    pValue: float | None = None
    """Always-valid p-value of a regression over every look at this canary (sequential test); a rollback
    needs it at or below 1 - confidence."""
    limitPValue: float | None = None
    """p-value of "the rate is beyond its min or max" at this look (error-rate and invalid-output-rate,
    engine.limits): a limit fails the check only at or below 1 - confidence; above it the step waits."""
    streamSamples: int = 0
    """Canary requests the comparison used (since the canary started)."""
    baselineSamples: int = 0
    """Baseline requests the comparison used."""
    baselineSource: str | None = None
    """live (stable over the same time) or carried (stable's last measurement, at the 100% step and in
    the bake window, where stable serves nothing)."""
    baselineFrom: str | None = None
    """Which data the baseline is: the stable stream's start, or where a carried baseline was measured."""
    streamSince: str | None = None
    """Start of the data stream the sequential test judges (the canary's start) (RFC 3339)."""
    dryRun: bool | None = None
    """true: a dry-run SLO, measured and judged but never gating the rollout."""


class BaselineRecord(_Status):
    """The stable track's last measurement for one SLO, carried into the 100% step and the bake window,
    where stable serves no traffic to compare with."""

    name: str
    """SLO name."""
    samples: int = 0
    """Stable requests measured."""
    events: float | None = None
    """Ratio SLOs: stable requests counted by the ratio."""
    bounds: Annotated[list[float], Field(max_length=64)] | None = None
    """Distribution SLOs: the histogram's finite upper bounds (a last +Inf bucket is implied)."""
    counts: Annotated[list[float], Field(max_length=65)] | None = None
    """Distribution SLOs: cumulative counts per bound, then the total (+Inf)."""
    since: str | None = None
    """Start of the measurement: the canary's stream it belongs to (RFC 3339)."""
    at: str | None = None
    """End of the measurement (RFC 3339)."""
    step: int = 0
    """Step index (0-based) it was measured at."""
    weight: int = 0
    """Canary weight while it was measured."""


class BakeStatus(_Status):
    """The bake window of a promoted version: it serves all traffic and is still judged on its SLOs."""

    revision: str
    """The promoted revision under analysis."""
    version: str
    """Its model version."""
    window: str
    """The window's length as configured (spec.rollout.bakeWindow or the risk tier's), e.g. 30m."""
    since: str
    """When the window began: the promotion (RFC 3339)."""
    until: str
    """When the window ends (RFC 3339): a failure before it rolls back to lastKnownGood; after it the version
    becomes lastKnownGood and is no longer judged."""
    rollbackTo: str | None = None
    """Version of lastKnownGood, where a failure inside the window sends all traffic."""
    streamSince: str | None = None
    """Start of the data stream judged against the previous version's carried baseline (status.baselines):
    the canary's start; the version's requests on the stable track since its promotion."""


class KeptCanaryStatus(_Status):
    """A failed canary kept for debugging (spec.rollout.keepFailedCanary): its Deployment and pods stay in the
    sandbox with zero traffic until `until`, then the operator removes them."""

    deployment: str
    """The kept Deployment (in status.sandboxNamespace): `kubectl logs deploy/<it>` shows its pods' logs."""
    revision: str
    """The failed revision its pods run."""
    version: str
    """Its model version."""
    since: str
    """When it was rolled back (RFC 3339)."""
    until: str
    """When the operator removes it (RFC 3339); a new version, tollgate.dev/retry or the kill switch remove it
    earlier."""
    incident: str | None = None
    """The evidence record of its rollback."""


class HistoryEntry(_Status):
    """A finished rollout, newest first; bounded."""

    revision: str
    """Canary revision."""
    version: str
    """Model version."""
    result: str
    """Promoted, RolledBack, Aborted or Superseded (a version rolled back in its bake window has both a
    Promoted and a later RolledBack entry)."""
    reason: str = ""
    """Why it ended."""
    at: str
    """When it ended (RFC 3339)."""
    incident: str | None = None
    """Evidence record of a rollback, when one was written."""
    approvedBy: str | None = None
    """Who approved this rollout's last approval gate: the value of tollgate.dev/approve, which the chart's
    trusted-approvals admission policy admits only when it names the user the API server authenticated."""
    actedBy: str | None = None
    """Who ended it by a control: the value of tollgate.dev/abort (admitted like tollgate.dev/approve)."""
    hooks: Annotated[list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=4)] = Field(
        default_factory=list)
    """The hooks of this rollout and how they ended, e.g. "preTraffic: Succeeded (job fraud-pretraffic-1a2b3c)"."""


class TimelineEntry(_Status):
    """One decision of the current rollout, kept as evidence; bounded by TIMELINE_LIMIT (oldest dropped)."""

    at: str
    """When (RFC 3339)."""
    reason: str
    """Event reason, e.g. StepAdvanced, AnalysisFailed."""
    message: str = ""
    """What happened."""
    step: int = 0
    """Step index at that moment (0-based)."""
    weight: int = 0
    """Canary weight after the decision."""


class StepStatus(_Status):
    """One step of the plan with the share of requests it really gives the canary."""

    weight: int
    """Percent asked for (spec.rollout.steps[].weight, or the risk tier's); 0 for a shadow step."""
    mirror: int | None = None
    """A shadow step: percent of live requests mirrored to the canary (spec.rollout.steps[].shadow.percent),
    whose answers users never get."""
    plannedShare: float
    """Percent the router gives at the current replica count: Ready canary pods / all Ready pods for the
    replicas router (it rounds the canary up to whole pods), the weight itself for gatewayAPI."""
    canaryPods: int = 0
    """Canary pods at this step."""
    stablePods: int = 0
    """Stable pods at this step (replicas router)."""
    share: float | None = None
    """Percent the canary really got while this step held, measured from Ready pods (the latest
    observation); None until the current canary reached this step."""


class RateLimitStatus(_Status):
    """The rate limits the gateway enforces now (spec.traffic, gatewayAPI router in a dialect that limits)."""

    canary: int | None = None
    """Requests per second that may reach the canary (spec.traffic.canaryRateLimit), while the canary takes
    requests (a weighted or a shadow step); over it, users are answered by stable."""
    model: int | None = None
    """Requests per second that may reach the model, all tracks (spec.traffic.rateLimit); over it, 429."""
    enforcedBy: str = ""
    """Which data plane counts them, e.g. "traefik (one bucket per Traefik replica)"."""


class ServedStatus(_Status):
    """The share the canary actually served over the latest analysis window, counted by the model servers
    themselves (the request counts the analysis reads), beside the plan (canaryShare) and the limits in
    force (rateLimits): engine.served."""

    canaryPercent: float
    """Percent of user requests the canary answered: canaryRequests / (canaryRequests + stableRequests) x
    100, rounded to 0.1. 0 in a shadow step, where users get stable's answers only (see mirroredPercent)."""
    canaryRequests: int = 0
    """User requests the canary answered over the window (0 in a shadow step: its requests are copies)."""
    stableRequests: int = 0
    """Requests stable answered over the window."""
    weight: int = 0
    """The canary weight in force while measured (status.canaryWeight then): a canary rate limit biting shows
    as canaryPercent below it."""
    mirror: int | None = None
    """A shadow step: the percent of live requests mirrored to the canary while measured."""
    mirroredRequests: int | None = None
    """A shadow step: copies of live requests the canary answered over the window; no user got these answers."""
    mirroredPercent: float | None = None
    """A shadow step: mirroredRequests / stableRequests x 100, rounded to 0.1, at most 100: the percent of live
    requests the canary got a copy of (below `mirror` when a canary rate limit drops copies; over a blended
    window the counts are estimates and can exceed it)."""
    window: str = ""
    """The analysis window the requests were counted over, e.g. 1m."""
    at: str | None = None
    """When the window ended: the analysis tick (RFC 3339)."""
    blended: bool | None = None
    """true: the window began before the step's traffic was set, so the counts include the previous step's split."""


class ModelDeploymentStatus(_Status):
    """Observed state, written by the operator; never edit it by hand."""

    observedGeneration: int = 0
    """metadata.generation the status reflects."""
    phase: Phase = Phase.PENDING
    """Where the ModelDeployment is in its life."""
    message: str = ""
    """What is happening, for people."""
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(default_factory=list)
    """Ready, Reconciling, Stalled (kstatus) plus SandboxReady, Progressing, AwaitingApproval, RolledBack."""
    sandboxNamespace: str | None = None
    """The namespace the model runs in."""
    stable: RevisionRef | None = None
    """The revision serving the stable track."""
    canary: RevisionRef | None = None
    """The revision being rolled out, if any."""
    lastKnownGood: RevisionRef | None = None
    """The last revision that served as stable without a rollback; the default fallback."""
    rolledBackRevision: str | None = None
    """A revision that was rolled back; it is not retried until it changes or tollgate.dev/retry is set."""
    currentStep: int = 0
    """Index of the step in progress (0-based)."""
    stepCount: int = 0
    """Number of steps of the current rollout."""
    canaryWeight: int = 0
    """Percent of traffic on the canary now."""
    canaryMirror: int = 0
    """Percent of live requests mirrored to the canary now (a shadow step: canaryWeight is 0, users get
    stable's answers only); 0 otherwise."""
    rateLimits: RateLimitStatus | None = None
    """The rate limits in force at the gateway now; None: none."""
    canaryShare: float | None = None
    """Percent of requests the canary gets now by the plan (replicas router: Ready canary pods / all Ready pods
    behind the Service; gatewayAPI: the route weight); None without a canary. `served` is what it answered."""
    served: ServedStatus | None = None
    """The share the canary actually served, counted by the model servers over the latest analysis window of
    this canary; None without a canary, before its first analysis tick, or when the window had no request."""
    steps: Annotated[list[StepStatus], Field(max_length=20)] = Field(default_factory=list)
    """The step plan with each step's real share (see spec.traffic.shareTolerance)."""
    stepStartedAt: str | None = None
    """When the current step began (RFC 3339)."""
    canaryStartedAt: str | None = None
    """When the current canary began (RFC 3339)."""
    canaryReadyAt: str | None = None
    """When the canary first had all its pods Ready (RFC 3339)."""
    lastAnalysisAt: str | None = None
    """When the latest analysis ran (RFC 3339); analysis time only counts from here."""
    passedAnalyses: int = 0
    """Passing analysis ticks in the current step."""
    missingTemplates: Annotated[list[Annotated[str, StringConstraints(max_length=512)]],
                                Field(max_length=32)] | None = None
    """SLO templates (spec.slos[].templateRef) that do not exist: analysis holds, without verdicts,
    until they do. Empty once they all resolve; absent when no template was ever missing."""
    analysis: Annotated[list[SLOStatus], Field(max_length=32)] = Field(default_factory=list)
    """Per-SLO analysis of the current canary."""
    baselines: Annotated[list[BaselineRecord], Field(max_length=32)] = Field(default_factory=list)
    """Per SLO, the stable track's last measurement in this rollout (the baseline carried forward)."""
    approvedBy: str | None = None
    """Who approved the latest gate (value of tollgate.dev/approve)."""
    controls: ControlTokens = Field(default_factory=ControlTokens)
    """Control annotations already handled (the last token of each), so one annotation acts once."""
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(default_factory=list)
    """Finished rollouts, newest first."""
    lastIncident: str | None = None
    """Name of the ConfigMap holding the evidence of the latest rollback or abort."""
    killSwitchActive: bool = False
    """True while all traffic is on the fallback."""
    fallback: RevisionRef | None = None
    """The fallback revision once it serves all traffic (kill switch on); None otherwise."""
    notReadySince: str | None = None
    """When the engine began waiting for pods of the track it depends on to be Ready (canary start, a
    step's scale-up, the first deployment) (RFC 3339); the progress deadline counts from here."""
    promotingSince: str | None = None
    """When promotion of the canary began (RFC 3339); None when not promoting."""
    bake: BakeStatus | None = None
    """The bake window of the version promoted last, while it runs (phase Baking); None otherwise."""
    planHash: str | None = None
    """Hash of the effective steps the current rollout follows; a change restarts it at step one. None beside a
    canary: held at weight 0 while its spec was refused or its decision failed; it restarts at step one."""
    timeline: Annotated[list[TimelineEntry], Field(max_length=TIMELINE_LIMIT)] = Field(default_factory=list)
    """Decisions of the current rollout, oldest first; copied into the evidence of a rollback."""
    hooks: Annotated[list[HookStatus], Field(max_length=4)] = Field(default_factory=list)
    """The hooks (spec.hooks) of the current or latest canary: their Jobs, phases and outcomes."""
    keptCanary: KeptCanaryStatus | None = None
    """A failed canary kept for debugging with zero traffic (spec.rollout.keepFailedCanary), and when it is
    removed; None otherwise."""
    lastDrill: DrillStatus | None = None
    """The last drill (kubectl tollgate drill): kind, who asked, when, the measured time to fallback and the
    outcome (api.drills)."""


def bounded(value: object, limit: int = STATUS_STRING_MAX_LENGTH) -> object:
    """`value` (status as JSON) with every string cut to `limit` characters, marked with a trailing '…'."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "\u2026"
    if isinstance(value, dict):
        return {k: bounded(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [bounded(v, limit) for v in value]
    return value
