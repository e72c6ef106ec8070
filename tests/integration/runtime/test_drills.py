"""Drills on the real control plane: `kubectl tollgate drill kill-switch|rollback` against the operator as
its own process, with Prometheus scraping the operator's metrics and the simulator serving the traffic.

Each drill is asked for with the plugin (a separate process, as a person would), the flip is seen in the
API server's own watch of the router's Service, the time in status.lastDrill, and the same time in
Prometheus as tollgate_drill_seconds, scraped from the operator.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, watch

from integration.cli.plugin import data, ok, tollgate
from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

FAST = {"analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "30s"}


def _whoami(stack: Stack) -> str:
    return stack.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()


def _selectors_since(stack: Stack, sandbox: str, service: str, resource_version: str) -> list[str]:
    """The track the router's Service selected at each change after `resource_version` ("main": both),
    as the API server's watch replays them."""
    seen: list[str] = []
    w = watch.Watch()
    for event in w.stream(client.CoreV1Api(stack.api).list_namespaced_service, sandbox,
                          resource_version=resource_version, timeout_seconds=2):
        obj = event["object"]
        if obj.metadata.name == service:
            track = (obj.spec.selector or {}).get("tollgate.dev/track", "main")
            if not seen or seen[-1] != track:
                seen.append(track)
    return seen


def _drill_metric(stack: Stack, namespace: str, name: str, kind: str) -> float | None:
    return stack.prometheus.query_value(
        f'tollgate_drill_seconds{{job="tollgate-operator",namespace="{namespace}",name="{name}",kind="{kind}"}}')


def _deployment_names(stack: Stack, sandbox: str) -> set[str]:
    return {d.metadata.name for d in client.AppsV1Api(stack.api).list_namespaced_deployment(sandbox).items}


