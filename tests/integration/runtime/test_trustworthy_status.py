"""Status a platform team can trust, on the real control plane with the operator as its own process:
Ready with the gatewayAPI router means a Gateway serves the route, and `kubectl get md` never shows
Pending for an object that is Stalled past its deadline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from integration.runtime.helpers import apply, condition, md_manifest, status, wait_phase
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

GATEWAY = {"name": "inference", "namespace": "gateways"}


def _condition(st: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions", []) if c["type"] == type_), None)


def _until(stack: Stack, namespace: str, name: str, what: str, pred: Any, timeout: float = 20) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = status(stack, namespace, name)
        return st if pred(st) else None

    result: dict[str, Any] = wait_for(what, check, timeout=timeout, interval=0.25)
    return result


def _accept(stack: Stack, sandbox: str, route: str, *, resolved: bool = True) -> None:
    """Write the route's status as a Gateway controller does (there is none in this control plane)."""
    obj = json.loads(stack.kubectl("get", "httproute", route, "-n", sandbox, "-o", "json").stdout)
    gen = obj["metadata"]["generation"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def cond(type_: str, ok: bool, reason: str) -> dict[str, Any]:
        return {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": reason,
                "observedGeneration": gen, "lastTransitionTime": now}

    parents = [{"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", **GATEWAY},
                "controllerName": "example.net/gateway-controller",
                "conditions": [cond("Accepted", True, "Accepted"),
                               cond("ResolvedRefs", resolved, "ResolvedRefs" if resolved else "BackendNotFound")]}]
    stack.kubectl("patch", "httproute", route, "-n", sandbox, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"parents": parents}}))


def test_gateway_api_route_is_ready_only_when_its_gateway_accepted_it(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a ModelDeployment routed through a Gateway that does not exist (no controller answers)
    apply(stack, namespace, md_manifest("gw", "1.0.0", traffic={
        "router": "gatewayAPI", "gatewayAPI": {"parentRefs": [GATEWAY]}}))
    wait_phase(stack, namespace, "gw", "Stable")
    # then it is not Ready: its pods run, but nothing serves the route; a condition names the parent
    st = _until(stack, namespace, "gw", "RouteAccepted=False",
                lambda s: (_condition(s, "RouteAccepted") or {}).get("status") == "False")
    assert condition(st, "Ready") == "False"
    route_cond = _condition(st, "RouteAccepted")
    assert route_cond is not None and "Gateway gateways/inference" in route_cond["message"], route_cond
    assert "no status from a Gateway controller" in route_cond["message"]
    sandbox = st["sandboxNamespace"]
    # when the Gateway's controller accepts the route but cannot resolve its backends
    _accept(stack, sandbox, "gw", resolved=False)
    # then still not Ready, and the condition carries the controller's reason
    st = _until(stack, namespace, "gw", "the ResolvedRefs reason shown",
                lambda s: "BackendNotFound" in ((_condition(s, "RouteAccepted") or {}).get("message") or ""))
    assert condition(st, "Ready") == "False"
    # when the controller accepts it and resolves every backend
    _accept(stack, sandbox, "gw", resolved=True)
    # then it is Ready: serving
    st = _until(stack, namespace, "gw", "Ready", lambda s: condition(s, "Ready") == "True")
    assert condition(st, "RouteAccepted") == "True"
    stack.kubectl("wait", "--for=condition=Ready", "modeldeployment/gw", "-n", namespace, "--timeout=10s")


def test_a_first_version_past_its_deadline_shows_stalled_in_get_md(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a first version whose pods never become Ready, deadline 10s
    apply(stack, namespace, md_manifest("late", "1.0.0", runtime={"image": NEVER_READY_IMAGE},
                                        rollout={"steps": [{"weight": 50}, {"weight": 100}],
                                                 "progressDeadline": "10s"}))
    # when the deadline passes
    st = wait_phase(stack, namespace, "late", "Stalled", timeout=40)
    # then phase, conditions and `kubectl get md` agree: Stalled past the deadline, not Pending
    stalled = _condition(st, "Stalled")
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "ProgressDeadlineExceeded"
    assert condition(st, "Reconciling") is None
    row = stack.kubectl("get", "md", "late", "-n", namespace, "--no-headers").stdout.split()
    assert row[1] == "Stalled", row
    assert "not Ready within 10s" in st["message"]


def test_a_decision_that_raises_ends_stalled_with_its_reason_in_status_and_log(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    import time

    from tollgate_testkit import audit
    from tollgate_testkit.controlplane import audit_log

    # given a canary waiting at an approval gate
    apply(stack, namespace, md_manifest("odd", "1.0.0", rollout={
        "steps": [{"weight": 50, "approval": "required"}, {"weight": 100}], "progressDeadline": "20s"}))
    wait_phase(stack, namespace, "odd", "Stable")
    stack.kubectl("patch", "modeldeployment", "odd", "-n", namespace, "--type", "merge",
                  "-p", json.dumps({"spec": {"model": {"version": "1.1.0"}}}))
    wait_phase(stack, namespace, "odd", "AwaitingApproval", timeout=60)
    # when someone hand-edits its status to a step the plan does not have (the engine cannot decide on it)
    stack.kubectl("patch", "modeldeployment", "odd", "-n", namespace, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"currentStep": 7}}))
    # then it is Stalled, with the reason in status (kstatus: Failed), not retried forever as Progressing
    st = wait_phase(stack, namespace, "odd", "Stalled", timeout=30)
    stalled = _condition(st, "Stalled")
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "DecisionFailed", stalled
    assert "internal error while deciding: IndexError" in st["message"], st["message"]
    assert condition(st, "Ready") == "False"
    # and the operator's log names the object and the reason, with the traceback
    wait_for("the log line", lambda: "decision failed; the ModelDeployment is Stalled" in operator.log_path.read_text(),
             timeout=10)
    log = operator.log_path.read_text()
    assert "IndexError" in log and f"{namespace}/odd" in log
    # and no retry loop: no request about it over the next seconds
    time.sleep(2)
    mark = audit.now_marker()
    time.sleep(6)
    reqs = [r for r in audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark))
            if r.namespace == namespace and r.resource == "modeldeployments"]
    assert reqs == [], reqs
