"""The peer in the same run: Flagger v1.41.0 beside Tollgate on one control plane (issue 22).

One local control plane (KWOK nodes), one Prometheus scraping one traffic simulator every 1 s, the
operator (`python -m tollgate`) and Flagger (hack/flagger/build.sh, a host process with the kubeconfig,
`-mesh-provider=gatewayapi:v1`, `-metrics-server` = that Prometheus). Both write an HTTPRoute; the new
version of both carries the same fault (10 % errors); analysis interval 10 s for both (Flagger's
floor); the first failed check rolls back (Tollgate failureLimit 0, Flagger threshold 1); the same SLO
(error rate at most 5 % over a 60 s window) as Tollgate's built-in `error-rate` and as a Flagger
MetricTemplate (provider prometheus) over the simulator's series.

Figures per side (both ends from the API server's audit log, which records every HTTPRoute write with
the object as stored, so no figure depends on how fast this script polls):
- apply -> weight 0: from the receive time of the bench's apply of the faulty version to the first
  route write with canary weight 0 after a write with weight > 0; median and p95 over `runs` runs,
  each applied at a random phase of the 10 s interval;
- weight > 0 -> weight 0: from the first route write with canary weight > 0 to that write;
- idle API requests per settled object per minute (watches aside), over a window where every object
  of both sides is settled;
- false rollbacks of healthy versions at thin and at heavy traffic.

    python bench/run.py --only flagger_peer [--quick]          # through run.py (result file, table)
    python bench/flagger_peer.py --runs 2 --healthy 1          # alone, for developing
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Result, create_namespace, flush_audit, log, marker, md_manifest, parse_ts, ssa, summary

INTERVAL_S = 10.0
"""Analysis interval of both sides: Flagger's floor (its Canary CRD refuses less)."""
WINDOW = "60s"
"""The SLO's range for both: Tollgate's analysis.window, Flagger's metric interval ({{ interval }})."""
FAULT_ERROR_RATE = 0.1
ERROR_RATE_MAX = 0.05
STEP_WEIGHTS = (20, 40, 60)
"""Both sides: canary at 20, 40, 60 %, then promotion (Flagger stepWeight 20 / maxWeight 60)."""
THIN_RPS, HEAVY_RPS = 1.0, 100.0
"""User requests per second per object in the healthy runs (the fault runs use HEAVY_RPS)."""
REPLICAS = 2
TOLLGATE_NS, FLAGGER_NS = "peer-tollgate", "peer-flagger"
BENCH_AGENT = "tollgate-bench/"
FLAGGER_AGENT = "flagger/"
OPERATOR_AGENTS = ("tollgate-operator/", "kopf/")
GATEWAY = {"name": "inference", "namespace": "gateways"}
SCRAPE_INTERVAL_S = 1.0
"""How often the one Prometheus scrapes the simulator (both sides see the same data)."""


def tollgate_operator_args(scrape_interval: float = SCRAPE_INTERVAL_S) -> tuple[str, ...]:
    """The operator is told how often Prometheus scrapes the models (`--scrape-interval`, the chart's
    `TOLLGATE_SCRAPE_INTERVAL`; its default, 15 s, is Prometheus' own default and would be wrong here). A
    canary under analysis is then looked at every scrape, not only every 10 s interval: the sequential
    test keeps its false-alarm rate over any number of looks (docs/api.md, "Looks"), so a significant
    regression rolls back at the look that shows it. The analysis interval (10 s), the window, the fault and
    the threshold stay equal for both sides; Flagger has no setting for this (it queries once per interval),
    which is the comparison the issue asks for."""
    return ("--scrape-interval", f"{scrape_interval:g}")


RUN_BUDGET_S = {"tollgate": 80.0, "flagger": 100.0}
"""Wall time of one fault run per side (random phase, rollback, audit flush, Flagger's scale-down: Flagger
40-60 s, Tollgate 20-25 s in the quick runs of 2026-12-02) plus the wait for the previous run's requests to
leave the SLO window (62 s after the previous run ended); the lanes run side by side."""


# --- pure parts (unit-tested) ------------------------------------------------------------------------
def _seconds(duration: str) -> float:
    """`60s` or `2m` as seconds."""
    return float(duration[:-1]) * (60.0 if duration.endswith("m") else 1.0)


