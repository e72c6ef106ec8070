"""The gatewayAPI router's fast path (adapters.routers.gateway_api): weights and the shadow step's mirror."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from tollgate.adapters.routers.gateway_api import GatewayAPIRouter
from tollgate.api.routers import GatewayDialect, RouterKind
from tollgate.api.status import RevisionRef
from tollgate.engine.actions import Context, ObjectRef, SetWeight
from tollgate.engine.dataplane import http_route
from tollgate.engine.workloads import TrackPlan, TrafficPlan
from unit.engine.conftest import make_spec

CTX = Context(name="fraud", namespace="ml", uid="u1", generation=1)
SPEC = make_spec(traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}})


@dataclass
class RouteKube:
    """One HTTPRoute, as the engine rendered it; merge patches replace spec.rules (a list) whole."""

    route: dict[str, Any]
    patches: list[Any] = field(default_factory=list)

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        return copy.deepcopy(self.route)

    def merge_patch(self, ref: ObjectRef, patch: Any) -> None:
        self.patches.append(patch)
        self.route["spec"]["rules"] = patch["spec"]["rules"]


def rendered(weight: int, mirror: int, dialect: GatewayDialect = GatewayDialect.STANDARD, *,
             canary_limit: int | None = None, model_limit: int | None = None) -> dict[str, Any]:
    ref = RevisionRef(revision="r1", version="1.0.0")
    plan = TrafficPlan(stable=TrackPlan(ref, 4), canary=TrackPlan(ref, 2), fallback=None, canary_weight=weight,
                       to_fallback=False, mirror=mirror, canary_rate_limit=canary_limit, rate_limit=model_limit)
    return http_route(SPEC, CTX, plan.route, dialect)


def rule_of(kube: RouteKube) -> dict[str, Any]:
    (rule,) = kube.route["spec"]["rules"]
    return dict(rule)


def test_the_fast_path_removes_the_mirror_of_a_shadow_step_on_rollback() -> None:
    # given the route of a shadow step (weight 0, 50% mirrored to the canary)
    kube = RouteKube(rendered(0, 50))
    assert rule_of(kube)["filters"][0]["requestMirror"]["percent"] == 50
    # when the rollback's SetWeight goes through the fast path
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(RouterKind.GATEWAY_API, 0, 4, 0, fast=True))  # type: ignore[arg-type]
    # then the mirror filter is gone and stable has every request
    assert "filters" not in rule_of(kube)
    assert {b["name"]: b["weight"] for b in rule_of(kube)["backendRefs"]} == {"fraud-stable": 100, "fraud-canary": 0}


def test_the_fast_path_sets_the_mirror_as_the_engine_renders_it() -> None:
    kube = RouteKube(rendered(0, 0))
    GatewayAPIRouter(kube).set_weight(  # type: ignore[arg-type]
        CTX, "sbx", SetWeight(RouterKind.GATEWAY_API, 0, 4, 2, mirror_percent=20))
    assert kube.route["spec"] == rendered(0, 20)["spec"]


def test_the_fast_path_keeps_filters_that_are_not_its_mirror() -> None:
    route = rendered(0, 50)
    other = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}
    route["spec"]["rules"][0]["filters"].append(other)
    kube = RouteKube(route)
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(RouterKind.GATEWAY_API, 0, 4, 0, fast=True))  # type: ignore[arg-type]
    assert rule_of(kube)["filters"] == [other]


def test_the_kill_switch_sends_all_to_the_fallback_without_a_mirror() -> None:
    kube = RouteKube(rendered(0, 50))
    GatewayAPIRouter(kube).set_weight(  # type: ignore[arg-type]
        CTX, "sbx", SetWeight(RouterKind.GATEWAY_API, 0, 4, 0, fallback=True, fast=True, mirror_percent=50))
    assert "filters" not in rule_of(kube)


TRAEFIK = GatewayDialect.TRAEFIK


def refs_of(kube: RouteKube) -> list[tuple[str, str, int]]:
    return [(b.get("kind", "Service"), b["name"], b["weight"]) for b in rule_of(kube)["backendRefs"]]


def test_traefik_a_rollback_from_a_shadow_step_names_stable_alone_and_never_writes_request_mirror() -> None:
    # given the traefik route of a shadow step: stable's backendRef is the mirroring TraefikService
    kube = RouteKube(rendered(0, 50, TRAEFIK))
    assert refs_of(kube) == [("TraefikService", "fraud-mirror", 100), ("Service", "fraud-canary", 0)]
    # when the rollback's SetWeight goes through the fast path
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(  # type: ignore[arg-type]
        RouterKind.GATEWAY_API, 0, 4, 0, fast=True, dialect=TRAEFIK))
    # then stable's own Service takes every request, nothing is mirrored, and no RequestMirror was written
    assert refs_of(kube) == [("Service", "fraud-stable", 100), ("Service", "fraud-canary", 0)]
    assert kube.route["spec"] == rendered(0, 0, TRAEFIK)["spec"]
    assert "RequestMirror" not in str(kube.patches)


def test_traefik_the_fast_path_writes_the_backend_refs_the_engine_renders_with_the_canary_limit() -> None:
    # given a limited canary at 50% (its backendRef the failover service) and a model-wide limit on the rule
    kube = RouteKube(rendered(50, 0, TRAEFIK, canary_limit=5, model_limit=100))
    # when the weight goes down through the fast path
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(  # type: ignore[arg-type]
        RouterKind.GATEWAY_API, 20, 4, 1, fast=True, canary_rate_limit=5, dialect=TRAEFIK))
    # then the route is what the engine renders at 20%, the model's limit (rule filters) kept
    assert kube.route["spec"] == rendered(20, 0, TRAEFIK, canary_limit=5, model_limit=100)["spec"]
    assert refs_of(kube)[1] == ("TraefikService", "fraud-canary-limited", 20)


def test_traefik_the_kill_switch_keeps_the_model_rate_limit() -> None:
    kube = RouteKube(rendered(50, 0, TRAEFIK, canary_limit=5, model_limit=100))
    filters = rule_of(kube)["filters"]
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(  # type: ignore[arg-type]
        RouterKind.GATEWAY_API, 0, 4, 0, fallback=True, fast=True, dialect=TRAEFIK))
    assert refs_of(kube) == [("Service", "fraud-stable", 0), ("Service", "fraud-canary", 0),
                             ("Service", "fraud-fallback", 100)]
    assert rule_of(kube)["filters"] == filters


@dataclass
class TraefikKube(RouteKube):
    """As RouteKube, with the stable track's Service there (its port is the model's)."""

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        if ref.kind == "Service":
            return {"spec": {"ports": [{"name": "http", "port": 8080}]}}
        return super().get(ref)


def test_a_traefik_shadow_step_with_a_canary_limit_names_no_port_and_still_goes_to_stable() -> None:
    # given the traefik route of a shadow step with a canary rate limit: its only backend is our mirroring
    # TraefikService, which names no port
    kube = TraefikKube(rendered(0, 50, GatewayDialect.TRAEFIK, canary_limit=5))
    assert all(b.get("port") is None for b in rule_of(kube)["backendRefs"]), rule_of(kube)
    # when the fast path takes traffic off the canary (a refusal's hold: no desired objects follow)
    GatewayAPIRouter(kube).set_weight(CTX, "sbx", SetWeight(RouterKind.GATEWAY_API, 0, None, 0, fast=True,  # type: ignore[arg-type]
                                                            dialect=GatewayDialect.TRAEFIK))
    # then the rule weighs stable's Service alone, on the stable Service's port
    assert {b["name"]: (b.get("port"), b.get("weight")) for b in rule_of(kube)["backendRefs"]} == {
        "fraud-stable": (8080, 100), "fraud-canary": (8080, 0)}, rule_of(kube)
