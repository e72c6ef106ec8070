"""Analysis verdicts, one SLO at a time (given an SLO and an observation, then a verdict)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tollgate.api.spec import SLO
from tollgate.api.status import SLOStatus, Verdict
from tollgate.engine.analysis import assess, compared, judge
from tollgate.engine.observations import MetricValue, SLOObservation
from tollgate.engine.policy import ResolvedSLO

from .conftest import T0


def resolved(min_samples: int = 100, no_data_seconds: float = 120, **fields: object) -> ResolvedSLO:
    return ResolvedSLO(SLO.model_validate({"name": "error-rate", **fields}), min_samples, no_data_seconds)


def obs(value: float | None, samples: int = 500, baseline: float | None = 0.01,
        error: str | None = None) -> SLOObservation:
    return SLOObservation("error-rate", MetricValue(value, samples), MetricValue(baseline, 5000), error)


@pytest.mark.parametrize(("value", "verdict"), [(0.005, Verdict.PASS), (0.03, Verdict.FAIL), (0.01, Verdict.PASS),
                                               (0.011, Verdict.INCONCLUSIVE)])
def test_absolute_max(value: float, verdict: Verdict) -> None:
    # 0.011 over 500 requests is 5.5 errors: beyond 0.01 on the estimate, not on evidence (engine.limits)
    assert judge(resolved(max=0.01), obs(value), None, T0).status.verdict is verdict


@pytest.mark.parametrize(("value", "verdict"), [(50.0, Verdict.PASS), (9.0, Verdict.FAIL)])
def test_absolute_min(value: float, verdict: Verdict) -> None:
    assert judge(resolved(min=10), obs(value), None, T0).status.verdict is verdict


def test_increase_over_baseline_compares_with_stable_over_the_same_window() -> None:
    slo = resolved(maxIncreaseOverBaseline=0.005)
    assert judge(slo, obs(0.014, baseline=0.01), None, T0).status.verdict is Verdict.PASS
    assert judge(slo, obs(0.016, baseline=0.01), None, T0).status.verdict is Verdict.FAIL


def test_no_verdict_before_min_samples() -> None:
    check = judge(resolved(max=0.01), obs(0.9, samples=99), None, T0)
    assert check.status.verdict is Verdict.INCONCLUSIVE
    assert check.status.failures == 0 and not check.passing


@pytest.mark.parametrize(("policy", "verdict", "passing"), [
    ("hold", Verdict.FAIL, False), ("fail", Verdict.FAIL, False), ("pass", Verdict.NO_DATA, True)])
def test_too_few_samples_holds_only_until_max_no_data_duration_then_on_no_data_decides(
        policy: str, verdict: Verdict, passing: bool) -> None:
    # given an SLO needing 100 samples, tolerating 120s without a verdict
    slo = resolved(max=0.01, onNoData=policy, no_data_seconds=120)
    # when the canary keeps getting too little traffic
    first = judge(slo, obs(0.0, samples=10), None, T0)
    held = judge(slo, obs(0.0, samples=10), first.status, T0 + timedelta(seconds=119))
    # then there is no verdict and no failure while the bound lasts, whatever the policy
    for check in (first, held):
        assert check.status.verdict is Verdict.INCONCLUSIVE and not check.passing
        assert check.status.failures == 0 and check.status.noDataSince == "2026-03-01T12:00:00Z"
    # when the run without a verdict reaches maxNoDataDuration, then onNoData decides
    after = judge(slo, obs(0.0, samples=10), held.status, T0 + timedelta(seconds=120))
    assert after.status.verdict is verdict and after.passing is passing
    assert after.status.failures == (1 if verdict is Verdict.FAIL else 0)
    # and enough traffic ends the run: a real verdict, the clock reset
    back = judge(slo, obs(0.001, samples=500), after.status, T0 + timedelta(seconds=150))
    assert back.status.verdict is Verdict.PASS and back.status.noDataSince is None


def test_too_few_samples_and_missing_data_share_one_no_verdict_clock() -> None:
    # given a run that starts with missing data and continues below minSamples
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=60)
    first = judge(slo, obs(math.nan), None, T0).status
    assert first.verdict is Verdict.NO_DATA
    # then the bound counts from the first check without a verdict
    later = judge(slo, obs(0.0, samples=3), first, T0 + timedelta(seconds=60)).status
    assert later.verdict is Verdict.FAIL


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_nan_inf_and_empty_are_no_data(bad: float | None) -> None:
    check = judge(resolved(max=0.01, onNoData="hold"), obs(bad), None, T0)
    assert check.status.verdict is Verdict.NO_DATA
    assert not check.passing and check.status.failures == 0
    assert check.status.noDataSince is not None


def test_no_data_hold_fails_once_the_bound_has_passed() -> None:
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=120)
    first = judge(slo, obs(math.nan), None, T0).status
    held = judge(slo, obs(math.nan), first, T0 + timedelta(seconds=119)).status
    assert held.verdict is Verdict.NO_DATA and held.failures == 0
    failed = judge(slo, obs(math.nan), held, T0 + timedelta(seconds=120)).status
    assert failed.verdict is Verdict.FAIL and failed.failures == 1
    # data coming back ends the run of missing data
    back = judge(slo, obs(0.001), failed, T0 + timedelta(seconds=150)).status
    assert back.verdict is Verdict.PASS and back.noDataSince is None


def test_no_data_fail_and_pass_policies() -> None:
    assert judge(resolved(max=0.01, onNoData="fail"), obs(None), None, T0).status.verdict is Verdict.FAIL
    passing = judge(resolved(max=0.01, onNoData="pass"), obs(None), None, T0)
    assert passing.status.verdict is Verdict.NO_DATA and passing.passing


def test_missing_baseline_for_a_relative_threshold_is_no_data() -> None:
    check = judge(resolved(maxIncreaseOverBaseline=0.01, onNoData="hold"), obs(0.001, baseline=math.nan), None, T0)
    assert check.status.verdict is Verdict.NO_DATA


def test_an_absolute_breach_fails_even_without_baseline() -> None:
    check = judge(resolved(max=0.01, maxIncreaseOverBaseline=0.01), obs(0.5, baseline=None), None, T0)
    assert check.status.verdict is Verdict.FAIL


def test_errors_are_counted_apart_and_a_pass_resets_them() -> None:
    slo = resolved(max=0.01)
    err = judge(slo, obs(None, error="timeout"), None, T0).status
    err = judge(slo, obs(None, error="timeout"), err, T0).status
    assert err.verdict is Verdict.ERROR and err.consecutiveErrors == 2 and err.failures == 0
    assert judge(slo, obs(0.001), err, T0).status.consecutiveErrors == 0


@pytest.mark.parametrize(("between", "policy", "verdict"), [
    (obs(None), "pass", Verdict.NO_DATA),
    (obs(None), "hold", Verdict.NO_DATA),
    (obs(0.001, samples=10), "hold", Verdict.INCONCLUSIVE),
    (obs(0.5), "hold", Verdict.FAIL),
])
def test_any_verdict_other_than_an_error_ends_a_run_of_errors(
        between: SLOObservation, policy: str, verdict: Verdict) -> None:
    # given consecutiveErrorLimit 2 and a failureLimit that a single failure stays within
    slo = resolved(max=0.01, onNoData=policy)
    err = obs(None, error="timeout")
    prev: tuple[SLOStatus, ...] = ()
    # when provider errors come three times, never two in a row: each followed by another verdict
    for i, look in enumerate((err, between, err, between, err)):
        tick = assess([slo], prev, [look], T0 + timedelta(seconds=30 * i), failure_limit=5,
                      consecutive_error_limit=2)
        prev = tick.slos
        # then the verdict in between resets the run, and an error starts a new one at 1
        assert tick.slos[0].verdict is (Verdict.ERROR if look is err else verdict)
        assert tick.slos[0].consecutiveErrors == (1 if look is err else 0)
    # and nothing fails closed: the errors were never consecutive
    assert not tick.errored and not tick.must_roll_back


def test_time_the_provider_could_not_answer_is_no_part_of_a_run_without_a_verdict() -> None:
    # given an SLO tolerating 30s without a verdict, on thin traffic for 10s
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=30)
    thin = obs(0.0, samples=10)
    st = judge(slo, thin, None, T0).status
    st = judge(slo, thin, st, T0 + timedelta(seconds=10)).status
    # when the provider errs for 30s, a look every second
    for s in range(11, 41):
        st = judge(slo, obs(None, error="connection refused"), st, T0 + timedelta(seconds=s)).status
    assert st.verdict is Verdict.ERROR and st.consecutiveErrors == 30 and st.failures == 0
    # then the first thin look after it is still no verdict: 11s of the run counted, not 41
    after = judge(slo, thin, st, T0 + timedelta(seconds=41)).status
    assert after.verdict is Verdict.INCONCLUSIVE and after.failures == 0, after
    assert after.noDataSince == "2026-03-01T12:00:30Z"
    # and the bound still holds on the time looked: thin until 30s of looks, then onNoData decides
    assert judge(slo, thin, after, T0 + timedelta(seconds=59)).status.verdict is Verdict.INCONCLUSIVE
    assert judge(slo, thin, after, T0 + timedelta(seconds=60)).status.verdict is Verdict.FAIL


def test_a_run_that_reached_its_bound_before_the_provider_erred_keeps_its_start() -> None:
    # given a run without a verdict that failed at its bound
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=30)
    st = judge(slo, obs(math.nan), None, T0).status
    st = judge(slo, obs(math.nan), st, T0 + timedelta(seconds=30)).status
    assert st.verdict is Verdict.FAIL
    # when the provider errs, then comes back still without data
    st = judge(slo, obs(None, error="timeout"), st, T0 + timedelta(seconds=40)).status
    again = judge(slo, obs(math.nan), st, T0 + timedelta(seconds=41)).status
    # then the run is the same run, still failed, its start unchanged
    assert st.noDataSince == again.noDataSince == "2026-03-01T12:00:00Z"
    assert again.verdict is Verdict.FAIL


def test_errors_between_thin_looks_still_let_the_run_reach_its_bound() -> None:
    # given a thin canary under a provider that fails every other look, 30s tolerated without a verdict
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=30)
    st: SLOStatus | None = None
    verdicts = []
    # when looks come every second, erroring and thin in turn
    for s in range(0, 80):
        look = obs(None, error="timeout") if s % 2 else obs(0.0, samples=10)
        st = judge(slo, look, st, T0 + timedelta(seconds=s)).status
        verdicts.append(st.verdict)
    # then the thin looks' time adds up and the run fails: a flapping provider cannot hold it forever
    assert Verdict.FAIL in verdicts and verdicts.index(Verdict.FAIL) <= 62, verdicts


@pytest.mark.parametrize("unjudged_for", [60, 3600])
def test_a_gap_between_looks_counts_only_up_to_the_look_gap(unjudged_for: int) -> None:
    # given a run without a verdict 10s old, an SLO tolerating 30s, looks allowed 11s apart
    slo = resolved(max=0.01, onNoData="hold", no_data_seconds=30)
    thin = obs(0.0, samples=10)
    st = judge(slo, thin, None, T0, look_gap=11).status
    st = judge(slo, thin, st, T0 + timedelta(seconds=10), look_gap=11).status
    # when nobody looks for a while (a step without analysis, the operator down), then the canary is thin
    at = T0 + timedelta(seconds=10 + unjudged_for)
    after = judge(slo, thin, st, at, look_gap=11).status
    # then 11s of the gap count, not all of it: still no verdict, 21s of the run gone
    assert after.verdict is Verdict.INCONCLUSIVE and after.failures == 0, after
    assert judge(slo, thin, after, at + timedelta(seconds=8), look_gap=11).status.verdict is Verdict.INCONCLUSIVE
    assert judge(slo, thin, after, at + timedelta(seconds=9), look_gap=11).status.verdict is Verdict.FAIL
    # and without a look gap (None) the whole gap counts, as it did
    assert judge(slo, thin, st, at).status.verdict is Verdict.FAIL


def test_at_full_traffic_a_shift_unjudged_through_an_outage_does_not_count_it() -> None:
    # given the 100% step, a shift SLO thin while stable's requests are still in the window
    shift = ResolvedSLO(SLO(name="score-shift", max=0.05, onNoData="hold"), 100, 30)
    thin = SLOObservation("score-shift", MetricValue(0.6, 10), MetricValue(0.6, 900))
    prev = assess([shift], [], [thin], T0, failure_limit=0, consecutive_error_limit=5, full_traffic=True,
                  look_gap=11).slos
    # when the provider errs for 30s (the shift is kept unjudged at full traffic, its status unchanged)
    for s in range(1, 31):
        err = SLOObservation("score-shift", None, None, "connection refused")
        kept = assess([shift], prev, [err], T0 + timedelta(seconds=s), failure_limit=0,
                      consecutive_error_limit=5, full_traffic=True, look_gap=11)
        assert kept.slos == prev and not kept.must_roll_back
    # then the first thin look after it (stable still in the window) is no verdict, not a rollback
    back = assess([shift], prev, [thin], T0 + timedelta(seconds=31), failure_limit=0, consecutive_error_limit=5,
                  full_traffic=True, look_gap=11)
    assert back.slos[0].verdict is Verdict.INCONCLUSIVE and not back.must_roll_back, back.slos


def test_assess_crosses_limits_in_the_same_tick() -> None:
    slo = resolved(max=0.01)
    prev = [SLOStatus(name="error-rate", failures=1, consecutiveErrors=0)]
    outcome = assess([slo], prev, [obs(0.5)], T0, failure_limit=1, consecutive_error_limit=3)
    assert outcome.failed == ("error-rate",) and outcome.must_roll_back
    within = assess([slo], [], [obs(0.5)], T0, failure_limit=1, consecutive_error_limit=3)
    assert not within.must_roll_back and within.failing == ("error-rate",)


def test_assess_treats_a_missing_observation_as_an_error_and_fails_closed() -> None:
    slo = resolved(max=0.01)
    prev = [SLOStatus(name="error-rate", consecutiveErrors=1)]
    outcome = assess([slo], prev, [], T0, failure_limit=0, consecutive_error_limit=1)
    assert outcome.errored == ("error-rate",) and not outcome.passed


def test_tick_passes_only_when_every_slo_passes() -> None:
    a, b = resolved(max=0.01), ResolvedSLO(SLO(name="latency-p99", max=0.3), 100, 60)
    good = [obs(0.001), SLOObservation("latency-p99", MetricValue(0.1, 500))]
    slow = [obs(0.001), SLOObservation("latency-p99", MetricValue(0.1, 5))]
    assert assess([a, b], [], good, T0, failure_limit=0, consecutive_error_limit=0).passed
    assert not assess([a, b], [], slow, T0, failure_limit=0, consecutive_error_limit=0).passed


# --- score-shift: judged on the distance between the tracks ----------------------------------------


def shift_slo(**fields: object) -> ResolvedSLO:
    return ResolvedSLO(SLO.model_validate({"name": "score-shift", **fields}), 100, 120)


def means(canary: float | None, stable: float | None) -> SLOObservation:
    return SLOObservation("score-shift", MetricValue(canary, 100), MetricValue(stable, 900))


def test_score_shift_is_the_absolute_difference_of_the_mean_scores() -> None:
    # given mean scores 0.62 (canary) and 0.70 (stable)
    obs = compared(shift_slo(max=0.05), means(0.62, 0.70))
    # then canary carries |0.62 - 0.70| and stable 0, so max and maxIncreaseOverBaseline read as the shift
    assert obs is not None and obs.canary is not None and obs.canary.value == pytest.approx(0.08)
    assert obs.canary.samples == 100
    assert obs.stable == MetricValue(0.0, 900)
    # and a shift over max fails, one within it passes, in either direction
    assert judge(shift_slo(max=0.05), means(0.62, 0.70), None, T0).status.verdict is Verdict.FAIL
    assert judge(shift_slo(max=0.05), means(0.73, 0.70), None, T0).status.verdict is Verdict.PASS
    assert judge(shift_slo(maxIncreaseOverBaseline=0.05), means(0.78, 0.70), None, T0).status.verdict \
        is Verdict.FAIL


def test_score_shift_without_a_stable_mean_is_no_data() -> None:
    obs = compared(shift_slo(max=0.05), means(0.62, None))
    assert obs is not None and obs.canary is not None and obs.canary.value is None
    assert obs.stable is not None and obs.stable.value is None
    check = judge(shift_slo(max=0.05, onNoData="hold"), means(0.62, None), None, T0)
    assert check.status.verdict is Verdict.NO_DATA and not check.passing


def test_other_slos_are_judged_per_track() -> None:
    raw = obs(0.02, baseline=0.01)
    assert compared(resolved(max=0.01), raw) is raw


def test_a_dry_run_slo_is_judged_and_shown_but_never_gates() -> None:
    # given a gating error-rate that passes and a dry-run latency SLO far over its threshold, with errors
    gate = resolved(max=0.01)
    dry = ResolvedSLO(SLO(name="latency-p99", max=0.1, dryRun=True), 100, 60)
    prev = [SLOStatus(name="latency-p99", failures=5, consecutiveErrors=9)]
    observed = [obs(0.001), SLOObservation("latency-p99", MetricValue(0.9, 500))]
    # when the tick is assessed
    outcome = assess([gate, dry], prev, observed, T0, failure_limit=0, consecutive_error_limit=0)
    # then the dry-run SLO's verdict is there, marked, with its value
    shown = {s.name: s for s in outcome.slos}["latency-p99"]
    assert shown.verdict is Verdict.FAIL and shown.value == 0.9 and shown.dryRun is True
    # and the tick passes and nothing rolls back
    assert outcome.passed and not outcome.must_roll_back and outcome.failing == ()
    # and a provider error of a dry-run SLO does not fail closed either
    errored = assess([gate, dry], prev, [obs(0.001), SLOObservation("latency-p99", error="boom")], T0,
                     failure_limit=0, consecutive_error_limit=0)
    assert errored.passed and errored.errored == () and errored.erroring == ()
    # and the same SLO without dryRun would have rolled back
    gating = ResolvedSLO(SLO(name="latency-p99", max=0.1), 100, 60)
    assert assess([gate, gating], prev, observed, T0, failure_limit=0, consecutive_error_limit=0).must_roll_back


# --- full traffic: the canary serves alone, stable serves nothing -----------------------------------


def test_at_full_traffic_slos_relative_to_stable_are_judged_as_in_the_bake_window() -> None:
    # given the 100% step, no baseline carried, and three SLOs that hold on missing data for 120s: a
    # score-shift, an error-rate with an absolute and a relative limit, and a relative-only request-rate
    shift = shift_slo(max=0.05, onNoData="hold")
    both = resolved(max=0.01, maxIncreaseOverBaseline=0.005, onNoData="hold")
    relative = ResolvedSLO(SLO(name="request-rate", maxIncreaseOverBaseline=5.0, onNoData="hold"), 100, 120)
    quiet_stable = [means(0.62, None), obs(0.001, baseline=None),
                    SLOObservation("request-rate", MetricValue(50.0, 500), MetricValue(None, 0))]
    # when stable serves nothing for longer than maxNoDataDuration (its values are empty)
    prev: tuple[SLOStatus, ...] = ()
    for tick_no in range(1, 7):
        tick = assess([shift, both, relative], prev, quiet_stable, T0 + timedelta(seconds=30 * tick_no),
                      failure_limit=0, consecutive_error_limit=0, full_traffic=True)
        prev = tick.slos
        # then the shift and the relative-only SLO are not judged, error-rate on its absolute limit only
        assert [s.name for s in tick.slos] == ["error-rate"]
        assert tick.slos[0].verdict is Verdict.PASS and tick.slos[0].threshold == "max 0.01, minSamples 100"
        # and every tick passes: a healthy canary is not rolled back for want of a stable track
        assert tick.passed and not tick.must_roll_back


def test_at_full_traffic_an_absolute_limit_still_fails() -> None:
    # given the 100% step, no baseline carried, an error-rate with absolute and relative limits
    both = resolved(max=0.01, maxIncreaseOverBaseline=0.005)
    # when the canary's error rate is far over max
    tick = assess([both], [], [obs(0.5, baseline=None)], T0, failure_limit=0, consecutive_error_limit=0,
                  full_traffic=True)
    # then it fails and rolls back
    assert tick.slos[0].verdict is Verdict.FAIL and tick.failed == ("error-rate",) and tick.must_roll_back


def test_below_full_traffic_relative_slos_are_still_judged_against_stable() -> None:
    # given a canary step below 100%, where stable serves: a score-shift whose stable mean is missing
    tick = assess([shift_slo(max=0.05, onNoData="hold")], [], [means(0.62, None)], T0,
                  failure_limit=0, consecutive_error_limit=0)
    # then the shift is judged and has no data (the step holds)
    assert tick.slos[0].verdict is Verdict.NO_DATA and not tick.passed


def test_at_full_traffic_a_shift_is_still_judged_while_stable_has_data_in_the_window() -> None:
    # given the 100% step entered a moment ago: stable's requests of the step before are still in the window
    shift = shift_slo(max=0.05, onNoData="hold")
    # when the canary's mean score is far from stable's, then the shift is judged (and fails) as at any step
    tick = assess([shift], [], [means(0.9, 0.6)], T0, failure_limit=0, consecutive_error_limit=0,
                  full_traffic=True)
    assert [s.name for s in tick.slos] == ["score-shift"] and tick.slos[0].verdict is Verdict.FAIL
    assert tick.must_roll_back
    # and when stable's requests have left the window, the shift is not judged, its last status kept
    later = assess([shift], tick.slos, [means(0.9, None)], T0 + timedelta(seconds=120), failure_limit=1,
                   consecutive_error_limit=0, full_traffic=True)
    assert later.slos == tick.slos and later.passed