@dataclass(frozen=True)
class RouteWrite:
    """One HTTPRoute write as the audit log recorded it: receive time (epoch s) and the stored canary weight."""

    at: float
    weight: int


def route_canary_weight(route: Mapping[str, Any]) -> int | None:
    """The weight of the `...-canary` backendRef of an HTTPRoute (Tollgate's `<md>-canary`, Flagger's
    `<name>-canary`); None when it has none."""
    found: int | None = None
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if str(ref.get("name", "")).endswith("-canary"):
                found = (found or 0) + int(ref.get("weight", 1))
    return found


def route_writes(events: Iterable[Mapping[str, Any]], namespace: str, name: str) -> list[RouteWrite]:
    """The successful writes of one HTTPRoute, in receive order, from raw audit events (RequestResponse
    level: `responseObject` is the route as stored after the write)."""
    out = []
    for ev in events:
        ref = ev.get("objectRef") or {}
        if ref.get("resource") != "httproutes" or ref.get("namespace") != namespace or ref.get("name") != name:
            continue
        if ev.get("verb") not in ("create", "update", "patch"):
            continue
        code = int((ev.get("responseStatus") or {}).get("code") or 0)
        obj = ev.get("responseObject")
        if not 200 <= code < 300 or not isinstance(obj, Mapping) or obj.get("kind") != "HTTPRoute":
            continue
        weight = route_canary_weight(obj)
        if weight is not None:
            out.append(RouteWrite(parse_ts(ev["requestReceivedTimestamp"]), weight))
    return sorted(out, key=lambda w: w.at)


def weight_moments(writes: Sequence[RouteWrite], since: float) -> tuple[float | None, float | None]:
    """(first write after `since` with canary weight > 0, first later write with weight 0); None where absent."""
    positive = next((w.at for w in writes if w.at >= since and w.weight > 0), None)
    if positive is None:
        return None, None
    zero = next((w.at for w in writes if w.at > positive and w.weight == 0), None)
    return positive, zero


def per_object_per_minute(requests: int, objects: int, seconds: float) -> float:
    """Requests per object per minute over a window (0 objects or an empty window: nan)."""
    if objects <= 0 or seconds <= 0:
        return float("nan")
    return requests / objects / (seconds / 60.0)


def ratio(peer: float, ours: float) -> float | None:
    """How many times longer the peer takes (peer / ours); None when ours is 0 or either is missing."""
    if not ours or math.isnan(ours) or math.isnan(peer):
        return None
    return round(peer / ours, 2)


def estimate_duration_s(runs: int, healthy: int, idle_window: float) -> float:
    """Wall time of the benchmark: set-up, the two fault lanes side by side (the slower one sets the pace),
    one healthy round (every healthy object at once) and the idle window."""
    setup, healthy_round = 60.0 + _seconds(WINDOW) + 5, 120.0 if healthy else 0.0
    return setup + runs * max(RUN_BUDGET_S.values()) + healthy_round + idle_window + 15


# --- manifests ---------------------------------------------------------------------------------------
def tollgate_md(name: str, version: str, *, rate: float | None = None) -> dict[str, Any]:
    m = md_manifest(name, version, replicas=REPLICAS, interval=INTERVAL_S, deadline="120s", window=WINDOW,
                    steps=[*({"weight": w, "pause": f"{INTERVAL_S:g}s"} for w in STEP_WEIGHTS), {"weight": 100}])
    m["spec"]["traffic"] = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [GATEWAY],
                                                                   "hostnames": [f"{name}.example"]}}
    m["spec"]["rollout"]["bakeWindow"] = "0s"
    m["spec"]["rollout"]["analysis"]["minSamples"] = 10
    m["spec"]["slos"] = [{"name": "error-rate", "max": ERROR_RATE_MAX, "onNoData": "hold",
                          "maxNoDataDuration": "120s"}]
    if rate is not None:
        m["metadata"]["annotations"] = {"tollgate.test/simulator-rate": f"{rate:g}"}
    return m


