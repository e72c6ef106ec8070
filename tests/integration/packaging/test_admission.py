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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from integration.cli.plugin import ok, tollgate
from integration.cluster import Cluster
from integration.fixtures import release_namespace
from integration.packaging import install, tools
from integration.runtime.helpers import apply, md_manifest, wait_phase
from tollgate.engine.sandbox import default_sandbox_namespace
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack

OWNER_LABEL = "tollgate.dev/owner-uid"
POLICY_PROPAGATION = 30.0
"""Seconds a new, changed or removed policy binding may take to reach the API server's admission chain."""


def eventually(what: str, attempt: Callable[[], subprocess.CompletedProcess[str]],
               done: Callable[[subprocess.CompletedProcess[str]], bool]) -> subprocess.CompletedProcess[str]:
    """Repeat `attempt` until `done` says the admission chain answers as expected (a policy binding takes
    a moment to be picked up or dropped); the last answer is returned either way, for the test to assert."""
    deadline = time.monotonic() + POLICY_PROPAGATION
    while True:
        res = attempt()
        if done(res) or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


def refused_by(policy: str) -> Callable[[subprocess.CompletedProcess[str]], bool]:
    return lambda res: res.returncode != 0 and "ValidatingAdmissionPolicy" in res.stderr and policy in res.stderr


def admitted(res: subprocess.CompletedProcess[str]) -> bool:
    return res.returncode == 0


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
    """A kubeconfig with a token of the chart's ServiceAccount, once the policy is in force (waited for, not
    asserted: the tests assert what the API server answers, so they fail when the policy is missing)."""
    kc = install.token_kubeconfig(cluster, installed, tmp_path_factory.mktemp("sa") / "sa.kubeconfig")
    eventually("the confinement policy in force",
               lambda: kubectl_as(kc, "create", "--dry-run=server", "-f", "-", stdin=network_policy("kube-system")),
               refused_by("confine-operator"))
    return kc


def hook_job(namespace: str) -> str:
    """A Job like a hook's (spec.hooks): RBAC grants jobs cluster-wide, the policy confines them to sandboxes."""
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": f"hook-{uuid.uuid4().hex[:4]}", "namespace": namespace},
                       "spec": {"backoffLimit": 0, "template": {"spec": {
                           "restartPolicy": "Never", "containers": [{"name": "hook", "image": "busybox"}]}}}})


