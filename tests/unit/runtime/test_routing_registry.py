"""The router's switch as the registry records it from watch events, and reads it for a decision."""

from __future__ import annotations

from typing import Any

from tollgate.api import resource
from tollgate.api.spec import RouterKind
from tollgate.engine.actions import Context
from tollgate.engine.observations import Track
from tollgate.runtime.registry import Registry

CTX = Context(name="chat", namespace="ml", uid="u", generation=1)
LABELS = {resource.LABEL_MD_NAMESPACE: "ml", resource.LABEL_MD_NAME: "chat"}


def service(track: str | None, name: str = "chat") -> dict[str, Any]:
    selector = {resource.LABEL_MD_NAME: "chat", **({resource.LABEL_TRACK: track} if track else {})}
    return {"kind": "Service", "metadata": {"name": name, "namespace": "sbx", "labels": LABELS},
            "spec": {"selector": selector}}


def route(**weights: int) -> dict[str, Any]:
    backends = [{"name": f"chat-{track}", "weight": w} for track, w in weights.items()]
    return {"kind": "HTTPRoute", "metadata": {"name": "chat", "namespace": "sbx", "labels": LABELS},
            "spec": {"rules": [{"backendRefs": backends}]}}


def test_the_replicas_routers_service_selector_is_the_switch() -> None:
    reg = Registry()
    # given a Service seen before its ModelDeployment (a restart lists children first)
    assert reg.observe_routing(service("stable"), deleted=False) is None
    assert reg.routing_of("sbx", CTX, RouterKind.REPLICAS).sole is Track.STABLE  # type: ignore[union-attr]
    # when the ModelDeployment is known and the selector moves to the fallback, its state is returned (to wake)
    st = reg.state("ml", "chat")
    assert reg.observe_routing(service("fallback"), deleted=False) is st
    assert reg.routing_of("sbx", CTX, RouterKind.REPLICAS).sole is Track.FALLBACK  # type: ignore[union-attr]
    # and an unchanged selector wakes nobody; the main pool (both tracks) is a split
    assert reg.observe_routing(service("fallback"), deleted=False) is None
    reg.observe_routing(service(None), deleted=False)
    assert reg.routing_of("sbx", CTX, RouterKind.REPLICAS).sole is None  # type: ignore[union-attr]
    # and a deleted Service is unknown again
    reg.observe_routing(service(None), deleted=True)
    assert reg.routing_of("sbx", CTX, RouterKind.REPLICAS) is None


def test_the_gateway_routes_weights_are_the_switch_and_its_track_services_are_not() -> None:
    reg = Registry()
    reg.state("ml", "chat")
    reg.observe_routing(service("stable", name="chat-stable"), deleted=False)
    reg.observe_routing(route(stable=100, canary=0), deleted=False)
    assert reg.routing_of("sbx", CTX, RouterKind.GATEWAY_API).sole is Track.STABLE  # type: ignore[union-attr]
    reg.observe_routing(route(stable=75, canary=25), deleted=False)
    assert reg.routing_of("sbx", CTX, RouterKind.GATEWAY_API).sole is None  # type: ignore[union-attr]
    reg.observe_routing(route(stable=0, canary=0, fallback=100), deleted=False)
    assert reg.routing_of("sbx", CTX, RouterKind.GATEWAY_API).sole is Track.FALLBACK  # type: ignore[union-attr]
    # and the replicas router's read never takes a per-track Service for the switch
    assert reg.routing_of("sbx", CTX, RouterKind.REPLICAS) is None
