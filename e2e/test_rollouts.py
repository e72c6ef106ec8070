"""Scenarios of a release: promote, roll back on errors, latency and model quality, the approval gate,
retrying a rolled-back version, a new version mid-rollout.

Each runs whole on the backend (the local control plane by default): the operator acts, the simulator
follows the split it sets, Prometheus scrapes the simulator, and what a scenario checks is what a
person would look at: the ModelDeployment with kubectl, its Events and evidence, where Prometheus saw
the traffic go, and the operator's own /metrics. tests/integration/slo covers the SLO gates one by one
with the fault present from the canary's first request; here regressions appear mid-rollout.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e_world import E2E_DIALECT, World
from integration.runtime.helpers import md_manifest, stepped
from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.stack import wait_for

SLOS = [
    {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "maxNoDataDuration": "30s"},
    {"name": "latency-p99", "max": 0.25, "maxNoDataDuration": "30s"},
    # a mean of a few dozen Beta(5, 3) scores wanders by +-0.04: judge the shift on enough of them
    {"name": "score-shift", "max": 0.1, "maxNoDataDuration": "30s", "minSamples": 60},
]
ANALYSIS = {"interval": "1s", "window": "5s", "minSamples": 20, "failureLimit": 0, "consecutiveErrorLimit": 3}


def model(world: World, name: str, steps: list[dict[str, Any]], version: str = "1.0.0",
          **spec: Any) -> dict[str, Any]:
    """A ModelDeployment judged every second over 5s windows on errors, p99 latency and score shift."""
    return md_manifest(name, version, runtime=world.runtime, slos=SLOS, rollout={
        "steps": steps, "analysis": ANALYSIS, "progressDeadline": "60s"}, **spec)


def stable(world: World, manifest: dict[str, Any]) -> None:
    world.apply(world.namespace, manifest)
    world.wait_phase(world.namespace, manifest["metadata"]["name"], "Stable", timeout=180)


def reasons(st: dict[str, Any]) -> list[str]:
    return [t["reason"] for t in st.get("timeline") or []]


def metric(text: str, series: str, **labels: str) -> float:
    """The value of one labelled sample of the operator's /metrics text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_promote(world: World) -> None:
    ns = world.namespace
    # given a stable model
    stable(world, model(world, "ranker", [{"weight": 25}, {"weight": 50}, {"weight": 100}]))
    # when a healthy version is released
    world.set_version(ns, "ranker", "1.1.0")
    w = world.watch(ns, "ranker", ("Succeeded", "RolledBack"), min_weight_seen=25)
    # then it passed every step in order and was promoted (read from the rollout's own timeline: on a loaded
    # machine a step can pass between two polls, seen as weights [25, 50])
    assert w.final["phase"] == "Succeeded", w.final
    assert stepped(w.final) == [25, 50, 100], w.final["timeline"]
    polled = [x for x in w.weights if x > 0]
    assert polled == sorted(set(polled)) and set(polled) <= {25, 50, 100}, w.weights
    assert reasons(w.final) == ["CanaryStarted", "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed",
                                "StepAdvanced", "AnalysisPassed", "Promoting", "Promoted"]
    # and kubectl shows it: Ready for `kubectl wait`, the new version in the printer columns
    world.kubectl("wait", "--for=condition=Ready", "modeldeployment/ranker", "-n", ns, "--timeout=30s")
    row = world.kubectl("get", "md", "ranker", "-n", ns, "--no-headers").stdout.split()
    assert "Succeeded" in row and any("1.1.0" in c for c in row), row
    # and all traffic is served by the stable track, now on 1.1.0
    world.wait_traffic_only_on(ns, "ranker", "stable")
    assert world.query(requests_selector(E2E_DIALECT, modeldeployment_namespace=ns, track="stable", version="1.1.0"))
    # and the operator counted the promotion
    assert metric(world.operator_metrics(), "tollgate_promotions_total", namespace=ns, name="ranker") == 1


