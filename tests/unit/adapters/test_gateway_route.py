"""The HTTPRoute's status.parents as the engine judges them (tollgate.engine.route_status)."""

from __future__ import annotations

from tollgate.adapters.routers.gateway_api import route_observation
from tollgate.engine.observations import ParentRouteStatus, RouteObservation
from tollgate.engine.route_status import route_problem
from unit.engine.test_route_status import spec


def test_conditions_of_an_older_route_generation_do_not_count() -> None:
    # given a route at generation 3 whose controller last reported on generation 2
    route = {"metadata": {"namespace": "sb", "generation": 3}, "status": {"parents": [{
        "parentRef": {"name": "web", "namespace": "infra"},
        "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 2},
                       {"type": "ResolvedRefs", "status": "True", "observedGeneration": 2}]}]}}
    observed = route_observation(route)
    # then the parent is seen, but its verdict on the current spec is unknown: not serving yet
    assert observed.parents[0].accepted is None
    problem = route_problem(spec(), "sb", observed)
    assert problem is not None and "not reported for the current generation" in problem


def test_route_status_parsed_from_the_api_shape() -> None:
    route = {"metadata": {"namespace": "sb", "generation": 1}, "status": {"parents": [{
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "web"},
        "controllerName": "example.com/gw",
        "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 1, "reason": "Accepted"},
                       {"type": "ResolvedRefs", "status": "True", "observedGeneration": 1}]}]}}
    observed = route_observation(route)
    assert observed == RouteObservation((ParentRouteStatus(name="web", namespace="sb", accepted=True,
                                                           accepted_reason="Accepted", resolved_refs=True),))
