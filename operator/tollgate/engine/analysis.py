"""Analysis verdicts: one SLO check at one tick, and what a tick means for the rollout.

Plan, measure, assess: the runtime measures (SLOObservation: each track's value as the provider
returned it); this module assesses, the rollout only consumes the outcome.

0. A shift SLO (SHIFT_SLOS: score-shift) is judged on the distance between the tracks: the canary
   value becomes |canary - stable| and the baseline 0, so both `max` and `maxIncreaseOverBaseline`
   read as the largest tolerated shift; without both values there is no data.

Order of a check, first match wins:

1. provider error                       -> Error (consecutiveErrors + 1; failures unchanged). Every
   other verdict (Pass, NoData, Inconclusive, Fail) resets consecutiveErrors to 0: the limit counts
   errors in a row, as Argo Rollouts' consecutiveErrorLimit, so errors with any other look between
   them never add up to a fail-closed rollback. Time the provider could not answer is no part of a run
   without a verdict (2, 3): an error moves that run's noDataSince forward by the time since the
   previous look, unless the run had reached maxNoDataDuration already.
2. canary samples < minSamples          -> Inconclusive (no verdict on too little traffic; samples and
   values are those of the window, or of the canary's stream for SLOs compared as in 5, where a stream
   asked for but missing from the provider's answer counts 0 requests). Bounded:
   too little traffic is a run without a verdict like missing data (same noDataSince clock), so once
   it has lasted maxNoDataDuration the SLO follows onNoData: pass -> NoData, counts as passing;
   fail or hold -> Fail. A canary that never gets enough traffic cannot hold its step forever.
   The run counts the time it was looked at: a gap between two looks counts up to Policy.look_gap (two
   analysis intervals, at least ten seconds more than one), the rest moves noDataSince forward, so time
   nobody judged the SLO (a step without analysis, a missing template, an SLO left unjudged at full
   traffic, the operator down) never fails a canary at its first thin look after it.
3. canary value missing, NaN or +-Inf   -> no data, then onNoData:
   pass -> NoData, counts as passing; fail -> Fail; hold -> NoData until maxNoDataDuration has passed
   since the run of missing data began (noDataSince), then Fail (and every no-data check after it).
   Time paused is not part of the run: a resume clears noDataSince of a run that had not failed yet
   (engine.rules.steps, rule 7).
   A young window (the observation's range shorter than the policy's window: a canary younger than the
   window is measured only since it started, rollout.Case.analysis_request) is no verdict under fail
   too: Inconclusive, bounded as in 2. Its range may be too short to hold data, and cutting it must
   never fail a check by itself.
4. value below min or above max         -> Fail; for error-rate, invalid-output-rate, the latency quantiles and a
   score-shift's max (or maxIncreaseOverBaseline: limits.ceiling) only when this look's counts (errors, requests
   slower than the limit in the histogram's buckets, the spread of both tracks' scores) show the version beyond the
   limit at the configured confidence (engine.limits: an exact binomial test, a z-test for the shift). Beyond it but
   not significant -> Inconclusive: on the canary's stream (SLOs compared as in 5) not bounded, the growing data
   settle it; on the window bounded as in 2, and once the run lasted maxNoDataDuration -> Fail under every onNoData
   (a window never grows, and an estimate beyond the limit for that long is not missing data). On the point estimate
   alone, the tiers' defaults rolled back one canary in four that erred at half its limit, as often as its stable,
   and three in four whose p99 sat just under its latency limit.
5. maxIncreaseOverBaseline set, and the runtime asked for the canary's stream (comparison.applies: ratio
   and latency templates; stream_since set, even when the answer left the stream out): the statistical
   comparison of comparison.py, against the live stable stream or the baseline carried forward.
   Regressed (significant at its own look, comparison rule 4) -> Fail; within the margin -> Pass; too
   few samples on either side (the canary's stream, or stable's with nothing carried; or no stream in the
   answer) -> Inconclusive, bounded as in 2; over the margin but not significant -> Inconclusive, not
   bounded (data keeps coming; the sequential test settles it; against a carried baseline, which cannot
   grow, it passes once the canary has as much data); tracks that cannot be compared (different bucket
   bounds) -> no data as in 3.
   Otherwise (custom queries, other templates): stable value missing/NaN -> no data as in 3;
   canary - stable > maxIncreaseOverBaseline -> Fail
6. otherwise                            -> Pass

A tick passes when every SLO passed (or had no data under onNoData: pass). An SLO whose failures exceed
failureLimit, or whose consecutive errors exceed consecutiveErrorLimit, ends the rollout in the same
tick: errors fail closed, they never promote.

At full traffic (the 100% step; the bake window, engine.bake_analysis) stable serves nothing, so once the
window no longer holds its requests an SLO judged against stable's live data would have none at every look,
and a healthy canary would be held, then failed by onNoData once maxNoDataDuration had passed. So at the
100% step an SLO whose observation still has a live stable value is judged as at any step, and one without
(always in the bake window) as `full_traffic_slos` says; an SLO not judged keeps its last status:
- a shift SLO is not judged: it needs two tracks serving at once;
- `maxIncreaseOverBaseline` is judged only against a baseline the stable track recorded at a lower step
  (status.baselines, carried forward: engine.comparison); without one the relative limit is dropped, and
  an SLO with no min or max left is not judged;
- absolute limits (min, max) are judged as at any step: a bad canary at 100% still fails.

A dry-run SLO (`dryRun: true`, as Argo Rollouts' dryRun) is judged by the same rules and shown in status
with its verdict, but never gates: it neither holds a step nor rolls back, whatever its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tollgate.api.spec import NoDataPolicy
from tollgate.api.status import BaselineRecord, SLOStatus, Verdict
from tollgate.engine import comparison, limits
from tollgate.engine.comparison import SHIFT_SLOS, Outcome
from tollgate.engine.limits import Limit
from tollgate.engine.observations import MetricValue, SLOObservation
from tollgate.engine.policy import ResolvedSLO
from tollgate.engine.timeutil import format_time, parse_duration, parse_time, seconds_between

MISSING_OBSERVATION = "no observation for this SLO in the analysis tick"



def full_traffic_slos(slos: Sequence[ResolvedSLO], carried: Collection[str]) -> tuple[ResolvedSLO, ...]:
    """The SLOs judged when the judged track serves all traffic and stable none (the 100% step, the bake
    window), as they are judged there (module docstring); `carried` names the SLOs with a baseline carried
    forward (status.baselines). Without this, a relative check has no stable data and onNoData decides."""
    out: list[ResolvedSLO] = []
    for resolved in slos:
        slo = resolved.slo
        if slo.name in SHIFT_SLOS and slo.query is None:
            continue
        if slo.maxIncreaseOverBaseline is not None and slo.name not in carried:
            if slo.min is None and slo.max is None:
                continue
            out.append(replace(resolved, slo=slo.model_copy(update={"maxIncreaseOverBaseline": None})))
            continue
        out.append(resolved)
    return tuple(out)


def _at_full_traffic(
    slos: Sequence[ResolvedSLO], observed: Mapping[str, SLOObservation], previous: Mapping[str, SLOStatus],
    carried: Collection[str],
) -> tuple[tuple[ResolvedSLO, ...], tuple[SLOStatus, ...]]:
    """The SLOs judged at a tick of the 100% step, and the statuses kept unjudged: an SLO whose observation
    still holds a live stable value (stable served within the window) is judged as at any step; one
    without is judged as `full_traffic_slos` says, and an SLO that leaves out entirely keeps its last
    status (the evidence of its last judged look) without counting towards the tick."""
    reduced = {r.slo.name: r for r in full_traffic_slos(slos, carried)}
    judged: list[ResolvedSLO] = []
    kept: list[SLOStatus] = []
    for resolved in slos:
        obs = observed.get(resolved.slo.name)
        if obs is not None and obs.error is None and finite(obs.stable) is not None:
            judged.append(resolved)
        elif resolved.slo.name in reduced:
            judged.append(reduced[resolved.slo.name])
        elif resolved.slo.name in previous:
            kept.append(previous[resolved.slo.name])
    return tuple(judged), tuple(kept)


def finite(metric: MetricValue | None) -> float | None:
    """The value when it is a real number; None for missing, empty, NaN and +-Inf."""
    if metric is None or metric.value is None:
        return None
    value = float(metric.value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Check:
    """One SLO judged at one tick."""

    status: SLOStatus
    passing: bool
    """Counts towards a passing tick (Pass, or NoData under onNoData: pass)."""


def compared(slo: ResolvedSLO, obs: SLOObservation | None) -> SLOObservation | None:
    """The observation as it is judged (rule 0): a shift SLO's tracks become their distance."""
    if obs is None or obs.error is not None or slo.name not in SHIFT_SLOS or slo.slo.query is not None:
        return obs
    canary = obs.canary.value if obs.canary is not None else None
    stable = obs.stable.value if obs.stable is not None else None
    shift = abs(canary - stable) if canary is not None and stable is not None else None
    # Each side keeps its own histogram: the test of a shift's max needs both (engine.limits).
    return replace(
        obs,
        canary=MetricValue(shift, obs.canary.samples if obs.canary is not None else 0,
                           buckets=obs.canary.buckets if obs.canary is not None else None),
        stable=MetricValue(0.0 if stable is not None else None, obs.stable.samples if obs.stable is not None else 0,
                           buckets=obs.stable.buckets if obs.stable is not None else None),
    )