@pytest.mark.parametrize(("fault", "slo"), [
    ({"error_rate": 0.1}, "error-rate"),
    ({"added_latency": 0.3}, "latency-p99"),
    ({"score_shift": 0.2}, "score-shift"),
], ids=["errors", "latency", "model-quality"])
def test_regression_mid_rollout_is_rolled_back(world: World, fault: dict[str, float], slo: str) -> None:
    ns = world.namespace
    # given a healthy canary that passed 25% and now holds 50% for a while
    stable(world, model(world, "fraud", [{"weight": 25}, {"weight": 50, "pause": "30s"}, {"weight": 100}]))
    world.set_version(ns, "fraud", "1.1.0")
    world.watch(ns, "fraud", ("Progressing",), min_weight_seen=50)
    # when the new version regresses (errors, latency or scores) at 50%
    world.set_fault("1.1.0", **fault)
    w = world.watch(ns, "fraud", ("RolledBack",))
    # then it is rolled back on exactly that SLO, with the values beyond the threshold in its evidence
    st = w.final
    assert st["canaryWeight"] == 0 and st.get("canary") is None and st["stable"]["version"] == "1.0.0"
    failed = [s for s in st["analysis"] if s["verdict"] == "Fail"]
    assert [s["name"] for s in failed] == [slo], st["analysis"]
    ev = world.evidence(ns, st)
    assert ev["weight"] == 50 and ev["step"] == 1
    (rec,) = [s for s in ev["slos"] if s["name"] == slo]
    assert rec["verdict"] == "Fail" and rec["value"] == failed[0]["value"]
    limit = {"error-rate": 0.05, "latency-p99": 0.25, "score-shift": 0.1}[slo]
    assert rec["value"] > limit or (slo == "error-rate" and rec["value"] - rec["baseline"] > 0.03), rec
    # and Prometheus sees all traffic back on stable
    world.wait_traffic_only_on(ns, "fraud", "stable")
    # and the operator counted the rollback, and an Event names the evidence
    assert metric(world.operator_metrics(), "tollgate_rollbacks_total", namespace=ns, name="fraud") == 1
    assert any(st["lastIncident"] in e["message"] for e in world.events(ns, "fraud", "RolledBack"))


def test_approval_gate_waits_then_continues(world: World) -> None:
    ns = world.namespace
    # given a release whose 50% step needs a person's approval
    stable(world, model(world, "chat", [{"weight": 25}, {"weight": 50, "approval": "required"}, {"weight": 100}]))
    world.set_version(ns, "chat", "1.1.0")
    gate = world.watch(ns, "chat", ("AwaitingApproval",), min_weight_seen=25).final
    # then it waits at 25%, analysis still running, for several ticks
    checked = gate.get("lastAnalysisAt")
    wait_for("analysis ticks while waiting", lambda: world.status(ns, "chat").get("lastAnalysisAt") != checked,
             timeout=15)
    time.sleep(3)  # a person takes a while; nothing may move meanwhile
    st = world.status(ns, "chat")
    assert st["phase"] == "AwaitingApproval" and st["canaryWeight"] == 25, st
    assert any(c["type"] == "AwaitingApproval" and c["status"] == "True" for c in st["conditions"])
    # when alice approves
    world.annotate(ns, "chat", "tollgate.dev/approve", "alice")
    # then the rollout continues to promotion, and status records who approved
    w = world.watch(ns, "chat", ("Succeeded", "RolledBack"))
    assert w.final["phase"] == "Succeeded" and [x for x in w.weights if x > 25][:2] == [50, 100], w.weights
    assert w.final["approvedBy"] == "alice"
    assert any("alice" in e["message"] for e in world.events(ns, "chat", "Approved"))


def test_retry_of_a_rolled_back_version(world: World) -> None:
    ns = world.namespace
    manifest = model(world, "ocr", [{"weight": 25, "pause": "5s"}, {"weight": 100}])
    stable(world, manifest)
    # given 1.1.0 was rolled back for errors
    world.set_fault("1.1.0", error_rate=0.2)
    world.set_version(ns, "ocr", "1.1.0")
    first = world.watch(ns, "ocr", ("RolledBack",), min_weight_seen=25).final
    # when the same spec is applied again (e.g. Git sync), then it stays rolled back: no new canary
    released = {**manifest, "spec": {**manifest["spec"], "model": {**manifest["spec"]["model"], "version": "1.1.0",
                                                                   "uri": "s3://models/ocr/1.1.0"}}}
    world.apply(ns, released)
    time.sleep(3)
    st = world.status(ns, "ocr")
    assert st["phase"] == "RolledBack" and st.get("canary") is None and st["lastIncident"] == first["lastIncident"]
    assert len(world.events(ns, "ocr", "CanaryStarted")) == 1
    # when the cause is fixed and bob asks for a retry
    world.clear_faults()
    world.annotate(ns, "ocr", "tollgate.dev/retry", "bob-1")
    # then the same version runs as a canary again, from step one, and is promoted
    w = world.watch(ns, "ocr", ("Succeeded", "RolledBack"), min_weight_seen=25)
    assert w.final["phase"] == "Succeeded" and w.final["stable"]["version"] == "1.1.0", w.final
    assert [h["result"] for h in w.final["history"][:2]] == ["Promoted", "RolledBack"]
    assert any("bob-1" in e["message"] for e in world.events(ns, "ocr", "Retried"))


