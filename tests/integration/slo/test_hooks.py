"""Hooks (spec.hooks) on the real stack: the operator process, the real API server with its job controller,
KWOK running the hook Jobs' pods, Debian's Prometheus scraping the traffic simulator.

On KWOK no container runs: a hook pod's outcome is the KWOK stage its image matches (test facilities in
tollgate_testkit.kwok_faults: HOOK_FAILS_IMAGE fails with exit 1, HOOK_RUNS_IMAGE keeps running, any
other image completes), and a running duringAnalysis pod with env LOAD_RPS is served by the simulator as
the load it would generate against the canary's Service. The confirmRollout gate is a real HTTP server
on loopback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from integration.runtime.helpers import apply, reasons, status, stepped, wait_phase
from integration.slo.helpers import events, evidence, slo_manifest, start_rollout
from tollgate_testkit.kwok_faults import HOOK_FAILS_IMAGE, HOOK_RUNS_IMAGE
from tollgate_testkit.simulator import RATE_ANNOTATION
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

ERROR_RATE = {"name": "error-rate", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "30s"}


def canary_served(stack: Stack, namespace: str, name: str) -> int:
    """Requests the simulator has served to the canary track of this ModelDeployment since it started."""
    return stack.simulator.served.get(((namespace, name), "canary"), 0)


def follow(stack: Stack, namespace: str, name: str, until: tuple[str, ...],
           timeout: float = 120) -> list[dict[str, Any]]:
    """Every distinct (phase, canaryWeight) of status until the phase is in `until` after a canary began: a
    poll saw it, or the timeline records its start (each test here follows its ModelDeployment's first
    rollout; on a loaded machine a rollout rolled back before traffic can pass between two polls)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    began = False
    while time.monotonic() < deadline:
        st = status(stack, namespace, name)
        began = began or st.get("canary") is not None or "CanaryStarted" in reasons(st)
        point = {"phase": st.get("phase"), "weight": int(st.get("canaryWeight") or 0)}
        if not seen or seen[-1] != point:
            seen.append(point)
        if began and st.get("phase") in until:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {until}: {seen}; status {json.dumps(status(stack, namespace, name))}"
                         f"\n{stack.operators[-1].log_tail() if stack.operators else ''}")