def flagger_deployment(name: str, version: str) -> dict[str, Any]:
    labels = {"app": name, "version": version, "bench.tollgate.dev/peer": "flagger"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": FLAGGER_NS},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "server", "image": "registry.example/model-server:1.0",
                     "env": [{"name": "MODEL_VERSION", "value": version}],
                     "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    }


ERROR_RATE_QUERY = (
    '(sum(rate(rest_server_requests_total{{namespace="{{{{ namespace }}}}",pod=~"{pods}",status_code=~"5.."}}'
    "[{{{{ interval }}}}])) or vector(0))\n/\n"
    'sum(rate(rest_server_requests_total{{namespace="{{{{ namespace }}}}",pod=~"{pods}"}}[{{{{ interval }}}}]))'
).format(pods="{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)")
"""The canary's error rate over the simulator's MLServer series. The pod regex is the one Flagger's own
built-in queries use: it matches the canary's pods `<target>-<hash>-<id>`, not `<target>-primary-...`.
No requests in the window is 0/0 = NaN, which Flagger counts as a failed check."""


def flagger_template(prometheus_url: str) -> dict[str, Any]:
    return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": "error-rate", "namespace": FLAGGER_NS},
            "spec": {"provider": {"type": "prometheus", "address": prometheus_url}, "query": ERROR_RATE_QUERY}}


def flagger_canary(name: str, *, rate: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": FLAGGER_NS}
    if rate is not None:
        meta["annotations"] = {"tollgate.test/simulator-rate": f"{rate:g}"}
    return {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": meta,
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 120,
            "service": {"port": 8080, "gatewayRefs": [GATEWAY], "hosts": [f"{name}.example"]},
            "analysis": {"interval": f"{INTERVAL_S:g}s", "threshold": 1, "stepWeight": STEP_WEIGHTS[0],
                         "maxWeight": STEP_WEIGHTS[-1],
                         "metrics": [{"name": "error-rate", "interval": WINDOW,
                                      "templateRef": {"name": "error-rate", "namespace": FLAGGER_NS},
                                      "thresholdRange": {"max": ERROR_RATE_MAX}}]},
        },
    }


# --- the run -----------------------------------------------------------------------------------------
class _Sides:
    """What both sides are driven with: apply a version, wait for a phase, read the route's audit trail."""

    def __init__(self, stack: Any, api: Any) -> None:
        from kubernetes import client

        self.stack, self.api = stack, api
        self.custom = client.CustomObjectsApi(api)

    # Tollgate
    def apply_md(self, name: str, version: str, rate: float | None = None) -> None:
        m = tollgate_md(name, version, rate=rate)
        ssa(self.api, f"/apis/tollgate.dev/v1alpha1/namespaces/{TOLLGATE_NS}/modeldeployments/{name}",
            {**m, "metadata": {**m["metadata"], "namespace": TOLLGATE_NS}}, manager="bench-user")

    def md_status(self, name: str) -> dict[str, Any]:
        md = self.custom.get_namespaced_custom_object("tollgate.dev", "v1alpha1", TOLLGATE_NS, "modeldeployments",
                                                      name)
        return dict(md.get("status") or {})

    # Flagger
    def apply_deployment(self, name: str, version: str) -> None:
        ssa(self.api, f"/apis/apps/v1/namespaces/{FLAGGER_NS}/deployments/{name}", flagger_deployment(name, version),
            manager="bench-user")

    def apply_canary(self, name: str, rate: float | None = None) -> None:
        ssa(self.api, f"/apis/flagger.app/v1beta1/namespaces/{FLAGGER_NS}/canaries/{name}",
            flagger_canary(name, rate=rate), manager="bench-user")

    def canary_status(self, name: str) -> dict[str, Any]:
        c = self.custom.get_namespaced_custom_object("flagger.app", "v1beta1", FLAGGER_NS, "canaries", name)
        return dict(c.get("status") or {})

    def wait(self, what: str, predicate: Any, timeout: float) -> Any:
        from tollgate_testkit.stack import wait_for

        return wait_for(what, predicate, timeout=timeout, interval=0.25)

    # the audit log
    def route_writes(self, namespace: str, name: str, since: float) -> list[RouteWrite]:
        from tollgate_testkit import audit
        from tollgate_testkit.controlplane import audit_log

        return route_writes(audit.events(audit_log(self.stack.kubeconfig), since=marker(since)), namespace, name)

    def applied_at(self, resource: str, namespace: str, name: str, since: float) -> float | None:
        """The audit receive time of the bench's own write of that object after `since`."""
        from tollgate_testkit import audit
        from tollgate_testkit.controlplane import audit_log

        for r in audit.read(audit_log(self.stack.kubeconfig), since=marker(since)):
            if (r.user_agent.startswith(BENCH_AGENT) and r.verb == "patch" and r.resource == resource
                    and r.namespace == namespace and r.name == name and 200 <= r.code < 300):
                return parse_ts(r.at)
        return None


