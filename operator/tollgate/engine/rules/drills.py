"""Drills (rule 2b): rehearse the kill switch or a rollback on a live ModelDeployment, and time it.

- A new tollgate.dev/drill-kill-switch or drill-rollback token starts a drill, or is refused with the
  reason and the fix in status.lastDrill (engine.drills.drill_refusal): nothing moves then.
- kill-switch: the kill switch's rules run as if spec.killSwitch were on (canary none, all traffic to
  the fallback once it is Ready). The first decision that observes every request going to the fallback
  (Observations.routing) with all its pods Ready records fallbackAt; in that same decision the switch is
  released (traffic back on stable), and the first decision that observes traffic off the fallback on a
  Ready stable records restoredAt: Passed. Not there within progressDeadline: Failed, released.
- rollback: the canary is rolled back as tollgate.dev/abort does (evidence and history say DrillRolledBack,
  who asked in actedBy), and the first decision that observes every request going to a Ready stable
  records fallbackAt: Passed. The revision stays rolled back until retried; traffic never returns to it.
- A real kill switch or a new revision interrupts a drill (Interrupted): the real change wins.
- While a kill-switch drill holds traffic on the fallback (its first decision included), a retry that would
  act waits, unhandled, until the switch is released (engine.rules.kill_switch.hold_retry).

Times are differences of decision times (`now`, supplied by the runtime with its observations); the
end of a drill emits DrillRecorded for the operator's metric tollgate_drill_seconds.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from tollgate.api.controls import ControlTokens
from tollgate.api.drills import DrillKind, DrillOutcome, DrillStatus
from tollgate.api.status import HISTORY_LIMIT, HistoryEntry, RevisionRef
from tollgate.engine.actions import Cause, Decision, DrillRecorded, Reason
from tollgate.engine.draft import Draft, track_ready
from tollgate.engine.drills import drill_fallback, drill_refusal
from tollgate.engine.observations import Track
from tollgate.engine.policy import Policy
from tollgate.engine.revision import desired_revision
from tollgate.engine.rules.kill_switch import kill_switch_off, kill_switch_on
from tollgate.engine.rules.rollback import roll_back
from tollgate.engine.timeutil import parse_time, seconds_between

KILL_SWITCH_DRILL_RESULT = "KillSwitchDrill"
"""The history entry's result of a kill-switch drill (a rollback drill's is DrillRolledBack)."""


def requested(tokens: ControlTokens) -> list[tuple[DrillKind, str]]:
    """The drills asked for by new tokens, in a fixed order."""
    out = []
    for kind in DrillKind:
        token = tokens.token(kind.control)
        if token is not None:
            out.append((kind, token))
    return out


def refuse_new(d: Draft, tokens: ControlTokens, why: str) -> None:
    """Every new drill request is refused with `why` (the decision cannot run one now)."""
    for kind, token in requested(tokens):
        _refuse(d, kind, token, why)


def _refuse(d: Draft, kind: DrillKind, token: str, why: str) -> None:
    """Status keeps a running drill's record (the refusal is then in the event alone)."""
    if d.st.lastDrill is None or not d.st.lastDrill.active:
        d.st.lastDrill = DrillStatus(kind=kind, requestedBy=token, outcome=DrillOutcome.REFUSED, message=why)
    d.event(Reason.DRILL_REFUSED, f"{kind} drill requested by {token} refused: {why}", warning=True)
    d.notices.append(DrillRecorded(kind.value, DrillOutcome.REFUSED.value, None))


def start(d: Draft, policy: Policy, tokens: ControlTokens) -> bool:
    """New drill requests: each is refused, or one starts. True when a drill started in this decision
    (its rules made the whole decision: finish it)."""
    started = False
    for kind, token in requested(tokens):
        if started:
            _refuse(d, kind, token, "another drill started in the same decision; ask again once it ends")
            continue
        why = drill_refusal(kind, d.spec, d.st, d.ctx.name)
        if why is not None:
            _refuse(d, kind, token, why)
            continue
        started = True
        if kind is DrillKind.KILL_SWITCH:
            _start_kill_switch(d, token)
        else:
            _start_rollback(d, token)
    return started


def _start_kill_switch(d: Draft, token: str) -> None:
    stable, fallback = d.st.stable, drill_fallback(d.spec, d.st)
    assert stable is not None and fallback is not None
    d.st.lastDrill = DrillStatus(
        kind=DrillKind.KILL_SWITCH, requestedBy=token, outcome=DrillOutcome.RUNNING, startedAt=d.at,
        fromVersion=stable.version, fromRevision=stable.revision, toVersion=fallback.version,
        message=f"moving all traffic from {stable.version} to fallback {fallback.version}")
    d.event(Reason.DRILL_STARTED, f"kill-switch drill requested by {token}: all traffic to fallback "
                                  f"{fallback.version}, timed, then back to {stable.version}")
    _fall_back(d)


