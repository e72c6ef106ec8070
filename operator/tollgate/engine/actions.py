"""What a decision asks the runtime to do, as plain values.

Every action carries all the runtime needs; executing one involves no further decision. The runtime
executes `Decision.actions` in order: traffic first (SetWeight), then desired objects (ApplyObjects,
server-side apply), then removals (DeleteObjects), then the record (Promote/RollBack notifications,
RecordEvidence), then Kubernetes Events (EmitEvent). Then it writes `Decision.status` and schedules the
next look after `Decision.requeue_after` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tollgate.api.spec import RouterKind
from tollgate.api.status import ModelDeploymentStatus


@dataclass(frozen=True)
class Context:
    """Identity of the ModelDeployment being decided on (for object names and labels)."""

    name: str
    namespace: str
    uid: str
    generation: int


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(StrEnum):
    """Reasons of the Kubernetes Events Tollgate emits (also the timeline's vocabulary)."""

    SANDBOX_READY = "SandboxReady"
    CANARY_STARTED = "CanaryStarted"
    SUPERSEDED = "Superseded"
    STEP_ADVANCED = "StepAdvanced"
    ANALYSIS_PASSED = "AnalysisPassed"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_ERROR = "AnalysisError"
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
    stable_replicas: int
    canary_replicas: int
    fallback: bool = False
    """True: all traffic goes to the fallback track (kill switch)."""


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


@dataclass(frozen=True)
class RollBack:
    """Notification: traffic went back to stable `to_revision`; `revision` stays rolled back."""

    revision: str
    version: str
    to_revision: str | None
    reason: str
    incident: str
    cause: str = "analysis"
    """Why, as a short label for metrics: analysis, error (provider errors), deadline or abort."""


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


Action = SetWeight | ApplyObjects | DeleteObjects | Promote | RollBack | RecordEvidence | EmitEvent


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision: the new status, the actions, and when to look again."""

    status: ModelDeploymentStatus
    actions: tuple[Action, ...]
    requeue_after: float | None
    """Seconds until the engine wants to decide again (next analysis tick, end of a pause, a deadline);
    None: only when something changes (watch events)."""
    analysis_at: datetime | None = None
    """When the next analysis tick is due: the runtime measures the SLOs for the decision made at or
    after this time (pass them as Observations.slos). None: no analysis wanted."""

    def of_type(self, kind: type[Any]) -> tuple[Any, ...]:
        """The actions of one class, in order."""
        return tuple(a for a in self.actions if isinstance(a, kind))

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        return tuple(a for a in self.actions if isinstance(a, EmitEvent))

    @property
    def event_reasons(self) -> tuple[Reason, ...]:
        return tuple(e.reason for e in self.events)
