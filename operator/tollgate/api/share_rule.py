"""The admission rule for honest shares: with spec.traffic.shareTolerance set, a replicas-router step plan
the replica count cannot give within that tolerance is refused when it is applied.

The rule is CEL on the spec (x-kubernetes-validations), generated here because it repeats
engine.routing.replica_split in integer arithmetic and needs the risk tiers' step weights for a spec
that omits steps. For a weight w and r replicas:

    canary = ceil(r * w / 100) = (r * w + 99) / 100      (at least 1, since r, w >= 1)
    stable = 0 at w = 100, else max(1, r - canary)
    within:  |100 * canary - w * (canary + stable)| <= tolerance * (canary + stable)

which is |share - w| <= tolerance with share = 100 * canary / (canary + stable), without division. A
unit test checks the rule's verdicts against engine.shares for every (replicas, weight) up to 200 x 100
(tests/unit/api/test_share_rule.py), and the integration test applies it to the real API server.
Without shareTolerance the operator reports the shares (status.steps) and warns (ShareWithinTolerance
condition, Event) instead: a default replica count must never make a spec invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

REPLICAS = "(has(self.replicas) ? self.replicas : 2)"
CANARY = f"(({REPLICAS} * w + 99) / 100)"
STABLE = f"(w >= 100 ? 0 : ({REPLICAS} - {CANARY} >= 1 ? {REPLICAS} - {CANARY} : 1))"
PODS = f"({CANARY} + {STABLE})"
TOLERANCE = "self.traffic.shareTolerance"
WITHIN = (f"(100 * {CANARY} - w * {PODS} <= {TOLERANCE} * {PODS} && "
          f"w * {PODS} - 100 * {CANARY} <= {TOLERANCE} * {PODS})")


def _weights(tier_weights: Mapping[str, Sequence[int]], default_tier: str) -> str:
    """The effective step weights in CEL: spec.rollout.steps, else the risk tier's."""
    tier = "(has(self.riskTier) ? self.riskTier : '" + default_tier + "')"
    expr = "[" + ", ".join(str(w) for w in tier_weights[default_tier]) + "]"
    for name, weights in tier_weights.items():
        if name == default_tier:
            continue
        expr = f"({tier} == '{name}' ? [{', '.join(str(w) for w in weights)}] : {expr})"
    explicit = "has(self.rollout) && has(self.rollout.steps) && size(self.rollout.steps) > 0"
    # A shadow step (no weight) gives the canary no user: weight 0, which every replica count gives exactly.
    return f"(({explicit}) ? self.rollout.steps.map(s, has(s.weight) ? s.weight : 0) : {expr})"


def share_rule(tier_weights: Mapping[str, Sequence[int]], default_tier: str) -> dict[str, Any]:
    """The x-kubernetes-validations entry (on spec). Its message is static: a messageExpression naming the
    values is estimated far over the API server's CEL cost budget (tried on 1.36); the operator's
    ShareWithinTolerance condition names them for a spec that got in before a tolerance was set."""
    gateway = "(has(self.traffic.router) && self.traffic.router == 'gatewayAPI')"
    weights = _weights(tier_weights, default_tier)
    # With spec.autoscaling the stable track's size is the autoscaler's, known only at run time: the operator
    # reports the shares it gives then (engine.rules.shares), admission cannot.
    rule = (f"!has(self.traffic) || !has(self.traffic.shareTolerance) || {gateway} || has(self.autoscaling) || "
            f"{weights}.all(w, {WITHIN})")
    return {
        "rule": rule,
        "message": (
            "spec.rollout.steps: a step's weight cannot be given by spec.replicas within "
            "spec.traffic.shareTolerance with the replicas router (it rounds the canary up to whole pods: at 2 "
            "replicas 10% is 50%): raise spec.replicas (10 gives 10/50/100 exactly), use router: gatewayAPI, "
            "choose weights the replicas can give, or raise shareTolerance"
        ),
        "fieldPath": ".replicas",
        "reason": "FieldValueInvalid",
    }
