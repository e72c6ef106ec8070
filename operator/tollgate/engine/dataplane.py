"""The gatewayAPI router's routing objects in the platform's data-plane dialect (pure).

The engine decides the numbers (a TrafficPlan: weights, the percent mirrored to the canary, the rate limits
in force); this module only renders them, for the dialect the platform team chose (api.routers.GatewayDialect,
the chart's gatewayAPI.dialect). No rule of the engine looks at the dialect, and the router's fast path
(adapters.routers.gateway_api) renders its backendRefs with the same functions, so both write one shape.

standard: an HTTPRoute with weighted backendRefs to the per-track Services and, during a shadow step, the
Gateway API RequestMirror filter (for implementations that carry it out).

traefik (docs/gateway.md): Traefik answers every request of a rule with a RequestMirror filter 500, so
- mirroring is a TraefikService `<name>-mirror` of type mirroring: main service stable, the canary as its
  mirror with the plan's percent. While a shadow step holds, the route's stable backendRef names it; users
  get stable's answers, Traefik throws the canary's away;
- the canary's rate limit (spec.traffic.canaryRateLimit) is a Middleware `<name>-canary-rate-limit` on the
  canary Service inside a TraefikService `<name>-canary-limited` of type failover whose fallback is stable,
  for a 429: over the limit, requests go to stable. While a limit is in force the route's canary
  backendRef names that service (and a shadow step's mirror carries the same Middleware, so mirrored
  copies over the limit never reach the canary either);
- the model's rate limit (spec.traffic.rateLimit) is a Middleware `<name>-rate-limit` on the route's rule
  (ExtensionRef filter): it sees every request of the model, whichever track answers; over it, 429.
Both limits count in one bucket per Traefik replica: a Middleware `<name>-rate-key` sets the header the
limits count by to the same value on every request, so a client cannot pick its own bucket (by default
Traefik keeps one bucket per client IP, and a Host header is the client's to choose).

Every Traefik object is rendered from the model's first apply on, whether or not the spec asks for what it
does: a limit the spec does not set is a Middleware at `average: 0`, which Traefik reads as no limit at all
(ratelimiter.go: rate.Inf). The route names an object only while it is in force. Why: Traefik loads the
route (Gateway provider) and the traefik.io objects (CRD provider) from two providers, each throttled on its
own; a route naming an object created in the same apply can reach Traefik first, and Traefik then answers
every request of the route 404 until the other provider catches up (seen on the real node: 57 of 300 while
the platform switched a model limit on). Switching a limit or a mirror on therefore only makes the route
name an object Traefik has run for as long as the model has existed, and changing a limit's value updates
an object Traefik already holds. The objects go only when the dialect no longer wants them (the router or
the chart's dialect changed: engine.rules.finish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context
from tollgate.engine.labels import owner_labels
from tollgate.engine.naming import fit
from tollgate.engine.observations import Track
from tollgate.engine.sandbox import sandbox_namespace

Manifest = dict[str, Any]
GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_ROUTE_API = f"{GATEWAY_GROUP}/v1"
TRAEFIK_GROUP = "traefik.io"
TRAEFIK_API = f"{TRAEFIK_GROUP}/v1alpha1"
DATAPLANE_KINDS = frozenset({"TraefikService", "Middleware"})
"""Kinds of the dialects' own objects (traefik): the engine removes the ones its desired objects no longer hold
(another router or dialect; engine.rules.finish)."""
RATE_KEY_HEADER = "X-Tollgate-Rate-Key"
"""The header both rate limits count by; set by the `<name>-rate-key` Middleware, whatever the client sent."""


@dataclass(frozen=True)
class RouteTraffic:
    """What the route carries: the weight of each track's backendRef, the mirror and the limits in force."""

    weights: tuple[tuple[Track, int], ...]
    """(track, weight) in backendRef order; the fallback's only under the kill switch."""
    mirror: int = 0
    canary_rate_limit: int | None = None
    rate_limit: int | None = None

    @classmethod
    def of(cls, canary_weight: int, *, to_fallback: bool, mirror: int = 0, canary_rate_limit: int | None = None,
           rate_limit: int | None = None) -> RouteTraffic:
        if to_fallback:
            return cls(((Track.STABLE, 0), (Track.CANARY, 0), (Track.FALLBACK, 100)), 0, None, rate_limit)
        return cls(((Track.STABLE, 100 - canary_weight), (Track.CANARY, canary_weight)), mirror,
                   canary_rate_limit, rate_limit)



def service_name(ctx: Context, track: Track | None = None) -> str:
    return fit(ctx.name if track is None else f"{ctx.name}-{track.value}")


def route_name(ctx: Context) -> str:
    return fit(ctx.name)


def mirror_service_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-mirror")


def canary_limited_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-canary-limited")


def rate_key_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-rate-key")


def canary_rate_limit_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-canary-rate-limit")


def rate_limit_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-rate-limit")


def _traefik_service_ref(name: str, weight: int) -> Manifest:
    return {"group": TRAEFIK_GROUP, "kind": "TraefikService", "name": name, "weight": weight}


def backend_refs(ctx: Context, port: int, traffic: RouteTraffic, dialect: GatewayDialect) -> list[Manifest]:
    """The rule's backendRefs: a Service per track with its weight; in the traefik dialect stable's names the
    mirroring service while a mirror is on, and the canary's the failover service while its limit holds."""
    refs: list[Manifest] = []
    for track, weight in traffic.weights:
        if dialect is GatewayDialect.TRAEFIK and track is Track.STABLE and traffic.mirror > 0:
            refs.append(_traefik_service_ref(mirror_service_name(ctx), weight))
        elif dialect is GatewayDialect.TRAEFIK and track is Track.CANARY and traffic.canary_rate_limit is not None:
            refs.append(_traefik_service_ref(canary_limited_name(ctx), weight))
        else:
            refs.append({"name": service_name(ctx, track), "port": port, "weight": weight})
    return refs


