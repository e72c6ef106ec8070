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

import ast
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from e2e_world import World
from test_real_node import ANALYSIS, SLOS, TRAFFIC_NS, VERSIONS, _operator_stopped, metrics_of, model, sandbox
from tollgate_testkit import gateway
from tollgate_testkit.stack import wait_for

pytestmark = pytest.mark.skipif(os.environ.get("E2E_BACKEND") != "node",
                                reason="real pods: run with E2E_BACKEND=node (make e2e-node)")

BATCH = 300
"""Requests per measured step (at 25 per second: 12 s)."""
SIGMAS = 4.0
STEPS: list[dict[str, Any]] = [
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


def whoami(w: Any) -> str:
    """Who this test is to the API server: approvals must name who sets them (admission policy)."""
    return str(w.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout).strip()


def deploy_through_gateway(world: World, steps: list[dict[str, Any]], slos: list[dict[str, Any]] = SLOS,
                           version: str = "1.0.0", traffic: dict[str, Any] | None = None, **spec: Any) -> Any:
    """A stable iris (1.0.0) routed by Traefik (spec.traffic.router gatewayAPI on the session's Gateway)."""
    w: Any = world
    w.gateway()
    spec = model(world, version, rollout={"steps": steps, "analysis": ANALYSIS, "progressDeadline": "180s"},
                 slos=slos, **spec,
                 traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [
                     {"name": gateway.GATEWAY_NAME, "namespace": gateway.NAMESPACE}]}, **(traffic or {})},
                 sandbox={"ingressFrom": [
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAFFIC_NS}}},
                     # Traefik sends each request to a pod IP of the backend Service's EndpointSlices
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway.NAMESPACE}}},
                 ]})
    assert spec["spec"]["metrics"] == metrics_of(world)
    # the scenarios' routes all match /v2/models/iris on the one Gateway: an earlier test's route (its
    # namespace still being deleted) would take requests meant for this one
    wait_for("the Gateway has no other route", lambda: not json.loads(w.kubectl(
        "get", "httproutes", "-A", "-o", "json").stdout)["items"], timeout=180, interval=1)
    world.apply(world.namespace, spec)
    world.wait_phase(world.namespace, "iris", "Stable", timeout=240)
    return w


@pytest.fixture
def routed(world: World) -> Iterator[Any]:
    """Traefik's Gateway on the real node and a stable iris 1.0.0 routed through it, held at each weight."""
    yield deploy_through_gateway(world, STEPS)


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
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if not ready or pod["metadata"].get("deletionTimestamp"):
            continue  # not serving (starting: its metrics port may not listen yet; or going away)
        track = pod["metadata"]["labels"]["tollgate.dev/track"]
        total = 0.0
        try:
            exposition = w.pod_metrics(pod, metrics_of(w)["port"])
        except OSError:  # stopped between the listing and the read (a fallback's pod after the kill switch)
            continue
        for line in exposition.splitlines():
            m = INFER.match(line)
            if m and 'status_code="200"' in m["labels"] and re.search(r'path="[^"]*/infer"', m["labels"]):
                total += float(m["value"])
        counts[track] = counts.get(track, 0) + int(total)
    return counts


def burst(w: Any, sb: str, n: int = BATCH, rps: float = 25) -> tuple[dict[str, int], dict[int, int]]:
    """Send n requests through the Gateway at rps; where they were served (the pods' own counters) and the
    status codes the clients got."""
    before = served_by_track(w, sb)
    last = w.run_load(f"gw-load-{w.namespace}"[:63], f"{w.gateway().url}/v2/models/iris/infer", n, rps=rps)
    after = served_by_track(w, sb)
    match = re.search(r"sent=(\d+) codes=(\{[^}]*\})", last)
    assert match and int(match[1]) == n, last
    return {t: after.get(t, 0) - before.get(t, 0) for t in set(after) | set(before)}, ast.literal_eval(match[2])


def measure(w: Any, sb: str, n: int = BATCH) -> dict[str, int]:
    """Send n requests through the Gateway and count where they were served (every one answered 200)."""
    served, codes = burst(w, sb, n)
    assert codes == {200: n}, codes
    return served


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
        w.annotate(ns, "iris", "tollgate.dev/approve", f"{whoami(w)}@e2e-gateway-step-{step + 2}")
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


# --- shadow steps ------------------------------------------------------------------------------------------

SHADOW_SLOS: list[dict[str, Any]] = [*SLOS, {"name": "score-shift", "max": 0.1, "maxNoDataDuration": "60s"}]
"""score-shift reads the quality export runtime's tollgate_model_score from the model-server pods."""
SHADOW_STEPS: list[dict[str, Any]] = [{"shadow": {"percent": 100}}, {"weight": 50}, {"weight": 100}]


