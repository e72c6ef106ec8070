"""When to look again: the times at which a status changes by time alone, as pure functions.

Two kinds of wake, kept apart because the runtime treats them differently:

- a deadline (a progress deadline runs out, a step's pause ends, a bake window ends, a kept failed canary's
  keep window ends): decide again then;
- an analysis tick (a look; in a bake window, of the promoted version, engine.bake_analysis): one look
  interval (the scrape interval when shorter than the analysis interval, Policy.look_interval) after the
  later of the step's (or the bake window's) start and the previous tick, the
  runtime measures the SLOs and then decides. Ticks are aligned to an interval grid (multiples of the
  interval since the epoch, `align`), so every canary with the same interval is measured in one batch
  (one Prometheus query per SLO template, not one per canary). The grid point may come up to
  `grid_slack` before the rules' due time, never after the next grid point.

The runtime asks `analysis_time(policy, status)` before a decision (measure now?) and gets the next
one in `Decision.wake` after it: the same function, so nothing is re-derived in the runtime.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.actions import Wake
from tollgate.engine.bake_analysis import bake_analysis_at, bake_end
from tollgate.engine.policy import Policy
from tollgate.engine.timeutil import parse_duration, parse_time
from tollgate.engine.traffic import holds, receives

ANALYSED_PHASES = frozenset({Phase.PROGRESSING, Phase.AWAITING_APPROVAL, Phase.PROMOTING})
"""Phases in which a canary taking traffic is analysed (not Paused: verdicts would not count)."""


def judged(policy: Policy, status: ModelDeploymentStatus) -> bool:
    """SLOs are judged at the canary's traffic now (a weight, or a shadow step's mirror): the step holding
    it has `analysis: true` (steps with `analysis: false` are not judged; an unknown weight, e.g. after a
    plan change, is judged)."""
    step = next((s for s in policy.steps if holds(status, s)), None)
    return receives(status) and (step is None or step.analysis)


def next_analysis_at(policy: Policy, status: ModelDeploymentStatus) -> datetime | None:
    """When the next analysis tick is due by the rules, or None when no analysis is wanted.

    Analysis runs while the canary takes traffic (weight > 0, or a shadow step's mirror) and the rollout is
    not paused, one look
    interval after the later of the step's start and the previous tick.
    """
    if status.bake is not None and status.canary is None:
        return bake_analysis_at(policy, status)  # the promoted version in its bake window
    if status.canary is None or status.killSwitchActive or not receives(status):
        return None
    if status.phase not in ANALYSED_PHASES or not judged(policy, status):
        return None
    anchors = [t for t in (parse_time(status.stepStartedAt), parse_time(status.lastAnalysisAt)) if t]
    if not anchors:
        return None
    return max(anchors) + timedelta(seconds=policy.look_interval)


def grid_slack(interval: float) -> float:
    """How far before its due time an analysis may run, so that it runs on the grid point it follows.

    The next tick is anchored on the previous one's decision time, which is the grid point plus the
    gathering window and the queries (tens to hundreds of milliseconds). Without slack, that tick is
    due just after the next grid point and waits for the one after: every canary would be analysed
    every 2 intervals, and loops drifting apart would split a tick into several batches.
    """
    return min(0.5 * interval, 2.0)


def align(due: datetime, interval: float, slack: float = 0.0) -> datetime:
    """The first point of the interval grid (multiples of `interval` since the epoch) at or after
    `due - slack`. Only the first tick of a rollout can move (by less than one interval); later ticks
    fall on the grid."""
    if interval <= 0:
        return due
    ts = due.timestamp() - slack
    aligned = math.ceil(ts / interval - 1e-9) * interval
    return datetime.fromtimestamp(aligned, UTC)


def analysis_time(policy: Policy, status: ModelDeploymentStatus) -> datetime | None:
    """The grid point at which the next analysis tick is measured, or None when none is wanted."""
    due = next_analysis_at(policy, status)
    if due is None:
        return None
    interval = policy.look_interval
    return align(due, interval, grid_slack(interval))


def deadline(policy: Policy, status: ModelDeploymentStatus, now: datetime) -> datetime | None:
    """The earliest future time at which a rule fires by time alone: the progress deadline of pods the
    rollout waits for (canary, first deployment, promotion), the end of the current step's pause, or the
    end of a bake window."""
    if status.phase is Phase.STALLED or status.killSwitchActive:
        return None
    limit = timedelta(seconds=policy.progress_deadline_seconds)
    times: list[datetime] = []
    waiting = parse_time(status.notReadySince)
    if waiting is not None and (status.canary is not None or status.phase is Phase.PENDING):
        times.append(waiting + limit)
    promoting = parse_time(status.promotingSince)
    if promoting is not None and status.canary is not None:
        times.append(promoting + limit)
    started = parse_time(status.stepStartedAt)
    if status.canary is not None and started is not None and status.phase is Phase.PROGRESSING and policy.steps:
        step = policy.steps[min(status.currentStep, len(policy.steps) - 1)]
        if step.pause and holds(status, step):
            times.append(started + timedelta(seconds=parse_duration(step.pause)))
    end = bake_end(status)
    if end is not None:
        times.append(end)
    future = [t for t in times if t > now]
    return min(future) if future else None


def kept_until(status: ModelDeploymentStatus, now: datetime) -> datetime | None:
    """When a failed canary kept for debugging is removed (status.keptCanary), if that is still ahead.
    Whatever the phase, even Stalled: a kept canary must not outlive its window for want of an event."""
    kept = status.keptCanary
    until = parse_time(kept.until) if kept is not None else None
    return until if until is not None and until > now else None


def wake(policy: Policy | None, status: ModelDeploymentStatus, now: datetime) -> Wake:
    """Every wake of a new status (for a spec the engine cannot act on: only a kept canary's end)."""
    kept = kept_until(status, now)
    if policy is None or status.phase is Phase.STALLED or status.killSwitchActive:
        return Wake(deadline=kept)
    due = deadline(policy, status, now)
    if kept is not None and (due is None or kept < due):
        due = kept
    return Wake(deadline=due, analysis_due=next_analysis_at(policy, status), analysis=analysis_time(policy, status))
