"""SLO gates on the real stack: the operator process, the real API server, Debian's Prometheus scraping
the traffic simulator, which follows the live split. Faults are injected per model version; every verdict
below comes from real PromQL over real scraped series (1s scrapes, 1s analysis ticks, 5s windows).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from integration.runtime.helpers import reasons, status, stepped
from integration.slo.helpers import (
    ANALYSIS,
    SCRAPE_INTERVAL,
    assert_all_traffic_on_stable,
    events,
    evidence,
    slo,
    slo_manifest,
    start_rollout,
    timeline_seconds,
    watch_rollout,
    why,
)
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

ERROR_RATE = {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "onNoData": "hold",
              "maxNoDataDuration": "30s"}
LATENCY = {"name": "latency-p99", "max": 0.25, "onNoData": "hold", "maxNoDataDuration": "30s"}
# A mean of a few dozen Beta(5, 3) scores wanders by +-0.04: judge the shift on enough of them.
SCORE = {"name": "score-shift", "max": 0.1, "onNoData": "hold", "maxNoDataDuration": "30s", "minSamples": 60}


def test_healthy_canary_promotes_through_every_analysed_step(stack: Stack, namespace: str,
                                                             operator: OperatorProcess) -> None:
    # given a stable 1.0.0 judged on errors, latency and model quality at every step
    manifest = slo_manifest("ranker", [ERROR_RATE, LATENCY, SCORE],
                            steps=[{"weight": 25}, {"weight": 50}, {"weight": 100}])
    # when 1.1.0, exactly as healthy as stable, is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    w = watch_rollout(stack, namespace, "ranker", until=("Succeeded", "Stable", "RolledBack"))
    # then it went through every step in order and was promoted (read from the rollout's own timeline: on a
    # loaded machine a step can pass between two polls)
    assert w.final["phase"] in ("Succeeded", "Stable"), why(w.final)
    assert stepped(w.final) == [25, 50, 100], w.final["timeline"]
    assert w.final["stable"]["version"] == "1.1.0"
    assert w.final["history"][0]["result"] == "Promoted"
    # and each step passed on measured values before the next was entered: one AnalysisPassed per step,
    # all three SLOs Pass
    assert reasons(w.final, "StepAdvanced", "AnalysisPassed", "AnalysisFailed", "Promoting", "Promoted") == [
        "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed",
        "Promoting", "Promoted"], w.final["timeline"]
    passed = sorted(e["message"] for e in events(stack, namespace, "ranker", "AnalysisPassed"))
    assert [m.split(" at ")[0] for m in passed] == ["step 1/3", "step 2/3", "step 3/3"], passed
    last = {s["name"]: s for s in w.final["analysis"]}
    assert set(last) == {"error-rate", "latency-p99", "score-shift"}
    for s in last.values():
        assert s["verdict"] == "Pass" and s["samples"] >= ANALYSIS["minSamples"] and s["failures"] == 0, s
    assert last["error-rate"]["value"] == 0.0
    assert 0 < last["latency-p99"]["value"] <= 0.25
    assert events(stack, namespace, "ranker", "AnalysisFailed") == []


def test_canary_with_ten_percent_errors_is_rolled_back_with_evidence(
        stack: Stack, namespace: str, operator: OperatorProcess, record_property: pytest.RecordProperty,
        capsys: pytest.CaptureFixture[str]) -> None:
    # given a stable 1.0.0 (no errors) and a version 1.1.0 that fails 10% of requests from its first one
    stack.set_fault("1.1.0", error_rate=0.1)
    manifest = slo_manifest("fraud", [ERROR_RATE])
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    w = watch_rollout(stack, namespace, "fraud", until=("RolledBack",))
    st = w.final
    # then it is rolled back: weight 0, the canary gone, stable still 1.0.0, never promoted
    assert st["canaryWeight"] == 0 and st.get("canary") is None
    assert st["stable"]["version"] == "1.0.0"
    assert stepped(st) == [25], st["timeline"]  # its first step, whose pass never came, and no further
    assert st["history"][0]["result"] == "RolledBack"
    # and all traffic is back on stable: the simulator's split and Prometheus both say so
    assert_all_traffic_on_stable(stack, namespace, "fraud")
    # and the failing value is in status and crossed the threshold
    er = slo(st, "error-rate")
    assert er["verdict"] == "Fail" and er["failures"] == 1
    assert er["value"] > 0.05 or er["value"] - er["baseline"] > 0.03, er
    # and the evidence record holds exactly the values that crossed it, with the query as executed
    ev = evidence(stack, namespace, st)
    rec = next(s for s in ev["slos"] if s["name"] == "error-rate")
    assert rec["verdict"] == "Fail"
    assert rec["value"] == er["value"] and rec["baseline"] == er["baseline"]
    assert rec["value"] > 0.05 or rec["value"] - rec["baseline"] > 0.03
    assert rec["samples"] == er["samples"] >= ANALYSIS["minSamples"]
    assert rec["threshold"] == er["threshold"]
    (obs,) = [o for o in ev["observations"] if o["name"] == "error-rate"]
    # (compared with stable by a test, the SLO is judged on the counts since the canary started)
    stream = obs["canaryStream"]
    judged = stream["events"] / stream["samples"] if stream else obs["canary"]["value"]
    # (the window is the policy's 5s, or, for a canary younger than that, its age in whole look intervals of
    # 1s: a range never reaches back before the canary started; the query ran over exactly that range)
    assert judged == er["value"] and obs["window"] in {f"{n}s" for n in range(1, 6)}, obs["window"]
    assert 'code=~"5.."' in obs["query"] and f"[{obs['window']}]" in obs["query"]
    assert ev["canary"]["version"] == "1.1.0" and ev["stable"]["version"] == "1.0.0"
    assert ev["weight"] > 0 and ev["limits"]["failureLimit"] == 0
    reasons = [t["reason"] for t in ev["timeline"]]
    assert "CanaryStarted" in reasons and "StepAdvanced" in reasons and "AnalysisFailed" in reasons
    # and an Event points to the record
    assert any(st["lastIncident"] in e["message"] for e in events(stack, namespace, "fraud", "RolledBack"))
    # report: from the canary's first traffic (its first request is faulty) to weight 0
    seconds = w.seconds_to_zero
    operator_clock = timeline_seconds(st, "StepAdvanced", ("RolledBack",))
    assert seconds is not None and operator_clock is not None
    figure = {"fault": "errorRate 0.1", "seconds_to_weight_0_observed": round(seconds, 2),
              "seconds_step_advanced_to_rolled_back_operator_clock": round(operator_clock, 2),
              "scrape_interval": SCRAPE_INTERVAL, "analysis_interval": ANALYSIS["interval"],
              "window": ANALYSIS["window"], "minSamples": ANALYSIS["minSamples"], "weights": w.weights}
    record_property("fault_to_weight_zero", json.dumps(figure))
    with capsys.disabled():
        print(f"\n[tollgate] fault→weight 0: {json.dumps(figure)}")


def test_latency_regression_is_rolled_back(stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a version that adds 300ms to every request (stable's p99 is about 100ms)
    stack.set_fault("1.1.0", added_latency=0.3)
    start_rollout(stack, namespace, slo_manifest("search", [ERROR_RATE, LATENCY]), "1.1.0")
    # when it is rolled out, then the latency SLO fails and it is rolled back, errors still passing
    w = watch_rollout(stack, namespace, "search", until=("RolledBack",))
    lat = slo(w.final, "latency-p99")
    assert lat["verdict"] == "Fail" and lat["value"] > 0.25, lat
    # on evidence: the window's buckets held the requests slower than the max (engine.limits)
    assert lat["limitPValue"] is not None and lat["limitPValue"] <= 0.01, lat
    # and the error rate did not fail: at most no verdict yet (Inconclusive: at an early look stable's stream
    # can hold fewer than minSamples, its series young; CI on 7dbe842 read that as missing data, NoData)
    er = slo(w.final, "error-rate")
    assert er["verdict"] in ("Pass", "Inconclusive") and er["failures"] == 0, why(w.final)
    assert_all_traffic_on_stable(stack, namespace, "search")
    rec = next(s for s in evidence(stack, namespace, w.final)["slos"] if s["name"] == "latency-p99")
    assert rec["value"] == lat["value"] > 0.25


def test_model_quality_regression_without_http_errors_is_rolled_back(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a version whose predicted scores shift by +0.2 but which answers every request with 200
    stack.set_fault("1.1.0", score_shift=0.2)
    start_rollout(stack, namespace, slo_manifest("churn", [ERROR_RATE, SCORE]), "1.1.0")
    # when it is rolled out
    w = watch_rollout(stack, namespace, "churn", until=("RolledBack",))
    # then the score shift fails while the error rate passed at zero in the same tick
    shift, er = slo(w.final, "score-shift"), slo(w.final, "error-rate")
    assert shift["verdict"] == "Fail" and shift["value"] > 0.1, shift
    # on evidence: both tracks' score histograms showed the distance over the max (engine.limits)
    assert shift["limitPValue"] is not None and shift["limitPValue"] <= 0.01, json.dumps(shift)
    assert er["verdict"] == "Pass" and er["value"] == 0.0, er
    assert er["lastCheckedAt"] == shift["lastCheckedAt"]
    assert_all_traffic_on_stable(stack, namespace, "churn")
    rec = next(s for s in evidence(stack, namespace, w.final)["slos"] if s["name"] == "score-shift")
    assert rec["value"] == shift["value"] > 0.1


@pytest.mark.parametrize(("on_no_data", "outcome"), [("hold", "RolledBack"), ("pass", "Succeeded")])
def test_below_min_samples_there_is_no_verdict_then_the_policy_decides(
        stack: Stack, namespace: str, operator: OperatorProcess, on_no_data: str, outcome: str) -> None:
    # given an SLO needing far more requests than the canary gets, tolerating 8s without a verdict
    never_enough = {**ERROR_RATE, "minSamples": 1_000_000, "onNoData": on_no_data, "maxNoDataDuration": "8s"}
    manifest = slo_manifest("tiny", [never_enough], steps=[{"weight": 25}, {"weight": 100}], deadline="60s")
    # when a healthy version is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    w = watch_rollout(stack, namespace, "tiny", until=("RolledBack", "Succeeded", "Stable"), timeout=90)
    # then while the bound lasted there was no verdict: Inconclusive, no failure, the step held at 25%
    judged = [(s["weight"], a) for s in w.snapshots for a in s["analysis"] if a.get("lastCheckedAt")]
    inconclusive = [(weight, a) for weight, a in judged if a["verdict"] == "Inconclusive"]
    assert len({a["lastCheckedAt"] for _, a in inconclusive}) >= 3, judged[-5:]
    assert all(weight == 25 and a["failures"] == 0 and a["samples"] < 1_000_000 for weight, a in inconclusive)
    first = min(datetime.fromisoformat(a["lastCheckedAt"].replace("Z", "+00:00")) for _, a in inconclusive)
    # and then it followed its policy: hold -> the check fails (rolled back), pass -> ignored (promoted)
    assert w.final["phase"] in (outcome, "Stable" if outcome == "Succeeded" else outcome), w.final
    final = slo(w.final, "error-rate")
    decided = datetime.fromisoformat(final["lastCheckedAt"].replace("Z", "+00:00"))
    assert (decided - first).total_seconds() >= 8 - 1.5, (first, final)  # first tick may be mid-interval
    if on_no_data == "hold":
        assert final["verdict"] == "Fail" and final["samples"] < 1_000_000
        rec = next(s for s in evidence(stack, namespace, w.final)["slos"] if s["name"] == "error-rate")
        assert rec["verdict"] == "Fail" and rec["noDataSince"] and "minSamples 1000000" in rec["threshold"]
    else:
        assert final["verdict"] == "NoData" and final["failures"] == 0
        assert w.final["stable"]["version"] == "1.1.0"


TOKEN = "tg-secret-token-9f3b2c7d41e8"


@pytest.fixture
def token_operator(stack: Stack, namespace: str) -> Iterator[OperatorProcess]:
    """An operator reading its Prometheus bearer token from a Secret (Prometheus itself ignores it)."""
    stack.kubectl("create", "secret", "generic", "prom-auth", "-n", namespace, f"--from-literal=token={TOKEN}")
    op = stack.start_operator(namespaces=[namespace, f"{namespace}-*"],
                              extra_args=["--prometheus-token-secret", f"{namespace}/prom-auth:token"])
    yield op
    op.stop()
    stack.clear_faults()


def test_prometheus_outage_counts_errors_apart_fails_closed_and_never_leaks_the_token(
        stack: Stack, namespace: str, token_operator: OperatorProcess) -> None:
    # given a canary in a long first step, analysed with real data (a Pass recorded)
    manifest = slo_manifest("voice", [ERROR_RATE], steps=[{"weight": 25, "pause": "300s"}, {"weight": 100}],
                            analysis={"consecutiveErrorLimit": 3}, deadline="300s")
    start_rollout(stack, namespace, manifest, "1.1.0")

    def passing() -> bool:
        st = status(stack, namespace, "voice")
        return bool(st.get("analysis")) and slo(st, "error-rate").get("verdict") == "Pass"

    wait_for("a passing analysis at step 1", passing, timeout=60)
    # when Prometheus stops mid-analysis
    stack.prometheus.stop()
    try:
        w = watch_rollout(stack, namespace, "voice", until=("RolledBack",), timeout=60)
    finally:
        stack.prometheus.start()
    # then each tick without Prometheus was an error, counted apart from failures, while the step held
    erroring = [(s["phase"], s["weight"], a) for s in w.snapshots for a in s["analysis"] if a["verdict"] == "Error"]
    held = [a["consecutiveErrors"] for phase, weight, a in erroring if phase == "Progressing" and weight == 25]
    assert held and set(held) <= {1, 2, 3}, erroring
    assert all(a["failures"] == 0 for _, _, a in erroring)
    # and after consecutiveErrorLimit (3) errors the fourth failed closed: rolled back, never promoted
    er = slo(w.final, "error-rate")
    assert er["verdict"] == "Error" and er["consecutiveErrors"] == 4 and er["failures"] == 0, er
    assert w.final["canaryWeight"] == 0 and w.final["stable"]["version"] == "1.0.0"
    assert stepped(w.final) == [25], w.final["timeline"]
    assert all(h["result"] != "Promoted" for h in w.final.get("history", []))
    assert "consecutiveErrorLimit" in w.final["history"][0]["reason"]
    ev = evidence(stack, namespace, w.final)
    assert all(o["error"] for o in ev["observations"]), ev["observations"]
    assert events(stack, namespace, "voice", "AnalysisError")
    # and the operator read its token from the Secret (the API server's audit log says so)
    reads = [r for r in audit.by_operator(audit.read(audit_log(stack.kubeconfig)))
             if r.resource == "secrets" and r.name == "prom-auth" and r.namespace == namespace]
    assert reads and all(r.verb == "get" for r in reads)
    # and the token appears nowhere: operator log, events, status, evidence (neither plain nor base64)
    encoded = base64.b64encode(TOKEN.encode()).decode()
    texts = {
        "operator log": token_operator.log_path.read_text(errors="replace"),
        "events": stack.kubectl("get", "events", "-A", "-o", "json").stdout,
        "status": json.dumps(stack.md(namespace, "voice")),
        "evidence": json.dumps(ev),
    }
    for where, text in texts.items():
        assert TOKEN not in text and encoded not in text, f"the Prometheus token leaked into the {where}"
