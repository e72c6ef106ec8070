"""A failed canary kept for debugging (spec.rollout.keepFailedCanary, engine.rules.keep)."""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.status import Phase
from tollgate.engine.actions import DeleteObjects, Reason, SetWeight
from tollgate.engine.observations import Controls
from tollgate.engine.rollout import decide
from tollgate.engine.timeutil import parse_time

from .conftest import BAD, GOOD, Sim, make_spec, objects_of, updated

ROLLOUT = {
    "steps": [{"weight": 10}, {"weight": 50}, {"weight": 100}],
    "analysis": {"interval": "30s", "failureLimit": 1, "consecutiveErrorLimit": 2, "minSamples": 100},
    "progressDeadline": "5m",
    "keepFailedCanary": "30m",
}
GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def rolled_back(sim: Sim) -> None:
    """Given a stable 1.0.0, a canary 2.0.0 at 10% fails its analysis twice and is rolled back."""
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert sim.status.canaryWeight == 10, sim.status.message
    sim.tick(BAD)
    sim.tick(BAD)
    assert sim.status.rolledBackRevision is not None and sim.status.canary is None


def canary_deleted(sim: Sim) -> bool:
    return any(ref.name == "fraud-scorer-canary" for d in sim.decisions[-1:] for a in d.of_type(DeleteObjects)
               for ref in a.refs)


def test_a_rolled_back_canary_is_kept_with_zero_traffic_and_a_deadline_in_status() -> None:
    # given keepFailedCanary 30m, when the canary is rolled back
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    d = sim.decisions[-1]
    # then its Deployment is not removed and stays with its pods
    assert not canary_deleted(sim)
    assert sim.tracks["canary"][0] == sim.status.rolledBackRevision
    # and it gets no traffic: weight 0, and the Service selects the stable track only
    assert d.status.canaryWeight == 0 and d.of_type(SetWeight)[-1].canary_weight == 0
    # (the router's fast path is told to keep its pods: off the Service, not scaled down)
    assert d.of_type(SetWeight)[-1].keep_canary and d.of_type(SetWeight)[-1].fast
    service = objects_of(d, "Service")[0]
    assert service["spec"]["selector"]["tollgate.dev/track"] == "stable"
    # and status names it and when it is removed, which is when the engine looks again
    kept = d.status.keptCanary
    assert kept is not None and kept.deployment == "fraud-scorer-canary" and kept.version == "2.0.0"
    assert parse_time(kept.until) == sim.now + timedelta(minutes=30)
    assert kept.incident == d.status.lastIncident
    assert d.wake.deadline == parse_time(kept.until)
    assert d.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert "kept with zero traffic until" in d.status.message
    assert Reason.CANARY_KEPT in d.event_reasons


def test_the_kept_canary_is_removed_at_its_deadline_and_not_before() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    kept = sim.status.keptCanary
    assert kept is not None
    until = parse_time(kept.until)
    assert until is not None
    # when events arrive just before the deadline, then it stays
    d = sim.step(after=(until - sim.now).total_seconds() - 1)
    assert d.status.keptCanary is not None and not canary_deleted(sim) and "canary" in sim.tracks
    # when the deadline comes, then it is removed, with an event, and nothing else changes
    d = sim.step(after=1)
    assert d.status.keptCanary is None
    assert canary_deleted(sim) and "canary" not in sim.tracks
    assert Reason.KEPT_CANARY_REMOVED in d.event_reasons
    assert d.status.phase is Phase.ROLLED_BACK and d.wake.deadline is None


def test_the_deadline_survives_a_restart_because_it_lives_in_status() -> None:
    # given a kept canary, and an operator that restarts (nothing but the persisted status is known)
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    kept = sim.status.keptCanary
    assert kept is not None
    until = parse_time(kept.until)
    assert until is not None
    # when the new process decides for the first time after the deadline
    d = decide(sim.spec, sim.status, sim.observations(None), until + timedelta(seconds=5), sim.ctx)
    # then the kept canary is removed
    assert d.status.keptCanary is None
    assert any(ref.name == "fraud-scorer-canary" for a in d.of_type(DeleteObjects) for ref in a.refs)


def test_without_keep_failed_canary_the_canary_is_removed_at_once() -> None:
    sim = Sim(make_spec())
    rolled_back(sim)
    assert sim.status.keptCanary is None and canary_deleted(sim) and "canary" not in sim.tracks
    assert not sim.decisions[-1].of_type(SetWeight)[-1].keep_canary


