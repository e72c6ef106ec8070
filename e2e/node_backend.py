"""E2E_BACKEND=node: the scenarios on the machine's real node, with the operator as it ships.

Setup (once per session, as root) is tollgate_testkit.shipped, the same world `REAL_NODE=1 make demo`
runs: the real node, the images of `make images`, Prometheus with Kubernetes discovery and the chart.

Traffic is real: a load generator pod POSTs inference requests to the ModelDeployment's Service
ClusterIP (the replicas router), kube-proxy spreads them over the model-server pods, and the rollout is
judged on the metrics those pods export, MLServer's own (`rest_server_requests_total`,
`rest_server_request_duration_seconds`), scraped with the scrape configuration Tollgate ships and read
through the `mlserver` metric profile. A faulty version is a real model that fails on the requests
(models are baked into the model-server image, see hack/images/model-server/train.py), so
`set_fault` does not exist on this backend.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kind_backend import SYSTEM_NS, KindWorld
from tollgate_testkit import controlplane, gateway, images, shipped
from tollgate_testkit.prometheus import Prometheus
from tollgate_testkit.stack import wait_for

MODEL, URIS, RUNTIME, METRICS = shipped.MODEL, shipped.URIS, shipped.RUNTIME, shipped.METRICS


class NodeWorld(KindWorld):
    """The real node with Tollgate installed by its chart; the chart-facing operations are KindWorld's."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-e2e-node-"))
        self.runtime = dict(RUNTIME)
        self.metrics = dict(METRICS)
        self.faults: dict[str, dict[str, Any]] = {}
        self.created = True
        self.prometheus: Prometheus | None = None
        self.state: controlplane.State | None = None
        self.shipped: shipped.ShippedStack | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def up(self) -> NodeWorld:  # type: ignore[override]
        self.shipped = shipped.up(self.dir)
        self.state = self.shipped.state
        self.kubeconfig = self.shipped.kubeconfig
        self.prometheus = self.shipped.prometheus
        return self

    def down(self) -> None:
        if self.shipped is not None:
            self.shipped.down()
        else:
            controlplane.down(self.dir)

    # --- World ----------------------------------------------------------------------------------------
    def set_fault(self, version: str, **fault: Any) -> None:
        pytest.skip("E2E_BACKEND=node has no injected faults: a faulty version is a real model "
                    "(see e2e/test_real_node.py)")

    def clear_faults(self) -> None:
        pass

    def query(self, promql: str) -> list[dict[str, Any]]:
        assert self.prometheus is not None
        return self.prometheus.query(promql)

    def stop_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.stop()

    def start_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.start()

    def set_version(self, namespace: str, name: str, version: str) -> None:
        self.patch_spec(namespace, name, {"model": {"version": version, "uri": URIS[version]}})

    # --- the Gateway API data plane (docs/gateway.md) ----------------------------------------------------
    def gateway(self) -> gateway.Installed:
        """Traefik with its GatewayClass and Gateway on the real node (installed with the world, before the
        chart: the operator runs in the traefik dialect)."""
        assert self.shipped is not None
        return self.shipped.data_plane

    def traefik_api(self, path: str) -> Any:
        """Traefik's runtime configuration (its API on the admin entrypoint), read from the host."""
        pod = self.pods(gateway.NAMESPACE, "app.kubernetes.io/name=traefik")[0]
        url = f"http://{pod['status']['podIP']}:{gateway.ADMIN_PORT}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def run_load(self, name: str, url: str, requests: int, rps: float = 20, timeout: float = 300) -> str:
        """A load generator pod sending exactly `requests` inference requests to `url`, run to its end;
        returns its last line (`loadgen: done sent=<n> codes={...}`)."""
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": shipped.TRAFFIC_NS, "labels": {"app": "loadgen"}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "loadgen", "image": images.LOADGEN, "imagePullPolicy": "Never",
                        "args": [url, "--rps", str(rps), "--requests", str(requests), "--duration", str(timeout)]}]}}
        phase, logs = self.run_to_end(manifest, timeout=timeout + 60)
        assert phase == "Succeeded", (phase, logs[-2000:])
        return logs.strip().splitlines()[-1]

    def pod_metrics(self, pod: dict[str, Any], port: int) -> str:
        """A pod's own Prometheus exposition, fetched from the host as Prometheus does."""
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    # --- real traffic ---------------------------------------------------------------------------------
    def start_load(self, namespace: str, name: str, rps: float = 20, duration: float = 600, *,
                   through_gateway: bool = False) -> str:
        """A load generator pod sending inference requests to the ModelDeployment's Service (or the Gateway)."""
        assert self.shipped is not None
        return self.shipped.start_load(namespace, name, MODEL, int(self.runtime["port"]), rps, duration,
                                       through_gateway=through_gateway)

    def answered_versions(self, pod: str) -> dict[str, int]:
        """The model versions whose answers the load generator's clients got (shipped.answered_versions)."""
        assert self.shipped is not None
        return self.shipped.answered_versions(pod)

    def answered_codes(self, pod: str) -> dict[int, int]:
        """The status codes the load generator's clients got (shipped.answered_codes)."""
        assert self.shipped is not None
        return self.shipped.answered_codes(pod)

    def stop_load(self, pod: str) -> None:
        assert self.shipped is not None
        self.shipped.stop_load(pod)

    def served(self, namespace: str, name: str, track: str, version: str | None = None,
               code: str = "200", window: str = "10s") -> float:
        """Inference requests the model-server pods of `track` answered with `code`, as Prometheus scraped
        MLServer's own counter through the shipped relabelling (MLServer also counts its /ready probes)."""
        sel = (f'modeldeployment_namespace="{namespace}", modeldeployment="{name}", '
               f'track="{track}", status_code="{code}", path=~".+/infer"')
        if version:
            sel += f', version="{version}"'
        result = self.query(f"sum(increase(rest_server_requests_total{{{sel}}}[{window}]))")
        return float(result[0]["value"][1]) if result else 0.0

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def run_to_end(self, manifest: dict[str, Any], timeout: float = 90) -> tuple[str, str]:
        """Run a one-shot pod to its end; its phase and logs."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        self.kubectl("delete", "pod", name, "-n", ns, "--ignore-not-found", "--wait=true")
        res = self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest), check=False)
        if res.returncode != 0:
            return "Refused", str(res.stderr)
        phase = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = json.loads(self.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)
            phase = got["status"].get("phase", "")
            if phase in ("Succeeded", "Failed"):
                return phase, str(self.kubectl("logs", name, "-n", ns).stdout)
            time.sleep(0.5)
        raise AssertionError(f"pod {ns}/{name} still {phase} after {timeout}s")

    def wait_ready_pods(self, namespace: str, selector: str, count: int, timeout: float = 180) -> None:
        def ready() -> bool:
            pods = self.pods(namespace, selector)
            return sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                              for c in p["status"].get("conditions", []))) >= count
        wait_for(f"{count} Ready pods {selector} in {namespace}", ready, timeout=timeout, interval=1)

    def diagnostics(self) -> str:
        res = self.kubectl("logs", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=tollgate", "--tail=60",
                           "--prefix", check=False)
        return str(res.stdout)
