"""E2E_BACKEND=node: the scenarios on the machine's real node, with the operator as it ships.

Setup (once per session, as root):
- the local control plane with the real node (tollgate_testkit.node): containerd, kubelet, kube-proxy,
  kube-router (NetworkPolicy) and CoreDNS beside the KWOK nodes;
- `make images` (hack/images/build.sh, buildah, no Docker): the operator image built from our
  Dockerfile, the MLServer model-server image and the load generator, imported into containerd;
- Prometheus (Debian's, as a host process) listening on the node's bridge address and discovering the
  model-server pods with kubernetes_sd_configs against our API server (e2e/manifests/prometheus-node.yaml
  holds the relabelling: pod labels become the series labels Tollgate's SLO templates select on);
- charts/tollgate installed with that image: in-cluster config, its ServiceAccount and RBAC, two
  replicas with Lease election, probes. Namespaces that run pods opt in to the real node by label.

Traffic is real: a load generator pod POSTs inference requests to the ModelDeployment's Service
ClusterIP (the replicas router), kube-proxy spreads them over the model-server pods, and the rollout is
judged on the metrics those pods export. A faulty version is a real model that fails on the requests
(models are baked into the model-server image, see hack/images/model-server/train.py), so
`set_fault` does not exist on this backend.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kind_backend import RELEASE, SYSTEM_NS, KindWorld, _run
from tollgate_testkit import controlplane, images, node
from tollgate_testkit.prometheus import Prometheus
from tollgate_testkit.stack import wait_for

REPO = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent
TRAFFIC_NS = "tollgate-traffic"
MODEL = "iris"
URIS = {
    "1.0.0": "file:///models/iris-v1",
    "1.1.0": "file:///models/iris-v2",
    "2.0.0": "file:///models/iris-v3-faulty",
    "3.0.0": "file:///models/iris-misnamed",
}
"""Model versions baked into the model-server image: 2.0.0 fails every request, 3.0.0 is never Ready."""
RUNTIME = {"image": images.MODEL_SERVER, "port": 8080, "readinessPath": f"/v2/models/{MODEL}/ready",
           "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}, "limits": {"memory": "1Gi"}}}


def helm_bin() -> Path:
    out = subprocess.run(["bash", str(REPO / "hack" / "tools" / "build.sh")], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return Path(out.strip().splitlines()[-1]) / "helm"


def prometheus_bin() -> Path:
    """Prometheus with Kubernetes discovery (Debian's package has none), from hack/prometheus/build.sh."""
    out = subprocess.run(["bash", str(REPO / "hack" / "prometheus" / "build.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1]) / "prometheus"


def prometheus_jobs(server: str, pki: Path) -> list[dict[str, Any]]:
    """The kubernetes_sd_configs scrape job of e2e/manifests/prometheus-node.yaml, pointed at our API server."""
    doc = yaml.safe_load((E2E / "manifests" / "prometheus-node.yaml").read_text())
    tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")}
    for job in doc["scrape_configs"]:
        for sd in job["kubernetes_sd_configs"]:
            sd["api_server"] = server
            sd["tls_config"] = tls
    jobs: list[dict[str, Any]] = doc["scrape_configs"]
    return jobs


class NodeWorld(KindWorld):
    """The real node with Tollgate installed by its chart; the chart-facing operations are KindWorld's."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-e2e-node-"))
        self.runtime = dict(RUNTIME)
        self.faults: dict[str, dict[str, Any]] = {}
        self.created = True
        self.prometheus: Prometheus | None = None
        self.state: controlplane.State | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def up(self) -> NodeWorld:  # type: ignore[override]
        helm = helm_bin()
        built = images.build()
        self.state = controlplane.up(self.dir, real_node=True)
        self.kubeconfig = self.state.kubeconfig
        images.load(Path(self.state.node_bin), built)
        for ns in (SYSTEM_NS, TRAFFIC_NS):
            self.kubectl("create", "namespace", ns, check=False)
            self.kubectl("label", "namespace", ns, f"{node.NODE_LABEL}=true", "--overwrite")
        pki = self.dir / "pki"
        self.prometheus = Prometheus(host=node.GATEWAY, workdir=self.dir / "prometheus", binary=prometheus_bin(),
                                     scrape_configs=prometheus_jobs(self.state.server, pki)).start()
        repo, _, tag = images.OPERATOR.rpartition(":")
        _run(str(helm), "upgrade", "--install", RELEASE, str(REPO / "charts" / "tollgate"),
             "--kubeconfig", self.kubeconfig, "--namespace", SYSTEM_NS, "--wait", "--timeout", "5m",
             "--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
             "--set", "replicaCount=2", "--set", f"prometheus.url={self.prometheus.url}")
        return self

    def down(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
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

    # --- real traffic ---------------------------------------------------------------------------------
    def start_load(self, namespace: str, name: str, rps: float = 20, duration: float = 600) -> str:
        """A load generator pod sending inference requests to the ModelDeployment's Service."""
        sandbox = f"{namespace}-{name}"
        url = f"http://{name}.{sandbox}.svc.cluster.local:{self.runtime['port']}/v2/models/{MODEL}/infer"
        pod = f"load-{namespace}"[:63]
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": TRAFFIC_NS, "labels": {"app": "loadgen"}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "loadgen", "image": images.LOADGEN, "imagePullPolicy": "Never",
                        "args": [url, "--rps", str(rps), "--duration", str(duration)]}]}}
        self.kubectl("delete", "pod", pod, "-n", TRAFFIC_NS, "--ignore-not-found")
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        return pod

    def stop_load(self, pod: str) -> None:
        self.kubectl("delete", "pod", pod, "-n", TRAFFIC_NS, "--ignore-not-found", "--wait=false", check=False)

    def served(self, namespace: str, name: str, track: str, version: str | None = None,
               code: str = "200", window: str = "10s") -> float:
        """Requests the model-server pods of `track` answered with `code`, as Prometheus scraped them."""
        sel = f'namespace="{namespace}", modeldeployment="{name}", track="{track}", code="{code}"'
        if version:
            sel += f', version="{version}"'
        result = self.query(f"sum(increase(tollgate_sim_requests_total{{{sel}}}[{window}]))")
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
