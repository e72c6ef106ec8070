"""Canary against baseline for one SLO at one look: which data, which test, which outcome.

Used for SLOs with `maxIncreaseOverBaseline` whose data the runtime measures as a stream (counts since
the canary started, so evidence accumulates over every step; see observations.StreamData). The rules,
first match wins:

1. The SLO's kind decides the test (stats.py): error-rate and invalid-output-rate are ratios (two-proportion
   test against the margin); latency-p50/p95/p99 are distributions (Mann-Whitney U on the histogram
   buckets, and the quantile from the same buckets against the margin). Anything else (custom queries,
   request-rate, SLO templates) keeps the raw difference of analysis.py; a built-in score-shift's
   maxIncreaseOverBaseline is its largest tolerated distance, tested on the window as its max (limits.ceiling).
2. Canary stream below minSamples, or not in the provider's answer at this look (asked for but left out:
   too young for two scrapes, a late scrape) -> TOO_FEW (no verdict on too little traffic, as for the
   window; never the raw difference of one window).
3. The baseline: the stable stream over the same time when it holds minSamples and grew since the last
   record, below full traffic (live); otherwise the stable track's last measurement carried forward
   (status.baselines) when it holds minSamples (carried: the 100% step and the bake window, where stable
   serves nothing); otherwise TOO_FEW, as for the canary in 2: a stable stream below minSamples (its series
   young: a stable deployed moments before) or left out of this answer is too little baseline traffic, no
   verdict yet, not missing data (under onNoData: fail that failed a healthy canary at once). NO_BASELINE
   (no data) is left for tracks that cannot be compared (histograms with different bucket bounds).
4. The always-valid p-value of a regression runs over every look of the stream (reset when a new stream
   starts, i.e. a new canary; status.pValue). A look whose own evidence is significant (1/L of this look
   at or below 1 - confidence: the mSPRT's stopping rule, which Ville's inequality bounds as it does the
   running value) with the effect beyond the margin at the same look -> REGRESSED. Not an earlier
   significant look joined to a later over-margin estimate: for latencies the test (ranks) and the effect
   (the quantile of the buckets) are different statistics, and one anomalous look would otherwise lend
   its p-value to every later look whose quantile is noisy. A regression whose evidence keeps growing
   fails at the same look either way; on thin traffic a look's evidence can dip after the running value
   crossed, and the verdict then waits for a look significant by itself (the seeded verdict bench: same
   detection rates, time to detect +2 pp on thin traffic 335 -> 355 s at p50). That is the only way a
   comparison fails: a difference that is not significant is never a rollback.
5. Point estimate beyond the margin but not significant -> OVER_MARGIN (no verdict yet: the step does
   not pass on it, the data keeps coming and the sequential test settles it), except against a carried
   baseline once the canary's stream holds at least as many requests as the baseline: WITHIN (passes).
   A carried baseline cannot grow (stable serves nothing), so its own sampling error is a floor under
   the test's: with 75 stable requests and no error among them (one in five healthy 2% streams), a
   healthy 2.1% canary was over a 2 pp margin at every look and never significant, and its 100% step
   held forever. Once the canary has as much data as the baseline, more canary data cannot settle it;
   a difference that is not significant is never a rollback, and the lower steps passed on live data.
6. Otherwise WITHIN (passes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from tollgate.api.status import BaselineRecord, SLOStatus
from tollgate.engine import stats
from tollgate.engine.observations import SLOObservation, StreamData
from tollgate.engine.policy import ResolvedSLO

RATIO_SLOS = frozenset({"error-rate", "invalid-output-rate"})
QUANTILE_SLOS = {"latency-p50": 0.5, "latency-p95": 0.95, "latency-p99": 0.99}
SHIFT_SLOS = frozenset({"score-shift"})
"""Built-in SLOs whose per-track values are judged by their distance (engine.analysis rule 0)."""


class Outcome(StrEnum):
    REGRESSED = "Regressed"
    OVER_MARGIN = "OverMargin"
    WITHIN = "Within"
    TOO_FEW = "TooFew"
    NO_BASELINE = "NoBaseline"


@dataclass(frozen=True)
class Compared:
    outcome: Outcome
    fields: dict[str, object]
    """SLOStatus fields to set (test, effect, interval, pValue, samples, baseline source)."""
    detail: str
    """The comparison in words, for messages and evidence."""


def by_test(slo: ResolvedSLO) -> bool:
    """The SLO's kind is compared with its baseline by a test (rule 1), given its stream."""
    s = slo.slo
    if s.maxIncreaseOverBaseline is None or s.query is not None or s.templateRef is not None:
        return False
    return s.name in RATIO_SLOS or s.name in QUANTILE_SLOS


