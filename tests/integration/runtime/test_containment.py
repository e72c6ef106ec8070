"""A ModelDeployment touches only what it owns, tried as a hostile tenant would, on the real control plane
with the operator as its own process. The API server's audit log is the record of what was written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from integration.fixtures import release_namespace
from integration.runtime.helpers import apply, condition, md_manifest, patch_spec, status, wait_phase
from tollgate.api import resource
from tollgate.engine.sandbox import default_sandbox_namespace
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for


def writes_into(stack: Stack, since: str, namespace: str) -> list[audit.Request]:
    """Every write of the operator into `namespace`, or to the Namespace object itself, since `since`."""
    time.sleep(2.5)  # the audit log is flushed in batches of at most 1s
    reqs = audit.writes(audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=since)))
    return [r for r in reqs if r.namespace == namespace or (r.resource == "namespaces" and r.name == namespace)]


def tollgate_objects(stack: Stack, namespace: str) -> list[str]:
    out = stack.kubectl("get", "networkpolicies,resourcequotas,limitranges,serviceaccounts,services,deployments",
                        "-n", namespace, "-l", "app.kubernetes.io/managed-by=tollgate", "-o", "name").stdout
    return sorted(out.split())


def delete_md(stack: Stack, namespace: str, name: str) -> None:
    stack.kubectl("delete", "modeldeployment", name, "-n", namespace, "--timeout=60s")


def grant(stack: Stack, namespace: str, *prefixes: str) -> None:
    """The platform team's grant of explicit sandbox names to a tenant namespace (runtime/ownership.py)."""
    stack.kubectl("annotate", "namespace", namespace, "--overwrite",
                  f"{resource.ANNOTATION_SANDBOX_PREFIXES}={','.join(prefixes)}")


