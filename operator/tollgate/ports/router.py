"""The router port: how a canary weight becomes real traffic (implementations in adapters.routers).

Like Flagger's router (Reconcile/SetRoutes/GetRoutes/Finalize) but smaller, because the desired
objects come from the pure engine: a router only moves traffic fast (before the rest of the desired
state is applied) and puts everything on stable when Tollgate lets go.

What a router can do is data (`ROUTER_CAPABILITIES`, defined beside RouterKind in tollgate.api.routers so
the CRD's admission rules are generated from it): a spec that asks a router for what it lacks is refused
when applied, never at run time. Each adapter declares its `capabilities`; a unit test holds them equal
to the table.
"""

from __future__ import annotations

from typing import Protocol

from tollgate.api.routers import ROUTER_CAPABILITIES, Capability, RouterKind, routers_with
from tollgate.engine.actions import Context, SetWeight

__all__ = ["ROUTER_CAPABILITIES", "Capability", "Router", "RouterKind", "routers_with"]


class Router(Protocol):
    kind: RouterKind
    capabilities: frozenset[Capability]
    """What this router can do; equal to ROUTER_CAPABILITIES[kind]."""

    def set_weight(self, ctx: Context, namespace: str, action: SetWeight) -> None:
        """Make `action.canary_weight` percent of traffic reach the canary now, and mirror
        `action.mirror_percent` of the requests to it (routers with Capability.MIRROR; 0: no mirror)."""

    def finalize(self, ctx: Context, namespace: str, stable_replicas: int) -> None:
        """All traffic on stable, canary at zero, no mirror (before deletion)."""
