"""Shadow steps (issue 21) on the local control plane: the operator process, the real API server, KWOK running
the pods, Prometheus scraping the traffic simulator, which follows the HTTPRoute as a gateway would: its
weights send each user request to one backend, and its RequestMirror filter copies `percent` of them to
the canary, whose pods answer the copies (and count them in their metrics) while the user gets stable's
answer. `Simulator.user_responses` counts the answers users got, per track.

The real proof (Traefik on the real node, requests counted at the gateway and at the model server) is the
real-node scenario; this is the control plane's half: routes, verdicts, rollback, evidence and status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from integration.runtime.helpers import status, wait_phase
from integration.slo.helpers import canary_requests, events, evidence, slo_manifest, start_rollout
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

ERROR_RATE = {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "onNoData": "hold",
              "maxNoDataDuration": "30s"}
GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "inference", "namespace": "gateways"}]}}
STEPS = [{"shadow": {"percent": 50}, "pause": "5s"}, {"weight": 50}, {"weight": 100}]
# The healthy rollout holds its steps long enough for whole 5s windows, so status.served is read at each of them.
HELD_STEPS = [{"shadow": {"percent": 50}, "pause": "10s"}, {"weight": 50, "pause": "20s"}, {"weight": 100}]


def counts(stack: Stack, namespace: str, name: str) -> tuple[int, int]:
    """(answers users got from the canary, copies mirrored to it) since the simulator started."""
    key = (namespace, name)
    return (stack.simulator.user_responses.get((key, "canary"), 0), stack.simulator.mirrored.get((key, "canary"), 0))


def route_rule(stack: Stack, sandbox: str, name: str) -> dict[str, Any]:
    route = json.loads(stack.kubectl("get", "httproute", name, "-n", sandbox, "-o", "json").stdout)
    (rule,) = route["spec"]["rules"]
    return dict(rule)


def mirror_of(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in rule.get("filters") or [] if f.get("type") == "RequestMirror"]


def in_shadow(st: dict[str, Any]) -> bool:
    return (st.get("canary") is not None and st.get("currentStep") == 0 and st.get("canaryMirror") == 50
            and st.get("canaryWeight") == 0)


def test_a_healthy_version_passes_its_shadow_step_with_no_user_on_it_then_takes_weighted_steps(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a gatewayAPI ModelDeployment whose plan starts with a 50% shadow step
    manifest = slo_manifest("mirrored", [ERROR_RATE], steps=HELD_STEPS, traffic=GATEWAY)
    # when a healthy 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    def shadow_status() -> dict[str, Any] | None:
        current = status(stack, namespace, "mirrored")
        return current if in_shadow(current) else None

    st = wait_for("the shadow step", shadow_status, timeout=60, interval=0.2)
    sandbox = st["sandboxNamespace"]
    # then status shows a shadow step, and the route mirrors 50% to the canary Service with no user weight on it
    assert st["steps"][0]["mirror"] == 50 and st["steps"][0]["weight"] == 0, st["steps"]
    rule = route_rule(stack, sandbox, "mirrored")
    weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
    assert weights["mirrored-canary"] == 0 and weights["mirrored-stable"] == 100, weights
    (mirror,) = mirror_of(rule)
    assert mirror["requestMirror"]["percent"] == 50, rule
    assert (mirror["requestMirror"]["backendRef"]["name"], mirror["requestMirror"]["backendRef"]["port"]) == (
        "mirrored-canary", 8080), rule
    # and the canary answers mirrored copies (Prometheus sees its requests) while no user got its answer
    def mirrored_while_shadow() -> bool:
        users, copies = counts(stack, namespace, "mirrored")
        return copies >= 20 and users == 0 and in_shadow(status(stack, namespace, "mirrored"))

    wait_for("copies answered by the canary during the shadow step", mirrored_while_shadow, timeout=30, interval=0.2)
    wait_for("Prometheus sees the canary's requests", lambda: canary_requests(stack, namespace, "mirrored", "canary",
                                                                               window="5s") > 0, timeout=30)
    # and status.served, counted by the model servers, gives users 0% from the canary: its requests are copies
    def served_in_shadow() -> dict[str, Any] | None:
        current = status(stack, namespace, "mirrored")
        served = current.get("served") or {}
        return served if in_shadow(current) and served.get("mirror") == 50 and served.get("mirroredRequests") else None

    served = wait_for("a served share measured in the shadow step", served_in_shadow, timeout=30, interval=0.2)
    print(f"served in the shadow step: {served}")
    assert (served["canaryPercent"], served["canaryRequests"], served["weight"]) == (0.0, 0, 0), served
    # (mirroredPercent is not bounded here: over a window that began before the step (blended) or on a series
    # younger than the window, Prometheus' extrapolated increase() read 137.8% for a 50% mirror in a CI run)
    assert served["stableRequests"] > 0 and served["mirroredRequests"] > 0 and served["mirroredPercent"] > 0, served
    # and at the 50% step, over a window that began once the simulator (the gateway) sent users to the canary,
    # the canary served about half of the users' requests
    wait_for("users answered by the canary", lambda: counts(stack, namespace, "mirrored")[0] > 0, timeout=60,
             interval=0.1)
    switched = datetime.now(UTC)
    print(f"the 50% step started at {status(stack, namespace, 'mirrored').get('stepStartedAt')}, the simulator's "
          f"users first got canary answers by {switched.isoformat()}")

    def served_at_fifty() -> dict[str, Any] | None:
        current = status(stack, namespace, "mirrored")
        served = current.get("served") or {}
        after = served.get("at") and datetime.fromisoformat(served["at"]) >= switched + timedelta(seconds=5)
        return served if current.get("canaryWeight") == 50 and served.get("weight") == 50 and after else None

    served = wait_for("a served share measured at the 50% step", served_at_fifty, timeout=60, interval=0.2)
    print(f"served at the 50% step: {served}")
    assert served.get("mirroredRequests") is None and served["window"] == "5s", served
    assert served["canaryRequests"] > 0 and served["stableRequests"] > 0, served
    assert 35.0 <= served["canaryPercent"] <= 65.0, served
    # when its analysis passes, it proceeds to the weighted steps and promotes
    st = wait_phase(stack, namespace, "mirrored", "Succeeded", "Stable", timeout=120)
    assert st["stable"]["version"] == "1.1.0" and st["history"][0]["result"] == "Promoted", st["history"]
    advanced = [e["message"] for e in st["timeline"] if e["reason"] == "StepAdvanced"]
    assert advanced[0].startswith("step 1/3: shadow, 50% of requests mirrored"), advanced
    assert any("-> 50%" in m for m in advanced), advanced
    # and users got the new version's answers only once it had a weight; the mirror is gone from the route
    assert counts(stack, namespace, "mirrored")[0] > 0
    assert st.get("served") is None, st  # promoted: no canary, no share
    wait_for("route without the mirror", lambda: mirror_of(route_rule(stack, sandbox, "mirrored")) == [], timeout=10)


def test_a_faulty_version_fails_its_shadow_step_and_is_rolled_back_having_answered_no_user(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given the same plan, and 1.1.0 failing 30% of the requests it answers
    manifest = slo_manifest("shadowbad", [ERROR_RATE], steps=STEPS, traffic=GATEWAY)
    stack.set_fault("1.1.0", error_rate=0.3)
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    st = wait_phase(stack, namespace, "shadowbad", "RolledBack", "RollingBack", timeout=90)
    # then its shadow step's analysis rolled it back, like a canary's: status, history, Events, evidence
    assert st.get("canary") is None and st["canaryWeight"] == 0 and st["canaryMirror"] == 0, st
    assert st["history"][0]["result"] == "RolledBack" and st["history"][0]["version"] == "1.1.0", st["history"]
    assert "error-rate" in st["history"][0]["reason"], st["history"][0]
    assert events(stack, namespace, "shadowbad", "RolledBack")
    assert events(stack, namespace, "shadowbad", "AnalysisFailed")
    record = evidence(stack, namespace, st)
    assert record["step"] == 0 and record["weight"] == 0, record
    assert record["shadow"] == {"mirrorPercent": 50, "userWeight": 0}, record
    failed = [s for s in record["slos"] if s["name"] == "error-rate"]
    assert failed and failed[0]["verdict"] == "Fail", record["slos"]
    # and the mirror is gone from the route, all users on stable
    sandbox = st["sandboxNamespace"]
    wait_for("route without the mirror", lambda: mirror_of(route_rule(stack, sandbox, "shadowbad")) == [], timeout=10)
    rule = route_rule(stack, sandbox, "shadowbad")
    assert {b["name"]: b["weight"] for b in rule["backendRefs"]}["shadowbad-stable"] == 100
    # and the new version answered mirrored copies (that is what it was judged on) but not one user
    users, copies = counts(stack, namespace, "shadowbad")
    assert copies > 0 and users == 0, (users, copies)
    # and no status it ever wrote gave it a user (the timeline's weights)
    assert all(int(e.get("weight") or 0) == 0 for e in st["timeline"]), st["timeline"]
