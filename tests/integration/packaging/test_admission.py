"""The chart's ValidatingAdmissionPolicies, enforced by the real API server.

Confinement: the operator's own identity (a token of the chart's ServiceAccount) calling the API server
directly, bypassing Tollgate's code, cannot write into a namespace without Tollgate's ownership label,
although RBAC alone would let it. Trusted approvals: a control annotation naming someone else is refused,
and the approver the operator records is the user the API server authenticated."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cli.plugin import ok, tollgate
from integration.cluster import Cluster
from integration.packaging import install
from integration.runtime.helpers import apply, md_manifest, wait_phase
from tollgate_testkit.stack import OperatorProcess, Stack

OWNER_LABEL = "tollgate.dev/owner-uid"


@pytest.fixture(scope="module")
def installed(cluster: Cluster, crds: list[str], tool_bin: Path) -> Iterator[install.Installed]:
    suffix = uuid.uuid4().hex[:6]
    inst = install.install(cluster, tool_bin, f"tollgate-adm-{suffix}", f"tga-{suffix}")
    yield inst
    install.uninstall(cluster, inst)


def kubectl_as(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, text=True,
                          capture_output=True, timeout=60, check=False)


def network_policy(namespace: str) -> str:
    return json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": f"default-deny-{uuid.uuid4().hex[:4]}", "namespace": namespace},
                       "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})


@pytest.fixture(scope="module")
def operator_identity(cluster: Cluster, installed: install.Installed,
                      tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with a token of the chart's ServiceAccount, once the policy is in force."""
    kc = install.token_kubeconfig(cluster, installed, tmp_path_factory.mktemp("sa") / "sa.kubeconfig")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a new policy takes a moment to reach the admission chain
        res = kubectl_as(kc, "create", "--dry-run=server", "-f", "-", stdin=network_policy("kube-system"))
        if "ValidatingAdmissionPolicy" in res.stderr:
            return kc
        time.sleep(0.5)
    raise AssertionError(f"the confinement policy never took effect: {res.stdout} {res.stderr}")


@pytest.mark.parametrize("target", ["kube-system", "tenant"])
def test_the_operator_identity_cannot_write_into_a_namespace_without_the_ownership_label(
        cluster: Cluster, installed: install.Installed, operator_identity: Path, namespace: str,
        target: str) -> None:
    ns = namespace if target == "tenant" else target
    # given RBAC alone would allow these writes (it grants them cluster-wide)
    assert install.can_i(cluster, installed.user, "create", "networkpolicies.networking.k8s.io", "-n", ns)
    assert install.can_i(cluster, installed.user, "create", "configmaps", "-n", ns)
    # when the operator's identity writes there directly, bypassing Tollgate's code
    attempts = {
        "NetworkPolicy": kubectl_as(operator_identity, "create", "-f", "-", stdin=network_policy(ns)),
        "ConfigMap": kubectl_as(operator_identity, "create", "configmap", "stolen", "-n", ns,
                                "--from-literal=k=v"),
        "label the namespace": kubectl_as(operator_identity, "label", "namespace", ns, f"{OWNER_LABEL}=mine",
                                          "--dry-run=server"),
    }
    if target != "kube-system":  # the API server never deletes kube-system anyway (NamespaceLifecycle)
        attempts["delete the namespace"] = kubectl_as(operator_identity, "delete", "namespace", ns,
                                                      "--dry-run=server")
    # then the API server's admission policy refuses every one, saying why
    for what, res in attempts.items():
        assert res.returncode != 0, (what, res.stdout)
        assert "ValidatingAdmissionPolicy" in res.stderr and "confine-operator" in res.stderr, (what, res.stderr)
        assert "tollgate.dev/owner-uid" in res.stderr, (what, res.stderr)


