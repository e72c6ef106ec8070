"""Progress deadlines: pods the rollout waits for must be Ready within progressDeadline (rule 8), counted
from the moment they are scheduled (time waiting for a node is reported, not counted).

The engine waits for pods in three places: the first deployment (status.notReadySince), the canary
after it starts or scales up for a step (notReadySince), and the stable track rolling to the canary
revision while promoting (promotingSince). The clock starts when the waiting starts and is persisted,
so a restart does not reset it. Past the deadline a first deployment is reported (there is nothing to
roll back to); a canary or a promotion rolls back in that same decision (`roll_back_when_late`, the
one place that pattern is written). `engine.wakes.deadline` wakes the runtime exactly then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tollgate.api.status import RevisionRef
from tollgate.engine.actions import Cause, Reason
from tollgate.engine.draft import Draft, track_ready
from tollgate.engine.observations import PodProblemKind, TrackObservation
from tollgate.engine.policy import Policy
from tollgate.engine.rules.rollback import roll_back
from tollgate.engine.timeutil import format_time, parse_time


def overdue(since: datetime, policy: Policy, now: datetime) -> bool:
    """progressDeadline has passed since `since`."""
    return now >= since + timedelta(seconds=policy.progress_deadline_seconds)


def late(policy: Policy, what: str, detail: str = "") -> str:
    """The message of a passed deadline: "<what> within <deadline>s<detail>"."""
    return f"{what} within {policy.progress_deadline_seconds:g}s{detail}"


def roll_back_when_late(d: Draft, policy: Policy, since: datetime, what: str, detail: str = "") -> bool:
    """Past the deadline: a warning event and a rollback (cause deadline) now; returns True when so."""
    if not overdue(since, policy, d.now):
        return False
    message = late(policy, what, detail)
    d.event(Reason.PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
    roll_back(d, Cause.DEADLINE, message)
    return True


def pods_detail(track: TrackObservation, ref: RevisionRef | None) -> str:
    """Why the track's pods of `ref` are not Ready, in the kubelet's or scheduler's words ("" if unknown)."""
    if ref is None or track.revision != ref.revision or track.problem is None:
        return ""
    return f"; {track.problem.describe()}"


def canary_ready(d: Draft, policy: Policy, *, promoting: bool) -> bool | None:
    """The canary has the Ready pods its weight needs (the first step's before it takes traffic).

    Not ready: the waiting clock starts (or keeps running) and, past the deadline, the canary is rolled
    back: then None. A canary container that cannot start and will not by waiting (its image never
    pulls, it crash-loops: PodProblemKind.FAILING) is rolled back at once, with the kubelet's reason,
    whatever the deadline. The deadline counts from the moment the pods are scheduled: while the
    scheduler finds no node for them (PodProblemKind.UNSCHEDULABLE: a GPU pool scaling up, a quota) the
    clock restarts at every decision and the scheduler's message is in status. While promoting, the
    promotion's own deadline counts instead.
    """
    canary = d.st.canary
    assert canary is not None
    load = max(d.st.canaryWeight, d.st.canaryMirror)  # a shadow step's pods answer the mirrored copies
    want = d.canary_pods(load if load > 0 else policy.steps[0].load)
    ready = track_ready(d.obs.canary, canary, want)
    if promoting:
        return ready
    if ready:
        if d.st.canaryReadyAt is None:
            d.st.canaryReadyAt = d.at
        d.st.notReadySince = None
        return True
    since = parse_time(d.st.notReadySince) or d.now
    d.st.notReadySince = format_time(since)
    have = d.obs.canary.ready if d.obs.canary.revision == canary.revision else 0
    problem = d.obs.canary.problem if d.obs.canary.revision == canary.revision else None
    if problem is not None and problem.kind is PodProblemKind.FAILING:
        roll_back(d, Cause.POD_FAILURE, f"canary {canary.version} cannot start ({have}/{want} pods Ready): "
                                        f"{problem.describe()}", digest=problem.digest)
        return None
    if problem is not None and problem.kind is PodProblemKind.UNSCHEDULABLE:
        d.st.notReadySince = d.at  # the deadline counts from the moment the pods are scheduled
        return False
    detail = f" ({have}/{want} pods Ready){pods_detail(d.obs.canary, canary)}"
    if roll_back_when_late(d, policy, since, f"canary {canary.version} not Ready", detail):
        return None
    return False
