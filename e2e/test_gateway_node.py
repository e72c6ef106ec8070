"""Real requests through a real Gateway API data plane on the machine's real node (E2E_BACKEND=node).

Traefik, built from its Go module (hack/gateway/build.sh, docs/gateway.md), runs as a pod behind the
Gateway `tollgate-gateway/inference`. A ModelDeployment with `spec.traffic.router: gatewayAPI` attaches
its HTTPRoute to that Gateway. A load generator pod sends inference requests to the Gateway's Service,
Traefik routes them by the HTTPRoute's weights to the stable and canary MLServer pods, and the split
is counted where the requests arrive: each model-server pod's own request counter
(`rest_server_requests_total`), read from the pod before and after a bounded batch of requests.

The tolerance is statistical, the contract of a weight: were each request routed independently with
the canary's probability p, the canary's count of N would be Binomial(N, p); a share within
4 standard deviations (sqrt(p(1-p)/N)) plus one request of p passes, so a correct data plane fails
about once in 15,000 batches. Traefik's weighted round robin is a deterministic schedule, so its
split is exact to a request or two; the tolerance does not lean on that.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from e2e_world import World
from test_real_node import ANALYSIS, SLOS, TRAFFIC_NS, _operator_stopped, metrics_of, model, sandbox
from tollgate_testkit import gateway
from tollgate_testkit.stack import wait_for

pytestmark = pytest.mark.skipif(os.environ.get("E2E_BACKEND") != "node",
                                reason="real pods: run with E2E_BACKEND=node (make e2e-node)")

BATCH = 300
"""Requests per measured step (at 25 per second: 12 s)."""
SIGMAS = 4.0
STEPS = [
    # no analysis: the test holds each weight with the next step's approval gate and sends the traffic
    # itself, so a step neither waits for samples nor advances while it is being measured
    {"weight": 20, "analysis": False},
    {"weight": 50, "analysis": False, "approval": "required"},
    {"weight": 100, "analysis": False, "approval": "required"},
]
INFER = re.compile(r'^rest_server_requests_total\{(?P<labels>.*)\}\s+(?P<value>\S+)$')
"""MLServer's counter; its path label holds braces (path="/v2/models/{model_name}/infer")."""


def held_at(st: dict[str, Any], weight: int) -> bool:
    """The rollout waits at an approval gate with the canary at this weight."""
    return st.get("phase") == "AwaitingApproval" and st.get("canaryWeight") == weight


def tolerance(weight: int, n: int) -> float:
    """Largest accepted distance between the measured canary share and weight/100 (see the docstring)."""
    p = weight / 100
    return SIGMAS * math.sqrt(p * (1 - p) / n) + 1 / n


def within(canary: int, total: int, weight: int) -> bool:
    return abs(canary / total - weight / 100) <= tolerance(weight, total)


@pytest.fixture
def routed(world: World) -> Iterator[Any]:
    """Traefik's Gateway on the real node (once per session) and a stable iris 1.0.0 routed through it."""
    w: Any = world
    w.gateway()
    spec = model(world, rollout={"steps": STEPS, "analysis": ANALYSIS, "progressDeadline": "180s"},
                 traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [
                     {"name": gateway.GATEWAY_NAME, "namespace": gateway.NAMESPACE}]}},
                 sandbox={"ingressFrom": [
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAFFIC_NS}}},
                     # Traefik sends each request to a pod IP of the backend Service's EndpointSlices
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway.NAMESPACE}}},
                 ]})
    assert spec["spec"]["slos"] == SLOS and spec["spec"]["metrics"] == metrics_of(world)
    world.apply(world.namespace, spec)
    world.wait_phase(world.namespace, "iris", "Stable", timeout=240)
    yield w


def route_in_force(w: Any, sb: str, stable: int, canary: int) -> bool:
    """Traefik runs the model's HTTPRoute with these weights: its status for the route is current
    (Accepted and ResolvedRefs for the route's generation) and its runtime configuration (/api) has the
    weighted service with these weights (and the fallback's, if the route has it, at 0)."""
    want = {"iris-stable": stable, "iris-canary": canary}
    route = json.loads(w.kubectl("get", "httproute", "iris", "-n", sb, "-o", "json").stdout)
    if not traefik_accepted(route):
        return False
    for svc in w.traefik_api("/api/http/services"):
        children = (svc.get("weighted") or {}).get("services") or []
        found = {b: int(c.get("weight", 1)) for c in children
                 for b in (*want, "iris-fallback") if f"-svc-{sb}-{b}-" in c["name"]}
        if found:
            return all(found.get(b) == x for b, x in want.items()) and found.get("iris-fallback", 0) == 0
    return False