def test_an_explicit_sandbox_name_the_platform_did_not_grant_is_refused_and_never_created(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a tenant namespace granted only <namespace>-sbx-, and a name another team will want
    grant(stack, namespace, f"{namespace}-sbx-")
    target = f"{namespace}-payments"
    mark = audit.now_marker()
    # when a ModelDeployment names it (the chart's sandbox-grants policy is not installed here: this is the
    # operator's own check, for clusters without it and ModelDeployments admitted before it)
    apply(stack, namespace, md_manifest("squat", "1.0.0", sandbox={"namespace": target}))
    st = wait_phase(stack, namespace, "squat", "Stalled", timeout=30)
    # then it is Stalled, naming the field, the grant and the fix
    assert condition(st, "Stalled") == "True", st
    assert f"spec.sandbox.namespace {target!r} is not granted to {namespace}/squat" in st["message"], st["message"]
    assert f"starting with '{namespace}-sbx-'" in st["message"] and "remove spec.sandbox.namespace" in st["message"]
    # and the namespace was never created, nor anything written there
    assert stack.kubectl("get", "namespace", target, check=False).returncode != 0
    delete_md(stack, namespace, "squat")
    assert writes_into(stack, mark, target) == []


@pytest.mark.parametrize("target", ["kube-system", "default"])
def test_a_sandbox_in_a_namespace_tollgate_did_not_create_is_refused_with_zero_writes(
        stack: Stack, namespace: str, operator: OperatorProcess, target: str) -> None:
    # given a tenant pointing its sandbox at a namespace it does not own (granted, so that the ownership
    # check is what refuses it: a careless grant must not open kube-system either)
    grant(stack, namespace, target)
    mark = audit.now_marker()
    apply(stack, namespace, md_manifest("kube-dns", "1.0.0", sandbox={"namespace": target}))
    # when the operator reconciles it
    st = wait_phase(stack, namespace, "kube-dns", "Stalled", timeout=30)
    # then it is Stalled, naming the namespace, why, and the fix
    assert condition(st, "Stalled") == "True" and condition(st, "Ready") == "False"
    assert f"spec.sandbox.namespace {target!r}" in st["message"]
    assert "Tollgate did not create it" in st["message"] and "does not exist yet" in st["message"]
    # and deleting the ModelDeployment leaves the namespace alone
    delete_md(stack, namespace, "kube-dns")
    assert client.CoreV1Api(stack.api).read_namespace(target).status.phase == "Active"
    # and the operator never wrote into it, nor to the namespace itself
    assert writes_into(stack, mark, target) == []
    assert tollgate_objects(stack, target) == []


def test_a_sandbox_pointed_at_another_modeldeployments_sandbox_is_refused_and_the_victim_is_untouched(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a victim serving from a granted explicit sandbox (a default one's name the CRD refuses outright:
    # test_admission.py)
    grant(stack, namespace, f"{namespace}-sbx-")
    apply(stack, namespace, md_manifest("victim", "1.0.0", replicas=2, sandbox={"namespace": f"{namespace}-sbx-v"}))
    victim = wait_phase(stack, namespace, "victim", "Stable")
    sandbox = victim["sandboxNamespace"]
    assert sandbox == f"{namespace}-sbx-v"
    before = tollgate_objects(stack, sandbox)
    assert any("networkpolicy" in o for o in before) and any("resourcequota" in o for o in before)
    mark = audit.now_marker()
    # when an attacker names that sandbox as its own
    apply(stack, namespace, md_manifest("attacker", "1.0.0", replicas=2, sandbox={"namespace": sandbox}))
    st = wait_phase(stack, namespace, "attacker", "Stalled", timeout=30)
    # then it is Stalled, naming the owner
    assert f"ModelDeployment {namespace}/victim" in st["message"], st["message"]
    # and deleting the attacker leaves the victim's sandbox exactly as it was
    delete_md(stack, namespace, "attacker")
    assert writes_into(stack, mark, sandbox) == []
    assert tollgate_objects(stack, sandbox) == before
    assert status(stack, namespace, "victim")["phase"] == "Stable"


def test_a_default_sandbox_name_somebody_made_first_is_refused_at_its_create_and_nothing_is_written_there(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given the default sandbox name of <namespace>/early made first by somebody allowed to create namespaces
    target = default_sandbox_namespace(namespace, "early")
    stack.kubectl("create", "namespace", target)
    try:
        mark = audit.now_marker()
        # when the ModelDeployment is applied (its default name is not read first: the create is the check)
        apply(stack, namespace, md_manifest("early", "1.0.0"))
        st = wait_phase(stack, namespace, "early", "Stalled", timeout=30)
        # then it is Stalled, naming the namespace and the fix
        assert f"the default sandbox namespace {target!r}" in st["message"], st["message"]
        assert "Tollgate did not create it" in st["message"], st["message"]
        delete_md(stack, namespace, "early")
        # and the only request that reached it is the create the API server refused; nothing is inside
        assert [(r.verb, r.code) for r in writes_into(stack, mark, target)] == [("create", 409)]
        assert tollgate_objects(stack, target) == []
        assert client.CoreV1Api(stack.api).read_namespace(target).status.phase == "Active"
    finally:
        release_namespace(stack.kubectl, target)


@pytest.fixture
def second_namespace(stack: Stack, namespace: str) -> Iterator[str]:
    """<namespace>-b: with it, <namespace>/b-c and <namespace>-b/c read alike."""
    name = f"{namespace}-b"
    stack.kubectl("create", "namespace", name)
    yield name
    release_namespace(stack.kubectl, name)


def test_look_alike_modeldeployments_get_distinct_sandboxes_and_deleting_one_spares_the_other(
        stack: Stack, namespace: str, second_namespace: str, operator: OperatorProcess) -> None:
    # given a/b-c and a-b/c, which a "<namespace>-<name>" scheme would both put into a-b-c
    apply(stack, namespace, md_manifest("b-c", "1.0.0", replicas=2))
    apply(stack, second_namespace, md_manifest("c", "1.0.0", replicas=2))
    first = wait_phase(stack, namespace, "b-c", "Stable")
    second = wait_phase(stack, second_namespace, "c", "Stable")
    # then each has its own readable sandbox
    assert first["sandboxNamespace"] != second["sandboxNamespace"]
    assert first["sandboxNamespace"].startswith(f"{namespace}-b-c-")
    assert second["sandboxNamespace"].startswith(f"{namespace}-b-c-")
    kept = tollgate_objects(stack, first["sandboxNamespace"])
    # when the second is deleted
    delete_md(stack, second_namespace, "c")
    # then the first's sandbox and everything in it stays, and it keeps serving
    assert client.CoreV1Api(stack.api).read_namespace(first["sandboxNamespace"]).status.phase == "Active"
    assert tollgate_objects(stack, first["sandboxNamespace"]) == kept
    assert status(stack, namespace, "b-c")["phase"] == "Stable"


def test_an_httproute_cannot_be_put_into_a_shared_gateways_namespace(
        stack: Stack, namespace: str, second_namespace: str, operator: OperatorProcess) -> None:
    # given a shared Gateway admitting routes of its own namespace only
    stack.kubectl("apply", "-n", second_namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "shared"},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]},
    }))
    grant(stack, namespace, second_namespace)
    mark = audit.now_marker()
    # when a tenant puts its sandbox, and so its HTTPRoute, into the Gateway's namespace (granted: the
    # ownership check is what refuses it)
    apply(stack, namespace, md_manifest("sneak", "1.0.0", replicas=2, sandbox={"namespace": second_namespace},
                                        traffic={"router": "gatewayAPI", "gatewayAPI": {
                                            "parentRefs": [{"name": "shared", "namespace": second_namespace}]}}))
    st = wait_phase(stack, namespace, "sneak", "Stalled", timeout=30)
    # then nothing is written there: no route, no Service, no policy
    assert second_namespace in st["message"]
    delete_md(stack, namespace, "sneak")
    assert writes_into(stack, mark, second_namespace) == []
    routes = stack.kubectl("get", "httproutes", "-n", second_namespace, "-o", "name").stdout.split()
    assert routes == []


