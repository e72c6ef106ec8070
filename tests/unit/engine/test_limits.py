"""Absolute limits of the ratio and latency SLOs judged on evidence (engine.limits): given a look's counts, then a
verdict."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from tollgate.api.spec import SLO
from tollgate.api.status import Verdict
from tollgate.engine import limits
from tollgate.engine.analysis import judge
from tollgate.engine.limits import Limit
from tollgate.engine.observations import MetricValue, SLOObservation, StreamData
from tollgate.engine.policy import ResolvedSLO
from tollgate.engine.stats import monotone, quantile

from .conftest import T0, Sim, make_spec

SINCE = "2026-03-01T11:59:00Z"


def slo(name: str = "error-rate", min_samples: int = 200, no_data_seconds: float = 120,
        **fields: object) -> ResolvedSLO:
    return ResolvedSLO(SLO.model_validate({"name": name, **fields}), min_samples, no_data_seconds)


def window(errors: int, requests: int, name: str = "error-rate") -> SLOObservation:
    """The canary's window: its rate over `requests` requests (stable's does not matter to a limit)."""
    return SLOObservation(name, MetricValue(errors / requests, requests), MetricValue(0.005, 5000))


def test_the_high_tiers_noise_at_half_its_limit_is_no_failure() -> None:
    # given the high tier's error-rate (max 0.01, minSamples 200) and a canary with 3 errors in 200
    # requests: 1.5 % on the point estimate, what a version erring 0.5 % of the time shows 1 time in 12
    check = judge(slo(max=0.01), window(3, 200), None, T0)
    # then no failure: the data do not show the rate beyond 1 %, the step waits for more
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.failures == 0
    assert check.status.limitPValue is not None and check.status.limitPValue > 0.01
    assert not check.passing


def test_a_rate_clearly_beyond_its_limit_fails_at_once() -> None:
    # given 8 errors in 200 requests against max 0.01 (4 %; 8 or more of 200 at 1 %: p 0.001)
    check = judge(slo(max=0.01), window(8, 200), None, T0)
    # then a failed check, with the evidence in status
    assert check.status.verdict is Verdict.FAIL and check.status.failures == 1
    assert check.status.limitPValue is not None and check.status.limitPValue < 0.002
    assert check.status.value == pytest.approx(0.04) and check.status.samples == 200


def test_within_the_limit_passes_and_clears_an_earlier_looks_p_value() -> None:
    # given a look beyond the limit but not significant, then one within it
    first = judge(slo(max=0.01), window(3, 200), None, T0)
    check = judge(slo(max=0.01), window(1, 400), first.status, T0 + timedelta(seconds=5))
    # then it passes, and status no longer shows the first look's p-value
    assert check.status.verdict is Verdict.PASS and check.passing
    assert check.status.limitPValue is None and check.status.noDataSince is None


def test_beyond_the_limit_for_max_no_data_duration_fails_even_under_on_no_data_pass() -> None:
    # given an SLO that passes missing data, and a canary whose estimate stays beyond the limit unproven
    s = slo(max=0.01, no_data_seconds=60, onNoData="pass")
    status = None
    verdicts = []
    for t in range(0, 65, 5):
        status = judge(s, window(3, 200), status, T0 + timedelta(seconds=t)).status
        verdicts.append(status.verdict)
    # then it waits while the run is shorter than maxNoDataDuration, and fails once it is not
    assert verdicts[:12] == [Verdict.INCONCLUSIVE] * 12
    assert verdicts[-1] is Verdict.FAIL and status is not None and status.failures == 1


def test_a_compared_slo_tests_its_limit_on_the_canarys_stream() -> None:
    # given an SLO compared with its baseline: the window shows 4 % but the stream (since the canary
    # started) holds 3 errors in 300 requests, as many as stable's rate
    s = slo(max=0.02, maxIncreaseOverBaseline=0.01)
    obs = SLOObservation("error-rate", MetricValue(0.04, 100), MetricValue(0.01, 3000), stream_since=SINCE,
                         canary_stream=StreamData(300, 3.0), stable_stream=StreamData(3000, 30.0))
    check = judge(s, obs, None, T0)
    # then the limit is judged on the stream's counts (1 %, within), not on the window's 4 %
    assert check.status.verdict is not Verdict.FAIL and check.status.limitPValue is None
    assert check.status.samples == 300


def test_on_the_stream_an_unproven_excess_waits_without_a_bound() -> None:
    # given a compared SLO whose stream stays at 3 errors in 300 requests (1 %) against max 0.008, looked
    # at for longer than maxNoDataDuration
    s = slo(max=0.008, maxIncreaseOverBaseline=0.01, no_data_seconds=60)
    obs = SLOObservation("error-rate", MetricValue(0.01, 300), MetricValue(0.01, 3000), stream_since=SINCE,
                         canary_stream=StreamData(300, 3.0), stable_stream=StreamData(3000, 30.0))
    status = None
    for t in range(0, 125, 5):
        status = judge(s, obs, status, T0 + timedelta(seconds=t)).status
    # then it still waits: more data settle it, a bound would fail a canary only because time passed
    assert status is not None and status.verdict is Verdict.INCONCLUSIVE and status.failures == 0
    assert status.noDataSince is None and status.limitPValue is not None


@pytest.mark.parametrize(("events", "n", "rate"), [(6, 218, 0.01), (3, 200, 0.01), (1, 100, 0.001), (55, 100, 0.5),
                                                   (12000, 1_000_000, 0.0115), (0, 10, 0.1), (11, 10, 0.1)])
def test_the_binomial_tail_is_scipys(events: int, n: int, rate: float) -> None:
    from scipy.stats import binom

    assert limits.binomial_tail(events, n, rate) == pytest.approx(binom.sf(events - 1, n, rate), rel=1e-6, abs=1e-15)


def test_a_min_on_a_rate_is_tested_on_the_complement() -> None:
    # given a minimum rate of 0.5: 45 of 100 is not evidence of less, 30 of 100 is
    s = slo(min=0.5, min_samples=10)
    assert judge(s, window(45, 100), None, T0).status.verdict is Verdict.INCONCLUSIVE
    assert judge(s, window(30, 100), None, T0).status.verdict is Verdict.FAIL


@pytest.mark.parametrize(("fields", "value"), [({"max": 0.0}, 0.01), ({"max": 1.5}, 1.8), ({"min": 2.0}, 0.5)])
def test_a_limit_without_sampling_error_is_judged_on_the_estimate(fields: dict[str, float], value: float) -> None:
    # given max 0 (one error in 100 is beyond it for certain), or a limit no rate lies within
    check = limits.check(slo(**fields), value, 100)
    # then the estimate decides, without a test
    assert check.outcome is Limit.BEYOND and check.p_value is None


def test_a_latency_value_without_its_buckets_and_custom_queries_keep_the_point_estimate() -> None:
    # given a p99 over its max whose look carries no histogram, and a custom query's value over its max
    p99 = judge(slo("latency-p99", min_samples=10, max=0.5),
                SLOObservation("latency-p99", MetricValue(0.6, 20), MetricValue(0.2, 2000)), None, T0)
    custom = limits.check(slo("my-ratio", query="sum(rate(x[5m]))", max=0.01), 0.015, 200)
    # then both fail on the value, as before (there are no counts to test)
    assert p99.status.verdict is Verdict.FAIL and p99.status.limitPValue is None
    assert custom.outcome is Limit.BEYOND


def latency(slow: int, requests: int, bound: float = 0.25) -> SLOObservation:
    """The canary's window: `slow` of `requests` requests in the bucket above `bound`, the rest below it
    (MLServer's default bounds around 0.25 s), and its p99 read from those buckets as histogram_quantile
    does."""
    buckets = ((0.1, requests * 0.6), (bound, float(requests - slow)), (0.5, float(requests)),
               (float("inf"), float(requests)))
    return SLOObservation("latency-p99", MetricValue(quantile(0.99, buckets), requests, buckets=buckets),
                          MetricValue(0.2, 5000))


def test_a_p99_over_its_max_on_noise_is_no_failure() -> None:
    # given the high tier's latency limit (p99 max 0.25 s, minSamples 200) and a window of 200 requests
    # of which 3 were slower than 0.25 s: "p99 0.38 s", but a version with 0.5 % of its requests that
    # slow (half what a p99 allows) shows 3 or more one time in twelve
    check = judge(slo("latency-p99", max=0.25), latency(3, 200), None, T0)
    # then no check fails: the estimate is over the limit, the counts do not show the version is
    assert check.status.value is not None and check.status.value > 0.25
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.failures == 0
    assert check.status.limitPValue == pytest.approx(0.323, abs=0.001)


def test_a_p99_proven_over_its_max_fails_with_its_p_value() -> None:
    # given 10 of 200 requests slower than the max (5 %, five times what a p99 allows)
    check = judge(slo("latency-p99", max=0.25), latency(10, 200), None, T0)
    # then the check fails, and the test's p-value says why
    assert check.status.verdict is Verdict.FAIL and check.status.failures == 1
    assert check.status.limitPValue is not None and check.status.limitPValue < 0.001


def test_a_limit_inside_a_bucket_counts_the_slow_requests_as_the_estimate_does() -> None:
    # given a max of 0.3 s inside the bucket (0.25, 0.5]: the quantile and the test both read that bucket
    # linearly, so of 40 requests in it 8 count as slower than 0.3 s
    buckets = ((0.25, 160.0), (0.5, 200.0), (float("inf"), 200.0))
    assert limits.cumulative_at(0.3, buckets) == pytest.approx(168.0)
    check = limits.check(slo("latency-p99", max=0.3), quantile(0.99, buckets) or 0.0, 200, buckets=buckets)
    # then the check is the test of 32 slow requests of 200 against 1 %
    assert check.outcome is Limit.BEYOND and check.p_value == pytest.approx(limits.binomial_tail(32, 200, 0.01))


@pytest.mark.parametrize("q_name", ["latency-p50", "latency-p95", "latency-p99"])
def test_the_test_and_the_estimate_agree_on_which_side_of_the_limit_the_data_lie(q_name: str) -> None:
    # given random histograms and limits, the counts past the limit exceed the quantile's share exactly
    # when the quantile estimate lies past the limit (one linear reading of the buckets, not two)
    from tollgate.engine.comparison import QUANTILE_SLOS

    q, rng = QUANTILE_SLOS[q_name], random.Random(q_name)
    bounds = (0.05, 0.1, 0.25, 0.5, 1.0)
    for _ in range(500):
        counts = [rng.randint(0, 50) for _ in range(len(bounds) + 1)]
        cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
        if cumulative[-1] == 0:
            continue
        buckets = tuple(zip((*bounds, float("inf")), map(float, cumulative), strict=True))
        limit = rng.uniform(0.0, 1.0)
        estimate = quantile(q, buckets)
        assert estimate is not None
        past = cumulative[-1] - limits.cumulative_at(limit, buckets)
        if abs(estimate - limit) > 1e-9:
            assert (estimate > limit) == (past > (1 - q) * cumulative[-1] + 1e-9), (buckets, limit, estimate)


def test_a_min_on_a_quantile_is_tested_on_the_requests_at_or_below_it() -> None:
    # given a floor on the median (a version answering from a cache it should not have: p50 min 0.1 s)
    s = slo("latency-p50", min=0.1, min_samples=10)
    few = ((0.1, 56.0), (0.25, 100.0), (float("inf"), 100.0))  # 56 of 100 at or below: not evidence
    many = ((0.1, 75.0), (0.25, 100.0), (float("inf"), 100.0))  # 75 of 100: evidence
    for buckets, verdict in ((few, Verdict.INCONCLUSIVE), (many, Verdict.FAIL)):
        obs = SLOObservation("latency-p50", MetricValue(quantile(0.5, buckets), 100, buckets=buckets),
                             MetricValue(0.2, 100))
        assert judge(s, obs, None, T0).status.verdict is verdict


def first_failure(s: ResolvedSLO, looks: Iterator[tuple[int, SLOObservation]]) -> int | None:
    """One canary judged at each (second, observation) look, failureLimit 0: the second of its first failed
    check, or None."""
    status = None
    for t, obs in looks:
        status = judge(s, obs, status, T0 + timedelta(seconds=t)).status
        if status.failures > 0:
            return t
    return None


def growing_errors(rng: random.Random, error_rate: float) -> Iterator[tuple[int, SLOObservation]]:
    """Looks every 5 s for 10 minutes at a canary's growing count at 10 requests/s, from 200 requests on."""
    errors, requests = 0, 0
    for t in range(5, 605, 5):
        errors += sum(1 for _ in range(50) if rng.random() < error_rate)
        requests += 50
        if requests >= 200:
            yield t, window(errors, requests)


def sliding_latency(rng: random.Random, slow_share: float) -> Iterator[tuple[int, SLOObservation]]:
    """Looks every 5 s for 10 minutes at a canary's last minute at 10 requests/s (600 requests), a share of
    them slower than 0.25 s: the tiers' latency-p99, judged on its window."""
    batches: list[int] = []
    for t in range(5, 605, 5):
        batches = [*batches[-11:], sum(1 for _ in range(50) if rng.random() < slow_share)]
        yield t, latency(sum(batches), 50 * len(batches))


HIGH_TIER_ERRORS = slo(max=0.01, no_data_seconds=300)
HIGH_TIER_P99 = slo("latency-p99", max=0.25, no_data_seconds=300)


@pytest.mark.parametrize(("s", "looks", "share"), [(HIGH_TIER_ERRORS, growing_errors, 0.005),
                                                   (HIGH_TIER_P99, sliding_latency, 0.005)])
def test_healthy_canaries_at_half_the_limit_are_not_rolled_back_over_many_looks(
        s: ResolvedSLO, looks: Callable[[random.Random, float], Iterator[tuple[int, SLOObservation]]],
        share: float) -> None:
    # given 200 seeded canaries erring 0.5 % of the time, or with 0.5 % of their requests slower than the
    # p99's max (half what the limit allows either way)
    rng = random.Random(20261207)
    rolled_back = [t for t in (first_failure(s, looks(rng, share)) for _ in range(200)) if t is not None]
    # then (nearly) none is: on the point estimate 41 of 200 were for errors, 125 of 200 for the p99
    # (both seen failing with the old rule)
    assert len(rolled_back) <= 2, rolled_back


@pytest.mark.parametrize(("s", "looks", "share"), [(HIGH_TIER_ERRORS, growing_errors, 0.02),
                                                   (HIGH_TIER_P99, sliding_latency, 0.02)])
def test_a_canary_at_twice_the_limit_is_still_caught(
        s: ResolvedSLO, looks: Callable[[random.Random, float], Iterator[tuple[int, SLOObservation]]],
        share: float) -> None:
    # given 50 seeded canaries erring 2 % of the time, or with 2 % of their requests too slow
    rng = random.Random(7)
    caught = sorted(t for t in (first_failure(s, looks(rng, share)) for _ in range(50)) if t is not None)
    # then every one is rolled back, most within the first minute
    assert len(caught) == 50
    assert caught[25] <= 60, caught


def canary_under_analysis(slo_spec: dict[str, object]) -> Sim:
    """A canary of 1.1.0 at its 50 % step, judged every 30 s on this one SLO, failureLimit 0."""
    sim = Sim(make_spec(slos=[slo_spec], rollout={
        "steps": [{"weight": 50}, {"weight": 100}], "analysis": {"interval": "30s", "failureLimit": 0,
                                                                  "minSamples": 100}}))
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    return sim


def test_a_canary_proven_beyond_its_limit_rolls_back_and_its_event_gives_the_p_value() -> None:
    # given a canary under analysis (failureLimit 0) whose window holds 12 errors in 200 requests
    # against max 0.02 (6 %: 12 or more of 200 at 2 % is p 0.00079)
    from tollgate.api.status import Phase
    from tollgate.engine.actions import EmitEvent, Reason

    sim = canary_under_analysis({"name": "error-rate", "max": 0.02})
    # when it is looked at
    d = sim.tick((window(12, 200),))
    # then it is rolled back, and the AnalysisFailed event carries the limit's evidence
    assert sim.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), sim.status.message
    failed = [e for e in d.actions if isinstance(e, EmitEvent) and e.reason is Reason.ANALYSIS_FAILED]
    assert failed and "limit test p 0.000786 (exact binomial)" in failed[0].message, failed


