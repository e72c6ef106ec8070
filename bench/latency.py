"""Rollback latency, never-ready canary, Prometheus queries per tick (control plane A, with Prometheus).

t0 and the rollback moment both come from clocks that do not depend on how fast the benchmark polls:
t0 is the instant the fault is switched on in the traffic simulator (the canary is already taking its
step's share of traffic, so its very next requests fail), and the rollback is the API server's audit
record of the operator's first write into the sandbox after t0 (the replicas router scaling the
canary to 0, i.e. canary weight 0 written). The audit log timestamps requests as they are received.

"A settled step" means the operator has judged the canary healthy on data (`judged_healthy`), not only
that the step's weight is set: Prometheus finds new pods through Kubernetes discovery, which batches its
updates (5 s in Prometheus), so a canary pod is first scraped 2-6 s after it is created. A fault switched
on before that is a fault from the canary's first request, whose latency includes the discovery delay of
the user's Prometheus; flagger_peer measures that case (from the apply). This figure is the operator's own
reaction: from the first failing requests it can see to canary weight 0. t0 falls at a random phase of
the analysis interval: the wait for that judgement ends just after a tick, and without the jitter every
fault started at the same point between ticks and scrapes, so the runs took one of two values (0.8-1.0 s
or 1.7-1.9 s) and the p50 was whichever mode had more runs.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from typing import Any

from common import (
    Result,
    Sizes,
    apply_md,
    create_namespace,
    flush_audit,
    log,
    md_manifest,
    operator_requests,
    parallel,
    parse_ts,
    summary,
)
from kubernetes import client

from tollgate_testkit import audit
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.stack import Stack, wait_for

FAULT_ERROR_RATE = 0.5
MIN_SAMPLES: int = md_manifest("x", "0")["spec"]["rollout"]["analysis"]["minSamples"]


def _status(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    md = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "tollgate.dev", "v1alpha1", ns, "modeldeployments", name)
    st: dict[str, Any] = md.get("status") or {}
    return st


def _wait_phase(api: client.ApiClient, ns: str, name: str, phases: tuple[str, ...], timeout: float = 90,
                weight: bool = False) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = _status(api, ns, name)
        if st.get("phase") in phases and (not weight or int(st.get("canaryWeight") or 0) > 0):
            return st
        return None

    result: dict[str, Any] = wait_for(f"{ns}/{name} in {phases}", check, timeout=timeout, interval=0.25)
    return result


def judged_healthy(status: dict[str, Any], version: str, min_samples: int) -> bool:
    """The operator has looked at `version`'s canary on data and every SLO passed: each SLO's latest
    verdict is Pass on at least `min_samples` canary requests, checked after this canary started."""
    canary = status.get("canary") or {}
    started = status.get("canaryStartedAt")
    slos = status.get("analysis") or []
    if canary.get("version") != version or not started or not slos:
        return False
    return all(s.get("verdict") == "Pass" and int(s.get("samples") or 0) >= min_samples
               and bool(s.get("lastCheckedAt")) and parse_ts(s["lastCheckedAt"]) >= parse_ts(started) for s in slos)


def _first_write_in(kubeconfig: str, since: float, namespaces: set[str], md: tuple[str, str] | None = None,
                    timeout: float = 10) -> tuple[float, str] | None:
    """The audit time of the operator's first write in `namespaces` (or to the MD) after `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in audit.writes(operator_requests(kubeconfig, since)):
            if r.namespace in namespaces or (md is not None and (r.namespace, r.name) == md):
                return parse_ts(r.at), f"{r.verb} {r.resource}/{r.name}{'/' + r.subresource if r.subresource else ''}"
        time.sleep(0.5)
    return None


