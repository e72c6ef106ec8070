"""The bake window: a promoted version stays under analysis at full traffic, and a failure inside the
window rolls back to the last known good version with evidence; after the window it does not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import Phase, Verdict
from tollgate.engine import conditions as cond
from tollgate.engine.actions import Cause, Reason, RecordEvidence, RollBack
from tollgate.engine.bake_analysis import bake_slos
from tollgate.engine.observations import Controls, MetricValue, SLOObservation, StreamData
from tollgate.engine.policy import resolve_policy
from tollgate.engine.rollout import Case
from tollgate.engine.timeutil import parse_time

from .conftest import GOOD, Sim, make_spec, updated

WINDOW = "5m"


def baking_spec(**overrides: Any) -> ModelDeploymentSpec:
    rollout = {"steps": [{"weight": 50}, {"weight": 100}], "bakeWindow": WINDOW,
               "analysis": {"interval": "30s", "failureLimit": 1, "consecutiveErrorLimit": 2, "minSamples": 100},
               "progressDeadline": "5m"}
    return make_spec(rollout=rollout, **overrides)


def promoted(sim: Sim, version: str = "2.0.0") -> Sim:
    """Given a stable 1.0.0, `version` rolled out on healthy ticks until its promotion."""
    sim.deploy_stable()
    sim.set_version(version)
    sim.settle()
    for _ in range(12):
        sim.tick(GOOD)
        if sim.status.canary is None:
            break
    assert sim.status.canary is None and sim.status.stable is not None, sim.status.message
    assert sim.status.stable.version == version
    return sim


def on_stable(value: float | None, samples: int = 1000, error: str | None = None) -> tuple[SLOObservation, ...]:
    """One look in the bake window as the runtime measures it: the stable track runs the promoted version."""
    return (SLOObservation("error-rate", canary=None, stable=MetricValue(value, samples), error=error,
                           query='tollgate:error-rate{track="stable"}[1m]', window="1m"),)


def test_a_promoted_version_bakes_with_the_window_and_its_end_in_status() -> None:
    # given a rollout with a 5m bake window
    sim = promoted(Sim(baking_spec()))
    d = sim.decisions[-1]
    st = sim.status
    # then it is stable and Baking, not yet the last known good: that stays 1.0.0
    assert st.phase is Phase.BAKING
    assert st.lastKnownGood is not None and st.lastKnownGood.version == "1.0.0"
    assert st.bake is not None and st.bake.version == "2.0.0" and st.bake.window == WINDOW
    assert parse_time(st.bake.until) == sim.now + timedelta(minutes=5) == parse_time(st.bake.since) + timedelta(
        minutes=5)
    assert st.bake.rollbackTo == "1.0.0" and st.bake.until in st.message
    assert Reason.PROMOTED in d.event_reasons and Reason.BAKE_STARTED in d.event_reasons
    # and it serves: Ready, not Reconciling
    assert cond.is_true(st.conditions, cond.READY)
    # and the engine wakes at the window's end and looks at the promoted version one interval later
    assert d.wake.deadline == parse_time(st.bake.until)
    assert d.wake.analysis_due == sim.now + timedelta(seconds=30)


def test_the_bake_measures_the_stable_track_for_the_promoted_version() -> None:
    # given a version in its bake window
    sim = promoted(Sim(baking_spec()))
    # when the next look is due
    due = sim.decisions[-1].wake.analysis
    assert due is not None
    request = Case.of(sim.spec, sim.status, sim.ctx).analysis_request(due)
    # then the runtime measures the stable track, for the promoted version only
    assert request is not None and request.versions == (("stable", "2.0.0"),)
    assert [s.name for s in request.slos] == ["error-rate"]


def test_a_regression_inside_the_window_rolls_back_to_last_known_good_with_evidence() -> None:
    # given a version in its bake window (failureLimit 1)
    sim = promoted(Sim(baking_spec()))
    baked = sim.status.stable
    assert baked is not None
    # when it crosses the absolute limit (max 0.01) at two looks an interval apart
    sim.tick(on_stable(0.2))
    assert sim.status.phase is Phase.BAKING and sim.status.analysis[0].verdict is Verdict.FAIL
    d = sim.tick(on_stable(0.2))
    st = d.status
    # then, in that decision, all traffic goes back to 1.0.0 and 2.0.0 stays rolled back
    assert st.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), st.message
    assert st.stable is not None and st.stable.version == "1.0.0"
    assert st.lastKnownGood is not None and st.lastKnownGood.version == "1.0.0"
    assert st.rolledBackRevision == baked.revision and st.bake is None
    (rb,) = d.of_type(RollBack)
    assert rb.revision == baked.revision and rb.cause is Cause.ANALYSIS
    assert rb.to_revision == st.stable.revision
    assert [h.result for h in st.history[:2]] == ["RolledBack", "Promoted"]
    assert st.history[0].incident == st.lastIncident
    assert Reason.ROLLED_BACK in d.event_reasons
    # and the stable Deployment rolls back to 1.0.0
    assert sim.tracks["stable"][0] == st.stable.revision
    # and the evidence holds the window, the value that crossed the limit and the query as executed
    (ev,) = d.of_type(RecordEvidence)
    payload = ev.payload
    assert payload["bake"]["version"] == "2.0.0" and payload["bake"]["until"] == sim.decisions[-3].status.bake.until
    assert payload["canary"]["version"] == "2.0.0" and payload["stable"]["version"] == "1.0.0"
    (slo,) = payload["slos"]
    assert slo["verdict"] == "Fail" and slo["value"] == 0.2 and slo["failures"] == 2
    (obs,) = payload["observations"]
    assert obs["canary"]["value"] == 0.2 and 'track="stable"' in obs["query"]
    assert "BakeStarted" in [t["reason"] for t in payload["timeline"]]
    # and it stays rolled back: the next decisions do not bring 2.0.0 back
    sim.settle()
    assert sim.status.phase is Phase.ROLLED_BACK and sim.status.stable == st.stable


def test_after_the_window_the_version_is_last_known_good_and_no_longer_judged() -> None:
    # given a version in its bake window, healthy
    sim = promoted(Sim(baking_spec()))
    baked = sim.status.stable
    for _ in range(4):
        sim.tick(on_stable(0.001))
    assert sim.status.phase is Phase.BAKING
    # when the window's end comes
    until = parse_time(sim.status.bake.until if sim.status.bake else None)
    assert until is not None
    d = sim.step(after=(until - sim.now).total_seconds())
    # then it is the last known good version, Succeeded, with no wake for analysis
    assert d.status.phase is Phase.SUCCEEDED and d.status.bake is None
    assert d.status.lastKnownGood == baked
    assert Reason.BAKE_COMPLETED in d.event_reasons
    assert d.wake.analysis is None and d.wake.deadline is None
    # and a regression now is not measured, and not judged if it were
    assert Case.of(sim.spec, sim.status, sim.ctx).analysis_request(sim.now + timedelta(hours=1)) is None
    later = sim.step(on_stable(0.9), after=60)
    assert later.status.phase is Phase.SUCCEEDED and not later.of_type(RollBack)


def test_a_look_that_comes_after_the_window_does_not_judge_it() -> None:
    # given a version in its bake window with one failure counted
    sim = promoted(Sim(baking_spec()))
    sim.tick(on_stable(0.2))
    until = parse_time(sim.status.bake.until if sim.status.bake else None)
    assert until is not None
    # when a failing look arrives just after the end
    d = sim.step(on_stable(0.2), after=(until - sim.now).total_seconds() + 1)
    # then the window has ended: no rollback
    assert d.status.phase is Phase.SUCCEEDED and not d.of_type(RollBack)


@pytest.mark.parametrize("tier, window", [("low", None), ("medium", None), ("high", "10m"), ("critical", "30m")])
def test_risk_tiers_set_the_default_window(tier: str, window: str | None) -> None:
    spec = make_spec(riskTier=tier, rollout={"steps": [{"weight": 50, "approval": "required"}, {"weight": 100}]})
    policy = resolve_policy(spec)
    assert policy.bake_window == (window or "0s")
    assert policy.bake_seconds == (0 if window is None else int(window[:-1]) * 60)


def test_without_a_window_promotion_makes_the_version_last_known_good_at_once() -> None:
    # given bakeWindow 0s on a tier that has one
    spec = make_spec(riskTier="high", rollout={"steps": [{"weight": 50}, {"weight": 100}], "bakeWindow": "0s",
                                               "analysis": {"interval": "30s", "minSamples": 100}})
    sim = promoted(Sim(spec))
    # then Succeeded at once, no bake
    assert sim.status.phase is Phase.SUCCEEDED and sim.status.bake is None
    assert sim.status.lastKnownGood == sim.status.stable


def test_provider_errors_in_the_window_never_roll_back() -> None:
    sim = promoted(Sim(baking_spec()))
    for _ in range(6):
        d = sim.tick(on_stable(None, error="connection refused"))
        assert not d.of_type(RollBack)
    assert sim.status.phase is Phase.BAKING
    assert Reason.ANALYSIS_ERROR in d.event_reasons


def test_missing_data_and_thin_traffic_never_roll_back_a_baking_version() -> None:
    # given a hold policy that fails a canary after 2 minutes without data
    sim = promoted(Sim(baking_spec()))
    # when the bake sees no data, then too few requests, for longer than that
    for i in range(8):
        d = sim.tick(on_stable(None) if i % 2 else on_stable(0.5, samples=5))
        assert not d.of_type(RollBack), d.status.analysis
    assert sim.status.phase is Phase.BAKING


def test_abort_rolls_back_and_promote_ends_the_window() -> None:
    # given a version in its bake window; when someone aborts, then it is rolled back (Aborted)
    sim = promoted(Sim(baking_spec()))
    sim.controls = Controls(abort="alice")
    d = sim.step(after=1)
    (rb,) = d.of_type(RollBack)
    assert rb.cause is Cause.ABORT and d.status.stable is not None and d.status.stable.version == "1.0.0"
    assert d.status.history[0].result == "Aborted"
    # given another version baking; when someone promotes, then the window ends now
    sim = promoted(Sim(baking_spec()), "2.0.0")
    sim.controls = Controls(promote="bob")
    d = sim.step(after=1)
    assert d.status.phase is Phase.SUCCEEDED and d.status.lastKnownGood == d.status.stable
    assert "tollgate.dev/promote=bob" in d.status.message


def test_a_new_revision_ends_the_window_and_the_version_is_not_last_known_good() -> None:
    sim = promoted(Sim(baking_spec()))
    sim.set_version("3.0.0")
    d = sim.step(after=1)
    assert Reason.BAKE_ENDED in d.event_reasons and Reason.CANARY_STARTED in d.event_reasons
    assert d.status.bake is None and d.status.canary is not None and d.status.canary.version == "3.0.0"
    assert d.status.stable is not None and d.status.stable.version == "2.0.0"
    assert d.status.lastKnownGood is not None and d.status.lastKnownGood.version == "1.0.0"


def test_kill_switch_in_the_window_falls_back_to_last_known_good_and_the_window_starts_over() -> None:
    sim = promoted(Sim(baking_spec()))
    # when the kill switch goes on: all traffic on 1.0.0, the last known good
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.settle()
    assert sim.status.phase is Phase.FALLBACK and sim.status.fallback is not None
    assert sim.status.fallback.version == "1.0.0"
    # when it goes off ten minutes later (past the original end), then the window starts over
    sim.spec = updated(sim.spec, killSwitch=False)
    d = sim.step(after=600)
    assert d.status.phase is Phase.BAKING and d.status.bake is not None
    assert parse_time(d.status.bake.until) == sim.now + timedelta(minutes=5)


# --- against the previous version's recorded baseline -----------------------------------------

RELATIVE = {"name": "error-rate", "max": 0.5, "maxIncreaseOverBaseline": 0.01, "onNoData": "hold",
            "maxNoDataDuration": "1m"}


class Streams:
    """Counts since the canary started, as the runtime's streams measure them (1% errors on 1.0.0)."""

    def __init__(self) -> None:
        self.canary = self.stable = 0
        self.canary_errors = self.stable_errors = 0.0

    def canary_look(self, sim: Sim, canary: int, stable: int) -> tuple[SLOObservation, ...]:
        self.canary += canary
        self.canary_errors += canary * 0.01
        self.stable += stable
        self.stable_errors += stable * 0.01
        return (SLOObservation(
            "error-rate", MetricValue(0.01, canary), MetricValue(0.01 if stable else None, stable), window="1m",
            stream_since=sim.status.canaryStartedAt, canary_stream=StreamData(self.canary, self.canary_errors),
            stable_stream=StreamData(self.stable, self.stable_errors)),)