def test_a_latency_limit_inside_a_bucket_is_said_in_the_threshold_at_every_look() -> None:
    # given a p99 max of 0.3 s, inside MLServer's bucket (0.25, 0.5], and a canary well within it
    obs = latency(0, 200)
    inside = judge(slo("latency-p99", max=0.3), obs, None, T0).status
    on_bound = judge(slo("latency-p99", max=0.25), obs, None, T0).status
    # then the check passes, and its threshold says why a reading past the limit may be the histogram's
    assert inside.verdict is Verdict.PASS
    assert inside.threshold == ("max 0.3, minSamples 200 (max inside the latency histogram's bucket (0.25, 0.5], "
                                "read as if its requests spread evenly there: put it on a bucket bound)")
    # while a limit on a bound is shown as written
    assert on_bound.threshold == "max 0.25, minSamples 200"


def test_a_max_at_or_past_the_largest_finite_bound_is_said_never_to_fail() -> None:
    # given a p99 max of 1 s and a histogram whose largest finite bound is 0.5 s: every request slower
    # than 0.5 s lands in +Inf, and no quantile reads past 0.5 s
    buckets = ((0.25, 0.0), (0.5, 0.0), (float("inf"), 300.0))
    obs = SLOObservation("latency-p99", MetricValue(quantile(0.99, buckets), 300, buckets=buckets),
                         MetricValue(0.2, 300))
    status = judge(slo("latency-p99", max=1.0), obs, None, T0).status
    # then the check cannot fail, and its threshold says so with the fix
    assert status.verdict is Verdict.PASS
    assert "max at or above the latency histogram's largest finite bound 0.5" in (status.threshold or "")


