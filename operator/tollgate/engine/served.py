"""The share the canary actually served: measured from the model servers' own request counts.

status.canaryShare and status.steps[].plannedShare are a plan (the route weight, or Ready pods behind a
Service); status.rateLimits is the limit in force. This module answers what came of both: of the
requests the tracks answered over the analysis window, how many the canary answered. The counts are the
ones every analysis tick already fetches (SLOObservation: each track's `samples`, from the request-count
query over the window, for the version under analysis on each track), so it costs no query.

Rules, first match wins:

1. No canary taking requests while the window ran (weight 0 and nothing mirrored), or no observation
   without a provider error                                          -> None
2. The counts are those of the observation with the most requests (canary + stable); ties: the first.
   Every SLO of one tick reads the same request-count query, so they agree unless one failed.
3. No request on either track over the window                         -> None (no share to speak of)
4. A shadow step (mirror > 0, weight 0): the canary's requests are copies of live requests whose answers
   no user got. canaryPercent 0.0 and canaryRequests 0 (users got stable's answers only);
   the copies are mirroredRequests and mirroredPercent = copies / stable requests x 100 (the percent of
   live requests the canary got a copy of), at most 100: a live request gets one copy at most, and the
   counts are Prometheus estimates (increase() extrapolates a series younger than the window, so a canary
   whose pods started inside it can count more copies than there were requests: 137.8% was seen for a
   50% mirror over a blended window); with no stable request           -> None
5. Otherwise canaryPercent = canary / (canary + stable) x 100, rounded to 0.1: what users got. Set
   beside `weight` (the canary weight in force while measured), it shows a canary rate limit biting
   (weight 50, served 10: the gateway sent the rest to stable) or a replica split (weight 10, served 50).
6. The window began before that traffic was set (the step started less than one window before the
   tick): `blended` true, the counts include the previous step's split.

The counts are what the model servers counted: requests a hook Job sent count unless
spec.hooks.syntheticTraffic is exclude, as in the SLOs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tollgate.api.status import ServedStatus
from tollgate.engine.observations import MetricValue, SLOObservation
from tollgate.engine.timeutil import format_time, parse_duration


def counts(observed: Sequence[SLOObservation]) -> tuple[int, int, str] | None:
    """(canary requests, stable requests, window) of the observation with the most requests (rule 2);
    None without an observation free of provider errors (rule 1)."""
    usable = [o for o in observed if o.error is None]
    if not usable:
        return None
    best = max(usable, key=lambda o: _n(o.canary) + _n(o.stable))  # max keeps the first of equals
    return _n(best.canary), _n(best.stable), best.window


def _n(metric: MetricValue | None) -> int:
    return max(0, metric.samples) if metric is not None else 0


def measure(
    observed: Sequence[SLOObservation], *, weight: int, mirror: int, now: datetime,
    step_started: datetime | None = None,
) -> ServedStatus | None:
    """The share served over the window of one analysis tick ending at `now`, under the canary traffic
    (`weight`, `mirror`) in force while it ran, the step having started at `step_started`."""
    if weight <= 0 and mirror <= 0:
        return None
    found = counts(observed)
    if found is None:
        return None
    canary, stable, window = found
    if canary + stable == 0:
        return None
    shadow = weight == 0
    if shadow and stable == 0:
        return None
    served = ServedStatus(
        canaryPercent=0.0 if shadow else round(canary / (canary + stable) * 100, 1),
        canaryRequests=0 if shadow else canary, stableRequests=stable, weight=weight, window=window,
        at=format_time(now), blended=True if _blended(window, now, step_started) else None)
    if shadow:
        return served.model_copy(update={"mirror": mirror, "mirroredRequests": canary,
                                         "mirroredPercent": min(100.0, round(canary / stable * 100, 1))})
    return served


def _blended(window: str, now: datetime, step_started: datetime | None) -> bool:
    """The window reaches back before the step's traffic was set (rule 6)."""
    if step_started is None:
        return False
    try:
        seconds = parse_duration(window)
    except ValueError:
        return False
    return (now - step_started).total_seconds() < seconds
