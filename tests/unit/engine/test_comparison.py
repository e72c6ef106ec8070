"""Canary against baseline by a test, not a raw difference (given an SLO and a look, then a verdict)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tollgate.api.spec import SLO
from tollgate.api.status import BaselineRecord, SLOStatus, Verdict
from tollgate.engine.analysis import assess, judge
from tollgate.engine.comparison import carry_forward, record
from tollgate.engine.observations import MetricValue, SLOObservation, StreamData
from tollgate.engine.policy import ResolvedSLO

from .conftest import T0

SINCE = "2026-03-01T11:59:00Z"
LE = (0.025, 0.05, 0.1, 0.25, 0.5, math.inf)


def error_rate(margin: float = 0.004, min_samples: int = 100, **fields: object) -> ResolvedSLO:
    slo = SLO.model_validate({"name": "error-rate", "max": 0.2, "maxIncreaseOverBaseline": margin, **fields})
    return ResolvedSLO(slo, min_samples, 120)


def look(canary: tuple[int, int], stable: tuple[int, int] | None, since: str = SINCE) -> SLOObservation:
    """(errors, requests) per track since the step began; the window values alike."""
    xc, nc = canary
    stable_stream = StreamData(stable[1], float(stable[0])) if stable is not None else None
    stable_value = MetricValue(stable[0] / stable[1] if stable and stable[1] else None, stable[1] if stable else 0)
    return SLOObservation("error-rate", MetricValue(xc / nc, nc), stable_value, stream_since=since,
                          canary_stream=StreamData(nc, float(xc)), stable_stream=stable_stream)


def test_a_difference_the_raw_rule_fails_on_is_noise_and_no_rollback() -> None:
    # given 3/200 canary errors against 18/1800 on stable: +0.5 pp over a 0.4 pp margin
    check = judge(error_rate(), look((3, 200), (18, 1800)), None, T0)
    # then no failure: over the margin but not significant, the step just does not pass yet
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.failures == 0
    assert check.status.test == "two-proportion"
    assert check.status.effect is not None and math.isclose(check.status.effect, 0.005)
    assert check.status.effectLower is not None and check.status.effectLower < 0 < (check.status.effectUpper or 0)
    assert (check.status.streamSamples, check.status.baselineSamples) == (200, 1800)
    assert check.status.baselineSource == "live"


def test_within_the_margin_passes() -> None:
    check = judge(error_rate(), look((2, 200), (18, 1800)), None, T0)
    assert check.status.verdict is Verdict.PASS and check.passing


def test_a_significant_regression_fails_at_once() -> None:
    check = judge(error_rate(margin=0.01), look((80, 1000), (10, 1000)), None, T0)
    assert check.status.verdict is Verdict.FAIL and check.status.failures == 1
    assert check.status.pValue is not None and check.status.pValue <= 0.01


def test_the_always_valid_p_value_runs_over_the_looks_at_one_canary_and_restarts_with_the_next() -> None:
    slo = error_rate(margin=0.0)
    first = judge(slo, look((9, 400), (20, 4000)), None, T0).status
    second = judge(slo, look((12, 800), (40, 8000)), first, T0 + timedelta(seconds=5)).status
    assert first.pValue is not None and second.pValue is not None and second.pValue <= first.pValue
    # a new canary: a new stream, the evidence about the previous one does not carry over
    fresh = judge(slo, look((1, 400), (20, 4000), since="2026-03-01T12:05:00Z"), second, T0 + timedelta(minutes=5))
    assert fresh.status.pValue == 1.0


def test_at_full_traffic_the_carried_baseline_is_used_and_named() -> None:
    # given the 100% step: stable serves nothing, its stream stopped growing at its last record
    carried = BaselineRecord(name="error-rate", samples=3000, events=30.0, since=SINCE,
                             at="2026-03-01T11:59:30Z", step=1, weight=50)
    check = judge(error_rate(), look((10, 1000), (30, 3000)), None, T0, carried=carried)
    # then the verdict compares with the carried measurement, and status says which baseline it used
    assert check.status.verdict is Verdict.PASS
    assert check.status.baselineSource == "carried" and check.status.baselineSamples == 3000
    assert check.status.baselineFrom is not None and "step 2 (50% canary)" in check.status.baselineFrom
    # and with stable traffic gone from the stream altogether, the carried baseline still judges
    assert judge(error_rate(), look((10, 1000), (0, 0)), None, T0, carried=carried).status.verdict is Verdict.PASS


def test_at_full_traffic_a_carried_baseline_keeps_the_relative_limit() -> None:
    # given the 100% step and the stable stream's record carried from the 50% step
    carried = BaselineRecord(name="error-rate", samples=3000, events=30.0, since=SINCE,
                             at="2026-03-01T11:59:30Z", step=1, weight=50)
    # when the canary's error rate is 8% against the carried 1%, within its max of 20%
    tick = assess([error_rate()], [], [look((80, 1000), (0, 0))], T0, failure_limit=0, consecutive_error_limit=0,
                  baselines=[carried], full_traffic=True)
    # then maxIncreaseOverBaseline is still judged, against the carried baseline: a regression fails
    assert tick.slos[0].verdict is Verdict.FAIL and tick.slos[0].baselineSource == "carried"
    assert tick.failed == ("error-rate",)


def test_over_the_margin_against_a_small_carried_baseline_passes_once_the_canary_has_as_much_data() -> None:
    # given the 100% step and a carried stable record of 75 requests with no error (a healthy 2% stable
    # gives that one time in five), and a healthy canary at 2.1% against a 2 pp margin
    slo = ResolvedSLO(SLO(name="error-rate", max=0.2, maxIncreaseOverBaseline=0.02), 20, 120)
    carried = BaselineRecord(name="error-rate", samples=75, events=0.0, since=SINCE,
                             at="2026-03-01T11:59:30Z", step=0, weight=50)
    previous = None
    # when it is looked at as its stream grows
    for errors, n in ((3, 100), (22, 1000), (303, 14222)):  # the last: what a stalled run showed
        check = judge(slo, look((errors, n), (0, 0)), previous, T0, carried=carried, full_traffic=True)
        previous = check.status
        # then it is over the margin at every look, never significant, and passes: the baseline cannot
        # grow, so holding would wait for evidence that never comes (the step held forever before)
        assert (check.status.effect or 0) > 0.02 and (check.status.pValue or 0) > 0.01, check.status
        assert check.status.verdict is Verdict.PASS and check.passing, check.status
        assert check.status.baselineSource == "carried"


def test_over_the_margin_against_a_carried_baseline_still_holds_while_the_canary_has_less_data() -> None:
    # given a carried record of 3000 stable requests at 1% and a canary of 300 at 1.8% (0.4 pp margin)
    carried = BaselineRecord(name="error-rate", samples=3000, events=30.0, since=SINCE,
                             at="2026-03-01T11:59:30Z", step=0, weight=10)
    check = judge(error_rate(margin=0.004, min_samples=100), look((6, 300), (0, 0)), None, T0, carried=carried,
                  full_traffic=True)
    # then no verdict yet: more canary data can still make an over-margin difference significant
    assert check.status.verdict is Verdict.INCONCLUSIVE and not check.passing
    assert (check.status.effect or 0) > 0.004


def test_a_significant_regression_against_a_small_carried_baseline_still_fails() -> None:
    # given the same small record (75 requests, no error) and a canary at 20% errors
    slo = ResolvedSLO(SLO(name="error-rate", max=0.9, maxIncreaseOverBaseline=0.02), 20, 120)
    carried = BaselineRecord(name="error-rate", samples=75, events=0.0, since=SINCE,
                             at="2026-03-01T11:59:30Z", step=0, weight=50)
    check = judge(slo, look((200, 1000), (0, 0)), None, T0, carried=carried, full_traffic=True)
    # then it is a regression: passing an undecidable difference never passes a significant one
    assert check.status.verdict is Verdict.FAIL and (check.status.pValue or 1) <= 0.01


def test_a_baseline_carried_for_another_canary_is_not_used() -> None:
    carried = BaselineRecord(name="error-rate", samples=3000, events=30.0, since="2026-03-01T10:00:00Z")
    check = judge(error_rate(), look((10, 1000), (0, 0)), None, T0, carried=carried)
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.baselineSource is None


@pytest.mark.parametrize("stable", [(0, 40), None], ids=["thin", "left-out"])
def test_a_stable_stream_with_too_few_requests_is_no_verdict_yet_as_a_thin_canary_is(
        stable: tuple[int, int] | None) -> None:
    # given a healthy canary with 1,000 requests since it started and stable's stream holding 40 (its series
    # young: a stable deployed moments before), or left out of this answer (a late scrape), nothing carried,
    # under onNoData: fail
    s = error_rate(onNoData="fail", maxNoDataDuration="2m")
    # when it is judged at that look
    first = judge(s, look((10, 1000), stable), None, T0).status
    # then there is no verdict yet, as for a canary below minSamples (rule 2), not a failed check: under
    # onNoData fail it was one, and with failureLimit 0 a rollback of a healthy canary (seen in CI as NoData
    # under hold, 7dbe842)
    assert first.verdict is Verdict.INCONCLUSIVE and first.failures == 0
    assert first.baselineSource is None and first.baselineSamples == (stable[1] if stable else 0)
    # and it stays bounded: still without a baseline once maxNoDataDuration has passed, onNoData decides
    later = judge(s, look((10, 1000), stable), first, T0 + timedelta(seconds=125), look_gap=130).status
    assert later.verdict is Verdict.FAIL


def test_no_live_and_no_carried_baseline_is_no_verdict_bounded_by_max_no_data_duration() -> None:
    check = judge(error_rate(), look((10, 1000), (0, 0)), None, T0)
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.noDataSince is not None


def test_a_canary_stream_below_min_samples_gives_no_verdict() -> None:
    slo = ResolvedSLO(SLO(name="error-rate", max=0.2, maxIncreaseOverBaseline=0.01), 100, 120)
    obs = look((50, 90), (10, 1000))
    obs = SLOObservation(obs.name, MetricValue(0.01, 500), obs.stable, stream_since=SINCE,
                         canary_stream=obs.canary_stream, stable_stream=obs.stable_stream)
    assert judge(slo, obs, None, T0).status.verdict is Verdict.INCONCLUSIVE


def buckets(counts: list[int]) -> tuple[tuple[float, float], ...]:
    total, out = 0, []
    for le, c in zip(LE, counts, strict=True):
        total += c
        out.append((le, float(total)))
    return tuple(out)


def latency(canary: list[int], stable: list[int]) -> SLOObservation:
    return SLOObservation("latency-p99", MetricValue(0.1, sum(canary)), MetricValue(0.1, sum(stable)),
                          stream_since=SINCE, canary_stream=StreamData(sum(canary), buckets=buckets(canary)),
                          stable_stream=StreamData(sum(stable), buckets=buckets(stable)))


def test_a_slower_latency_distribution_fails_on_the_bucket_rank_test() -> None:
    slo = ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05), 100, 120)
    check = judge(slo, latency([50, 300, 500, 140, 10, 0], [300, 600, 90, 10, 0, 0]), None, T0)
    assert check.status.verdict is Verdict.FAIL
    assert check.status.test == "mann-whitney" and (check.status.effect or 0) > 0.2


def test_the_same_latency_distribution_passes() -> None:
    slo = ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05), 100, 120)
    check = judge(slo, latency([30, 60, 9, 1, 0, 0], [300, 600, 90, 10, 0, 0]), None, T0)
    assert check.status.verdict is Verdict.PASS


def test_an_earlier_significant_look_does_not_lend_its_p_value_to_a_later_noisy_quantile() -> None:
    # given a latency SLO (0.05 s margin on p99) and an anomalous look: the ranks say "slower" with a
    # p-value near 0, but p99 is within the margin (+0.0495 s), so it passes
    slo = ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05), 100, 120)
    first = judge(slo, latency([0, 100, 100, 0, 0, 0], [100, 100, 0, 0, 0, 0]), None, T0)
    assert first.status.verdict is Verdict.PASS and (first.status.pValue or 1) < 1e-30
    # when the next look's distributions barely differ (ranks: +0.015, not significant) but four slow
    # requests put the canary's p99 0.095 s above stable's
    second = judge(slo, latency([100, 100, 92, 8, 0, 0], [100, 110, 90, 0, 0, 0]), first.status,
                   T0 + timedelta(seconds=1))
    # then no regression: this look's own evidence is not significant, whatever an earlier look said;
    # the always-valid p-value over the looks is still shown
    assert second.status.verdict is Verdict.INCONCLUSIVE and second.status.failures == 0, second.status
    assert second.status.pValue == first.status.pValue


def test_a_regression_significant_at_its_own_look_still_fails_at_once() -> None:
    slo = ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05), 100, 120)
    first = judge(slo, latency([100, 100, 92, 8, 0, 0], [100, 110, 90, 0, 0, 0]), None, T0)
    second = judge(slo, latency([50, 300, 500, 140, 10, 0], [300, 600, 90, 10, 0, 0]), first.status,
                   T0 + timedelta(seconds=1))
    assert first.status.verdict is Verdict.INCONCLUSIVE
    assert second.status.verdict is Verdict.FAIL and second.status.failures == 1


def test_the_stable_stream_becomes_the_record_carried_forward() -> None:
    rec = record(error_rate(), look((3, 500), (20, 2000)), at="2026-03-01T12:00:00Z", step=1, weight=50)
    assert rec == BaselineRecord(name="error-rate", samples=2000, events=20.0, since=SINCE,
                                 at="2026-03-01T12:00:00Z", step=1, weight=50)
    obs = latency([1, 1, 1, 1, 1, 0], [300, 600, 90, 10, 0, 0])
    slo = ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05), 100, 120)
    rec = record(slo, obs, at="t", step=0, weight=10)
    assert rec is not None and rec.bounds == list(LE[:-1]) and rec.counts == [300, 900, 990, 1000, 1000, 1000]
    # too little stable traffic is not a baseline worth carrying
    assert record(error_rate(), look((3, 500), (2, 50)), at="t", step=0, weight=10) is None
    # a stable stream that stopped growing keeps the record of where it was measured
    kept = BaselineRecord(name="error-rate", samples=2000, events=20.0, since=SINCE, at="t0", step=1, weight=50)
    assert record(error_rate(), look((3, 900), (20, 2000)), at="t1", step=2, weight=100, previous=kept) is None


def test_a_look_whose_stream_the_answer_left_out_gives_no_verdict_not_the_raw_difference() -> None:
    # given an SLO compared with its baseline by a test, at a look that asked for the canary's stream
    # (stream_since) whose answer held no part of it: a stream too young for two scrapes, a late scrape
    slo = error_rate(margin=0.02, min_samples=20)
    # and window values the raw difference fails on: 30% errors against 1%, 500 requests each
    obs = SLOObservation("error-rate", MetricValue(0.3, 500), MetricValue(0.01, 500), stream_since=SINCE)
    # when the look is judged
    check = judge(slo, obs, None, T0)
    # then no verdict and no failure: the test's data (the stream) holds no request yet
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.failures == 0, check.status
    assert check.status.samples == 0 and check.status.streamSamples == 0 and check.status.streamSince == SINCE
    assert check.status.test is None and check.status.value is None


def test_a_healthy_latency_whose_stream_is_missing_is_not_judged_on_one_noisy_window() -> None:
    # given a healthy canary whose p99 over the last window is noisily above stable's, stream left out
    slo = ResolvedSLO(SLO(name="latency-p99", max=1.0, maxIncreaseOverBaseline=0.05), 20, 8)
    obs = SLOObservation("latency-p99", MetricValue(0.4, 60), MetricValue(0.2, 60), stream_since=SINCE)
    # when judged at two looks 10 s apart (longer than maxNoDataDuration 8 s)
    first = judge(slo, obs, None, T0)
    second = judge(slo, obs, first.status, T0 + timedelta(seconds=10))
    # then the first is no verdict, and only the no-data policy (hold, bounded) can end the wait, never the
    # window's difference: the failure is counted on the run without a verdict, which status shows
    assert first.status.verdict is Verdict.INCONCLUSIVE and first.status.failures == 0
    assert second.status.noDataSince == first.status.noDataSince and second.status.test is None


def test_slos_without_a_stream_keep_the_raw_difference() -> None:
    slo = error_rate(margin=0.005)
    obs = SLOObservation("error-rate", MetricValue(0.02, 500), MetricValue(0.01, 5000))
    status: SLOStatus = judge(slo, obs, None, T0).status
    assert status.verdict is Verdict.FAIL and status.test is None


def test_baselines_are_carried_forward_per_slo_while_stable_grows_and_kept_once_it_stops() -> None:
    slo = error_rate()
    first = carry_forward([slo], [look((1, 300), (20, 2000))], [], at="t1", step=1, weight=50)
    assert [(b.samples, b.step, b.weight) for b in first] == [(2000, 1, 50)]
    # at 100% the stable stream stops growing: the record of where it was measured is kept
    kept = carry_forward([slo], [look((9, 900), (20, 2000))], first, at="t2", step=2, weight=100)
    assert kept == first
    # a provider error keeps the record too
    failed = SLOObservation("error-rate", error="prometheus down")
    assert carry_forward([slo], [failed], first, at="t3", step=2, weight=100) == first