def operator_writes(kubeconfig: Path, ns: str, *dry_run: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """What a hostile spec (or a bug) would make the operator's identity do in namespace `ns`."""
    attempts = {
        "NetworkPolicy": kubectl_as(kubeconfig, "create", *dry_run, "-f", "-", stdin=network_policy(ns)),
        "Job": kubectl_as(kubeconfig, "create", *dry_run, "-f", "-", stdin=hook_job(ns)),
        "ConfigMap": kubectl_as(kubeconfig, "create", "configmap", f"stolen-{uuid.uuid4().hex[:4]}", "-n", ns,
                                "--from-literal=k=v", *dry_run),
        # RBAC cannot limit create by name: the policy confines the model-credentials copy to sandboxes
        "Secret": kubectl_as(kubeconfig, "create", "secret", "generic", "tollgate-model-credentials", "-n", ns,
                             "--from-literal=k=v", *dry_run),
        "label the namespace": kubectl_as(kubeconfig, "label", "namespace", ns, f"{OWNER_LABEL}=mine",
                                          "--dry-run=server"),
    }
    if ns != "kube-system":  # the API server never deletes kube-system anyway (NamespaceLifecycle)
        attempts["delete the namespace"] = kubectl_as(kubeconfig, "delete", "namespace", ns, "--dry-run=server")
    return attempts


@pytest.mark.parametrize("target", ["kube-system", "tenant"])
def test_the_operator_identity_cannot_write_into_a_namespace_without_the_ownership_label(
        cluster: Cluster, installed: install.Installed, operator_identity: Path, namespace: str,
        target: str) -> None:
    ns = namespace if target == "tenant" else target
    # given RBAC alone would allow these writes (it grants them cluster-wide)
    assert install.can_i(cluster, installed.user, "create", "networkpolicies.networking.k8s.io", "-n", ns)
    assert install.can_i(cluster, installed.user, "create", "configmaps", "-n", ns)
    assert install.can_i(cluster, installed.user, "create", "jobs.batch", "-n", ns)
    assert install.can_i(cluster, installed.user, "create", "secrets", "-n", ns)
    # when the operator's identity writes there directly, bypassing Tollgate's code
    attempts = operator_writes(operator_identity, ns)
    # then the API server's admission policy refuses every one, saying why
    for what, res in attempts.items():
        assert res.returncode != 0, (what, res.stdout)
        assert "ValidatingAdmissionPolicy" in res.stderr and "confine-operator" in res.stderr, (what, res.stderr)
        assert "tollgate.dev/owner-uid" in res.stderr, (what, res.stderr)


@pytest.mark.parametrize("target", ["kube-system", "tenant"])
def test_without_the_confinement_policy_the_same_writes_are_admitted(
        cluster: Cluster, installed: install.Installed, operator_identity: Path, namespace: str,
        target: str) -> None:
    """The negative control of the test above: what refuses those writes is the chart's policy, not RBAC
    or anything else (server-side dry runs: nothing is stored)."""
    ns = namespace if target == "tenant" else target
    binding = install.chart_object(installed, "ValidatingAdmissionPolicyBinding", "-confine-operator")
    # given the chart's binding of the confinement policy removed
    with install.removed(cluster, binding):
        # when the operator's identity makes the same writes
        eventually("the binding dropped", lambda: operator_writes(operator_identity, ns, "--dry-run=server")[
            "NetworkPolicy"], admitted)
        attempts = operator_writes(operator_identity, ns, "--dry-run=server")
        # then the API server admits every one
        for what, res in attempts.items():
            assert res.returncode == 0, (what, res.stderr)
    # and with the binding back, they are refused again
    res = eventually("the binding back", lambda: operator_writes(operator_identity, ns, "--dry-run=server")[
        "NetworkPolicy"], refused_by("confine-operator"))
    assert refused_by("confine-operator")(res), res.stderr


def test_the_operator_identity_may_create_and_use_a_labelled_sandbox_and_write_evidence_beside_a_modeldeployment(
        cluster: Cluster, operator_identity: Path, namespace: str) -> None:
    sandbox = f"{namespace}-sbx"
    labelled = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": sandbox, "labels": {OWNER_LABEL: "uid-1"}}})
    assert kubectl_as(operator_identity, "create", "-f", "-", stdin=labelled).returncode == 0
    try:
        res = kubectl_as(operator_identity, "create", "-f", "-", stdin=network_policy(sandbox))
        assert res.returncode == 0, res.stderr
        res = kubectl_as(operator_identity, "create", "--dry-run=server", "-f", "-", stdin=hook_job(sandbox))
        assert res.returncode == 0, res.stderr
        # the copy of model-delivery credentials, and no other Secret, even in its sandbox
        res = kubectl_as(operator_identity, "create", "secret", "generic", "tollgate-model-credentials", "-n",
                         sandbox, "--from-literal=AWS_ACCESS_KEY_ID=k", "--dry-run=server")
        assert res.returncode == 0, res.stderr
        res = kubectl_as(operator_identity, "create", "secret", "generic", "planted", "-n", sandbox,
                         "--from-literal=k=v", "--dry-run=server")
        assert res.returncode != 0 and "confine-operator" in res.stderr, res.stderr
        assert "writes no Secret but the sandbox copy of model credentials" in res.stderr, res.stderr
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


def approval_as(kubeconfig: Path, namespace: str, value: str, *identity: str) -> subprocess.CompletedProcess[str]:
    """An approval annotation on `fraud`, as a server-side dry run (admission runs, nothing is stored)."""
    return kubectl_as(kubeconfig, *identity, "annotate", "modeldeployment", "fraud", "-n", namespace,
                      "--overwrite", "--dry-run=server", f"tollgate.dev/approve={value}")


def waiting_modeldeployment(cluster: Cluster, namespace: str) -> None:
    """A ModelDeployment to annotate (no operator needed: admission judges the request, not the rollout)."""
    manifest = md_manifest("fraud", "1.0.0", replicas=2, rollout={
        "steps": [{"weight": 50, "approval": "required"}, {"weight": 100}], "progressDeadline": "60s"})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def test_without_the_trusted_approvals_policy_an_approval_in_someone_elses_name_is_admitted(
        cluster: Cluster, installed: install.Installed, namespace: str, tmp_path: Path) -> None:
    """The negative control of the approval test: what refuses mallory's approval in alice's name is the
    chart's policy, not RBAC (mallory may patch ModelDeployments)."""
    mallory = service_account_kubeconfig(cluster, namespace, "mallory", tmp_path / "mallory")
    waiting_modeldeployment(cluster, namespace)
    in_alices_name = f"system:serviceaccount:{namespace}:alice@2026-12-02T00:00:00Z"
    # given the policy in force, mallory's approval in alice's name is refused
    res = eventually("the policy in force", lambda: approval_as(mallory, namespace, in_alices_name),
                     refused_by("trusted-approvals"))
    assert refused_by("trusted-approvals")(res), (res.stdout, res.stderr)
    binding = install.chart_object(installed, "ValidatingAdmissionPolicyBinding", "-trusted-approvals")
    # when the chart's binding of the policy is removed
    with install.removed(cluster, binding):
        res = eventually("the binding dropped", lambda: approval_as(mallory, namespace, in_alices_name), admitted)
        # then the same request is admitted
        assert res.returncode == 0, res.stderr
    # and with the binding back, refused again
    res = eventually("the binding back", lambda: approval_as(mallory, namespace, in_alices_name),
                     refused_by("trusted-approvals"))
    assert refused_by("trusted-approvals")(res), (res.stdout, res.stderr)


def test_a_drill_asked_in_someone_elses_name_is_refused_and_in_ones_own_admitted(
        cluster: Cluster, installed: install.Installed, namespace: str, tmp_path: Path) -> None:
    """Who asked for a drill goes into status and history like an approver: the chart's policy guards the
    drill annotations the same way (the operator records their value as lastDrill.requestedBy, actedBy)."""
    mallory = service_account_kubeconfig(cluster, namespace, "mallory", tmp_path / "mallory")
    waiting_modeldeployment(cluster, namespace)
    for key in ("tollgate.dev/drill-kill-switch", "tollgate.dev/drill-rollback"):
        def drill_as(value: str, key: str = key) -> subprocess.CompletedProcess[str]:
            return kubectl_as(mallory, "annotate", "modeldeployment", "fraud", "-n", namespace, "--overwrite",
                              "--dry-run=server", f"{key}={value}")

        # when mallory asks for a drill in alice's name, then the API server refuses it
        res = eventually("the policy in force", lambda: drill_as(f"system:serviceaccount:{namespace}:alice@t1"),
                         refused_by("trusted-approvals"))
        assert refused_by("trusted-approvals")(res), (key, res.stdout, res.stderr)
        assert key in res.stderr and "drill" in res.stderr
        # and in her own name, it is admitted
        res = drill_as(f"system:serviceaccount:{namespace}:mallory@t1")
        assert admitted(res), (key, res.stderr)


@pytest.fixture
def approvers_group(cluster: Cluster, tool_bin: Path, namespace: str) -> Iterator[str]:
    """The chart's trusted-approvals policy rendered with `admission.trustedApprovals.group` set (a second
    release beside the module's, which stays in force), removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    group = f"tollgate-approvers-{suffix}"
    text = tools.render(tool_bin, release=f"tga-grp-{suffix}", namespace=f"tollgate-grp-{suffix}",
                        include_crds=False, values={"admission": {"trustedApprovals": {"group": group}}})
    policy = [m for m in tools.docs(text) if m["kind"].startswith("ValidatingAdmissionPolicy")
              and m["metadata"]["name"].endswith("-trusted-approvals")]
    assert len(policy) == 2, policy
    # alice and carol, as the API server authenticates them (impersonated by the admin), may patch
    # ModelDeployments in this namespace; RBAC lets both approve, only the policy tells them apart
    cluster.kubectl("create", "role", "md-editor", "-n", namespace, "--verb=get,patch",
                    "--resource=modeldeployments.tollgate.dev")
    cluster.kubectl("create", "rolebinding", "md-editor", "-n", namespace, "--role=md-editor",
                    "--user=alice", "--user=carol")
    with install.applied(cluster, policy):
        yield group


def test_with_a_group_set_only_its_members_may_approve(
        cluster: Cluster, installed: install.Installed, namespace: str, approvers_group: str) -> None:
    waiting_modeldeployment(cluster, namespace)
    admin = cluster.kubeconfig
    alice = ("--as=alice",)
    carol = ("--as=carol", f"--as-group={approvers_group}")
    # when alice, not in the group, approves in her own name
    res = eventually("the group policy in force", lambda: approval_as(admin, namespace, "alice@t1", *alice),
                     refused_by("trusted-approvals"))
    # then the API server refuses it, naming the group
    assert res.returncode != 0, res.stdout
    assert f"only members of group {approvers_group} " in res.stderr, res.stderr
    # when carol, a member, approves in her own name, it is admitted
    res = approval_as(admin, namespace, "carol@t1", *carol)
    assert res.returncode == 0, res.stderr
    # and membership does not let carol approve in alice's name
    res = approval_as(admin, namespace, "alice@t2", *carol)
    assert res.returncode != 0 and "must name who sets it" in res.stderr, (res.stdout, res.stderr)


def test_without_a_group_a_user_outside_any_group_may_approve_in_her_own_name(
        cluster: Cluster, installed: install.Installed, namespace: str) -> None:
    """The negative control of the group test: with the chart's default (no group), alice's own approval is
    admitted, so what refuses it above is the group rule."""
    waiting_modeldeployment(cluster, namespace)
    cluster.kubectl("create", "role", "md-editor", "-n", namespace, "--verb=get,patch",
                    "--resource=modeldeployments.tollgate.dev")
    cluster.kubectl("create", "rolebinding", "md-editor", "-n", namespace, "--role=md-editor", "--user=alice")
    res = eventually("admitted", lambda: approval_as(cluster.kubeconfig, namespace, "alice@t1", "--as=alice"),
                     admitted)
    assert res.returncode == 0, res.stderr


def create_with_sandbox(cluster: Cluster, namespace: str, sandbox: str | None) -> subprocess.CompletedProcess[str]:
    """A tenant's ModelDeployment naming `sandbox` as its sandbox (None: the default), as a server-side dry run
    (admission runs, nothing is stored), created as alice: RBAC lets her create ModelDeployments there."""
    manifest = md_manifest(f"md-{uuid.uuid4().hex[:4]}", "1.0.0",
                           **({"sandbox": {"namespace": sandbox}} if sandbox else {}))
    return kubectl_as(cluster.kubeconfig, "--as=alice", "create", "-n", namespace, "--dry-run=server", "-f", "-",
                      stdin=yaml.safe_dump(manifest))


@pytest.fixture
def tenant_alice(cluster: Cluster, namespace: str) -> str:
    cluster.kubectl("create", "role", "md-creator", "-n", namespace, "--verb=create,get",
                    "--resource=modeldeployments.tollgate.dev")
    cluster.kubectl("create", "rolebinding", "md-creator", "-n", namespace, "--role=md-creator", "--user=alice")
    return namespace


def test_an_explicit_sandbox_name_is_admitted_only_under_a_prefix_granted_to_the_tenants_namespace(
        cluster: Cluster, installed: install.Installed, tenant_alice: str) -> None:
    ns = tenant_alice
    # given a tenant namespace without a grant: alice names another team's future namespace
    res = eventually("the policy in force", lambda: create_with_sandbox(cluster, ns, "payments"),
                     refused_by("sandbox-grants"))
    # then the API server refuses it, naming the field, the value and the fix
    assert refused_by("sandbox-grants")(res), (res.stdout, res.stderr)
    assert "spec.sandbox.namespace payments is not granted to namespace " + ns in res.stderr, res.stderr
    assert "grants no explicit sandbox names" in res.stderr and "tollgate.dev/sandbox-prefixes" in res.stderr
    # when the platform team grants the prefix <ns>-sbx-
    cluster.kubectl("annotate", "namespace", ns, f"tollgate.dev/sandbox-prefixes={ns}-sbx-")
    # then a name under it is admitted, and one outside it still refused, naming the prefix
    res = create_with_sandbox(cluster, ns, f"{ns}-sbx-fraud")
    assert admitted(res), res.stderr
    res = create_with_sandbox(cluster, ns, "payments")
    assert refused_by("sandbox-grants")(res) and f"names starting with {ns}-sbx-" in res.stderr, res.stderr
    # and the default sandbox (no spec.sandbox.namespace) needs no grant
    res = create_with_sandbox(cluster, ns, None)
    assert admitted(res), res.stderr


def test_without_the_sandbox_grants_policy_an_ungranted_sandbox_name_is_admitted(
        cluster: Cluster, installed: install.Installed, tenant_alice: str) -> None:
    """The negative control: what refuses alice's name above is the chart's policy, not RBAC or the CRD."""
    ns = tenant_alice
    res = eventually("the policy in force", lambda: create_with_sandbox(cluster, ns, "payments"),
                     refused_by("sandbox-grants"))
    assert refused_by("sandbox-grants")(res), (res.stdout, res.stderr)
    binding = install.chart_object(installed, "ValidatingAdmissionPolicyBinding", "-sandbox-grants")
    # when the chart's binding is removed, the same request is admitted
    with install.removed(cluster, binding):
        res = eventually("the binding dropped", lambda: create_with_sandbox(cluster, ns, "payments"), admitted)
        assert res.returncode == 0, res.stderr
    # and with the binding back, refused again
    res = eventually("the binding back", lambda: create_with_sandbox(cluster, ns, "payments"),
                     refused_by("sandbox-grants"))
    assert refused_by("sandbox-grants")(res), (res.stdout, res.stderr)


@pytest.mark.parametrize("name", ["fraud", "f" * 60], ids=["whole", "cut-to-fit"])
def test_a_sandbox_name_shaped_like_a_default_one_is_refused_by_the_crd(
        cluster: Cluster, crds: list[str], namespace: str, name: str) -> None:
    # given another ModelDeployment's default sandbox name (<namespace>-<name>-<6 hex>, or its cut head
    # and 16 hex when that would not fit 63 characters)
    victim = default_sandbox_namespace(f"{namespace}-x", name)
    # when a tenant names it, as admin even (no policy involved: the CRD's own CEL rule)
    manifest = md_manifest("squat", "1.0.0", sandbox={"namespace": victim})
    res = kubectl_as(cluster.kubeconfig, "create", "-n", namespace, "--dry-run=server", "-f", "-",
                     stdin=yaml.safe_dump(manifest))
    # then the API server refuses it, saying why and what to do
    assert res.returncode != 0, res.stdout
    assert "spec.sandbox.namespace must not end in a dash and 6 to 16 hex digits" in res.stderr, res.stderr


MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


@pytest.fixture
def finalizer_policy(cluster: Cluster, tool_bin: Path, namespace: str) -> Iterator[list[dict[str, object]]]:
    """The chart's finalizer policy for a release watching `namespace` and its sandboxes, as helm renders it
    against an API server serving MutatingAdmissionPolicy v1; removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    text = tools.render(tool_bin, release=f"tgf-{suffix}", namespace=f"tollgate-f-{suffix}", include_crds=False,
                        values={"watchNamespaces": [namespace, f"{namespace}-*"]}, api_versions=(MAP_API,))
    policy = [m for m in tools.docs(text) if m["kind"].startswith("MutatingAdmissionPolicy")]
    assert len(policy) == 2, policy
    assert not [m for m in tools.docs(tools.render(tool_bin, include_crds=False))
                if m["kind"].startswith("MutatingAdmissionPolicy")], "rendered where the API is not served"
    with install.applied(cluster, policy):
        yield policy


def finalizers_at_create(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The finalizers of a ModelDeployment as its create returned it (no operator has seen it yet)."""
    out = cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-",
                          input=json.dumps(md_manifest(name, "1.0.0"))).stdout
    finalizers: list[str] = json.loads(out)["metadata"].get("finalizers") or []
    return finalizers


def test_the_finalizer_policy_marks_new_modeldeployments_in_watched_namespaces_only(
        cluster: Cluster, crds: list[str], namespace: str, finalizer_policy: list[dict[str, object]]) -> None:
    other = f"unwatched-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", other)
    try:
        # given the policy for <namespace> and <namespace>-* (it takes effect within moments of its apply)
        deadline = time.monotonic() + 30
        attempt = 0
        while True:
            attempt += 1
            # when a ModelDeployment is created in a watched namespace, with no operator running
            marked = finalizers_at_create(cluster, namespace, f"probe-{attempt}")
            if marked or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # then the create itself returns it with the operator's finalizer
        assert marked == ["tollgate.dev/finalizer"], marked
        # and one in a namespace this release does not watch gets none (nothing would ever remove it)
        assert finalizers_at_create(cluster, other, "elsewhere") == []
    finally:
        release_namespace(cluster.kubectl, other)


def test_with_the_finalizer_policy_the_operator_sends_no_finalizer_patch_and_deletion_still_completes(
        cluster: Cluster, stack: Stack, namespace: str, operator: OperatorProcess,
        finalizer_policy: list[dict[str, object]]) -> None:
    time.sleep(2)  # the policy takes effect within moments of its apply
    mark = audit.now_marker()
    # given the policy, when a ModelDeployment is applied and deployed
    apply(stack, namespace, md_manifest("marked", "1.0.0"))
    sandbox = wait_phase(stack, namespace, "marked", "Stable")["sandboxNamespace"]
    # then the operator never patched the object itself (only its status): the finalizer came with the create
    time.sleep(2.5)  # the audit log is flushed in batches of at most 1s
    reqs = audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark))
    patches = [(r.verb, r.subresource) for r in reqs if r.resource == "modeldeployments" and r.name == "marked"
               and r.verb in ("patch", "update")]
    assert patches and all(sub == "status" for _, sub in patches), patches
    # when it is deleted, then the operator's finalizer runs: the object and its sandbox go
    stack.kubectl("delete", "modeldeployment", "marked", "-n", namespace, "--timeout=60s")
    assert stack.kubectl("get", "namespace", sandbox, "-o", "jsonpath={.metadata.deletionTimestamp}",
                         check=False).stdout or stack.kubectl("get", "namespace", sandbox, check=False).returncode != 0
