"""Traffic simulator: synthetic requests that follow each ModelDeployment's live split, as metrics.

A test tool. It watches ModelDeployments, works out where traffic goes right now, simulates requests at
a configured rate (in-process: no network, no model server) and exposes, on loopback, the /metrics of
every model-server pod as that pod would: `/pods/<namespace>/<pod>/metrics`, in one real source's
dialect (`tollgate_testkit.dialects`: MLServer, Istio or OpenTelemetry; the ModelDeployment's
spec.metrics.profile, else the simulator's --dialect), with that source's own labels only.
Prometheus discovers the pods from the API server with the scrape configuration Tollgate ships
and redirects each pod's scrape here, so the ModelDeployment, track and version labels come from the
shipped relabelling, as on a real cluster. Faults per model version (errors, added latency, score
shift, invalid outputs) make a canary misbehave on demand, so SLO gates are exercised through real
PromQL over real scraped series.

Where traffic goes, most faithful source first (the same objects the data plane would follow):
1. gatewayAPI router: the HTTPRoute's backendRefs weights (backend Service -> track), and its RequestMirror
   filter (a shadow step): that share of the requests (`percent`, or `fraction`; all when neither is set)
   is also copied to the mirror's backend track, whose pods answer the copies and export metrics for them,
   while the user gets the weighted backend's answer only. `Simulator.user_responses` counts the answers
   users got per track (the weighted backends only); `Simulator.mirrored` the copies;
2. replicas router: the Service's selector over the track Deployments' pod labels, weighted by their
   ready replicas (so a canary that is not Ready yet gets nothing, and weight 0 means stable only);
3. otherwise the ModelDeployment's status: canaryWeight on the canary, the rest on stable.
Versions per track come from status.stable / status.canary (fallback: spec.fallback or lastKnownGood).

Requests of a track are spread over its ready pods. A split without pods (StaticSplits in unit tests
and cluster-free integration tests) is served by one virtual pod per track, `<name>-<track>-sim` in
the sandbox (or the ModelDeployment's) namespace; a static scrape target with the identity labels
stands in for the relabelling there.

Faults: a ConfigMap (re-read every second) whose data keys are versions (or `<model>@<version>`, which
wins) and whose values are JSON/YAML mappings, e.g. `2.4.0: '{errorRate: 0.1, addedLatency: 0.2}'`;
a key `faults` may instead hold the whole mapping. `--fault 2.4.0:errorRate=0.1,scoreShift=0.2` flags
give defaults that the ConfigMap overrides.

Test facilities for hooks (issue 20), not product behaviour:
- a ModelDeployment annotated `tollgate.test/simulator-rate: "<n>"` gets n requests per second of user
  traffic instead of --rate (0: no user traffic at all);
- a running pod of a duringAnalysis hook Job (label tollgate.dev/hook=duringAnalysis) in the sandbox whose
  container has env LOAD_RPS=<n> is a load generator aimed at the canary's own Service: the simulator
  serves n requests per second to the canary track for as long as that pod runs (on KWOK no container
  runs, so the simulator does what the load generator would). `Simulator.served` counts every request
  per (ModelDeployment, track), user and generated. Generated requests carry the header the pod's env
  TOLLGATE_SYNTHETIC_VALUE names (the operator sets it), which the istio dialect exports as its
  `tollgate_synthetic` label, as the documented Istio Telemetry tag override would.

Usage: python -m tollgate_testkit.simulator --kubeconfig K [--namespace NS] [--port 9300] [--rate 50]
       [--dialect mlserver|istio|otel] [--faults-configmap NS/NAME] [--fault VERSION:key=value,...]
       [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

import yaml
from prometheus_client import exposition

from tollgate.api import resource
from tollgate.engine.naming import fit, label_value
from tollgate_testkit.dialects import DIALECTS, PodExport, Served

log = logging.getLogger("tollgate.simulator")

RATE_ANNOTATION = "tollgate.test/simulator-rate"
"""On a ModelDeployment: its user traffic in requests per second (overrides --rate; "0": none)."""
LOAD_ENV = "LOAD_RPS"
SYNTHETIC_ENV = "TOLLGATE_SYNTHETIC_VALUE"
"""In a duringAnalysis hook pod's container: the requests per second it generates to the canary."""
LABEL_HOOK = "tollgate.dev/hook"

MDKey = tuple[str, str]
Obj = Mapping[str, Any]

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(i * 0.05, 2) for i in range(1, 21))
BASE_LATENCY = 0.05
"""Median latency in seconds of a healthy simulated request (log-normal around it)."""
BASE_SCORE_ALPHA, BASE_SCORE_BETA = 5.0, 3.0
"""Beta distribution of a healthy model's predicted score (mean 0.625)."""