def test_the_caveat_is_shown_before_there_are_enough_samples() -> None:
    # given a limit inside a bucket and a look with 20 requests, below minSamples
    status = judge(slo("latency-p99", max=0.3), latency(0, 20), None, T0).status
    # then there is no verdict yet, and the threshold already says what to fix
    assert status.verdict is Verdict.INCONCLUSIVE
    assert "inside the latency histogram's bucket" in (status.threshold or "")


def test_buckets_that_decrease_are_read_as_histogram_quantile_reads_them() -> None:
    # given a bucket below the one before it (a counter reset, or the range's extrapolation), as Prometheus
    # may answer, and a histogram of no requests at all
    dipping = ((0.1, 150.0), (0.25, 140.0), (0.5, 200.0), (float("inf"), 200.0))
    empty = ((0.25, 0.0), (float("inf"), 0.0))
    # then the counts are made non-decreasing first (150 at or below 0.25 s, not 140), as histogram_quantile
    # makes them, and an empty histogram shows nothing beyond the limit
    check = limits.check(slo("latency-p99", max=0.25), 0.45, 200, buckets=dipping)
    assert check.p_value == pytest.approx(limits.binomial_tail(50, 200, 0.01))
    assert monotone(dipping)[1] == (0.25, 150.0)
    assert limits.check(slo("latency-p99", max=0.25), 0.3, 5, buckets=empty).outcome is Limit.UNSURE


