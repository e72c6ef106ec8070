"""What Traefik, the test environment's Gateway API data plane, does with the routes a router writes.

Traefik runs as a host process against the local control plane (tollgate_testkit.gateway.HostTraefik),
with the GatewayClass and a Gateway in the test's namespace. The backends are plain HTTP servers on
this host, each behind a Service without a selector whose EndpointSlice names this host's address.
Each server counts the requests it answered. These tests pin the facts in docs/gateway.md with real
requests:
- weighted backendRefs split the requests by weight;
- an HTTPRoute RequestMirror filter is not supported: every request of the rule is answered 500,
  while the route's status still reads ResolvedRefs=True;
- a TraefikService of type mirroring (the backendRef a shadow step can use on Traefik) answers every
  client from the main service and sends a copy of `percent` of the requests to the mirror.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.cluster import Cluster
from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import ApplyObjects
from tollgate.engine.observations import MetricValue, SLOObservation
from tollgate_testkit import gateway
from tollgate_testkit.controlplane import free_port
from tollgate_testkit.stack import wait_for
from unit.engine.conftest import Sim

REQUESTS = 200


def host_address() -> str:
    """This host's address on its default route: EndpointSlices refuse loopback addresses."""
    out = subprocess.run(["ip", "-o", "-4", "route", "get", "192.0.2.255"], capture_output=True, text=True,
                         check=False).stdout.split()
    if "src" in out:
        return out[out.index("src") + 1]
    return subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()[0]


class Server(ThreadingHTTPServer):
    request_queue_size = 1024
    """Mirrored copies arrive all at once (Traefik sends them in the background, not paced by the client): with
    the default backlog of 5 most of a burst's copies were refused by this host, and a test counting copies at
    the canary would pass for the wrong reason."""
    daemon_threads = True


class Backend:
    """An HTTP server standing in for one track's pods: answers 200 with its name, counts requests."""

    def __init__(self, name: str, address: str):
        self.name, self.count, self.bodies = name, 0, Counter[bytes]()
        lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    backend.count += 1
                    backend.bodies[body] += 1
                out = json.dumps({"track": backend.name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server((address, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def traefik(cluster: Cluster) -> Iterator[tuple[gateway.HostTraefik, str]]:
    """Traefik on this host with a Gateway in its own namespace, labelled as a Tollgate sandbox (the
    Gateway admits routes only from those)."""
    ns = f"gw-traefik-{free_port()}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "app.kubernetes.io/managed-by=tollgate")
    proc = gateway.HostTraefik(str(cluster.kubeconfig), Path(tempfile.mkdtemp(prefix="tollgate-traefik-")),
                               web_port=free_port(), admin_port=free_port(), namespace=ns)
    try:
        proc.start()
        yield proc, ns
    finally:
        proc.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def backends(cluster: Cluster, traefik: tuple[gateway.HostTraefik, str]) -> Iterator[dict[str, Backend]]:
    """stable, canary, fallback: one server each, behind Services of those names in the Gateway's namespace."""
    _, ns = traefik
    address = host_address()
    made = {name: Backend(name, address) for name in ("stable", "canary", "fallback")}
    objects: list[dict[str, Any]] = []
    for name, b in made.items():
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                        "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}})
        objects.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": name, "namespace": ns,
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "ports": [{"name": "http", "port": b.port, "protocol": "TCP"}],
                        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]})
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in objects))
    try:
        yield made
    finally:
        for b in made.values():
            b.close()
        cluster.kubectl("delete", "httproute,traefikservice,middleware", "--all", "-n", ns, check=False)


def route(ns: str, backend_refs: list[dict[str, Any]], filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": backend_refs}
    if filters:
        rule["filters"] = filters
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "model", "namespace": ns},
            "spec": {"parentRefs": [{"name": gateway.GATEWAY_NAME, "namespace": ns}], "rules": [rule]}}