# --- faults ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """How a model version misbehaves. All zero: healthy."""

    error_rate: float = 0.0
    """Share of requests answered 500 (0..1)."""
    added_latency: float = 0.0
    """Seconds added to every request."""
    score_shift: float = 0.0
    """Added to every predicted score (clipped to 0..1)."""
    invalid_rate: float = 0.0
    """Share of requests whose output is invalid (0..1)."""

    _KEYS = {
        "errorRate": "error_rate",
        "addedLatency": "added_latency",
        "scoreShift": "score_shift",
        "invalidRate": "invalid_rate",
    }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Fault:
        """From {errorRate, addedLatency ("200ms" or seconds), scoreShift, invalidRate}; unknown keys fail."""
        kwargs: dict[str, float] = {}
        for key, value in data.items():
            attr = cls._KEYS.get(key) or (key if key in cls._KEYS.values() else None)
            if attr is None:
                raise ValueError(f"unknown fault field {key!r}; expected one of {sorted(cls._KEYS)}")
            kwargs[attr] = _seconds(value) if attr == "added_latency" else float(value)
        return cls(**kwargs)


HEALTHY = Fault()


def _seconds(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def parse_faults(data: Mapping[str, str]) -> dict[str, Fault]:
    """ConfigMap data -> {version or model@version: Fault}; values are JSON or YAML mappings."""
    out: dict[str, Fault] = {}
    for key, raw in data.items():
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        if not isinstance(value, Mapping):
            raise ValueError(f"fault {key!r} must be a mapping, got {type(value).__name__}")
        if key in ("faults", "faults.yaml", "faults.json"):
            out.update(parse_faults({str(k): v for k, v in value.items()}))
        else:
            out[key] = Fault.parse(value)
    return out


def parse_fault_flag(text: str) -> tuple[str, Fault]:
    """`VERSION:errorRate=0.1,addedLatency=200ms` -> (VERSION, Fault)."""
    version, _, spec = text.partition(":")
    if not version or not spec:
        raise argparse.ArgumentTypeError(f"--fault wants VERSION:key=value[,key=value], got {text!r}")
    fields = dict(item.split("=", 1) for item in spec.split(",") if item)
    return version, Fault.parse(fields)


def fault_for(faults: Mapping[str, Fault], model: str, version: str) -> Fault:
    return faults.get(f"{model}@{version}") or faults.get(version) or HEALTHY


# --- split following ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackShare:
    """One track serving part of a ModelDeployment's traffic."""

    track: str
    version: str
    share: float
    """Fraction of the ModelDeployment's requests (the shares of a split add up to 1)."""


@dataclass(frozen=True)
class PodRef:
    """A ready model-server pod of one track."""

    namespace: str
    name: str
    track: str


@dataclass(frozen=True)
class TrafficSplit:
    """Where one ModelDeployment's traffic goes now."""

    namespace: str
    name: str
    model: str
    tracks: tuple[TrackShare, ...]
    source: str
    """httproute | service | status: which object the split was read from."""
    sandbox: str = ""
    """Namespace the pods run in (empty: unknown, the ModelDeployment's namespace stands in)."""
    pods: tuple[PodRef, ...] = ()
    """Ready pods; a track without any is served by one virtual pod (see `pods_of`)."""
    dialect: str | None = None
    """spec.metrics.profile of the ModelDeployment: its pods speak that dialect (None: the simulator's)."""
    rate: float | None = None
    """User requests per second for this ModelDeployment (RATE_ANNOTATION); None: the simulator's rate."""
    load: float = 0.0
    """Requests per second running duringAnalysis hook pods generate to the canary (LOAD_ENV)."""
    load_version: str | None = None
    """The canary's version, which generated requests reach."""
    load_tag: str = ""
    """The X-Tollgate-Synthetic header the load pods send (their env TOLLGATE_SYNTHETIC_VALUE, set by the
    operator); empty: untagged."""
    mirror: float = 0.0
    """Fraction of the user requests the route copies to `mirror_track` (an HTTPRoute RequestMirror filter);
    the copies' answers are discarded."""
    mirror_track: str = ""
    mirror_version: str = ""

    @property
    def key(self) -> MDKey:
        return (self.namespace, self.name)

    def share(self, track: str) -> float:
        return sum(t.share for t in self.tracks if t.track == track)

    def pods_of(self, track: str) -> tuple[PodRef, ...]:
        found = tuple(p for p in self.pods if p.track == track)
        return found or (virtual_pod(self.sandbox or self.namespace, self.name, track),)


def virtual_pod(namespace: str, name: str, track: str) -> PodRef:
    """The stand-in pod of a track without known pods: `<name>-<track>-sim`."""
    return PodRef(namespace, fit(f"{name}-{track}-sim"), track)


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def _track_versions(md: Obj, deployments: Sequence[Obj]) -> dict[str, str]:
    status = md.get("status") or {}
    spec = md.get("spec") or {}
    versions: dict[str, str] = {}
    for d in deployments:  # the label is sanitized; the status below has the exact string and wins
        track = _get(d, "metadata", "labels", resource.LABEL_TRACK)
        version = _get(d, "metadata", "labels", resource.LABEL_VERSION)
        if track and version:
            versions[track] = version
    fallback = _get(spec, "fallback", "version") or _get(status, "lastKnownGood", "version")
    if fallback:
        versions["fallback"] = fallback
    stable = _get(status, "stable", "version") or (
        None if "stable" in versions else _get(spec, "model", "version")
    )
    if stable:
        versions["stable"] = stable
    canary = _get(status, "canary", "version")
    if canary:
        versions["canary"] = canary
    return versions


def _normalise(weights: Mapping[str, float], versions: Mapping[str, str]) -> tuple[TrackShare, ...]:
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return ()
    return tuple(
        TrackShare(track, versions.get(track, "unknown"), w / total)
        for track, w in sorted(weights.items())
        if w > 0
    )


def _ready_pods(pods: Sequence[Obj]) -> tuple[PodRef, ...]:
    out = []
    for p in pods:
        track = _get(p, "metadata", "labels", resource.LABEL_TRACK)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in _get(p, "status", "conditions") or [])
        if track and ready and not _get(p, "metadata", "deletionTimestamp"):
            out.append(PodRef(_get(p, "metadata", "namespace"), _get(p, "metadata", "name"), track))
    return tuple(sorted(out, key=lambda r: r.name))


