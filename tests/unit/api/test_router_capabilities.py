"""What a router cannot do is refused at admission: the capability table (api.routers), the routers that
declare it (adapters.routers), the CRD's CEL rules generated from it and the engine's own check agree."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tollgate.adapters.routers import router_for
from tollgate.api import crdgen
from tollgate.api.routers import (
    DIALECT_CAPABILITIES,
    DIALECT_WHY,
    ROUTER_CAPABILITIES,
    USES,
    GatewayDialect,
    RouterKind,
    Use,
    capability_rule,
    dialect_problem,
)
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.rollout import spec_problem

SPEC_SCHEMA = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
ENV = celpy.Environment()


def _program(rule: str) -> Any:
    return ENV.program(ENV.compile(rule))


ASKING = {
    "spec.rollout.steps[].shadow": {"rollout": {"steps": [{"shadow": {"percent": 50}}, {"weight": 100}]}},
    "spec.traffic.canaryRateLimit": {"traffic": {"canaryRateLimit": 20}},
    "spec.traffic.rateLimit": {"traffic": {"rateLimit": 500}},
}
"""A spec (below metadata) that asks for each use, by its field."""


def _asks(use: Use) -> dict[str, Any]:
    return ASKING[use.field]


def _with_router(spec: dict[str, Any], kind: RouterKind | None) -> dict[str, Any]:
    if kind is None:
        return spec
    traffic: dict[str, Any] = {**spec.get("traffic", {}), "router": kind.value}
    if kind is RouterKind.GATEWAY_API:
        traffic["gatewayAPI"] = {"parentRefs": [{"name": "gw"}]}
    return {**spec, "traffic": traffic}


def test_every_use_has_a_spec_that_asks_for_it() -> None:
    assert set(ASKING) == {u.field for u in USES}


def test_every_router_declares_the_capabilities_of_the_table() -> None:
    for kind in RouterKind:
        assert router_for(kind, object()).capabilities == ROUTER_CAPABILITIES[kind]  # type: ignore[arg-type]


def test_every_capability_a_spec_can_ask_for_has_its_rule_in_the_crd() -> None:
    rules = {r["rule"]: r for r in SPEC_SCHEMA["x-kubernetes-validations"]}
    for use in USES:
        generated = capability_rule(use).to_schema()
        assert rules[generated["rule"]] == generated


@pytest.mark.parametrize("use", USES, ids=lambda u: u.field)
@pytest.mark.parametrize("kind", [*RouterKind, None], ids=lambda k: k.value if k else "default")
def test_the_admission_rule_refuses_exactly_the_routers_the_table_says_cannot(
        use: Any, kind: RouterKind | None) -> None:
    # given a spec that asks for the capability, with each router (or none: the default)
    rule = capability_rule(use)
    spec = _with_router(_asks(use), kind)
    able = use.capability in ROUTER_CAPABILITIES[kind or RouterKind.REPLICAS]
    # then the API server's rule admits it exactly when the table says the router can
    assert bool(_program(rule.rule).evaluate({"self": celpy.json_to_cel(spec)})) == able
    # and the engine agrees (a spec that got in before the rule existed is not acted on)
    parsed = ModelDeploymentSpec.model_validate({
        "model": {"name": "m", "version": "1"}, "runtime": {"image": "i"}, **spec})
    assert (spec_problem(parsed) is None) == able
    # and a refusal names the field, the router's value, why it cannot and the fix, in the engine's words too
    if not able:
        message = str(_program(rule.message_expression or "''").evaluate({"self": celpy.json_to_cel(spec)}))
        router = kind or RouterKind.REPLICAS
        assert message.startswith(f"{use.field} is set, but spec.traffic.router is {router.value}, which cannot")
        assert use.why[router] in message and use.drop in message
        assert spec_problem(parsed) == message


def test_a_spec_that_asks_for_nothing_special_is_admitted_by_every_router() -> None:
    for use in USES:
        for kind in RouterKind:
            spec = _with_router({"rollout": {"steps": [{"weight": 10}, {"weight": 100}]}}, kind)
            assert _program(capability_rule(use).rule).evaluate({"self": celpy.json_to_cel(spec)})


@pytest.mark.parametrize("use", USES, ids=lambda u: u.field)
@pytest.mark.parametrize("dialect", list(GatewayDialect), ids=lambda d: d.value)
def test_what_the_platforms_gateway_dialect_cannot_do_is_refused_naming_the_dialect_and_the_fix(
        use: Use, dialect: GatewayDialect) -> None:
    # given a gatewayAPI spec (admitted: the router can, in some dialect) that asks for the capability
    spec = ModelDeploymentSpec.model_validate({
        "model": {"name": "m", "version": "1"}, "runtime": {"image": "i"},
        **_with_router(_asks(use), RouterKind.GATEWAY_API)})
    assert spec_problem(spec) is None
    # then the platform's dialect refuses it exactly when the dialect table says it cannot
    problem = dialect_problem(spec, dialect)
    able = use.capability in DIALECT_CAPABILITIES[dialect]
    assert (problem is None) == able
    # and the refusal names the field, the dialect, where it is set, why, and both fixes
    if problem is not None:
        assert problem.startswith(f"{use.field} is set, but this cluster's Gateway data plane speaks the "
                                  f"{dialect.value} dialect (gatewayAPI.dialect, set by the platform team")
        assert DIALECT_WHY[dialect][use.capability] in problem and use.drop in problem
        assert "traefik" in problem and "Nothing of this spec was applied" in problem


def test_the_gateway_api_router_can_in_some_dialect_what_admission_lets_through() -> None:
    # admission knows the router, not the dialect: what it admits for gatewayAPI is what some dialect can do
    assert ROUTER_CAPABILITIES[RouterKind.GATEWAY_API] == frozenset().union(*DIALECT_CAPABILITIES.values())
    # and a dialect's refusal never applies to the replicas router (admission refused it already)
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m", "version": "1"}, "runtime": {"image": "i"},
                                               "traffic": {"canaryRateLimit": 5}})
    assert dialect_problem(spec, GatewayDialect.STANDARD) is None
