"""The Gateway API router: an HTTPRoute whose backendRefs weigh a stable and a canary Service.

Exact weights, independent of pod counts, and mirroring (a shadow step): the RequestMirror filter
copies a percent of the requests to the canary's Service. The route object itself is part of the engine's
desired state; this router patches only the weights and the mirror filter so a traffic change (a rollback
from a shadow step removes the filter) lands before anything else.
"""

from __future__ import annotations

from typing import Any

from tollgate.adapters.kube import Kube
from tollgate.api.routers import ROUTER_CAPABILITIES, RouterKind
from tollgate.engine.actions import Context, ObjectRef, SetWeight
from tollgate.engine.observations import ParentRouteStatus, RouteObservation, Track
from tollgate.engine.workloads import mirror_filter, route_name, service_name

HTTPROUTE_API = "gateway.networking.k8s.io/v1"


class GatewayAPIRouter:
    kind = RouterKind.GATEWAY_API
    capabilities = ROUTER_CAPABILITIES[RouterKind.GATEWAY_API]

    def __init__(self, kube: Kube):
        self._kube = kube

    def _route(self, ctx: Context, namespace: str) -> tuple[ObjectRef, dict[str, Any] | None]:
        ref = ObjectRef(HTTPROUTE_API, "HTTPRoute", route_name(ctx), namespace)
        return ref, self._kube.get(ref)

    def _set(self, ctx: Context, namespace: str, canary_weight: int, *, fallback: bool = False,
             mirror: int = 0) -> None:
        ref, route = self._route(ctx, namespace)
        if route is None:
            return  # the engine's ApplyObjects creates it with the right weights
        weights = {service_name(ctx, Track.STABLE): 0 if fallback else 100 - canary_weight,
                   service_name(ctx, Track.CANARY): 0 if fallback else canary_weight,
                   service_name(ctx, Track.FALLBACK): 100 if fallback else 0}
        canary = service_name(ctx, Track.CANARY)
        port = None
        rules = route.get("spec", {}).get("rules", [])
        for rule in rules:
            for backend in rule.get("backendRefs", []):
                if backend.get("name") in weights:
                    backend["weight"] = weights[backend["name"]]
                if backend.get("name") == canary:
                    port = backend.get("port")
            # Our mirror filter goes (or is replaced); any other filter of the rule stays as it is.
            others = [f for f in rule.get("filters") or [] if f.get("type") != "RequestMirror"
                      or (f.get("requestMirror") or {}).get("backendRef", {}).get("name") != canary]
            if mirror > 0 and not fallback and port is not None:
                others.append(mirror_filter(ctx, int(port), mirror))
            if others:
                rule["filters"] = others
            else:
                rule.pop("filters", None)
        # rules is a list: a merge patch replaces it whole, so a removed filter is gone.
        self._kube.merge_patch(ref, {"spec": {"rules": rules}})

    def set_weight(self, ctx: Context, namespace: str, action: SetWeight) -> None:
        self._set(ctx, namespace, action.canary_weight, fallback=action.fallback, mirror=action.mirror_percent)

    def finalize(self, ctx: Context, namespace: str, stable_replicas: int) -> None:
        self._set(ctx, namespace, 0)


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