def follow(w: Any, until: tuple[str, ...], timeout: float = 420) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Poll the rollout until its phase is in `until`: the (canaryWeight, canaryMirror) pairs it went through,
    and the last status."""
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = w.status(w.namespace, "iris")
        pair = (int(st.get("canaryWeight") or 0), int(st.get("canaryMirror") or 0))
        if not seen or seen[-1] != pair:
            seen.append(pair)
        if st.get("phase") in until and st.get("observedGeneration") == (w.md(w.namespace, "iris") or {}).get(
                "metadata", {}).get("generation"):
            return seen, st
        time.sleep(0.5)
    raise AssertionError(f"rollout not {until} in {timeout}s: {st}\n{w.diagnostics()}")


def stepped(st: dict[str, Any]) -> list[tuple[int, bool]]:
    """Each step the rollout entered, from status.timeline: (canary weight, a shadow step)."""
    return [(int(e.get("weight") or 0), ": shadow, " in str(e.get("message")))  # engine.rules.steps' wording
            for e in st.get("timeline") or [] if e["reason"] == "StepAdvanced"]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def answered_at_gateway(w: Any, sb: str, since: str) -> Counter[tuple[str, int]]:
    """The requests clients sent through the Gateway since `since`, by the track whose answer they got and the
    status they got, from Traefik's access log (gateway.access_log: mirrored copies are never in it). An
    entry of another model's route, or without a service (e.g. a 404), counts under "other"."""
    leaf = re.compile(re.escape(sb) + r"-iris-(stable|canary|fallback)-")
    got: Counter[tuple[str, int]] = Counter()
    for entry in gateway.access_log(w.kubeconfig, since):
        m = leaf.search(str(entry.get("ServiceName") or ""))
        got[(m[1] if m else "other", int(entry.get("DownstreamStatus") or 0))] += 1
    return got


def on_track(got: Counter[tuple[str, int]], track: str) -> int:
    return sum(n for (t, _), n in got.items() if t == track)


