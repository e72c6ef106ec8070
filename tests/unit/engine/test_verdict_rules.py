"""Verdicts in the rollout: the baseline survives the 100% step, looks come every scrape interval, a step
still takes its full duration, and a regression rolls back the moment it is significant."""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.status import Phase, Verdict
from tollgate.engine.observations import MetricValue, SLOObservation, StreamData

from .conftest import Sim, make_spec

SLO = {"name": "error-rate", "max": 0.2, "maxIncreaseOverBaseline": 0.01, "onNoData": "hold",
       "maxNoDataDuration": "1m"}


class Traffic:
    """Counts since the canary started, as the runtime's stream measures them (1% errors on stable)."""

    def __init__(self, canary_rate: float = 0.01) -> None:
        self.canary_rate = canary_rate
        self.canary = self.stable = 0

    def look(self, sim: Sim, canary: int, stable: int) -> tuple[SLOObservation, ...]:
        self.canary += canary
        self.stable += stable
        since = sim.status.canaryStartedAt
        window_stable = MetricValue(0.01 if stable else None, stable)
        return (SLOObservation(
            "error-rate", MetricValue(self.canary_rate, canary), window_stable, window="1m", stream_since=since,
            canary_stream=StreamData(self.canary, self.canary * self.canary_rate),
            stable_stream=StreamData(self.stable, self.stable * 0.01)),)


def rollout(steps: list[dict[str, object]], scrape: float | None = None, **analysis: object) -> Sim:
    sim = Sim(make_spec(slos=[SLO], rollout={
        "steps": steps, "analysis": {"interval": "30s", "failureLimit": 0, "minSamples": 100, **analysis},
        "progressDeadline": "5m"}), scrape_interval=scrape)
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    return sim


def test_a_bake_at_full_traffic_longer_than_the_window_keeps_its_baseline_and_promotes() -> None:
    # given a healthy canary whose 100% step pauses 5 minutes (the window is 1m, no-data bound 1m)
    sim = rollout([{"weight": 50}, {"weight": 100, "pause": "5m"}])
    traffic = Traffic()
    sim.tick(traffic.look(sim, canary=1500, stable=1500))
    assert sim.status.canaryWeight == 100
    # when it bakes at 100%: stable serves nothing, its window is empty and its stream stops growing
    for _ in range(11):
        sim.tick(traffic.look(sim, canary=3000, stable=0))
        assert sim.status.phase is not Phase.ROLLED_BACK, sim.status.analysis
    # then every verdict compared with the stable baseline carried from the 50% step, and it promoted
    sim.settle()
    assert sim.status.phase is Phase.SUCCEEDED, sim.status.message
    judged = [s for d in sim.decisions for s in d.status.analysis if s.baselineSource == "carried"]
    assert judged and all(s.verdict is Verdict.PASS for s in judged), judged[-1:]
    assert "step 1 (50% canary)" in (judged[-1].baselineFrom or "")


def test_a_significant_regression_rolls_back_at_the_first_look_that_shows_it() -> None:
    # given a canary at 6% errors against 1% on stable, looked at every 30 s with failureLimit 0
    sim = rollout([{"weight": 50, "pause": "10m"}, {"weight": 100}])
    traffic = Traffic(canary_rate=0.06)
    # when the first look sees 1,500 requests each
    sim.tick(traffic.look(sim, canary=1500, stable=1500))
    # then it is rolled back at once, with the test's evidence in status
    assert sim.status.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK), sim.status.message
    failed = sim.decisions[-1].status
    assert failed.lastIncident is not None


def test_noise_over_the_margin_holds_the_step_instead_of_rolling_back() -> None:
    # given a canary whose point estimate is over the margin, but on too little data to be significant
    sim = rollout([{"weight": 10}, {"weight": 100}])
    traffic = Traffic(canary_rate=0.03)
    sim.tick(traffic.look(sim, canary=120, stable=1080))
    # then no rollback and no pass: the step waits for more data
    slo = sim.status.analysis[0]
    assert slo.verdict is Verdict.INCONCLUSIVE and slo.failures == 0, slo
    assert sim.status.canaryWeight == 10


def test_canaries_under_analysis_are_looked_at_every_scrape_interval() -> None:
    # given an analysis interval of 30 s and metrics scraped every 5 s
    sim = rollout([{"weight": 50}, {"weight": 100}], scrape=5.0)
    entered = sim.now
    # then the next look is due 5 s after the step began, on the 5 s grid
    wake = sim.decisions[-1].wake
    assert wake.analysis_due == entered + timedelta(seconds=5)
    assert wake.analysis is not None and wake.analysis.timestamp() % 5 == 0
    # and without a scrape interval, once per analysis interval as before
    assert rollout([{"weight": 50}, {"weight": 100}]).decisions[-1].wake.analysis_due == entered + timedelta(
        seconds=30)


def test_a_step_still_takes_its_full_interval_to_pass_however_often_it_is_looked_at() -> None:
    sim = rollout([{"weight": 50}, {"weight": 100}], scrape=5.0)
    traffic = Traffic()
    entered = sim.now
    # when every look until the interval ends passes
    while sim.now < entered + timedelta(seconds=25):
        sim.tick(traffic.look(sim, canary=500, stable=500))
        # then the step is not done before its 30 s
        assert sim.status.canaryWeight == 50 and sim.status.passedAnalyses == 0, sim.now - entered
    # and the first passing look after it completes the step
    sim.tick(traffic.look(sim, canary=500, stable=500))
    assert sim.status.canaryWeight == 100


def test_one_bad_window_seen_at_many_looks_is_one_failed_check() -> None:
    # given an SLO judged by its absolute limit only (no test), failureLimit 1, looked at every 5 s
    sim = Sim(make_spec(slos=[{"name": "latency-p99", "max": 0.25}], rollout={
        "steps": [{"weight": 50}, {"weight": 100}],
        "analysis": {"interval": "30s", "failureLimit": 1, "minSamples": 100}, "progressDeadline": "5m"}),
        scrape_interval=5.0)
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    slow = (SLOObservation("latency-p99", MetricValue(0.4, 500), MetricValue(0.1, 500), window="1m"),)
    # when the same slow window is seen at the five looks of one interval
    for _ in range(5):
        sim.tick(slow)
    # then it counted once: no rollback yet
    assert sim.status.analysis[0].failures == 1 and sim.status.phase is Phase.PROGRESSING
    # and a failure one interval later is the second: failureLimit 1 is exceeded, it rolls back
    sim.tick(slow)
    sim.tick(slow)
    assert sim.status.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK), sim.status.analysis
