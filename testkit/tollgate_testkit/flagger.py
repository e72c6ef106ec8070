"""Flagger, the peer: its binary and CRDs, a Flagger process, and the traffic simulator's view of its canaries.

A test tool for bench/flagger_peer.py. Flagger v1.41.0 is built from its Go module by
hack/flagger/build.sh (cached under ~/.cache/tollgate/flagger/<key>, with the module's own
artifacts/flagger/crd.yaml beside the binary) and runs as a host process with the control plane's
kubeconfig, as the operator does.

Where a Flagger canary's traffic goes, for the simulator (Flagger's names, pkg/router/gateway_api.go and
pkg/canary/deployment_controller.go): the Canary `<name>` targets the Deployment `<name>`, whose pods
(selector label `app: <name>`) are the canary; Flagger copies it to `<name>-primary` (pods `app:
<name>-primary`), the stable track; and writes the HTTPRoute `<name>` whose backendRefs weigh the
Services `<name>-primary` and `<name>-canary`. The version of each track is its Deployment's pod
template label `version`. Before the route exists, everything goes to the primary (or, before that,
to the target Deployment).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tollgate_testkit.simulator import MDKey, Obj, PodRef, SplitSource, TrackShare, TrafficSplit, _get

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "flagger" / "build.sh"
PEER_LABEL = "bench.tollgate.dev/peer"
"""On the pod template of a Deployment Flagger targets: its pods are discovered and scraped (peer=flagger)."""
VERSION_LABEL = "version"
SELECTOR_LABEL = "app"
RATE_ANNOTATION = "tollgate.test/simulator-rate"
"""On a Canary: its user traffic in requests per second, as on a ModelDeployment."""


def build() -> Path:
    """The cache directory holding bin/flagger and crd.yaml (built on the first call, then reused)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def canary_weight(route: Obj, suffix: str = "-canary") -> int | None:
    """The weight of the route's canary backend (the backendRef named `...-canary`); None: no such backend."""
    found: int | None = None
    for rule in _get(route, "spec", "rules") or []:
        for ref in rule.get("backendRefs") or []:
            if str(ref.get("name", "")).endswith(suffix):
                found = (found or 0) + int(ref.get("weight", 1))
    return found


def flagger_split(canary: Obj, *, deployments: Sequence[Obj] = (), routes: Sequence[Obj] = (),
                  pods: Sequence[Obj] = ()) -> TrafficSplit | None:
    """Where one Flagger canary's traffic goes now (see the module docstring); None without a target."""
    ns = _get(canary, "metadata", "namespace") or ""
    name = _get(canary, "spec", "targetRef", "name")
    if not name:
        return None
    primary = f"{name}-primary"
    by_name = {_get(d, "metadata", "name"): d for d in deployments}
    versions: dict[str, str] = {}
    for track, deployment in (("stable", primary), ("canary", name)):
        version = _get(by_name.get(deployment), "spec", "template", "metadata", "labels", VERSION_LABEL)
        if version:
            versions[track] = str(version)
    app_track = {primary: "stable", name: "canary"}
    refs = []
    for p in pods:
        pod_track = app_track.get(_get(p, "metadata", "labels", SELECTOR_LABEL))
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in _get(p, "status", "conditions") or [])
        if pod_track and ready and not _get(p, "metadata", "deletionTimestamp"):
            refs.append(PodRef(_get(p, "metadata", "namespace") or ns, _get(p, "metadata", "name"), pod_track))
    route = next((r for r in routes if _get(r, "metadata", "name") == name), None)
    weights: dict[str, float] = {}
    if route is not None:
        for rule in _get(route, "spec", "rules") or []:
            for ref in rule.get("backendRefs") or []:
                ref_name = ref.get("name", "")
                ref_track = "stable" if ref_name == primary else "canary" if ref_name == f"{name}-canary" else None
                if ref_track:
                    weights[ref_track] = weights.get(ref_track, 0.0) + float(ref.get("weight", 1))
        source = "httproute"
    else:
        weights = {"stable" if primary in by_name else "canary": 1.0}
        source = "deployments"
    if primary not in by_name:  # not initialised yet: the target Deployment's pods serve as they are
        versions.setdefault("canary", versions.get("stable", "unknown"))
    total = sum(w for w in weights.values() if w > 0)
    tracks = tuple(TrackShare(t, versions.get(t, "unknown"), w / total)
                   for t, w in sorted(weights.items()) if w > 0) if total > 0 else ()
    rate_text = (_get(canary, "metadata", "annotations") or {}).get(RATE_ANNOTATION)
    return TrafficSplit(namespace=ns, name=_get(canary, "metadata", "name") or name, model=name, tracks=tracks,
                        source=source, sandbox=ns, pods=tuple(sorted(refs, key=lambda r: r.name)),
                        rate=float(rate_text) if rate_text not in (None, "") else None)