def jobs(stack: Stack, sandbox: str) -> list[dict[str, Any]]:
    out = stack.kubectl("get", "jobs", "-n", sandbox, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_failing_pre_traffic_job_rolls_back_with_zero_requests_on_the_canary(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a stable 1.0.0 with user traffic, and a preTraffic smoke test that fails
    manifest = slo_manifest("smoke", [ERROR_RATE], hooks={
        "preTraffic": {"image": HOOK_FAILS_IMAGE, "timeout": "60s", "failurePolicy": "rollback"}})
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    seen = follow(stack, namespace, "smoke", until=("RolledBack", "RollingBack", "Succeeded"))
    st = wait_phase(stack, namespace, "smoke", "RolledBack")
    # then it was rolled back by the hook, the canary never had a weight, and not one request reached it
    assert all(p["weight"] == 0 for p in seen), seen
    assert stepped(st) == [] and all(int(e.get("weight") or 0) == 0 for e in st["timeline"]), st["timeline"]
    assert canary_served(stack, namespace, "smoke") == 0
    assert stack.simulator.served.get(((namespace, "smoke"), "stable"), 0) > 0  # user traffic flowed to stable
    entry = st["history"][0]
    assert entry["result"] == "RolledBack" and "preTraffic hook failed" in entry["reason"], entry
    assert entry["hooks"][0].startswith("preTraffic: Failed"), entry
    hook = next(h for h in st["hooks"] if h["name"] == "preTraffic")
    assert hook["phase"] == "Failed" and "failed" in hook["message"], hook
    # and the evidence names the hook and its Job, which is kept in the sandbox (its pod's logs)
    record = evidence(stack, namespace, st)
    assert record["hooks"][0]["name"] == "preTraffic" and record["hooks"][0]["job"] == hook["job"]
    job = next(j for j in jobs(stack, st["sandboxNamespace"]) if j["metadata"]["name"] == hook["job"])
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in job["status"]["conditions"])
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    assert [e["reason"] for e in events(stack, namespace, "smoke", "HookFailed")] == ["HookFailed"]


def test_passing_pre_traffic_job_lets_the_canary_proceed_and_is_recorded(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a preTraffic smoke test that passes (any image but the failing one completes on KWOK)
    manifest = slo_manifest("smokeok", [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}], hooks={
        "preTraffic": {"image": "registry.example/smoke-test:1", "timeout": "60s"}})
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    follow(stack, namespace, "smokeok", until=("Succeeded", "Stable", "RolledBack"))
    st = status(stack, namespace, "smokeok")
    # then it went on through its steps in order and was promoted, with the hook in status and history
    # (the steps from the rollout's own timeline: on a loaded machine a step can pass between two polls)
    assert st["phase"] in ("Succeeded", "Stable") and st["history"][0]["result"] == "Promoted", st.get("history")
    assert stepped(st) == [50, 100], st["timeline"]
    assert st["history"][0]["hooks"][0].startswith("preTraffic: Succeeded"), st["history"][0]
    assert canary_served(stack, namespace, "smokeok") > 0
    # and the canary got its first weight only after the hook succeeded (timeline order)
    reasons = [e["reason"] for e in st["timeline"]]
    assert reasons.index("HookSucceeded") < reasons.index("StepAdvanced"), reasons


def test_during_analysis_load_job_lets_a_model_without_traffic_reach_a_verdict(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a ModelDeployment that gets no user traffic at all, judged with minSamples 20,
    # and a duringAnalysis load generator (40 requests/s against the canary's Service)
    manifest = slo_manifest("quiet", [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}], hooks={
        "duringAnalysis": {"image": HOOK_RUNS_IMAGE, "timeout": "10m",
                           "env": [{"name": "LOAD_RPS", "value": "40"}]}})
    manifest["metadata"]["annotations"] = {RATE_ANNOTATION: "0"}
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    follow(stack, namespace, "quiet", until=("Succeeded", "Stable", "RolledBack"), timeout=150)
    st = status(stack, namespace, "quiet")
    # then the analysis reached passing verdicts on the generated requests and the canary was promoted
    assert st["history"][0]["result"] == "Promoted", st["history"]
    passed = [e for e in events(stack, namespace, "quiet", "AnalysisPassed")]
    assert len(passed) == 2, passed
    assert stack.simulator.served.get(((namespace, "quiet"), "stable"), 0) == 0  # no user traffic anywhere
    assert canary_served(stack, namespace, "quiet") >= 2 * 20
    assert st["history"][0]["hooks"][0].startswith("duringAnalysis: Stopped"), st["history"][0]
    # and the load Job was removed at promotion
    wait_for("the load Job removed", lambda: not jobs(stack, st["sandboxNamespace"]), timeout=30)


class _Gate(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: GateServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server.calls.append({"body": json.loads(body), "authorization": self.headers.get("Authorization")})
        self.send_response(server.code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class GateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Gate)
        self.code = 503
        self.calls: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/confirm"


@pytest.fixture
def gate() -> Iterator[GateServer]:
    server = GateServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_confirm_rollout_webhook_holds_on_non_200_and_proceeds_on_200(
        stack: Stack, namespace: str, operator: OperatorProcess, gate: GateServer) -> None:
    # given a Secret with the gate's loopback URL and a token (the harness's operator allows 127.0.0.1/32:
    # OperatorProcess.confirm_rollout_allow), and a ModelDeployment gated by it
    token = "s3cr3t-gate-token"
    core = client.CoreV1Api(stack.api)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="tollgate-confirm-rollout"),
        data={"url": base64.b64encode(gate.url.encode()).decode(), "token": base64.b64encode(token.encode()).decode()}))
    manifest = slo_manifest("gated", [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}], hooks={
        "confirmRollout": {"secretName": "tollgate-confirm-rollout", "interval": "1s", "timeout": "2s"}})
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, "gated", "Stable")
    # when 1.1.0 is rolled out and the endpoint answers 503
    start_rollout(stack, namespace, manifest, "1.1.0")
    wait_for("three questions answered 503", lambda: len(gate.calls) >= 3, timeout=60)
    st = status(stack, namespace, "gated")
    # then the canary holds at weight 0, receiving nothing, and status says why
    assert int(st.get("canaryWeight") or 0) == 0 and st["canary"]["version"] == "1.1.0", st
    hook = next(h for h in st["hooks"] if h["name"] == "confirmRollout")
    assert hook["phase"] == "Holding" and "HTTP 503" in hook["message"], hook
    assert canary_served(stack, namespace, "gated") == 0
    # and each question was Flagger's confirm-rollout payload naming the canary, with the bearer token
    call = gate.calls[-1]
    assert call["authorization"] == f"Bearer {token}"
    assert call["body"]["name"] == "gated" and call["body"]["namespace"] == namespace
    assert call["body"]["type"] == "confirm-rollout" and call["body"]["metadata"]["version"] == "1.1.0"
    assert call["body"]["checksum"] == st["canary"]["revision"]
    # when the endpoint answers 200
    gate.code = 200
    follow(stack, namespace, "gated", until=("Succeeded", "Stable", "RolledBack"))
    st = status(stack, namespace, "gated")
    # then the canary proceeds and is promoted, and the token appears nowhere in status or events
    assert st["history"][0]["result"] == "Promoted", st["history"]
    assert st["history"][0]["hooks"][0].startswith("confirmRollout: Succeeded"), st["history"][0]
    assert token not in json.dumps(st)
    assert token not in json.dumps(events(stack, namespace, "gated"))