def _load_tag(hook_pods: Sequence[Obj]) -> str:
    """The synthetic-traffic header value the load pods are told to send (TOLLGATE_SYNTHETIC_VALUE)."""
    for p in hook_pods:
        for c in _get(p, "spec", "containers") or []:
            for e in c.get("env") or []:
                if e.get("name") == SYNTHETIC_ENV and _get(p, "metadata", "labels", LABEL_HOOK) == "duringAnalysis":
                    return str(e.get("value") or "")
    return ""


def _load(hook_pods: Sequence[Obj]) -> float:
    """Requests per second of the running duringAnalysis hook pods that are load generators (LOAD_ENV)."""
    total = 0.0
    for p in hook_pods:
        if _get(p, "metadata", "labels", LABEL_HOOK) != "duringAnalysis" or _get(p, "status", "phase") != "Running":
            continue
        if _get(p, "metadata", "deletionTimestamp"):
            continue
        for c in _get(p, "spec", "containers") or []:
            for e in c.get("env") or []:
                if e.get("name") == LOAD_ENV:
                    with contextlib.suppress(TypeError, ValueError):
                        total += float(e.get("value") or 0)
    return total


def compute_split(
    md: Obj,
    *,
    deployments: Sequence[Obj] = (),
    services: Sequence[Obj] = (),
    routes: Sequence[Obj] = (),
    pods: Sequence[Obj] = (),
    hook_pods: Sequence[Obj] = (),
) -> TrafficSplit | None:
    """The live split of one ModelDeployment from its sandbox objects (see the module docstring).

    `deployments`, `services`, `routes`: the ModelDeployment's objects in its sandbox namespace (Tollgate
    labels them with tollgate.dev/modeldeployment). Returns None for an object without spec.model.
    """
    meta, spec, status = md.get("metadata") or {}, md.get("spec") or {}, md.get("status") or {}
    model = _get(spec, "model", "name")
    if not model:
        return None
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    versions = _track_versions(md, deployments)
    rate_text = (meta.get("annotations") or {}).get(RATE_ANNOTATION)
    split = TrafficSplit(namespace=ns, name=name, model=model, tracks=(), source="status",
                         sandbox=_get(status, "sandboxNamespace") or "", pods=_ready_pods(pods),
                         dialect=_get(spec, "metrics", "profile"),
                         rate=float(rate_text) if rate_text not in (None, "") else None,
                         load=_load(hook_pods), load_version=versions.get("canary"), load_tag=_load_tag(hook_pods))

    route = next((r for r in routes if _get(r, "metadata", "name") == fit(name)), None) or (
        routes[0] if routes else None
    )
    if route is not None:
        svc_track = {
            _get(s, "metadata", "name"): _get(s, "spec", "selector", resource.LABEL_TRACK) for s in services
        }
        weights: dict[str, float] = {}
        for rule in _get(route, "spec", "rules") or []:
            for ref in rule.get("backendRefs") or []:
                ref_name = ref.get("name", "")
                track = svc_track.get(ref_name) or next(
                    (t for t in ("stable", "canary", "fallback") if ref_name.endswith(f"-{t}")), None
                )
                if track:
                    weights[track] = weights.get(track, 0.0) + float(ref.get("weight", 1))
            for f in rule.get("filters") or []:
                if f.get("type") != "RequestMirror":
                    continue
                mirror = f.get("requestMirror") or {}
                target = _get(mirror, "backendRef", "name") or ""
                mtrack = svc_track.get(target) or next(
                    (t for t in ("stable", "canary", "fallback") if target.endswith(f"-{t}")), None)
                if mtrack and mtrack in versions:
                    split = replace(split, mirror=_mirror_fraction(mirror), mirror_track=mtrack,
                                    mirror_version=versions[mtrack])
        return replace(split, tracks=_normalise(weights, versions), source="httproute")

    service = next((s for s in services if _get(s, "metadata", "name") == fit(name)), None)
    if service is not None and deployments:
        selector: Mapping[str, str] = _get(service, "spec", "selector") or {}
        ready: dict[str, float] = {}
        for d in deployments:
            pod_labels: Mapping[str, str] = _get(d, "spec", "template", "metadata", "labels") or {}
            if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
                track = pod_labels.get(resource.LABEL_TRACK) or _get(
                    d, "metadata", "labels", resource.LABEL_TRACK
                )
                if track:
                    ready[track] = ready.get(track, 0.0) + float(_get(d, "status", "readyReplicas") or 0)
        return replace(split, tracks=_normalise(ready, versions), source="service")

    weight = max(0, min(100, int(status.get("canaryWeight") or 0)))
    if spec.get("killSwitch") and "fallback" in versions:
        return replace(split, tracks=_normalise({"fallback": 1.0}, versions))
    if "canary" not in versions:
        weight = 0
    return replace(split, tracks=_normalise({"stable": 100 - weight, "canary": weight}, versions))


