"""What each traffic router can do, as data: the API's admission rules, the engine and the docs read it.

A router that cannot do something says so when the spec is applied, not at run time: every capability a
spec can ask for has a CEL rule generated from this table (`capability_rule`), so the API server refuses a
spec that asks a router for what it lacks, with a message naming the field, the router and the fix. The
router port (tollgate.ports.router) re-exports the table and each adapter declares its own capabilities; a
unit test holds the adapters, the table and the generated rules to each other (tests/unit/api/
test_router_capabilities.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

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


ROUTER_CAPABILITIES: Mapping[RouterKind, frozenset[Capability]] = MappingProxyType({
    RouterKind.REPLICAS: frozenset(),
    RouterKind.GATEWAY_API: frozenset({Capability.EXACT_WEIGHTS, Capability.MIRROR}),
})
"""replicas: one Service over the pods of both tracks; kube-proxy cannot copy a request, so no mirroring.
gatewayAPI: an HTTPRoute; weights are backendRefs weights, mirroring is the standard RequestMirror filter
(with `percent`, standard channel since Gateway API v1.3)."""


def routers_with(capability: Capability) -> tuple[RouterKind, ...]:
    """The routers that can do `capability`, in declaration order."""
    return tuple(kind for kind in RouterKind if capability in ROUTER_CAPABILITIES[kind])


@dataclass(frozen=True)
class Use:
    """Where a spec asks for a capability: a CEL condition on spec (self) and the words for the message."""

    capability: Capability
    condition: str
    field: str
    what: str
    """What the spec asks for, after "cannot", e.g. "mirror requests (shadow steps)"."""
    why: str
    """Why the routers without the capability cannot, for the message."""
    drop: str
    """The other fix, e.g. "remove the shadow steps"."""


USES: tuple[Use, ...] = (
    Use(Capability.MIRROR,
        "has(self.rollout) && has(self.rollout.steps) && self.rollout.steps.exists(s, has(s.shadow))",
        "spec.rollout.steps[].shadow",
        "mirror requests (shadow steps)",
        "its one Service, served by kube-proxy, cannot copy a request",
        "remove the shadow steps"),
)
"""Every spec field that needs a router capability; each becomes one admission rule on spec."""

ROUTER_CEL = f"(has(self.traffic) && has(self.traffic.router) ? self.traffic.router : '{DEFAULT_ROUTER.value}')"
"""spec.traffic.router in CEL, the default when omitted."""


def capability_rule(use: Use) -> CelRule:
    """The admission rule refusing `use` with a router that lacks its capability."""
    able = routers_with(use.capability)
    allowed = "[" + ", ".join(f"'{k.value}'" for k in able) + "]"
    fix = " or ".join(f"spec.traffic.router: {k.value}" for k in able)
    tail = (f" cannot {use.what} ({use.why}): use {fix}, or {use.drop}" if able
            else f" cannot {use.what} ({use.why}): {use.drop}")
    return CelRule(
        rule=f"!({use.condition}) || {ROUTER_CEL} in {allowed}",
        message=f"{use.field} is set, but spec.traffic.router{tail}",
        field_path=".traffic.router",
        message_expression=f"'{use.field} is set, but spec.traffic.router is ' + {ROUTER_CEL} + ', which{tail}'",
    )


def capability_rules() -> tuple[CelRule, ...]:
    return tuple(capability_rule(u) for u in USES)