def test_new_version_mid_rollout_restarts_from_step_one_on_stable(world: World) -> None:
    ns = world.namespace
    # given 1.1.0 holding 50% of the traffic
    stable(world, model(world, "asr", [{"weight": 25}, {"weight": 50, "pause": "10s"}, {"weight": 100}]))
    world.set_version(ns, "asr", "1.1.0")
    world.watch(ns, "asr", ("Progressing",), min_weight_seen=50)
    # when 1.2.0 is applied while that canary runs
    world.set_version(ns, "asr", "1.2.0")
    # then 1.1.0 is superseded, traffic goes back to stable and 1.2.0 starts at step one
    wait_for("1.2.0 as the canary", lambda: (world.status(ns, "asr").get("canary") or {}).get("version") == "1.2.0",
             timeout=30)
    w = world.watch(ns, "asr", ("Succeeded", "RolledBack"), min_weight_seen=25)
    st = w.final
    assert st["phase"] == "Succeeded" and st["stable"]["version"] == "1.2.0", st
    superseded = next(h for h in st["history"] if h["result"] == "Superseded")
    assert superseded["version"] == "1.1.0"
    # the 1.2.0 timeline begins at 0%: its first step came from stable-only traffic, not from 50%
    steps = [t["message"] for t in st["timeline"] if t["reason"] == "StepAdvanced"]
    assert steps[0].startswith("step 1/3: canary weight 0% -> 25%"), steps
    assert [x for x in w.weights if x > 0][:3] == [25, 50, 100], w.weights
    # and Prometheus sees 1.1.0 serving nothing any more
    wait_for("no traffic on 1.1.0", lambda: not any(
        float(r["value"][1]) > 0 for r in world.query(
            f'increase({requests_selector(E2E_DIALECT, modeldeployment_namespace=ns, version="1.1.0")}[3s])')),
        timeout=30)


def test_a_promoted_version_keeps_serving_through_the_next_canarys_rollback(world: World) -> None:
    ns = world.namespace
    # given 1.1.0 promoted over 1.0.0 (status.stable is now a revision the spec has moved on from once
    # the next version is applied: it must still be renderable from status alone)
    stable(world, model(world, "vision", [{"weight": 50}, {"weight": 100}]))
    world.set_version(ns, "vision", "1.1.0")
    promoted = world.watch(ns, "vision", ("Succeeded", "RolledBack"), min_weight_seen=50).final
    assert promoted["phase"] == "Succeeded" and promoted["stable"]["version"] == "1.1.0", promoted
    # when 1.2.0 fails at its first step
    world.set_fault("1.2.0", error_rate=0.5)
    world.set_version(ns, "vision", "1.2.0")
    st = world.watch(ns, "vision", ("RolledBack",), min_weight_seen=50).final
    # then it is rolled back to 1.1.0, never to the 1.0.0 before it, and the rollback completes
    assert st["stable"]["version"] == "1.1.0" and st.get("canary") is None and st["canaryWeight"] == 0, st
    # and 1.1.0 serves all the traffic again: its pods were never scaled away by the rollback
    world.wait_traffic_only_on(ns, "vision", "stable")
    assert world.query(requests_selector(E2E_DIALECT, modeldeployment_namespace=ns, modeldeployment="vision",
                                         track="stable", version="1.1.0"))
    sandbox = st["sandboxNamespace"]
    ready = world.kubectl("get", "deployment", "vision-stable", "-n", sandbox,
                          "-o", "jsonpath={.status.readyReplicas}").stdout
    assert int(ready or 0) >= 1, f"the stable track has {ready or 0} ready replicas after the rollback"