def mirror_filter(ctx: Context, port: int, percent: int) -> Manifest:
    """The standard Gateway API RequestMirror filter (HTTPRoute rule level) that copies `percent` of the
    requests to the canary's Service; the gateway discards the copies' answers."""
    return {"type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": service_name(ctx, Track.CANARY), "port": port},
                              "percent": percent}}


def _extension_ref(name: str) -> Manifest:
    return {"type": "ExtensionRef", "extensionRef": {"group": TRAEFIK_GROUP, "kind": "Middleware", "name": name}}


def rule_filters(ctx: Context, port: int, traffic: RouteTraffic, dialect: GatewayDialect) -> list[Manifest]:
    """The rule's filters: standard, the RequestMirror filter during a shadow step; traefik, the model's rate
    limit (after the Middleware that sets the key it counts by)."""
    if dialect is GatewayDialect.STANDARD:
        return [mirror_filter(ctx, port, traffic.mirror)] if traffic.mirror > 0 else []
    if traffic.rate_limit is not None:
        return [_extension_ref(rate_key_name(ctx)), _extension_ref(rate_limit_name(ctx))]
    return []


def _traefik_object(spec: ModelDeploymentSpec, ctx: Context, kind: str, name: str, body: Manifest) -> Manifest:
    return {"apiVersion": TRAEFIK_API, "kind": kind,
            "metadata": {"name": name, "namespace": sandbox_namespace(spec, ctx),
                         "labels": owner_labels(ctx, spec.model.name)},
            "spec": body}


def _rate_limit(per_second: int | None) -> Manifest:
    """A token bucket of `per_second` requests a second holding at most one second's worth, one bucket for all
    clients (keyed by the header the rate-key Middleware sets). None: `average: 0`, which Traefik runs as no
    limit, so the object exists (see the module docstring) and limits nothing."""
    return {"rateLimit": {"average": per_second or 0, "period": "1s", "burst": per_second or 0,
                          "sourceCriterion": {"requestHeaderName": RATE_KEY_HEADER}}}


def traefik_objects(spec: ModelDeploymentSpec, ctx: Context, traffic: RouteTraffic) -> list[Manifest]:
    """The traefik dialect's own objects, in the sandbox, labelled like every object of the ModelDeployment,
    to apply before the route that names them. All of them always (module docstring: the route may name
    only objects Traefik already runs): the limits at the spec's values (off when unset), the mirroring
    service at the plan's percent (0 outside a shadow step)."""
    port = spec.runtime.port
    stable = {"name": service_name(ctx, Track.STABLE), "port": port}
    canary: Manifest = {"name": service_name(ctx, Track.CANARY), "port": port}
    limited = {**canary, "middlewares": [{"name": rate_key_name(ctx)}, {"name": canary_rate_limit_name(ctx)}]}
    return [
        _traefik_object(spec, ctx, "Middleware", rate_key_name(ctx), {
            "headers": {"customRequestHeaders": {RATE_KEY_HEADER: fit(ctx.name)}}}),
        _traefik_object(spec, ctx, "Middleware", canary_rate_limit_name(ctx),
                        _rate_limit(spec.traffic.canaryRateLimit)),
        _traefik_object(spec, ctx, "TraefikService", canary_limited_name(ctx), {
            "failover": {"service": limited, "fallback": stable, "errors": {"status": ["429"]}}}),
        _traefik_object(spec, ctx, "Middleware", rate_limit_name(ctx), _rate_limit(spec.traffic.rateLimit)),
        # the copies of a shadow step count against the canary's limit too, once the spec sets one
        _traefik_object(spec, ctx, "TraefikService", mirror_service_name(ctx), {
            "mirroring": {**stable, "mirrors": [{**(limited if spec.traffic.canaryRateLimit is not None else canary),
                                                 "percent": traffic.mirror}]}}),
    ]


def http_route(spec: ModelDeploymentSpec, ctx: Context, traffic: RouteTraffic, dialect: GatewayDialect) -> Manifest:
    """The gatewayAPI router's HTTPRoute: one rule, its backendRefs and filters in the dialect."""
    gateway = spec.traffic.gatewayAPI
    if gateway is None:
        raise ValueError("spec.traffic.gatewayAPI is required for the gatewayAPI router")
    ns = sandbox_namespace(spec, ctx)
    parents: list[Manifest] = []
    for parent in gateway.parentRefs:
        entry: Manifest = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": parent.name,
                           "namespace": parent.namespace or ns}
        if parent.sectionName:
            entry["sectionName"] = parent.sectionName
        parents.append(entry)
    rule: Manifest = {"backendRefs": backend_refs(ctx, spec.runtime.port, traffic, dialect)}
    filters = rule_filters(ctx, spec.runtime.port, traffic, dialect)
    if filters:
        rule["filters"] = filters
    body: Manifest = {"parentRefs": parents, "rules": [rule]}
    if gateway.hostnames:
        body["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": HTTP_ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": {"name": route_name(ctx), "namespace": ns, "labels": owner_labels(ctx, spec.model.name)},
        "spec": body,
    }


def route_objects(spec: ModelDeploymentSpec, ctx: Context, traffic: RouteTraffic,
                  dialect: GatewayDialect) -> list[Manifest]:
    """The routing objects beyond the per-track Services, in apply order: the dialect's own objects, then the
    route that names them."""
    own = traefik_objects(spec, ctx, traffic) if dialect is GatewayDialect.TRAEFIK else []
    return [*own, http_route(spec, ctx, traffic, dialect)]
