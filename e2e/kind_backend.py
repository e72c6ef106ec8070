"""E2E_BACKEND=kind: the scenarios on a kind cluster, with the operator as it ships.

Setup (once per session): create the cluster from e2e/kind.yaml; build the operator image from the
Dockerfile and load it into the nodes; install Prometheus (1s scrapes) and the traffic simulator
(the Dockerfile's `testkit` target, `python -m tollgate_testkit.simulator`, faults from a ConfigMap) from
e2e/manifests/; install charts/tollgate (CRDs included) pointed at that Prometheus. Model servers are
agnhost's netexec (a real HTTP server), since kind runs real pods.

Where Docker, kind or helm is missing, `unavailable()` says which, and the session is skipped with
that message: this backend is never imitated with the local control plane.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from e2e_world import World
from tollgate_testkit.prometheus import PodDiscovery, Redirect
from tollgate_testkit.shipped import RELEASE, SYSTEM_NS
from tollgate_testkit.shipped import run as _run
from tollgate_testkit.simulator import Simulator
from tollgate_testkit.stack import wait_for

REPO = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent
CLUSTER = os.environ.get("E2E_KIND_CLUSTER", "tollgate-e2e")
IMAGE = os.environ.get("E2E_IMAGE", "tollgate-operator:e2e")
TESTKIT_IMAGE = os.environ.get("E2E_TESTKIT_IMAGE", "tollgate-testkit:e2e")
INFRA_NS = "tollgate-e2e"
MODEL_SERVER = {"image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                "args": ["netexec", "--http-port=8080"], "readinessPath": "/hostname"}


def unavailable() -> str | None:
    """Why the kind backend cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "E2E_BACKEND=kind needs Docker; the `docker` CLI is not installed here"
    res = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                         timeout=30, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        reason = (res.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"E2E_BACKEND=kind needs a running Docker engine (`docker info` failed: {reason})"
    for tool in ("kind", "helm", "kubectl"):
        if shutil.which(tool) is None:
            return f"E2E_BACKEND=kind needs `{tool}` on PATH; it is not installed here"
    for path in ("Dockerfile", "charts/tollgate/Chart.yaml"):
        if not (REPO / path).exists():
            return f"E2E_BACKEND=kind needs {path} in the repository"
    return None


class KindWorld(World):
    """A kind cluster with Tollgate installed by its chart (two replicas, Lease leader election)."""

    def __init__(self) -> None:
        self.kubeconfig = str(Path(tempfile.mkdtemp(prefix="tollgate-kind-")) / "kubeconfig")
        self.runtime = dict(MODEL_SERVER)
        self.faults: dict[str, dict[str, Any]] = {}
        self.created = False

    # --- lifecycle ------------------------------------------------------------------------------------
    def up(self) -> KindWorld:
        existing = _run("kind", "get", "clusters").split()
        if CLUSTER not in existing:
            _run("kind", "create", "cluster", "--name", CLUSTER, "--config", str(E2E / "kind.yaml"),
                 "--kubeconfig", self.kubeconfig, "--wait", "120s")
            self.created = True
        else:
            Path(self.kubeconfig).write_text(_run("kind", "get", "kubeconfig", "--name", CLUSTER))
        _run("docker", "build", "-t", IMAGE, str(REPO), timeout=1800)
        _run("docker", "build", "--target", "testkit", "-t", TESTKIT_IMAGE, str(REPO), timeout=1800)
        _run("kind", "load", "docker-image", IMAGE, TESTKIT_IMAGE, "--name", CLUSTER)
        repo, _, tag = IMAGE.rpartition(":")
        self.kubectl("create", "namespace", INFRA_NS, check=False)
        discovery = PodDiscovery(None, redirects=(
            Redirect(f"simulator.{INFRA_NS}:9300", path=Simulator.metrics_path("$1", "$2")),))
        manifests = ((E2E / "manifests" / "infra.yaml").read_text().replace("TESTKIT_IMAGE", TESTKIT_IMAGE)
                     .replace("PROMETHEUS_SCRAPE_CONFIGS", json.dumps(discovery.jobs())))
        self.kubectl("apply", "-f", "-", stdin=manifests)
        self.kubectl("rollout", "status", "-n", INFRA_NS, "deploy/prometheus", "--timeout=180s")
        self.kubectl("rollout", "status", "-n", INFRA_NS, "deploy/simulator", "--timeout=180s")
        _run("helm", "upgrade", "--install", RELEASE, str(REPO / "charts" / "tollgate"),
             "--kubeconfig", self.kubeconfig, "--namespace", SYSTEM_NS, "--create-namespace", "--wait",
             "--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
             "--set", "replicaCount=2", "--set", f"prometheus.url=http://prometheus.{INFRA_NS}:9090")
        self._write_faults()
        return self

    def down(self) -> None:
        if self.created and not os.environ.get("E2E_KEEP_CLUSTER"):
            _run("kind", "delete", "cluster", "--name", CLUSTER)

    # --- World ----------------------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        res = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin, text=True,
                             capture_output=True, timeout=300, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
        return res

    def set_fault(self, version: str, **fault: Any) -> None:
        keys = {"error_rate": "errorRate", "added_latency": "addedLatency", "score_shift": "scoreShift",
                "invalid_rate": "invalidRate"}
        self.faults[version] = {keys[k]: v for k, v in fault.items()}
        self._write_faults()

    def clear_faults(self) -> None:
        self.faults.clear()
        self._write_faults()

    def _write_faults(self) -> None:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "faults", "namespace": INFRA_NS},
              "data": {v: json.dumps(f) for v, f in self.faults.items()}}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(cm))
        time.sleep(1.5)  # the simulator re-reads its ConfigMap every second

    def query(self, promql: str) -> list[dict[str, Any]]:
        path = (f"/api/v1/namespaces/{INFRA_NS}/services/prometheus:9090/proxy/api/v1/query?"
                + urllib.parse.urlencode({"query": promql}))
        result: list[dict[str, Any]] = json.loads(self.kubectl("get", "--raw", path).stdout)["data"]["result"]
        return result

    def stop_prometheus(self) -> None:
        self.kubectl("scale", "-n", INFRA_NS, "deploy/prometheus", "--replicas=0")
        wait_for("Prometheus pods gone", lambda: not self._pods(INFRA_NS, "app=prometheus"), timeout=60)

    def start_prometheus(self) -> None:
        self.kubectl("scale", "-n", INFRA_NS, "deploy/prometheus", "--replicas=1")
        self.kubectl("rollout", "status", "-n", INFRA_NS, "deploy/prometheus", "--timeout=180s")

    def leader_pod(self) -> str:
        lease = json.loads(self.kubectl("get", "lease", "tollgate-operator", "-n", SYSTEM_NS, "-o", "json").stdout)
        holder = lease["spec"].get("holderIdentity") or ""
        pods = self._pods(SYSTEM_NS, "app.kubernetes.io/name=tollgate")
        return next(p for p in pods if holder.startswith(p))

    def kill_operator(self) -> None:
        self.kubectl("delete", "pod", self.leader_pod(), "-n", SYSTEM_NS, "--grace-period=0", "--force")

    def start_operator(self) -> None:
        self.kubectl("rollout", "status", "-n", SYSTEM_NS, f"deploy/{RELEASE}", "--timeout=180s")

    def operator_metrics(self) -> str:
        pod = self.leader_pod()
        text: str = self.kubectl("get", "--raw", f"/api/v1/namespaces/{SYSTEM_NS}/pods/{pod}:8080/proxy/metrics").stdout
        return text

    def _pods(self, namespace: str, selector: str) -> list[str]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").stdout.split()
        return [p.removeprefix("pod/") for p in out]

    def diagnostics(self) -> str:
        res = self.kubectl("logs", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=tollgate", "--tail=40", check=False)
        return str(res.stdout)
