"""A first deployment is analysed too (issue 20, flagger#676): once Ready it bakes on its absolute limits;
failed, it is marked failed, and traffic goes to spec.fallback when there is one (kill-switch semantics),
otherwise it keeps serving and says so (Stalled)."""

from __future__ import annotations

from typing import Any

from tollgate.api.status import Phase
from tollgate.engine import conditions as cond
from tollgate.engine.actions import RecordEvidence, RollBack, SetWeight
from tollgate.engine.observations import Controls, MetricValue, SLOObservation
from tollgate.engine.rollout import Case
from tollgate.engine.timeutil import parse_time

from .conftest import Sim, make_spec, with_version

WINDOW = "5m"


def first_spec(**overrides: Any) -> Any:
    rollout = {"steps": [{"weight": 50}, {"weight": 100}], "bakeWindow": WINDOW,
               "analysis": {"interval": "30s", "failureLimit": 0, "minSamples": 100}, "progressDeadline": "5m"}
    return make_spec(rollout=rollout, **overrides)


def on_stable(value: float) -> tuple[SLOObservation, ...]:
    return (SLOObservation("error-rate", canary=None, stable=MetricValue(value, 1000), window="1m"),)


def test_a_first_version_bakes_on_its_absolute_limits_once_ready() -> None:
    sim = Sim(first_spec())
    d = sim.settle()
    st = d.status
    assert st.phase is Phase.BAKING and st.lastKnownGood is None, st.message
    assert st.bake is not None and st.bake.version == "1.0.0" and st.bake.rollbackTo is None
    assert "marks it failed" in st.message
    request = Case.of(sim.spec, st, sim.ctx).analysis_request(d.wake.analysis or sim.now)
    assert request is not None and request.versions == (("stable", "1.0.0"),) and request.stream_since is None
    # (only the absolute limit is judged: there is no baseline)
    (slo,) = request.slos
    assert slo.max == 0.01 and slo.maxIncreaseOverBaseline is None


def test_a_failed_first_version_without_a_fallback_is_marked_failed_and_keeps_serving() -> None:
    sim = Sim(first_spec())
    sim.settle()
    rev = sim.status.stable
    # when it crosses its absolute limit inside the window
    d = sim.tick(on_stable(0.3))
    st = d.status
    # then it is marked failed with evidence, and keeps serving (nothing else to serve): Stalled, saying so
    assert st.phase is Phase.STALLED and "no spec.fallback" in st.message, st.message
    assert cond.is_true(st.conditions, cond.STALLED)
    assert st.history[0].result == "Failed" and st.history[0].incident == st.lastIncident
    assert st.rolledBackRevision == rev.revision and st.lastKnownGood is None and st.bake is None
    (ev,) = d.of_type(RecordEvidence)
    assert ev.payload["canary"]["version"] == "1.0.0" and ev.payload["stable"] is None
    assert ev.payload["bake"]["version"] == "1.0.0"
    assert sim.tracks["stable"][0] == rev.revision
    # and it stays failed
    assert sim.settle().status.phase is Phase.STALLED
    # when retried, then it bakes again
    sim.controls = Controls(retry="alice")
    d = sim.step(after=1)
    assert d.status.phase is Phase.BAKING and d.status.rolledBackRevision is None


def test_a_failed_first_version_with_a_fallback_sends_all_traffic_there() -> None:
    sim = Sim(first_spec(fallback={"version": "0.9.0"}))
    sim.settle()
    assert sim.status.bake is not None and sim.status.bake.rollbackTo == "0.9.0"
    # when it fails inside the window
    d = sim.tick(on_stable(0.3))
    (rb,) = d.of_type(RollBack)
    assert d.status.killSwitchActive and d.status.phase is Phase.FALLBACK
    assert "fallback" in sim.tracks and sim.tracks["fallback"][0] == rb.to_revision
    # then once the fallback is Ready, it takes all traffic, and stays there
    d = sim.step(after=1)
    assert d.status.fallback is not None and d.status.fallback.version == "0.9.0", d.status.message
    assert any(a.fallback for a in d.of_type(SetWeight))
    d = sim.settle()
    assert d.status.phase is Phase.FALLBACK and d.status.killSwitchActive
    # when the spec asks for a new version, then the fallback ends and the new version deploys and bakes
    sim.spec = with_version(sim.spec, "1.1.0")
    d = sim.settle()
    assert not d.status.killSwitchActive and d.status.stable is not None and d.status.stable.version == "1.1.0"
    assert d.status.phase is Phase.BAKING and d.status.rolledBackRevision is None


def test_without_a_bake_window_a_first_version_is_stable_at_once() -> None:
    sim = Sim(make_spec())
    d = sim.settle()
    assert d.status.phase is Phase.STABLE and d.status.lastKnownGood is not None and d.status.bake is None


def test_a_first_version_healthy_through_its_window_is_stable_and_last_known_good() -> None:
    # given a first version baking on its absolute limits
    sim = Sim(first_spec())
    sim.settle()
    bake = sim.status.bake
    assert bake is not None and sim.status.phase is Phase.BAKING
    # when it stays healthy until the window's end
    sim.tick(on_stable(0.001))
    assert sim.status.phase is Phase.BAKING, sim.status.message
    d = sim.step(after=(parse_time(bake.until) - sim.now).total_seconds())  # type: ignore[operator]
    # then it is Stable, as a first version without a window (not Succeeded: nothing was promoted), and the
    # version to return to from now on
    assert d.status.phase is Phase.STABLE and "first version" in d.status.message, d.status.message
    assert d.status.bake is None and d.status.lastKnownGood is not None
    assert d.status.lastKnownGood.revision == bake.revision