def _start_rollback(d: Draft, token: str) -> None:
    canary, stable = d.st.canary, d.st.stable
    assert canary is not None and stable is not None
    roll_back(d, Cause.DRILL, f"rollback drill requested by tollgate.dev/drill-rollback={token}: a rehearsal, "
                              "not a regression", acted_by=token)
    d.st.lastDrill = DrillStatus(
        kind=DrillKind.ROLLBACK, requestedBy=token, outcome=DrillOutcome.RUNNING, startedAt=d.at,
        fromVersion=canary.version, fromRevision=canary.revision, toVersion=stable.version,
        incident=d.st.lastIncident, message=f"rolling canary {canary.version} back to stable {stable.version}")
    d.event(Reason.DRILL_STARTED, f"rollback drill requested by {token}: canary {canary.version} rolled back "
                                  f"to {stable.version}, timed")


def _fall_back(d: Draft) -> None:
    """The kill switch's rules while a kill-switch drill falls back, with the drill's words."""
    kill_switch_on(d, drill=True)
    drill = d.st.lastDrill
    assert drill is not None
    where = "all traffic on" if d.st.fallback is not None else "starting"
    d.phase(d.st.phase, f"kill-switch drill (requested by {drill.requestedBy}): {where} fallback {drill.toVersion}"
                        f"; then back to {drill.fromVersion}. {d.st.message}")


def kill_switch_drill(d: Draft, policy: Policy) -> bool:
    """A kill-switch drill falling back: measured once all traffic is observed on the fallback, then
    released. True while it still falls back (the kill switch's rules made the decision)."""
    drill = d.st.lastDrill
    if drill is None or not drill.active or drill.kind is not DrillKind.KILL_SWITCH or drill.fallbackAt is not None:
        return False
    # A change of spec.model ends it; the spec's own revision when it is the rolled-back one is no change (a
    # drill after a rollback: the spec still names the version that failed, stable serves).
    if desired_revision(d.spec).revision not in (drill.fromRevision, d.prev.rolledBackRevision):
        _end(d, policy, DrillOutcome.INTERRUPTED, f"interrupted: spec.model changed to {d.spec.model.version} "
                                                  "before traffic reached the fallback")
        kill_switch_off(d, policy, drill=True)
        return False
    fallback = drill_fallback(d.spec, d.st)
    if fallback is not None and _all_on(d, Track.FALLBACK, fallback):
        seconds = _since(d, drill.startedAt)
        d.st.lastDrill = drill.model_copy(update={
            "fallbackAt": d.at, "secondsToFallback": seconds,
            "message": f"all traffic on fallback {drill.toVersion} after {seconds:.2f}s; going back to "
                       f"{drill.fromVersion}"})
        d.event(Reason.DRILL_MEASURED, f"kill-switch drill: all traffic on fallback {drill.toVersion} "
                                       f"{seconds:.2f}s after the switch; switching back to {drill.fromVersion}")
        kill_switch_off(d, policy, drill=True)
        return False
    if _overdue(d, policy, drill.startedAt):
        seen = _where(d, Track.FALLBACK, fallback)
        _end(d, policy, DrillOutcome.FAILED, f"traffic did not reach fallback {drill.toVersion} within "
                                             f"{policy.progress_deadline_seconds:g}s{seen}; switched back: fix "
                                             "the fallback before you need it")
        kill_switch_off(d, policy, drill=True)
        return False
    _fall_back(d)
    return True


def follow(d: Draft, policy: Policy) -> None:
    """After the rollout's rules: measure a rollback drill, and the kill-switch drill's way back."""
    drill = d.st.lastDrill
    if drill is None or not drill.active:
        return
    stable = d.st.stable
    if drill.kind is DrillKind.ROLLBACK:
        if d.st.canary is not None:
            _end(d, policy, DrillOutcome.INTERRUPTED, f"interrupted: canary {d.st.canary.version} started before "
                                                      "stable took all traffic")
        elif stable is not None and _all_on(d, Track.STABLE, stable):
            seconds = _since(d, drill.startedAt)
            d.st.lastDrill = drill.model_copy(update={"fallbackAt": d.at, "secondsToFallback": seconds})
            _end(d, policy, DrillOutcome.PASSED, f"all traffic on stable {drill.toVersion} {seconds:.2f}s after "
                                                 f"the rollback; {drill.fromVersion} stays rolled back until "
                                                 "retried (tollgate.dev/retry)")
        elif _overdue(d, policy, drill.startedAt):
            seen = _where(d, Track.STABLE, stable)
            _end(d, policy, DrillOutcome.FAILED, f"traffic did not reach stable {drill.toVersion} within "
                                                 f"{policy.progress_deadline_seconds:g}s{seen}; {drill.fromVersion} "
                                                 "stays rolled back")
        return
    if drill.fallbackAt is None:
        return
    routing = d.obs.routing
    if (stable is not None and routing is not None and routing.sole is not Track.FALLBACK
            and track_ready(d.obs.stable, stable, d.replicas)):
        back = _since(d, drill.fallbackAt)
        d.st.lastDrill = drill.model_copy(update={"restoredAt": d.at, "secondsToRestore": back})
        _end(d, policy, DrillOutcome.PASSED, f"all traffic on fallback {drill.toVersion} after "
                                             f"{drill.secondsToFallback:.2f}s; back on {stable.version} after "
                                             f"{back:.2f}s more")
    elif _overdue(d, policy, drill.fallbackAt):
        _end(d, policy, DrillOutcome.FAILED, f"traffic reached fallback {drill.toVersion} after "
                                             f"{drill.secondsToFallback:.2f}s but was not back on a Ready stable "
                                             f"within {policy.progress_deadline_seconds:g}s"
                                             f"{_where(d, Track.STABLE, stable)}")


