"""The real node (REAL_NODE=1 make testenv-up): real containers, DNS and the API server from pods,
Services through kube-proxy, NetworkPolicy enforced by kube-router, one node per machine, and a
teardown that leaves the host as it found it.

Runs as root (CI does); the module fixture starts the control plane with the node once.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.realnode import RealNode
from tollgate_testkit import controlplane, hoststate, images, node

PROBE_NS = "real-node-probe"
SERVER_NS = "real-node-server"


def kubectl(rn: RealNode, *args: str, stdin: str | None = None, check: bool = True) -> str:
    res = subprocess.run(["kubectl", "--kubeconfig", rn.kubeconfig, *args], input=stdin, text=True,
                         capture_output=True, timeout=120, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr}")
    return res.stdout


def apply(rn: RealNode, *manifests: dict[str, Any]) -> None:
    kubectl(rn, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(m) for m in manifests))


def opt_in_namespace(rn: RealNode, name: str) -> None:
    apply(rn, {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {node.NODE_LABEL: "true"}}})


def python_pod(name: str, namespace: str, script: str, labels: dict[str, str] | None = None,
               restart: str = "Never") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": {"restartPolicy": restart, "containers": [{
                "name": "main", "image": images.LOADGEN, "imagePullPolicy": "Never",
                "command": ["python3", "-c", script]}]}}


def pod(rn: RealNode, namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl(rn, "get", "pod", name, "-n", namespace, "-o", "json"))
    return out


def run_to_end(rn: RealNode, manifest: dict[str, Any], timeout: float = 90) -> tuple[str, str]:
    """Run a one-shot pod; its phase (Succeeded/Failed) and its logs."""
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    kubectl(rn, "delete", "pod", name, "-n", ns, "--ignore-not-found", "--wait=true")
    apply(rn, manifest)
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = pod(rn, ns, name)["status"].get("phase", "")
        if phase in ("Succeeded", "Failed"):
            return phase, kubectl(rn, "logs", name, "-n", ns)
        time.sleep(0.5)
    raise AssertionError(f"pod {ns}/{name} still {phase} after {timeout}s: "
                         f"{json.dumps(pod(rn, ns, name)['status'], indent=1)}")


FETCH = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] if len(sys.argv) > 1 else URL, timeout=3) as r:
        print("status", r.status)
except Exception as exc:
    print("error", type(exc).__name__, exc)
"""


def fetch_pod(name: str, namespace: str, url: str) -> dict[str, Any]:
    return python_pod(name, namespace, f"URL = {url!r}\n" + FETCH)


def test_node_is_ready_tainted_and_beside_kwok(real_node: RealNode) -> None:
    nodes = json.loads(kubectl(real_node, "get", "nodes", "-o", "json"))["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    real = by_name[node.NODE_NAME]
    ready = {c["type"]: c["status"] for c in real["status"]["conditions"]}
    assert ready["Ready"] == "True", real["status"]["conditions"]
    assert {"key": node.TAINT_KEY, "value": "true", "effect": "NoSchedule"} in real["spec"]["taints"]
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
    assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    kwok = [n for name, n in by_name.items() if name.startswith("kwok-node-")]
    assert len(kwok) == controlplane.NODE_COUNT
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in kwok)