def verdicts(st: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The last analysis in short: (SLO, verdict, canary value, baseline, samples, message)."""
    return [(x.get("name"), x.get("verdict"), x.get("value"), x.get("baseline"), x.get("samples"), x.get("message"))
            for x in st.get("analysis") or []] + [st.get("message")]


def test_shadow_step_promotes_a_healthy_version_and_rolls_back_a_shifted_one_no_user_saw(world: World) -> None:
    # given iris 1.0.0 behind the Gateway, every rollout starting with a shadow step of all live requests, and
    # clients sending requests through the Gateway (the load generator counts the model_version of each answer)
    w = deploy_through_gateway(world, SHADOW_STEPS, SHADOW_SLOS)
    ns, sb = w.namespace, sandbox(w)
    load = w.start_load(ns, "iris", through_gateway=True)
    try:
        wait_for("stable serving", lambda: w.served(ns, "iris", "stable") > 0, timeout=120, interval=1)
        # when a healthy version is released
        healthy_from = utc_now()
        w.set_version(ns, "iris", "1.1.0")
        seen, st = follow(w, ("Succeeded", "RolledBack"))
        # then it went through the shadow step (no user on it, every request copied) to 50% and 100%
        print(f"healthy 1.1.0: {st['phase']} through {seen}; last verdicts {verdicts(st)}")
        assert st["phase"] == "Succeeded", (verdicts(st), seen, w.diagnostics())
        # (the order from the rollout's own timeline: on a loaded machine a step can pass between two polls)
        assert (0, 100) in seen, seen
        assert stepped(st) == [(0, True), (50, False), (100, False)], st.get("timeline")
        wait_for("1.1.0 serving as stable", lambda: w.served(ns, "iris", "stable", "1.1.0") > 0, timeout=120,
                 interval=1)
        # and the gateway's count sees a canary's answers when users get them (its 50% step): the count can fail
        healthy = answered_at_gateway(w, sb, healthy_from)
        print(f"answered at the gateway during 1.1.0's rollout: {dict(healthy)}")
        failed = [{k: e.get(k) for k in ("StartUTC", "DownstreamStatus", "ServiceURL")}
                  for e in gateway.access_log(w.kubeconfig, healthy_from) if int(e.get("DownstreamStatus") or 0) != 200]
        timeline = [(e.get("at"), e.get("reason"), e.get("weight")) for e in st.get("timeline") or []]
        # and no user got an error from it, promotion included: the promotion waits until stable's new pods are
        # Ready (not the old pod's Ready count), and a replaced pod drains before its server stops (seen before
        # both: 24 answers 500/502 from stable's old pod, 11 s after a promotion declared in 0.5 s)
        assert not failed, (failed[:5], len(failed), timeline)
        assert healthy[("canary", 200)] > 0 and healthy[("stable", 200)] > 0, healthy
        before = w.answered_versions(load)
        # when a version whose scores are shifted is released (HTTP 200, valid outputs, wrong answers)
        shifted_from = utc_now()
        w.set_version(ns, "iris", "4.0.0")
        seen, st = follow(w, ("RolledBack", "Succeeded"))
        # then it is rolled back in the shadow step, on the score shift of the copies it answered
        print(f"shifted 4.0.0: {st['phase']} through {seen}; last verdicts {verdicts(st)}")
        assert st["phase"] == "RolledBack", (verdicts(st), seen, w.diagnostics())
        assert st["stable"]["version"] == "1.1.0" and st["canaryWeight"] == 0 and not st.get("canaryMirror")
        assert (0, 100) in seen and all(weight == 0 for weight, _ in seen), seen
        failed = [x["name"] for x in st["analysis"] if x["verdict"] == "Fail"]
        assert failed == ["score-shift"], st["analysis"]
        rec = next(x for x in w.evidence(ns, st)["slos"] if x["name"] == "score-shift")
        assert rec["value"] > 0.1, rec
        # and at the model server: 4.0.0's pods did answer requests (the mirrored copies it was judged on)
        assert w.served(ns, "iris", "canary", "4.0.0", window="10m") > 0
        # and at the clients: not one answer came from 4.0.0, while 1.1.0 kept answering
        time.sleep(6)  # the load generator reports every 5 s
        after = w.answered_versions(load)
        print(f"answers by model version: before 4.0.0 {before}, after its rollback {after}")
        assert after.get("4.0.0", 0) == 0, after
        assert after.get("1.1.0", 0) > before.get("1.1.0", 0), (before, after)
        # and at the gateway: of the requests clients sent since 4.0.0 was released, Traefik answered none from
        # the canary's Service (4.0.0's pods), every one from stable's
        shifted = answered_at_gateway(w, sb, shifted_from)
        print(f"answered at the gateway since 4.0.0 was released: {dict(shifted)}")
        assert on_track(shifted, "canary") == 0, shifted
        assert shifted[("stable", 200)] > 0 and shifted[("stable", 200)] == sum(shifted.values()), shifted
    finally:
        w.stop_load(load)


# --- throttling ------------------------------------------------------------------------------------------

def canary_limited_in_force(w: Any, sb: str) -> bool | None:
    """Whether the route Traefik runs sends the canary's share through the canary's limit: its weighted service
    (Traefik's runtime configuration) names the failover service `iris-canary-limited`. That service exists as
    long as the model does (engine.dataplane); only the route naming it puts the limit in force. None: Traefik
    runs no weighted service of this model's route."""
    for svc in w.traefik_api("/api/http/services"):
        names = [c["name"] for c in (svc.get("weighted") or {}).get("services") or []]
        if any(f"{sb}-iris-stable" in n or f"{sb}-iris-mirror" in n for n in names):
            return any(f"{sb}-iris-canary-limited" in n for n in names)
    return None


def limit_bound(limit: int, n: int, rps: float) -> float:
    """Most requests a token bucket of `limit` per second (burst: one second's worth) lets through while n
    requests are sent at rps, the load generator's 5 s timeout tail included."""
    return limit * (n / rps + 5) + limit


def test_canary_rate_limit_caps_what_the_canary_serves_under_a_burst(world: World) -> None:
    limit, n, rps = 5, 600, 60
    # given iris 1.0.0 behind the Gateway with a canary rate limit, a new version held at 50%
    w = deploy_through_gateway(world, [{"weight": 50, "analysis": False},
                                       {"weight": 100, "analysis": False, "approval": "required"}],
                               traffic={"canaryRateLimit": limit})
    ns, sb = w.namespace, sandbox(w)
    w.set_version(ns, "iris", "1.1.0")
    wait_for("held at 50%", lambda: held_at(w.status(ns, "iris"), 50), timeout=300, interval=1)
    assert (w.status(ns, "iris").get("rateLimits") or {}).get("canary") == limit
    wait_for("Traefik runs the canary's limit", lambda: canary_limited_in_force(w, sb), timeout=120, interval=1)
    # when a burst of 60 requests per second comes through the Gateway for 10 s
    served, codes = burst(w, sb, n, rps)
    bound = limit_bound(limit, n, rps)
    print(f"burst of {n} at {rps}/s with canaryRateLimit {limit}: served {served}, codes {codes}, bound {bound}")
    # then every request is answered, the canary's pods serve at most the limit, stable the rest
    assert codes == {200: n}, codes
    assert served.get("canary", 0) + served.get("stable", 0) == n, served
    assert 0 < served.get("canary", 0) <= bound, (served, bound)
    # and the check can fail: without the limit the same burst gives the canary its weight's share
    w.patch_spec(ns, "iris", {"traffic": {"canaryRateLimit": None}})
    wait_for("the limit is lifted", lambda: not (w.status(ns, "iris").get("rateLimits") or {}).get("canary")
             and canary_limited_in_force(w, sb) is False, timeout=120, interval=1)
    served, codes = burst(w, sb, n, rps)
    print(f"the same burst without the limit: served {served}, codes {codes}")
    assert codes == {200: n} and served.get("canary", 0) > bound, (served, bound)


def test_kill_switch_and_model_rate_limit_through_the_gateway(world: World) -> None:
    limit, n, rps = 10, 300, 50
    # given iris 1.1.0 behind the Gateway, with 1.0.0 as its pinned fallback
    w = deploy_through_gateway(world, STEPS, version="1.1.0", fallback={"version": "1.0.0", "uri": VERSIONS["1.0.0"]})
    ns, sb = w.namespace, sandbox(w)
    # when the kill switch is thrown
    w.patch_spec(ns, "iris", {"killSwitch": True})
    wait_for("Traefik sends all to the fallback", lambda: measure_codes(w, sb).get("fallback") == 20,
             timeout=240, interval=2)
    # then every request through the Gateway is answered by the fallback's pods
    got = measure(w, sb)
    assert got.get("fallback") == BATCH and not got.get("stable"), got
    # when the platform team also limits the model's rate, in the middle of traffic (clients at 30/s)
    load = w.start_load(ns, "iris", rps=30, through_gateway=True)
    try:
        wait_for("the clients answered", lambda: w.answered_codes(load).get(200, 0) > 0, timeout=60, interval=1)
        w.patch_spec(ns, "iris", {"traffic": {"rateLimit": limit}})
        wait_for("the model's limit in force", lambda: (w.status(ns, "iris").get("rateLimits") or {}).get("model")
                 == limit and w.answered_codes(load).get(429, 0) > 0, timeout=120, interval=1)
        time.sleep(6)  # the load generator reports every 5 s
        live = w.answered_codes(load)
    finally:
        w.stop_load(load)
    # then the clients got answers and refusals while the limit came into force, never a route Traefik could not
    # serve (a route naming a Middleware Traefik had not loaded yet answered 404: docs/gateway.md)
    print(f"clients at 30/s while rateLimit {limit} was switched on: codes {live}")
    assert set(live) == {200, 429}, live
    served, codes = burst(w, sb, n, rps)
    bound = limit_bound(limit, n, rps)
    print(f"kill switch + rateLimit {limit}: served {served}, codes {codes}, bound {bound}")
    # then what is over the limit is refused with 429 at the Gateway, what passes is the fallback's
    assert set(codes) == {200, 429} and codes[200] <= bound, (codes, bound)
    assert served.get("fallback") == codes[200] and not served.get("stable"), (served, codes)
    # and when the kill switch is released, the limit still holds, now in front of stable
    w.patch_spec(ns, "iris", {"killSwitch": False})
    wait_for("stable serves again", lambda: measure_codes(w, sb).get("stable", 0) > 0, timeout=240, interval=2)
    served, codes = burst(w, sb, n, rps)
    print(f"rateLimit {limit} after the kill switch: served {served}, codes {codes}")
    assert set(codes) == {200, 429} and codes[200] <= bound and served.get("stable") == codes[200], (served, codes)
    # and the check can fail: without the limit every request of the same burst is served
    w.patch_spec(ns, "iris", {"traffic": {"rateLimit": None}})
    wait_for("the limit is lifted", lambda: not (w.status(ns, "iris").get("rateLimits") or {}).get("model"),
             timeout=120, interval=1)
    wait_for("Traefik serves the burst", lambda: burst(w, sb, n, rps)[1] == {200: n}, timeout=120, interval=2)


def measure_codes(w: Any, sb: str, n: int = 20) -> dict[str, int]:
    """A small batch through the Gateway (any status code): where it was served."""
    return burst(w, sb, n)[0]
