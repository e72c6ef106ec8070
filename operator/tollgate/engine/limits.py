"""Absolute limits (`min`, `max`) of the built-in ratio and latency SLOs, judged on evidence, not on a point
estimate.

Why: a rate or a quantile measured on a few hundred requests is noisy, and the tiers' defaults put limits
where that noise reaches them. The high tier's error-rate is `max 0.01` with minSamples 200: 200 requests
of a version that errs 0.5 % of the time (half its limit) hold 3 or more errors (1.5 %, "over the limit")
about one time in twelve. Judged on the point estimate at every look, with failureLimit 0, 9 of 40 such
canaries (identical to their stable) were rolled back at 10 requests/s and 10 of 40 at 100/s; the medium
tier (`max 0.02`, minSamples 100) rolled back 8 of 40 canaries at 1 % (engine.analysis.judge on the traffic
simulator's draws, 2026-12-07). A latency quantile is the same count in disguise: "p99 above 0.3 s" means
"more than 1 % of the requests slower than 0.3 s", and the tiers judge their `latency-p99` max on the window
alone (no baseline margin). A version whose p99 is 0.29 s (0.5 % of its requests slower than 0.3 s, half
what a p99 allows) was rolled back 20 of 20 times at the high tier, at 10 and at 100 requests/s (same probe,
2026-12-07). A limit is a statement about the version, so a failure needs data that show the version beyond
it, as a comparison with the baseline does (comparison.py).

Rules, for `error-rate`, `invalid-output-rate`, `latency-p50/p95/p99` and `score-shift` without a custom
query or template (their data are counts: a ratio's `events` of `n` requests; a quantile's cumulative
histogram buckets; a shift's two score histograms; the canary's stream when the SLO is compared with its
baseline, else its window):

1. The point estimate (the rate, or the quantile) within [min, max] -> WITHIN (the check goes on, as before).
2. Beyond a limit `L`: an exact binomial test on this look's counts of "the version is beyond L"; `p <= 1 -
   confidence` (analysis.confidence, default 0.99) -> BEYOND (a failed check, counted as any other).
   Otherwise UNSURE: no verdict yet, the step does not pass on it (engine.analysis rule 4 says how long it
   waits: on the stream until the data settle it, on the window at most maxNoDataDuration, then it fails).
   - A rate over `max`: `p = P(X >= events)` for `X ~ Binomial(n, max)`; under `min`, the same on the
     requests without the event against `1 - min`.
   - A q-quantile over `max`: the requests slower than `max`, `k`, read from the buckets by linear
     interpolation within the bucket that holds `max` (the assumption histogram_quantile makes, so the test
     and the estimate agree on the data), against their share a quantile at `max` allows: `p = P(X >= k)`
     for `X ~ Binomial(n, 1 - q)`. Under `min`: the requests at or below `min` against `q`.
   - A score-shift over `max` or `maxIncreaseOverBaseline` (`ceiling`: both name the largest distance,
     |mean_canary - mean_stable|, the export's exact means): a one-sided z-test of the distance against it,
     each mean's variance read from its track's score histogram. Its point estimate rolled back 7 of 40
     healthy canaries at 0.03 written either way (seeded unit test), 0 with the test.
   Exact for counts, because the normal approximation is far too eager at the small expected counts that
   limits meet: 6 errors in 218 requests against 1 % is p 0.005 by it and 0.024 exactly. A mean of bounded
   scores over minSamples outputs is close to normal, so a shift uses the normal tail.
3. A limit with no sampling error (`max 0`, `min 1`, a rate limit outside 0..1, a shift limit of 0), or a
   quantile whose buckets the look does not carry: the estimate decides, as before (one error is beyond
   `max: 0` for certain). A quantile read from a histogram of no requests is UNSURE: nothing shows it beyond.

Each look is tested on its own at the configured confidence, not with the always-valid p-value of the
comparison: a limit is judged on the window when the SLO has no baseline margin, and a sliding window is
no growing stream. What that costs is in docs/api.md ("Absolute limits"), measured with the traffic
simulator. The other SLOs (custom queries, templates, request-rate, a score-shift's min) keep the point
estimate: their values carry no counts to test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

from tollgate.engine.comparison import QUANTILE_SLOS, RATIO_SLOS, SHIFT_SLOS
from tollgate.engine.policy import ResolvedSLO
from tollgate.engine.stats import Buckets, monotone


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
    """The SLO's limits are judged by the test of rule 2: a built-in ratio or latency quantile, whose data
    are counts."""
    s = slo.slo
    known = s.name in RATIO_SLOS or s.name in QUANTILE_SLOS or s.name in SHIFT_SLOS
    return known and s.query is None and s.templateRef is None


def ceiling(slo: ResolvedSLO) -> float | None:
    """The largest value the SLO allows: its `max`; for a built-in shift the smaller of `max` and
    `maxIncreaseOverBaseline`, which both name the largest tolerated distance (engine.analysis rule 0; its
    baseline is 0). Read only as the raw difference, a shift written as `maxIncreaseOverBaseline` kept the
    point estimate's false rollbacks (7 of 40 healthy canaries at 0.03, the seeded unit test)."""
    spec = slo.slo
    if slo.name not in SHIFT_SLOS or not tested(slo):
        return spec.max
    limits = [x for x in (spec.max, spec.maxIncreaseOverBaseline) if x is not None]
    return min(limits) if limits else None


