"""Traffic routers: one module each behind `tollgate.adapters.routers.base.Router`."""

from tollgate.adapters.routers.base import Router, router_for

__all__ = ["Router", "router_for"]
