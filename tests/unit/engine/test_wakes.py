"""When the engine wants to look again: deadlines, and analysis ticks on the interval grid."""

from __future__ import annotations

from datetime import timedelta

from tollgate.engine.rollout import Case
from tollgate.engine.wakes import align, grid_slack

from .conftest import CTX, GOOD, Sim, make_spec


def canary_at_step_one() -> Sim:
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step(after=7.3)  # the step starts off the 30s grid
    assert sim.status.canaryWeight == 10
    return sim


def test_the_analysis_wake_is_the_grid_point_at_most_the_slack_before_the_due_time() -> None:
    # given a canary whose step started off the grid (interval 30s)
    sim = canary_at_step_one()
    wake = sim.decisions[-1].wake
    # then the analysis is due one interval after the step began
    assert wake.analysis_due == sim.now + timedelta(seconds=30)
    # and the runtime wakes on the interval grid, never later than due, at most the slack before it
    assert wake.analysis is not None and wake.analysis.timestamp() % 30 == 0
    assert wake.analysis_due - timedelta(seconds=grid_slack(30)) <= wake.analysis
    assert wake.analysis == align(wake.analysis_due, 30, grid_slack(30))
    # and no deadline comes first: the canary is Ready and the step has no pause
    assert wake.deadline is None and wake.earliest() == wake.analysis


def test_measurement_is_asked_for_at_the_grid_point_and_not_before() -> None:
    sim = canary_at_step_one()
    at = sim.decisions[-1].wake.analysis
    assert at is not None
    case = Case.of(sim.spec, sim.status, CTX)
    # when the runtime wakes for another reason between grid points, then nothing is measured
    assert case.analysis_request(at - timedelta(milliseconds=1)) is None
    # when the grid point has come, then the SLOs of the policy, its window and the versions are asked for
    request = case.analysis_request(at)
    assert request is not None
    assert request.key == (CTX.namespace, CTX.name)
    assert [s.name for s in request.slos] == ["error-rate"] and request.window == "60s"
    assert request.version_of("canary") == "2.0.0" and request.version_of("stable") == "1.0.0"
    # and the tick after it is on the next grid point (the decision time runs past the grid point)
    sim.now = at
    d = sim.step(slos=GOOD, after=0.2)
    assert d.wake.analysis == at + timedelta(seconds=30)


def test_a_progress_deadline_is_a_deadline_wake_not_an_analysis_one() -> None:
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.not_ready.add("canary")
    d = sim.step()
    assert d.wake.deadline == sim.now + timedelta(minutes=5)
    assert d.wake.analysis is None and d.wake.analysis_due is None