def test_a_latency_limits_rollback_records_the_buckets_it_counted() -> None:
    # given a canary under analysis (failureLimit 0) with a p99 max of 0.25 s, whose window holds 10 of 200
    # requests slower than that
    from tollgate.api.status import Phase
    from tollgate.engine.actions import RecordEvidence

    sim = canary_under_analysis({"name": "latency-p99", "max": 0.25})
    obs = latency(10, 200)
    # when it is looked at
    d = sim.tick((obs,))
    # then it is rolled back, and the evidence holds the window's buckets beside the value
    assert sim.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), sim.status.message
    (record,) = d.of_type(RecordEvidence)
    (observed,) = record.payload["observations"]
    assert observed["canary"]["buckets"] == [[0.1, 120.0], [0.25, 190.0], [0.5, 200.0], ["inf", 200.0]]


SCORE_BOUNDS = (*(round(i * 0.05, 2) for i in range(1, 21)), float("inf"))
"""Fine score buckets (0.05 wide); MLServer's custom metrics use the client library's default buckets, 0.25
wide around the scores (tested below)."""


def scores(values: list[float]) -> tuple[tuple[float, float], ...]:
    return tuple((b, float(sum(1 for v in values if v <= b))) for b in SCORE_BOUNDS)


def shift_look(canary: list[float], stable: list[float]) -> SLOObservation:
    """One window of score-shift: each track's mean score and its histogram."""
    return SLOObservation("score-shift",
                          MetricValue(sum(canary) / len(canary), len(canary), buckets=scores(canary)),
                          MetricValue(sum(stable) / len(stable), len(stable), buckets=scores(stable)))


