"""Shadow steps (issue 21): the canary answers mirrored copies of live requests, users get stable's answers
only; it is judged like a canary step and rolls back like one, with zero user traffic on it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.actions import Cause, Reason, RecordEvidence, RollBack, SetWeight
from tollgate.engine.observations import Controls, Observations, TrackObservation
from tollgate.engine.policy import plan_problem, resolve_policy
from tollgate.engine.rollout import decide, spec_problem

from .conftest import BAD, CTX, GOOD, T0, Sim, make_spec, objects_of

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
ANALYSIS = {"interval": "30s", "failureLimit": 0, "consecutiveErrorLimit": 2, "minSamples": 100}


def shadow_spec(*steps: dict[str, Any], **overrides: Any) -> ModelDeploymentSpec:
    plan = list(steps) or [{"shadow": {"percent": 50}}, {"weight": 10}, {"weight": 100}]
    return make_spec(traffic=GATEWAY, rollout={"steps": plan, "analysis": ANALYSIS, "progressDeadline": "5m"},
                     **overrides)


def route(sim: Sim) -> dict[str, Any]:
    routes = [r for d in sim.decisions for r in objects_of(d, "HTTPRoute")]
    assert routes, "no HTTPRoute applied"
    return dict(routes[-1])


def weights_and_mirror(sim: Sim) -> tuple[dict[str, int], list[dict[str, Any]]]:
    (rule,) = route(sim)["spec"]["rules"]
    return {b["name"]: b["weight"] for b in rule["backendRefs"]}, list(rule.get("filters", []))


def enter_shadow(sim: Sim) -> None:
    """Given a stable 1.0.0, when 2.0.0 is applied, the canary enters the shadow step once its pods are up."""
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert (sim.status.canaryWeight, sim.status.canaryMirror) == (0, 50), sim.status.message


def test_a_shadow_step_mirrors_to_the_canary_with_no_user_on_it() -> None:
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    # then users get stable's answers only (canary weight 0) and the route mirrors 50% to the canary Service
    weights, filters = weights_and_mirror(sim)
    assert weights == {"fraud-scorer-stable": 100, "fraud-scorer-canary": 0}
    assert filters == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "fraud-scorer-canary", "port": 8080}, "percent": 50}}]
    # and the canary runs pods for the mirrored half of the load (4 replicas: 2 pods)
    assert sim.tracks["canary"][1] == 2
    # and status shows the step as a shadow step with its percent
    assert sim.status.phase is Phase.PROGRESSING
    assert sim.status.steps[0].mirror == 50 and sim.status.steps[0].weight == 0
    assert sim.status.steps[1].mirror is None and sim.status.steps[1].weight == 10
    advanced = [e.message for d in sim.decisions for e in d.events if e.reason is Reason.STEP_ADVANCED]
    assert advanced == ["step 1/3: shadow, 50% of requests mirrored to the canary (users get stable's answers only)"]


def test_a_shadow_step_is_analysed_and_a_pass_enters_the_first_weighted_step_without_the_mirror() -> None:
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    # a shadow step is judged: its analysis ticks are scheduled like a canary step's
    assert sim.decisions[-1].wake.analysis_due is not None
    # when its analysis tick passes (one full interval after the step began)
    d = sim.tick(GOOD)
    assert Reason.ANALYSIS_PASSED in d.event_reasons
    # then the next step takes 10% of the users, and the mirror is gone from the route
    assert (sim.status.currentStep, sim.status.canaryWeight, sim.status.canaryMirror) == (1, 10, 0)
    weights, filters = weights_and_mirror(sim)
    assert weights["fraud-scorer-canary"] == 10 and filters == []
    # and that rise waits for the desired objects (one route write: weight in, mirror out), like any rise
    (sw,) = d.of_type(SetWeight)
    assert (sw.canary_weight, sw.mirror_percent, sw.fast) == (10, 0, False)


def test_a_failing_shadow_step_rolls_back_like_a_canary_with_evidence_and_no_user_traffic() -> None:
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    # when the canary's answers to the mirrored requests break an SLO
    d = sim.tick(BAD)
    # then it is rolled back in the same decision, with evidence naming the shadow step
    assert sim.status.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK), sim.status.message
    assert sim.status.canary is None and sim.status.rolledBackRevision is not None
    (rb,) = d.of_type(RollBack)
    assert rb.cause is Cause.ANALYSIS
    (evidence,) = d.of_type(RecordEvidence)
    assert evidence.payload["weight"] == 0 and evidence.payload["shadow"] == {"mirrorPercent": 50, "userWeight": 0}
    assert evidence.payload["slos"][0]["verdict"] == "Fail"
    assert Reason.ROLLED_BACK in d.event_reasons and Reason.ANALYSIS_FAILED in d.event_reasons
    # and the mirror leaves through the router's fast path, before anything else is applied
    (sw,) = d.of_type(SetWeight)
    assert (sw.canary_weight, sw.mirror_percent, sw.fast) == (0, 0, True)
    assert d.actions.index(sw) == 0
    assert sim.status.canaryMirror == 0
    # and no decision of the whole rollout ever gave a user to the canary
    assert all(s.canary_weight == 0 for dd in sim.decisions for s in dd.of_type(SetWeight))
    assert all(b["weight"] == 0 for dd in sim.decisions for r in objects_of(dd, "HTTPRoute")
               for b in r["spec"]["rules"][0]["backendRefs"] if b["name"] == "fraud-scorer-canary")
    _, filters = weights_and_mirror(sim)
    assert filters == []


def test_abort_and_kill_switch_remove_the_mirror() -> None:
    # given a canary in its shadow step
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    # when it is aborted, the mirror goes in that decision
    sim.controls = Controls(abort="alice")
    d = sim.step()
    (sw,) = d.of_type(SetWeight)
    assert sw.mirror_percent == 0 and sw.fast and weights_and_mirror(sim)[1] == []
    assert sim.status.canaryMirror == 0
    # given another canary in its shadow step
    sim2 = Sim(shadow_spec(fallback={"version": "0.9.0"}))
    enter_shadow(sim2)
    # when the kill switch is turned on, the mirror goes at once too
    sim2.spec = sim2.spec.model_copy(update={"killSwitch": True})
    d2 = sim2.step()
    assert all(s.mirror_percent == 0 for s in d2.of_type(SetWeight))
    assert sim2.status.canaryMirror == 0 and weights_and_mirror(sim2)[1] == []


def test_shadow_percents_rise_through_consecutive_shadow_steps() -> None:
    sim = Sim(shadow_spec({"shadow": {"percent": 10}}, {"shadow": {"percent": 50}}, {"weight": 100}))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert sim.status.canaryMirror == 10
    sim.tick(GOOD)
    assert (sim.status.currentStep, sim.status.canaryWeight, sim.status.canaryMirror) == (1, 0, 50)
    assert weights_and_mirror(sim)[1][0]["requestMirror"]["percent"] == 50


def test_the_engine_refuses_a_shadow_step_with_the_replicas_router_if_one_gets_past_admission() -> None:
    # given a spec the CRD refuses (shadow with the replicas router), parsed by the API types alone
    spec = make_spec(rollout={"steps": [{"shadow": {"percent": 50}}, {"weight": 100}]})
    # then the engine names the field, the router and the fix, and acts on nothing
    problem = spec_problem(spec)
    assert problem is not None
    assert "spec.rollout.steps[].shadow" in problem and "replicas" in problem and "gatewayAPI" in problem
    none = TrackObservation(revision=None)
    d = decide(spec, ModelDeploymentStatus(), Observations(generation=1, stable=none, canary=none, fallback=none),
               T0, CTX)
    assert d.status.phase is Phase.STALLED and not d.of_type(SetWeight)


def test_the_plan_rules_mirror_the_admission_rules() -> None:
    def problem(*steps: dict[str, Any]) -> str | None:
        spec = make_spec(traffic=GATEWAY, rollout={"steps": list(steps)})
        return plan_problem(resolve_policy(spec))

    assert problem({"shadow": {"percent": 20}}, {"shadow": {"percent": 50}}, {"weight": 10}, {"weight": 100}) is None
    assert "before the first weighted" in (problem({"weight": 10}, {"shadow": {"percent": 50}}, {"weight": 100}) or "")
    assert "strictly increasing" in (problem({"shadow": {"percent": 50}}, {"shadow": {"percent": 50}},
                                             {"weight": 100}) or "")
    assert "only shadow steps" in (problem({"shadow": {"percent": 50}}) or "")


def test_plans_without_shadow_steps_keep_their_hash() -> None:
    # an operator upgrade must not restart the rollouts in progress (a changed plan hash does)
    spec = make_spec()
    old = json.dumps([{"weight": w, "pause": None, "analysis": True, "approval": "none"} for w in (10, 50, 100)],
                     sort_keys=True)
    assert resolve_policy(spec).plan_hash == hashlib.sha256(old.encode()).hexdigest()[:10]


def test_a_route_that_mirrors_to_the_canary_does_not_count_as_all_traffic_on_stable() -> None:
    # given a canary in its shadow step (the route: all weight on stable, a mirror to the canary)
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    # then the router is not observed as sending everything to stable (a rollback drill waits for the mirror)
    assert sim.routing is not None and sim.routing.sole is None
    # when it is aborted, the route has no mirror: all traffic on stable
    sim.controls = Controls(abort="alice")
    sim.step()
    assert sim.routing is not None and sim.routing.sole is not None and sim.routing.sole.value == "stable"