def test_a_pod_runs_in_a_real_container_and_reaches_dns_and_the_api_server(real_node: RealNode) -> None:
    # given a namespace that opts in to the real node
    opt_in_namespace(real_node, PROBE_NS)
    # when a pod resolves the kubernetes Service by name and asks the API server for its version,
    # verifying TLS with the CA of its ServiceAccount
    script = """
import json, socket, ssl, urllib.request
ip = socket.gethostbyname("kubernetes.default.svc.cluster.local")
ctx = ssl.create_default_context(cafile="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
req = urllib.request.Request("https://kubernetes.default.svc/version", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
    print("resolved", ip, "version", json.load(r)["gitVersion"])
"""
    phase, logs = run_to_end(real_node, python_pod("api-probe", PROBE_NS, script))
    # then it ran for real on the real node, with a container ID from containerd
    p = pod(real_node, PROBE_NS, "api-probe")
    assert phase == "Succeeded", logs
    assert p["spec"]["nodeName"] == node.NODE_NAME
    assert p["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert p["status"]["podIP"].startswith("10.244.0.")
    # and CoreDNS answered with the Service's ClusterIP, and the API server answered through it
    assert logs.split() == ["resolved", "10.0.0.1", "version", "v1.36.3"], logs


def test_a_pod_that_does_not_opt_in_stays_off_the_real_node(real_node: RealNode) -> None:
    kubectl(real_node, "create", "namespace", "real-node-not-opted", check=False)
    apply(real_node, python_pod("stays-on-kwok", "real-node-not-opted", "print('hi')"))
    deadline = time.monotonic() + 30
    while not pod(real_node, "real-node-not-opted", "stays-on-kwok")["spec"].get("nodeName"):
        assert time.monotonic() < deadline, "never scheduled"
        time.sleep(0.5)
    assert pod(real_node, "real-node-not-opted", "stays-on-kwok")["spec"]["nodeName"].startswith("kwok-node-")


def test_service_traffic_and_network_policy_are_real(real_node: RealNode) -> None:
    # given an HTTP server behind a Service, and a client in another namespace
    opt_in_namespace(real_node, SERVER_NS)
    opt_in_namespace(real_node, PROBE_NS)
    server = python_pod("web", SERVER_NS, "import http.server as h; h.ThreadingHTTPServer(('', 8080), "
                        "h.SimpleHTTPRequestHandler).serve_forever()", restart="Always")
    server["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": SERVER_NS},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    apply(real_node, server, service)
    kubectl(real_node, "wait", "--for=condition=Ready", "pod/web", "-n", SERVER_NS, "--timeout=90s")
    url = f"http://web.{SERVER_NS}.svc.cluster.local/"
    # then the client reaches it through the ClusterIP (kube-proxy programs the new Service asynchronously:
    # a pod Ready is not yet a rule in iptables, so this is retried like the policy changes below)
    reached = _eventually(real_node, fetch_pod("client", PROBE_NS, url), lambda out: out.startswith("status"))
    assert reached == "status 200", reached
    # when a default-deny ingress NetworkPolicy protects the server's namespace
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": SERVER_NS},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    apply(real_node, deny)
    # then the same request is refused (kube-router REJECTs)
    refused = _eventually(real_node, fetch_pod("client", PROBE_NS, url), lambda out: out.startswith("error"))
    assert "refused" in refused or "timed out" in refused, refused
    # and when the policy is removed, the request succeeds again (the policy was what blocked it)
    kubectl(real_node, "delete", "networkpolicy", "default-deny", "-n", SERVER_NS)
    allowed = _eventually(real_node, fetch_pod("client", PROBE_NS, url), lambda out: out.startswith("status"))
    assert allowed.strip() == "status 200", allowed


def _eventually(rn: RealNode, manifest: dict[str, Any], done: Any, attempts: int = 10) -> str:
    """Service and policy changes reach kube-proxy's and kube-router's iptables asynchronously: retry the
    one-shot pod a few times."""
    logs = ""
    for _ in range(attempts):
        _, logs = run_to_end(rn, manifest)
        if done(logs.strip()):
            return logs.strip()
        time.sleep(1)
    raise AssertionError(f"never observed the expected outcome; last: {logs}")


def test_a_second_real_node_on_the_machine_is_refused(real_node: RealNode, tmp_path: Path) -> None:
    with pytest.raises(node.NodeBusyError, match="a real node already runs on this machine, started from"):
        controlplane.up(tmp_path / "other", real_node=True)
    # and the running node was not disturbed
    assert all(node._alive(p) for p in real_node.pids.values())


def test_down_leaves_the_host_as_it_found_it(real_node: RealNode) -> None:
    # given the node ran pods, Services and NetworkPolicies (tests above; this one runs last)
    assert hoststate.diff(real_node.before, hoststate.snapshot()), "the node changed nothing on the host?"
    # when the test environment goes down
    real_node.stop()
    # then every process it started is gone, containers and shims included
    assert [n for n, p in real_node.pids.items() if node._alive(p)] == []
    assert node._our_shims() == []
    # and interfaces, iptables chains and rules, ipsets, mounts, cgroups, paths and sysctls are as before
    assert hoststate.diff(real_node.before, hoststate.snapshot()) == []
    assert not node.OWNER_FILE.exists()