def test_an_abort_keeps_the_canary_too() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    sim.controls = Controls(abort="bob")
    d = sim.step()
    assert d.status.history[0].result == "Aborted"
    assert d.status.keptCanary is not None and "canary" in sim.tracks and not canary_deleted(sim)


def test_a_retry_removes_the_kept_canary_first_and_starts_on_fresh_pods() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    revision = sim.status.rolledBackRevision
    # when a retry token arrives inside the keep window
    sim.controls = Controls(retry="alice-1")
    d = sim.step()
    # then the kept canary is removed in this decision and no canary starts on its pods
    assert d.status.keptCanary is None and canary_deleted(sim) and "canary" not in sim.tracks
    assert d.status.canary is None and Reason.KEPT_CANARY_REMOVED in d.event_reasons
    assert "removing the kept failed canary" in d.status.message
    # and the next decision (the Deployment's deletion is an event) starts the same revision anew
    d = sim.step()
    assert d.status.canary is not None and d.status.canary.revision == revision
    assert Reason.CANARY_STARTED in d.event_reasons
    assert sim.tracks["canary"][0] == revision


def test_a_new_version_replaces_the_kept_canary() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    sim.set_version("2.0.1")
    d = sim.step()
    assert d.status.keptCanary is None and canary_deleted(sim) and d.status.canary is None
    d = sim.step()
    assert d.status.canary is not None and d.status.canary.version == "2.0.1"
    d = sim.step()
    assert d.status.canaryWeight == 10  # the new canary proceeds as any other
    sim.tick(GOOD)


def test_the_kill_switch_removes_a_kept_canary_at_once() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    sim.spec = updated(sim.spec, killSwitch=True)
    d = sim.step()
    assert d.status.killSwitchActive and d.status.keptCanary is None
    assert canary_deleted(sim) and Reason.KEPT_CANARY_REMOVED in d.event_reasons


def test_a_canary_aborted_under_the_kill_switch_is_not_kept() -> None:
    # given a canary at 10% with keepFailedCanary, and the kill switch on (its Deployment is gone already)
    sim = Sim(make_spec(rollout=ROLLOUT))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.step()
    assert "canary" not in sim.tracks and sim.status.canary is not None
    # when it is aborted under the kill switch
    sim.controls = Controls(abort="oncall")
    d = sim.step()
    # then it is rolled back, and nothing is kept: there are no pods to keep
    assert d.status.canary is None and d.status.history[0].result == "Aborted"
    assert d.status.keptCanary is None and Reason.CANARY_KEPT not in d.event_reasons


def test_gateway_router_the_kept_canary_has_weight_0_and_its_service_selects_no_pod() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT, traffic=GATEWAY))
    rolled_back(sim)
    d = sim.decisions[-1]
    route = objects_of(d, "HTTPRoute")[0]
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights["fraud-scorer-canary"] == 0
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in objects_of(d, "Service")}
    # the canary's Service selects a pool no pod is in: the kept pods have no endpoints at all
    assert services["fraud-scorer-canary"]["tollgate.dev/pool"] == "none"
    assert "tollgate.dev/pool" not in services["fraud-scorer-stable"]
    # when a new version replaces it, the canary's Service selects the canary's pods again
    sim.set_version("2.0.1")
    sim.step()
    d = sim.step()
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in objects_of(d, "Service")}
    assert "tollgate.dev/pool" not in services["fraud-scorer-canary"]


def test_hooks_canary_service_selects_no_pod_while_a_canary_is_kept() -> None:
    # given the replicas router with a hook (which gives the canary its own Service)
    hooks = {"prePromotion": {"image": "registry.example/check:1", "timeout": "60s"}}
    sim = Sim(make_spec(rollout=ROLLOUT, hooks=hooks))
    rolled_back(sim)
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in objects_of(sim.decisions[-1], "Service")}
    assert services["fraud-scorer-canary"]["tollgate.dev/pool"] == "none"
    assert services["fraud-scorer"]["tollgate.dev/track"] == "stable"


def test_a_stalled_spec_still_wakes_at_the_kept_canarys_end() -> None:
    sim = Sim(make_spec(rollout=ROLLOUT))
    rolled_back(sim)
    kept = sim.status.keptCanary
    assert kept is not None
    # when the spec becomes one the engine cannot act on (an unsorted step plan got past admission)
    bad = sim.spec.model_copy(update={"rollout": sim.spec.rollout.model_copy(
        update={"steps": list(reversed(sim.spec.rollout.steps or []))})})
    d = decide(bad, sim.status, sim.observations(None), sim.now + timedelta(seconds=1), sim.ctx)
    assert d.status.phase is Phase.STALLED
    assert d.wake.deadline == parse_time(kept.until)
