"""Whether the gatewayAPI router's HTTPRoute is serving: every parent Gateway accepted it and resolved
its backends.

Why: with the gatewayAPI router the traffic split exists only if a Gateway controller programs the
route. A route whose Gateway does not exist (or refuses it, or cannot resolve the Services) has an
empty or negative `status.parents`, and the model serves nothing, however Ready its pods are. Ready
therefore requires, for every parentRef of the spec, an entry in `status.parents` with Accepted=True and
ResolvedRefs=True for the route's current generation (the runtime drops conditions written for an older
one). Otherwise the problem names the parent and the reason its controller gave, or says that no
controller answered for it.
"""

from __future__ import annotations

from tollgate.api.spec import ModelDeploymentSpec, RouterKind
from tollgate.engine.observations import ParentRouteStatus, RouteObservation


def route_problem(spec: ModelDeploymentSpec, sandbox: str, route: RouteObservation | None) -> str | None:
    """Why the HTTPRoute is not serving, or None (also None for the replicas router)."""
    gateway = spec.traffic.gatewayAPI
    if spec.traffic.router is not RouterKind.GATEWAY_API or gateway is None:
        return None
    if route is None:
        return "HTTPRoute not observed yet"
    problems: list[str] = []
    for ref in gateway.parentRefs:
        namespace = ref.namespace or sandbox
        where = f"Gateway {namespace}/{ref.name}" + (f" section {ref.sectionName}" if ref.sectionName else "")
        parent = _find(route.parents, ref.name, namespace, ref.sectionName)
        if parent is None:
            problems.append(f"{where}: no status from a Gateway controller (does the Gateway exist, and "
                            "does a controller serve its class?)")
        elif parent.accepted is not True:
            problems.append(_condition(where, "Accepted", parent.accepted, parent.accepted_reason,
                                       parent.accepted_message))
        elif parent.resolved_refs is not True:
            problems.append(_condition(where, "ResolvedRefs", parent.resolved_refs, parent.resolved_reason,
                                       parent.resolved_message))
    return "; ".join(problems) or None


def _find(parents: tuple[ParentRouteStatus, ...], name: str, namespace: str,
          section: str | None) -> ParentRouteStatus | None:
    return next((p for p in parents if p.name == name and p.namespace == namespace
                 and (section is None or p.section in (None, section))), None)


def _condition(where: str, type_: str, value: bool | None, reason: str, message: str) -> str:
    state = "not reported for the current generation" if value is None else f"{type_}=False"
    detail = f" ({reason}: {message})" if reason or message else ""
    return f"{where}: {type_} {state}{detail}" if value is None else f"{where}: {state}{detail}"
