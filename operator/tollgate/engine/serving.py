"""Where the router sends requests, read back from its object as the watch delivered it.

The replicas router's switch is its one Service's selector (a track label: only that track's pods; the
main pool: stable and canary by their Ready pods); the gatewayAPI router's is the HTTPRoute's
backendRefs weights. Reading the observed object back (rather than trusting what a decision asked for)
is what lets a drill time the moment traffic really moved (engine.rules.drills).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollgate.api import resource
from tollgate.engine.actions import Context
from tollgate.engine.dataplane import canary_limited_name, mirror_service_name, service_name
from tollgate.engine.observations import RoutingObservation, Track


def service_routing(service: Mapping[str, Any]) -> RoutingObservation:
    """The replicas router's Service: the track its selector names, else traffic is split."""
    selector = (service.get("spec") or {}).get("selector") or {}
    track = selector.get(resource.LABEL_TRACK)
    return RoutingObservation(sole=Track(track) if track in {t.value for t in Track} else None)


def route_routing(route: Mapping[str, Any], ctx: Context) -> RoutingObservation:
    """The gatewayAPI router's HTTPRoute: the one track with a positive weight, else split (or unknown). A track
    that a RequestMirror filter copies requests to (a shadow step) takes requests too: not all traffic is on
    the weighted track until the mirror is gone (a rollback drill from a shadow step is timed to that). In the
    traefik dialect (engine.dataplane) the mirroring service stands for stable and the canary it copies to,
    the rate-limited failover service for the canary."""
    names: dict[str, tuple[Track, ...]] = {service_name(ctx, t): (t,) for t in Track}
    names[mirror_service_name(ctx)] = (Track.STABLE, Track.CANARY)
    names[canary_limited_name(ctx)] = (Track.CANARY,)
    weighted: set[Track | None] = set()
    for rule in (route.get("spec") or {}).get("rules") or []:
        for backend in rule.get("backendRefs") or []:
            if int(backend.get("weight", 1) or 0) > 0:
                weighted.update(names.get(str(backend.get("name")), (None,)))
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestMirror":
                mirrored = str(((f.get("requestMirror") or {}).get("backendRef") or {}).get("name"))
                weighted.update(names.get(mirrored, (None,)))
    sole = next(iter(weighted)) if len(weighted) == 1 else None
    return RoutingObservation(sole=sole)