def apply_route(cluster: Cluster, proc: gateway.HostTraefik, manifest: dict[str, Any]) -> dict[str, Any]:
    """Apply the route and wait until Traefik has written its status for this generation."""
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]

    def current() -> dict[str, Any] | None:
        got: dict[str, Any] = json.loads(cluster.kubectl("get", "httproute", name, "-n", ns, "-o",
                                                         "json").stdout)
        gen = got["metadata"]["generation"]
        for parent in (got.get("status") or {}).get("parents") or []:
            if parent.get("controllerName") == gateway.CONTROLLER_NAME and any(
                    c.get("observedGeneration") == gen for c in parent.get("conditions") or []):
                return got
        return None

    got = wait_for(f"Traefik's status on route {ns}/{name}", current, timeout=60, interval=0.5)
    assert isinstance(got, dict)
    return got


def conditions(route_obj: dict[str, Any]) -> dict[str, str]:
    parent = next(p for p in route_obj["status"]["parents"] if p["controllerName"] == gateway.CONTROLLER_NAME)
    return {c["type"]: c["status"] for c in parent["conditions"]}


def send(proc: gateway.HostTraefik, n: int, body: bytes = b'{"inputs": []}',
         headers: dict[str, str] | None = None) -> Counter[tuple[int, str]]:
    """n POSTs through the Gateway; (status, answering track) of each."""
    seen: Counter[tuple[int, str]] = Counter()
    for _ in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{proc.web_port}/v2/models/m/infer", data=body,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                seen[(resp.status, json.loads(resp.read())["track"])] += 1
        except urllib.error.HTTPError as exc:
            seen[(exc.code, "")] += 1
    return seen


def services(proc: gateway.HostTraefik) -> list[dict[str, Any]]:
    """Traefik's runtime configuration: the HTTP services in force (its API). A route's status is written
    before its configuration is in force (Traefik throttles configuration reloads), so tests wait here."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/api/http/services", timeout=5) as resp:
        got: list[dict[str, Any]] = json.loads(resp.read())
    return got


def in_force(proc: gateway.HostTraefik, ns: str, weights: dict[str, int]) -> bool:
    """Traefik's runtime configuration has the route's weighted service with these weights."""
    for svc in services(proc):
        children = (svc.get("weighted") or {}).get("services") or []
        found = {b: int(c.get("weight", 1)) for c in children for b in weights if f"-svc-{ns}-{b}-" in c["name"]}
        if found:
            return found == weights
    return False


def reloads(proc: gateway.HostTraefik) -> float:
    """traefik_config_reloads_total: how many configurations Traefik has put in force."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("traefik_config_reloads_total"))


def quiet(proc: gateway.HostTraefik, still: float = 2.0) -> None:
    """Wait until Traefik has put no new configuration in force for `still` seconds (events of the objects
    just applied, or of an earlier test's, may still be coming)."""
    last, since = reloads(proc), time.monotonic()
    deadline = since + 30
    while time.monotonic() - since < still:
        assert time.monotonic() < deadline, "Traefik kept reloading its configuration for 30 s"
        time.sleep(0.2)
        now = reloads(proc)
        if now != last:
            last, since = now, time.monotonic()


class Burst:
    """Times a burst and counts Traefik's configuration reloads during it. A reload builds new handlers and
    with them new rate limiters, whose buckets start full (Traefik keeps no limiter state across reloads), so
    what a bucket lets through in a burst is at most burst * (1 + reloads) + rate * elapsed, plus one request
    in flight. serving() waits for a quiet configuration first, so the reloads are usually 0."""

    def __init__(self, proc: gateway.HostTraefik) -> None:
        self._proc = proc
        self._start = time.monotonic()
        self._reloads = reloads(proc)
        self.elapsed = 0.0
        self.refills = 0

    def end(self) -> Burst:
        self.elapsed = time.monotonic() - self._start
        self.refills = int(reloads(self._proc) - self._reloads)
        return self

    def cap(self, rate: float = 5, burst: float = 5) -> float:
        return burst * (1 + self.refills) + rate * self.elapsed + 1

    def __repr__(self) -> str:
        return f"Burst(elapsed={self.elapsed:.2f}s, reloads during it={self.refills})"