def judge(
    slo: ResolvedSLO, obs: SLOObservation | None, prev: SLOStatus | None, now: datetime, *,
    carried: BaselineRecord | None = None, confidence: float = 0.99, failure_gap: float = 0.0,
    full_traffic: bool = False, window: str | None = None, look_gap: float | None = None,
) -> Check:
    """Judge one SLO; `prev` is its status from the previous tick of this canary (None at first);
    `carried` the stable track's last measurement of this SLO (status.baselines). A failure other than a
    significant regression counts only `failure_gap` seconds after the last counted one: looks come
    every scrape interval, and one bad window seen at several looks is still one failed check.
    `window`: the policy's; an observation over a shorter range is a young window (rule 3). `look_gap`:
    the longest time between two looks a run without a verdict counts whole (rule 2; None: any)."""
    obs = compared(slo, obs)
    base = prev if prev is not None else SLOStatus(name=slo.name)
    at = format_time(now)
    common: dict[str, object] = {"lastCheckedAt": at, "threshold": slo.threshold_text(), "limitPValue": None}
    if obs is None or obs.error is not None:
        status = base.model_copy(update={
            **common,
            "verdict": Verdict.ERROR,
            "consecutiveErrors": base.consecutiveErrors + 1,
            "noDataSince": _unlooked(slo, base, now),
        })
        return Check(status, passing=False)
    # Not an error: the run of errors in a row is over, whatever the verdict below (rule 1).
    base = base.model_copy(update={"consecutiveErrors": 0})

    samples = obs.canary.samples if obs.canary is not None else 0
    canary = finite(obs.canary)
    stable = finite(obs.stable)
    on_stream = comparison.applies(slo, obs)
    stream = obs.canary_stream if on_stream else None
    if on_stream:
        # Compared with the baseline: every limit is judged on the canary's data so far (the stream), and
        # minSamples counts the stream's requests, the sample the test uses. A stream the answer left out
        # counts no request: no verdict, never the window's raw difference.
        samples = stream.samples if stream is not None else 0
        canary = comparison.stream_value(slo, stream) if stream is not None else None
        stable = comparison.stream_value(slo, obs.stable_stream) if obs.stable_stream else None
        common.update({"streamSince": obs.stream_since, "streamSamples": samples})
    common.update({"samples": samples})
    values: dict[str, object] = {"value": canary, "baseline": stable}
    counted = stream if on_stream else obs.canary
    buckets = counted.buckets if counted is not None else None  # a latency limit's counts (engine.limits)
    if (caveat := limits.between_bounds(slo, buckets)) is not None:
        common["threshold"] = f"{common['threshold']} ({caveat})"

    if samples < slo.min_samples:
        return _inconclusive(slo, base, {**common, **values}, now, failure_gap, look_gap)

    spec = slo.slo
    if canary is not None:
        limit = limits.check(slo, canary, samples, events=stream.events if stream is not None else None,
                             buckets=buckets, confidence=confidence,
                             other=obs.stable.buckets if obs.stable is not None else None)
        common["limitPValue"] = limit.p_value
        if limit.outcome is Limit.BEYOND:
            return _fail(base, {**common, **values, "noDataSince": None}, now, failure_gap)
        if limit.outcome is Limit.UNSURE and stream is not None:
            # On the stream the evidence grows at every look and settles it, as for OVER_MARGIN below.
            return _waiting(base, {**common, **values})
        if limit.outcome is Limit.UNSURE:
            # A window never grows: bounded, and then a failure whatever onNoData says.
            return _inconclusive(slo, base, {**common, **values}, now, failure_gap, look_gap,
                                 on_bound=NoDataPolicy.FAIL)
        if spec.maxIncreaseOverBaseline is None:
            return _pass(base, {**common, **values, "noDataSince": None})
        if on_stream:
            outcome = comparison.compare(slo, obs, base, carried, confidence=confidence,
                                         full_traffic=full_traffic)
            judged = {**common, **values, **outcome.fields}
            if outcome.outcome is Outcome.REGRESSED:
                return _fail(base, {**judged, "noDataSince": None}, now)
            if outcome.outcome is Outcome.WITHIN:
                return _pass(base, {**judged, "noDataSince": None})
            if outcome.outcome is Outcome.OVER_MARGIN:
                # Not bounded by maxNoDataDuration: data keeps arriving and the sequential test is
                # consistent (a regression beyond the margin becomes significant, a canary within it
                # falls back under the margin), so holding never turns noise into a rollback. Against a
                # carried baseline, which cannot grow, compare() settles it once the canary has as much
                # data (comparison rule 5): otherwise a low baseline by chance held a healthy 100% forever.
                return _waiting(base, judged)
            if outcome.outcome is Outcome.TOO_FEW:
                return _inconclusive(slo, base, judged, now, failure_gap, look_gap)
            # Tracks that cannot be compared (NO_BASELINE): the no-data rules below (onNoData, bounded).
            values = {**values, **outcome.fields}
            stable = None
        if stable is not None:
            if canary - stable > spec.maxIncreaseOverBaseline:
                return _fail(base, {**common, **values, "noDataSince": None}, now, failure_gap)
            return _pass(base, {**common, **values, "noDataSince": None})

    # No usable data: the canary value, or the baseline a relative threshold needs, is missing.
    if slo.on_no_data is NoDataPolicy.PASS:
        status = base.model_copy(update={**common, **values, "verdict": Verdict.NO_DATA, "noDataSince": None})
        return Check(status, passing=True)
    if slo.on_no_data is NoDataPolicy.FAIL:
        if _young(obs.window, window):
            return _inconclusive(slo, base, {**common, **values}, now, failure_gap, look_gap)
        return _fail(base, {**common, **values}, now, failure_gap)
    since = _run_start(base, now, look_gap)
    update: dict[str, object] = {**common, **values, "noDataSince": format_time(since)}
    if seconds_between(since, now) >= slo.max_no_data_seconds:
        return _fail(base, update, now, failure_gap)
    return Check(base.model_copy(update={**update, "verdict": Verdict.NO_DATA}), passing=False)