def check(slo: ResolvedSLO, value: float, samples: int, *, events: float | None = None,
          buckets: Buckets | None = None, confidence: float = 0.99, other: Buckets | None = None) -> LimitCheck:
    """Judge `value` against the SLO's min and max: a ratio's rate over `samples` requests (`events` its
    count when known, else value * samples), or a quantile of `buckets` (the cumulative histogram it was
    read from, the same look's; None: not carried, rule 3), or a shift between the means of `buckets`
    (the canary's scores) and `other` (stable's). Callers pass only finite values and samples > 0."""
    spec = slo.slo
    top = ceiling(slo)
    too_high = top is not None and value > top
    too_low = spec.min is not None and value < spec.min
    if not (too_high or too_low):
        return LimitCheck(Limit.WITHIN)
    if not tested(slo) or samples <= 0:
        return LimitCheck(Limit.BEYOND)
    bound = top if too_high else spec.min
    assert bound is not None  # too_high or too_low says which limit is set
    if slo.name in QUANTILE_SLOS:
        return _quantile_check(QUANTILE_SLOS[slo.name], bound, too_high, buckets, confidence)
    if slo.name in SHIFT_SLOS:
        return _shift_check(value, bound, too_high, buckets, other, confidence)
    count = min(max(events if events is not None else value * samples, 0.0), float(samples))
    # A max on the rate, or a min read as a max on its complement (the requests without the event).
    limit, beyond = (bound, count) if too_high else (1.0 - bound, samples - count)
    return _tested(beyond, samples, limit, confidence)