def applies(slo: ResolvedSLO, obs: SLOObservation) -> bool:
    """The statistical comparison judges this SLO at this look (else the raw difference does): its kind
    is compared by a test and the runtime asked for its stream (stream_since), whether or not the answer
    held the stream. A look whose answer left the stream out (a stream younger than two scrapes, a late
    or slow scrape under load) has no verdict (TOO_FEW, no samples); judging it on the window's raw
    difference instead would fail a healthy canary on one noisy window. Only a caller that measured no
    stream at all (stream_since None) gets the raw difference."""
    return by_test(slo) and obs.stream_since is not None


def stream_value(slo: ResolvedSLO, data: StreamData) -> float | None:
    """The SLO's value over the stream: the ratio, or the quantile of the buckets."""
    if slo.name in RATIO_SLOS:
        return data.events / data.samples if data.events is not None and data.samples > 0 else None
    if slo.name in QUANTILE_SLOS and data.buckets is not None:
        return stats.quantile(QUANTILE_SLOS[slo.name], data.buckets)
    return None


def record(
    slo: ResolvedSLO, obs: SLOObservation, *, at: str, step: int, weight: int, previous: BaselineRecord | None = None,
) -> BaselineRecord | None:
    """The stable stream as the baseline to carry forward, when it holds at least minSamples and grew since
    `previous` (else None: keep the previous record, which says where the data was measured)."""
    live = obs.stable_stream
    if live is None or live.samples < max(slo.min_samples, 1) or not applies(slo, obs):
        return None
    if previous is not None and previous.since == obs.stream_since and live.samples <= previous.samples:
        return None
    bounds = counts = None
    if live.buckets is not None:
        bounds = [le for le, _ in live.buckets[:-1]]
        counts = [c for _, c in live.buckets]
    return BaselineRecord(name=slo.name, samples=live.samples, events=live.events, bounds=bounds,
                          counts=counts, since=obs.stream_since, at=at, step=step, weight=weight)


def _carried_stream(rec: BaselineRecord) -> StreamData:
    buckets = None
    if rec.bounds is not None and rec.counts is not None and len(rec.counts) == len(rec.bounds) + 1:
        buckets = tuple(zip([*rec.bounds, float("inf")], rec.counts, strict=True))
    return StreamData(samples=rec.samples, events=rec.events, buckets=buckets)


