"""What a decision asks the runtime to do, as plain values.

Every action carries all the runtime needs; executing one involves no further decision. The runtime
executes `Decision.actions` in order: traffic first (SetWeight), then desired objects (ApplyObjects,
server-side apply), then removals (DeleteObjects), then the record (Promote/RollBack notifications,
RecordEvidence), then Kubernetes Events (EmitEvent). Then it writes `Decision.status` and sleeps until
the earliest of `Decision.wake` (or an event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect
from tollgate.api.spec import RouterKind
from tollgate.api.status import ModelDeploymentStatus


@dataclass(frozen=True)
class Context:
    """Identity of the ModelDeployment being decided on (for object names and labels)."""

    name: str
    namespace: str
    uid: str
    generation: int
    sandbox: str | None = None
    """status.sandboxNamespace as read: keeps a default sandbox name given by an older release."""


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(StrEnum):
    """Reasons of the Kubernetes Events Tollgate emits (also the timeline's vocabulary)."""

    SANDBOX_READY = "SandboxReady"  # a sandbox back after status said not ready; a new one is named by Deployed
    CANARY_STARTED = "CanaryStarted"
    SUPERSEDED = "Superseded"
    STEP_ADVANCED = "StepAdvanced"
    ANALYSIS_PASSED = "AnalysisPassed"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_ERROR = "AnalysisError"
    TEMPLATE_MISSING = "TemplateMissing"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    RETRIED = "Retried"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    KILL_SWITCH_ON = "KillSwitchOn"
    KILL_SWITCH_OFF = "KillSwitchOff"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    SPEC_INVALID = "SpecInvalid"
    DEPLOYED = "Deployed"
    SHARE_OUT_OF_TOLERANCE = "ShareOutOfTolerance"
    HOOK_STARTED = "HookStarted"
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    HOOK_HOLDING = "HookHolding"
    DRILL_STARTED = "DrillStarted"
    DRILL_REFUSED = "DrillRefused"
    DRILL_ROLLED_BACK = "DrillRolledBack"
    DRILL_MEASURED = "DrillMeasured"
    DRILL_PASSED = "DrillPassed"
    DRILL_FAILED = "DrillFailed"
    DRILL_INTERRUPTED = "DrillInterrupted"
    STEP_PROMOTED = "StepPromoted"
    BAKE_STARTED = "BakeStarted"
    BAKE_COMPLETED = "BakeCompleted"
    BAKE_ENDED = "BakeEnded"
    CANARY_KEPT = "CanaryKept"
    KEPT_CANARY_REMOVED = "KeptCanaryRemoved"


@dataclass(frozen=True)
class ObjectRef:
    """Identifies one Kubernetes object."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class SetWeight:
    """Traffic changed: the router now sends `canary_weight` percent to the canary.

    Emitted only when the routing changes. The objects in the same decision's ApplyObjects already
    carry it (Deployment replicas, Service selector, HTTPRoute weights); a router adapter may act on
    this value alone to change traffic faster (e.g. the kill switch).
    """

    router: RouterKind
    canary_weight: int
    stable_replicas: int | None
    """None: an autoscaler owns the stable track's count (spec.autoscaling); the router leaves it alone."""
    canary_replicas: int
    fallback: bool = False
    """True: all traffic goes to the fallback track (kill switch)."""
    fast: bool = False
    """True: move traffic through the router's fast path now, before the desired objects are applied.
    Traffic moving away from the canary (a lower weight or mirror than the persisted status had, or the
    fallback) takes it; a rise waits for the desired objects, which carry the same split."""
    keep_canary: bool = False
    """True: a failed canary is kept for debugging (status.keptCanary): the fast path takes traffic off it
    without removing its pods (replicas router: the Service selects the stable track, the canary is not
    scaled down)."""
    stable_only: bool = False
    """True: only the stable track is scaled, to `stable_replicas`; nothing else moves (replicas router: a
    refusal's hold grows stable back before traffic leaves the canary, engine.refusal)."""
    mirror_percent: int = 0
    """Percent of live requests copied to the canary (a shadow step; canary_weight is then 0); 0: no mirror.
    Only routers with the mirror capability get a non-zero value (api.routers; refused at admission)."""
    canary_rate_limit: int | None = None
    """Requests per second the gateway lets reach the canary, in force after this change (status.rateLimits)."""
    dialect: GatewayDialect = DEFAULT_DIALECT
    """How the gatewayAPI router writes the route (the platform's; engine.dataplane)."""


@dataclass(frozen=True)
class ApplyObjects:
    """Server-side apply these manifests (complete desired state, in dependency order)."""

    objects: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class DeleteObjects:
    """Delete these objects (e.g. the canary Deployment after promotion or rollback)."""

    refs: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class Promote:
    """Notification: `revision` replaced `previous` as stable (objects already reflect it)."""

    revision: str
    version: str
    previous: str | None


class Cause(StrEnum):
    """Why a canary was rolled back. Each cause states its event reason and history result once."""

    ANALYSIS = "analysis"
    """An SLO failed more often than failureLimit."""
    ERROR = "error"
    """The metrics provider erred more often in a row than consecutiveErrorLimit (fail closed)."""
    DEADLINE = "deadline"
    """Pods were not Ready within progressDeadline."""
    ABORT = "abort"
    """Somebody set tollgate.dev/abort."""
    POD_FAILURE = "pods"
    """A canary container cannot start and will not by waiting (its image never pulls, it crash-loops):
    rolled back when the kubelet reports it, not at the progress deadline."""
    HOOK = "hook"
    """A hook (spec.hooks) with failurePolicy rollback failed or outlived its timeout."""
    DRILL = "drill"
    """Somebody asked for a rollback drill (tollgate.dev/drill-rollback): a rehearsal, not a regression."""

    @property
    def reason(self) -> Reason:
        if self is Cause.DRILL:
            return Reason.DRILL_ROLLED_BACK
        return Reason.ABORTED if self is Cause.ABORT else Reason.ROLLED_BACK

    @property
    def result(self) -> str:
        """The history entry's result (Aborted, RolledBack or DrillRolledBack)."""
        return self.reason.value


@dataclass(frozen=True)
class RollBack:
    """Notification: traffic went back to stable `to_revision`; `revision` stays rolled back."""

    revision: str
    version: str
    to_revision: str | None
    reason: str
    incident: str
    cause: Cause = Cause.ANALYSIS
    """Why, also the label of the rollback metric."""


@dataclass(frozen=True)
class RecordEvidence:
    """Store the evidence of a rollback or abort under `name` (JSON-safe payload)."""

    name: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the ModelDeployment."""

    type: EventType
    reason: Reason
    message: str


@dataclass(frozen=True)
class DrillRecorded:
    """Notification: a drill ended (api.drills); `seconds` is its measured time to fallback (None when it
    never got there), recorded as the operator's metric tollgate_drill_seconds."""

    kind: str
    outcome: str
    seconds: float | None


Action = (SetWeight | ApplyObjects | DeleteObjects | Promote | RollBack | RecordEvidence | EmitEvent
          | DrillRecorded)


@dataclass(frozen=True)
class Wake:
    """When the engine wants to look again without an event (all None: only on events).

    Computed by pure functions (engine.wakes) from the new status; the runtime sleeps until the earliest.
    """

    deadline: datetime | None = None
    """A rule changes by time alone then: a progress deadline, or the end of a step's pause."""
    analysis_due: datetime | None = None
    """When the next analysis tick is due by the rules (one interval after the step began or the
    previous tick)."""
    analysis: datetime | None = None
    """The interval-grid point at which the runtime measures for that tick (`analysis_due` aligned,
    at most the grid slack early): loops sleeping until the same point share one Prometheus batch."""

    def earliest(self) -> datetime | None:
        times = [t for t in (self.deadline, self.analysis) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision: the new status, the actions, and when to look again."""

    status: ModelDeploymentStatus
    actions: tuple[Action, ...]
    at: datetime
    """The `now` the decision was made at."""
    wake: Wake = Wake()

    @property
    def requeue_after(self) -> float | None:
        """Seconds from the decision until the earliest wake (0 when it is overdue); None: events only."""
        earliest = self.wake.earliest()
        return None if earliest is None else max(0.0, (earliest - self.at).total_seconds())

    def of_type(self, kind: type[Any]) -> tuple[Any, ...]:
        """The actions of one class, in order."""
        return tuple(a for a in self.actions if isinstance(a, kind))

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        return tuple(a for a in self.actions if isinstance(a, EmitEvent))

    @property
    def event_reasons(self) -> tuple[Reason, ...]:
        return tuple(e.reason for e in self.events)