def _unlooked(slo: ResolvedSLO, base: SLOStatus, now: datetime) -> str | None:
    """noDataSince after a look the provider could not answer (rule 1): moved forward by the time since
    the previous look, so a run without a verdict counts only time the analysis looked and saw none. An
    outage says nothing of the canary's data, and it is bounded by consecutiveErrorLimit; counted as
    missing data, a Prometheus restart longer than what was left of maxNoDataDuration failed a healthy
    canary at its first thin look after it. A run that had reached the bound already keeps its start
    (the Fail it recorded stays explained)."""
    since, last = parse_time(base.noDataSince), parse_time(base.lastCheckedAt)
    if since is None or last is None or now <= last or seconds_between(since, last) >= slo.max_no_data_seconds:
        return base.noDataSince
    return format_time(min(since + (now - last), now))


def _young(measured: str, window: str | None) -> bool:
    """The observation covered less than the policy's window: a canary younger than the window."""
    if window is None:
        return False
    try:
        return parse_duration(measured) < parse_duration(window)
    except ValueError:
        return False


def _run_start(base: SLOStatus, now: datetime, look_gap: float | None) -> datetime:
    """Where the run without a verdict that this look continues (or starts) counts from: noDataSince,
    moved forward by what the gap since the previous look exceeds `look_gap`. Time nobody looked is no
    evidence of missing data: a step without analysis, a missing template, an SLO left unjudged at full
    traffic, the operator down. Counted, it failed a healthy canary at its first thin look after any of
    them. Never later than now (a clock set back)."""
    since = parse_time(base.noDataSince)
    if since is None:
        return now
    last = parse_time(base.lastCheckedAt)
    if look_gap is not None and last is not None:
        unlooked = seconds_between(last, now) - look_gap
        if unlooked > 0:
            since += timedelta(seconds=unlooked)
    return min(since, now)