def _mirror_fraction(mirror: Obj) -> float:
    """The share of requests a RequestMirror filter copies (Gateway API: `percent`, or `fraction`
    numerator/denominator with denominator 100 by default; neither: every request)."""
    if mirror.get("percent") is not None:
        return max(0.0, min(1.0, float(mirror["percent"]) / 100))
    fraction = mirror.get("fraction")
    if isinstance(fraction, Mapping):
        denominator = float(fraction.get("denominator") or 100)
        return max(0.0, min(1.0, float(fraction.get("numerator") or 0) / denominator))
    return 1.0


# --- sources -----------------------------------------------------------------------------------------
class SplitSource(Protocol):
    """Where the simulator learns the current splits (the Kubernetes watcher, or fixed in unit tests)."""

    def splits(self) -> Mapping[MDKey, TrafficSplit]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class FaultSource(Protocol):
    def faults(self) -> Mapping[str, Fault]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class StaticSplits:
    """A fixed set of splits, replaceable at any time (unit tests, benchmarks without a cluster)."""

    current: dict[MDKey, TrafficSplit] = field(default_factory=dict)

    def splits(self) -> Mapping[MDKey, TrafficSplit]:
        return dict(self.current)

    def set(self, *splits: TrafficSplit) -> None:
        self.current = {s.key: s for s in splits}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class StaticFaults:
    current: dict[str, Fault] = field(default_factory=dict)

    def faults(self) -> Mapping[str, Fault]:
        return dict(self.current)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Loop:
    """A daemon thread calling `step` every `period` seconds until stopped; errors are logged, not fatal."""

    def __init__(self, name: str, period: float, step: Callable[[], None]) -> None:
        self._name, self._period, self._step = name, period, step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                log.exception("%s failed; retrying", self._name)
            self._stop.wait(self._period)


