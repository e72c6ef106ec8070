"""Tollgate as it ships, on the machine's real node: the world of `make e2e-node` and `REAL_NODE=1 make demo`.

One place builds it so the e2e scenarios and the demo show the same thing:
- the local control plane with the real node (node.py): containerd, kubelet, kube-proxy, kube-router
  (NetworkPolicy) and CoreDNS beside the KWOK nodes;
- the images of `make images` (hack/images/build.sh, buildah, no Docker) imported into containerd: the
  operator built from our Dockerfile, the MLServer model server and the load generator;
- Prometheus with Kubernetes discovery (hack/prometheus/build.sh; Debian's package has none) on the
  node's bridge address, discovering model-server pods through our API server with the scrape
  configuration Tollgate ships, unchanged (deploy/prometheus/scrape-config.yaml: pod labels become the
  identity labels; the pod annotations Tollgate writes from spec.metrics name MLServer's metrics port);
- Traefik (hack/gateway/build.sh, docs/gateway.md) as the Gateway API data plane: its pod behind the Gateway
  `tollgate-gateway/inference`, for ModelDeployments with the gatewayAPI router;
- charts/tollgate installed with that image, its gatewayAPI dialect `traefik` (shadow steps and rate limits
  through Traefik's own objects): in-cluster config, its ServiceAccount and RBAC, two
  replicas with Lease election, startup/liveness/readiness probes, the `mlserver` metric profile: the
  rollouts are judged on MLServer's own series.

Needs root (the real node); `up` raises node.NodeUnavailableError naming what the host lacks.
"""

from __future__ import annotations

import ast
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tollgate.engine.sandbox import default_sandbox_namespace
from tollgate_testkit import controlplane, gateway, images, node
from tollgate_testkit.prometheus import PodDiscovery, Prometheus

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NS = "tollgate-system"
RELEASE = "tollgate"
TRAFFIC_NS = "tollgate-traffic"
MODEL = "iris"
URIS = {
    "1.0.0": "file:///models/iris-v1",
    "1.1.0": "file:///models/iris-v2",
    "2.0.0": "file:///models/iris-v3-faulty",
    "3.0.0": "file:///models/iris-misnamed",
    "4.0.0": "file:///models/iris-v4-shifted",
}
"""Model versions baked into the model-server image (hack/images/model-server/train.py): 2.0.0 fails
every request inside the model (HTTP 500), 3.0.0 is packaged under another name so it is never Ready, 4.0.0
answers every request but its scores are shifted (trained on inverted labels: only score-shift sees it)."""
RUNTIME: dict[str, Any] = {
    "image": images.MODEL_SERVER, "port": 8080, "readinessPath": f"/v2/models/{MODEL}/ready",
    "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}, "limits": {"memory": "1Gi"}},
}
METRICS: dict[str, Any] = {"profile": "mlserver", "port": 8082}
"""spec.metrics of the ModelDeployments: MLServer's dialect, on its metrics port (not the serving port)."""


def _last_line(script: Path) -> Path:
    out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def helm_bin() -> Path:
    return _last_line(REPO / "hack" / "tools" / "build.sh") / "helm"


def prometheus_bin() -> Path:
    """Prometheus with Kubernetes discovery, built once by hack/prometheus/build.sh."""
    return _last_line(REPO / "hack" / "prometheus" / "build.sh") / "prometheus"


def run(*args: str, stdin: str | None = None, timeout: float = 900) -> str:
    res = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return res.stdout


