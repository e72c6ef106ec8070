"""The bake window: after promotion the new stable stays under analysis for a while (issue 20).

- Promotion with a bake window (spec.rollout.bakeWindow, else the risk tier's) and a lastKnownGood to
  return to: the version becomes stable but not yet lastKnownGood; phase Baking, status.bake holds the
  window and its end.
- While it bakes, the promoted version is looked at every look interval like a canary, on the SLOs
  engine.bake_analysis selects: absolute limits, and the baseline the previous version recorded during
  the canary (status.baselines). Failures over failureLimit inside the window roll back to lastKnownGood
  in that decision, exactly like a canary failure: history RolledBack, evidence (with the window and the
  baselines), the revision stays rolled back until the spec changes or tollgate.dev/retry. Traffic
  returns as the stable track rolls back to lastKnownGood (phase RollingBack until it is Ready).
  Provider errors are warned (AnalysisError) and never roll back: a canary fails closed so that nothing
  is promoted on unknown SLOs; this version already passed its canary.
- abort control -> the same rollback (Aborted); promote control -> the window ends now.
- The window's end has come -> the version becomes lastKnownGood, phase Succeeded (Stable for a first
  deployment, as without a window); a look that comes after the end does not judge it.
- A new revision during the window ends it unjudged (`end_bake`): the version is not lastKnownGood, and
  the new canary runs against it. The kill switch suspends the window; switched off, it starts over.
- A first deployment (nothing served before) bakes too, once Ready, on its absolute limits only (there
  is no baseline). A failure cannot roll back: the version is marked failed (history Failed, evidence,
  it stays failed until the spec changes or tollgate.dev/retry); with spec.fallback all traffic goes to
  the fallback, as with the kill switch (engine.rollout keeps it there); without one it keeps serving
  and the phase is Stalled (kstatus Failed), saying so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tollgate.api.controls import ControlTokens
from tollgate.api.status import BakeStatus, Phase, RevisionRef
from tollgate.engine.actions import Cause, Reason
from tollgate.engine.analysis import TickOutcome, assess
from tollgate.engine.bake_analysis import bake_slos, subject
from tollgate.engine.draft import Draft, RollbackRecord, with_template
from tollgate.engine.evidence import incident_name
from tollgate.engine.policy import Policy
from tollgate.engine.revision import fallback_revision
from tollgate.engine.rules.rollback import rolled_back
from tollgate.engine.timeutil import format_time, parse_time
from tollgate.engine.wakes import grid_slack


def start_bake(d: Draft, policy: Policy, promoted: RevisionRef) -> bool:
    """Open the bake window of a version promoted in this decision (already stable); False when there is
    none (no window configured, or no lastKnownGood to return to)."""
    back = d.st.lastKnownGood
    if policy.bake_seconds <= 0 or back is None or back.revision == promoted.revision:
        return False
    until = format_time(d.now + timedelta(seconds=policy.bake_seconds))
    d.st.bake = BakeStatus(revision=promoted.revision, version=promoted.version, window=policy.bake_window,
                           since=d.at, until=until, rollbackTo=back.version, streamSince=d.st.canaryStartedAt)
    d.st.analysis = []
    d.st.lastAnalysisAt = None
    d.event(Reason.BAKE_STARTED, f"{promoted.version} ({promoted.revision}) bakes until {until} (window "
                                 f"{policy.bake_window}): a failure rolls back to {back.version}")
    _baking(d)
    return True


def start_first_bake(d: Draft, policy: Policy, first: RevisionRef) -> bool:
    """Open the bake window of a first version that just became Ready (nothing served before it): judged
    on its absolute limits (there is no baseline); False when there is no window or nothing to judge."""
    if policy.bake_seconds <= 0:
        return False
    d.st.bake = BakeStatus(revision=first.revision, version=first.version, window=policy.bake_window, since=d.at,
                           until=format_time(d.now + timedelta(seconds=policy.bake_seconds)),
                           rollbackTo=d.spec.fallback.version if d.spec.fallback else None)
    if not bake_slos(policy, d.st):
        d.st.bake = None
        return False
    d.st.analysis = []
    d.st.lastAnalysisAt = None
    bake = d.st.bake
    on_failure = (f"traffic goes to fallback {bake.rollbackTo}" if bake.rollbackTo else
                  "it is marked failed and keeps serving (no spec.fallback)")
    d.event(Reason.BAKE_STARTED, f"first version {first.version} ({first.revision}) bakes until {bake.until} "
                                 f"(window {bake.window}) on its absolute limits: on a failure {on_failure}")
    _baking(d)
    return True


def first_failed(d: Draft) -> None:
    """The phase of a first version that failed its bake window while it stays the spec's revision: on
    the fallback when one is configured (engine.rollout routes it like the kill switch), else Stalled."""
    stable = d.st.stable
    assert stable is not None
    d.st.canaryWeight = 0
    d.st.canaryMirror = 0
    d.phase(Phase.STALLED, f"first version {stable.version} ({stable.revision}) failed its analysis "
                           f"({d.st.lastIncident}) and there is no spec.fallback: it keeps serving. Set "
                           "spec.fallback, change the spec, or set tollgate.dev/retry")


def bake_progress(d: Draft, policy: Policy, tokens: ControlTokens) -> None:
    """One decision while the stable track serves the version in its bake window."""
    bake = d.st.bake
    assert bake is not None
    if tokens.abort is not None:
        _roll_back(d, policy, Cause.ABORT, f"aborted by tollgate.dev/abort={tokens.abort}")
        return
    if d.prev.killSwitchActive:  # the window did not count while the kill switch was on
        d.st.bake = bake = bake.model_copy(update={
            "since": d.at, "until": format_time(d.now + timedelta(seconds=policy.bake_seconds))})
        d.st.lastAnalysisAt = None
        d.event(Reason.BAKE_STARTED, f"kill switch off: the bake window of {bake.version} starts over, "
                                     f"until {bake.until}")
    if tokens.promote is not None:
        _complete(d, f"promote control by tollgate.dev/promote={tokens.promote}: the rest of the bake window "
                     "skipped")
        return
    until = parse_time(bake.until)
    if until is not None and d.now >= until:
        _complete(d, f"bake window of {bake.window} passed")
        return
    if d.obs.slos is not None and not _analyse(d, policy):
        return
    _baking(d)


def end_bake(d: Draft, why: str) -> None:
    """A new revision arrived during the window: it ends unjudged, the version is not lastKnownGood."""
    bake = d.st.bake
    assert bake is not None
    keep = d.st.lastKnownGood.version if d.st.lastKnownGood else "-"
    d.event(Reason.BAKE_ENDED, f"bake window of {bake.version} ended before {bake.until}: {why}; lastKnownGood "
                               f"stays {keep}")
    d.st.bake = None


def _baking(d: Draft) -> None:
    bake = d.st.bake
    assert bake is not None
    if d.st.lastKnownGood is None:
        on_failure = f"sends traffic to fallback {bake.rollbackTo}" if bake.rollbackTo else "marks it failed"
        d.phase(Phase.BAKING, f"serving first version {bake.version} ({bake.revision}), under analysis until "
                              f"{bake.until} (bake window {bake.window}); a failure {on_failure}")
        return
    d.phase(Phase.BAKING, f"serving {bake.version} ({bake.revision}); promoted, under analysis until "
                          f"{bake.until} (bake window {bake.window}); a failure rolls back to {bake.rollbackTo}")


def _complete(d: Draft, why: str) -> None:
    stable = d.st.stable
    assert stable is not None
    first = d.st.lastKnownGood is None  # a first deployment: Stable, as one without a window
    d.st.lastKnownGood = stable
    d.st.bake = None
    d.event(Reason.BAKE_COMPLETED, f"{stable.version} ({stable.revision}) is the last known good version: {why}")
    if first:
        d.phase(Phase.STABLE, f"serving {stable.version} ({stable.revision}); first version, {why}")
        return
    d.phase(Phase.SUCCEEDED, f"serving {stable.version} ({stable.revision}); promoted, {why}")


def _analyse(d: Draft, policy: Policy) -> bool:
    """One look at the promoted version; False when it rolled back."""
    assert d.obs.slos is not None
    # The evidence and the events show the data as judged: the promoted version in the canary's place.
    d.obs = replace(d.obs, slos=subject(d.obs.slos))
    assert d.obs.slos is not None
    tick = assess(bake_slos(policy, d.st), d.st.analysis, d.obs.slos, d.now, failure_limit=policy.failure_limit,
                  consecutive_error_limit=policy.consecutive_error_limit, baselines=d.st.baselines,
                  confidence=policy.confidence, failure_gap=policy.interval_seconds - grid_slack(policy.look_interval),
                  full_traffic=True, look_gap=policy.look_gap)
    d.tick = tick
    d.st.analysis = list(tick.slos)
    d.st.lastAnalysisAt = d.at
    if tick.failing:
        d.event(Reason.ANALYSIS_FAILED, "bake window: " + _describe(tick, tick.failing), warning=True)
    if tick.erroring:
        d.event(Reason.ANALYSIS_ERROR, "bake window (errors never roll back a promoted version): "
                                       + _describe(tick, tick.erroring), warning=True)
    if tick.failed:
        _roll_back(d, policy, Cause.ANALYSIS,
                   f"failures over failureLimit {policy.failure_limit} in the bake window: {', '.join(tick.failed)}")
        return False
    return True


def _describe(tick: TickOutcome, names: tuple[str, ...]) -> str:
    return "; ".join(
        f"{s.name}: {s.verdict} value={s.value} baseline={s.baseline} ({s.threshold}; samples {s.samples}, "
        f"failures {s.failures}){f', {s.baselineSource} baseline {s.baselineFrom}' if s.baselineSource else ''}"
        for s in tick.slos if s.name in names)


def _roll_back(d: Draft, policy: Policy, cause: Cause, message: str) -> None:
    """Back to lastKnownGood with evidence, as a canary failure: the version stays rolled back."""
    bake, baked, back = d.st.bake, d.st.stable, d.st.lastKnownGood
    assert bake is not None and baked is not None
    if back is None:
        _fail_first(d, policy, cause, message)
        return
    incident = incident_name(d.ctx, baked.revision, d.at, cause.result)
    d.rollback = RollbackRecord(canary=baked, stable=back, cause=cause, message=message, incident=incident,
                                step=max(len(policy.steps) - 1, 0), weight=100, bake=bake)
    d.history(baked, cause.result, message, incident)
    d.event(cause.reason, f"{baked.version} ({baked.revision}) in its bake window until {bake.until}: {message}; "
                          f"all traffic back to {back.version}; evidence {incident}", warning=True)
    d.st.stable = back
    d.st.bake = None
    d.st.rolledBackRevision = baked.revision
    d.st.lastIncident = incident
    rolled_back(d)


def _fail_first(d: Draft, policy: Policy, cause: Cause, message: str) -> None:
    """A first version failed its window: there is nothing to roll back to. It is marked failed (history
    Failed, evidence, the revision stays failed until the spec changes or tollgate.dev/retry); with
    spec.fallback all traffic goes there, as with the kill switch; without, it keeps serving (Stalled)."""
    bake, first = d.st.bake, d.st.stable
    assert bake is not None and first is not None
    fallback = with_template(fallback_revision(d.spec, d.st), d.spec)
    incident = incident_name(d.ctx, first.revision, d.at, cause.result)
    d.rollback = RollbackRecord(canary=first, stable=fallback, cause=cause, message=message, incident=incident,
                                step=0, weight=100, bake=bake)
    result = "Failed" if cause is not Cause.ABORT else cause.result
    d.history(first, result, message, incident)
    where = f"all traffic to fallback {fallback.version}" if fallback else "no spec.fallback: it keeps serving"
    d.event(cause.reason, f"first version {first.version} ({first.revision}) failed in its bake window until "
                          f"{bake.until}: {message}; {where}; evidence {incident}", warning=True)
    d.st.bake = None
    d.st.rolledBackRevision = first.revision
    d.st.lastIncident = incident
    if fallback is None:
        first_failed(d)
        return
    d.st.killSwitchActive = True  # kill-switch semantics: the fallback track, all traffic once Ready
    d.st.fallback = None
    d.phase(Phase.FALLBACK, f"first version {first.version} failed its analysis ({incident}): starting fallback "
                            f"{fallback.version}; it takes all traffic once Ready")
