"""Level-triggered children: what someone else deletes or edits in a sandbox comes back, without a restart,
and changes made while the operator was cut from the API server are all reconciled once it is back.

The operator runs as its own process against the real API server; the objects are deleted and edited
with kubectl as a person (or another controller) would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.runtime.helpers import apply, condition, md_manifest, patch_spec, wait_phase
from tollgate_testkit.relay import Relay, relayed_kubeconfig
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for


def _get(stack: Stack, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    res = stack.kubectl(*args, check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def _ready_replicas(stack: Stack, namespace: str, name: str) -> int:
    dep = _get(stack, "deployment", name, namespace) or {}
    return int((dep.get("status") or {}).get("readyReplicas") or 0)


def _restored_events(stack: Stack, namespace: str, md: str) -> list[str]:
    out = json.loads(stack.kubectl("get", "events", "-n", namespace, "-o", "json",
                                   "--field-selector", f"involvedObject.name={md},reason=Restored").stdout)
    return [e["message"] for e in out["items"]]


def test_deleted_and_hand_edited_children_come_back_without_a_restart(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a Ready ModelDeployment and its sandbox
    apply(stack, namespace, md_manifest("drift", "1.0.0"))
    sandbox = wait_phase(stack, namespace, "drift", "Stable")["sandboxNamespace"]
    stable = _get(stack, "deployment", "drift-stable", sandbox)
    assert stable is not None
    # when someone deletes the stable Deployment, the default-deny NetworkPolicy and the quota,
    # scales the Service's selector away and lifts Pod Security enforcement on the namespace
    stack.kubectl("delete", "deployment", "drift-stable", "-n", sandbox)
    stack.kubectl("delete", "networkpolicy", "default-deny", "-n", sandbox)
    stack.kubectl("delete", "resourcequota", "tollgate-quota", "-n", sandbox)
    stack.kubectl("patch", "service", "drift", "-n", sandbox, "--type", "merge",
                  "-p", json.dumps({"spec": {"selector": {"app": "elsewhere"}}}))
    stack.kubectl("label", "namespace", sandbox, "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    # then each comes back as Tollgate applied it, while the same operator process runs
    wait_for("the stable Deployment back and serving",
             lambda: _ready_replicas(stack, sandbox, "drift-stable") == 4, timeout=60)
    wait_for("default-deny back", lambda: _get(stack, "networkpolicy", "default-deny", sandbox), timeout=30)
    wait_for("the quota back", lambda: _get(stack, "resourcequota", "tollgate-quota", sandbox), timeout=30)
    wait_for("the Service selector back", lambda: "elsewhere" not in json.dumps(
        (_get(stack, "service", "drift", sandbox) or {}).get("spec", {}).get("selector")), timeout=30)
    wait_for("Pod Security enforcement back", lambda: ((_get(stack, "namespace", sandbox) or {})
                                                        .get("metadata", {}).get("labels", {})
                                                        .get("pod-security.kubernetes.io/enforce")) == "restricted",
             timeout=30)
    assert operator.proc is not None and operator.proc.poll() is None
    # and an Event on the ModelDeployment says what was restored, one per object
    messages = wait_for("five Restored events", lambda: (m if len(m := _restored_events(stack, namespace, "drift"))
                                                           >= 5 else None), timeout=30)
    text = "\n".join(messages)
    for what in ("Deployment", "default-deny", "tollgate-quota", "Service", "Namespace"):
        assert what in text, text
    # and the ModelDeployment is still Ready
    assert condition(wait_phase(stack, namespace, "drift", "Stable"), "Ready") == "True"


@pytest.fixture
def relayed_operator(stack: Stack, namespace: str, tmp_path: Path) -> Iterator[tuple[Relay, OperatorProcess]]:
    relay, kubeconfig = relayed_kubeconfig(stack.kubeconfig, tmp_path / "relayed.kubeconfig")
    op = OperatorProcess(str(kubeconfig), prometheus_url=stack.prometheus.url,
                         namespaces=[namespace, f"{namespace}-*"], extra_args=["--health-grace", "600"]).start()
    yield relay, op
    relay.cut()
    op.stop()


def test_everything_changed_while_the_watches_were_cut_is_reconciled(
        stack: Stack, namespace: str, relayed_operator: tuple[Relay, OperatorProcess]) -> None:
    relay, op = relayed_operator
    # given two Ready ModelDeployments, served by an operator that reaches the API server through a relay
    for name in ("cut-a", "cut-b"):
        apply(stack, namespace, md_manifest(name, "1.0.0"))
    sandbox_a = wait_phase(stack, namespace, "cut-a", "Stable")["sandboxNamespace"]
    sandbox_b = wait_phase(stack, namespace, "cut-b", "Stable")["sandboxNamespace"]
    # when the operator is cut off (every watch and request breaks)
    relay.cut()
    # and meanwhile a Deployment and a NetworkPolicy are deleted, a spec changes and a new one appears
    stack.kubectl("delete", "deployment", "cut-a-stable", "-n", sandbox_a)
    stack.kubectl("delete", "networkpolicy", "default-deny", "-n", sandbox_a)
    patch_spec(stack, namespace, "cut-b", {"replicas": 2})
    apply(stack, namespace, md_manifest("cut-c", "1.0.0"))
    # and the connection comes back
    relay.start()
    # then everything is reconciled by the same process: deleted objects are back,
    wait_for("cut-a's stable Deployment back", lambda: _ready_replicas(stack, sandbox_a, "cut-a-stable") == 4,
             timeout=90)
    wait_for("cut-a's default-deny back", lambda: _get(stack, "networkpolicy", "default-deny", sandbox_a),
             timeout=30)
    # the changed spec is applied and observed,
    def b_done() -> bool:
        md = stack.md(namespace, "cut-b")
        st = md.get("status") or {}
        return (st.get("observedGeneration") == md["metadata"]["generation"]
                and (_get(stack, "deployment", "cut-b-stable", sandbox_b) or {}).get("spec", {}).get("replicas") == 2)
    wait_for("cut-b at 2 replicas and observed", b_done, timeout=90)
    # the new one is Ready, and the first is still Ready
    assert condition(wait_phase(stack, namespace, "cut-c", "Stable", timeout=90), "Ready") == "True"
    assert condition(wait_phase(stack, namespace, "cut-a", "Stable"), "Ready") == "True"
    assert op.proc is not None and op.proc.poll() is None
