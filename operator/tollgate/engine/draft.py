"""The working draft of one decision: the status being written, and what the rules asked for on the way.

The rules (engine.rules) read and write `Draft.st`, a mutable copy of the persisted status with the
same typed fields (so strict mypy checks every read and write), append events and notices, and may
record one rollback. `engine.rules.finish` turns the draft into the Decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ConfigDict

from tollgate.api.controls import CONTROLS, ControlTokens
from tollgate.api.hook_status import HookPhase, HookStatus
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import (
    HISTORY_LIMIT,
    BakeStatus,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RevisionRef,
)
from tollgate.engine.actions import Action, Cause, Context, EmitEvent, EventType, Reason
from tollgate.engine.analysis import TickOutcome
from tollgate.engine.autoscale import canary_pods, stable_size
from tollgate.engine.observations import Observations, TrackObservation
from tollgate.engine.revision import desired_revision, revision_hash
from tollgate.engine.timeutil import format_time
from tollgate.model_digest import DigestMismatch


class StatusDraft(ModelDeploymentStatus):
    """ModelDeploymentStatus, writable: the fields are the status's own (one definition)."""

    model_config = ConfigDict(frozen=False)

    @classmethod
    def of(cls, status: ModelDeploymentStatus) -> StatusDraft:
        return cls.model_construct(**dict(status))

    def freeze(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus.model_construct(**dict(self))


def track_ready(track: TrackObservation, ref: RevisionRef | None, want: int) -> bool:
    """The track runs `ref` with at least `want` Ready, up-to-date pods."""
    if ref is None:
        return False
    return track.revision == ref.revision and track.ready >= want and track.updated >= want


def with_template(ref: RevisionRef | None, spec: ModelDeploymentSpec) -> RevisionRef | None:
    """`ref` when it can be rendered (carries model and runtime, or is the spec's own revision)."""
    if ref is None:
        return None
    if ref.model is not None and ref.runtime is not None:
        return ref
    if ref.revision == revision_hash(spec.model, spec.runtime):
        return desired_revision(spec)
    return None


def new_tokens(seen: ControlTokens, observed: ControlTokens) -> ControlTokens:
    """The control tokens not handled before (None: absent or already handled)."""
    return ControlTokens(**{
        c: observed.token(c) if observed.token(c) not in (None, seen.token(c)) else None for c in CONTROLS
    })


def seen_tokens(prev: ControlTokens, observed: ControlTokens, *, defer: frozenset[str]) -> ControlTokens:
    """The tokens handled after this decision: each observed token, except controls in `defer` (kept
    for a later decision, e.g. an approval that arrived while paused at the gate)."""
    return ControlTokens(**{
        c: prev.token(c) if c in defer or observed.token(c) is None else observed.token(c) for c in CONTROLS
    })


def _hook_line(h: HookStatus) -> str:
    """A hook in a history entry. One still running when its rollout ends is stopped (its Job is removed,
    engine.rules.hooks.live_hooks)."""
    phase = HookPhase.STOPPED if h.phase is HookPhase.RUNNING and h.job else h.phase
    return f"{h.name}: {phase.value}" + (" (ignored)" if h.ignored else "") + (f" (job {h.job})" if h.job else "")


@dataclass(frozen=True)
class RollbackRecord:
    """What a rollback in this decision ended, as it was at that moment (for the action and evidence)."""

    canary: RevisionRef
    stable: RevisionRef | None
    cause: Cause
    message: str
    incident: str
    step: int
    weight: int
    mirror: int = 0
    """Percent of requests mirrored to it (a shadow step: weight 0, no user got its answers)."""
    bake: BakeStatus | None = None
    """The bake window the version failed in (a rollback after promotion), else None."""
    digest: DigestMismatch | None = None
    """The model's bytes did not match spec.model.digest (the storage initializer refused them)."""


@dataclass
class Draft:
    spec: ModelDeploymentSpec
    prev: ModelDeploymentStatus
    obs: Observations
    now: datetime
    ctx: Context
    st: StatusDraft
    events: list[EmitEvent] = field(default_factory=list)
    notices: list[Action] = field(default_factory=list)
    rollback: RollbackRecord | None = None
    tick: TickOutcome | None = None
    timeline_from: int | None = None
    """Index into events where a new canary's timeline starts (None: continue the previous one)."""
    deferred: frozenset[str] = frozenset()
    """Controls whose new token is not handled in this decision (kept for a later one)."""
    apply: bool = True

    @classmethod
    def start(cls, spec: ModelDeploymentSpec, prev: ModelDeploymentStatus, obs: Observations, now: datetime,
              ctx: Context) -> Draft:
        return cls(spec, prev, obs, now, ctx, StatusDraft.of(prev))

    @property
    def replicas(self) -> int:
        """Pods of the stable track now: spec.replicas, or the autoscaler's current count (engine.autoscale)."""
        return stable_size(self.spec, self.obs.stable)

    def canary_pods(self, weight: int) -> int:
        """Canary pods the step of `weight` runs (sized from the stable track's current size when autoscaled)."""
        return canary_pods(self.spec, self.replicas, weight)

    @property
    def at(self) -> str:
        return format_time(self.now)

    def event(self, reason: Reason, message: str, *, warning: bool = False) -> None:
        kind = EventType.WARNING if warning else EventType.NORMAL
        self.events.append(EmitEvent(kind, reason, message))

    def history(self, ref: RevisionRef, result: str, reason: str, incident: str | None = None,
                acted_by: str | None = None) -> None:
        """A finished rollout, with who approved its gates (status.approvedBy, reset for each canary) and
        who ended it by a control, so the record keeps who acted after status moves on."""
        hooks = [_hook_line(h) for h in self.st.hooks if h.revision == ref.revision][:4]
        entry = HistoryEntry(revision=ref.revision, version=ref.version, result=result, reason=reason,
                             at=self.at, incident=incident, approvedBy=self.st.approvedBy, actedBy=acted_by,
                             hooks=hooks)
        self.st.history = [entry, *self.st.history][:HISTORY_LIMIT]

    def cut_canary(self) -> None:
        """Canary weight 0 and its progress reset (its Deployment is removed by the plan)."""
        st = self.st
        st.canaryWeight = 0
        st.canaryMirror = 0
        st.currentStep = 0
        st.stepStartedAt = None
        st.passedAnalyses = 0
        st.notReadySince = None
        st.promotingSince = None
        st.canaryReadyAt = None
        st.lastAnalysisAt = None

    def phase(self, phase: Phase, message: str) -> None:
        self.st.phase = phase
        self.st.message = message