def _quantile_check(q: float, bound: float, too_high: bool, buckets: Buckets | None,
                    confidence: float) -> LimitCheck:
    """Rule 2 for a q-quantile: the requests on the far side of `bound` against the share q allows there."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return LimitCheck(Limit.BEYOND)  # no histogram to count in: the estimate decides (rule 3)
    counts = monotone(buckets)
    total = counts[-1][1]
    n = round(total)
    if n <= 0:  # a value from a histogram of no requests: nothing shows it beyond the limit
        return LimitCheck(Limit.UNSURE)
    at_or_below = cumulative_at(bound, counts)
    if too_high:  # more than (1 - q) of the requests slower than the max
        return _tested(total - at_or_below, n, 1.0 - q, confidence)
    return _tested(at_or_below, n, q, confidence)  # more than q of them at or below the min


MIN_OUTPUTS = 30
"""Outputs each track needs before a shift is tested: below it a spread read from a handful of scores and the
normal tail are too eager. minSamples counts requests; invalid outputs and a thin step can leave fewer."""


def _shift_check(shift: float, bound: float, too_high: bool, canary: Buckets | None, stable: Buckets | None,
                 confidence: float) -> LimitCheck:
    """Rule 2 for a shift of two means (score-shift's |mean_canary - mean_stable| over its `ceiling`): a
    one-sided z-test of "the distance is over the limit", each mean's variance read from its track's histogram
    (`_variance`). Means of bounded scores over at least MIN_OUTPUTS outputs are close to normal, so the normal
    tail is the test here, not a binomial one. A limit of 0 is a trip-wire (rule 3), as `max: 0` is for a
    rate: any distance crosses it, and the one-sided test of |d| > 0 has no meaning."""
    if not too_high or bound <= 0.0:
        return LimitCheck(Limit.BEYOND)  # a floor on a distance, or a trip-wire: the estimate decides (rule 3)
    moments = [_variance(b) for b in (canary, stable)]
    if any(m is None for m in moments):
        return LimitCheck(Limit.BEYOND)  # no histogram to read a spread from: the estimate decides (rule 3)
    (n_c, var_c), (n_s, var_s) = (m for m in moments if m is not None)
    if n_c < MIN_OUTPUTS or n_s < MIN_OUTPUTS:
        return LimitCheck(Limit.UNSURE)
    se = math.sqrt(var_c / n_c + var_s / n_s)
    if not se > 0.0:
        return LimitCheck(Limit.BEYOND)  # every output on one value: no spread, the estimate decides (rule 3)
    p = 1.0 - NormalDist().cdf((shift - bound) / se)
    return LimitCheck(Limit.BEYOND if p <= 1.0 - confidence else Limit.UNSURE, p)


def _variance(buckets: Buckets | None) -> tuple[float, float] | None:
    """(outputs, variance) of scores (0..1) from their histogram, each bucket clipped to 0..1 (+Inf holds
    scores from the largest finite bound up to 1) and read as an even spread across it, the assumption
    histogram_quantile makes: the variance of the buckets' midpoints plus each bucket's own width^2 / 12,
    weighted by its outputs (the law of total variance). Scores piled against 0 and 1 (a confident
    classifier) spread less evenly than that, and the estimate reads their variance up to a fifth low; a
    healthy canary's distance sits far under max, where that does not matter."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    counts = monotone(buckets)
    total = counts[-1][1]
    if total <= 0:
        return None
    spans: list[tuple[float, float, float]] = []  # (low, high, outputs), clipped to 0..1
    lower_bound, lower_count = 0.0, 0.0
    for le, cumulative in counts:
        low = min(lower_bound, 1.0)
        high = max(low, min(1.0, le))
        if cumulative > lower_count:
            spans.append((low, high, cumulative - lower_count))
        lower_bound, lower_count = (lower_bound if math.isinf(le) else le), cumulative
    mean = sum((lo + hi) / 2.0 * c for lo, hi, c in spans) / total
    between = sum(c * ((lo + hi) / 2.0 - mean) ** 2 for lo, hi, c in spans) / total
    within = sum(c * (hi - lo) ** 2 / 12.0 for lo, hi, c in spans) / total
    return total, between + within


def _tested(beyond: float, n: int, limit: float, confidence: float) -> LimitCheck:
    """`beyond` of `n` requests on the wrong side of a share `limit`: significant, or not yet."""
    if not 0.0 < limit < 1.0 or n <= 0:
        return LimitCheck(Limit.BEYOND)
    p = binomial_tail(round(min(max(beyond, 0.0), float(n))), n, limit)
    return LimitCheck(Limit.BEYOND if p <= 1.0 - confidence else Limit.UNSURE, p)


def cumulative_at(x: float, buckets: Buckets) -> float:
    """Requests at or below `x` in cumulative (non-decreasing) buckets, by linear interpolation within the
    bucket that holds `x` (the lowest bucket starting at 0), as stats.quantile reads a rank: the inverse of
    the same line, so below the largest finite bound `quantile(q) > x` exactly when more than 1 - q of the
    requests lie above `x`. Past that bound: all requests counted up to it (no quantile reads into +Inf, so
    no estimate exceeds it; between_bounds says so)."""
    lower_bound, lower_count = 0.0, 0.0
    for le, cumulative in buckets:
        if math.isinf(le):
            return lower_count
        if x <= le:
            if le <= lower_bound:
                return cumulative
            share = (x - lower_bound) / (le - lower_bound) if x > lower_bound else 0.0
            return lower_count + (cumulative - lower_count) * share
        lower_bound, lower_count = le, cumulative
    return lower_count


def between_bounds(slo: ResolvedSLO, buckets: Buckets | None) -> str | None:
    """Words for status when a tested quantile's limit is not on a finite bucket bound: strictly between two,
    the histogram cannot say where a request lies, and the estimate and the test both read the bucket as if
    its requests spread evenly (a healthy version with many requests in it can read far past the limit); at
    or past the largest finite bound, no estimate can exceed it (histogram_quantile never reads into +Inf),
    so a max there never fails. None when every limit is a bound below the largest, or without buckets."""
    if buckets is None or slo.name not in QUANTILE_SLOS or not tested(slo):
        return None
    bounds = [le for le, _ in buckets if math.isfinite(le)]
    if not bounds:
        return None
    for name, limit in (("min", slo.slo.min), ("max", slo.slo.max)):
        if limit is None:
            continue
        if limit >= bounds[-1]:
            return (f"{name} at or above the latency histogram's largest finite bound {bounds[-1]:g}, which no "
                    f"quantile exceeds: add a larger bound to the server's buckets")
        if any(math.isclose(limit, b, rel_tol=1e-9, abs_tol=1e-12) for b in bounds):
            continue
        inside = [(lo, hi) for lo, hi in zip([0.0, *bounds], bounds, strict=False) if lo < limit < hi]
        if inside:
            lo, hi = inside[0]
            return (f"{name} inside the latency histogram's bucket ({lo:g}, {hi:g}], read as if its requests "
                    f"spread evenly there: put it on a bucket bound")
    return None


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
