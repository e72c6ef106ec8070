"""A rollback: canary weight 0 in this decision, the revision stays rolled back, evidence recorded.

Every rollback goes through `roll_back`, whatever its cause (failed analysis, provider errors past
their limit, a progress deadline, the abort control): the cause says the event reason, the history
result and the metric label (actions.Cause), so one rollback states one fact once.
"""

from __future__ import annotations

from tollgate.api.status import Phase
from tollgate.engine.actions import Cause
from tollgate.engine.draft import Draft, RollbackRecord, track_ready
from tollgate.engine.evidence import incident_name
from tollgate.engine.rules.keep import keep
from tollgate.model_digest import DigestMismatch


def roll_back(d: Draft, cause: Cause, message: str, acted_by: str | None = None,
              digest: DigestMismatch | None = None) -> None:
    """`acted_by`: who asked for it by a control (the abort's value), kept in the history entry. `digest`:
    the model's bytes were refused (expected and actual digest, kept in the evidence)."""
    canary = d.st.canary
    assert canary is not None
    incident = incident_name(d.ctx, canary.revision, d.at, cause.result)
    step = d.st.currentStep
    d.rollback = RollbackRecord(canary=canary, stable=d.st.stable, cause=cause, message=message,
                                incident=incident, step=step, weight=d.st.canaryWeight,
                                mirror=d.st.canaryMirror, digest=digest)
    d.history(canary, cause.result, message, incident, acted_by)
    d.event(cause.reason, f"{canary.version} ({canary.revision}): {message}; evidence {incident}", warning=True)
    d.cut_canary()
    d.st.currentStep = step
    d.st.canary = None
    d.st.rolledBackRevision = canary.revision
    d.st.lastIncident = incident
    keep(d, canary, incident)  # spec.rollout.keepFailedCanary: its pods stay, with zero traffic
    rolled_back(d)


def rolled_back(d: Draft) -> None:
    """The phase while a revision stays rolled back: RollingBack until stable is Ready, then RolledBack."""
    stable = d.st.stable
    assert stable is not None
    ready = track_ready(d.obs.stable, stable, d.replicas)
    tail = "" if ready else f"; stable {d.obs.stable.ready}/{d.replicas} pods Ready"
    kept = d.st.keptCanary
    if kept is not None:
        tail += f"; its canary {kept.deployment} is kept with zero traffic until {kept.until}"
    d.st.canaryWeight = 0
    d.st.canaryMirror = 0
    d.phase(Phase.ROLLED_BACK if ready else Phase.ROLLING_BACK,
            f"revision {d.st.rolledBackRevision} was rolled back ({d.st.lastIncident}); all traffic on "
            f"{stable.version}. Change the spec or set tollgate.dev/retry to try again{tail}")