def compare(
    slo: ResolvedSLO, obs: SLOObservation, prev: SLOStatus, carried: BaselineRecord | None, *, confidence: float,
    full_traffic: bool = False,
) -> Compared:
    """One look of the comparison; call only when `applies` is true. `full_traffic`: the canary takes
    all traffic (the 100% step, the bake window): stable serves nothing, the carried baseline judges."""
    canary = obs.canary_stream
    assert obs.stream_since is not None
    minimum = max(slo.min_samples, 1)
    if canary is None:
        return Compared(Outcome.TOO_FEW, {"streamSince": obs.stream_since, "streamSamples": 0},
                        f"no canary stream since {obs.stream_since} in the provider's answer yet, "
                        f"minSamples {minimum}")
    base_fields: dict[str, object] = {"streamSince": obs.stream_since, "streamSamples": canary.samples}
    if canary.samples < minimum:
        return Compared(Outcome.TOO_FEW, base_fields,
                        f"{canary.samples} canary requests since the canary started, minSamples {minimum}")

    live = obs.stable_stream
    if carried is not None and carried.since != obs.stream_since:
        carried = None  # measured for another canary's stream
    grew = live is not None and (carried is None or (live.samples > carried.samples and not full_traffic))
    if live is not None and live.samples >= minimum and grew:
        baseline, source, origin = live, "live", f"stable since {obs.stream_since}"
    elif carried is not None and carried.samples >= minimum:
        baseline, source = _carried_stream(carried), "carried"
        origin = (f"stable at step {carried.step + 1} ({carried.weight}% canary), {carried.since} to "
                  f"{carried.at}")
    else:
        # Too little stable traffic is no verdict, as too little canary traffic is (rule 2): bounded by
        # maxNoDataDuration, then onNoData decides. As missing data, onNoData: fail failed the check at once,
        # and a healthy canary whose stable was deployed moments before (young series) was rolled back.
        have = live.samples if live is not None else 0
        return Compared(Outcome.TOO_FEW, {**base_fields, "baselineSamples": have, "baselineSource": None,
                                          "baselineFrom": None},
                        f"no baseline: {have} stable requests since the canary started and none carried, "
                        f"minSamples {minimum}")

    margin = slo.slo.maxIncreaseOverBaseline or 0.0
    try:
        if slo.name in RATIO_SLOS:
            if canary.events is None or baseline.events is None:
                raise ValueError("no event counts in the stream")
            comp = stats.compare_proportions(canary.events, canary.samples, baseline.events, baseline.samples,
                                             margin=margin, confidence=confidence)
            increase = comp.effect
            words = f"{comp.effect:+.4f} rate difference"
        else:
            if canary.buckets is None or baseline.buckets is None:
                raise ValueError("no histogram buckets in the stream")
            comp = stats.compare_distributions(canary.buckets, baseline.buckets, confidence=confidence)
            q = QUANTILE_SLOS[slo.name]
            qc, qb = stats.quantile(q, canary.buckets), stats.quantile(q, baseline.buckets)
            if qc is None or qb is None:
                raise ValueError("empty histogram")
            increase = qc - qb
            words = f"p{round(q * 100)} {qc:.4g}s vs {qb:.4g}s ({increase:+.4g}s), superiority {comp.effect:+.3f}"
    except ValueError as exc:
        return Compared(Outcome.NO_BASELINE, {**base_fields, "baselineSource": source, "baselineFrom": origin},
                        f"cannot compare: {exc}")

    previous = prev.pValue if prev.streamSince == obs.stream_since else None
    p_value = stats.always_valid_p(previous, comp)
    p_here = stats.always_valid_p(None, comp)  # this look's own evidence (rule 4)
    fields: dict[str, object] = {
        **base_fields, "test": comp.test, "effect": comp.effect, "effectLower": comp.lower,
        "effectUpper": comp.upper, "pValue": p_value, "baselineSamples": comp.baseline_n,
        "baselineSource": source, "baselineFrom": origin,
    }
    alpha = 1.0 - confidence
    detail = (f"{comp.test}: {words} over margin {margin:g}; always-valid p {p_value:.3g}, {p_here:.3g} at this "
              f"look (alpha {alpha:.3g}); canary {comp.canary_n} vs {source} baseline {comp.baseline_n} requests")
    if p_here <= alpha and increase > margin:
        return Compared(Outcome.REGRESSED, fields, detail)
    if increase > margin:
        if source == "carried" and comp.canary_n >= comp.baseline_n:
            return Compared(Outcome.WITHIN, fields,
                            f"{detail}; over the margin but not significant against a carried baseline, which "
                            f"cannot grow at full traffic: passes (rule 5)")
        return Compared(Outcome.OVER_MARGIN, fields, detail)
    return Compared(Outcome.WITHIN, fields, detail)


def carry_forward(
    slos: Sequence[ResolvedSLO], observed: Sequence[SLOObservation], records: Sequence[BaselineRecord], *,
    at: str, step: int, weight: int,
) -> list[BaselineRecord]:
    """status.baselines after one look: per SLO, the stable stream's newest measurement while stable
    serves traffic (canary weight below 100) and its stream grows, else the record kept from before
    (bounded by the number of SLOs). The last requests stable served before the 100% step, scraped a
    moment later, do not move the record to the 100% step."""
    if weight >= 100:
        return list(records)
    by_name = {r.name: r for r in records}
    obs_by_name = {o.name: o for o in observed if o.error is None}
    out: list[BaselineRecord] = []
    for slo in slos:
        obs = obs_by_name.get(slo.name)
        previous = by_name.get(slo.name)
        new = record(slo, obs, at=at, step=step, weight=weight, previous=previous) if obs is not None else None
        if new is not None:
            out.append(new)
        elif previous is not None:
            out.append(previous)
    return out
