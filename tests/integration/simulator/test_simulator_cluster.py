"""The simulator follows a ModelDeployment on the real API server: status weight, then ready pods behind
the Service selector, then deletion; faults are read live from a ConfigMap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client

from integration.cluster import Cluster
from tollgate.api import resource
from tollgate_testkit.simulator import ConfigMapFaults, Fault, KubeSplits, TrafficSplit

pytestmark = pytest.mark.usefixtures("crds")
T = TypeVar("T")
MD_LABELS = {resource.LABEL_MD_NAME: "fraud"}


def eventually(fn: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.2)


def deployment(namespace: str, track: str, replicas: int) -> dict[str, Any]:
    labels = {**MD_LABELS, resource.LABEL_MD_NAMESPACE: namespace, resource.LABEL_TRACK: track}
    pod = {**labels, "tollgate.dev/pool": "main"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"fraud-{track}", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": pod},
                "spec": {
                    "containers": [{"name": "m", "image": "registry.example/model-server:1"}],
                },
            },
        },
    }


def shares(split: TrafficSplit | None) -> dict[str, tuple[str, float]] | None:
    if split is None:
        return None
    return {t.track: (t.version, round(t.share, 2)) for t in split.tracks}


def test_simulator_follows_the_live_split_on_the_api_server(cluster: Cluster, namespace: str) -> None:
    api = cluster.api_client()
    custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    g, v, p = resource.GROUP, resource.VERSION, resource.PLURAL
    # given a ModelDeployment whose status puts 20% on a canary (the test namespace doubles as sandbox)
    custom.create_namespaced_custom_object(
        g,
        v,
        namespace,
        p,
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": "fraud"},
            "spec": {
                "model": {"name": "fraud-scorer", "version": "2.0.0"},
                "runtime": {"image": "registry.example/model-server:1"},
            },
        },
    )
    custom.patch_namespaced_custom_object_status(
        g,
        v,
        namespace,
        p,
        "fraud",
        {
            "status": {
                "canaryWeight": 20,
                "sandboxNamespace": namespace,
                "stable": {"revision": "r1", "version": "1.0.0"},
                "canary": {"revision": "r2", "version": "2.0.0"},
            }
        },
    )
    splits = KubeSplits(api, namespace=namespace, resync=0.3)
    splits.start()
    try:
        key = (namespace, "fraud")

        # then with no sandbox objects the status weight decides
        got = eventually(lambda: shares(splits.splits().get(key)))
        assert got == {"stable": ("1.0.0", 0.8), "canary": ("2.0.0", 0.2)}

        # when the replicas router's Service selects the main pool, 3 stable and 1 canary pod Ready
        for track, n in (("stable", 3), ("canary", 1)):
            apps.create_namespaced_deployment(namespace, deployment(namespace, track, n))
        core.create_namespaced_service(
            namespace,
            {
                "metadata": {
                    "name": "fraud",
                    "labels": {**MD_LABELS, resource.LABEL_MD_NAMESPACE: namespace},
                },
                "spec": {"selector": {**MD_LABELS, "tollgate.dev/pool": "main"}, "ports": [{"port": 8080}]},
            },
        )

        # then traffic follows the ready pods (kwok makes them Ready)
        want = {"stable": ("1.0.0", 0.75), "canary": ("2.0.0", 0.25)}
        got = eventually(
            lambda: shares(splits.splits().get(key)) if shares(splits.splits().get(key)) == want else None,
            timeout=60,
        )
        assert splits.splits()[key].source == "service"

        # when the ModelDeployment is deleted, its traffic stops
        custom.delete_namespaced_custom_object(g, v, namespace, p, "fraud")
        eventually(lambda: True if key not in splits.splits() else None)
    finally:
        splits.stop()


def test_faults_are_reread_live_from_a_configmap(cluster: Cluster, namespace: str) -> None:
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    faults = ConfigMapFaults(api, namespace, "faults", defaults={"9.9.9": Fault(error_rate=1.0)})
    # given no ConfigMap yet: the flag defaults apply
    faults.refresh()
    assert faults.faults() == {"9.9.9": Fault(error_rate=1.0)}
    # when the ConfigMap appears, then its faults apply on the next read
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "faults"}, "data": {"2.0.0": "{errorRate: 0.1, addedLatency: 250ms}"}},
    )
    faults.refresh()
    assert faults.faults()["2.0.0"] == Fault(error_rate=0.1, added_latency=0.25)
    # and a broken edit keeps the last good faults rather than silently healing the canary
    core.patch_namespaced_config_map("faults", namespace, {"data": {"2.0.0": "{errorRte: 0.1}"}})
    faults.refresh()
    assert faults.faults()["2.0.0"] == Fault(error_rate=0.1, added_latency=0.25)
