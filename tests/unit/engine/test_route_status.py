"""Ready with the gatewayAPI router means every parent Gateway accepted the route and resolved its refs."""

from __future__ import annotations

from typing import Any

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.observations import ParentRouteStatus, RouteObservation
from tollgate.engine.route_status import route_problem


def spec(router: str = "gatewayAPI", parents: list[dict[str, Any]] | None = None) -> ModelDeploymentSpec:
    data: dict[str, Any] = {
        "model": {"name": "m", "version": "1.0.0", "uri": "s3://m"},
        "runtime": {"image": "img:1"},
        "traffic": {"router": router},
    }
    if router == "gatewayAPI":
        data["traffic"]["gatewayAPI"] = {"parentRefs": parents or [{"name": "web", "namespace": "infra"}]}
    return ModelDeploymentSpec.model_validate(data)


def ok(name: str = "web", namespace: str = "infra") -> ParentRouteStatus:
    return ParentRouteStatus(name=name, namespace=namespace, accepted=True, resolved_refs=True)


def test_replicas_router_has_no_route_to_judge() -> None:
    assert route_problem(spec("replicas"), "sb", None) is None


def test_every_parent_accepted_and_resolved_is_serving() -> None:
    assert route_problem(spec(), "sb", RouteObservation((ok(),))) is None


def test_a_gateway_that_does_not_exist_leaves_parents_empty_and_is_named() -> None:
    # given a route whose Gateway no controller serves: status.parents is empty
    problem = route_problem(spec(), "sb", RouteObservation(()))
    # then the problem names the parent and says nobody answered
    assert problem is not None and "Gateway infra/web" in problem and "no status" in problem


def test_a_refused_route_carries_the_controllers_reason() -> None:
    refused = ParentRouteStatus(name="web", namespace="infra", accepted=False, accepted_reason="NotAllowedByListeners",
                                accepted_message="no listener allows routes from sb")
    problem = route_problem(spec(), "sb", RouteObservation((refused,)))
    assert problem == "Gateway infra/web: Accepted=False (NotAllowedByListeners: no listener allows routes from sb)"


def test_unresolved_backends_are_named_per_parent() -> None:
    two = spec(parents=[{"name": "web", "namespace": "infra"}, {"name": "int"}])
    unresolved = ParentRouteStatus(name="int", namespace="sb", accepted=True, resolved_refs=False,
                                   resolved_reason="BackendNotFound")
    problem = route_problem(two, "sb", RouteObservation((ok(), unresolved)))
    assert problem == "Gateway sb/int: ResolvedRefs=False (BackendNotFound: )"