def _phase_in(status: Mapping[str, Any], phases: Iterable[str]) -> bool:
    return status.get("phase") in set(phases)


def _fault_run(sides: _Sides, side: str, name: str, version: str, rng: random.Random) -> dict[str, Any]:
    """Apply a faulty version at a random phase of the interval, wait for the rollback, read the moments."""
    sides.stack.set_fault(version, error_rate=FAULT_ERROR_RATE)
    time.sleep(rng.uniform(0, INTERVAL_S))
    since = time.time() - 1.0
    if side == "tollgate":
        sides.apply_md(name, version)
        sides.wait(f"{name} {version} progressing", lambda: (
            (sides.md_status(name).get("canary") or {}).get("version") == version), 60)
        sides.wait(f"{name} {version} rolled back", lambda: _phase_in(sides.md_status(name), ("RolledBack",)), 120)
        status = sides.md_status(name)
        route_ns, resource, ns = status["sandboxNamespace"], "modeldeployments", TOLLGATE_NS
        evidence = failed_check(status)
    else:
        sides.apply_deployment(name, version)
        sides.wait(f"{name} {version} progressing", lambda: _phase_in(sides.canary_status(name), ("Progressing",)), 60)
        sides.wait(f"{name} {version} failed", lambda: _phase_in(sides.canary_status(name), ("Failed",)), 180)
        route_ns, resource, ns = FLAGGER_NS, "deployments", FLAGGER_NS
        evidence = {}
    flush_audit()
    applied = sides.applied_at(resource, ns, name, since)
    positive, zero = weight_moments(sides.route_writes(route_ns, name, since), applied or since)
    run = {"side": side, "version": version, "apply_to_zero_s": None, "positive_to_zero_s": None, **evidence}
    if applied is not None and zero is not None:
        run["apply_to_zero_s"] = round(zero - applied, 3)
    if positive is not None and zero is not None:
        run["positive_to_zero_s"] = round(zero - positive, 3)
    log(f"{side} {name} {version}: apply->0 {run['apply_to_zero_s']}s, >0->0 {run['positive_to_zero_s']}s")
    return run