class KubeSplits:
    """Follows ModelDeployments with a watch and re-reads their sandbox objects every `resync` seconds.

    The watch keeps the ModelDeployments current without polling them; the sandbox objects (Services,
    Deployments, HTTPRoutes labelled with the ModelDeployment) are listed per ModelDeployment on each
    resync, which is cheap for a test tool and follows readiness changes within a second.
    """

    def __init__(self, api_client: Any, *, namespace: str | None = None, resync: float = 1.0) -> None:
        from kubernetes import client

        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._namespace = namespace
        self._mds: dict[MDKey, Obj] = {}
        self._splits: dict[MDKey, TrafficSplit] = {}
        self._lock = threading.Lock()
        self._watcher = _Loop("simulator-watch", 0.5, self._watch_once)
        self._resyncer = _Loop("simulator-resync", resync, self.resync)
        self._has_routes = True

    def splits(self) -> Mapping[MDKey, TrafficSplit]:
        with self._lock:
            return dict(self._splits)

    def start(self) -> None:
        self._list()
        self.resync()
        self._watcher.start()
        self._resyncer.start()

    def stop(self) -> None:
        self._watcher.stop()
        self._resyncer.stop()

    def _list_call(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        g, v, p = resource.GROUP, resource.VERSION, resource.PLURAL
        if self._namespace:
            return self._custom.list_namespaced_custom_object, {
                "group": g,
                "version": v,
                "plural": p,
                "namespace": self._namespace,
            }
        return self._custom.list_cluster_custom_object, {"group": g, "version": v, "plural": p}

    def _list(self) -> str:
        fn, kwargs = self._list_call()
        body = fn(**kwargs)
        with self._lock:
            self._mds = {
                (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in body.get("items", [])
            }
        rv: str = body.get("metadata", {}).get("resourceVersion", "")
        return rv

    def _watch_once(self) -> None:
        from kubernetes import watch

        rv = self._list()
        fn, kwargs = self._list_call()
        w: Any = cast(Any, watch).Watch()
        # A short server-side timeout lets stop() end the thread promptly; the next round re-lists.
        for event in w.stream(fn, resource_version=rv, timeout_seconds=5, **kwargs):
            obj = event["object"]
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            with self._lock:
                if event["type"] == "DELETED":
                    self._mds.pop(key, None)
                    self._splits.pop(key, None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._mds[key] = obj
            if self._watcher.stopping:
                w.stop()
                break

    def resync(self) -> None:
        with self._lock:
            mds = list(self._mds.items())
        splits: dict[MDKey, TrafficSplit] = {}
        for key, md in mds:
            split = self._split(md)
            if split is not None:
                splits[key] = split
        with self._lock:
            self._splits = {k: s for k, s in splits.items() if k in self._mds}

    def _split(self, md: Obj) -> TrafficSplit | None:
        from kubernetes.client.exceptions import ApiException

        sandbox = _get(md, "status", "sandboxNamespace")
        if not sandbox:
            return compute_split(md)
        ns, name = md["metadata"]["namespace"], md["metadata"]["name"]
        selector = f"{resource.LABEL_MD_NAME}={fit(name)},{resource.LABEL_MD_NAMESPACE}={fit(ns)}"
        to_dict = self._core.api_client.sanitize_for_serialization
        try:
            deployments = [
                to_dict(d)
                for d in self._apps.list_namespaced_deployment(sandbox, label_selector=selector).items
            ]
            services = [
                to_dict(s) for s in self._core.list_namespaced_service(sandbox, label_selector=selector).items
            ]
            pods = [to_dict(p) for p in self._core.list_namespaced_pod(sandbox, label_selector=selector).items]
            hook_pods = [to_dict(p) for p in self._core.list_namespaced_pod(
                sandbox, label_selector=f"{LABEL_HOOK}=duringAnalysis").items]
        except ApiException as e:
            if e.status == 404:
                return compute_split(md)
            raise
        routes: list[Obj] = []
        if _get(md, "spec", "traffic", "router") == "gatewayAPI" and self._has_routes:
            try:
                found: Any = self._custom.list_namespaced_custom_object(
                    "gateway.networking.k8s.io", "v1", sandbox, "httproutes", label_selector=selector
                )
                routes = found.get("items", [])
            except ApiException as e:
                if e.status != 404:
                    raise
        return compute_split(md, deployments=deployments, services=services, routes=routes, pods=pods,
                             hook_pods=hook_pods)


class ConfigMapFaults:
    """Faults from a ConfigMap, re-read every `period` seconds, on top of fixed defaults (flags)."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        *,
        defaults: Mapping[str, Fault] | None = None,
        period: float = 1.0,
    ) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._namespace, self._name = namespace, name
        self._defaults = dict(defaults or {})
        self._current: dict[str, Fault] = dict(self._defaults)
        self._loop = _Loop("simulator-faults", period, self.refresh)

    def faults(self) -> Mapping[str, Fault]:
        return dict(self._current)

    def refresh(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self._core.read_namespaced_config_map(self._name, self._namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            self._current = dict(self._defaults)
            return
        try:
            parsed = parse_faults(cm.data or {})
        except (ValueError, yaml.YAMLError) as e:  # keep the last good faults; a typo must not heal a canary
            log.warning("faults ConfigMap %s/%s ignored: %s", self._namespace, self._name, e)
            return
        self._current = {**self._defaults, **parsed}

    def start(self) -> None:
        self.refresh()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


# --- the simulator -----------------------------------------------------------------------------------
class Simulator:
    """Generates traffic for every split its source reports and serves each pod's metrics on loopback.

    `tick(dt)` simulates `rate * dt` requests per ModelDeployment (fractions carry over, so the count
    is exact over time) and is deterministic for a given `seed`; `start()` runs it every
    `tick_interval` seconds in a thread and serves `/pods/<namespace>/<pod>/metrics` in `dialect`;
    `stop()` ends both.
    """

    def __init__(
        self,
        splits: SplitSource,
        faults: FaultSource | Mapping[str, Fault] | None = None,
        *,
        rate: float = 50.0,
        port: int = 0,
        addr: str = "127.0.0.1",
        seed: int | None = None,
        tick_interval: float = 0.25,
        warmup: float = 0.0,
        dialect: str = "mlserver",
    ) -> None:
        """`warmup`: seconds a new series sits at zero before it serves (see `_serve`)."""
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; choose one of {DIALECTS}")
        self.splits = splits
        self.fault_source: FaultSource = (
            faults
            if faults is not None and not isinstance(faults, Mapping)
            else StaticFaults(dict(faults or {}))
        )
        self.rate = rate
        self.dialect = dialect
        self._addr, self._port = addr, port
        self.rng = random.Random(seed)
        self._carry: dict[MDKey, float] = {}
        self._load_carry: dict[MDKey, float] = {}
        self.served: dict[tuple[MDKey, str], int] = {}
        """Requests served since start per (ModelDeployment, track), user, generated load and mirrored copies
        alike (what the track's pods answered)."""
        self.user_responses: dict[tuple[MDKey, str], int] = {}
        """Answers users got since start per (ModelDeployment, track): the weighted backends' only (never a
        mirrored copy's, never generated load's)."""
        self.mirrored: dict[tuple[MDKey, str], int] = {}
        """Copies of user requests a RequestMirror filter sent to a track since start."""
        self._mirror_carry: dict[MDKey, float] = {}
        self.warmup = warmup
        self._clock = 0.0
        self._born: dict[tuple[str, ...], float] = {}
        self._scraped: dict[tuple[str, str], int] = {}
        """Scrapes of each pod's page that found its series (its zero state included)."""
        self.exports: dict[tuple[str, str], PodExport] = {}
        """(namespace, pod) -> that pod's metrics. A pod serves one version for its whole life."""
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._loop = _Loop("simulator-traffic", tick_interval, self._tick_now)
        self._last: float | None = None
        self._lock = threading.Lock()

    # lifecycle
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port: int = self._server.server_address[1]
        return port

    @property
    def address(self) -> str:
        """host:port of the pods' metrics, for scrape targets."""
        return f"{self._addr}:{self.port}"

    @staticmethod
    def metrics_path(namespace: str, pod: str) -> str:
        return f"/pods/{namespace}/{pod}/metrics"

    def start(self) -> Simulator:
        self.splits.start()
        self.fault_source.start()
        if self._server is None:
            self._server = _PodMetricsServer((self._addr, self._port), self)
            self._server_thread = threading.Thread(target=self._server.serve_forever, name="simulator-http",
                                                   daemon=True)
            self._server_thread.start()
        self._last = time.monotonic()
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()
        self.splits.stop()
        self.fault_source.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def export_of(self, namespace: str, pod: str) -> PodExport | None:
        with self._lock:
            return self.exports.get((namespace, pod))

    def exposition(self, namespace: str, pod: str) -> bytes:
        """The text a scrape of that pod gets: its series, or none yet (a pod that served nothing)."""
        export = self.export_of(namespace, pod)
        if export is None:
            return b""
        with self._lock:
            self._scraped[(namespace, pod)] = self._scraped.get((namespace, pod), 0) + 1
        return exposition.generate_latest(export.registry)

    # traffic
    def _tick_now(self) -> None:
        now = time.monotonic()
        dt = now - (self._last if self._last is not None else now)
        self._last = now
        self.tick(min(dt, 5.0))  # after a stall, do not burst more than a few seconds of traffic

    def tick(self, dt: float) -> dict[tuple[MDKey, str], int]:
        """Simulate `dt` seconds of traffic; returns requests sent per (ModelDeployment, track)."""
        faults = self.fault_source.faults()
        sent: dict[tuple[MDKey, str], int] = {}
        self._clock += dt
        with self._lock:
            for key, split in self.splits.splits().items():
                self._generated(key, split, dt, faults, sent)
                if not split.tracks:
                    continue
                rate = self.rate if split.rate is None else split.rate
                budget = self._carry.get(key, 0.0) + rate * dt
                n = math.floor(budget)
                self._carry[key] = budget - n
                for track, count in self._allocate(split, n).items():
                    share = next(t for t in split.tracks if t.track == track)
                    fault = fault_for(faults, split.model, share.version)
                    pods = split.pods_of(track)
                    per_pod = dict.fromkeys(pods, 0)
                    for pod in self.rng.choices(pods, k=count) if count else []:
                        per_pod[pod] += 1
                    for pod, k in per_pod.items():
                        self._serve(split, share, pod, k, fault)
                    sent[(key, track)] = sent.get((key, track), 0) + count
                    self.served[(key, track)] = self.served.get((key, track), 0) + count
                    self.user_responses[(key, track)] = self.user_responses.get((key, track), 0) + count
                self._mirror(key, split, n, faults, sent)
        return sent

    def _mirror(self, key: MDKey, split: TrafficSplit, n: int, faults: Mapping[str, Fault],
                sent: dict[tuple[MDKey, str], int]) -> None:
        """Copies of `split.mirror` of the `n` user requests to the mirror's track (fractions carry over);
        its pods answer them and export metrics, nobody gets the answers."""
        if split.mirror <= 0 or not split.mirror_track:
            self._mirror_carry.pop(key, None)
            return
        budget = self._mirror_carry.get(key, 0.0) + n * split.mirror
        copies = math.floor(budget)
        self._mirror_carry[key] = budget - copies
        track = split.mirror_track
        share = TrackShare(track, split.mirror_version, 0.0)
        fault = fault_for(faults, split.model, split.mirror_version)
        pods = split.pods_of(track)
        per_pod = dict.fromkeys(pods, 0)
        for pod in self.rng.choices(pods, k=copies) if copies else []:
            per_pod[pod] += 1
        for pod, k in per_pod.items():
            self._serve(split, share, pod, k, fault)
        sent[(key, track)] = sent.get((key, track), 0) + copies
        self.served[(key, track)] = self.served.get((key, track), 0) + copies
        self.mirrored[(key, track)] = self.mirrored.get((key, track), 0) + copies

    def _generated(self, key: MDKey, split: TrafficSplit, dt: float, faults: Mapping[str, Fault],
                   sent: dict[tuple[MDKey, str], int]) -> None:
        """The load of running duringAnalysis hook pods, all to the canary's pods (its own Service)."""
        if split.load <= 0 or not split.load_version:
            self._load_carry.pop(key, None)
            return
        budget = self._load_carry.get(key, 0.0) + split.load * dt
        n = math.floor(budget)
        self._load_carry[key] = budget - n
        share = TrackShare("canary", split.load_version, 1.0)
        fault = fault_for(faults, split.model, split.load_version)
        pods = split.pods_of("canary")
        per_pod = dict.fromkeys(pods, 0)
        for pod in self.rng.choices(pods, k=n) if n else []:
            per_pod[pod] += 1
        for pod, k in per_pod.items():
            self._serve(split, share, pod, k, fault, synthetic=split.load_tag)
        sent[(key, "canary")] = sent.get((key, "canary"), 0) + n
        self.served[(key, "canary")] = self.served.get((key, "canary"), 0) + n

    def _allocate(self, split: TrafficSplit, n: int) -> dict[str, int]:
        """Each request picks a track with probability equal to its share (multinomial)."""
        counts = {t.track: 0 for t in split.tracks}
        tracks = [t.track for t in split.tracks]
        weights = [t.share for t in split.tracks]
        for track in self.rng.choices(tracks, weights, k=n) if n else []:
            counts[track] += 1
        return counts

    def _export(self, split: TrafficSplit, share: TrackShare, pod: PodRef) -> PodExport:
        export = self.exports.get((pod.namespace, pod.name))
        if export is None:
            export = PodExport(split.dialect or self.dialect, model=split.model, version=label_value(share.version),
                               workload=fit(f"{split.name}-{pod.track}"), namespace=pod.namespace)
            self.exports[(pod.namespace, pod.name)] = export
        return export

    def _serve(self, split: TrafficSplit, share: TrackShare, pod: PodRef, n: int, fault: Fault,
               synthetic: str = "") -> None:
        export = self._export(split, share, pod)
        born = self._born.setdefault((pod.namespace, pod.name), self._clock)
        # Served over HTTP, the zero state must also have been scraped: on a loaded machine scrapes time
        # out, and a time-based warm-up alone let the first counts land before any zero was seen.
        unseen = self._server is not None and self.warmup > 0 and not self._scraped.get((pod.namespace, pod.name))
        if self._clock - born < self.warmup or unseen:
            # A new series is first exposed at zero and scraped before it counts anything: Prometheus'
            # rate() extrapolates a series that starts mid-window from its first value, differently
            # for a histogram's _sum and _count, which biased the mean score of a fresh canary by up
            # to 20% (a healthy canary failing score-shift). Zero first makes every ratio exact.
            export.warm()
            return
        if n <= 0:
            return
        served = []
        for _ in range(n):
            status = 500 if self.rng.random() < fault.error_rate else 200
            latency = self.rng.lognormvariate(math.log(BASE_LATENCY), 0.3) + fault.added_latency
            score = min(1.0, max(0.0, self.rng.betavariate(BASE_SCORE_ALPHA, BASE_SCORE_BETA) + fault.score_shift))
            invalid = self.rng.random() < fault.invalid_rate
            served.append(Served(status, latency, score, invalid, synthetic))
        export.record(served)


class _PodMetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _PodMetricsHandler)


class _PodMetricsHandler(BaseHTTPRequestHandler):
    """GET /pods/<namespace>/<pod>/metrics: that pod's exposition (empty until it served a request)."""

    server: _PodMetricsServer

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[0] != "pods" or parts[3] != "metrics":
            self.send_error(404, "want /pods/<namespace>/<pod>/metrics")
            return
        body = self.server.simulator.exposition(parts[1], parts[2])
        # A scrape that timed out closes its connection first (a loaded machine): nothing to report.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(200)
            self.send_header("Content-Type", exposition.CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- command line ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tollgate_testkit.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG / in-cluster)")
    p.add_argument("--namespace", help="watch ModelDeployments in this namespace only (default: all)")
    p.add_argument("--addr", default="127.0.0.1", help="address of /metrics (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9300, help="port of /metrics (0: any free port)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second per ModelDeployment")
    p.add_argument("--tick", type=float, default=0.25, help="seconds between traffic batches")
    p.add_argument("--resync", type=float, default=1.0, help="seconds between reads of the sandbox objects")
    p.add_argument("--seed", type=int, help="random seed (deterministic traffic)")
    p.add_argument("--dialect", choices=DIALECTS, default="mlserver",
                   help="metric dialect of the simulated model servers (default mlserver)")
    p.add_argument("--faults-configmap", metavar="NAMESPACE/NAME", help="ConfigMap of faults by version")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        type=parse_fault_flag,
        metavar="VERSION:k=v,...",
        help="fault for a version, e.g. 2.4.0:errorRate=0.1,addedLatency=200ms (repeatable)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from kubernetes import config as kube_config

    config: Any = kube_config
    if args.kubeconfig or not _in_cluster():
        api = config.new_client_from_config(config_file=args.kubeconfig)
    else:
        config.load_incluster_config()
        from kubernetes import client

        api = client.ApiClient()
    defaults = dict(args.fault)
    faults: FaultSource | Mapping[str, Fault] = defaults
    if args.faults_configmap:
        ns, _, name = args.faults_configmap.partition("/")
        if not name:
            raise SystemExit("--faults-configmap wants NAMESPACE/NAME")
        faults = ConfigMapFaults(api, ns, name, defaults=defaults)
    sim = Simulator(
        KubeSplits(api, namespace=args.namespace, resync=args.resync),
        faults,
        rate=args.rate,
        port=args.port,
        addr=args.addr,
        seed=args.seed,
        tick_interval=args.tick,
        dialect=args.dialect,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    sim.start()
    print(f"http://{sim.address}/pods/<namespace>/<pod>/metrics", flush=True)
    try:
        done.wait()
    finally:
        sim.stop()
    return 0


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def describe(splits: Iterable[TrafficSplit]) -> str:
    """One line per split, for logs: ns/name model track=version:share ..."""
    return "\n".join(
        f"{s.namespace}/{s.name} {s.model} ({s.source}) "
        + " ".join(f"{t.track}={t.version}:{t.share:.2f}" for t in s.tracks)
        + (f" mirror {s.mirror_track}={s.mirror_version}:{s.mirror:.2f}" if s.mirror > 0 else "")
        for s in splits
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