def interrupt(d: Draft, policy: Policy | None, why: str) -> None:
    """A real change took over (the kill switch turned on, a spec that cannot be acted on)."""
    drill = d.st.lastDrill
    if drill is not None and drill.active:
        _end(d, policy, DrillOutcome.INTERRUPTED, f"interrupted: {why}")


def _end(d: Draft, policy: Policy | None, outcome: DrillOutcome, message: str) -> None:
    drill = d.st.lastDrill
    assert drill is not None
    drill = drill.model_copy(update={"outcome": outcome, "message": message})
    d.st.lastDrill = drill
    reason = {DrillOutcome.PASSED: Reason.DRILL_PASSED, DrillOutcome.FAILED: Reason.DRILL_FAILED}.get(
        outcome, Reason.DRILL_INTERRUPTED)
    d.event(reason, f"{drill.kind} drill requested by {drill.requestedBy} {outcome.value.lower()}: {message}",
            warning=outcome is not DrillOutcome.PASSED)
    d.notices.append(DrillRecorded(drill.kind.value, outcome.value, drill.secondsToFallback))
    entry = f"{drill.kind} drill {outcome.value}: {message}"
    if drill.kind is DrillKind.ROLLBACK:
        # The rollback's own entry (written when it started, who asked in actedBy) gets the outcome.
        d.st.history = [h.model_copy(update={"reason": entry}) if h.incident and h.incident == drill.incident else h
                        for h in d.st.history]
        return
    d.st.history = [HistoryEntry(revision=drill.fromRevision or "", version=drill.fromVersion or "",
                                 result=KILL_SWITCH_DRILL_RESULT, reason=entry, at=d.at,
                                 actedBy=drill.requestedBy), *d.st.history][:HISTORY_LIMIT]


def _all_on(d: Draft, track: Track, ref: RevisionRef) -> bool:
    """Observed: the router sends every request to `track`, and it runs `ref` with all its pods Ready."""
    observed = {Track.STABLE: d.obs.stable, Track.FALLBACK: d.obs.fallback}[track]
    routing = d.obs.routing
    return routing is not None and routing.sole is track and track_ready(observed, ref, d.replicas)


def _where(d: Draft, track: Track, ref: RevisionRef | None) -> str:
    """What was observed instead, for a failed drill's message."""
    observed = {Track.STABLE: d.obs.stable, Track.FALLBACK: d.obs.fallback}[track]
    routing = d.obs.routing
    sent = "unknown" if routing is None else (routing.sole.value if routing.sole else "split between tracks")
    ready = observed.ready if ref is not None and observed.revision == ref.revision else 0
    problem = f"; {observed.problem.describe()}" if observed.problem is not None else ""
    return f" (router sends to: {sent}; {track.value} {ready}/{d.replicas} pods Ready{problem})"


def _since(d: Draft, at: str | None) -> float:
    start = parse_time(at)
    return round(seconds_between(start, d.now), 3) if start is not None else 0.0


def _overdue(d: Draft, policy: Policy, at: str | None) -> bool:
    start = parse_time(at)
    return start is not None and d.now >= start + timedelta(seconds=policy.progress_deadline_seconds)


def with_wake(decision: Decision, policy: Policy | None) -> Decision:
    """A running drill is looked at again at its deadline (a Failed outcome comes by time alone); between,
    watch events (the router's object, the tracks' pods) wake the runtime."""
    drill = decision.status.lastDrill
    if policy is None or drill is None or not drill.active:
        return decision
    start = parse_time(drill.fallbackAt or drill.startedAt)
    if start is None:
        return decision
    at = start + timedelta(seconds=policy.progress_deadline_seconds)
    current = decision.wake.deadline
    if current is not None and current <= at:
        return decision
    return dataclasses.replace(decision, wake=dataclasses.replace(decision.wake, deadline=at))