def healthy_scores(rng: random.Random, n: int, shift: float = 0.0) -> list[float]:
    """A model's predicted scores: Beta(5, 3) (mean 0.625, sd 0.16), shifted."""
    return [min(1.0, max(0.0, rng.betavariate(5, 3) + shift)) for _ in range(n)]


def test_a_score_shift_over_its_max_on_noise_is_no_failure() -> None:
    # given 100 canary outputs against 900 stable whose means lie 0.06 apart, over the max 0.05 by about 0.6
    # of the distance's standard error (0.017 for scores with sd 0.16 at these counts)
    rng = random.Random(3)
    canary, stable = healthy_scores(rng, 100), healthy_scores(rng, 900)
    offset = 0.06 - (sum(canary) / 100 - sum(stable) / 900)
    canary = [v + offset for v in canary]
    check = judge(slo("score-shift", min_samples=50, max=0.05), shift_look(canary, stable), None, T0)
    # then no check fails: the distance is over the max, the spread of the scores does not show it is
    assert check.status.value == pytest.approx(0.06)
    assert check.status.verdict is Verdict.INCONCLUSIVE and check.status.failures == 0
    assert check.status.limitPValue is not None and 0.01 < check.status.limitPValue < 0.5


def test_a_score_shift_proven_over_its_max_fails_with_its_p_value() -> None:
    rng = random.Random(4)
    check = judge(slo("score-shift", min_samples=50, max=0.05),
                  shift_look(healthy_scores(rng, 400, shift=0.15), healthy_scores(rng, 900)), None, T0)
    assert check.status.verdict is Verdict.FAIL
    assert check.status.limitPValue is not None and check.status.limitPValue < 0.001


