"""What a real model server needs, on the real control plane with KWOK (issue 19):

- a GPU model that tolerates the GPU pool's taint reaches Ready on a KWOK node that has the taint and
  advertises nvidia.com/gpu; where no node has enough GPUs it stays Pending with the scheduler's message;
- the progress deadline counts from the moment the canary's pods are scheduled: a canary waiting for a
  GPU node past its deadline proceeds once a node joins;
- a canary whose image never pulls, or whose container crash-loops, is rolled back when the pod reports
  it (KWOK sets those pod states as a kubelet would), long before its 10-minute progress deadline, with
  the container's own reason in status and evidence.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml

from integration.runtime.helpers import apply, md_manifest, status
from tollgate_testkit.kwok_faults import CRASH_LOOP_IMAGE, NEVER_PULLS_IMAGE
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

TAINT = {"key": "tollgate.test/gpu", "value": "present", "effect": "NoSchedule"}
ROLLOUT = {"steps": [{"weight": 25}, {"weight": 50}, {"weight": 100}], "progressDeadline": "10m",
           "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}}


def _gpu_node(stack: Stack, name: str, pool: str, gpus: str) -> None:
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": gpus}
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"type": "kwok", "kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux", "tollgate.test/pool": pool},
                         "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"taints": [TAINT]},
            "status": {"capacity": capacity, "allocatable": capacity}}
    stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node))

    def ready() -> bool:
        got = json.loads(stack.kubectl("get", "node", name, "-o", "json").stdout)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in got["status"].get("conditions", []))

    wait_for(f"node {name} Ready", ready, timeout=60)


def _gpu_model(name: str, pool: str, gpus: str, *, tolerate: bool = True) -> dict[str, Any]:
    scheduling: dict[str, Any] = {"nodeSelector": {"tollgate.test/pool": pool}}
    if tolerate:
        scheduling["tolerations"] = [{"key": "tollgate.test/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return md_manifest(name, "1.0.0", replicas=2, scheduling=scheduling,
                       runtime={"image": "registry.example/model-server:1.0",
                                "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": gpus},
                                              "limits": {"nvidia.com/gpu": gpus}}})


def _pods(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    out = stack.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_gpu_model_runs_on_the_tainted_gpu_node_and_waits_with_a_reason_where_none_fits(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a KWOK node of a GPU pool: tainted, 2 GPUs
    node = f"gpu-{namespace}"[:63]
    _gpu_node(stack, node, namespace, gpus="2")
    try:
        # when a model asking 1 GPU per pod, tolerating the taint, is applied for that pool
        apply(stack, namespace, _gpu_model("gpu", namespace, "1"))
        # then it becomes Ready, its pods on the GPU node with the GPU in their limits
        wait_for("gpu model Stable", lambda: status(stack, namespace, "gpu").get("phase") == "Stable", timeout=90)
        stack.kubectl("wait", "--for=condition=Ready", "modeldeployment/gpu", "-n", namespace, "--timeout=30s")
        sandbox = status(stack, namespace, "gpu")["sandboxNamespace"]
        pods = _pods(stack, sandbox)
        assert pods and {p["spec"]["nodeName"] for p in pods} == {node}
        assert all(p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in pods)
        # and the sandbox quota counts GPUs
        quota = json.loads(stack.kubectl("get", "resourcequota", "tollgate-quota", "-n", sandbox, "-o", "json").stdout)
        assert "requests.nvidia.com/gpu" in quota["spec"]["hard"]

        # when another model asks 4 GPUs per pod in the same pool (no node has that many)
        apply(stack, namespace, _gpu_model("big", namespace, "4"))
        # then it stays Pending, and its status says why in the scheduler's words
        def explained() -> dict[str, Any] | None:
            st = status(stack, namespace, "big")
            return st if "Insufficient nvidia.com/gpu" in st.get("message", "") else None

        st = wait_for("big model explained", explained, timeout=90)
        assert st["phase"] == "Pending" and "0/2 pods Ready" in st["message"]

        # and a model that does not tolerate the pool's taint is told so
        apply(stack, namespace, _gpu_model("untolerant", namespace, "1", tolerate=False))
        def untolerated() -> dict[str, Any] | None:
            st = status(stack, namespace, "untolerant")
            return st if "untolerated taint" in st.get("message", "") else None

        st = wait_for("untolerant model explained", untolerated, timeout=90)
        assert st["phase"] == "Pending" and "Unschedulable" in st["message"]
    finally:
        stack.kubectl("delete", "node", node, "--wait=false", check=False)


def _rolled_back_with(stack: Stack, namespace: str, name: str, reason: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = status(stack, namespace, name)
        return st if st.get("phase") in ("RollingBack", "RolledBack") and reason in st.get("message", "") + \
            json.dumps(st.get("history", [])[:1]) else None

    # far inside the 10-minute progress deadline: only the pod's own report can have rolled it back
    result: dict[str, Any] = wait_for(f"{name} rolled back for {reason}", done, timeout=120)
    return result


def test_canary_that_never_pulls_or_crash_loops_is_rolled_back_with_the_containers_reason(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a model serving 1.0.0 with a 10-minute progress deadline
    apply(stack, namespace, md_manifest("faulty", "1.0.0", rollout=ROLLOUT))
    wait_for("stable", lambda: status(stack, namespace, "faulty").get("phase") == "Stable", timeout=90)

    # when 1.1.0's image never pulls
    apply(stack, namespace, md_manifest("faulty", "1.1.0", rollout=ROLLOUT,
                                        runtime={"image": NEVER_PULLS_IMAGE}))
    st = _rolled_back_with(stack, namespace, "faulty", "ImagePullBackOff")
    # then it is rolled back with the kubelet's reason and message in status ...
    entry = st["history"][0]
    assert entry["version"] == "1.1.0" and entry["result"] == "RolledBack"
    assert "ImagePullBackOff" in entry["reason"] and f'Back-off pulling image \\"{NEVER_PULLS_IMAGE}\\"' in \
        json.dumps(entry["reason"])
    assert st["stable"]["version"] == "1.0.0"
    # ... and in the evidence record
    evidence = stack.kubectl("get", "configmap", entry["incident"], "-n", namespace, "-o", "json").stdout
    assert "ImagePullBackOff" in evidence

    # when 1.2.0's container crash-loops
    apply(stack, namespace, md_manifest("faulty", "1.2.0", rollout=ROLLOUT, runtime={"image": CRASH_LOOP_IMAGE}))
    st = _rolled_back_with(stack, namespace, "faulty", "CrashLoopBackOff")
    entry = st["history"][0]
    assert entry["version"] == "1.2.0"
    assert "CrashLoopBackOff" in entry["reason"] and "3 restarts, last exit Error, exit code 1" in entry["reason"]
    evidence = stack.kubectl("get", "configmap", entry["incident"], "-n", namespace, "-o", "json").stdout
    assert "CrashLoopBackOff" in evidence


def test_progress_deadline_counts_from_the_moment_the_canary_is_scheduled(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a GPU model serving on a pool's only node (2 GPUs), with a 20-second progress deadline
    node = f"gpu-{namespace}"[:63]
    _gpu_node(stack, node, namespace, gpus="2")
    big = f"gpu8-{namespace}"[:63]
    try:
        manifest = _gpu_model("waits", namespace, "1")
        manifest["spec"]["rollout"]["progressDeadline"] = "20s"
        apply(stack, namespace, manifest)
        wait_for("stable", lambda: status(stack, namespace, "waits").get("phase") == "Stable", timeout=90)
        # when 1.1.0 needs 4 GPUs per pod, which no node of the pool has
        canary = _gpu_model("waits", namespace, "4")
        canary["spec"]["model"]["version"] = "1.1.0"
        canary["spec"]["rollout"]["progressDeadline"] = "20s"
        apply(stack, namespace, canary)

        # then the canary waits for a node, saying why, well past its 20-second deadline
        def waited_past_deadline() -> dict[str, Any] | None:
            st = status(stack, namespace, "waits")
            started = st.get("canaryStartedAt")
            if not started or "Insufficient nvidia.com/gpu" not in st.get("message", ""):
                return None
            age = datetime.now(UTC) - datetime.fromisoformat(started.replace("Z", "+00:00"))
            return st if age.total_seconds() > 30 else None

        st = wait_for("canary waiting for a node past its deadline", waited_past_deadline, timeout=90)
        assert st["phase"] == "Progressing" and st["canary"]["version"] == "1.1.0"
        # when a node with 8 GPUs joins the pool
        _gpu_node(stack, big, namespace, gpus="8")
        # then the canary is scheduled there, becomes Ready and takes its first step: never rolled back
        st = wait_for("canary at its first step",
                      lambda: (s := status(stack, namespace, "waits")).get("canaryWeight", 0) > 0 and s, timeout=90)
        assert st["canary"]["version"] == "1.1.0"
        assert not [h for h in st.get("history", []) if h["version"] == "1.1.0"]
    finally:
        stack.kubectl("delete", "node", node, big, "--wait=false", check=False)
