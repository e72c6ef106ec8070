"""Verdicts that hold up on the real stack (operator process, real API server, Prometheus scraping the
traffic simulator): a bake at full traffic keeps its baseline, and the comparison's evidence is in status."""

from __future__ import annotations

from integration.slo.helpers import events, slo, slo_manifest, start_rollout, watch_rollout, why
from tollgate_testkit.stack import OperatorProcess, Stack

# Compared with stable, and missing data fails after 8 s: before the baseline was carried into the 100%
# step, stable's empty window there was "no data" and a healthy canary failed once the pause outlasted it.
ERROR_RATE = {"name": "error-rate", "max": 0.2, "maxIncreaseOverBaseline": 0.02, "onNoData": "hold",
              "maxNoDataDuration": "8s"}
LATENCY = {"name": "latency-p99", "max": 1.0, "maxIncreaseOverBaseline": 0.05, "onNoData": "hold",
           "maxNoDataDuration": "8s"}


def test_a_healthy_canary_baking_at_full_traffic_longer_than_the_window_promotes(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given stable 1.0.0 and a healthy 1.1.0, both failing 2% of requests (noise, not a regression)
    stack.set_fault("1.0.0", error_rate=0.02)
    stack.set_fault("1.1.0", error_rate=0.02)
    # and a plan whose 100% step pauses 20 s: four times the 5 s window, more than twice maxNoDataDuration
    manifest = slo_manifest("baker", [ERROR_RATE, LATENCY],
                            steps=[{"weight": 50, "pause": "6s"}, {"weight": 100, "pause": "20s"}])
    # when 1.1.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.1.0")
    w = watch_rollout(stack, namespace, "baker", until=("Succeeded", "Stable", "RolledBack"), timeout=150)
    # then it is promoted, never rolled back
    assert w.final["phase"] in ("Succeeded", "Stable"), why(w.final)
    assert w.final["history"][0]["result"] == "Promoted"
    assert events(stack, namespace, "baker", "AnalysisFailed") == []
    # and during the bake the verdicts compared with the stable baseline carried from the 50% step,
    # and said so: the test, the effect with its interval, the p-value and both sample counts
    at_full = [s for snap in w.snapshots if snap["weight"] == 100 for s in snap["analysis"]
               if s["name"] == "error-rate" and s.get("baselineSource") == "carried"]
    assert at_full, [snap for snap in w.snapshots if snap["weight"] == 100][-3:]
    seen = at_full[-1]
    assert seen["test"] == "two-proportion" and "step 1 (50% canary)" in seen["baselineFrom"]
    assert seen["effectLower"] <= seen["effect"] <= seen["effectUpper"]
    assert 0 < seen["pValue"] <= 1 and seen["streamSamples"] >= 20 and seen["baselineSamples"] >= 20
    latency = [s for snap in w.snapshots if snap["weight"] == 100 for s in snap["analysis"]
               if s["name"] == "latency-p99" and s.get("test") == "mann-whitney"]
    assert latency and latency[-1]["verdict"] in ("Pass", "Inconclusive"), latency[-1:]


def test_a_regression_is_rolled_back_as_soon_as_it_is_significant_with_its_evidence(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given stable 1.0.0 at 1% errors and 1.2.0 at 30%: a regression far beyond the 2 pp margin
    stack.set_fault("1.0.0", error_rate=0.01)
    stack.set_fault("1.2.0", error_rate=0.3)
    # (an absolute limit out of the way: the comparison with stable must be what rolls it back)
    manifest = slo_manifest("regress", [{**ERROR_RATE, "max": 0.9}],
                            steps=[{"weight": 50, "pause": "60s"}, {"weight": 100}])
    # when 1.2.0 is rolled out
    start_rollout(stack, namespace, manifest, "1.2.0")
    w = watch_rollout(stack, namespace, "regress", until=("RolledBack",), timeout=90)
    # then it is rolled back long before its 60 s step ends, on a significant comparison
    failed = slo(w.final, "error-rate")
    assert failed["verdict"] == "Fail" and failed["test"] == "two-proportion", failed
    assert failed["pValue"] <= 0.01 and failed["effectLower"] > 0.02, failed
    assert failed["baselineSource"] == "live"
