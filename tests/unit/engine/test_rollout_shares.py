"""Status reports the real canary share of each step, and warns when a step misses its weight."""

from __future__ import annotations

from tollgate.engine import conditions as cond
from tollgate.engine.actions import Reason

from .conftest import Sim, make_spec


def _share_condition(sim: Sim) -> tuple[str, str]:
    c = cond.find(sim.status.conditions, cond.SHARE_WITHIN_TOLERANCE)
    assert c is not None
    return c.status.value, c.message


def test_two_replicas_report_the_ten_percent_step_as_fifty_percent_and_warn_once() -> None:
    # given 2 replicas and steps 10/50/100 on the replicas router
    sim = Sim(make_spec(replicas=2))
    # when the first version deploys
    sim.deploy_stable()
    # then status lists the step plan with the shares 2 pods can give, and says the first step misses
    assert [(s.weight, s.plannedShare, s.canaryPods, s.stablePods) for s in sim.status.steps] == [
        (10, 50.0, 1, 1), (50, 50.0, 1, 1), (100, 100.0, 2, 0)]
    status, message = _share_condition(sim)
    assert status == "False"
    assert "step 1/3 asks 10% but gets 50.0% (1 canary of 2 pods)" in message
    warned = [e for d in sim.decisions for e in d.events if e.reason is Reason.SHARE_OUT_OF_TOLERANCE]
    assert len(warned) == 1 and warned[0].type.value == "Warning" and warned[0].message == message

    # when a canary takes its first step
    sim.set_version("1.1.0")
    sim.settle()
    assert sim.status.canaryWeight == 10
    # then the share it really gets is reported as 50%, now and for that step
    assert sim.status.canaryShare == 50.0
    assert sim.status.steps[0].share == 50.0 and sim.status.steps[1].share is None
    # and the warning is not repeated while nothing changed
    warned = [e for d in sim.decisions for e in d.events if e.reason is Reason.SHARE_OUT_OF_TOLERANCE]
    assert len(warned) == 1


def test_enough_replicas_give_every_step_and_the_condition_holds() -> None:
    sim = Sim(make_spec(replicas=10))
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    assert sim.status.canaryWeight == 10 and sim.status.canaryShare == 10.0
    assert [s.plannedShare for s in sim.status.steps] == [10.0, 50.0, 100.0]
    assert _share_condition(sim)[0] == "True"
    assert not [e for d in sim.decisions for e in d.events if e.reason is Reason.SHARE_OUT_OF_TOLERANCE]


def test_a_user_tolerance_replaces_the_default() -> None:
    # 4 replicas give the 10% step 25%: beyond the default 5 points, within a tolerance of 20
    sim = Sim(make_spec(replicas=4, traffic={"shareTolerance": 20}))
    sim.deploy_stable()
    assert _share_condition(sim)[0] == "True"


def test_measured_share_follows_ready_pods_not_the_plan() -> None:
    # given a canary at its first step on 10 replicas (1 canary pod, 9 stable)
    sim = Sim(make_spec(replicas=10))
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    # when stable pods are not Ready (e.g. evicted), the one canary pod takes a larger share
    sim.not_ready.add("stable")
    sim.step()
    assert sim.status.canaryShare == 100.0
