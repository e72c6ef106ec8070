"""The built-in SLOs gate a canary on each metric profile, through the scrape configuration Tollgate ships.

Prometheus discovers the model pods from the real API server with deploy/prometheus/scrape-config.yaml,
unchanged (only the address it scrapes is redirected to the simulator, which serves each pod's page in
the dialect of that ModelDeployment's profile, with that source's own labels only). So every label the
queries select on (sandbox namespace, ModelDeployment namespace and name, track, version) comes from
the shipped relabelling of real pods. The operator's default profile comes from its flag
(--metrics-profile mlserver, as the chart's modelMetrics.profile sets it); istio and otel come from the
ModelDeployment's spec.metrics.profile.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from integration.runtime.helpers import patch_spec, reasons, stepped
from integration.slo.helpers import evidence, slo, slo_manifest, start_rollout, watch_rollout, why
from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.stack import OperatorProcess, Stack

ERROR_RATE = {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "onNoData": "hold",
              "maxNoDataDuration": "30s"}
LATENCY = {"name": "latency-p99", "max": 0.25, "onNoData": "hold", "maxNoDataDuration": "30s"}
SCORE = {"name": "score-shift", "max": 0.1, "onNoData": "hold", "maxNoDataDuration": "30s", "minSamples": 60}
STEPS = [{"weight": 25}, {"weight": 50}, {"weight": 100}]

PROFILE_SERIES = {  # what each profile's queries must read: the source's own names and matchers
    "mlserver": ("rest_server_requests_total", 'path=~".+/infer"', 'status_code=~"5.."'),
    "istio": ("istio_requests_total", 'reporter="destination"', 'response_code=~"5.."'),
    "otel": ("http_server_request_duration_seconds_count", "", 'http_response_status_code=~"5.."'),
}


def manifest(name: str, profile: str, slos: list[dict[str, object]]) -> dict[str, object]:
    spec: dict[str, object] = {}
    if profile != "mlserver":  # mlserver: the operator's default (its --metrics-profile flag)
        spec["metrics"] = {"profile": profile}
    return slo_manifest(name, slos, steps=STEPS, **spec)


def sandbox_pods(stack: Stack, sandbox: str, name: str) -> set[str]:
    pods = client.CoreV1Api(stack.api).list_namespaced_pod(
        sandbox, label_selector=f"tollgate.dev/modeldeployment={name}").items
    return {str(p.metadata.name) for p in pods}


@pytest.mark.parametrize("profile", ["mlserver", "istio", "otel"])
def test_built_in_slos_promote_a_healthy_canary_and_roll_back_a_faulty_one(
        stack: Stack, namespace: str, operator: OperatorProcess, profile: str) -> None:
    name = f"m-{profile}"
    # given a stable 1.0.0 whose pods are scraped through the shipped relabelling
    manifest_ = manifest(name, profile, [ERROR_RATE, LATENCY, SCORE])
    start_rollout(stack, namespace, manifest_, "1.1.0")
    sandbox = stack.md(namespace, name)["status"]["sandboxNamespace"]
    assert sandbox != namespace

    # then Prometheus holds the source's own series, labelled from the pods by the relabelling alone:
    # namespace = the sandbox (where the pods run), modeldeployment_namespace = the ModelDeployment's
    scraped = stack.prometheus.wait_for(
        requests_selector(profile, modeldeployment_namespace=namespace, modeldeployment=name), timeout=60)
    labels = scraped[0]["metric"]
    assert labels["namespace"] == sandbox and labels["modeldeployment_namespace"] == namespace
    assert labels["track"] in ("stable", "canary") and labels["version"] in ("1.0.0", "1.1.0")
    # (the pod may be gone since: the replicas router scales stable down while the canary serves)
    assert labels["pod"].startswith((f"{name}-stable-", f"{name}-canary-")), labels
    assert labels["job"] == "tollgate-model-pods"

    # when the healthy 1.1.0 runs through its steps, then the built-ins judge it on measured values and
    # it is promoted
    w = watch_rollout(stack, namespace, name, until=("Succeeded", "Stable", "RolledBack"))
    assert w.final["phase"] in ("Succeeded", "Stable"), why(w.final)
    assert w.final["stable"]["version"] == "1.1.0"
    assert w.final["history"][0]["result"] == "Promoted"
    # and it took every step in order, each passing its analysis before the next (the rollout's own
    # timeline: on a loaded machine a step can pass between two polls)
    assert stepped(w.final) == [25, 50, 100], w.final["timeline"]
    assert reasons(w.final, "StepAdvanced", "AnalysisPassed", "AnalysisFailed", "Promoting", "Promoted") == [
        "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed", "StepAdvanced", "AnalysisPassed",
        "Promoting", "Promoted"], w.final["timeline"]
    last = {s["name"]: s for s in w.final["analysis"]}
    for s in last.values():
        # (at 100% stable serves nothing, so a baseline comparison may end on NoData: the known limit of
        # maxIncreaseOverBaseline that the verdicts issue addresses; absolute limits always Pass)
        assert s["verdict"] == "Pass" or (s["verdict"] == "NoData" and s["name"] == "error-rate"), s
    assert last["error-rate"]["value"] == 0.0
    assert 0 < last["latency-p99"]["value"] <= 0.25

    # when 1.2.0 fails 10% of its requests
    stack.set_fault("1.2.0", error_rate=0.1)
    patch_spec(stack, namespace, name, {"model": {"version": "1.2.0", "uri": f"s3://models/{name}/1.2.0"}})
    w = watch_rollout(stack, namespace, name, until=("RolledBack",))

    # then it is rolled back on error-rate, and the evidence shows the query in the profile's dialect
    st = w.final
    assert st["stable"]["version"] == "1.1.0" and st["canaryWeight"] == 0
    assert slo(st, "error-rate")["verdict"] == "Fail"
    record = evidence(stack, namespace, st)
    queries = " ".join(str(q) for q in _values(record) if isinstance(q, str) and "sum by" in q)
    metric, fixed, errors = PROFILE_SERIES[profile]
    assert metric in queries and errors in queries and fixed in queries, queries
    assert "tollgate_sim" not in queries


def _values(obj: object) -> list[object]:
    """Every leaf of a JSON document (the evidence record's layout is the evidence module's business)."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return [obj]