def serving(proc: gateway.HostTraefik, backends: dict[str, Backend], body: bytes = b'{"inputs": []}') -> None:
    """Wait until the Gateway answers with the route (not 404: Traefik's API can show a configuration a
    moment before its entrypoint serves it) and its configuration is quiet, then zero the backends' counts."""
    wait_for("the route served", lambda: not any(code == 404 for code, _ in send(proc, 1, body)), timeout=30,
             interval=0.2)
    quiet(proc)
    for b in backends.values():
        b.count = 0
        b.bodies.clear()


def within(k: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """k of n is within `sigmas` binomial standard deviations (plus one request) of the share p."""
    return abs(k / n - p) <= sigmas * math.sqrt(p * (1 - p) / n) + 1 / n


def test_weighted_backend_refs_split_real_requests_by_weight(cluster: Cluster, traefik: Any,
                                                             backends: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given a route weighing stable 80, canary 20, fallback 0, accepted by Traefik
    got = apply_route(cluster, proc, route(ns, [{"name": "stable", "port": 8080, "weight": 80},
                                                {"name": "canary", "port": 8080, "weight": 20},
                                                {"name": "fallback", "port": 8080, "weight": 0}]))
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    wait_for("weights in force", lambda: in_force(proc, ns, {"stable": 80, "canary": 20, "fallback": 0}),
             timeout=30, interval=0.5)
    serving(proc, backends)
    # when requests come in through the Gateway
    seen = send(proc, REQUESTS)
    # then each is answered 200 by a backend, split by the weights; the weight-0 backend gets none
    assert sum(seen.values()) == REQUESTS and all(code == 200 for code, _ in seen), seen
    counts = {b.name: b.count for b in backends.values()}
    print(f"weights 80/20/0: served {counts}")
    assert counts["stable"] + counts["canary"] == REQUESTS and counts["fallback"] == 0, counts
    assert within(counts["canary"], REQUESTS, 0.2), counts
    # and the split follows the weights, not the order: reversed, the canary gets the larger share
    apply_route(cluster, proc, route(ns, [{"name": "stable", "port": 8080, "weight": 20},
                                          {"name": "canary", "port": 8080, "weight": 80},
                                          {"name": "fallback", "port": 8080, "weight": 0}]))
    wait_for("weights in force", lambda: in_force(proc, ns, {"stable": 20, "canary": 80, "fallback": 0}),
             timeout=30, interval=0.5)
    serving(proc, backends)
    send(proc, REQUESTS)
    assert within(backends["canary"].count, REQUESTS, 0.8), {b.name: b.count for b in backends.values()}


def test_request_mirror_filter_is_not_supported_every_request_is_answered_500(
        cluster: Cluster, traefik: Any, backends: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given a route whose rule mirrors 10% of the requests to the canary with the Gateway API filter
    got = apply_route(cluster, proc, route(ns, [{"name": "stable", "port": 8080, "weight": 100}], filters=[
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "canary", "port": 8080}, "percent": 10}}]))
    # then Traefik still reports the route accepted with its references resolved
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    # but answers every request 500, and no backend sees any
    wait_for("the route's error service in force", lambda: any(
        c["name"] == "invalid-httproute-filter" for s in services(proc)
        for c in (s.get("weighted") or {}).get("services") or []), timeout=30, interval=0.5)
    serving(proc, backends)
    seen = send(proc, 20)
    assert seen == Counter({(500, ""): 20}), seen
    assert {b.name: b.count for b in backends.values()} == {"stable": 0, "canary": 0, "fallback": 0}
    assert "unsupported filter RequestMirror" in proc.logs()


