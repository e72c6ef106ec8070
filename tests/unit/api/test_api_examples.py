"""The examples in examples/ are valid ModelDeployments, and full.yaml really sets every field."""

from __future__ import annotations

import typing
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tollgate.api import resource
from tollgate.api.routers import USES, routers_with
from tollgate.api.spec import ApprovalMode, ModelDeploymentSpec, RiskTier, RouterKind, Traffic
from tollgate.api.tiers import TIERS
from tollgate.engine import shares

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMES = ["minimal.yaml", "full.yaml", "gateway-api.yaml", "critical-approval.yaml"]


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


def test_the_four_examples_exist() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} >= set(NAMES)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_is_a_valid_model_deployment(name: str) -> None:
    # given an example manifest
    doc = _load(name)
    # then it is a ModelDeployment whose spec the pydantic model accepts
    assert doc["apiVersion"] == resource.API_VERSION
    assert doc["kind"] == resource.KIND
    ModelDeploymentSpec.model_validate(doc["spec"])


def _fields_set(model: BaseModel, into: dict[type[BaseModel], set[str]]) -> None:
    into[type(model)] |= model.model_fields_set
    for name in model.model_fields_set:
        for value in _values(getattr(model, name)):
            if isinstance(value, BaseModel):
                _fields_set(value, into)


def _values(value: Any) -> typing.Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _values(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    else:
        yield value


def _reachable(cls: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if cls in seen:
        return seen
    seen.add(cls)
    for field in cls.model_fields.values():
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                _reachable(t, seen)
            stack.extend(typing.get_args(t))
    return seen


def test_full_example_sets_every_field_of_every_spec_model() -> None:
    # given full.yaml parsed by the model
    spec = ModelDeploymentSpec.model_validate(_load("full.yaml")["spec"])
    # when we collect which fields it sets, per model class
    seen: dict[type[BaseModel], set[str]] = defaultdict(set)
    _fields_set(spec, seen)
    # then every field of every model reachable from the spec is set somewhere
    # except the fields no router can carry out yet: the API server refuses them with every router
    # (api.routers; docs/api.md, What each router can do), so no example that applies can set them
    for use in USES:
        if not routers_with(use.capability):
            seen[Traffic].add(use.field.removeprefix("spec.traffic."))
    missing = {
        cls.__name__: sorted(set(cls.model_fields) - seen[cls])
        for cls in _reachable(ModelDeploymentSpec, set())
        if set(cls.model_fields) - seen[cls]
    }
    assert not missing, f"full.yaml does not set: {missing}"


def test_gateway_and_critical_examples_show_what_their_names_promise() -> None:
    gateway = ModelDeploymentSpec.model_validate(_load("gateway-api.yaml")["spec"])
    assert gateway.traffic.router == RouterKind.GATEWAY_API
    assert gateway.traffic.gatewayAPI is not None and gateway.traffic.gatewayAPI.parentRefs

    critical = ModelDeploymentSpec.model_validate(_load("critical-approval.yaml")["spec"])
    assert critical.riskTier == RiskTier.CRITICAL
    assert critical.rollout.steps is not None
    assert any(s.approval == ApprovalMode.REQUIRED for s in critical.rollout.steps)


def test_minimal_example_relies_on_defaults() -> None:
    spec = ModelDeploymentSpec.model_validate(_load("minimal.yaml")["spec"])
    # replicas is the one setting beyond model and runtime: the default 2 would give the tier's 10% step 50%
    assert spec.model_fields_set == {"model", "runtime", "replicas"}
    assert spec.riskTier == RiskTier.MEDIUM and spec.rollout.steps is None


@pytest.mark.parametrize("name", NAMES)
def test_every_example_gives_the_steps_it_advertises(name: str) -> None:
    # given an example and the steps it runs (its own, or its risk tier's)
    spec = ModelDeploymentSpec.model_validate(_load(name)["spec"])
    weights = [s.canary_weight for s in (spec.rollout.steps or TIERS[spec.riskTier].steps)]
    # when the router splits traffic at the example's replica count
    planned = shares.planned(spec.traffic.router, spec.replicas, weights)
    # then every step gets its weight (within the default tolerance)
    assert not shares.beyond(planned, shares.DEFAULT_TOLERANCE), [s.describe(len(weights)) for s in planned]
