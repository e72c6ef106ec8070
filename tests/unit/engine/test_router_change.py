"""A router change: the HTTPRoute of an earlier gatewayAPI spec does not outlive it (engine.rules.finish)."""

from __future__ import annotations

import dataclasses

from tollgate.engine.actions import DeleteObjects
from tollgate.engine.observations import RouteObservation
from tollgate.engine.rollout import decide
from unit.engine.conftest import Sim, make_spec, updated

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def route_deletes(sim: Sim, route: RouteObservation | None) -> list[str]:
    obs = dataclasses.replace(sim.observations(None), route=route)
    decision = decide(sim.spec, sim.status, obs, sim.now, sim.ctx)
    return [ref.name for a in decision.of_type(DeleteObjects) for ref in a.refs if ref.kind == "HTTPRoute"]


def test_the_route_goes_when_the_router_is_no_longer_gateway_api_and_stays_while_it_is() -> None:
    # given a model served through the gatewayAPI router, its HTTPRoute seen
    sim = Sim(make_spec(traffic=GATEWAY))
    sim.deploy_stable()
    seen = RouteObservation(parents=())
    assert route_deletes(sim, seen) == []
    # when the spec moves to the replicas router, then the route is deleted (it would go on sending the
    # Gateway's requests to the track Services by its last weights)
    sim.spec = updated(sim.spec, traffic={"router": "replicas"})
    assert route_deletes(sim, seen) == [sim.ctx.name]
    # and once it is gone, nothing more is deleted
    assert route_deletes(sim, None) == []


def service_deletes(sim: Sim, seen: bool) -> list[str]:
    obs = dataclasses.replace(sim.observations(None), replicas_service=seen)
    decision = decide(sim.spec, sim.status, obs, sim.now, sim.ctx)
    return [ref.name for a in decision.of_type(DeleteObjects) for ref in a.refs if ref.kind == "Service"]


def test_the_replicas_service_goes_when_the_router_becomes_gateway_api() -> None:
    # given a model served through the replicas router, its Service seen
    sim = Sim(make_spec())
    sim.deploy_stable()
    assert service_deletes(sim, seen=True) == []
    # when the spec moves to the gatewayAPI router, then that Service is deleted (its selector takes every pod
    # of the main pool: in-cluster callers would reach each later canary by its share of pods, unjudged)
    sim.spec = updated(sim.spec, traffic=GATEWAY)
    assert service_deletes(sim, seen=True) == [sim.ctx.name]
    assert service_deletes(sim, seen=False) == []