def test_traefik_service_mirroring_answers_from_stable_and_copies_a_percentage(
        cluster: Cluster, traefik: Any, backends: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given a TraefikService mirroring 10% of stable's requests to the canary, as the route's backendRef
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": {"name": "shadow", "namespace": ns},
        "spec": {"mirroring": {"name": "stable", "port": 8080,
                               "mirrors": [{"name": "canary", "port": 8080, "percent": 10}]}}}))
    got = apply_route(cluster, proc, route(ns, [{"group": "traefik.io", "kind": "TraefikService", "name": "shadow",
                                                 "weight": 1}]))
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    wait_for("the mirroring service in force", lambda: any(
        s.get("name") == f"{ns}-shadow@kubernetescrd" and s.get("mirroring") for s in services(proc)),
        timeout=30, interval=0.5)
    wait_for("the route to it in force", lambda: any(
        c["name"] == f"{ns}-shadow@kubernetescrd" for s in services(proc)
        for c in (s.get("weighted") or {}).get("services") or []), timeout=30, interval=0.5)
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]}]}'
    serving(proc, backends, body)
    # when requests come in through the Gateway
    seen = send(proc, REQUESTS, body)
    # then every client is answered by stable
    assert seen == Counter({(200, "stable"): REQUESTS}), seen
    # and the canary receives copies, body included, of 10% of them (sent after stable answered)
    wait_for("the mirrored copies arrive", lambda: backends["canary"].count >= REQUESTS // 10, timeout=30,
             interval=0.2)
    assert backends["stable"].count == REQUESTS
    assert within(backends["canary"].count, REQUESTS, 0.1), backends["canary"].count
    assert set(backends["canary"].bodies) == {body}
    assert backends["fallback"].count == 0


def test_rate_limit_middleware_on_the_canary_backend_ref_caps_what_the_canary_serves(
        cluster: Cluster, traefik: Any, backends: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given a 50/50 route whose canary backendRef names a traefik.io rate-limit Middleware (ExtensionRef):
    # 5 requests per second, a burst of 5, one bucket for every client (sourceCriterion requestHost)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": "canary-limit", "namespace": ns},
        "spec": {"rateLimit": {"average": 5, "period": "1s", "burst": 5, "sourceCriterion": {"requestHost": True}}}}))
    limit = {"type": "ExtensionRef",
             "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "canary-limit"}}
    got = apply_route(cluster, proc, route(ns, [{"name": "stable", "port": 8080, "weight": 50},
                                                {"name": "canary", "port": 8080, "weight": 50, "filters": [limit]}]))
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    wait_for("the limit in force on the canary's service", lambda: any(
        f"-svc-{ns}-canary-" in s["name"] and f"{ns}-canary-limit@kubernetescrd" in (s.get("middlewares") or [])
        for s in services(proc)), timeout=30, interval=0.5)
    serving(proc, backends)
    # when one client sends a burst of requests as fast as it can
    burst = Burst(proc)
    seen = send(proc, REQUESTS)
    burst.end()
    # then stable serves its whole share, the canary no more than the bucket allows in that time, and the
    # rest of the canary's share is refused with 429 (not sent to stable: that takes a failover service)
    canary = backends["canary"].count
    print(f"burst of {REQUESTS}, {burst}: stable {backends['stable'].count}, canary {canary}, {seen}")
    assert backends["stable"].count == REQUESTS // 2
    assert canary <= burst.cap(), (canary, burst)
    assert seen[(429, "")] == REQUESTS // 2 - canary, seen


def test_the_real_node_manifests_are_admitted(cluster: Cluster) -> None:
    # given Traefik's objects for the real node (namespace with Pod Security restricted, RBAC, the Service
    # at its fixed ClusterIP, GatewayClass, Gateway)
    docs = gateway.manifests("tollgate.local/traefik:test")
    try:
        # when they are applied
        cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(m) for m in docs))
        # then the API server admits all of them, the Traefik pod included (Pod Security restricted)
        def admitted() -> str:
            return str(cluster.kubectl("get", "pods", "-n", gateway.NAMESPACE, "-l", "app.kubernetes.io/name=traefik",
                                       "-o", "name").stdout.strip())

        wait_for("the Traefik pod admitted", admitted, timeout=60, interval=0.5)
        svc = json.loads(cluster.kubectl("get", "service", gateway.SERVICE, "-n", gateway.NAMESPACE, "-o",
                                         "json").stdout)
        assert svc["spec"]["clusterIP"] == gateway.SERVICE_IP
    finally:
        # (the GatewayClass and the ClusterRole are shared with the host Traefik of the other tests)
        cluster.kubectl("delete", "-f", "-", "--wait=false", "--ignore-not-found", check=False, input="\n---\n".join(
            yaml.safe_dump(m) for m in docs if m["kind"] not in ("GatewayClass", "ClusterRole")))