def test_the_operator_identity_may_create_and_use_a_labelled_sandbox_and_write_evidence_beside_a_modeldeployment(
        cluster: Cluster, operator_identity: Path, namespace: str) -> None:
    sandbox = f"{namespace}-sbx"
    labelled = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": sandbox, "labels": {OWNER_LABEL: "uid-1"}}})
    assert kubectl_as(operator_identity, "create", "-f", "-", stdin=labelled).returncode == 0
    try:
        res = kubectl_as(operator_identity, "create", "-f", "-", stdin=network_policy(sandbox))
        assert res.returncode == 0, res.stderr
        evidence = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "md-incident-1", "namespace": namespace, "labels": {"tollgate.dev/evidence": "true"},
            "ownerReferences": [{"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment", "name": "md",
                                 "uid": "00000000-0000-0000-0000-000000000001"}]}, "data": {"k": "v"}})
        res = kubectl_as(operator_identity, "create", "--dry-run=server", "-f", "-", stdin=evidence)
        assert res.returncode == 0, res.stderr
    finally:
        res = kubectl_as(operator_identity, "delete", "namespace", sandbox, "--wait=false")
    assert res.returncode == 0, res.stderr  # a namespace it labelled, it may delete


def service_account_kubeconfig(cluster: Cluster, namespace: str, name: str, path: Path) -> Path:
    """A person, as far as the API server can tell: a ServiceAccount allowed to edit ModelDeployments."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    cluster.kubectl("create", "role", f"{name}-md", "-n", namespace, "--verb=get,list,watch,patch,update",
                    "--resource=modeldeployments.tollgate.dev")
    cluster.kubectl("create", "rolebinding", f"{name}-md", "-n", namespace, f"--role={name}-md",
                    f"--serviceaccount={namespace}:{name}")
    inst = install.Installed(namespace, "", name, [])
    return install.token_kubeconfig(cluster, inst, path)


def test_an_approval_naming_someone_else_is_refused_and_the_real_approver_is_recorded(
        cluster: Cluster, stack: Stack, installed: install.Installed, namespace: str, operator: OperatorProcess,
        tmp_path: Path) -> None:
    alice = service_account_kubeconfig(cluster, namespace, "alice", tmp_path / "alice")
    mallory = service_account_kubeconfig(cluster, namespace, "mallory", tmp_path / "mallory")
    # given a canary waiting at an approval gate
    manifest = md_manifest("fraud", "1.0.0", replicas=2, rollout={
        "steps": [{"weight": 50, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "60s"})
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, "fraud", "Stable")
    stack.kubectl("patch", "modeldeployment", "fraud", "-n", namespace, "--type", "merge", "-p",
                  json.dumps({"spec": {"model": {"version": "1.1.0", "uri": "s3://models/fraud/1.1.0"}}}))
    wait_phase(stack, namespace, "fraud", "AwaitingApproval", timeout=60)
    # when mallory writes an approval in alice's name, or in nobody's
    for value in ("system:serviceaccount:" + namespace + ":alice@2026-12-02T00:00:00Z", "ops-team"):
        res = kubectl_as(mallory, "annotate", "modeldeployment", "fraud", "-n", namespace,
                         f"tollgate.dev/approve={value}")
        # then the API server refuses it, telling her what to write
        assert res.returncode != 0, res.stdout
        assert "trusted-approvals" in res.stderr and f"system:serviceaccount:{namespace}:mallory" in res.stderr
    assert wait_phase(stack, namespace, "fraud", "AwaitingApproval")["canaryWeight"] == 0
    # when alice approves with the plugin (which writes her own name)
    ok(tollgate(alice, "approve", "fraud", "-n", namespace, "--wait", "--timeout", "60s"))
    st = wait_phase(stack, namespace, "fraud", "Succeeded", "Stable", timeout=90)
    # then status names alice, as the API server authenticated her
    who = f"system:serviceaccount:{namespace}:alice@"
    assert st["approvedBy"].startswith(who), st["approvedBy"]
    assert st["history"][0]["result"] == "Promoted"
    # and the history entry keeps her as the approver (it stays when the next canary resets approvedBy)
    assert st["history"][0]["approvedBy"] == st["approvedBy"]
