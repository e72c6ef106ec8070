"""The operator on the real control plane: sandbox, canary steps, rollback, kill switch, restart, delete.

Each test runs its own operator process scoped to its namespace (and the sandbox namespaces below
it), against the real API server with KWOK nodes; SLOs come from the real Prometheus scraping the
traffic simulator, which follows the split the operator sets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from integration.runtime.helpers import (
    apply,
    condition,
    md_manifest,
    patch_spec,
    reasons,
    status,
    stepped,
    wait_phase,
)
from tollgate.api import resource
from tollgate_testkit import audit, gateway
from tollgate_testkit.controlplane import NEVER_READY_IMAGE, audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for


def _deployments(stack: Stack, ns: str) -> dict[str, dict]:  # type: ignore[type-arg]
    out = json.loads(stack.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)
    return {d["metadata"]["name"]: d for d in out["items"]}


def test_create_builds_a_restricted_sandbox_and_becomes_ready(stack: Stack, namespace: str,
                                                             operator: OperatorProcess) -> None:
    # given a new ModelDeployment
    apply(stack, namespace, md_manifest("scorer", "1.0.0", sandbox={
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}],
        "egressTo": [{"cidr": "10.20.0.0/16", "ports": [443]}]}))
    # when the operator reconciles it
    st = wait_phase(stack, namespace, "scorer", "Stable")
    sandbox = st["sandboxNamespace"]
    # then `kubectl wait` for Ready returns
    stack.kubectl("wait", "--for=condition=Ready", "modeldeployment/scorer", "-n", namespace, "--timeout=30s")
    md = stack.md(namespace, "scorer")
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    assert condition(md["status"], "Ready") == "True"
    assert md["status"]["stable"]["version"] == "1.0.0"
    # and the sandbox namespace enforces Pod Security "restricted" and records its owner
    ns = client.CoreV1Api(stack.api).read_namespace(sandbox)
    for mode in ("enforce", "audit", "warn"):
        assert ns.metadata.labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert ns.metadata.annotations["tollgate.dev/owner"] == f"{namespace}/scorer"
    # and NetworkPolicies deny by default, allow DNS, the listed callers, Prometheus and the listed egress
    pols = {p.metadata.name: p for p in client.NetworkingV1Api(stack.api).list_namespaced_network_policy(sandbox).items}
    deny = next(p for p in pols.values() if p.spec.pod_selector.match_labels in (None, {})
                and set(p.spec.policy_types) == {"Ingress", "Egress"} and not p.spec.ingress and not p.spec.egress)
    assert deny is not None
    rendered = json.dumps([client.ApiClient().sanitize_for_serialization(p) for p in pols.values()])
    assert '"team": "payments"' in rendered
    assert "10.20.0.0/16" in rendered and "443" in rendered
    assert '"port": 53' in rendered
    # and a quota, a LimitRange and a ServiceAccount without a token
    core = client.CoreV1Api(stack.api)
    assert core.list_namespaced_resource_quota(sandbox).items
    assert core.list_namespaced_limit_range(sandbox).items
    sas = [sa for sa in core.list_namespaced_service_account(sandbox).items if sa.metadata.name != "default"]
    assert sas and all(sa.automount_service_account_token is False for sa in sas)
    # and the pods are Ready and meet "restricted"
    pods = core.list_namespaced_pod(sandbox).items
    assert len(pods) == 4
    for pod in pods:
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        psc = pod.spec.security_context
        assert psc.run_as_non_root is True
        assert psc.seccomp_profile.type == "RuntimeDefault"
        for c in pod.spec.containers:
            sc = c.security_context
            assert sc.allow_privilege_escalation is False
            assert sc.capabilities.drop == ["ALL"]
            assert sc.read_only_root_filesystem is True
        assert pod.spec.automount_service_account_token is False


def test_new_version_follows_the_steps_and_promotes(stack: Stack, namespace: str,
                                                    operator: OperatorProcess) -> None:
    # given a stable version 1.0.0
    apply(stack, namespace, md_manifest("ranker", "1.0.0"))
    st = wait_phase(stack, namespace, "ranker", "Stable")
    sandbox = st["sandboxNamespace"]
    # when version 1.1.0 (as healthy as stable) is applied
    patch_spec(stack, namespace, "ranker", {"model": {"version": "1.1.0", "uri": "s3://models/ranker/1.1.0"}})
    # then a canary Deployment appears
    wait_for("canary Deployment", lambda: "ranker-canary" in _deployments(stack, sandbox), timeout=30)
    # and it is promoted after the weights followed the steps in order, each step passing its analysis
    # before the next (from the rollout's own timeline: on a loaded machine a step can pass between two polls)
    st = wait_phase(stack, namespace, "ranker", "Succeeded", "Stable", "RolledBack")
    assert st["phase"] in ("Succeeded", "Stable"), st
    assert stepped(st) == [25, 50, 100], st["timeline"]
    assert reasons(st, "StepAdvanced", "AnalysisPassed", "Promoting", "Promoted") == [
        "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed",
        "Promoting", "Promoted"], st["timeline"]
    # and the stable track now runs 1.1.0 and the canary is gone
    assert st["stable"]["version"] == "1.1.0"
    assert st["lastKnownGood"]["version"] == "1.1.0"
    wait_for("canary removed", lambda: "ranker-canary" not in _deployments(stack, sandbox), timeout=30)
    stable = _deployments(stack, sandbox)["ranker-stable"]
    assert stable["spec"]["template"]["metadata"]["labels"]["tollgate.dev/version"] == "1.1.0"
    assert st["history"][0]["result"] == "Promoted"


def test_canary_that_never_becomes_ready_is_rolled_back_at_the_deadline(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a stable version
    apply(stack, namespace, md_manifest("vision", "1.0.0", rollout={
        "steps": [{"weight": 25}, {"weight": 100}],
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10},
        "progressDeadline": "10s"}))
    st = wait_phase(stack, namespace, "vision", "Stable")
    # when a version whose pods never become Ready is rolled out
    started = time.monotonic()
    patch_spec(stack, namespace, "vision", {"model": {"version": "2.0.0"}, "runtime": {"image": NEVER_READY_IMAGE}})
    # then it is rolled back once the progress deadline passes, not before
    st = wait_phase(stack, namespace, "vision", "RolledBack", timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed >= 9.0, f"rolled back after {elapsed:.1f}s, before the 10s deadline"
    assert st["canaryWeight"] == 0
    assert st["stable"]["version"] == "1.0.0"
    assert st["rolledBackRevision"]
    assert st["lastIncident"]
    # and the evidence record exists where status points (written after the traffic actions)
    core = client.CoreV1Api(stack.api)
    wait_for("the evidence record", lambda: any(
        c.metadata.name == st["lastIncident"] for c in core.list_namespaced_config_map(namespace).items), timeout=30)
    cm = core.read_namespaced_config_map(st["lastIncident"], namespace)
    assert "deadline" in cm.data["evidence.json"].lower()


def test_kill_switch_moves_all_traffic_to_the_fallback_and_back(stack: Stack, namespace: str,
                                                               operator: OperatorProcess) -> None:
    # given a ModelDeployment mid-rollout with a pinned fallback
    apply(stack, namespace, md_manifest("chat", "3.0.0", fallback={"version": "2.9.0"}, rollout={
        "steps": [{"weight": 25, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "20s"}))
    st = wait_phase(stack, namespace, "chat", "Stable")
    sandbox = st["sandboxNamespace"]
    patch_spec(stack, namespace, "chat", {"model": {"version": "3.1.0"}})
    wait_phase(stack, namespace, "chat", "AwaitingApproval", "Progressing")
    # when the kill switch is turned on
    patch_spec(stack, namespace, "chat", {"killSwitch": True})
    # then all traffic is on the fallback: the Service selects only the fallback track
    st = wait_phase(stack, namespace, "chat", "Fallback", timeout=20)
    assert st["canaryWeight"] == 0
    assert st["killSwitchActive"] is True

    def service_on_fallback() -> bool:
        svc = client.CoreV1Api(stack.api).read_namespaced_service("chat", sandbox)
        return svc.spec.selector.get("tollgate.dev/track") == "fallback"

    wait_for("Service selecting the fallback", service_on_fallback, timeout=10)
    deps = _deployments(stack, sandbox)
    assert deps["chat-fallback"]["spec"]["template"]["metadata"]["labels"]["tollgate.dev/version"] == "2.9.0"
    assert "chat-canary" not in deps or deps["chat-canary"]["spec"]["replicas"] == 0
    # when it is turned off
    patch_spec(stack, namespace, "chat", {"killSwitch": False})
    # then traffic returns to the stable track and the fallback is removed
    wait_for("Service back on stable", lambda: not service_on_fallback(), timeout=20)
    def released() -> dict | None:  # type: ignore[type-arg]
        s = status(stack, namespace, "chat")
        return None if s.get("killSwitchActive") else s

    st = wait_for("kill switch released", released, timeout=20)
    assert st["phase"] != "Fallback"
    wait_for("fallback removed", lambda: "chat-fallback" not in _deployments(stack, sandbox), timeout=20)


def test_restart_mid_rollout_resumes_at_the_persisted_step(stack: Stack, namespace: str,
                                                           operator: OperatorProcess) -> None:
    # given a rollout waiting at an approval gate of step 2
    apply(stack, namespace, md_manifest("ocr", "1.0.0", rollout={
        "steps": [{"weight": 20}, {"weight": 40, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "30s"}))
    wait_phase(stack, namespace, "ocr", "Stable")
    patch_spec(stack, namespace, "ocr", {"model": {"version": "1.1.0"}})
    before = wait_phase(stack, namespace, "ocr", "AwaitingApproval", timeout=60)
    assert before["currentStep"] == 1 and before["canaryWeight"] == 20
    # when the operator is killed (no cleanup) and a new one starts
    operator.kill()
    restarted = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    try:
        time.sleep(3)
        # then it is still at the same step, with the same weight: nothing skipped
        after = status(stack, namespace, "ocr")
        assert after["phase"] == "AwaitingApproval"
        assert (after["currentStep"], after["canaryWeight"]) == (1, 20)
        assert after["canary"]["revision"] == before["canary"]["revision"]
        # and once approved it continues from there: 40 then 100, nothing repeated (the rollout's own
        # timeline, which the restart continued rather than began anew: on a loaded machine a step can pass
        # between two polls)
        stack.kubectl("annotate", "modeldeployment", "ocr", "-n", namespace, "tollgate.dev/approve=alice")
        st = wait_phase(stack, namespace, "ocr", "Succeeded", "Stable", "RolledBack")
        assert st["phase"] in ("Succeeded", "Stable"), st
        assert st["timeline"][:len(before["timeline"])] == before["timeline"], (before["timeline"], st["timeline"])
        assert reasons(st).count("CanaryStarted") == 1, st["timeline"]
        assert stepped(st) == [20, 40, 100], st["timeline"]
        assert reasons(st, "StepAdvanced", "AwaitingApproval", "Approved", "Promoted") == [
            "StepAdvanced", "AwaitingApproval", "Approved", "StepAdvanced", "StepAdvanced", "Promoted"], st["timeline"]
        events = stack.kubectl("get", "events", "-n", namespace, "--field-selector",
                               "involvedObject.name=ocr,reason=StepAdvanced", "-o", "json").stdout
        messages = [e["message"] for e in json.loads(events)["items"]]
        assert len(messages) == len(set(messages)), f"a step was repeated: {messages}"
    finally:
        restarted.stop()


def test_deletion_mid_rollout_removes_the_sandbox(stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a rollout in progress
    apply(stack, namespace, md_manifest("asr", "1.0.0", rollout={
        "steps": [{"weight": 20, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "30s"}))
    st = wait_phase(stack, namespace, "asr", "Stable")
    sandbox = st["sandboxNamespace"]
    patch_spec(stack, namespace, "asr", {"model": {"version": "1.1.0"}})
    wait_phase(stack, namespace, "asr", "AwaitingApproval", "Progressing")
    # when the ModelDeployment is deleted
    stack.kubectl("delete", "modeldeployment", "asr", "-n", namespace, "--wait=false")
    core = client.CoreV1Api(stack.api)

    # then the sandbox namespace is deleted and its deletion completes
    def gone() -> bool:
        try:
            core.read_namespace(sandbox)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("sandbox namespace gone", gone, timeout=60)
    # and the ModelDeployment itself is released by the finalizer
    res = stack.kubectl("get", "modeldeployment", "asr", "-n", namespace, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_namespace_not_created_by_tollgate_is_never_used_nor_deleted(stack: Stack, namespace: str,
                                                                    operator: OperatorProcess) -> None:
    # given a namespace the user created, named as the sandbox (a name the platform granted the tenant, so
    # that the ownership check is what refuses it: test_containment.py has the ungranted case)
    own = f"{namespace}-mine"
    stack.kubectl("create", "namespace", own)
    stack.kubectl("create", "configmap", "precious", "-n", own, "--from-literal=k=v")
    stack.kubectl("annotate", "namespace", namespace, f"{resource.ANNOTATION_SANDBOX_PREFIXES}={own}")
    apply(stack, namespace, md_manifest("tts", "1.0.0", sandbox={"namespace": own}))
    # then Tollgate refuses it (it only uses a sandbox it created) instead of writing into it
    st = wait_phase(stack, namespace, "tts", "Stalled", timeout=30)
    assert own in st["message"] and "did not create it" in st["message"]
    # when the ModelDeployment is deleted
    stack.kubectl("delete", "modeldeployment", "tts", "-n", namespace, "--timeout=60s")
    # then the namespace and the user's objects stay, and Tollgate never put anything there
    core = client.CoreV1Api(stack.api)
    assert core.read_namespace(own).status.phase == "Active"
    assert core.read_namespaced_config_map("precious", own).data == {"k": "v"}
    assert not _deployments(stack, own)
    stack.kubectl("delete", "namespace", own, "--wait=false")


def test_reapplying_an_identical_spec_writes_nothing(stack: Stack, namespace: str,
                                                    operator: OperatorProcess) -> None:
    # given a settled ModelDeployment
    manifest = md_manifest("embed", "1.0.0")
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, "embed", "Stable")
    time.sleep(3)  # let every echo of its own writes settle
    mark = audit.now_marker()
    # when the identical manifest is applied again, twice
    apply(stack, namespace, manifest)
    apply(stack, namespace, manifest)
    time.sleep(4)  # the audit log is flushed in batches of at most 1s
    # then the operator sent no write at all to the API server
    reqs = audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark))
    writes = audit.writes(reqs)
    assert writes == [], writes


def test_an_impossible_spec_stalls_with_a_clear_message_and_no_hot_loop(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a first deployment with the kill switch on and nothing to fall back to
    apply(stack, namespace, md_manifest("nlp", "1.0.0", killSwitch=True))
    # when the operator reconciles it
    st = wait_phase(stack, namespace, "nlp", "Stalled", timeout=30)
    # then it is Stalled (kstatus: failed), with a message that says what to set
    assert condition(st, "Stalled") == "True"
    assert condition(st, "Ready") == "False"
    assert "fallback" in st["message"]
    # and it is not retried in a hot loop: no request about it over the next seconds
    time.sleep(2)
    mark = audit.now_marker()
    time.sleep(6)
    reqs = [r for r in audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark))
            if r.namespace == namespace and r.resource == "modeldeployments"]
    assert reqs == [], reqs


def _route_weights(stack: Stack, ns: str, name: str) -> dict[str, int]:
    route = json.loads(stack.kubectl("get", "httproute", name, "-n", ns, "-o", "json").stdout)
    weights = {b["name"]: int(b.get("weight", 1)) for r in route["spec"]["rules"] for b in r["backendRefs"]}
    weights.setdefault(f"{name}-fallback", 0)  # listed only while the kill switch sends traffic there
    return weights


def test_gateway_api_router_weights_the_httproute_backends(stack: Stack, namespace: str,
                                                           operator: OperatorProcess) -> None:
    # given a ModelDeployment routed by an HTTPRoute (Gateway API CRDs installed from the module's manifests)
    apply(stack, namespace, md_manifest("rerank", "1.0.0", traffic={
        "router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "inference", "namespace": "gateways"}],
                                               "hostnames": ["rerank.example"]}},
        rollout={"steps": [{"weight": 30}, {"weight": 60, "approval": "required"}, {"weight": 100}],
                 "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "20s"}))
    st = wait_phase(stack, namespace, "rerank", "Stable")
    sandbox = st["sandboxNamespace"]
    # then all traffic goes to the stable Service
    assert _route_weights(stack, sandbox, "rerank") == {"rerank-stable": 100, "rerank-canary": 0, "rerank-fallback": 0}
    # when a new version passes its first step and waits for approval of the second
    patch_spec(stack, namespace, "rerank", {"model": {"version": "1.1.0"}})
    st = wait_phase(stack, namespace, "rerank", "AwaitingApproval", timeout=60)
    assert st["canaryWeight"] == 30
    # then the HTTPRoute carries exactly that split
    wait_for("route at 70/30", lambda: _route_weights(stack, sandbox, "rerank")
             == {"rerank-stable": 70, "rerank-canary": 30, "rerank-fallback": 0}, timeout=10)
    route = json.loads(stack.kubectl("get", "httproute", "rerank", "-n", sandbox, "-o", "json").stdout)
    assert route["spec"]["hostnames"] == ["rerank.example"]
    assert route["spec"]["parentRefs"][0]["name"] == "inference"
    # when approved, it promotes and the route returns to the (new) stable Service
    stack.kubectl("annotate", "modeldeployment", "rerank", "-n", namespace, "tollgate.dev/approve=bob")
    st = wait_phase(stack, namespace, "rerank", "Succeeded", "Stable", timeout=60)
    assert st["stable"]["version"] == "1.1.0"
    wait_for("route back on stable", lambda: _route_weights(stack, sandbox, "rerank")["rerank-stable"] == 100,
             timeout=10)


def test_a_spec_changed_while_the_operator_was_down_is_carried_out_at_start_and_nothing_else_is_written(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given two settled ModelDeployments
    for name in ("resized", "settled"):
        apply(stack, namespace, md_manifest(name, "1.0.0", replicas=1))
    for name in ("resized", "settled"):
        wait_phase(stack, namespace, name, "Stable")
    settled_sandbox = status(stack, namespace, "settled")["sandboxNamespace"]
    # when the operator stops, one of them is resized meanwhile, and a new operator starts (it lists
    # the changed one itself and decides it before kopf's watches deliver anything)
    operator.stop()
    patch_spec(stack, namespace, "resized", {"replicas": 3})
    mark = audit.now_marker()
    restarted = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    try:
        # then the resized one is carried out: its stable Deployment asks for 3 and its status says
        # it has seen the new generation
        sandbox = status(stack, namespace, "resized")["sandboxNamespace"]

        def carried_out() -> bool:
            md = json.loads(stack.kubectl("get", "modeldeployment", "resized", "-n", namespace, "-o", "json").stdout)
            deps = _deployments(stack, sandbox)
            stable = [d for d in deps.values() if d["metadata"]["name"].endswith("-stable")]
            return (md["status"].get("observedGeneration") == md["metadata"]["generation"]
                    and bool(stable) and stable[0]["spec"]["replicas"] == 3)

        wait_for("the resize carried out after the restart", carried_out, timeout=60)
        wait_phase(stack, namespace, "resized", "Stable")
        time.sleep(4)  # the audit log is flushed in batches of at most 1s
        # and the unchanged one got no write at all (nor its sandbox)
        reqs = audit.by_operator(audit.read(audit_log(stack.kubeconfig), since=mark))
        untouched = [r for r in audit.writes(reqs)
                     if r.namespace == settled_sandbox or (r.namespace, r.name) == (namespace, "settled")]
        assert untouched == [], untouched
    finally:
        restarted.stop()


@pytest.fixture
def traefik_operator(stack: Stack, namespace: str) -> Iterator[OperatorProcess]:
    """An operator speaking the traefik Gateway dialect (the chart's gatewayAPI.dialect), with Traefik's CRDs
    installed from the cached build (hack/gateway/build.sh)."""
    gateway.install_crds(str(stack.kubeconfig), gateway.build())
    op = stack.start_operator(namespaces=[namespace, f"{namespace}-*"], extra_args=["--gateway-dialect", "traefik"])
    yield op
    op.stop()


def _traefik(stack: Stack, sandbox: str, kind: str, name: str) -> dict[str, Any] | None:
    res = stack.kubectl("get", f"{kind}.traefik.io", name, "-n", sandbox, "-o", "json", check=False)
    got: dict[str, Any] | None = json.loads(res.stdout) if res.returncode == 0 else None
    return got


def test_traefik_dialect_the_operator_writes_watches_and_restores_its_traefik_objects(
        stack: Stack, namespace: str, traefik_operator: OperatorProcess) -> None:
    # given an operator in the traefik dialect and a gatewayAPI ModelDeployment with a shadow step and a canary
    # rate limit
    apply(stack, namespace, md_manifest("shadowed", "1.0.0", traffic={
        "router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]},
        "canaryRateLimit": 5},
        rollout={"steps": [{"shadow": {"percent": 50}}, {"weight": 100}],
                 "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "20s"}))
    st = wait_phase(stack, namespace, "shadowed", "Stable")
    sandbox = st["sandboxNamespace"]
    # then its Traefik objects are in its sandbox, labelled as its own, and the route names stable's Service
    for kind, name in (("traefikservice", "shadowed-mirror"), ("traefikservice", "shadowed-canary-limited"),
                       ("middleware", "shadowed-canary-rate-limit"), ("middleware", "shadowed-rate-key")):
        obj = _traefik(stack, sandbox, kind, name)
        assert obj is not None, (kind, name)
        labels = obj["metadata"]["labels"]
        assert labels["tollgate.dev/modeldeployment"] == "shadowed", labels
        assert labels["app.kubernetes.io/managed-by"] == "tollgate", labels
    assert st.get("rateLimits") is None  # no canary: no limit in force
    # when a new version enters its shadow step
    patch_spec(stack, namespace, "shadowed", {"model": {"version": "1.1.0"}})
    wait_for("the shadow step", lambda: status(stack, namespace, "shadowed").get("canaryMirror") == 50, timeout=60)
    st = status(stack, namespace, "shadowed")
    assert st["rateLimits"]["canary"] == 5, st.get("rateLimits")
    # then the route's stable backendRef is the mirroring TraefikService, mirroring 50% to the limited canary
    route = json.loads(stack.kubectl("get", "httproute", "shadowed", "-n", sandbox, "-o", "json").stdout)
    refs = [(b.get("kind", "Service"), b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
    assert refs[0] == ("TraefikService", "shadowed-mirror", 100), refs
    assert "RequestMirror" not in json.dumps(route)
    mirror = _traefik(stack, sandbox, "traefikservice", "shadowed-mirror")
    assert mirror is not None and mirror["spec"]["mirroring"]["mirrors"][0]["percent"] == 50, mirror
    # when someone deletes the canary's rate-limit Middleware (whose content no step changes, so only the watch
    # can bring it back), the operator puts it back as it was
    before = _traefik(stack, sandbox, "middleware", "shadowed-canary-rate-limit")
    assert before is not None
    stack.kubectl("delete", "middleware.traefik.io", "shadowed-canary-rate-limit", "-n", sandbox)
    after = wait_for("the rate-limit Middleware restored",
                     lambda: _traefik(stack, sandbox, "middleware", "shadowed-canary-rate-limit"), timeout=30)
    assert after["spec"] == before["spec"] and after["metadata"]["uid"] != before["metadata"]["uid"]
