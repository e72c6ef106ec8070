"""Proof that the local control plane behaves like a real cluster: no mocks, real processes."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from integration.cluster import Cluster


def _wait_for(what: str, predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_server_reports_the_version_it_was_built_as(cluster: Cluster) -> None:
    # when kubectl asks the server for its version
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    # then it is a real 1.36 build, not v0.0.0-master
    assert out["serverVersion"]["gitVersion"].startswith("v1.36."), out["serverVersion"]
    assert out["serverVersion"]["minor"] == "36"


def test_nodes_are_ready(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in n["status"]["conditions"])]
    assert len(ready) >= 3


def test_deployment_of_three_replicas_becomes_three_ready_pods(cluster: Cluster, namespace: str) -> None:
    # given a Deployment of 3 replicas
    apps = client.AppsV1Api(cluster.api_client())
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "example/web:1"}]}}},
    })
    # when the controllers, the scheduler and kwok do their work
    dep = _wait_for("3 ready replicas", lambda: (
        d if (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 3 else None))
    # then 3 pods are bound to fake nodes and Ready
    assert dep.status.available_replicas == 3
    pods = client.CoreV1Api(cluster.api_client()).list_namespaced_pod(namespace).items
    assert len(pods) == 3
    assert all(p.spec.node_name and p.spec.node_name.startswith("kwok-node-") for p in pods)
    assert all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions) for p in pods)


def test_deleting_a_namespace_completes(cluster: Cluster) -> None:
    # given a namespace holding objects
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": "doomed-ns"}})
    core.create_namespaced_config_map("doomed-ns", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    # when it is deleted
    core.delete_namespace("doomed-ns")

    # then the namespace controller empties it and it disappears
    def gone() -> bool:
        try:
            core.read_namespace("doomed-ns")
        except ApiException as exc:
            return exc.status == 404
        return False

    _wait_for("namespace deletion", gone)


def test_deleting_an_owner_garbage_collects_what_it_owns(cluster: Cluster, namespace: str) -> None:
    # given a ConfigMap owned by another ConfigMap
    core = client.CoreV1Api(cluster.api_client())
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "owned", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    # when the owner is deleted
    core.delete_namespaced_config_map("owner", namespace)

    # then the garbage collector deletes the dependent
    def collected() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    _wait_for("garbage collection", collected)


def test_service_account_without_rights_is_refused_by_impersonation(cluster: Cluster, namespace: str) -> None:
    # given a ServiceAccount with no RoleBinding
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    # when it lists pods (the admin impersonates it)
    res = cluster.kubectl("get", "pods", "-n", namespace, f"--as=system:serviceaccount:{namespace}:nobody",
                          check=False)
    # then RBAC refuses it
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower()
    assert f"system:serviceaccount:{namespace}:nobody" in res.stderr


def test_service_account_without_rights_is_refused_with_its_own_token(cluster: Cluster, namespace: str) -> None:
    # given a token issued for a ServiceAccount with no RoleBinding
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    admin = cluster.api_client().configuration
    cfg = client.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    core = client.CoreV1Api(client.ApiClient(cfg))
    # when it reads secrets with that token
    with pytest.raises(ApiException) as err:
        core.list_namespaced_secret(namespace)
    # then the server authenticates it and refuses it: 403, not 401
    assert err.value.status == 403
    # and a granted right works with the same token, so the 403 was about authorization
    cluster.kubectl("create", "role", "read-cm", "--verb=list", "--resource=configmaps", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "read-cm", "--role=read-cm",
                    f"--serviceaccount={namespace}:nobody", "-n", namespace)
    _wait_for("the RoleBinding to take effect", lambda: core.list_namespaced_config_map(namespace) is not None)