def test_failover_sends_what_is_over_the_canary_rate_limit_to_stable(
        cluster: Cluster, traefik: Any, backends: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given the canary's 50% going through a TraefikService failover: the canary behind a rate-limit
    # Middleware (5/s, burst 5, one bucket), and stable as the fallback for what it answers 429
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in [
        {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
         "metadata": {"name": "canary-limit", "namespace": ns},
         "spec": {"rateLimit": {"average": 5, "period": "1s", "burst": 5, "sourceCriterion": {"requestHost": True}}}},
        {"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
         "metadata": {"name": "canary-throttled", "namespace": ns},
         "spec": {"failover": {"service": {"name": "canary", "port": 8080, "middlewares": [{"name": "canary-limit"}]},
                               "fallback": {"name": "stable", "port": 8080},
                               "errors": {"status": ["429"]}}}},
    ]))
    got = apply_route(cluster, proc, route(ns, [
        {"name": "stable", "port": 8080, "weight": 50},
        {"group": "traefik.io", "kind": "TraefikService", "name": "canary-throttled", "weight": 50}]))
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    wait_for("the failover in force", lambda: any(
        s.get("name") == f"{ns}-canary-throttled@kubernetescrd" and s.get("failover") for s in services(proc)),
        timeout=30, interval=0.5)
    wait_for("the route to it in force", lambda: any(
        c["name"] == f"{ns}-canary-throttled@kubernetescrd" for s in services(proc)
        for c in (s.get("weighted") or {}).get("services") or []), timeout=30, interval=0.5)
    serving(proc, backends)
    # when one client sends a burst of requests as fast as it can
    burst = Burst(proc)
    seen = send(proc, REQUESTS)
    burst.end()
    # then every request is answered 200; the canary serves no more than its bucket allows in that time,
    # and stable serves the rest
    canary = backends["canary"].count
    print(f"burst of {REQUESTS} through the failover, {burst}: {seen}")
    assert seen[(429, "")] == 0 and sum(n for (code, _), n in seen.items() if code == 200) == REQUESTS, seen
    assert canary <= burst.cap(), (canary, burst)
    assert seen[(200, "canary")] == canary and seen[(200, "stable")] == REQUESTS - canary, seen


# --- The operator's own objects (engine.dataplane, dialect traefik) drive Traefik -----------------------------
# The engine decides a rollout step by step (the unit tests' simulator around engine.rollout.decide, with
# --gateway-dialect traefik); the routing objects of its last decision (TraefikServices, Middlewares, the
# HTTPRoute) are applied here as rendered. Only the per-track Services are swapped for Services of the same
# names without a selector, whose EndpointSlices name this host's backends (no pod serves on this control plane).

MD = "fraud-scorer"
ROUTING_KINDS = ("TraefikService", "Middleware", "HTTPRoute")


@pytest.fixture
def tracks(cluster: Cluster, traefik: tuple[gateway.HostTraefik, str]) -> Iterator[dict[str, Backend]]:
    """stable, canary, fallback: one host server each, behind the Services the operator names for its tracks."""
    _, ns = traefik
    address = host_address()
    made = {name: Backend(name, address) for name in ("stable", "canary", "fallback")}
    objects: list[dict[str, Any]] = []
    for track, b in made.items():
        name = f"{MD}-{track}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                        "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}})
        objects.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4", "ports": [{"name": "http", "port": b.port, "protocol": "TCP"}],
                        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]})
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in objects))
    try:
        yield made
    finally:
        for b in made.values():
            b.close()
        cluster.kubectl("delete", "httproute,traefikservice,middleware", "--all", "-n", ns, check=False)


def engine_at(ns: str, steps: list[dict[str, Any]], *, weight: int, mirror: int, **traffic: Any) -> Sim:
    """The engine, dialect traefik, with a stable 1.0.0 and a canary 2.0.0 that has entered its first step
    (weight, mirror); the sandbox is the Gateway's namespace, and the route's parent that Gateway."""
    spec = ModelDeploymentSpec.model_validate({
        "model": {"name": MD, "version": "1.0.0"},
        "runtime": {"image": "registry.example/model-server:1", "port": 8080},
        "replicas": 4, "sandbox": {"namespace": ns},
        "traffic": {"router": "gatewayAPI",
                    "gatewayAPI": {"parentRefs": [{"name": gateway.GATEWAY_NAME, "namespace": ns}]}, **traffic},
        "rollout": {"steps": steps, "analysis": {"interval": "30s", "minSamples": 100}, "progressDeadline": "5m"}})
    sim = Sim(spec, dialect=GatewayDialect.TRAEFIK)
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert (sim.status.canaryWeight, sim.status.canaryMirror) == (weight, mirror), sim.status.message
    return sim


