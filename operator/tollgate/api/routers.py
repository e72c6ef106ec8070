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
    to stable) or to the whole model (spec.traffic.rateLimit, over it requests are refused 429). The Gateway
    API has no standard rate-limit filter: only a data-plane dialect with its own (GatewayDialect.TRAEFIK, a
    Middleware through an ExtensionRef filter) has it."""


class GatewayDialect(StrEnum):
    """How the gatewayAPI router speaks to the cluster's Gateway implementation: chosen once by the platform
    team (the Tollgate chart's gatewayAPI.dialect, the operator's --gateway-dialect), not by a tenant, so
    admission cannot know it. What a dialect lacks is refused before any traffic moves (`dialect_problem`:
    the runtime reports Stalled with that message and writes nothing else)."""

    STANDARD = "standard"
    """Only the Gateway API's own HTTPRoute fields: weighted backendRefs, the RequestMirror filter (for
    implementations whose conformance report claims HTTPRouteRequestMirror/RequestPercentageMirror)."""
    TRAEFIK = "traefik"
    """Traefik v3.7 with its Gateway and Kubernetes CRD providers (docs/gateway.md). Traefik answers every
    request of a rule carrying a RequestMirror filter with 500, so mirroring is a TraefikService of type
    mirroring behind the route's stable backendRef; rate limits are traefik.io Middlewares: the model's on
    the rule (ExtensionRef filter), the canary's on the canary Service inside a TraefikService of type
    failover whose fallback, for a 429, is stable."""


DEFAULT_DIALECT = GatewayDialect.STANDARD

DIALECT_CAPABILITIES: Mapping[GatewayDialect, frozenset[Capability]] = MappingProxyType({
    GatewayDialect.STANDARD: frozenset({Capability.EXACT_WEIGHTS, Capability.MIRROR}),
    GatewayDialect.TRAEFIK: frozenset({Capability.EXACT_WEIGHTS, Capability.MIRROR, Capability.RATE_LIMIT}),
})
"""What the gatewayAPI router can do in each dialect."""

DIALECT_WHY: Mapping[GatewayDialect, Mapping[Capability, str]] = MappingProxyType({
    GatewayDialect.STANDARD: MappingProxyType({
        Capability.RATE_LIMIT: "the Gateway API has no standard rate-limit filter"}),
    GatewayDialect.TRAEFIK: MappingProxyType({}),
})
"""Why a dialect cannot, for the Stalled message."""


ROUTER_CAPABILITIES: Mapping[RouterKind, frozenset[Capability]] = MappingProxyType({
    RouterKind.REPLICAS: frozenset(),
    RouterKind.GATEWAY_API: frozenset(c for caps in DIALECT_CAPABILITIES.values() for c in caps),
})
"""replicas: one Service over the pods of both tracks; kube-proxy cannot copy a request, so no mirroring.
gatewayAPI: an HTTPRoute; weights are backendRefs weights; what some dialect of it can do (admission knows the
router, not the platform's dialect): mirroring is the standard RequestMirror filter (with `percent`, in the
standard channel of the v1.6.3 CRDs the test environment installs) or Traefik's mirroring service, rate
limits are Traefik Middlewares. What the dialect in force lacks: `dialect_problem`."""


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
        {RouterKind.REPLICAS: "kube-proxy spreads connections over pods and counts nothing"},
        "remove spec.traffic.canaryRateLimit (the step weights bound the share of the canary)"),
    Use(Capability.RATE_LIMIT,
        "has(self.traffic) && has(self.traffic.rateLimit)",
        lambda spec: spec.traffic.rateLimit is not None,
        "spec.traffic.rateLimit",
        "limit the request rate to the model",
        {RouterKind.REPLICAS: "kube-proxy spreads connections over pods and counts nothing"},
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


DIALECT_WHERE = "gatewayAPI.dialect, set by the platform team in the Tollgate chart"


def dialect_problem(spec: Any, dialect: GatewayDialect) -> str | None:
    """Why the gatewayAPI router cannot carry out `spec` (a parsed ModelDeploymentSpec) in the platform's
    dialect, naming the field, the dialect, why and the fix; None when it can (or the router is not
    gatewayAPI: admission decided that). Checked before anything is decided or written."""
    if spec.traffic.router is not RouterKind.GATEWAY_API:
        return None
    able = DIALECT_CAPABILITIES[dialect]
    for use in USES:
        if use.capability in able or not use.asks(spec):
            continue
        others = [d.value for d in GatewayDialect if use.capability in DIALECT_CAPABILITIES[d]]
        return (f"{use.field} is set, but this cluster's Gateway data plane speaks the {dialect.value} dialect "
                f"({DIALECT_WHERE}), which cannot {use.what} ({DIALECT_WHY[dialect][use.capability]}): "
                f"{use.drop}, or ask the platform team for a dialect that can ({', '.join(others)}). Nothing of this "
                "spec was applied")
    return None