def test_a_score_shift_without_histograms_keeps_the_point_estimate() -> None:
    obs = SLOObservation("score-shift", MetricValue(0.7, 100), MetricValue(0.62, 900))
    check = judge(slo("score-shift", min_samples=50, max=0.05), obs, None, T0)
    assert check.status.verdict is Verdict.FAIL and check.status.limitPValue is None


def sliding_scores(rng: random.Random, shift: float) -> Iterator[tuple[int, SLOObservation]]:
    """Looks every 5 s for 4 minutes at the last minute of a canary serving 10 % of 10 requests/s, then 50 %."""
    seconds: list[tuple[list[float], list[float]]] = []
    for t in range(1, 241):
        share = 0.1 if t <= 120 else 0.5
        served = [(rng.random() < share, v) for v in healthy_scores(rng, 10)]
        seconds = [*seconds[-59:], ([min(1.0, v + shift) for c, v in served if c], [v for c, v in served if not c])]
        canary = [v for c, _ in seconds for v in c]
        stable = [v for _, s in seconds for v in s]
        if t % 5 == 0 and canary and stable:
            yield t, shift_look(canary, stable)


SHIFT_LIMITS = ("max", "maxIncreaseOverBaseline")
"""A shift's two ways to say the largest tolerated distance (engine.analysis rule 0): tested alike."""