def apply_rendered(cluster: Cluster, proc: gateway.HostTraefik, sim: Sim) -> dict[str, Any]:
    """Apply the routing objects of the engine's last decision, in its order; returns the route as Traefik saw it."""
    (apply,) = sim.decisions[-1].of_type(ApplyObjects)
    rendered = [dict(o) for o in apply.objects if o["kind"] in ROUTING_KINDS]
    assert rendered[-1]["kind"] == "HTTPRoute" and "RequestMirror" not in json.dumps(rendered)
    own = [o for o in rendered if o["kind"] != "HTTPRoute"]
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in own))
    return apply_route(cluster, proc, rendered[-1])


def service_in_force(proc: gateway.HostTraefik, ns: str, name: str, kind: str) -> None:
    """Traefik's runtime configuration has the TraefikService `name` of this kind, and a route naming it."""
    full = f"{ns}-{name}@kubernetescrd"
    wait_for(f"{kind} {name} in force", lambda: any(s.get("name") == full and s.get(kind) for s in services(proc)),
             timeout=30, interval=0.5)
    wait_for(f"the route to {name} in force", lambda: any(
        c["name"] == full for s in services(proc) for c in (s.get("weighted") or {}).get("services") or []),
        timeout=30, interval=0.5)


def settled(backend: Backend) -> int:
    """The backend's count once it stops moving (mirrored copies are sent after the client's answer)."""
    last = -1
    while backend.count != last:
        last = backend.count
        time.sleep(0.5)
    return last


def test_operator_rendered_shadow_step_users_get_stable_only_and_the_canary_its_mirrored_share(
        cluster: Cluster, traefik: Any, tracks: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given the engine's decision for a canary in its shadow step (10% mirrored), in the traefik dialect
    sim = engine_at(ns, [{"shadow": {"percent": 10}}, {"weight": 50}, {"weight": 100}], weight=0, mirror=10)
    # when its routing objects are applied as the operator renders them
    got = apply_rendered(cluster, proc, sim)
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    service_in_force(proc, ns, f"{MD}-mirror", "mirroring")
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]}]}'
    serving(proc, tracks, body)
    # and users send requests through the Gateway
    seen = send(proc, REQUESTS, body)
    # then every user is answered by stable, none by the canary
    assert seen == Counter({(200, "stable"): REQUESTS}), seen
    # and the canary receives copies of about 10% of them, bodies included, counted at the canary
    wait_for("the mirrored copies arrive", lambda: tracks["canary"].count >= REQUESTS // 10 - 1, timeout=30,
             interval=0.2)
    canary = settled(tracks["canary"])
    print(f"shadow 10% rendered by the operator: stable served {tracks['stable'].count} users, canary got {canary} "
          f"copies")
    assert tracks["stable"].count == REQUESTS and tracks["fallback"].count == 0
    assert within(canary, REQUESTS, 0.1), canary
    assert set(tracks["canary"].bodies) == {body}