def _inconclusive(
    slo: ResolvedSLO, base: SLOStatus, update: dict[str, object], now: datetime, gap: float = 0.0,
    look_gap: float | None = None, on_bound: NoDataPolicy | None = None,
) -> Check:
    """No verdict yet (too few samples, a young window, a limit crossed but not proven on a window),
    bounded: a run of checks without a verdict shares the noDataSince clock, and once it lasted
    maxNoDataDuration `on_bound` decides (default the SLO's onNoData: pass -> NoData, counts as passing;
    fail or hold -> Fail)."""
    since = _run_start(base, now, look_gap)
    held: dict[str, object] = {**update, "noDataSince": format_time(since)}
    if seconds_between(since, now) < slo.max_no_data_seconds:
        return Check(base.model_copy(update={**held, "verdict": Verdict.INCONCLUSIVE}), passing=False)
    # Without a verdict for maxNoDataDuration: no longer "wait for more", the policy decides.
    if (on_bound or slo.on_no_data) is NoDataPolicy.PASS:
        return Check(base.model_copy(update={**held, "verdict": Verdict.NO_DATA}), passing=True)
    return _fail(base, held, now, gap)


def _waiting(base: SLOStatus, update: dict[str, object]) -> Check:
    """No verdict yet and no bound (data on the stream keep coming and settle it): Inconclusive, outside
    any run without a verdict."""
    return Check(base.model_copy(update={**update, "verdict": Verdict.INCONCLUSIVE, "noDataSince": None}),
                 passing=False)


