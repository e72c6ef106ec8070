"""A real MLServer, serving small real scikit-learn models trained here, judged by the built-in SLOs.

Three MLServer 1.7 processes (one per model version) serve models that examples/mlserver/train.py
trains at test time: 1.0.0 and 1.1.0 on the same synthetic problem, 1.2.0 on inverted labels (a real
model whose scores shift). Real V2 inference requests go to the server of the version each track runs,
in the shares of the live split. Prometheus discovers the ModelDeployment's pods from the real API
server with the shipped scrape configuration and scrapes, for each pod, the real server of its version
(the pods run on KWOK nodes, so only the address is redirected; every label comes from the shipped
relabelling). The operator judges with the `mlserver` profile, its default.

This runs the server as local processes; the real-node issue runs the same image in real pods.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from integration.runtime.helpers import apply, md_manifest, patch_spec, wait_phase
from integration.slo.helpers import slo, watch_rollout, why
from tollgate_testkit.mlserver import ModelServer, Traffic, serving
from tollgate_testkit.prometheus import PodDiscovery, Redirect
from tollgate_testkit.stack import OperatorProcess, Stack, simulator_discovery, wait_for

NAME = "fraud"
VERSIONS = {"1.0.0": {"seed": 1}, "1.1.0": {"seed": 2}, "1.2.0": {"seed": 3, "flip_labels": True}}
SLOS = [
    {"name": "error-rate", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "60s"},
    {"name": "latency-p99", "max": 2.0, "onNoData": "hold", "maxNoDataDuration": "60s"},
    {"name": "score-shift", "max": 0.1, "onNoData": "hold", "maxNoDataDuration": "60s", "minSamples": 60},
    {"name": "invalid-output-rate", "max": 0.01, "onNoData": "hold", "maxNoDataDuration": "60s"},
]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ModelServer]]:
    with serving(VERSIONS, name=NAME) as running:
        yield running


@pytest.fixture
def scraped_from_servers(stack: Stack, namespace: str, servers: dict[str, ModelServer]) -> Iterator[None]:
    """The shipped pod discovery, with this namespace's pods scraped from the real server of their version."""
    own = tuple(
        Redirect(server.metrics_address, path="/metrics",
                 source_labels=("__meta_kubernetes_pod_label_tollgate_dev_modeldeployment_namespace",
                                "__meta_kubernetes_pod_label_tollgate_dev_version"),
                 regex=f"{re.escape(namespace)};{re.escape(version)}")
        for version, server in servers.items())
    default = simulator_discovery(stack.kubeconfig, stack.simulator)
    stack.prometheus.reload(stack.operator_targets(),
                            pods=PodDiscovery(stack.kubeconfig, redirects=(*default.redirects, *own)))
    yield
    stack.prometheus.reload(stack.operator_targets(), pods=default)


def test_real_mlserver_metrics_promote_a_healthy_model_and_roll_back_a_shifted_one(
        stack: Stack, namespace: str, operator: OperatorProcess, servers: dict[str, ModelServer],
        scraped_from_servers: None) -> None:
    # given fraud at 1.0.0 on one replica, its metrics on MLServer's metrics port, judged every second
    manifest = md_manifest(NAME, "1.0.0", replicas=1, slos=SLOS,
                           metrics={"port": 8082},
                           runtime={"image": "registry.example/mlserver:1.7.1", "port": 8080,
                                    "readinessPath": "/v2/health/ready"},
                           rollout={"steps": [{"weight": 25}, {"weight": 50}, {"weight": 100}],
                                    "analysis": {"interval": "1s", "window": "10s", "minSamples": 20,
                                                 "failureLimit": 0, "consecutiveErrorLimit": 3},
                                    "progressDeadline": "30s"})
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, NAME, "Stable")
    # and real requests, following the live split, to the server of each track's version
    traffic = Traffic(stack.simulator.splits, (namespace, NAME), servers, rate=25).start()
    try:
        sandbox = stack.md(namespace, NAME)["status"]["sandboxNamespace"]
        # then Prometheus holds MLServer's own series, labelled by the shipped relabelling
        found = stack.prometheus.wait_for(
            f'rest_server_requests_total{{modeldeployment_namespace="{namespace}", modeldeployment="{NAME}", '
            'status_code="200", path=~".+/infer"}', timeout=90)
        # (MLServer also counts /v2/models/<name>/ready, which the mlserver profile leaves out)
        labels = found[0]["metric"]
        assert labels["app_name"] == "mlserver" and labels["path"] == "/v2/models/{model_name}/infer"
        assert labels["namespace"] == sandbox and labels["track"] == "stable" and labels["version"] == "1.0.0"

        # when 1.1.0, trained on the same problem, is rolled out
        patch_spec(stack, namespace, NAME, {"model": {"version": "1.1.0", "uri": f"s3://models/{NAME}/1.1.0"}})
        w = watch_rollout(stack, namespace, NAME, until=("Succeeded", "Stable", "RolledBack"), timeout=240)

        # then it is promoted on values measured from the real servers' own metrics
        assert w.final["phase"] in ("Succeeded", "Stable"), why(w.final)
        assert w.final["stable"]["version"] == "1.1.0"
        last = {s["name"]: s for s in w.final["analysis"]}
        assert set(last) == {s["name"] for s in SLOS}
        for s in last.values():
            assert s["verdict"] == "Pass", s
        assert last["error-rate"]["value"] == 0.0 and last["invalid-output-rate"]["value"] == 0.0
        assert 0.0 < last["latency-p99"]["value"] < 2.0
        assert last["score-shift"]["value"] < 0.1
        served = sum(n for (track, version, status), n in traffic.sent.items()
                     if version == "1.1.0" and status == 200)
        assert served > 50, traffic.sent
        assert "tollgate_model_score_count" in servers["1.1.0"].metrics()

        # when 1.2.0, trained on inverted labels, is rolled out
        patch_spec(stack, namespace, NAME, {"model": {"version": "1.2.0", "uri": f"s3://models/{NAME}/1.2.0"}})
        w = watch_rollout(stack, namespace, NAME, until=("RolledBack",), timeout=240)

        # then it is rolled back on the score shift its real predictions show, with no HTTP error at all
        st = w.final
        assert st["stable"]["version"] == "1.1.0" and st["canaryWeight"] == 0
        shift = slo(st, "score-shift")
        assert shift["verdict"] == "Fail" and shift["value"] > 0.1, shift
        assert not any(status >= 500 for (_, _, status) in traffic.sent), traffic.sent
        wait_for("1.2.0 takes no more requests", lambda: stack.simulator.splits.splits()[(namespace, NAME)].share(
            "canary") == 0, timeout=30)
    finally:
        traffic.stop()