def traefik_accepted(route: dict[str, Any]) -> bool:
    generation = route["metadata"]["generation"]
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") != gateway.CONTROLLER_NAME:
            continue
        conds = {c["type"]: c for c in parent.get("conditions") or []}
        return all(conds.get(t, {}).get("status") == "True" and conds[t].get("observedGeneration") == generation
                   for t in ("Accepted", "ResolvedRefs"))
    return False


def served_by_track(w: Any, sb: str) -> dict[str, int]:
    """Inference requests each track's pods answered 200, from the pods' own counters (MLServer)."""
    counts: dict[str, int] = {}
    for pod in w.pods(sb, "tollgate.dev/track"):
        if not pod["status"].get("podIP"):
            continue
        track = pod["metadata"]["labels"]["tollgate.dev/track"]
        total = 0.0
        for line in w.pod_metrics(pod, metrics_of(w)["port"]).splitlines():
            m = INFER.match(line)
            if m and 'status_code="200"' in m["labels"] and re.search(r'path="[^"]*/infer"', m["labels"]):
                total += float(m["value"])
        counts[track] = counts.get(track, 0) + int(total)
    return counts


def measure(w: Any, sb: str, n: int = BATCH) -> dict[str, int]:
    """Send n requests through the Gateway and count where they were served."""
    before = served_by_track(w, sb)
    last = w.run_load(f"gw-load-{w.namespace}"[:63], f"{w.gateway().url}/v2/models/iris/infer", n, rps=25)
    assert f"sent={n} codes={{200: {n}}}" in last, last
    after = served_by_track(w, sb)
    return {t: after.get(t, 0) - before.get(t, 0) for t in set(after) | set(before)}


def test_real_requests_through_the_gateway_follow_each_step_weight(routed: Any) -> None:
    w, ns = routed, routed.namespace
    sb = sandbox(w)
    # given a stable version routed by Traefik: every request reaches stable
    wait_for("Traefik runs the route at 100/0", lambda: route_in_force(w, sb, 100, 0), timeout=120, interval=1)
    got = measure(w, sb)
    assert got.get("stable") == BATCH and not got.get("canary"), got
    # when a new version is released, held at each weight by the next step's approval gate
    w.set_version(ns, "iris", "1.1.0")
    for step, weight in enumerate((20, 50)):
        wait_for(f"held at {weight}%", lambda weight=weight: held_at(w.status(ns, "iris"), weight),
                 timeout=300, interval=1)
        wait_for(f"Traefik runs {100 - weight}/{weight}",
                 lambda weight=weight: route_in_force(w, sb, 100 - weight, weight),
                 timeout=120, interval=1)
        got = measure(w, sb)
        # then the requests the model servers answered split as the step's weight, within the tolerance
        canary, total = got.get("canary", 0), got.get("stable", 0) + got.get("canary", 0)
        print(f"step {step + 1} ({weight}%): stable={got.get('stable', 0)} canary={canary} of {total}; "
              f"canary share {canary / total:.3f}, tolerance ±{tolerance(weight, total):.3f}")
        assert total == BATCH, got
        assert within(canary, total, weight), (weight, got, tolerance(weight, total))
        if weight == 50:
            break
        w.annotate(ns, "iris", "tollgate.dev/approve", f"e2e-gateway-step-{step + 2}")
    # and the check can fail: with the operator stopped (so it cannot put them back), the route's weights
    # are changed to 90/10 while the rollout says 50%; the same measurement then misses 50% and finds 10%
    with _operator_stopped(w):
        rules = json.loads(w.kubectl("get", "httproute", "iris", "-n", sb, "-o", "json").stdout)["spec"]["rules"]
        for rule in rules:
            for backend in rule["backendRefs"]:
                backend["weight"] = {"iris-stable": 90, "iris-canary": 10}.get(backend["name"], 0)
        w.kubectl("patch", "httproute", "iris", "-n", sb, "--type", "merge", "-p",
                  json.dumps({"spec": {"rules": rules}}))
        wait_for("Traefik runs 90/10", lambda: route_in_force(w, sb, 90, 10), timeout=120, interval=1)
        got = measure(w, sb)
        canary, total = got.get("canary", 0), got.get("stable", 0) + got.get("canary", 0)
        print(f"route patched to 90/10 at the 50% step: stable={got.get('stable', 0)} canary={canary} of {total}")
        assert not within(canary, total, 50), got
        assert within(canary, total, 10), got
