"""Traffic routers: one module each behind the port `tollgate.ports.router.Router`."""

from tollgate.adapters.kube import Kube
from tollgate.adapters.routers.gateway_api import GatewayAPIRouter
from tollgate.adapters.routers.replicas import ReplicasRouter
from tollgate.api.spec import RouterKind
from tollgate.ports.router import Router


def router_for(kind: RouterKind, kube: Kube) -> Router:
    if kind == RouterKind.GATEWAY_API:
        return GatewayAPIRouter(kube)
    return ReplicasRouter(kube)


__all__ = ["Router", "router_for"]
