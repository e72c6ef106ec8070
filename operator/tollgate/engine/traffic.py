"""Which step the canary's traffic holds: a weight (users on the canary) or a mirror (a shadow step).

A step is identified by what the router gives the canary while it holds, (canaryWeight, canaryMirror) in
status against (weight, shadow.percent) of the step: a shadow step has weight 0 and a mirror, a weighted
step a weight and no mirror. So "entered" means the status carries the step's pair, and a canary
"receives" requests when either is above zero (its pods answer them, so it is judged), even though during
a shadow step no user ever gets its answer.
"""

from __future__ import annotations

from tollgate.api.routers import DIALECT_CAPABILITIES, Capability, GatewayDialect, RouterKind
from tollgate.api.spec import ModelDeploymentSpec, Step
from tollgate.api.status import ModelDeploymentStatus, RateLimitStatus

ENFORCED_BY = {GatewayDialect.TRAEFIK: "traefik Middleware (one bucket per Traefik replica)"}


def holds(status: ModelDeploymentStatus, step: Step) -> bool:
    """The canary's traffic is the step's own: its weight and its mirror."""
    return status.canaryWeight == step.canary_weight and status.canaryMirror == step.mirror


def receives(status: ModelDeploymentStatus) -> bool:
    """The canary's pods answer requests: a weight, or mirrored copies in a shadow step."""
    return status.canaryWeight > 0 or status.canaryMirror > 0


def text(status: ModelDeploymentStatus) -> str:
    """The canary's traffic in a few words: "25%" or "shadow 50%" (users get stable's answers)."""
    if status.canaryMirror > 0 and status.canaryWeight == 0:
        return f"shadow {status.canaryMirror}%"
    return f"{status.canaryWeight}%"


def rate_limits(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, dialect: GatewayDialect
                ) -> RateLimitStatus | None:
    """The rate limits in force for this status: the model's whenever the spec sets it, the canary's while a
    canary takes requests and the kill switch has not sent everything to the fallback. None without a router
    and dialect that limit (the runtime refused such a spec before deciding: api.routers.dialect_problem)."""
    if (spec.traffic.router is not RouterKind.GATEWAY_API
            or Capability.RATE_LIMIT not in DIALECT_CAPABILITIES[dialect]):
        return None
    on_canary = status.canary is not None and status.fallback is None and receives(status)
    canary = spec.traffic.canaryRateLimit if on_canary else None
    if canary is None and spec.traffic.rateLimit is None:
        return None
    return RateLimitStatus(canary=canary, model=spec.traffic.rateLimit,
                           enforcedBy=ENFORCED_BY.get(dialect, dialect.value))