def failed_check(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the failing look judged (status.analysis): the canary's requests, its rate and the limit's p-value,
    so a slow run says whether it waited for evidence (many requests) or for data (few)."""
    for s in status.get("analysis") or ():
        if s.get("verdict") == "Fail":
            return {"failed_samples": s.get("samples"), "failed_value": s.get("value"),
                    "failed_limit_p": s.get("limitPValue")}
    return {}


def _settle_flagger(sides: _Sides, name: str) -> None:
    """After a rollback Flagger scales the canary Deployment to 0 on its next ticks; wait for it."""
    from kubernetes import client

    apps = client.AppsV1Api(sides.api)
    sides.wait(f"{name} canary scaled to 0", lambda: not (apps.read_namespaced_deployment(
        name, FLAGGER_NS).status.replicas or 0), 60)


def _healthy_round(sides: _Sides, count: int, round_no: int) -> dict[str, Any]:
    """`count` objects per side and traffic level, each rolls out one healthy version; count rollbacks."""
    out: dict[str, Any] = {}
    lanes: list[tuple[str, str, float]] = []
    for level, rate in (("thin", THIN_RPS), ("heavy", HEAVY_RPS)):
        for i in range(count):
            lanes += [("tollgate", f"th-{level}-{i}", rate), ("flagger", f"fh-{level}-{i}", rate)]
    results: dict[str, str] = {}
    lock = threading.Lock()

    def one(lane: tuple[str, str, float]) -> None:
        side, name, rate = lane
        version = f"{9 if side == 'tollgate' else 8}.{round_no}.1"
        try:
            if side == "tollgate":
                sides.apply_md(name, version, rate=rate)
                sides.wait(f"{name} decided", lambda: (
                    _phase_in(sides.md_status(name), ("RolledBack",))
                    or (_phase_in(sides.md_status(name), ("Succeeded", "Stable"))
                        and (sides.md_status(name).get("stable") or {}).get("version") == version)), 600)
                verdict = "rolled back" if _phase_in(sides.md_status(name), ("RolledBack",)) else "promoted"
            else:
                sides.apply_deployment(name, version)
                sides.wait(f"{name} progressing", lambda: _phase_in(
                    sides.canary_status(name), ("Progressing", "Failed", "Succeeded")), 60)
                sides.wait(f"{name} decided", lambda: _phase_in(sides.canary_status(name), ("Succeeded", "Failed")),
                           600)
                verdict = "rolled back" if _phase_in(sides.canary_status(name), ("Failed",)) else "promoted"
        except TimeoutError as e:
            verdict = f"undecided: {e}"
        with lock:
            results[name] = verdict
        log(f"healthy {side} {name} ({rate:g} req/s): {verdict}")

    from common import parallel

    parallel(one, lanes, workers=len(lanes))
    for side, prefix in (("tollgate", "th"), ("flagger", "fh")):
        for level in ("thin", "heavy"):
            names = [n for n in results if n.startswith(f"{prefix}-{level}-")]
            out[f"{side}_{level}_rolled_back"] = sum(1 for n in names if results[n] == "rolled back")
            out[f"{side}_{level}_undecided"] = sum(1 for n in names if results[n].startswith("undecided"))
    out["detail"] = dict(sorted(results.items()))
    return out


def _idle(sides: _Sides, objects: Mapping[str, int], window: float) -> dict[str, Any]:
    """Requests of each side in a window where all its objects are settled (verb watch aside)."""
    from tollgate_testkit import audit
    from tollgate_testkit.controlplane import audit_log

    t0 = time.time()
    time.sleep(window)
    t1 = time.time()
    flush_audit()
    end = marker(t1)
    reqs = [r for r in audit.read(audit_log(sides.stack.kubeconfig), since=marker(t0)) if r.at <= end
            and r.verb != "watch"]
    out: dict[str, Any] = {"window_s": round(t1 - t0, 1)}
    for side, agents in (("tollgate", OPERATOR_AGENTS), ("flagger", (FLAGGER_AGENT,))):
        mine = [r for r in reqs if r.user_agent.startswith(agents) and r.resource != "leases"]
        kinds: dict[str, int] = {}
        for r in mine:
            key = f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}"
            kinds[key] = kinds.get(key, 0) + 1
        out[f"{side}_requests"] = len(mine)
        out[f"{side}_objects"] = objects[side]
        out[f"{side}_per_object_per_minute"] = round(per_object_per_minute(len(mine), objects[side], t1 - t0), 2)
        out[f"{side}_by_kind"] = dict(sorted(kinds.items(), key=lambda kv: -kv[1]))
    return out


def run(stack: Any, api: Any, *, runs: int, healthy: int, idle_window: float, sizes_name: str,
        params: Mapping[str, Any], seed: int | None = None) -> Result:
    from tollgate_testkit import controlplane, flagger
    from tollgate_testkit.simulator import Simulator
    from tollgate_testkit.stack import kubectl

    rng = random.Random(seed)
    estimate = estimate_duration_s(runs, healthy, idle_window)
    log(f"flagger_peer: {runs} fault runs per side, {healthy} healthy objects per side and traffic level, "
        f"idle window {idle_window:.0f}s: about {estimate / 60:.0f} min")
    cache = flagger.build()
    kubectl(stack.kubeconfig, "apply", "--server-side", "-f", str(cache / "crd.yaml"))
    controlplane.wait_established(stack.kubeconfig, ["canaries.flagger.app", "metrictemplates.flagger.app"])
    for ns in (TOLLGATE_NS, FLAGGER_NS):
        create_namespace(api, ns)
    # the simulator follows Flagger's canaries too, and Prometheus scrapes their pods
    splits = flagger.FlaggerSplits(stack.api, FLAGGER_NS, resync=0.5)
    splits.start()
    stack.simulator.splits = flagger.MergedSplits(stack.simulator.splits, splits)
    stack.prometheus.scrape_configs.append(flagger.scrape_job(
        stack.kubeconfig, FLAGGER_NS, stack.simulator.address, Simulator.metrics_path("$1", "$2")))
    stack.prometheus.reload(stack.prometheus.targets)
    from tollgate_testkit.stack import free_port

    proc = flagger.FlaggerProcess(cache / "bin" / "flagger", stack.kubeconfig, stack.prometheus.url, FLAGGER_NS,
                                  port=free_port()).start()
    sides = _Sides(stack, api)
    try:
        ssa(api, f"/apis/flagger.app/v1beta1/namespaces/{FLAGGER_NS}/metrictemplates/error-rate",
            flagger_template(stack.prometheus.url), manager="bench-user")
        # the two fault lanes' objects, at their first (healthy) version
        sides.apply_md("tp", "1.0.0")
        sides.apply_deployment("fp", "2.0.0")
        sides.apply_canary("fp")
        sides.wait("tp Stable", lambda: _phase_in(sides.md_status("tp"), ("Stable",)), 120)
        sides.wait("fp Initialized", lambda: _phase_in(sides.canary_status("fp"), ("Initialized",)), 180)
        # the healthy objects, settled at their first version (created now so the fault lanes overlap them)
        for level, rate in (("thin", THIN_RPS), ("heavy", HEAVY_RPS)):
            for i in range(healthy):
                sides.apply_md(f"th-{level}-{i}", "9.0.0", rate=rate)
                sides.apply_deployment(f"fh-{level}-{i}", "8.0.0")
                sides.apply_canary(f"fh-{level}-{i}", rate=rate)
        # Before Flagger initialised it, the target Deployment's own pods (the healthy first version) served
        # the traffic; within one window they would dilute the first faulty canary's error rate.
        time.sleep(_seconds(WINDOW) + 5)
        per_run: dict[str, list[dict[str, Any]]] = {"tollgate": [], "flagger": []}

        def lane(side: str) -> None:
            ended = 0.0
            for i in range(runs):
                name = "tp" if side == "tollgate" else "fp"
                version = f"{1 if side == 'tollgate' else 2}.{i + 1}.0"
                # The previous faulty canary's requests must be out of the SLO window first: Flagger's query
                # selects the canary's pods by the target's name, so they would count in this run's window
                # (more faulty data at the first check than a first rollout has).
                time.sleep(max(0.0, ended + _seconds(WINDOW) + 2 - time.time()))
                try:
                    per_run[side].append(_fault_run(sides, side, name, version, rng))
                    if side == "flagger":
                        _settle_flagger(sides, name)
                except TimeoutError as e:
                    log(f"{side} run {i}: {e}")
                    per_run[side].append({"side": side, "version": version, "error": str(e)})
                ended = time.time()

        from common import parallel

        parallel(lane, ("tollgate", "flagger"), workers=2)
        stack.clear_faults()
        for level in ("thin", "heavy"):
            for i in range(healthy):
                sides.wait(f"th-{level}-{i} Stable", lambda n=f"th-{level}-{i}": _phase_in(sides.md_status(n),
                                                                                        ("Stable",)), 180)
                sides.wait(f"fh-{level}-{i} Initialized", lambda n=f"fh-{level}-{i}": _phase_in(
                    sides.canary_status(n), ("Initialized",)), 180)
        healthy_out = _healthy_round(sides, healthy, 1) if healthy else {}
        _settle_flagger(sides, "fp")
        time.sleep(INTERVAL_S)
        n_objects = 1 + 2 * healthy
        idle = _idle(sides, {"tollgate": n_objects, "flagger": n_objects}, idle_window)
    finally:
        proc.stop()
        splits.stop()
    flagger_log = proc.log_path
    figures: dict[str, Any] = {}
    for side in ("tollgate", "flagger"):
        a = [r["apply_to_zero_s"] for r in per_run[side] if r.get("apply_to_zero_s") is not None]
        p = [r["positive_to_zero_s"] for r in per_run[side] if r.get("positive_to_zero_s") is not None]
        sa, sp = summary(a), summary(p)
        figures.update({f"{side}_runs": sa["n"], f"{side}_apply_to_zero_p50_s": sa["p50"],
                        f"{side}_apply_to_zero_p95_s": sa["p95"], f"{side}_positive_to_zero_p50_s": sp["p50"],
                        f"{side}_positive_to_zero_p95_s": sp["p95"],
                        f"{side}_idle_requests_per_object_per_minute": idle[f"{side}_per_object_per_minute"]})
        if healthy_out:
            for lv in ("thin", "heavy"):
                figures[f"{side}_healthy_{lv}_rolled_back"] = healthy_out[f"{side}_{lv}_rolled_back"]
    for fig in ("apply_to_zero_p50", "apply_to_zero_p95", "positive_to_zero_p50"):
        figures[f"ratio_{fig}"] = ratio(figures[f"flagger_{fig}_s"], figures[f"tollgate_{fig}_s"])
    figures["runs_detail"] = per_run
    figures["idle"] = idle
    figures["healthy"] = healthy_out
    r50 = figures["ratio_apply_to_zero_p50"]
    thin_bad = healthy_out.get("tollgate_thin_rolled_back") if healthy_out else None
    heavy_bad = healthy_out.get("tollgate_heavy_rolled_back") if healthy_out else None
    return Result(
        name="flagger_peer", sizes=sizes_name,
        params={**params, "runs": runs, "healthy": healthy, "interval_s": INTERVAL_S, "window": WINDOW,
                "fault_error_rate": FAULT_ERROR_RATE, "slo": f"error rate <= {ERROR_RATE_MAX} over {WINDOW}",
                "steps": list(STEP_WEIGHTS), "replicas": REPLICAS, "thin_rps": THIN_RPS, "heavy_rps": HEAVY_RPS,
                "fault_rps": HEAVY_RPS, "scrape_interval_s": stack.scrape_interval,
                "flagger": "v1.41.0 (hack/flagger/versions.env), -mesh-provider=gatewayapi:v1, threshold 1",
                "tollgate": "failureLimit 0, minSamples 10, onNoData hold (maxNoDataDuration 120s), bakeWindow 0s, "
                            f"operator {' '.join(tollgate_operator_args(stack.scrape_interval))}",
                "estimated_duration_s": round(estimate), "flagger_log": str(flagger_log)},
        figures=figures,
        targets={"ratio_apply_to_zero_p50": ">= 3 (Flagger / Tollgate)",
                 "tollgate_idle_requests_per_object_per_minute": "0 (watches aside)",
                 "tollgate_healthy_thin_rolled_back": "0", "tollgate_healthy_heavy_rolled_back": "0"},
        met={"ratio_apply_to_zero_p50": r50 is not None and r50 >= 3,
             "tollgate_idle_requests_per_object_per_minute": figures[
                 "tollgate_idle_requests_per_object_per_minute"] == 0,
             **({"tollgate_healthy_thin_rolled_back": thin_bad == 0,
                 "tollgate_healthy_heavy_rolled_back": heavy_bad == 0} if healthy_out else {})},
        notes=["Both ends of every latency are audit-log receive times: the bench's apply and the route write "
               "with canary weight 0 (HTTPRoute writes are logged with the stored object).",
               "Random phase: each apply waits uniform(0, interval) first.",
               "Fault runs of both sides run side by side (two lanes at once), on one control plane."],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Alone (not through run.py): its own control plane and stack; the result goes to BENCH_RESULTS or
    bench/results."""
    import tempfile

    from common import api_client

    from tollgate_testkit import controlplane
    from tollgate_testkit.stack import running_stack

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="fault runs per side (default 20)")
    p.add_argument("--healthy", type=int, default=5, help="healthy objects per side and traffic level (default 5)")
    p.add_argument("--idle-window", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    controlplane.build()
    directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-peer-"))
    started = time.monotonic()
    with controlplane.running(directory) as state, running_stack(
            kubeconfig=str(state.kubeconfig), scrape_interval=SCRAPE_INTERVAL_S, with_operator=True,
            operator_args=tollgate_operator_args()) as stack:
        r = run(stack, api_client(stack.kubeconfig), runs=a.runs, healthy=a.healthy, idle_window=a.idle_window,
                sizes_name="custom", params={}, seed=a.seed)
    r.duration_s = round(time.monotonic() - started, 1)
    r.write()
    print(json.dumps({k: v for k, v in r.figures.items() if k not in ("runs_detail", "idle", "healthy")}))
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