def test_kill_switch_drill_flips_to_the_fallback_and_back_and_records_its_time(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    # given a stable 3.0.0 with fallback 2.9.0 pinned
    apply(stack, namespace, md_manifest("chat", "3.0.0", replicas=2, fallback={"version": "2.9.0"}, rollout=FAST))
    sandbox = wait_phase(stack, namespace, "chat", "Stable")["sandboxNamespace"]
    before = client.CoreV1Api(stack.api).list_namespaced_service(sandbox).metadata.resource_version
    # when a kill-switch drill is asked for with the plugin, waiting for its outcome
    res = ok(tollgate(kc, "drill", "kill-switch", "chat", "-n", namespace, "--wait", "--timeout", "60s"))
    # then it passed, and says how long traffic took to reach the fallback
    assert "kill-switch drill Passed" in res.stdout and "time to fallback" in res.stdout, res.stdout
    st = status(stack, namespace, "chat")
    drill = st["lastDrill"]
    assert drill["kind"] == "kill-switch" and drill["outcome"] == "Passed", drill
    assert (drill["fromVersion"], drill["toVersion"]) == ("3.0.0", "2.9.0")
    assert drill["secondsToFallback"] > 0 and drill["secondsToRestore"] >= 0
    assert drill["startedAt"] < drill["fallbackAt"] <= drill["restoredAt"]
    assert drill["requestedBy"].startswith(_whoami(stack) + "@")
    # and the router really flipped: the Service selected the fallback, then stable again
    seen = _selectors_since(stack, sandbox, "chat", before)
    assert seen[-2:] == ["fallback", "stable"], seen
    # and the previous state is back: stable serves, no kill switch, the fallback track removed
    assert st["phase"] == "Stable" and not st.get("killSwitchActive") and st["stable"]["version"] == "3.0.0"
    wait_for("fallback removed", lambda: "chat-fallback" not in _deployment_names(stack, sandbox), timeout=20)
    # and who asked is in the history
    assert st["history"][0]["result"] == "KillSwitchDrill" and st["history"][0]["actedBy"] == drill["requestedBy"]
    # and Prometheus, scraping the operator, has the same time as status
    value = wait_for("tollgate_drill_seconds scraped", lambda: _drill_metric(stack, namespace, "chat", "kill-switch"),
                     timeout=30, interval=0.5)
    assert value == drill["secondsToFallback"]
    # and `status` shows the last drill
    assert "Last drill:    kill-switch Passed" in ok(tollgate(kc, "status", "chat", "-n", namespace)).stdout


def test_rollback_drill_rolls_a_canary_back_as_a_drill_and_records_its_time(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    # given a canary 1.1.0 taking 25% and waiting at an approval gate
    apply(stack, namespace, md_manifest("ranker", "1.0.0", rollout={
        **FAST, "steps": [{"weight": 25}, {"weight": 50, "approval": "required"}, {"weight": 100}]}))
    wait_phase(stack, namespace, "ranker", "Stable")
    patch_spec(stack, namespace, "ranker", {"model": {"version": "1.1.0", "uri": "s3://models/ranker/1.1.0"}})
    st = wait_phase(stack, namespace, "ranker", "AwaitingApproval", timeout=90)
    assert st["canaryWeight"] == 25
    canary = st["canary"]["revision"]
    # when a rollback drill is asked for
    res = ok(tollgate(kc, "drill", "rollback", "ranker", "-n", namespace, "--wait", "--timeout", "60s"))
    # then the canary is rolled back, as a drill, and the time until stable took every request is recorded
    assert "rollback drill Passed" in res.stdout, res.stdout
    st = status(stack, namespace, "ranker")
    drill = st["lastDrill"]
    assert drill["kind"] == "rollback" and drill["outcome"] == "Passed" and drill["secondsToFallback"] > 0
    assert (drill["fromVersion"], drill["toVersion"]) == ("1.1.0", "1.0.0")
    assert st.get("canary") is None and st["canaryWeight"] == 0 and st["rolledBackRevision"] == canary
    entry = st["history"][0]
    assert entry["result"] == "DrillRolledBack" and entry["actedBy"] == drill["requestedBy"]
    assert entry["incident"] == drill["incident"] == st["lastIncident"]
    # and the evidence says it was a drill, not a regression
    record = data(tollgate(kc, "evidence", "ranker", "-n", namespace, "-o", "json"))
    assert record["result"] == "DrillRolledBack" and "not a regression" in record["message"]
    # and every request is on stable, and stays there: the rolled-back canary gets no traffic again
    svc = client.CoreV1Api(stack.api).read_namespaced_service("ranker", st["sandboxNamespace"])
    assert svc.spec.selector.get("tollgate.dev/track") == "stable"
    value = wait_for("tollgate_drill_seconds scraped", lambda: _drill_metric(stack, namespace, "ranker", "rollback"),
                     timeout=30, interval=0.5)
    assert value == drill["secondsToFallback"]
    st = status(stack, namespace, "ranker")
    assert st["phase"] == "RolledBack" and st.get("canary") is None


def test_a_drill_without_a_fallback_is_refused_by_the_plugin_and_by_the_operator(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    # given a stable version and no spec.fallback (lastKnownGood is the version serving)
    apply(stack, namespace, md_manifest("vision", "1.0.0", replicas=2, rollout=FAST))
    sandbox = wait_phase(stack, namespace, "vision", "Stable")["sandboxNamespace"]
    # when the plugin is asked for a kill-switch drill, then it refuses with the fix and writes nothing
    res = tollgate(kc, "drill", "kill-switch", "vision", "-n", namespace)
    assert res.returncode == 5, res.stdout + res.stderr
    assert "no fallback pinned" in res.stderr and "spec.fallback.version" in res.stderr
    # and a rollback drill with no canary is refused too
    res = tollgate(kc, "drill", "rollback", "vision", "-n", namespace)
    assert res.returncode == 5 and "no canary in progress" in res.stderr
    annotations: dict[str, Any] = stack.md(namespace, "vision")["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("tollgate.dev/drill")], annotations
    # when the annotation is written anyway (from Git, say), then the operator refuses it in status
    stack.kubectl("annotate", "modeldeployment", "vision", "-n", namespace,
                  f"tollgate.dev/drill-kill-switch={_whoami(stack)}@2026-12-02T12:00:00Z")

    def refused() -> dict[str, Any] | None:
        drill: dict[str, Any] | None = status(stack, namespace, "vision").get("lastDrill")
        return drill if drill and drill.get("outcome") == "Refused" else None

    drill = wait_for("the operator's refusal", refused, timeout=30)
    assert "spec.fallback.version" in drill["message"] and drill.get("secondsToFallback") is None
    # and nothing moved: no kill switch, no fallback track, the Service on stable
    st = status(stack, namespace, "vision")
    assert st["phase"] == "Stable" and not st.get("killSwitchActive")
    assert "vision-fallback" not in _deployment_names(stack, sandbox)
    svc = client.CoreV1Api(stack.api).read_namespaced_service("vision", sandbox)
    assert svc.spec.selector.get("tollgate.dev/track") == "stable"
    assert "kill-switch Refused" in ok(tollgate(kc, "status", "vision", "-n", namespace)).stdout
