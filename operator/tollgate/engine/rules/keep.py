"""A failed canary kept for debugging (spec.rollout.keepFailedCanary; Argo Rollouts'
abortScaleDownDelaySeconds).

- A rollback or abort of a canary (engine.rules.rollback) with a keep duration records status.keptCanary:
  the canary's Deployment and its pods stay in the sandbox instead of being removed, so their logs can be
  read. They get no traffic: the router weight is 0, the replicas router's Service selects the stable
  track only, and the canary's own Service (gatewayAPI backend, hooks' target) selects no pod while no
  canary runs (engine.workloads).
- At `until` (a deadline wake, engine.wakes) the record is cleared and the plan removes the Deployment.
- A new canary (a new version or tollgate.dev/retry) removes the kept one first and starts in the next
  decision, so it never inherits the failed pods (the same revision would otherwise keep them).
- The kill switch removes it at once, as it removes a running canary; a canary aborted under the kill
  switch is not kept (its Deployment went when the switch came on).

The deadline lives in status, so an operator restart keeps it; time comes in as `Draft.now`.
"""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.status import KeptCanaryStatus, RevisionRef
from tollgate.engine.actions import Reason
from tollgate.engine.draft import Draft
from tollgate.engine.observations import Track
from tollgate.engine.timeutil import format_time, parse_duration, parse_time
from tollgate.engine.workloads import deployment_name


def keep_seconds(d: Draft) -> float:
    """spec.rollout.keepFailedCanary in seconds (0: not kept; an unparsable value, which the CRD refuses,
    keeps nothing)."""
    text = d.spec.rollout.keepFailedCanary
    if not text:
        return 0.0
    try:
        return parse_duration(text)
    except ValueError:
        return 0.0


def keep(d: Draft, canary: RevisionRef, incident: str) -> None:
    """The canary just rolled back is kept when the spec asks for it (its Deployment is not removed)."""
    seconds = keep_seconds(d)
    if seconds <= 0 or d.spec.killSwitch:  # under the kill switch its Deployment is gone already (rule 2)
        d.st.keptCanary = None
        return
    name = deployment_name(d.ctx, Track.CANARY)
    until = format_time(d.now + timedelta(seconds=seconds))
    d.st.keptCanary = KeptCanaryStatus(deployment=name, revision=canary.revision, version=canary.version,
                                       since=d.at, until=until, incident=incident)
    d.event(Reason.CANARY_KEPT, f"failed canary {canary.version} ({canary.revision}) kept with zero traffic "
                                f"for debugging until {until}: kubectl logs -n {d.st.sandboxNamespace} deploy/{name}")


def release(d: Draft, why: str) -> None:
    """The kept canary goes now (the plan removes its Deployment in this decision)."""
    kept = d.st.keptCanary
    if kept is None:
        return
    d.st.keptCanary = None
    d.event(Reason.KEPT_CANARY_REMOVED, f"kept canary {kept.version} ({kept.revision}) removed: {why}")


def expire(d: Draft) -> None:
    """At its `until` the kept canary is removed."""
    kept = d.st.keptCanary
    if kept is None:
        return
    until = parse_time(kept.until)
    if until is None or d.now >= until:
        release(d, f"its keep window ended at {kept.until}")
