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
- The window's end has come -> the version becomes lastKnownGood, phase Succeeded; a look that comes
  after the end does not judge it.
- A new revision during the window ends it unjudged (`end_bake`): the version is not lastKnownGood, and
  the new canary runs against it. The kill switch suspends the window; switched off, it starts over.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tollgate.api.controls import ControlTokens
from tollgate.api.status import BakeStatus, Phase, RevisionRef
from tollgate.engine.actions import Cause, Reason
from tollgate.engine.analysis import TickOutcome, assess
from tollgate.engine.bake_analysis import bake_slos, subject
from tollgate.engine.draft import Draft, RollbackRecord
from tollgate.engine.evidence import incident_name
from tollgate.engine.policy import Policy
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
    d.phase(Phase.BAKING, f"serving {bake.version} ({bake.revision}); promoted, under analysis until "
                          f"{bake.until} (bake window {bake.window}); a failure rolls back to {bake.rollbackTo}")


def _complete(d: Draft, why: str) -> None:
    stable = d.st.stable
    assert stable is not None
    d.st.lastKnownGood = stable
    d.st.bake = None
    d.event(Reason.BAKE_COMPLETED, f"{stable.version} ({stable.revision}) is the last known good version: {why}")
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
                  full_traffic=True)
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
    assert bake is not None and baked is not None and back is not None
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
