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