def rollback_latency(stack: Stack, api: client.ApiClient, sizes: Sizes, params: dict[str, Any]) -> Result:
    ns = "bench-rollback"
    create_namespace(api, ns)
    S, I = sizes.scrape_interval, sizes.analysis_interval  # noqa: N806, E741 - the issue's names
    target = 2 * S + I + 1
    lanes = sizes.rollback_lanes
    per_lane = -(-sizes.rollback_runs // lanes)
    latencies: list[float] = []
    details: list[dict[str, Any]] = []
    lock = threading.Lock()

    def lane(i: int) -> None:
        name = f"rb{i}"
        phase = random.Random(i)  # a benchmark's timing jitter, reproducible per lane
        apply_md(api, ns, md_manifest(name, "1.0.0", replicas=4, interval=I))
        st = _wait_phase(api, ns, name, ("Stable",))
        sandbox = st["sandboxNamespace"]
        for run in range(per_lane):
            version = f"1.{run + 1}.{i}"
            apply_md(api, ns, md_manifest(name, version, replicas=4, interval=I))
            _wait_phase(api, ns, name, ("Progressing",), weight=True)
            wait_for(f"{ns}/{name} {version} judged healthy on data",
                     lambda v=version: judged_healthy(_status(api, ns, name), v, MIN_SAMPLES),
                     timeout=60, interval=0.25)
            # a few healthy ticks at the step first, then a random phase: the wait ends just after a tick's
            # status write, so without it t0 sits at the same place between ticks and scrapes every time
            time.sleep(3 * max(S, I) + phase.uniform(0, I))
            t0 = time.time()
            stack.set_fault(version, error_rate=FAULT_ERROR_RATE)
            _wait_phase(api, ns, name, ("RolledBack",), timeout=60)
            flush_audit()
            found = _first_write_in(stack.kubeconfig, t0, {sandbox})
            if found is None:
                log(f"rollback {name} {version}: no sandbox write found in the audit log")
                continue
            at, what = found
            with lock:
                latencies.append(at - t0)
                details.append({"md": name, "version": version, "latency_s": round(at - t0, 3), "write": what})
            log(f"rollback {name} {version}: {at - t0:.2f}s ({what})")

    parallel(lane, range(lanes), workers=lanes)
    stack.clear_faults()
    s = summary(latencies)
    return Result(
        name="rollback_latency", sizes=sizes.name,
        params={**params, "S": S, "I": I, "lanes": lanes, "fault_error_rate": FAULT_ERROR_RATE,
                "slo": "error-rate max 0.05 over window 5s, minSamples 10, failureLimit 0",
                "replicas": 4, "step_weight": 50},
        figures={"runs": s["n"], "p50_s": s["p50"], "p95_s": s["p95"], "min_s": s["min"], "max_s": s["max"],
                 "runs_detail": details},
        targets={"p95_s": f"<= 2S + I + 1 = {target:g}"},
        met={"p95_s": s["p95"] <= target and s["n"] >= min(20, sizes.rollback_runs)},
    )


def never_ready(stack: Stack, api: client.ApiClient, sizes: Sizes, params: dict[str, Any]) -> Result:
    ns = "bench-never-ready"
    create_namespace(api, ns)
    deadline = sizes.never_ready_deadline
    lags: list[float] = []
    details: list[dict[str, Any]] = []
    name = "nr"
    dl = f"{deadline:g}s"
    apply_md(api, ns, md_manifest(name, "1.0.0", replicas=2, interval=sizes.analysis_interval, deadline=dl))
    st = _wait_phase(api, ns, name, ("Stable",))
    sandbox = st["sandboxNamespace"]
    for run in range(sizes.never_ready_runs):
        version = f"2.{run}.0"
        apply_md(api, ns, md_manifest(name, version, replicas=2, interval=sizes.analysis_interval, deadline=dl,
                                      image=NEVER_READY_IMAGE))

        def pending(version: str = version) -> str | None:
            s = _status(api, ns, name)
            canary = (s.get("canary") or {}).get("version")
            return s.get("notReadySince") if canary == version else None

        since = parse_ts(wait_for("canary waiting for readiness", pending, timeout=30, interval=0.2))
        signal = since + deadline
        _wait_phase(api, ns, name, ("RolledBack",), timeout=deadline + 60)
        flush_audit()
        found = _first_write_in(stack.kubeconfig, signal - 0.5, {sandbox}, md=(ns, name))
        if found is None:
            log(f"never-ready {version}: no write found after the deadline")
            continue
        at, what = found
        lags.append(at - signal)
        details.append({"version": version, "after_deadline_s": round(at - signal, 3), "write": what})
        log(f"never-ready {version}: rolled back {at - signal:.2f}s after the deadline ({what})")
    s = summary(lags)
    return Result(
        name="never_ready", sizes=sizes.name,
        params={**params, "progressDeadline_s": deadline, "image": NEVER_READY_IMAGE, "replicas": 2,
                "signal": "status.notReadySince + progressDeadline (the engine's own clock, microseconds)",
                "rollback": "first operator write to the sandbox or the ModelDeployment after the signal "
                            "(audit log)"},
        figures={"runs": s["n"], "max_after_deadline_s": s["max"], "p50_after_deadline_s": s["p50"],
                 "runs_detail": details},
        targets={"max_after_deadline_s": "<= 1 (and >= 0: never before the deadline)"},
        met={"max_after_deadline_s": bool(lags) and s["max"] <= 1.0 and s["min"] >= -0.05},
    )


def _prom_query_count(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _operator_counter(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head = line.split(" ", 1)[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def prometheus_queries(stack: Stack, api: client.ApiClient, sizes: Sizes, params: dict[str, Any]) -> Result:
    ns = "bench-prom"
    create_namespace(api, ns)
    n = sizes.canaries
    interval = sizes.analysis_interval
    names = [f"c{i}" for i in range(n)]
    stack.clear_faults()
    parallel(lambda nm: apply_md(api, ns, md_manifest(nm, "5.0.0", replicas=2, interval=interval)), names)
    wait_for("all Stable", lambda: all(_status(api, ns, nm).get("phase") == "Stable" for nm in names),
             timeout=300, interval=2)
    parallel(lambda nm: apply_md(api, ns, md_manifest(nm, "5.1.0", replicas=2, interval=interval)), names)
    wait_for("all canaries at their step", lambda: all(
        _status(api, ns, nm).get("phase") == "Progressing" and int(_status(api, ns, nm).get("canaryWeight") or 0) > 0
        for nm in names), timeout=300, interval=2)
    time.sleep(2 * interval)
    assert stack.operator is not None
    op = stack.operator
    q0, m0 = _prom_query_count(stack.prometheus.url), op.metrics()
    t0 = time.monotonic()
    time.sleep(sizes.prom_window)
    q1, m1 = _prom_query_count(stack.prometheus.url), op.metrics()
    elapsed = time.monotonic() - t0
    ticks = (_operator_counter(m1, "tollgate_analysis_ticks_total")
             - _operator_counter(m0, "tollgate_analysis_ticks_total"))
    analysed = (_operator_counter(m1, "tollgate_analysis_requests_total")
                - _operator_counter(m0, "tollgate_analysis_requests_total"))
    queries = q1 - q0
    grid_ticks = elapsed / interval
    still = sum(1 for nm in names if _status(api, ns, nm).get("phase") == "Progressing")
    templates = 1  # error-rate; the sample-count query is shared by every template of a window
    per_tick = queries / grid_ticks  # per analysis interval, whatever the batching
    return Result(
        name="prometheus_queries" if interval == 1.0 else f"prometheus_queries_I{interval:g}s", sizes=sizes.name,
        params={**params, "canaries": n, "I": interval, "S": sizes.scrape_interval, "window_s": round(elapsed, 1),
                "slo_templates": templates,
                "counted_at": 'Prometheus prometheus_http_requests_total{handler="/api/v1/query"}, before/after'},
        figures={"queries": queries, "ticks_on_grid": round(grid_ticks, 1), "batches_operator": ticks,
                 "canary_analyses": analysed, "analyses_per_canary_per_tick": round(analysed / n / grid_ticks, 2),
                 "queries_per_tick": round(per_tick, 2),
                 "queries_per_batch": round(queries / ticks, 2) if ticks else None,
                 "canaries_in_analysis_at_end": still},
        targets={"queries_per_tick": f"<= number of SLO templates = {templates}"},
        met={"queries_per_tick": per_tick <= templates and still == n},
        notes=["Each tick sends one grouped query per SLO template plus one grouped sample-count query "
               "(minSamples needs the request counts of every canary and baseline), whatever the number "
               "of canaries: templates + 1."],
    )
