"""What a router cannot do is refused at admission: the capability table (api.routers), the routers that
declare it (adapters.routers), the CRD's CEL rules generated from it and the engine's own check agree."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tollgate.adapters.routers import router_for
from tollgate.api import crdgen
from tollgate.api.routers import ROUTER_CAPABILITIES, USES, Capability, RouterKind, capability_rule
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.rollout import spec_problem

SPEC_SCHEMA = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
ENV = celpy.Environment()


def _program(rule: str) -> Any:
    return ENV.program(ENV.compile(rule))


def _asks(capability: Capability) -> dict[str, Any]:
    """A spec (below metadata) that asks the router for `capability`."""
    if capability is Capability.MIRROR:
        return {"rollout": {"steps": [{"shadow": {"percent": 50}}, {"weight": 100}]}}
    return {"rollout": {"steps": [{"weight": 10}, {"weight": 100}]}}


def _with_router(spec: dict[str, Any], kind: RouterKind | None) -> dict[str, Any]:
    if kind is None:
        return spec
    traffic: dict[str, Any] = {"router": kind.value}
    if kind is RouterKind.GATEWAY_API:
        traffic["gatewayAPI"] = {"parentRefs": [{"name": "gw"}]}
    return {**spec, "traffic": traffic}


def test_every_router_declares_the_capabilities_of_the_table() -> None:
    for kind in RouterKind:
        assert router_for(kind, object()).capabilities == ROUTER_CAPABILITIES[kind]  # type: ignore[arg-type]


def test_every_capability_a_spec_can_ask_for_has_its_rule_in_the_crd() -> None:
    rules = {r["rule"]: r for r in SPEC_SCHEMA["x-kubernetes-validations"]}
    for use in USES:
        generated = capability_rule(use).to_schema()
        assert rules[generated["rule"]] == generated


@pytest.mark.parametrize("use", USES, ids=lambda u: u.capability.value)
@pytest.mark.parametrize("kind", [*RouterKind, None], ids=lambda k: k.value if k else "default")
def test_the_admission_rule_refuses_exactly_the_routers_the_table_says_cannot(
        use: Any, kind: RouterKind | None) -> None:
    # given a spec that asks for the capability, with each router (or none: the default)
    rule = capability_rule(use)
    spec = _with_router(_asks(use.capability), kind)
    able = use.capability in ROUTER_CAPABILITIES[kind or RouterKind.REPLICAS]
    # then the API server's rule admits it exactly when the table says the router can
    assert bool(_program(rule.rule).evaluate({"self": celpy.json_to_cel(spec)})) == able
    # and the engine agrees (a spec that got in before the rule existed is not acted on)
    parsed = ModelDeploymentSpec.model_validate({
        "model": {"name": "m", "version": "1"}, "runtime": {"image": "i"}, **spec})
    assert (spec_problem(parsed) is None) == able
    # and a refusal names the field, the router's value and the fix
    if not able:
        message = str(_program(rule.message_expression or "''").evaluate({"self": celpy.json_to_cel(spec)}))
        assert use.field in message
        assert f"spec.traffic.router is {(kind or RouterKind.REPLICAS).value}" in message
        assert "use spec.traffic.router: gatewayAPI" in message


def test_a_spec_that_asks_for_nothing_special_is_admitted_by_every_router() -> None:
    for use in USES:
        for kind in RouterKind:
            spec = _with_router({"rollout": {"steps": [{"weight": 10}, {"weight": 100}]}}, kind)
            assert _program(capability_rule(use).rule).evaluate({"self": celpy.json_to_cel(spec)})