def test_a_regression_against_the_previous_versions_carried_baseline_rolls_back() -> None:
    # given a healthy canary compared with 1.0.0's live stream, then promoted into a 5m bake window
    sim = Sim(baking_spec(slos=[RELATIVE]))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.settle()
    streams = Streams()
    sim.tick(streams.canary_look(sim, canary=2000, stable=2000))
    for _ in range(6):
        if sim.status.canary is None:
            break
        sim.tick(streams.canary_look(sim, canary=4000, stable=0))
    assert sim.status.phase is Phase.BAKING, sim.status.message
    (carried,) = sim.status.baselines
    assert carried.samples == 2000 and carried.step == 0
    assert sim.status.bake is not None and sim.status.bake.streamSince == sim.status.canaryStartedAt
    # (the bake judges both limits of this SLO: the relative one has a carried baseline)
    (judged,) = bake_slos(resolve_policy(sim.spec), sim.status)
    assert judged.slo.maxIncreaseOverBaseline == 0.01
    # when 2.0.0, now on the stable track, serves 5% errors (within the absolute max 0.5)
    since = sim.status.bake.streamSince
    served, errors = 0, 0.0
    d = None
    for _ in range(6):
        served += 3000
        errors += 3000 * 0.05
        look = (SLOObservation("error-rate", canary=None, stable=MetricValue(0.05, 3000), window="1m",
                               stream_since=since, stable_stream=StreamData(served, errors)),)
        d = sim.tick(look)
        if d.of_type(RollBack):
            break
    # then the regression against 1.0.0's carried baseline is significant and rolls it back
    assert d is not None and d.of_type(RollBack), sim.status.analysis
    (ev,) = d.of_type(RecordEvidence)
    (slo,) = ev.payload["slos"]
    assert slo["verdict"] == "Fail" and slo["baselineSource"] == "carried" and slo["test"] == "two-proportion"
    assert ev.payload["baselines"][0]["samples"] == 2000
    assert d.status.stable is not None and d.status.stable.version == "1.0.0"


def test_a_relative_only_slo_without_a_carried_baseline_is_not_judged_in_the_window() -> None:
    # given an SLO with only a relative limit, and no baseline recorded (no streams were measured)
    spec = baking_spec(slos=[{"name": "error-rate", "maxIncreaseOverBaseline": 0.01}])
    sim = promoted(Sim(spec))
    # then the bake judges nothing and does not look
    assert bake_slos(resolve_policy(sim.spec), sim.status) == ()
    assert sim.decisions[-1].wake.analysis is None
    assert sim.status.phase is Phase.BAKING
