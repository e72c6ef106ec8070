"""The admission rule for honest shares gives the engine's verdict (checked with a CEL interpreter)."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tollgate.api import crdgen
from tollgate.api.spec import RouterKind
from tollgate.api.tiers import TIERS
from tollgate.engine import shares


def _rule() -> Any:
    spec = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = [r for r in spec["x-kubernetes-validations"] if "shareTolerance" in r["rule"]]
    env = celpy.Environment()
    return env.program(env.compile(rule["rule"]))


RULE = _rule()


def _admitted(spec: dict[str, Any]) -> bool:
    return bool(RULE.evaluate({"self": celpy.json_to_cel(spec)}))


@pytest.mark.parametrize("tolerance", [0, 5])
def test_rule_agrees_with_the_engine_for_every_replica_count_and_weight(tolerance: int) -> None:
    # given explicit one-step plans (plus 100) over a grid of replica counts and weights
    for replicas in (1, 2, 3, 4, 6, 7, 8, 10, 16, 20):
        for weight in (1, 5, 10, 25, 33, 50, 90):
            spec = {"replicas": replicas, "traffic": {"router": "replicas", "shareTolerance": tolerance},
                    "rollout": {"steps": [{"weight": weight}, {"weight": 100}]}}
            # then the API server admits exactly what the engine says the router can give
            fits = not shares.beyond(shares.planned(RouterKind.REPLICAS, replicas, [weight, 100]), tolerance)
            assert _admitted(spec) == fits, (replicas, weight, tolerance)


def test_rule_uses_the_risk_tiers_steps_when_steps_are_omitted() -> None:
    for tier, preset in TIERS.items():
        weights = [s.weight for s in preset.steps]
        for replicas in (2, 8, 10, 20, 100):
            spec = {"replicas": replicas, "riskTier": tier.value, "traffic": {"shareTolerance": 5}}
            fits = not shares.beyond(shares.planned(RouterKind.REPLICAS, replicas, weights), 5)
            assert _admitted(spec) == fits, (tier, replicas)


def test_rule_applies_only_with_a_tolerance_and_the_replicas_router() -> None:
    two = {"replicas": 2, "rollout": {"steps": [{"weight": 10}, {"weight": 100}]}}
    assert _admitted(two)  # no tolerance: the operator warns instead
    assert not _admitted({**two, "traffic": {"shareTolerance": 5}})
    assert _admitted({**two, "traffic": {"shareTolerance": 40}})
    assert _admitted({**two, "traffic": {"router": "gatewayAPI", "shareTolerance": 0}})