@pytest.mark.parametrize("name", ["fraud.v2", "1model", "m" * 200, "Fraud"])
def test_a_name_that_would_break_the_generated_objects_is_refused_at_admission(
        stack: Stack, namespace: str, name: str) -> None:
    manifest = md_manifest("fraud", "1.0.0")
    manifest["metadata"]["name"] = name
    res = stack.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=False)
    assert res.returncode != 0
    assert "metadata.name must be a DNS-1035 label" in res.stderr, res.stderr


def test_the_longest_accepted_name_works_end_to_end_with_labels_that_fit(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a 63-character name, the longest admitted
    name = "m" + "-long" * 12 + "-x"
    assert len(name) == 63
    manifest = md_manifest("longname", "1.0.0", replicas=2)
    manifest["metadata"]["name"] = name
    apply(stack, namespace, manifest)
    # then it becomes Ready, its Service is named after it and every label of its objects is valid
    st = wait_phase(stack, namespace, name, "Stable")
    assert condition(st, "Ready") == "True"
    sandbox = st["sandboxNamespace"]
    svc = client.CoreV1Api(stack.api).read_namespaced_service(name, sandbox)
    for obj in [*client.AppsV1Api(stack.api).list_namespaced_deployment(sandbox).items, svc]:
        for value in (obj.metadata.labels or {}).values():
            assert len(value) <= 63, (obj.metadata.name, value)


KIB = 1024


def test_maximal_args_and_env_stay_under_256_kib_through_a_whole_canary(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given the largest runtime the CRD admits: 32 args of 1024 characters, 32 variables of 1024
    runtime = {"image": "registry.example/model-server:1.0",
               "args": [f"--a{i:02d}=" + "x" * 1018 for i in range(32)],
               "env": [{"name": f"V{i:02d}_" + "N" * 124, "value": "v" * 1024} for i in range(32)]}
    manifest = md_manifest("big", "1.0.0", replicas=2, runtime=runtime,
                           rollout={"steps": [{"weight": 50}, {"weight": 100}],
                                    "analysis": {"interval": "1s", "window": "5s", "minSamples": 10},
                                    "progressDeadline": "30s"})
    apply(stack, namespace, manifest)  # client-side apply: the last-applied annotation is a second copy
    wait_phase(stack, namespace, "big", "Stable")
    # when a new version is rolled out to the end
    patch_spec(stack, namespace, "big", {"model": {"version": "2.0.0", "uri": "s3://models/big/2.0.0"}})
    sizes: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        raw = stack.kubectl("get", "modeldeployment", "big", "-n", namespace, "-o", "json").stdout
        phase = json.loads(raw).get("status", {}).get("phase", "")
        sizes[phase] = max(sizes.get(phase, 0), len(raw.encode()))
        if phase in ("Succeeded", "RolledBack"):
            break
        time.sleep(0.2)
    # then it promoted, and the object (spec, annotation, status, managedFields) never reached 256 KiB
    assert "Succeeded" in sizes, sizes
    assert "Progressing" in sizes, sizes
    assert max(sizes.values()) < 256 * KIB, sizes


def test_a_refused_sandbox_is_not_retried_in_a_hot_loop(stack: Stack, namespace: str,
                                                        operator: OperatorProcess) -> None:
    # given a refused sandbox
    apply(stack, namespace, md_manifest("loop", "1.0.0", sandbox={"namespace": "kube-public"}))
    wait_phase(stack, namespace, "loop", "Stalled", timeout=30)
    time.sleep(2)
    mark = audit.now_marker()
    # when time passes
    time.sleep(6)
    # then the operator wrote nothing at all (its status already says Stalled)
    reqs = audit.writes(audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark)))
    assert [r for r in reqs if r.namespace in (namespace, "kube-public")] == []
    delete_md(stack, namespace, "loop")


