"""What each traffic router can do, as data: the API's admission rules, the engine and the docs read it.

A router that cannot do something says so when the spec is applied, not at run time: every capability a
spec can ask for has a CEL rule generated from this table (`capability_rule`), so the API server refuses a
spec that asks a router for what it lacks, with a message naming the field, the router and the fix. The
router port (tollgate.ports.router) re-exports the table and each adapter declares its own capabilities; a
unit test holds the adapters, the table and the generated rules to each other (tests/unit/api/
test_router_capabilities.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tollgate.api.validation import CelRule


class RouterKind(StrEnum):
    """How traffic is split between the stable and the canary track."""

    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"


DEFAULT_ROUTER = RouterKind.REPLICAS


class Capability(StrEnum):
    """Something a spec can ask of the router."""

    EXACT_WEIGHTS = "exactWeights"
    """A step's weight is the canary's share at any replica count (the replicas router rounds the canary up to
    whole pods: its shares are reported and bounded by spec.traffic.shareTolerance instead)."""
    MIRROR = "mirror"
    """Copy a percent of live requests to the canary, whose answers users never get (shadow steps)."""
    RATE_LIMIT = "rateLimit"
    """Limit requests per second at the edge: to the canary (spec.traffic.canaryRateLimit, over it requests go
    to stable) or to the whole model (spec.traffic.rateLimit). No router has it yet: the Gateway API has no
    standard rate-limit filter, and the gateway-specific one (an ExtensionRef filter) is not built."""


ROUTER_CAPABILITIES: Mapping[RouterKind, frozenset[Capability]] = MappingProxyType({
    RouterKind.REPLICAS: frozenset(),
    RouterKind.GATEWAY_API: frozenset({Capability.EXACT_WEIGHTS, Capability.MIRROR}),
})
"""replicas: one Service over the pods of both tracks; kube-proxy cannot copy a request, so no mirroring.
gatewayAPI: an HTTPRoute; weights are backendRefs weights, mirroring is the standard RequestMirror filter
(with `percent`, in the standard channel of the v1.6.3 CRDs the test environment installs)."""


def routers_with(capability: Capability) -> tuple[RouterKind, ...]:
    """The routers that can do `capability`, in declaration order."""
    return tuple(kind for kind in RouterKind if capability in ROUTER_CAPABILITIES[kind])


@dataclass(frozen=True)
class Use:
    """Where a spec asks for a capability: a CEL condition on spec (self), the same test in Python for the
    engine, and the words for the message."""

    capability: Capability
    condition: str
    asks: Callable[[Any], bool]
    """The condition on a parsed ModelDeploymentSpec (the engine refuses one that got past admission)."""
    field: str
    what: str
    """What the spec asks for, after "cannot", e.g. "mirror requests" (no apostrophe: it is quoted in CEL)."""
    why: Mapping[RouterKind, str]
    """Why each router without the capability cannot, for the message."""
    drop: str
    """The other fix, e.g. "remove the shadow steps"."""


NO_RATE_LIMIT = ("the Gateway API has no standard rate-limit filter, and Tollgate drives no gateway-specific "
                 "one yet")
USES: tuple[Use, ...] = (
    Use(Capability.MIRROR,
        "has(self.rollout) && has(self.rollout.steps) && self.rollout.steps.exists(s, has(s.shadow))",
        lambda spec: spec.rollout.steps is not None and any(s.shadow is not None for s in spec.rollout.steps),
        "spec.rollout.steps[].shadow",
        "mirror requests",
        {RouterKind.REPLICAS: "its one Service, served by kube-proxy, cannot copy a request"},
        "remove the shadow steps"),
    Use(Capability.RATE_LIMIT,
        "has(self.traffic) && has(self.traffic.canaryRateLimit)",
        lambda spec: spec.traffic.canaryRateLimit is not None,
        "spec.traffic.canaryRateLimit",
        "limit the request rate to the canary",
        {RouterKind.REPLICAS: "kube-proxy spreads connections over pods and counts nothing",
         RouterKind.GATEWAY_API: NO_RATE_LIMIT},
        "remove spec.traffic.canaryRateLimit (the step weights bound the share of the canary)"),
    Use(Capability.RATE_LIMIT,
        "has(self.traffic) && has(self.traffic.rateLimit)",
        lambda spec: spec.traffic.rateLimit is not None,
        "spec.traffic.rateLimit",
        "limit the request rate to the model",
        {RouterKind.REPLICAS: "kube-proxy spreads connections over pods and counts nothing",
         RouterKind.GATEWAY_API: NO_RATE_LIMIT},
        "remove spec.traffic.rateLimit"),
)
"""Every spec field that needs a router capability; each becomes one admission rule on spec."""

ROUTER_CEL = f"(has(self.traffic) && has(self.traffic.router) ? self.traffic.router : '{DEFAULT_ROUTER.value}')"
"""spec.traffic.router in CEL, the default when omitted."""


def _cel_string(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"no quote or backslash in a capability message: {text!r}")
    return f"'{text}'"


def capability_rule(use: Use) -> CelRule:
    """The admission rule refusing `use` with a router that lacks its capability. Its message names the field,
    the router's value, why that router cannot, and the fix."""
    able = routers_with(use.capability)
    unable = [k for k in RouterKind if k not in able]
    allowed = "[" + ", ".join(f"'{k.value}'" for k in able) + "]"
    fix = (("use " + " or ".join(f"spec.traffic.router: {k.value}" for k in able) + f", or {use.drop}") if able
           else f"no router can yet: {use.drop}")
    why = "; ".join(f"{k.value}: {use.why[k]}" for k in unable)
    reasons = "{" + ", ".join(f"'{k.value}': {_cel_string(use.why[k])}" for k in unable) + "}"
    _cel_string(f"{use.field} {use.what} {fix}")  # quoted in the messageExpression below
    return CelRule(
        rule=f"!({use.condition}) || {ROUTER_CEL} in {allowed}",
        message=f"{use.field} is set, but spec.traffic.router cannot {use.what} ({why}): {fix}",
        field_path=".traffic.router",
        message_expression=(f"'{use.field} is set, but spec.traffic.router is ' + {ROUTER_CEL} + ', which cannot "
                            f"{use.what} (' + {reasons}[{ROUTER_CEL}] + '): {fix}'"),
    )


def capability_rules() -> tuple[CelRule, ...]:
    return tuple(capability_rule(u) for u in USES)