def _fail(base: SLOStatus, update: dict[str, object], now: datetime, gap: float = 0.0) -> Check:
    last = parse_time(base.lastFailedAt)
    counted = last is None or seconds_between(last, now) >= gap
    failures = base.failures + 1 if counted else base.failures
    at = format_time(now) if counted else base.lastFailedAt
    status = base.model_copy(update={**update, "verdict": Verdict.FAIL, "failures": failures, "lastFailedAt": at})
    return Check(status, passing=False)


def _pass(base: SLOStatus, update: dict[str, object]) -> Check:
    status = base.model_copy(update={**update, "verdict": Verdict.PASS})
    return Check(status, passing=True)


@dataclass(frozen=True)
class TickOutcome:
    """What one analysis tick means for the rollout."""

    slos: tuple[SLOStatus, ...]
    passed: bool
    """Every SLO passing."""
    failed: tuple[str, ...]
    """SLOs whose failures now exceed failureLimit: roll back now."""
    errored: tuple[str, ...]
    """SLOs whose consecutive errors now exceed consecutiveErrorLimit: fail closed, roll back now."""
    failing: tuple[str, ...]
    """SLOs that failed this tick (within the limit or not)."""
    erroring: tuple[str, ...]
    """SLOs with a provider error this tick."""

    @property
    def must_roll_back(self) -> bool:
        return bool(self.failed or self.errored)


def assess(
    slos: Sequence[ResolvedSLO],
    previous: Sequence[SLOStatus],
    observed: Sequence[SLOObservation],
    now: datetime,
    *,
    failure_limit: int,
    consecutive_error_limit: int,
    baselines: Sequence[BaselineRecord] = (),
    confidence: float = 0.99,
    failure_gap: float = 0.0,
    full_traffic: bool = False,
    window: str | None = None,
    look_gap: float | None = None,
) -> TickOutcome:
    """Judge every configured SLO of one tick. Observations of unknown SLOs are ignored; a configured
    SLO without an observation counts as a provider error (the tick did not measure it). `full_traffic`:
    the canary serves all traffic, so an SLO without a live stable value is judged as `full_traffic_slos`
    says (`_at_full_traffic`). `window`: the policy's, to tell a young window (rule 3); None: none is.
    `look_gap`: the policy's (Policy.look_gap), the longest time between two looks a run without a verdict
    counts whole (rule 2); None: any."""
    prev_by_name = {s.name: s for s in previous}
    obs_by_name = {o.name: o for o in observed}
    carried = {b.name: b for b in baselines}
    kept: tuple[SLOStatus, ...] = ()
    if full_traffic:
        slos, kept = _at_full_traffic(slos, obs_by_name, prev_by_name, carried)
    checks = [judge(slo, obs_by_name.get(slo.name), prev_by_name.get(slo.name), now,
                    carried=carried.get(slo.name), confidence=confidence, failure_gap=failure_gap,
                    full_traffic=full_traffic, window=window, look_gap=look_gap)
              for slo in slos]
    statuses = tuple(
        c.status.model_copy(update={"dryRun": True}) if slo.slo.dryRun else c.status
        for c, slo in zip(checks, slos, strict=True)
    )
    gating = [(c, s) for c, s, slo in zip(checks, statuses, slos, strict=True) if not slo.slo.dryRun]
    return TickOutcome(
        slos=statuses + kept,
        passed=all(c.passing for c, _ in gating),
        failed=tuple(s.name for _, s in gating if s.failures > failure_limit),
        errored=tuple(s.name for _, s in gating if s.consecutiveErrors > consecutive_error_limit),
        failing=tuple(s.name for _, s in gating if s.verdict is Verdict.FAIL),
        erroring=tuple(s.name for _, s in gating if s.verdict is Verdict.ERROR),
    )
