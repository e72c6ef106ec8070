"""spec.autoscaling on the real control plane (issue 19): the real kube-controller-manager's HPA controller
owns the stable track's replicas, the operator (its own process) never writes them, and the canary's
count follows the stable track's new size.

No metrics server runs here, so the HPA controller computes no metric; it still holds its target within
[minReplicas, maxReplicas] before it asks for one (kube-controller-manager's
pkg/controller/podautoscaler/horizontal.go, reconcileAutoscaler: "Current number of replicas below
Spec.MinReplicas"). So raising minReplicas through the spec is what makes the HPA scale the stable track.
The API server's audit log shows who wrote the stable Deployment: the HPA controller through the scale
subresource, and nobody else.
"""

from __future__ import annotations

import json
import time
from typing import Any

from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

HPA_AGENT = "horizontal-pod-autoscaler"
"""The HPA controller's user agent ends with its client name (kube-controller-manager/<version> .../...)."""
SYNC_PERIODS = 5
"""HPA sync periods (3s in the testkit) watched after the scale for a second round of writes."""


def _autoscaled(name: str, version: str, **autoscaling: Any) -> dict[str, Any]:
    # a canary that holds at 10% (a long pause, no analysis), so the HPA can move stable under it; replicas 2
    # is not used with autoscaling (an operator that wrote it would fight the HPA from 18 back to 2)
    return md_manifest(name, version, replicas=2, autoscaling={"minReplicas": 2, "maxReplicas": 20, **autoscaling},
                       rollout={"steps": [{"weight": 10, "pause": "30m", "analysis": False}, {"weight": 100}],
                                "progressDeadline": "60s"},
                       slos=[])


def _deployment(stack: Stack, sandbox: str, name: str) -> dict[str, Any]:
    out = stack.kubectl("get", "deployment", name, "-n", sandbox, "-o", "json", "--show-managed-fields",
                        check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _replicas(stack: Stack, sandbox: str, name: str) -> int | None:
    dep = _deployment(stack, sandbox, name)
    return (dep.get("spec") or {}).get("replicas") if dep else None


def _writes_to(sandbox: str, deployment: str, since: str, kubeconfig: str) -> list[audit.Request]:
    """Successful writes to one Deployment since `since` (the deployment controller's status writes included)."""
    return [r for r in audit.writes(audit.read(audit_log(kubeconfig), since=since))
            if r.resource == "deployments" and r.namespace == sandbox and r.name == deployment and r.code < 400]


def test_the_hpa_scales_the_stable_track_during_a_canary_and_the_operator_never_fights_it(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given an autoscaled model (HPA 2..20) serving 1.0.0: the HPA controller took the stable track to 2
    apply(stack, namespace, _autoscaled("scaled", "1.0.0"))
    st = wait_phase(stack, namespace, "scaled", "Stable")
    sandbox = st["sandboxNamespace"]
    hpa = json.loads(stack.kubectl("get", "hpa", "scaled-stable", "-n", sandbox, "-o", "json").stdout)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "scaled-stable"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 20)
    wait_for("stable at 2", lambda: _replicas(stack, sandbox, "scaled-stable") == 2, timeout=60)

    # and 1.1.0 holding at its 10% step: ceil(2 x 10 / 90) = 1 canary pod beside 2 stable ones
    apply(stack, namespace, _autoscaled("scaled", "1.1.0"))
    wait_for("canary at 10%", lambda: status(stack, namespace, "scaled").get("canaryWeight") == 10, timeout=90)
    assert _replicas(stack, sandbox, "scaled-canary") == 1

    # when the HPA's minReplicas is raised to 18 through the spec, mid-canary
    mark = audit.now_marker()
    patch_spec(stack, namespace, "scaled", {"autoscaling": {"minReplicas": 18, "maxReplicas": 20}})

    # then the HPA controller scales the stable track to 18 ...
    wait_for("stable at 18", lambda: _replicas(stack, sandbox, "scaled-stable") == 18, timeout=90)
    # ... and the canary follows: ceil(18 x 10 / 90) = 2 pods, and 2 of 20 Ready pods is the step's 10%
    wait_for("canary at 2", lambda: _replicas(stack, sandbox, "scaled-canary") == 2, timeout=60)

    def honest() -> dict[str, Any] | None:
        s = status(stack, namespace, "scaled")
        return s if s.get("canaryShare") == 10.0 else None

    st = wait_for("the 10% step measured at 10%", honest, timeout=90)
    assert st["canaryWeight"] == 10 and st["phase"] == "Progressing"
    assert st["steps"][0]["plannedShare"] == 10.0

    # and in the API server's audit log, over several HPA sync periods, the stable Deployment was written by
    # the HPA controller's scale only (2 -> 18 once), never by the operator: no ping-pong
    time.sleep(3 * SYNC_PERIODS)
    assert _replicas(stack, sandbox, "scaled-stable") == 18
    writes = _writes_to(sandbox, "scaled-stable", mark, stack.kubeconfig)
    by_hpa = [w for w in writes if HPA_AGENT in w.user_agent]
    by_operator = audit.by_operator(writes)
    assert by_hpa and all(w.subresource == "scale" and w.verb == "update" for w in by_hpa), writes
    assert len(by_hpa) == 1, [(w.at, w.user_agent, w.verb, w.subresource) for w in writes]
    assert not by_operator, [(w.at, w.user_agent, w.verb, w.subresource) for w in by_operator]
    # the canary is the operator's to size: it resized it, and nobody else wrote its spec
    canary_writes = [w for w in _writes_to(sandbox, "scaled-canary", mark, stack.kubeconfig)
                     if w.subresource != "status"]
    assert canary_writes and all(w.user_agent.startswith(audit.OPERATOR_AGENTS) for w in canary_writes), \
        canary_writes


def test_turning_autoscaling_on_hands_the_replicas_over_without_losing_pods(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a model on 6 fixed replicas, its stable Deployment's count set by the operator's applies
    apply(stack, namespace, md_manifest("handover", "1.0.0", replicas=6, slos=[],
                                        rollout={"steps": [{"weight": 50, "analysis": False}, {"weight": 100}]}))
    st = wait_phase(stack, namespace, "handover", "Stable")
    sandbox = st["sandboxNamespace"]
    assert _replicas(stack, sandbox, "handover-stable") == 6
    mark = audit.now_marker()
    # when autoscaling 2..10 is turned on
    patch_spec(stack, namespace, "handover", {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}})
    wait_for("the HPA", lambda: stack.kubectl("get", "hpa", "handover-stable", "-n", sandbox,
                                                check=False).returncode == 0, timeout=60)
    # then, several HPA sync periods later, the stable track still has its 6 pods: the count went to the HPA
    # as it was (6 is within 2..10, so the HPA keeps it), not reset to the API server's default of 1
    time.sleep(3 * SYNC_PERIODS)
    dep = _deployment(stack, sandbox, "handover-stable")
    assert dep["spec"]["replicas"] == 6
    assert dep["metadata"]["annotations"]["tollgate.dev/autoscaled"] == "true"
    managers = {m["manager"]: m for m in dep["metadata"]["managedFields"]}
    assert "f:replicas" not in json.dumps(managers["tollgate"].get("fieldsV1", {}).get("f:spec", {}))
    # and no write of the HPA controller was needed to get there
    writes = _writes_to(sandbox, "handover-stable", mark, stack.kubeconfig)
    assert not [w for w in writes if HPA_AGENT in w.user_agent], writes
