"""What each part of the operator's per-object state costs, measured on the bench's live objects.

`breakdown(api, namespace)` lists the ModelDeployments of the bench namespace and every managed child
(the same objects the running operator holds), feeds them through the operator's own code paths in this
process (Kube.warm and Kube.observe for the applied-hash and drift caches, the Registry's observers, an
ObjectState with its reconcile loop task waiting for an event, the per-object metrics) and kopf's
per-object ResourceMemory (one per object kopf processes: the ModelDeployment and its sandbox Namespace; the
other children and the pods go around kopf, runtime.handlers.direct_routes), each
under tracemalloc. The figures are bytes of Python objects per ModelDeployment; what the RSS margin holds
beyond their sum is not per-object state (allocator slack, buffers of the burst).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tollgate.adapters.kube import Kube
from tollgate.adapters.routers.gateway_api import route_observation
from tollgate.api import resource
from tollgate.runtime import handlers, metrics
from tollgate.runtime.main import CompactMemories, SharedMemo
from tollgate.runtime.registry import Registry

SELECTOR = f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}"
CHILD_PATHS = (  # (apiVersion, kind, plural)
    ("v1", "Namespace", "namespaces"), ("v1", "Service", "services"), ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "ResourceQuota", "resourcequotas"), ("v1", "LimitRange", "limitranges"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"), ("apps/v1", "Deployment", "deployments"),
    ("batch/v1", "Job", "jobs"), ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
)


def _list(api: client.ApiClient, path: str, selector: str | None = None) -> list[dict[str, Any]]:
    query = [("labelSelector", selector)] if selector else []
    data = api.call_api(*api.param_serialize("GET", path, query_params=query, auth_settings=["BearerToken"]))
    data.read()
    import json

    items: list[dict[str, Any]] = json.loads(data.data).get("items", [])
    return items


def _measure(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after build() (which parses its own copy of the objects, as a watch does: so
    what the operator keeps of a parsed body, a name or a selector, counts, and what it drops does not)."""
    gc.collect()
    before = tracemalloc.take_snapshot()
    kept = build()
    gc.collect()
    after = tracemalloc.take_snapshot()
    return sum(s.size_diff for s in after.compare_to(before, "filename")), kept


def breakdown(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    mds = _list(api, f"/apis/{resource.API_VERSION}/namespaces/{namespace}/{resource.PLURAL}")
    children: dict[str, list[dict[str, Any]]] = {}
    for api_version, kind, plural in CHILD_PATHS:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            items = _list(api, f"{base}/{plural}", SELECTOR)
        except client.ApiException:
            items = []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        children[kind] = items
    pods = [{**p, "apiVersion": "v1", "kind": "Pod"} for p in _list(api, "/api/v1/pods", SELECTOR)]
    import json

    text = json.dumps({"mds": mds, "children": children, "pods": pods})
    n = len(mds)

    def fresh() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        parsed = json.loads(text)
        return parsed["mds"], parsed["children"], parsed["pods"]
    watched = n + sum(len(v) for v in children.values()) + len(pods)
    tracemalloc.start(1)
    out: dict[str, Any] = {"mds": n, "watched_objects": watched}

    def kube_caches() -> Kube:
        _, children, _ = fresh()
        kube = Kube(api)
        by_path = {f"/apis/{v}/{p}" if "/" in v else f"/api/{v}/{p}": children[k] for v, k, p in CHILD_PATHS}
        kube._call = lambda method, path, **_: {"items": by_path.get(path, [])}  # type: ignore[method-assign]
        kube.warm([(v, k) for v, k, _ in CHILD_PATHS], SELECTOR)
        del kube._call  # the stand-in holds the listed objects; the operator keeps no listing
        for items in children.values():  # every listing event, as the watches deliver them
            for item in items:
                kube.observe(item, deleted=False)
        return kube

    def registry_children() -> Registry:
        _, children, pods = fresh()
        reg = Registry()
        for item in children["Deployment"]:
            reg.observe_deployment(item, deleted=False)
        for item in children["Service"] + children["HTTPRoute"]:
            reg.observe_routing(item, deleted=False)
            if item["kind"] == "HTTPRoute":
                reg.observe_route(item, route_observation(item))
        for item in children["Job"]:
            reg.observe_job(item, deleted=False)
        for pod in pods:
            reg.observe_pod(pod, deleted=False)
        return reg

    async def objects_and_loops() -> int:
        class Rt:  # what rollout_loop reads while it waits for an event
            class reconciler:  # noqa: N801
                clock = staticmethod(lambda: None)

        reg = Registry()

        def states() -> Registry:
            mds, _, _ = fresh()
            for md in mds:
                meta = md["metadata"]
                reg.state(meta["namespace"], meta["name"]).adopt(dict(md))  # as handlers.take stores it
            return reg

        size_states, _ = _measure(states)

        def loops() -> None:
            for st in reg.objects.values():
                handlers.ensure_loop(Rt, st, delay=0.0)  # type: ignore[arg-type]

        gc.collect()
        before = tracemalloc.take_snapshot()
        loops()
        await asyncio.sleep(0.1)  # every loop now waits on its Event
        gc.collect()
        after = tracemalloc.take_snapshot()
        out["loop task per ModelDeployment"] = sum(s.size_diff for s in after.compare_to(before, "filename")) / n
        reg.stop_all()
        await asyncio.sleep(0)
        return size_states

    def per_object_metrics() -> None:
        mds, _, _ = fresh()
        for md in mds:
            meta = md["metadata"]
            metrics.set_weight(meta["namespace"], meta["name"], 0.0)
            metrics.OBJECTS.phase[(meta["namespace"], meta["name"])] = "Stable"

    async def kopf_memories() -> int:
        import kopf

        memories = CompactMemories(kopf.get_default_registry())  # what the operator passes kopf (runtime.main)
        memo = SharedMemo(runtime=object())

        async def recall_all() -> None:
            # kopf keeps a memory for the objects it processes: not for the kinds whose events go straight to
            # their handlers (runtime.handlers.direct_routes, through runtime.kopf_fixes)
            routed = {plural for _, plural in handlers.direct_routes(None)}  # type: ignore[arg-type]
            mds, children, pods = fresh()
            kept = [items for (_, kind, plural) in CHILD_PATHS if plural not in routed for items in [children[kind]]]
            for kind_items in (mds, *kept, *([] if "pods" in routed else [pods])):
                for item in kind_items:
                    await memories.recall(raw_body=item, memobase=memo)

        gc.collect()
        before = tracemalloc.take_snapshot()
        await recall_all()
        gc.collect()
        after = tracemalloc.take_snapshot()
        return sum(s.size_diff for s in after.compare_to(before, "filename"))

    size, _kube = _measure(kube_caches)
    out["applied-hash and drift caches (Kube)"] = size / n
    size, _reg = _measure(registry_children)
    out["registry: tracks, switches, routes, pods, Jobs"] = size / n
    out["registry: ObjectState with the compact body"] = asyncio.run(objects_and_loops()) / n
    size, _ = _measure(per_object_metrics)
    out["per-object metrics"] = size / n
    out["kopf ResourceMemory (one per object kopf processes)"] = asyncio.run(kopf_memories()) / n
    tracemalloc.stop()
    parts = [v for k, v in out.items() if k not in ("mds", "watched_objects")]
    out["sum"] = sum(parts)
    return {k: (round(v / 1024, 2) if isinstance(v, float) else v) for k, v in out.items()}


if __name__ == "__main__":
    import json
    import sys

    from common import api_client

    print(json.dumps(breakdown(api_client(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "bench-bulk"),
                     indent=2))