def test_operator_rendered_canary_rate_limit_caps_the_canary_under_a_burst_and_stable_answers_the_rest(
        cluster: Cluster, traefik: Any, tracks: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given the engine's decision for a canary at 50% with spec.traffic.canaryRateLimit 5 (status shows it)
    sim = engine_at(ns, [{"weight": 50}, {"weight": 100}], weight=50, mirror=0, canaryRateLimit=5)
    assert sim.status.rateLimits is not None and sim.status.rateLimits.canary == 5
    # when its routing objects are applied as the operator renders them
    got = apply_rendered(cluster, proc, sim)
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    service_in_force(proc, ns, f"{MD}-canary-limited", "failover")
    serving(proc, tracks)
    # and one client sends a burst as fast as it can, choosing its own rate-limit key (it cannot: Tollgate's
    # Middleware overwrites the header the limit counts by)
    burst = Burst(proc)
    seen = Counter[tuple[int, str]]()
    for i in range(REQUESTS // 20):
        seen += send(proc, 20, headers={"X-Tollgate-Rate-Key": f"client-{i}"})
    burst.end()
    # then every user gets an answer, the canary serves no more than its bucket allows (5/s, burst 5) in that
    # time, counted at the canary, and stable answers the rest
    canary = tracks["canary"].count
    print(f"burst of {REQUESTS}, {burst}, canary limited to 5/s by the operator's objects: {seen}")
    assert sum(n for (code, _), n in seen.items() if code == 200) == REQUESTS, seen
    assert canary <= burst.cap(), (canary, burst)
    assert seen[(200, "canary")] == canary and seen[(200, "stable")] == REQUESTS - canary, seen
    assert tracks["stable"].count == REQUESTS - canary
    # and when the engine's next analysis tick gets the requests each backend counted (what the model servers'
    # request counters give the analysis through Prometheus), status shows the limit biting: route weight 50,
    # the canary served what the bucket let through
    sim.tick((SLOObservation(name="error-rate", canary=MetricValue(0.0, tracks["canary"].count),
                             stable=MetricValue(0.0, tracks["stable"].count), window="1m"),))
    served = sim.status.served
    print(f"status.served after the burst: {served}")
    assert served is not None and served.weight == 50, sim.status
    assert served.canaryPercent == round(canary / REQUESTS * 100, 1) and served.canaryPercent < 50, served


def test_operator_rendered_shadow_step_with_a_canary_rate_limit_caps_the_mirrored_copies(
        cluster: Cluster, traefik: Any, tracks: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given a shadow step mirroring every request (100%) to a canary limited to 5 requests per second
    sim = engine_at(ns, [{"shadow": {"percent": 100}}, {"weight": 100}], weight=0, mirror=100, canaryRateLimit=5)
    got = apply_rendered(cluster, proc, sim)
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    service_in_force(proc, ns, f"{MD}-mirror", "mirroring")
    serving(proc, tracks)
    # when a burst comes in
    burst = Burst(proc)
    seen = send(proc, REQUESTS)
    # then users get stable's answers only, and the canary receives no more copies than its limit allows
    canary = settled(tracks["canary"])
    burst.end()
    print(f"shadow 100% with the canary limited to 5/s: {seen}; canary got {canary} copies, {burst}")
    assert seen == Counter({(200, "stable"): REQUESTS}), seen
    assert 0 < canary <= burst.cap(), (canary, burst)


def test_operator_rendered_model_rate_limit_refuses_what_is_over_it(
        cluster: Cluster, traefik: Any, tracks: dict[str, Backend]) -> None:
    proc, ns = traefik
    # given the engine's decision for a canary at 50% with a model-wide limit of 5 requests per second
    sim = engine_at(ns, [{"weight": 50}, {"weight": 100}], weight=50, mirror=0, rateLimit=5)
    assert sim.status.rateLimits is not None and sim.status.rateLimits.model == 5
    got = apply_rendered(cluster, proc, sim)
    assert conditions(got) == {"Accepted": "True", "ResolvedRefs": "True"}
    wait_for("the model's limit in force on the route", lambda: any(
        f"{ns}-{MD}-rate-limit@kubernetescrd" in (r.get("middlewares") or []) for r in routers(proc)),
        timeout=30, interval=0.5)
    serving(proc, tracks)
    # when a burst comes in
    burst = Burst(proc)
    seen = send(proc, REQUESTS)
    burst.end()
    # then the model (both tracks together) serves no more than the bucket allows, the rest is refused 429
    served = tracks["stable"].count + tracks["canary"].count
    print(f"burst of {REQUESTS}, {burst}, model limited to 5/s: {seen}")
    assert served <= burst.cap(), (served, burst)
    assert seen[(429, "")] == REQUESTS - served, seen


def routers(proc: gateway.HostTraefik) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/api/http/routers", timeout=5) as resp:
        got: list[dict[str, Any]] = json.loads(resp.read())
    return got
