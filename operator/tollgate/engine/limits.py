"""Absolute limits (`min`, `max`) of the built-in ratio SLOs, judged on evidence, not on a point estimate.

Why: a rate measured on a few hundred requests is noisy, and the tiers' defaults put limits where that
noise reaches them. The high tier's error-rate is `max 0.01` with minSamples 200: 200 requests of a version
that errs 0.5 % of the time (half its limit) hold 3 or more errors (1.5 %, "over the limit") about one time
in twelve. Judged on the point estimate at every look, with failureLimit 0, 9 of 40 such canaries
(identical to their stable) were rolled back at 10 requests/s and 10 of 40 at 100/s; the medium tier
(`max 0.02`, minSamples 100) rolled back 8 of 40 canaries at 1 % (engine.analysis.judge on the traffic
simulator's draws, 2026-12-07). A limit is a statement about the version, so a failure needs data that
show the version beyond it, as a comparison with the baseline does (comparison.py).

Rules, for `error-rate` and `invalid-output-rate` without a custom query or template (their data are
counts: `events` of `n` requests, the canary's stream when the SLO is compared with its baseline, else its
window's rate times the window's requests):

1. The point estimate `events / n` within [min, max] -> WITHIN (the check goes on, as before).
2. Beyond a limit `L`: an exact binomial test of "the version's rate is beyond L" on this look's counts,
   `p = P(X >= events)` for `X ~ Binomial(n, L)` (mirrored for `min`). `p <= 1 - confidence`
   (analysis.confidence, default 0.99) -> BEYOND (a failed check, counted as any other). Otherwise
   UNSURE: no verdict yet, the step does not pass on it (engine.analysis rule 4 says how long it waits:
   on the stream until the data settle it, on the window at most maxNoDataDuration, then it fails).
   Exact, because the normal approximation is far too eager at the small expected counts that limits
   meet: 6 errors in 218 requests against 1 % is p 0.005 by it and 0.024 exactly.
3. A limit with no sampling error (`max 0`, `min 1`, or a limit outside 0..1): the estimate decides, as
   before (one error is beyond `max: 0` for certain).

Each look is tested on its own at the configured confidence, not with the always-valid p-value of the
comparison: a limit is judged on the window when the SLO has no baseline margin, and a sliding window is
no growing stream. What that costs is in docs/api.md ("Absolute limits"), measured with the traffic
simulator. The other SLOs (latency quantiles, custom queries, templates, request-rate, score-shift) keep
the point estimate: their window values carry no counts to test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tollgate.engine.comparison import RATIO_SLOS
from tollgate.engine.policy import ResolvedSLO


class Limit(StrEnum):
    WITHIN = "Within"
    BEYOND = "Beyond"
    UNSURE = "Unsure"


@dataclass(frozen=True)
class LimitCheck:
    outcome: Limit
    p_value: float | None = None
    """One-sided p-value of "the rate is beyond the limit" at this look (None: within, or no test)."""


def tested(slo: ResolvedSLO) -> bool:
    """The SLO's limits are judged by the test of rule 2: a built-in ratio, whose data are counts."""
    s = slo.slo
    return s.name in RATIO_SLOS and s.query is None and s.templateRef is None


def check(slo: ResolvedSLO, value: float, samples: int, *, events: float | None = None,
          confidence: float = 0.99) -> LimitCheck:
    """Judge `value` (the canary's rate over `samples` requests; `events` its count when known, else
    value * samples) against the SLO's min and max. Callers pass only finite values and samples > 0."""
    spec = slo.slo
    too_high = spec.max is not None and value > spec.max
    too_low = spec.min is not None and value < spec.min
    if not (too_high or too_low):
        return LimitCheck(Limit.WITHIN)
    if not tested(slo) or samples <= 0:
        return LimitCheck(Limit.BEYOND)
    count = min(max(events if events is not None else value * samples, 0.0), float(samples))
    # A max on the rate, or a min read as a max on its complement (the requests without the event).
    if spec.max is not None and too_high:
        limit, beyond = spec.max, count
    else:
        limit, beyond = 1.0 - (spec.min or 0.0), samples - count
    if not 0.0 < limit < 1.0:
        return LimitCheck(Limit.BEYOND)
    p = binomial_tail(round(beyond), samples, limit)
    return LimitCheck(Limit.BEYOND if p <= 1.0 - confidence else Limit.UNSURE, p)


def binomial_tail(events: int, n: int, rate: float) -> float:
    """P(X >= events) for X ~ Binomial(n, rate), exactly: the normal approximation is far too eager at the
    small expected counts limits meet (6 errors in 218 requests against 1 %: 0.005 by the normal
    approximation, 0.024 exactly). Summed from `events` up until the terms no longer matter: callers ask
    for counts beyond the limit, at or past the mode, where they shrink at least geometrically."""
    if events <= 0:
        return 1.0
    if events > n:
        return 0.0
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    log_term = (math.lgamma(n + 1) - math.lgamma(events + 1) - math.lgamma(n - events + 1)
                + events * log_rate + (n - events) * log_rest)
    term, total, k = math.exp(log_term), 0.0, events
    while term > 0.0 and k <= n:
        total += term
        if term < total * 1e-12:
            break
        term *= (n - k) / (k + 1) * rate / (1.0 - rate)
        k += 1
    return min(total, 1.0)
