"""The bake window on the real stack (issue 20): the operator process, the real API server, Prometheus
scraping the traffic simulator. A version is promoted into a bake window; a regression injected inside the
window rolls it back to the last known good version with evidence, and the same regression after the
window does not. A first version (nothing served before it) is judged too: failing inside its window, it
is marked failed and all traffic goes to the fallback."""

from __future__ import annotations

import time

from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from integration.slo.helpers import (
    ANALYSIS,
    events,
    evidence,
    slo,
    slo_manifest,
    watch_rollout,
)
from tollgate_testkit.dialects import errors_selector, requests_selector
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

ERROR_RATE = {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "onNoData": "hold",
              "maxNoDataDuration": "30s"}


def roll_out_with_bake(stack: Stack, namespace: str, name: str, version: str, window: str) -> None:
    """A stable 1.0.0 (no bake window for its first deployment), then `version` with a bake window."""
    apply(stack, namespace, slo_manifest(name, [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}]))
    wait_phase(stack, namespace, name, "Stable")
    patch_spec(stack, namespace, name, {"rollout": {"bakeWindow": window},
                                        "model": {"version": version, "uri": f"s3://models/{name}/{version}"}})


def stable_error_ratio(stack: Stack, namespace: str, name: str, version: str, window: str = "5s") -> float | None:
    """The error ratio Prometheus scraped for `version` on the stable track over the last `window`."""
    labels = {"modeldeployment_namespace": namespace, "modeldeployment": name, "track": "stable", "version": version}
    sel = requests_selector(stack.simulator.dialect, **labels)
    errors = errors_selector(stack.simulator.dialect, **labels)
    return stack.prometheus.query_value(
        f"sum(increase({errors}[{window}])) / sum(increase({sel}[{window}]))")


def requests_of(stack: Stack, namespace: str, name: str, version: str, window: str = "3s") -> float:
    sel = requests_selector(stack.simulator.dialect, modeldeployment_namespace=namespace, modeldeployment=name,
                            version=version)
    value = stack.prometheus.query_value(f"sum(increase({sel}[{window}]))")
    return value or 0.0


