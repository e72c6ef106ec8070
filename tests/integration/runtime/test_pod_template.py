"""spec.podTemplate on the real control plane (issue 19): an overlay reaches every track's pods, and a pod that
breaks Pod Security restricted cannot run in a sandbox, whoever wrote it.

The refusals at admission (hostNetwork, hostPID, root, privileged, added capabilities, hostPath, sidecars,
Tollgate's labels) are API-server cases in tests/integration/api/test_api_server_validation.py.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from integration.runtime.helpers import apply, md_manifest, status, wait_phase
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

OVERLAY = {
    "metadata": {"labels": {"team": "fraud"}, "annotations": {"example.com/owner": "fraud-team"}},
    "spec": {
        "containers": [{
            "name": "model-server",
            "env": [{"name": "STORE_KEY", "valueFrom": {"secretKeyRef": {"name": "store", "key": "key",
                                                                          "optional": True}}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/models"}],
        }],
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
        "terminationGracePeriodSeconds": 45,
    },
}


def _pods(stack: Stack, sandbox: str, track: str) -> list[dict[str, Any]]:
    out = stack.kubectl("get", "pods", "-n", sandbox, "-l", f"tollgate.dev/track={track}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_the_overlay_reaches_the_pods_of_every_track(stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a model with an overlay: a label, an annotation, a variable from a Secret, a model cache volume
    rollout = {"steps": [{"weight": 50, "pause": "30m", "analysis": False}, {"weight": 100}],
               "progressDeadline": "60s"}
    apply(stack, namespace, md_manifest("overlaid", "1.0.0", replicas=2, slos=[], rollout=rollout,
                                        podTemplate=OVERLAY))
    st = wait_phase(stack, namespace, "overlaid", "Stable")
    sandbox = st["sandboxNamespace"]
    # when a canary starts
    apply(stack, namespace, md_manifest("overlaid", "1.1.0", replicas=2, slos=[], rollout=rollout,
                                        podTemplate=OVERLAY))
    wait_for("canary at 50%", lambda: status(stack, namespace, "overlaid").get("canaryWeight") == 50, timeout=90)
    # then the pods of both tracks run with the overlay, restricted as before
    for track in ("stable", "canary"):
        pods = wait_for(f"{track} pods", lambda t=track: _pods(stack, sandbox, t) or None, timeout=60)
        for pod in pods:
            assert pod["metadata"]["labels"]["team"] == "fraud"
            assert pod["metadata"]["labels"]["tollgate.dev/track"] == track
            assert pod["metadata"]["annotations"]["example.com/owner"] == "fraud-team"
            spec = pod["spec"]
            assert spec["terminationGracePeriodSeconds"] == 45
            assert {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}} in spec["volumes"]
            (container,) = spec["containers"]
            env = {e["name"]: e for e in container["env"]}
            assert env["STORE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "store"
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/models"}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert not spec.get("hostNetwork")


def test_a_pod_that_breaks_restricted_cannot_run_in_a_sandbox_even_when_written_by_hand(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a sandbox (Pod Security restricted enforced on its namespace)
    apply(stack, namespace, md_manifest("guarded", "1.0.0", replicas=1, slos=[]))
    sandbox = wait_phase(stack, namespace, "guarded", "Stable")["sandboxNamespace"]
    labels = json.loads(stack.kubectl("get", "namespace", sandbox, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # when someone with full rights (not the operator, not through the schema) creates a Deployment there whose
    # pods use the host's network
    rogue = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "rogue", "namespace": sandbox},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rogue"}},
                      "template": {"metadata": {"labels": {"app": "rogue"}},
                                   "spec": {"hostNetwork": True,
                                            "containers": [{"name": "c", "image": "registry.example/x:1"}]}}}}
    stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(rogue))

    # then the API server refuses its pods, saying which restricted rules they break; none runs
    def refused() -> str | None:
        rs = json.loads(stack.kubectl("get", "replicasets", "-n", sandbox, "-l", "app=rogue", "-o", "json").stdout)
        for item in rs["items"]:
            for c in (item.get("status") or {}).get("conditions") or []:
                if c.get("type") == "ReplicaFailure" and "violates PodSecurity" in c.get("message", ""):
                    return str(c["message"])
        return None

    message = wait_for("the pods refused by Pod Security", refused, timeout=60)
    assert 'restricted:v1.36' in message and "host namespaces (hostNetwork=true)" in message
    assert _pods_named(stack, sandbox, "rogue") == []


def _pods_named(stack: Stack, sandbox: str, app: str) -> list[dict[str, Any]]:
    out = stack.kubectl("get", "pods", "-n", sandbox, "-l", f"app={app}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items