class FlaggerSplits:
    """The splits of every Flagger Canary in one namespace, re-read every `resync` seconds (four LISTs:
    Canaries, Deployments, pods, HTTPRoutes, whatever the number of canaries)."""

    def __init__(self, api_client: Any, namespace: str, *, resync: float = 0.5) -> None:
        from kubernetes import client

        from tollgate_testkit.simulator import _Loop

        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._namespace = namespace
        self._splits: dict[MDKey, TrafficSplit] = {}
        self._lock = threading.Lock()
        self._loop = _Loop("simulator-flagger", resync, self.resync)

    def splits(self) -> Mapping[MDKey, TrafficSplit]:
        with self._lock:
            return dict(self._splits)

    def start(self) -> None:
        self.resync()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def resync(self) -> None:
        ns = self._namespace
        to_dict = self._core.api_client.sanitize_for_serialization
        canaries: list[Obj] = cast(Any, self._custom.list_namespaced_custom_object(
            "flagger.app", "v1beta1", ns, "canaries"))["items"]
        deployments = [to_dict(d) for d in self._apps.list_namespaced_deployment(ns).items]
        pods = [to_dict(p) for p in self._core.list_namespaced_pod(ns, label_selector=f"{PEER_LABEL}=flagger").items]
        routes: list[Obj] = cast(Any, self._custom.list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes"))["items"]
        splits = {}
        for c in canaries:
            split = flagger_split(c, deployments=deployments, routes=routes, pods=pods)
            if split is not None:
                splits[split.key] = split
        with self._lock:
            self._splits = splits


class MergedSplits:
    """Several split sources as one (the operator's ModelDeployments and Flagger's Canaries side by side)."""

    def __init__(self, *sources: SplitSource) -> None:
        self.sources = sources

    def splits(self) -> Mapping[MDKey, TrafficSplit]:
        out: dict[MDKey, TrafficSplit] = {}
        for s in self.sources:
            out.update(s.splits())
        return out

    def start(self) -> None:
        for s in self.sources:
            s.start()

    def stop(self) -> None:
        for s in self.sources:
            s.stop()


def scrape_job(kubeconfig: str, namespace: str, redirect_address: str, metrics_path: str) -> dict[str, Any]:
    """A Prometheus job for the peer's pods (label bench.tollgate.dev/peer=flagger in `namespace`), labelled
    with `namespace` and `pod` only (what Flagger's own queries select on), each scrape redirected to the
    simulator's page for that pod (`metrics_path` may use $1 = namespace, $2 = pod)."""
    match = {"source_labels": ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_name"], "regex": "(.+);(.+)"}
    return {
        "job_name": "flagger-peer-pods",
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig),
                                   "namespaces": {"names": [namespace]},
                                   "selectors": [{"role": "pod", "label": f"{PEER_LABEL}=flagger"}]}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed|Unknown",
             "action": "drop"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {**match, "target_label": "__address__", "replacement": redirect_address},
            {**match, "target_label": "__metrics_path__", "replacement": metrics_path},
        ],
    }


@dataclass
class FlaggerProcess:
    """The flagger binary as a child process: Gateway API v1 routing, Prometheus at `metrics_server`."""

    binary: Path
    kubeconfig: str
    metrics_server: str
    namespace: str
    port: int
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="flagger-", suffix=".log")[1]))
    proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [str(self.binary), f"-kubeconfig={self.kubeconfig}", "-mesh-provider=gatewayapi:v1",
                f"-metrics-server={self.metrics_server}", f"-namespace={self.namespace}", f"-port={self.port}",
                "-log-level=info", "-enable-leader-election=false"]

    def start(self) -> FlaggerProcess:
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ})
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