def test_a_regression_inside_the_bake_window_rolls_back_to_last_known_good_with_evidence(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given 1.1.0, healthy through its canary, promoted into a 2-minute bake window over a stable 1.0.0
    roll_out_with_bake(stack, namespace, "bake-in", "1.1.0", "2m")
    w = watch_rollout(stack, namespace, "bake-in", until=("Baking", "RolledBack", "Succeeded"))
    st = w.final
    assert st["phase"] == "Baking", st.get("message")
    assert st["stable"]["version"] == "1.1.0" and st["lastKnownGood"]["version"] == "1.0.0"
    bake = st["bake"]
    assert bake["version"] == "1.1.0" and bake["window"] == "2m" and bake["rollbackTo"] == "1.0.0"
    assert bake["until"] > bake["since"]
    # (1.0.0's measurement during the canary is carried as the baseline of the window)
    assert st["baselines"] and st["baselines"][0]["samples"] >= ANALYSIS["minSamples"]
    # when 1.1.0, now serving all traffic, starts failing 30% of its requests
    stack.set_fault("1.1.0", error_rate=0.3)
    # (no canary takes traffic now, so wait on the phase alone)
    st = wait_phase(stack, namespace, "bake-in", "RolledBack", "Succeeded", timeout=110)
    # then it is rolled back inside the window: 1.0.0 is stable again and 1.1.0 stays rolled back
    assert st["phase"] == "RolledBack", st.get("message")
    assert st["stable"]["version"] == "1.0.0" and st["lastKnownGood"]["version"] == "1.0.0"
    assert st.get("bake") is None and st["rolledBackRevision"] == bake["revision"]
    assert [h["result"] for h in st["history"][:2]] == ["RolledBack", "Promoted"]
    er = slo(st, "error-rate")
    assert er["verdict"] == "Fail" and (er["value"] > 0.05 or er.get("test")), er
    # and the evidence holds the window, the failing value as judged, and the baseline it was judged against
    ev = evidence(stack, namespace, st)
    assert ev["bake"]["version"] == "1.1.0" and ev["bake"]["until"] == bake["until"]
    assert ev["at"] < bake["until"]
    assert ev["canary"]["version"] == "1.1.0" and ev["stable"]["version"] == "1.0.0" and ev["weight"] == 100
    rec = next(s for s in ev["slos"] if s["name"] == "error-rate")
    assert rec["verdict"] == "Fail" and rec["value"] == er["value"]
    (obs,) = [o for o in ev["observations"] if o["name"] == "error-rate"]
    stream = obs["canaryStream"]
    judged = stream["events"] / stream["samples"] if stream and stream["samples"] else obs["canary"]["value"]
    assert judged == er["value"]
    assert ev["baselines"][0]["name"] == "error-rate"
    reasons = [t["reason"] for t in ev["timeline"]]
    assert "Promoted" in reasons and "BakeStarted" in reasons and "AnalysisFailed" in reasons
    assert any(st["lastIncident"] in e["message"] for e in events(stack, namespace, "bake-in", "RolledBack"))
    # and the traffic went back: Prometheus sees 1.0.0 serving and 1.1.0 serving nothing
    wait_for("1.0.0 serving, 1.1.0 not", lambda: requests_of(stack, namespace, "bake-in", "1.1.0") == 0
             and requests_of(stack, namespace, "bake-in", "1.0.0") > 0, timeout=60, interval=0.5)


def test_the_same_regression_after_the_bake_window_does_not_roll_back(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given 1.2.0 promoted into a 10-second bake window, healthy through it
    roll_out_with_bake(stack, namespace, "bake-out", "1.2.0", "10s")
    w = watch_rollout(stack, namespace, "bake-out", until=("Succeeded", "RolledBack"), timeout=150)
    st = w.final
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["lastKnownGood"]["version"] == "1.2.0" and st.get("bake") is None
    wait_for("the BakeCompleted Event", lambda: events(stack, namespace, "bake-out", "BakeCompleted"), timeout=30)
    assert [e["reason"] for e in events(stack, namespace, "bake-out", "BakeCompleted")] == ["BakeCompleted"]
    # when 1.2.0 starts failing 30% of its requests, and Prometheus has seen it over a whole analysis window
    stack.set_fault("1.2.0", error_rate=0.3)
    wait_for("the regression in Prometheus", lambda: (stable_error_ratio(
        stack, namespace, "bake-out", "1.2.0") or 0) > 0.2, timeout=60, interval=0.5)
    time.sleep(5)  # five more analysis intervals: a window still open would have rolled back by now
    # then nothing was rolled back: 1.2.0 serves and stays the last known good version
    st = status(stack, namespace, "bake-out")
    assert st["phase"] == "Succeeded" and st["stable"]["version"] == "1.2.0", st.get("message")
    assert st["lastKnownGood"]["version"] == "1.2.0"
    assert st["history"][0]["result"] == "Promoted"
    assert events(stack, namespace, "bake-out", "RolledBack") == []


def test_a_first_version_failing_in_its_bake_window_is_marked_failed_and_all_traffic_goes_to_the_fallback(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a first version 2.0.0 that fails 30% of its requests, deployed with a 2-minute bake window and a
    # pinned fallback 1.9.0 (nothing served before it: there is no version to roll back to)
    stack.set_fault("2.0.0", error_rate=0.3)
    manifest = md_manifest("first", "2.0.0", slos=[{"name": "error-rate", "max": 0.05}],
                           fallback={"version": "1.9.0"}, rollout={
                               "steps": [{"weight": 50}, {"weight": 100}], "analysis": ANALYSIS,
                               "progressDeadline": "30s", "bakeWindow": "2m"})
    apply(stack, namespace, manifest)
    # when it is Ready it bakes on its absolute limits
    st = wait_phase(stack, namespace, "first", "Baking", "Fallback", "Stalled", "Stable", timeout=60)
    assert st["phase"] == "Baking", st.get("message")
    bake = st["bake"]
    assert bake["version"] == "2.0.0" and bake["rollbackTo"] == "1.9.0" and st.get("lastKnownGood") is None
    # then inside the window it is marked failed with evidence, and all traffic goes to the fallback
    st = wait_phase(stack, namespace, "first", "Fallback", "Stalled", "Stable", timeout=90)
    assert st["phase"] == "Fallback", st.get("message")
    assert st["killSwitchActive"] is True and st["rolledBackRevision"] == bake["revision"]
    assert st["history"][0]["result"] == "Failed" and st["history"][0]["incident"] == st["lastIncident"]
    assert slo(st, "error-rate")["verdict"] == "Fail"
    ev = evidence(stack, namespace, st)
    assert ev["bake"]["version"] == "2.0.0" and ev["canary"]["version"] == "2.0.0"
    assert ev["stable"]["version"] == "1.9.0"
    # and Prometheus sees the fallback serving and the failed version serving nothing
    wait_for("1.9.0 serving, 2.0.0 not", lambda: requests_of(stack, namespace, "first", "2.0.0") == 0
             and requests_of(stack, namespace, "first", "1.9.0") > 0, timeout=90, interval=0.5)
    # and it stays there: the spec still asks for the failed version
    assert status(stack, namespace, "first")["phase"] == "Fallback"