def synthetic_requests(stack: Stack, namespace: str, name: str) -> float:
    """Requests Prometheus scraped for the canary tagged by the duringAnalysis load (istio dialect's label)."""
    value = stack.prometheus.query_value(
        f'sum(istio_requests_total{{modeldeployment_namespace="{namespace}", modeldeployment="{name}", '
        f'track="canary", tollgate_synthetic="duringAnalysis"}})')
    return value or 0.0


@pytest.mark.parametrize("traffic", ["exclude", "include"])
def test_load_job_traffic_is_tagged_and_counts_in_the_slos_only_when_included(
        stack: Stack, namespace: str, operator: OperatorProcess, traffic: str) -> None:
    # given a ModelDeployment with no user traffic, judged with minSamples 20 in the istio dialect, whose
    # duringAnalysis load generator sends 40 requests/s tagged X-Tollgate-Synthetic, and the choice to
    # exclude or include them
    name = f"tag{traffic[:2]}"
    manifest = slo_manifest(name, [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}], metrics={"profile": "istio"},
                            hooks={"duringAnalysis": {"image": HOOK_RUNS_IMAGE, "timeout": "10m",
                                                      "env": [{"name": "LOAD_RPS", "value": "40"}]},
                                   "syntheticTraffic": traffic})
    manifest["metadata"]["annotations"] = {RATE_ANNOTATION: "0"}
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    if traffic == "include":
        # then the generated requests reach minSamples and the canary is promoted
        follow(stack, namespace, name, until=("Succeeded", "Stable", "RolledBack"), timeout=150)
        st = status(stack, namespace, name)
        assert st["history"][0]["result"] == "Promoted", st["history"]
        assert len(events(stack, namespace, name, "AnalysisPassed")) == 2
        assert synthetic_requests(stack, namespace, name) > 0
        return
    # then the load runs and Prometheus has scraped far more tagged requests than minSamples ...
    wait_for("100 tagged requests scraped", lambda: synthetic_requests(stack, namespace, name) >= 100, timeout=120)
    st = status(stack, namespace, name)
    # ... yet no analysis passed: without them there is no sample, the verdict waits (no data)
    assert not events(stack, namespace, name, "AnalysisPassed"), st.get("analysis")
    assert not [h for h in st.get("history") or [] if h["version"] == "1.1.0" and h["result"] == "Promoted"]
    analysis = next((s for s in st.get("analysis") or [] if s["name"] == "error-rate"), {})
    assert analysis.get("verdict") in (None, "Inconclusive", "Fail"), analysis
    assert int(analysis.get("samples") or 0) < 20, analysis
    assert stack.simulator.served.get(((namespace, name), "stable"), 0) == 0  # no user traffic anywhere
