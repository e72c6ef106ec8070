"""The router port: how a canary weight becomes real traffic (implementations in adapters.routers).

Like Flagger's router (Reconcile/SetRoutes/GetRoutes/Finalize) but smaller, because the desired
objects come from the pure engine: a router only moves traffic fast (before the rest of the desired
state is applied) and puts everything on stable when Tollgate lets go.
"""

from __future__ import annotations

from typing import Protocol

from tollgate.api.spec import RouterKind
from tollgate.engine.actions import Context, SetWeight


class Router(Protocol):
    kind: RouterKind

    def set_weight(self, ctx: Context, namespace: str, action: SetWeight) -> None:
        """Make `action.canary_weight` percent of traffic reach the canary now."""

    def finalize(self, ctx: Context, namespace: str, stable_replicas: int) -> None:
        """All traffic on stable, canary at zero (before deletion)."""