@pytest.fixture
def capped_operator(stack: Stack, namespace: str) -> Iterator[OperatorProcess]:
    """An operator with the platform limits the chart's platformLimits values set."""
    op = stack.start_operator(namespaces=[namespace, f"{namespace}-*"],
                              extra_args=["--max-replicas", "3", "--max-pod-resources", "cpu=2,nvidia.com/gpu=1"])
    yield op
    op.stop()


def test_a_spec_over_the_platform_limits_is_stalled_naming_the_limit_and_creates_nothing(
        stack: Stack, namespace: str, capped_operator: OperatorProcess) -> None:
    mark = audit.now_marker()
    # given tenants asking for more pods, or more GPUs per pod, than the platform allows
    apply(stack, namespace, md_manifest("wide", "1.0.0", replicas=4))
    apply(stack, namespace, md_manifest("greedy", "1.0.0", replicas=2, runtime={
        "image": "registry.example/model-server:1.0",
        "resources": {"limits": {"nvidia.com/gpu": "2"}}}))
    # then each is Stalled, naming the field, the value and the limit
    wide = wait_phase(stack, namespace, "wide", "Stalled", timeout=30)
    greedy = wait_phase(stack, namespace, "greedy", "Stalled", timeout=30)
    assert "spec.replicas 4 is over the platform limit of 3" in wide["message"], wide["message"]
    assert "nvidia.com/gpu 2 is over the platform limit of 1 per pod" in greedy["message"], greedy["message"]
    # and no sandbox was created for them: the operator wrote only their status (and Events)
    time.sleep(2.5)  # the audit log is flushed in batches of at most 1s
    reqs = audit.writes(audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark)))
    assert {(r.resource, r.subresource) for r in reqs} <= {("modeldeployments", "status"), ("events", ""),
                                                           ("modeldeployments", "")}, reqs
    # when the tenant lowers the request, it proceeds
    patch_spec(stack, namespace, "wide", {"replicas": 3})
    wait_phase(stack, namespace, "wide", "Stable")


def test_a_rate_limit_the_platforms_gateway_dialect_cannot_carry_out_is_stalled_before_any_traffic_moves(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given the operator speaks the standard Gateway API dialect (the chart's default: no rate-limit filter)
    mark = audit.now_marker()
    gateway_api = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw", "namespace": namespace}]}}
    # when a tenant asks for a canary rate limit, which admission lets through for gatewayAPI (it cannot know the
    # dialect, a chart value)
    apply(stack, namespace, md_manifest("limited", "1.0.0", traffic={**gateway_api, "canaryRateLimit": 20}))
    # then it is Stalled, naming the field, the dialect, where that is set and the fixes
    st = wait_phase(stack, namespace, "limited", "Stalled", timeout=30)
    assert st["message"].startswith("spec.traffic.canaryRateLimit is set, but this cluster's Gateway data plane "
                                    "speaks the standard dialect (gatewayAPI.dialect"), st["message"]
    assert "remove spec.traffic.canaryRateLimit" in st["message"] and "traefik" in st["message"], st["message"]
    assert condition(st, "Stalled") == "True"
    assert {c["type"]: c.get("reason") for c in st["conditions"]}["Stalled"] == "UnsupportedByDataPlane", st
    # and nothing moved: no sandbox, no route, only its status (and Events) written
    time.sleep(2.5)  # the audit log is flushed in batches of at most 1s
    reqs = audit.writes(audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark)))
    assert {(r.resource, r.subresource) for r in reqs} <= {("modeldeployments", "status"), ("events", ""),
                                                           ("modeldeployments", "")}, reqs
    assert not st.get("sandboxNamespace"), st
    # when the tenant removes the limit, it proceeds: its sandbox and route are written
    patch_spec(stack, namespace, "limited", {"traffic": {"canaryRateLimit": None}})

    def proceeding() -> dict[str, Any] | None:
        now = status(stack, namespace, "limited")
        return now if now.get("phase") != "Stalled" and now.get("sandboxNamespace") else None

    st = wait_for("limited proceeds", proceeding, timeout=60, interval=0.5)
    routes = stack.kubectl("get", "httproutes", "-n", st["sandboxNamespace"], "-o", "name").stdout.split()
    assert routes == ["httproute.gateway.networking.k8s.io/limited"], routes
    delete_md(stack, namespace, "limited")