@pytest.mark.parametrize("field", SHIFT_LIMITS)
def test_healthy_canaries_are_not_rolled_back_by_a_tight_score_shift_limit(field: str) -> None:
    # given 40 seeded canaries identical to their stable, judged against a score-shift limit of 0.03
    # (minSamples 100, failureLimit 0), written as max or as maxIncreaseOverBaseline
    s = slo("score-shift", min_samples=100, no_data_seconds=300, **{field: 0.03})
    rng = random.Random(20261207)
    rolled_back = [t for t in (first_failure(s, sliding_scores(rng, 0.0)) for _ in range(40)) if t is not None]
    # then none is: on the point estimate 7 of 40 were, either way (both seen failing with the old rule)
    assert rolled_back == []


@pytest.mark.parametrize("field", SHIFT_LIMITS)
def test_a_canary_shifted_well_over_the_limit_is_still_caught(field: str) -> None:
    # given 20 seeded canaries whose scores sit 0.1 above stable's, against a limit of 0.03
    s = slo("score-shift", min_samples=100, no_data_seconds=300, **{field: 0.03})
    rng = random.Random(11)
    # when each is judged at every look
    caught = [t for t in (first_failure(s, sliding_scores(rng, 0.1)) for _ in range(20)) if t is not None]
    # then every one is rolled back (the test costs no detection here)
    assert len(caught) == 20


def test_a_shift_with_both_limits_is_tested_against_the_smaller() -> None:
    # given a built-in score-shift with max 0.05 and maxIncreaseOverBaseline 0.03, and the same limits on a
    # custom query (whose value is no distance the operator reads, so maxIncreaseOverBaseline stays relative)
    both = slo("score-shift", min_samples=50, max=0.05, maxIncreaseOverBaseline=0.03)
    custom = slo("score-shift", min_samples=50, max=0.05, maxIncreaseOverBaseline=0.03, query="q")
    assert limits.ceiling(both) == 0.03 and limits.ceiling(custom) == 0.05
    # when the tracks lie 0.04 apart on 400 and 900 outputs, read from their histograms: over 0.03 by about
    # one standard error of the distance (0.0097 for these scores), under 0.05
    rng = random.Random(12)
    canary, stable = healthy_scores(rng, 400), healthy_scores(rng, 900)
    offset = 0.04 - (sum(canary) / 400 - sum(stable) / 900)
    check = judge(both, shift_look([v + offset for v in canary], stable), None, T0)
    # then the check is tested against 0.03 (unproven yet: no verdict), not passed against 0.05
    assert check.status.value == pytest.approx(0.04)
    assert check.status.verdict is Verdict.INCONCLUSIVE
    assert check.status.limitPValue is not None and 0.05 < check.status.limitPValue < 0.3