@dataclass
class ShippedStack:
    """What `up` started; `down` stops all of it."""

    dir: Path
    state: controlplane.State
    prometheus: Prometheus
    data_plane: gateway.Installed
    """Traefik and its Gateway (where clients reach it)."""
    extra_values: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> str:
        return self.state.kubeconfig

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin, text=True,
                             capture_output=True, timeout=300, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
        return res

    def md(self, namespace: str, name: str) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(self.kubectl("get", "modeldeployment", name, "-n", namespace,
                                                      "-o", "json").stdout)
        return got

    def install_chart(self) -> None:
        """helm upgrade --install of charts/tollgate with the operator image built from our Dockerfile."""
        repo, _, tag = images.OPERATOR.rpartition(":")
        run(str(helm_bin()), "upgrade", "--install", RELEASE, str(REPO / "charts" / "tollgate"),
            "--kubeconfig", self.kubeconfig, "--namespace", SYSTEM_NS, "--wait", "--timeout", "5m",
            "--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
            "--set", "replicaCount=2", "--set", f"prometheus.url={self.prometheus.url}",
            "--set", f"modelMetrics.profile={METRICS['profile']}", "--set", "gatewayAPI.dialect=traefik",
            *self.extra_values)

    def start_load(self, namespace: str, name: str, model: str, port: int, rps: float = 20,
                   duration: float = 600, *, through_gateway: bool = False) -> str:
        """A load generator pod POSTing V2 inference requests to the ModelDeployment's Service ClusterIP, or
        to the Gateway (Traefik routes them by the model's HTTPRoute)."""
        sandbox = default_sandbox_namespace(namespace, name)
        url = (f"{self.data_plane.url}/v2/models/{model}/infer" if through_gateway
               else f"http://{name}.{sandbox}.svc.cluster.local:{port}/v2/models/{model}/infer")
        pod = f"load-{namespace}"[:63]
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": TRAFFIC_NS, "labels": {"app": "loadgen"}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "loadgen", "image": images.LOADGEN, "imagePullPolicy": "Never",
                        "args": [url, "--rps", str(rps), "--duration", str(duration)]}]}}
        self.kubectl("delete", "pod", pod, "-n", TRAFFIC_NS, "--ignore-not-found")
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        return pod

    def _last_report(self, pod: str) -> str:
        """A load generator's last report line (`loadgen: sent=<n> codes={...} versions={...}`), or ''."""
        logs = str(self.kubectl("logs", pod, "-n", TRAFFIC_NS, check=False).stdout).strip().splitlines()
        reports = [line for line in logs if line.startswith("loadgen:") and "versions=" in line]
        return reports[-1] if reports else ""

    def answered_versions(self, pod: str) -> dict[str, int]:
        """The model versions whose answers a load generator's clients got so far (its last report line:
        `versions={...}`, from the model_version of each 200 answer)."""
        report = self._last_report(pod)
        found: dict[str, int] = ast.literal_eval(report.split("versions=", 1)[1]) if report else {}
        return found

    def answered_codes(self, pod: str) -> dict[int, int]:
        """The status codes a load generator's clients got so far (0: no answer), from its last report line."""
        report = self._last_report(pod)
        if not report:
            return {}
        found: dict[int, int] = ast.literal_eval(report.split("codes=", 1)[1].split(" versions=", 1)[0])
        return found

    def stop_load(self, pod: str) -> None:
        # gone before this returns: a load generator left running would send requests to the next model
        self.kubectl("delete", "pod", pod, "-n", TRAFFIC_NS, "--ignore-not-found", "--timeout=60s", check=False)

    def down(self) -> None:
        self.prometheus.stop()
        controlplane.down(self.dir)


def up(directory: Path | None = None) -> ShippedStack:
    """Build (or reuse) the images, start the control plane with the real node, Prometheus, the chart."""
    directory = directory or Path(tempfile.mkdtemp(prefix="tollgate-shipped-"))
    built = images.build()
    traefik = gateway.build()
    state = controlplane.up(directory, real_node=True)
    try:
        images.load(Path(state.node_bin), built)
        # Traefik's CRDs first: the operator in the traefik dialect lists and watches its kinds from the start
        installed = gateway.install(state.kubeconfig, Path(state.node_bin), traefik)
        # The shipped scrape configuration as is; only where the API server is (the admin kubeconfig) is added.
        prometheus = Prometheus(host=node.GATEWAY, workdir=directory / "prometheus", binary=prometheus_bin(),
                                pods=PodDiscovery(kubeconfig=state.kubeconfig)).start()
    except BaseException:
        controlplane.down(directory)
        raise
    stack = ShippedStack(directory, state, prometheus, installed)
    try:
        for ns in (SYSTEM_NS, TRAFFIC_NS):
            stack.kubectl("create", "namespace", ns, check=False)
            stack.kubectl("label", "namespace", ns, f"{node.NODE_LABEL}=true", "--overwrite")
        stack.install_chart()
    except BaseException:
        stack.down()
        raise
    return stack