def test_a_spec_over_the_platform_limits_mid_canary_takes_the_canary_off_traffic_until_accepted(
        stack: Stack, namespace: str, capped_operator: OperatorProcess) -> None:
    # given a canary holding 25% of traffic on the replicas router (a long pause, no analysis)
    held = {"rollout": {"steps": [{"weight": 25, "pause": "30m", "analysis": False}, {"weight": 100}],
                        "progressDeadline": "60s"}, "slos": []}
    apply(stack, namespace, md_manifest("held", "1.0.0", replicas=3, **held))
    sandbox = wait_phase(stack, namespace, "held", "Stable")["sandboxNamespace"]
    apply(stack, namespace, md_manifest("held", "1.1.0", replicas=3, **held))
    st = wait_for("canary at 25%", lambda: (s := status(stack, namespace, "held")).get("canaryWeight") == 25 and s,
                  timeout=90)
    pods = st["steps"][0]["stablePods"] + st["steps"][0]["canaryPods"]
    assert selector(stack, sandbox, "held").get("tollgate.dev/track") is None  # both tracks behind the Service
    # when the tenant's next edit goes over the platform's limit of 3 replicas
    patch_spec(stack, namespace, "held", {"replicas": 4})
    st = wait_phase(stack, namespace, "held", "Stalled", timeout=30)
    # then the canary is held, the reason and the hold in status: stable is scaled back to the step's pods, and
    # once they are Ready the canary goes to weight 0 and the Service selects stable only; no rollback
    assert "spec.replicas 4 is over the platform limit of 3" in st["message"], st["message"]
    assert "canary 1.1.0" in st["message"] and " held" in st["message"], st["message"]
    st = wait_for("the canary at weight 0", lambda: (s := status(stack, namespace, "held")).get("canaryWeight") == 0
                  and s, timeout=30, interval=0.2)
    assert not st.get("rolledBackRevision") and st["canary"]["version"] == "1.1.0" and st["phase"] == "Stalled"
    assert replicas(stack, sandbox, "held-stable") == pods
    wait_for("the Service on stable only", lambda: selector(stack, sandbox, "held").get("tollgate.dev/track")
             == "stable", timeout=15, interval=0.2)
    assert replicas(stack, sandbox, "held-canary") is not None  # its pods stay, with no traffic
    # when the tenant goes back within the limit, then the canary restarts at step 1 and regains its 25%
    patch_spec(stack, namespace, "held", {"replicas": 3})
    st = wait_for("canary back at 25%", lambda: (s := status(stack, namespace, "held")).get("canaryWeight") == 25
                  and s.get("phase") == "Progressing" and s, timeout=90)
    assert any("while its spec was refused" in e.get("message", "") for e in st["timeline"]), st["timeline"]
    wait_for("the Service on both tracks again",
             lambda: selector(stack, sandbox, "held").get("tollgate.dev/track") is None, timeout=15, interval=0.2)
    delete_md(stack, namespace, "held")


def selector(stack: Stack, sandbox: str, name: str) -> dict[str, str]:
    out = stack.kubectl("get", "service", name, "-n", sandbox, "-o", "jsonpath={.spec.selector}").stdout
    return json.loads(out) if out else {}


def replicas(stack: Stack, sandbox: str, name: str) -> int | None:
    out = stack.kubectl("get", "deployment", name, "-n", sandbox, "-o", "jsonpath={.spec.replicas}",
                        check=False)
    return int(out.stdout) if out.returncode == 0 and out.stdout else None
