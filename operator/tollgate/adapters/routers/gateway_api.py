"""The Gateway API router: an HTTPRoute whose backendRefs weigh a stable and a canary Service.

Exact weights, independent of pod counts; mirroring (a shadow step) and rate limits in the platform's
data-plane dialect (engine.dataplane: the standard RequestMirror filter, or Traefik's mirroring service and
rate-limit Middlewares). The route and the dialect's objects are part of the engine's desired state; this
router's fast path rewrites only the route's backendRefs (rendered by the same engine.dataplane functions)
and our RequestMirror filter, so a traffic change (a rollback from a shadow step drops the mirror) lands
before anything else. Rule filters of the traefik dialect (the model's rate limit) stay as they are: a
limit is no traffic move. In the traefik dialect a lower mirror percent (never a rollback: that names
stable's Service directly) reaches the mirroring service with the desired objects, moments later.
"""

from __future__ import annotations

from typing import Any

from tollgate.adapters.kube import Kube
from tollgate.api.routers import DEFAULT_DIALECT, ROUTER_CAPABILITIES, GatewayDialect, RouterKind
from tollgate.engine.actions import Context, ObjectRef, SetWeight
from tollgate.engine.dataplane import (
    RouteTraffic,
    backend_refs,
    canary_limited_name,
    mirror_filter,
    mirror_service_name,
    route_name,
    service_name,
)
from tollgate.engine.observations import ParentRouteStatus, RouteObservation, Track

HTTPROUTE_API = "gateway.networking.k8s.io/v1"


class GatewayAPIRouter:
    kind = RouterKind.GATEWAY_API
    capabilities = ROUTER_CAPABILITIES[RouterKind.GATEWAY_API]
    """What some dialect can do (admission); what the dialect in force lacks: api.routers.dialect_problem."""

    def __init__(self, kube: Kube):
        self._kube = kube

    def _route(self, ctx: Context, namespace: str) -> tuple[ObjectRef, dict[str, Any] | None]:
        ref = ObjectRef(HTTPROUTE_API, "HTTPRoute", route_name(ctx), namespace)
        return ref, self._kube.get(ref)

    def _set(self, ctx: Context, namespace: str, traffic: RouteTraffic, dialect: GatewayDialect) -> None:
        ref, route = self._route(ctx, namespace)
        if route is None:
            return  # the engine's ApplyObjects creates it with the right weights
        canary = service_name(ctx, Track.CANARY)
        ours = {mirror_service_name(ctx), canary_limited_name(ctx)}
        rules = route.get("spec", {}).get("rules", [])
        for rule in rules:
            refs = rule.get("backendRefs") or []
            port = next((b["port"] for b in refs if b.get("port") is not None), None)
            if port is None and any(b.get("name") in ours for b in refs):
                # A traefik-dialect rule whose backends are all our TraefikServices (a shadow step with a canary
                # limit) names no port: the stable track Service's is the model's (one rule: one read).
                port = self._port(ctx, namespace)
            if port is None:
                continue  # not a rule Tollgate wrote (each of ours names a Service with its port)
            rule["backendRefs"] = backend_refs(ctx, int(port), traffic, dialect)
            # Our mirror filter goes (or is replaced); any other filter of the rule stays as it is.
            others = [f for f in rule.get("filters") or [] if f.get("type") != "RequestMirror"
                      or (f.get("requestMirror") or {}).get("backendRef", {}).get("name") != canary]
            if traffic.mirror > 0 and dialect is GatewayDialect.STANDARD:
                others.append(mirror_filter(ctx, int(port), traffic.mirror))
            if others:
                rule["filters"] = others
            else:
                rule.pop("filters", None)
        # rules is a list: a merge patch replaces it whole, so a removed filter or backendRef is gone.
        self._kube.merge_patch(ref, {"spec": {"rules": rules}})

    def _port(self, ctx: Context, namespace: str) -> int | None:
        service = self._kube.get(ObjectRef("v1", "Service", service_name(ctx, Track.STABLE), namespace))
        ports = ((service or {}).get("spec") or {}).get("ports") or []
        return int(ports[0]["port"]) if ports and ports[0].get("port") is not None else None

    def set_weight(self, ctx: Context, namespace: str, action: SetWeight) -> None:
        traffic = RouteTraffic.of(action.canary_weight, to_fallback=action.fallback, mirror=action.mirror_percent,
                                  canary_rate_limit=action.canary_rate_limit)
        self._set(ctx, namespace, traffic, action.dialect)

    def finalize(self, ctx: Context, namespace: str, stable_replicas: int) -> None:
        # All on stable's own Service: the same backendRefs in every dialect (no mirror, no canary limit).
        self._set(ctx, namespace, RouteTraffic.of(0, to_fallback=False), DEFAULT_DIALECT)


def route_observation(route: dict[str, Any]) -> RouteObservation:
    """The route's status.parents as the engine judges them. A condition written for an older generation
    of the route (its observedGeneration below metadata.generation) counts as not reported: the
    controller has not looked at the current spec yet."""
    generation = int((route.get("metadata") or {}).get("generation") or 0)
    namespace = (route.get("metadata") or {}).get("namespace", "")
    parents: list[ParentRouteStatus] = []
    for entry in (route.get("status") or {}).get("parents") or []:
        ref = entry.get("parentRef") or {}
        conds = {c.get("type"): c for c in entry.get("conditions") or []
                 if int(c.get("observedGeneration") or generation) >= generation}

        def state(type_: str, conds: dict[str, Any] = conds) -> tuple[bool | None, str, str]:
            c = conds.get(type_)
            if c is None:
                return None, "", ""
            return c.get("status") == "True", str(c.get("reason") or ""), str(c.get("message") or "")[:200]

        accepted, a_reason, a_message = state("Accepted")
        resolved, r_reason, r_message = state("ResolvedRefs")
        parents.append(ParentRouteStatus(
            name=str(ref.get("name", "")), namespace=str(ref.get("namespace") or namespace),
            section=ref.get("sectionName"), accepted=accepted, accepted_reason=a_reason,
            accepted_message=a_message, resolved_refs=resolved, resolved_reason=r_reason,
            resolved_message=r_message,
        ))
    return RouteObservation(parents=tuple(parents))