def test_a_custom_query_shift_keeps_the_raw_difference() -> None:
    # given score-shift on a custom query with maxIncreaseOverBaseline 0.03: its values carry no counts
    s = slo("score-shift", min_samples=50, maxIncreaseOverBaseline=0.03, query="my_score_mean")
    obs = SLOObservation("score-shift", MetricValue(0.70, 100), MetricValue(0.62, 900))
    # when the canary's value is 0.08 over stable's
    check = judge(s, obs, None, T0)
    # then the raw difference decides, at once and without a p-value
    assert check.status.verdict is Verdict.FAIL and check.status.limitPValue is None


def test_a_shift_limit_of_0_is_a_trip_wire() -> None:
    # given score-shift with max 0 (no distance tolerated) and two tracks 0.01 apart on plenty of outputs
    rng = random.Random(13)
    canary, stable = healthy_scores(rng, 400), healthy_scores(rng, 900)
    offset = 0.01 - (sum(canary) / 400 - sum(stable) / 900)
    # when it is judged
    check = judge(slo("score-shift", min_samples=50, max=0), shift_look([v + offset for v in canary], stable), None, T0)
    # then it fails at once, as max 0 does for a rate: no sampling error is allowed for
    assert check.status.verdict is Verdict.FAIL and check.status.limitPValue is None


def test_a_score_shift_read_from_the_default_buckets_is_still_tested_on_the_scores_spread() -> None:
    # given score histograms in the client library's default buckets (…, 0.25, 0.5, 0.75, 1, 2.5, … 10), as
    # MLServer's custom metrics export them: wide, and running far past any score
    default = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"))
    rng = random.Random(5)
    canary, stable = healthy_scores(rng, 111, shift=0.2), healthy_scores(rng, 300)
    buckets = [tuple((b, float(sum(1 for v in vs if v <= b))) for b in default) for vs in (canary, stable)]
    obs = SLOObservation("score-shift", MetricValue(sum(canary) / 111, 111, buckets=buckets[0]),
                         MetricValue(sum(stable) / 300, 300, buckets=buckets[1]))
    # when a shift of about 0.18 is judged against max 0.1 on 111 canary outputs
    check = judge(slo("score-shift", min_samples=60, max=0.1), obs, None, T0)
    # then it is proven: the empty buckets up to 10 do not widen the spread (they did: p 0.14, seen in the
    # integration test on real Prometheus)
    assert check.status.verdict is Verdict.FAIL
    assert check.status.limitPValue is not None and check.status.limitPValue < 0.001


def test_a_score_histogram_that_ends_below_the_scores_is_read_up_to_1_and_never_raises() -> None:
    # given an export whose buckets end at 0.5 while every score is above it (all in +Inf), in both tracks,
    # and one whose every output sits on a bucket of no width (past 1)
    past = ((0.1, 0.0), (0.2, 0.0), (0.5, 0.0), (float("inf"), 400.0))
    pinned = ((1.0, 0.0), (float("inf"), 400.0))
    s = slo("score-shift", min_samples=50, max=0.05)
    # then the first is tested with the spread of (0.5, 1], the second falls back to the estimate
    assert limits.check(s, 0.2, 400, buckets=past, other=past).outcome is Limit.BEYOND
    assert limits.check(s, 0.06, 400, buckets=past, other=past).outcome is Limit.UNSURE
    assert limits.check(s, 0.2, 400, buckets=pinned, other=pinned) == limits.LimitCheck(Limit.BEYOND)


def test_a_score_shift_on_a_handful_of_outputs_is_not_tested_yet() -> None:
    # given 400 requests but only 12 valid canary outputs (the rest invalid), 0.3 apart from stable
    few = scores([0.9] * 12)
    many = scores(healthy_scores(random.Random(6), 900))
    check = limits.check(slo("score-shift", max=0.05), 0.3, 400, buckets=few, other=many)
    assert check.outcome is Limit.UNSURE and check.p_value is None
