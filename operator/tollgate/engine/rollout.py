"""decide(): one pure step of the rollout state machine.

Inputs are the spec, the persisted status, what the runtime observed, `now` and the object's identity;
the output is the next status, the actions that get there, and when to look again. Nothing here reads
a clock, a cluster or Prometheus, so every rule below is replayable in a test.

The rules, in the order a decision applies them:

1. Invalid spec (gatewayAPI router without settings, bad durations, an empty or unsorted step plan)
   -> Stalled, nothing applied. A kill switch still takes the canary's weight to 0 in status.
2. Kill switch on -> canary weight 0 and the canary removed in this decision, whatever the phase;
   all traffic to the fallback (spec.fallback, else status.lastKnownGood) once it is Ready (stable
   serves until then); with no fallback at all -> Stalled, stable keeps serving. Kill switch off ->
   back to normal; an interrupted canary restarts at step one.
3. First deployment (nothing has served yet) -> straight to the stable track, no canary.
4. A new revision while a canary runs -> the canary is Superseded (history), all traffic back on
   stable, a new canary starts at step one. Replica or policy changes are not new revisions.
5. A revision that was rolled back stays rolled back until the spec changes it or a new
   tollgate.dev/retry token arrives.
6. Controls act once per distinct token: abort (roll back now, with evidence), promote (skip the
   remaining steps), approve (only while an approval gate is waiting; a token seen at any other time is
   recorded and ignored, so nothing is approved before a person saw the gate), retry.
7. spec.paused -> weights hold, analysis results are ignored, deadlines do not run; on resume the
   current step starts over (its pause and analysis count again from the resume).
8. Canary readiness: the canary must be fully Ready (pods of its revision) within progressDeadline of
   the moment the engine started waiting (canary start, a step's scale-up); past it -> roll back in
   that decision, and requeue_after points exactly at that deadline.
9. Analysis tick (Observations.slos is not None, the canary holds the weight of a step with
   `analysis: true`): verdicts per SLO (analysis.py);
   a limit crossed rolls back in the same decision (weight 0 now). Analysis is judged while awaiting
   approval and while promoting too: failures there still roll back.
10. Steps: a step is entered by setting its weight (after approval when it has a gate, and only when
    the canary is Ready); it completes when the canary is Ready, its pause has elapsed since it was
    entered, and (analysis steps) at least one analysis tick that ran in this step passed with no
    non-passing tick after it (an error, a failure within failureLimit or no verdict voids the earlier
    passes). Time the operator was down never counts as passed analysis. After the last step ->
    Promoting: the stable track rolls to the canary revision while the canary keeps serving; once
    stable is Ready on it the canary is removed, lastKnownGood updated -> Succeeded.

Weight invariant: the canary weight only rises when (a) the canary is Ready and the first step is
entered (0 -> steps[0].weight; after approval if that step has a gate), or (b) the previous step
completed (analysis steps: a pass recorded in that step) and the next step is entered (after approval
if it has a gate). Promote control does not raise it: promotion moves the stable track instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tollgate.api.spec import ApprovalMode, ModelDeploymentSpec, RouterKind
from tollgate.api.status import (
    HISTORY_LIMIT,
    TIMELINE_LIMIT,
    ControlsSeen,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RevisionRef,
    TimelineEntry,
)
from tollgate.engine import conditions as cond
from tollgate.engine.actions import (
    Action,
    ApplyObjects,
    Context,
    Decision,
    DeleteObjects,
    EmitEvent,
    EventType,
    ObjectRef,
    Promote,
    Reason,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.analysis import TickOutcome, assess
from tollgate.engine.evidence import evidence_payload, incident_name
from tollgate.engine.observations import Controls, Observations, TrackObservation
from tollgate.engine.observations import Track as TrackName
from tollgate.engine.policy import Policy, plan_problem, resolve_policy
from tollgate.engine.revision import desired_revision, fallback_revision, revision_hash
from tollgate.engine.routing import canary_replicas, split
from tollgate.engine.sandbox import sandbox_namespace, sandbox_objects
from tollgate.engine.timeutil import format_time, parse_duration, parse_time, require_aware
from tollgate.engine.workloads import TrackPlan, TrafficPlan, deployment_ref, workload_objects

ROLLOUT_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.AWAITING_APPROVAL, Phase.PROMOTING})


# ----------------------------------------------------------------------------------------------------
# Small pure helpers


def track_ready(track: TrackObservation, ref: RevisionRef | None, want: int) -> bool:
    """The track runs `ref` with at least `want` Ready, up-to-date pods."""
    if ref is None:
        return False
    return track.revision == ref.revision and track.ready >= want and track.updated >= want


@dataclass(frozen=True)
class _Tokens:
    """Control tokens not handled before (None: absent or already handled)."""

    approve: str | None
    promote: str | None
    abort: str | None
    retry: str | None


def _new_tokens(seen: ControlsSeen, observed: Controls) -> _Tokens:
    def new(value: str | None, old: str | None) -> str | None:
        return value if value is not None and value != old else None

    return _Tokens(
        approve=new(observed.approve, seen.approve),
        promote=new(observed.promote, seen.promote),
        abort=new(observed.abort, seen.abort),
        retry=new(observed.retry, seen.retry),
    )


def _with_template(ref: RevisionRef | None, spec: ModelDeploymentSpec) -> RevisionRef | None:
    """`ref` when it can be rendered (carries model and runtime, or is the spec's own revision)."""
    if ref is None:
        return None
    if ref.model is not None and ref.runtime is not None:
        return ref
    if ref.revision == revision_hash(spec.model, spec.runtime):
        return desired_revision(spec)
    return None


def _gate_waiting(status: ModelDeploymentStatus, policy: Policy) -> bool:
    """An approval gate is waiting: the current step has a gate and its weight is not set yet."""
    if status.canary is None or status.promotingSince is not None or status.killSwitchActive:
        return False
    if status.planHash != policy.plan_hash or status.currentStep >= len(policy.steps):
        return False
    step = policy.steps[status.currentStep]
    return step.approval is ApprovalMode.REQUIRED and status.canaryWeight != step.weight


def _judged(policy: Policy, weight: int) -> bool:
    """SLOs are judged at this weight: the step holding it has `analysis: true` (steps with
    `analysis: false` are not judged; an unknown weight, e.g. after a plan change, is judged)."""
    step = next((s for s in policy.steps if s.weight == weight), None)
    return weight > 0 and (step is None or step.analysis)


def next_analysis_at(policy: Policy, status: ModelDeploymentStatus) -> datetime | None:
    """When the next analysis tick is due for this status, or None when no analysis is wanted.

    Analysis runs while the canary takes traffic (weight > 0) and the rollout is not paused, one
    interval after the later of the step's start and the previous tick.
    """
    if status.canary is None or status.killSwitchActive or status.canaryWeight <= 0:
        return None
    if status.phase not in (Phase.PROGRESSING, Phase.AWAITING_APPROVAL, Phase.PROMOTING):
        return None
    if not _judged(policy, status.canaryWeight):
        return None
    anchors = [t for t in (parse_time(status.stepStartedAt), parse_time(status.lastAnalysisAt)) if t]
    if not anchors:
        return None
    return max(anchors) + timedelta(seconds=policy.interval_seconds)


def analysis_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """True when the runtime should measure the SLOs before calling decide() at `now`."""
    try:
        policy = resolve_policy(spec)
    except ValueError:
        return False
    due = next_analysis_at(policy, status)
    return due is not None and due <= require_aware(now)


# ----------------------------------------------------------------------------------------------------
# The working draft of one decision


@dataclass
class _RollbackRecord:
    canary: RevisionRef
    stable: RevisionRef | None
    result: str
    reason: Reason
    message: str
    incident: str
    step: int
    weight: int
    cause: str


@dataclass
class _Draft:
    spec: ModelDeploymentSpec
    prev: ModelDeploymentStatus
    obs: Observations
    now: datetime
    ctx: Context
    updates: dict[str, Any] = field(default_factory=dict)
    events: list[EmitEvent] = field(default_factory=list)
    notices: list[Action] = field(default_factory=list)
    rollback: _RollbackRecord | None = None
    tick: TickOutcome | None = None
    timeline_from: int | None = None
    """Index into events where a new canary's timeline starts (None: continue the previous one)."""
    defer_approve: bool = False
    apply: bool = True

    @property
    def at(self) -> str:
        return format_time(self.now)

    def get(self, key: str) -> Any:
        return self.updates[key] if key in self.updates else getattr(self.prev, key)

    @property
    def canary(self) -> RevisionRef | None:
        value: RevisionRef | None = self.get("canary")
        return value

    @property
    def stable(self) -> RevisionRef | None:
        value: RevisionRef | None = self.get("stable")
        return value

    def set(self, **values: Any) -> None:
        self.updates.update(values)

    def event(self, reason: Reason, message: str, *, warning: bool = False) -> None:
        kind = EventType.WARNING if warning else EventType.NORMAL
        self.events.append(EmitEvent(kind, reason, message))

    def history(self, ref: RevisionRef, result: str, reason: str, incident: str | None = None) -> None:
        entry = HistoryEntry(revision=ref.revision, version=ref.version, result=result, reason=reason,
                             at=self.at, incident=incident)
        self.set(history=[entry, *self.get("history")][:HISTORY_LIMIT])


# ----------------------------------------------------------------------------------------------------
# decide


def decide(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    obs: Observations,
    now: datetime,
    ctx: Context,
) -> Decision:
    """The next status, the actions to get there and when to look again (pure, deterministic)."""
    now = require_aware(now)
    d = _Draft(spec, status, obs, now, ctx)
    d.set(observedGeneration=ctx.generation, sandboxNamespace=sandbox_namespace(spec, ctx))
    tokens = _new_tokens(status.controls, obs.controls)
    if obs.sandbox_ready and not cond.is_true(status.conditions, cond.SANDBOX_READY):
        d.event(Reason.SANDBOX_READY, f"sandbox namespace {d.get('sandboxNamespace')} is ready")

    policy: Policy | None = None
    problem: str | None = None
    if spec.traffic.router is RouterKind.GATEWAY_API and spec.traffic.gatewayAPI is None:
        problem = "spec.traffic.router is gatewayAPI but spec.traffic.gatewayAPI is missing: add parentRefs"
    else:
        try:
            policy = resolve_policy(spec)
        except ValueError as exc:
            problem = f"spec has an invalid duration: {exc}"
    if problem is not None or policy is None:
        _stall(d, problem or "invalid spec", apply=False)
        return _finish(d, None, tokens)

    if spec.killSwitch:
        _kill_switch(d)
        return _finish(d, policy, tokens)
    if status.killSwitchActive:
        _kill_switch_off(d, policy)

    problem = plan_problem(policy)
    if problem is not None:
        _stall(d, problem, apply=False)
        return _finish(d, policy, tokens)
    _reconcile(d, policy, tokens)
    return _finish(d, policy, tokens)


# ----------------------------------------------------------------------------------------------------
# Rules


def _stall(d: _Draft, message: str, *, apply: bool) -> None:
    if d.prev.phase is not Phase.STALLED or d.prev.message != message:
        d.event(Reason.SPEC_INVALID, message, warning=True)
    d.set(phase=Phase.STALLED, message=message)
    d.apply = apply
    if d.spec.killSwitch:
        _cut_canary(d)
        d.set(killSwitchActive=True, fallback=None)


def _cut_canary(d: _Draft) -> None:
    """Canary weight 0 and its progress reset (its Deployment is removed by the plan)."""
    d.set(canaryWeight=0, currentStep=0, stepStartedAt=None, passedAnalyses=0, notReadySince=None,
          promotingSince=None, canaryReadyAt=None, lastAnalysisAt=None)


def _kill_switch(d: _Draft) -> None:
    if not d.prev.killSwitchActive:
        d.event(Reason.KILL_SWITCH_ON, "kill switch on: canary weight 0, traffic to the fallback",
                warning=True)
    _cut_canary(d)
    d.set(killSwitchActive=True)
    fallback = _with_template(fallback_revision(d.spec, d.prev), d.spec)
    stable = d.stable
    if fallback is None:
        message = ("kill switch is on but there is no fallback: set spec.fallback (no lastKnownGood yet); "
                   "canary at weight 0, stable keeps serving")
        if d.prev.phase is not Phase.STALLED or d.prev.message != message:
            d.event(Reason.SPEC_INVALID, message, warning=True)
        d.set(phase=Phase.STALLED, message=message, fallback=None)
        return
    separate = stable is None or fallback.revision != stable.revision
    ready = not separate or track_ready(d.obs.fallback, fallback, d.spec.replicas)
    if ready:
        d.set(phase=Phase.FALLBACK, fallback=fallback,
              message=f"kill switch on: all traffic on fallback {fallback.version} ({fallback.revision})")
    else:
        d.set(phase=Phase.FALLBACK, fallback=None,
              message=f"kill switch on: starting fallback {fallback.version}; canary at 0, stable serves "
                      f"until the fallback is Ready ({d.obs.fallback.ready}/{d.spec.replicas})")


def _kill_switch_off(d: _Draft, policy: Policy) -> None:
    d.event(Reason.KILL_SWITCH_OFF, "kill switch off: back to normal routing")
    d.set(killSwitchActive=False, fallback=None)
    if d.canary is not None:
        _restart_canary(d, policy, "kill switch off: the canary restarts at step 1")


def _restart_canary(d: _Draft, policy: Policy, message: str) -> None:
    _cut_canary(d)
    d.set(canaryStartedAt=d.at, notReadySince=d.at, analysis=[], planHash=policy.plan_hash,
          stepCount=len(policy.steps), phase=Phase.PROGRESSING, message=message)
    d.event(Reason.CANARY_STARTED, message)


def _reconcile(d: _Draft, policy: Policy, tokens: _Tokens) -> None:
    rev = desired_revision(d.spec)
    if d.stable is None or (d.get("lastKnownGood") is None and d.canary is None):
        _first_deployment(d, policy, rev)
        return
    canary = d.canary
    if canary is not None and canary.revision != rev.revision:
        reason = f"superseded by revision {rev.revision} (version {rev.version})"
        d.history(canary, "Superseded", reason)
        d.event(Reason.SUPERSEDED,
                f"canary {canary.version} ({canary.revision}) {reason}: traffic back on stable")
        _cut_canary(d)
        d.set(canary=None)
        canary = None
    stable = d.stable
    assert stable is not None
    if canary is None:
        if rev.revision == stable.revision:
            _steady(d)
        elif rev.revision == d.get("rolledBackRevision"):
            if tokens.retry is not None:
                d.event(Reason.RETRIED,
                        f"retry of rolled-back revision {rev.revision} requested by {tokens.retry}")
                d.set(rolledBackRevision=None)
                _start_canary(d, policy, rev)
            else:
                _rolled_back(d)
        else:
            _start_canary(d, policy, rev)
        return
    _progress(d, policy, tokens)


def _first_deployment(d: _Draft, policy: Policy, rev: RevisionRef) -> None:
    stable = d.stable
    if stable is None or stable.revision != rev.revision:
        d.set(stable=rev, notReadySince=d.at)
    if track_ready(d.obs.stable, rev, d.spec.replicas):
        d.set(phase=Phase.STABLE, lastKnownGood=rev, notReadySince=None,
              message=f"serving {rev.version} ({rev.revision})")
        d.event(Reason.DEPLOYED, f"version {rev.version} ({rev.revision}) is serving")
        return
    since = parse_time(d.get("notReadySince")) or d.now
    d.set(notReadySince=format_time(since), phase=Phase.PENDING)
    ready = d.obs.stable.ready if d.obs.stable.revision == rev.revision else 0
    if _deadline_passed(since, policy, d.now):
        message = (f"first version {rev.version} not Ready within {policy.progress_deadline_seconds:g}s "
                   f"({ready}/{d.spec.replicas} pods Ready)")
        if d.prev.message != message:
            d.event(Reason.PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
        d.set(message=message)
    else:
        d.set(message=f"deploying {rev.version}: {ready}/{d.spec.replicas} pods Ready")


def _deadline_passed(since: datetime, policy: Policy, now: datetime) -> bool:
    return now >= since + timedelta(seconds=policy.progress_deadline_seconds)


def _steady(d: _Draft) -> None:
    stable = d.stable
    assert stable is not None
    promoted = d.prev.phase in (Phase.PROMOTING, Phase.SUCCEEDED)
    phase = Phase.SUCCEEDED if promoted else Phase.STABLE
    ready = track_ready(d.obs.stable, stable, d.spec.replicas)
    message = f"serving {stable.version} ({stable.revision})"
    if not ready:
        message += f"; {d.obs.stable.ready}/{d.spec.replicas} pods Ready"
    d.set(phase=phase, message=message, canaryWeight=0, promotingSince=None, notReadySince=None)


def _rolled_back(d: _Draft) -> None:
    stable = d.stable
    assert stable is not None
    revision = d.get("rolledBackRevision")
    ready = track_ready(d.obs.stable, stable, d.spec.replicas)
    phase = Phase.ROLLED_BACK if ready else Phase.ROLLING_BACK
    tail = "" if ready else f"; stable {d.obs.stable.ready}/{d.spec.replicas} pods Ready"
    d.set(phase=phase, canaryWeight=0,
          message=f"revision {revision} was rolled back ({d.get('lastIncident')}); all traffic on "
                  f"{stable.version}. Change the spec or set tollgate.dev/retry to try again{tail}")


def _start_canary(d: _Draft, policy: Policy, rev: RevisionRef) -> None:
    _cut_canary(d)
    d.timeline_from = len(d.events)
    d.set(canary=rev, canaryStartedAt=d.at, notReadySince=d.at, analysis=[], approvedBy=None,
          planHash=policy.plan_hash, stepCount=len(policy.steps), phase=Phase.PROGRESSING,
          message=f"canary {rev.version} ({rev.revision}) starting: waiting for its pods")
    if d.get("rolledBackRevision") not in (None, rev.revision):
        d.set(rolledBackRevision=None)
    stable = d.stable
    d.event(Reason.CANARY_STARTED,
            f"canary {rev.version} ({rev.revision}) started against stable "
            f"{stable.version if stable else '-'}; {len(policy.steps)} steps up to {policy.max_weight}%")


def _progress(d: _Draft, policy: Policy, tokens: _Tokens) -> None:
    canary = d.canary
    assert canary is not None
    spec = d.spec
    if d.get("planHash") != policy.plan_hash:
        _restart_canary(d, policy, "rollout steps changed: the canary restarts at step 1")
    promoting = d.get("promotingSince") is not None
    gate_waiting = _gate_waiting(d.prev, policy)

    if tokens.abort is not None:
        _roll_back(d, policy, Reason.ABORTED, f"aborted by tollgate.dev/abort={tokens.abort}", "Aborted",
                   cause="abort")
        return
    if tokens.promote is not None and not promoting:
        _start_promotion(d, f"promote control by tollgate.dev/promote={tokens.promote}: skipping the "
                            "remaining steps")
        promoting = True

    if spec.paused and not promoting:
        if d.prev.phase is not Phase.PAUSED:
            d.event(Reason.PAUSED, "rollout paused (spec.paused): weights hold, analysis does not count")
        d.set(phase=Phase.PAUSED, notReadySince=None,
              message=f"paused at step {d.get('currentStep') + 1}/{len(policy.steps)}, "
                      f"canary weight {d.get('canaryWeight')}%")
        d.defer_approve = gate_waiting
        return
    if d.prev.phase is Phase.PAUSED and not promoting:
        d.event(Reason.RESUMED, "rollout resumed: the current step starts over")
        # Only a step that was entered starts over. Paused at a gate, the canary still holds the
        # previous step's weight; that step completed with its pass before the pause, and wiping
        # the pass would leave a later weight rise without the pass it was granted on.
        if d.get("canaryWeight") > 0 and d.get("canaryWeight") == policy.steps[d.get("currentStep")].weight:
            d.set(stepStartedAt=d.at, passedAnalyses=0)

    weight: int = d.get("canaryWeight")
    target = weight if weight > 0 else policy.steps[0].weight
    want = canary_replicas(spec.replicas, target)
    ready = track_ready(d.obs.canary, canary, want)
    if not promoting:
        if ready:
            if d.get("canaryReadyAt") is None:
                d.set(canaryReadyAt=d.at)
            d.set(notReadySince=None)
        else:
            since = parse_time(d.get("notReadySince")) or d.now
            d.set(notReadySince=format_time(since))
            if _deadline_passed(since, policy, d.now):
                have = d.obs.canary.ready if d.obs.canary.revision == canary.revision else 0
                message = (f"canary {canary.version} not Ready within {policy.progress_deadline_seconds:g}s "
                           f"({have}/{want} pods Ready)")
                d.event(Reason.PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
                _roll_back(d, policy, Reason.ROLLED_BACK, message, "RolledBack", cause="deadline")
                return

    step_index: int = d.get("currentStep")
    entered = not promoting and weight == policy.steps[step_index].weight
    if d.obs.slos is not None and _judged(policy, weight):
        tick = assess(policy.slos, d.get("analysis"), d.obs.slos, d.now,
                      failure_limit=policy.failure_limit,
                      consecutive_error_limit=policy.consecutive_error_limit)
        d.tick = tick
        d.set(analysis=list(tick.slos), lastAnalysisAt=d.at)
        if tick.failing:
            d.event(Reason.ANALYSIS_FAILED, _describe(tick, "failing"), warning=True)
        if tick.erroring:
            d.event(Reason.ANALYSIS_ERROR, _describe(tick, "erroring"), warning=True)
        if tick.must_roll_back:
            why = []
            if tick.failed:
                why.append(f"failures over failureLimit {policy.failure_limit}: {', '.join(tick.failed)}")
            if tick.errored:
                why.append(f"provider errors over consecutiveErrorLimit {policy.consecutive_error_limit} "
                           f"(failing closed): {', '.join(tick.errored)}")
            _roll_back(d, policy, Reason.ROLLED_BACK, "; ".join(why), "RolledBack",
                       cause="error" if tick.errored else "analysis")
            return
        if tick.passed and entered and ready:
            passes = d.get("passedAnalyses") + 1
            d.set(passedAnalyses=passes)
            if passes == 1:
                d.event(Reason.ANALYSIS_PASSED,
                        f"step {step_index + 1}/{len(policy.steps)} at {weight}%: every SLO passed")
        elif entered and not tick.passed:
            # The step completes on its latest verdicts, not on a pass from before: a tick that
            # errored (Prometheus down), failed within failureLimit or had no verdict voids the
            # earlier passes, so a step never completes (nor promotes) while the SLOs are unknown.
            d.set(passedAnalyses=0)

    if promoting:
        _promotion_progress(d, policy)
        return
    _advance(d, policy, tokens, ready=ready, gate_waiting=gate_waiting)


def _describe(tick: TickOutcome, which: str) -> str:
    names = set(tick.failing if which == "failing" else tick.erroring)
    parts = [
        f"{s.name}: {s.verdict} value={s.value} baseline={s.baseline} ({s.threshold}; samples {s.samples}, "
        f"failures {s.failures}, consecutive errors {s.consecutiveErrors})"
        for s in tick.slos if s.name in names
    ]
    return "; ".join(parts)


def _advance(d: _Draft, policy: Policy, tokens: _Tokens, *, ready: bool, gate_waiting: bool) -> None:
    steps = policy.steps
    canary = d.canary
    assert canary is not None
    for _ in range(len(steps) + 1):
        index: int = d.get("currentStep")
        step = steps[index]
        weight: int = d.get("canaryWeight")
        label = f"step {index + 1}/{len(steps)}"
        if weight != step.weight:
            if step.approval is ApprovalMode.REQUIRED:
                if gate_waiting and tokens.approve is not None:
                    d.set(approvedBy=tokens.approve)
                    d.event(Reason.APPROVED, f"{label} ({step.weight}%) approved by {tokens.approve}")
                    gate_waiting = False
                else:
                    if d.prev.phase is not Phase.AWAITING_APPROVAL or d.prev.currentStep != index:
                        d.event(Reason.AWAITING_APPROVAL,
                                f"{label} ({step.weight}%) waits for approval: annotate "
                                f"tollgate.dev/approve=<who> on {d.ctx.namespace}/{d.ctx.name}")
                    d.set(phase=Phase.AWAITING_APPROVAL,
                          message=f"{label} waits for approval (tollgate.dev/approve) before {step.weight}%; "
                                  f"canary at {weight}%")
                    return
            if not ready:
                d.set(phase=Phase.PROGRESSING,
                      message=f"{label}: waiting for canary pods to be Ready before {step.weight}%")
                return
            d.set(canaryWeight=step.weight, stepStartedAt=d.at, passedAnalyses=0, phase=Phase.PROGRESSING)
            d.event(Reason.STEP_ADVANCED, f"{label}: canary weight {weight}% -> {step.weight}%")
            want = canary_replicas(d.spec.replicas, step.weight)
            if not track_ready(d.obs.canary, canary, want):
                ready = False
                d.set(notReadySince=d.at)
            continue
        started = parse_time(d.get("stepStartedAt")) or d.now
        pause = parse_duration(step.pause) if step.pause else 0.0
        pause_left = (started + timedelta(seconds=pause) - d.now).total_seconds()
        analysed = not step.analysis or d.get("passedAnalyses") >= 1
        if not (ready and pause_left <= 0 and analysed):
            waits = []
            if not ready:
                waits.append("canary pods to be Ready")
            if pause_left > 0:
                waits.append(f"pause ({pause_left:.0f}s left)")
            if not analysed:
                waits.append("a passing analysis")
            d.set(phase=Phase.PROGRESSING, message=f"{label} at {weight}%: waiting for {', '.join(waits)}")
            return
        if index == len(steps) - 1:
            _start_promotion(d, f"all {len(steps)} steps passed")
            _promotion_progress(d, policy)
            return
        d.set(currentStep=index + 1)  # passedAnalyses resets when the next step is entered


def _start_promotion(d: _Draft, why: str) -> None:
    canary = d.canary
    assert canary is not None
    d.set(promotingSince=d.at, phase=Phase.PROMOTING, notReadySince=None,
          message=f"promoting {canary.version}: {why}")
    d.event(Reason.PROMOTING, f"promoting {canary.version} ({canary.revision}): {why}")


def _promotion_progress(d: _Draft, policy: Policy) -> None:
    canary = d.canary
    assert canary is not None
    previous = d.stable
    if track_ready(d.obs.stable, canary, d.spec.replicas):
        d.history(canary, "Promoted", d.get("message"))
        d.notices.append(Promote(canary.revision, canary.version, previous.revision if previous else None))
        d.event(Reason.PROMOTED, f"{canary.version} ({canary.revision}) is stable")
        _cut_canary(d)
        d.set(stable=canary, lastKnownGood=canary, canary=None, phase=Phase.SUCCEEDED,
              message=f"serving {canary.version} ({canary.revision}); promoted")
        return
    since = parse_time(d.get("promotingSince")) or d.now
    if _deadline_passed(since, policy, d.now):
        message = (f"stable track not Ready on {canary.version} within "
                   f"{policy.progress_deadline_seconds:g}s of promotion")
        d.event(Reason.PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
        _roll_back(d, policy, Reason.ROLLED_BACK, message, "RolledBack", cause="deadline")
        return
    have = d.obs.stable.ready if d.obs.stable.revision == canary.revision else 0
    d.set(phase=Phase.PROMOTING,
          message=f"promoting {canary.version}: stable track {have}/{d.spec.replicas} pods Ready on it")


def _roll_back(d: _Draft, policy: Policy, reason: Reason, message: str, result: str, *, cause: str) -> None:
    canary = d.canary
    assert canary is not None
    incident = incident_name(d.ctx, canary.revision, d.at, result)
    d.rollback = _RollbackRecord(
        canary=canary, stable=d.stable, result=result, reason=reason, message=message, incident=incident,
        step=d.get("currentStep"), weight=d.get("canaryWeight"), cause=cause,
    )
    d.history(canary, result, message, incident)
    d.event(reason, f"{canary.version} ({canary.revision}): {message}; evidence {incident}", warning=True)
    step = d.get("currentStep")
    _cut_canary(d)
    d.set(canary=None, rolledBackRevision=canary.revision, lastIncident=incident, currentStep=step)
    _rolled_back(d)


# ----------------------------------------------------------------------------------------------------
# Finishing: status, conditions, objects, actions, requeue


def _seen(prev: ControlsSeen, observed: Controls, defer_approve: bool) -> ControlsSeen:
    def keep(value: str | None, old: str | None) -> str | None:
        return value if value is not None else old

    return ControlsSeen(
        approve=prev.approve if defer_approve else keep(observed.approve, prev.approve),
        promote=keep(observed.promote, prev.promote),
        abort=keep(observed.abort, prev.abort),
        retry=keep(observed.retry, prev.retry),
    )


def _plan(spec: ModelDeploymentSpec, policy: Policy, st: ModelDeploymentStatus) -> TrafficPlan:
    replicas = spec.replicas
    stable_ref = _with_template(st.stable, spec)
    if spec.killSwitch or st.killSwitchActive:
        fallback = _with_template(fallback_revision(spec, st), spec)
        separate = fallback is not None and (st.stable is None or fallback.revision != st.stable.revision)
        return TrafficPlan(
            stable=TrackPlan(stable_ref, replicas) if stable_ref is not None else None,
            canary=None,
            fallback=TrackPlan(fallback, replicas) if separate and fallback is not None else None,
            canary_weight=0,
            to_fallback=separate and st.fallback is not None,
        )
    canary_ref = _with_template(st.canary, spec)
    if canary_ref is None or not policy.steps:
        return TrafficPlan(TrackPlan(stable_ref, replicas) if stable_ref else None, None, None, 0, False)
    weight = st.canaryWeight
    traffic = split(spec.traffic.router, replicas, weight)
    if st.promotingSince is not None:
        stable_plan: TrackPlan | None = TrackPlan(canary_ref, replicas)
    else:
        stable_plan = TrackPlan(stable_ref, traffic.stable_replicas) if stable_ref else None
    target = weight if weight > 0 else policy.steps[0].weight
    return TrafficPlan(
        stable=stable_plan,
        canary=TrackPlan(canary_ref, canary_replicas(replicas, target)),
        fallback=None,
        canary_weight=weight,
        to_fallback=False,
    )


def _conditions(
    d: _Draft, st: ModelDeploymentStatus, policy: Policy | None
) -> list[Any]:
    phase = st.phase
    stable_ready = track_ready(d.obs.stable, st.stable, d.spec.replicas)
    pending_late = (
        phase is Phase.PENDING and policy is not None and st.notReadySince is not None
        and _deadline_passed(parse_time(st.notReadySince) or d.now, policy, d.now)
    )
    ready = (phase in (Phase.STABLE, Phase.SUCCEEDED) and stable_ready) or (
        phase is Phase.FALLBACK and st.fallback is not None)
    stalled = phase in (Phase.STALLED, Phase.ROLLING_BACK, Phase.ROLLED_BACK) or pending_late
    reconciling = not ready and not stalled
    stalled_reason = "ProgressDeadlineExceeded" if pending_late else (
        "SpecInvalid" if phase is Phase.STALLED else "RolledBack")
    wanted = [
        cond.Want(cond.READY, ready, phase.value if ready else "NotReady", st.message),
        cond.Want(cond.RECONCILING, reconciling, phase.value, st.message),
        cond.Want(cond.STALLED, stalled, stalled_reason, st.message),
        cond.Want(cond.SANDBOX_READY, d.obs.sandbox_ready,
                  "SandboxReady" if d.obs.sandbox_ready else "SandboxNotReady",
                  f"namespace {st.sandboxNamespace}"),
        cond.Want(cond.PROGRESSING, st.canary is not None and phase in ROLLOUT_PHASES, phase.value,
                  st.message if st.canary is not None else "no rollout in progress"),
        cond.Want(cond.AWAITING_APPROVAL, phase is Phase.AWAITING_APPROVAL, phase.value,
                  st.message if phase is Phase.AWAITING_APPROVAL else ""),
        cond.Want(cond.ROLLED_BACK, phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), phase.value,
                  f"incident {st.lastIncident}" if phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) else ""),
    ]
    return cond.merge(d.prev.conditions, wanted, d.now, d.ctx.generation)


def _timeline(d: _Draft, st: ModelDeploymentStatus) -> list[TimelineEntry]:
    start = d.timeline_from
    base = [] if start is not None else list(d.prev.timeline)
    events = d.events[start:] if start is not None else d.events
    entries = [
        TimelineEntry(at=d.at, reason=e.reason.value, message=e.message, step=st.currentStep,
                      weight=st.canaryWeight)
        for e in events
    ]
    return [*base, *entries][-TIMELINE_LIMIT:]


def _routing_key(st: ModelDeploymentStatus) -> tuple[int, bool]:
    return (st.canaryWeight if st.canary is not None else 0, st.fallback is not None)


def _finish(d: _Draft, policy: Policy | None, tokens: _Tokens) -> Decision:
    del tokens
    d.set(controls=_seen(d.prev.controls, d.obs.controls, d.defer_approve))
    if d.spec.killSwitch:
        d.set(canaryWeight=0)
    st = d.prev.model_copy(update=d.updates)
    st = st.model_copy(update={"timeline": _timeline(d, st)})
    st = st.model_copy(update={"conditions": _conditions(d, st, policy)})

    actions: list[Action] = []
    if d.apply and policy is not None:
        plan = _plan(d.spec, policy, st)
        ns = sandbox_namespace(d.spec, d.ctx)
        if _routing_key(st) != _routing_key(d.prev):
            traffic = split(d.spec.traffic.router, d.spec.replicas, plan.canary_weight)
            actions.append(SetWeight(
                router=d.spec.traffic.router,
                canary_weight=plan.canary_weight,
                stable_replicas=plan.stable.replicas if plan.stable else 0,
                canary_replicas=plan.canary.replicas if plan.canary else traffic.canary_replicas,
                fallback=plan.to_fallback,
            ))
        objects = (*sandbox_objects(d.spec, d.ctx), *workload_objects(d.spec, d.ctx, plan))
        actions.append(ApplyObjects(objects))
        deletes: list[ObjectRef] = []
        if plan.canary is None and d.obs.canary.revision is not None:
            deletes.append(deployment_ref(d.ctx, ns, TrackName.CANARY))
        if plan.fallback is None and d.obs.fallback.revision is not None:
            deletes.append(deployment_ref(d.ctx, ns, TrackName.FALLBACK))
        if deletes:
            actions.append(DeleteObjects(tuple(deletes)))
    actions.extend(d.notices)
    if d.rollback is not None and policy is not None:
        rb = d.rollback
        actions.append(RollBack(rb.canary.revision, rb.canary.version,
                                rb.stable.revision if rb.stable else None, rb.message, rb.incident, rb.cause))
        actions.append(RecordEvidence(rb.incident, evidence_payload(
            ctx=d.ctx, incident=rb.incident, result=rb.result, reason=rb.reason.value, message=rb.message,
            at=d.at, canary=rb.canary, stable=rb.stable, step=rb.step, weight=rb.weight, policy=policy,
            analysis=st.analysis, observations=d.obs.slos, timeline=st.timeline,
        )))
    actions.extend(d.events)

    analysis_at = next_analysis_at(policy, st) if policy is not None else None
    return Decision(status=st, actions=tuple(actions), requeue_after=_requeue(d, policy, st, analysis_at),
                    analysis_at=analysis_at)


def _requeue(
    d: _Draft, policy: Policy | None, st: ModelDeploymentStatus, analysis_at: datetime | None
) -> float | None:
    if policy is None or st.phase is Phase.STALLED or st.killSwitchActive:
        return None
    deadline = timedelta(seconds=policy.progress_deadline_seconds)
    times: list[datetime] = []
    waiting = parse_time(st.notReadySince)
    if waiting is not None and (st.canary is not None or st.phase is Phase.PENDING):
        times.append(waiting + deadline)
    promoting = parse_time(st.promotingSince)
    if promoting is not None and st.canary is not None:
        times.append(promoting + deadline)
    started = parse_time(st.stepStartedAt)
    if st.canary is not None and started is not None and st.phase is Phase.PROGRESSING and policy.steps:
        step = policy.steps[min(st.currentStep, len(policy.steps) - 1)]
        if step.pause and st.canaryWeight == step.weight:
            times.append(started + timedelta(seconds=parse_duration(step.pause)))
    future = [t for t in times if t > d.now]
    if analysis_at is not None:
        future.append(max(analysis_at, d.now))
    if not future:
        return None
    return (min(future) - d.now).total_seconds()
