"""Bulk creation (against a direct server-side-apply baseline), memory, idle API load, re-apply, restart.

Each side of the bulk comparison gets a fresh control plane, so neither pays for the other's objects.
The operator side then stays up for the memory, API-load and restart figures at the same N.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    Result,
    Sizes,
    api_client,
    apply_md,
    cpu_by_command,
    cpu_delta,
    cpu_s,
    create_namespace,
    flush_audit,
    log,
    md_manifest,
    operator_requests,
    parallel,
    parse_ts,
    rss_kb,
    ssa,
    table_column,
)
from kubernetes import client
from parts import breakdown

from tollgate.adapters.kube import path_of, ref_of
from tollgate.api import resource
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context
from tollgate.engine.revision import desired_revision
from tollgate.engine.sandbox import default_sandbox_namespace, sandbox_objects
from tollgate.engine.workloads import TrackPlan, TrafficPlan, workload_objects
from tollgate_testkit import audit, controlplane
from tollgate_testkit.shipped import REPO, helm_bin, run
from tollgate_testkit.stack import OperatorProcess, install_crds, kubectl, wait_for

NS = "bench-bulk"
CLIENT_WORKERS = 16
PODS_PER_NODE = 250


def names(n: int) -> list[str]:
    return [f"m{i:04d}" for i in range(n)]


def _add_nodes(kubeconfig: str, pods: int) -> int:
    """kwok nodes hold 250 pods each; add nodes until every pod of the run fits, with room to spare."""
    need = max(controlplane.NODE_COUNT, math.ceil(pods * 1.3 / PODS_PER_NODE))
    docs = [controlplane._node_manifest(i) for i in range(controlplane.NODE_COUNT, need)]
    if docs:
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    return need


def _fresh_control_plane() -> tuple[Any, str]:
    directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    cm = controlplane.running(directory)
    state = cm.__enter__()
    install_crds(state.kubeconfig)
    _install_finalizer_policy(str(state.kubeconfig))
    return cm, str(state.kubeconfig)


def _install_finalizer_policy(kubeconfig: str) -> None:
    """The chart's finalizer policy (charts/tollgate/templates/admission-finalizer.yaml), as `helm install`
    renders it against this API server (which serves MutatingAdmissionPolicy v1): the operator side is
    measured as the chart installs it, so a new ModelDeployment carries the finalizer from its create."""
    text = run(str(helm_bin()), "template", "bench", str(REPO / "charts" / "tollgate"), "--kube-version",
               "1.36.0", "--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
               "--show-only", "templates/admission-finalizer.yaml")
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=text)
    time.sleep(2)  # admission policies take effect within moments of their apply


def _poll_interval(n: int) -> float:
    """Seconds between counts while waiting for n objects: 1 s up to 1,000, then 1 s per 1,000 (a count reads
    every object; at 10,000 a count a second was a load of its own). Resolution: one interval on the figure."""
    return max(1.0, n / 1000)


def _wait_count(what: str, count: Callable[[], int], n: int, timeout: float) -> float:
    """Poll until count() >= n (every _poll_interval(n)); returns the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        c = count()
        if c != last:
            log(f"{what}: {c}/{n}")
            last = c
        if c >= n:
            return time.monotonic()
        time.sleep(_poll_interval(n))
    raise TimeoutError(f"{what}: only {last}/{n} after {timeout:.0f}s")


# --- baseline: the same children, server-side-applied directly ---------------------------------------
def children(name: str, namespace: str = NS) -> list[dict[str, Any]]:
    manifest = md_manifest(name, "1.0.0", replicas=1)
    spec = ModelDeploymentSpec.model_validate(manifest["spec"])
    ctx = Context(name=name, namespace=namespace, uid="", generation=1)
    plan = TrafficPlan(TrackPlan(desired_revision(spec), spec.replicas), None, None, 0, False)
    return [*sandbox_objects(spec, ctx), *workload_objects(spec, ctx, plan)]


def _baseline_ready(api: client.ApiClient) -> int:
    """Stable Deployments with every replica ready ("1/1" in kubectl's READY column)."""
    cells = table_column(api, "/apis/apps/v1/deployments", "Ready",
                         f"{resource.LABEL_MANAGED_BY}={resource.MANAGED_BY_VALUE}")
    return sum(1 for c in cells if c.partition("/")[0] == c.partition("/")[2] != "0")


def baseline(sizes: Sizes) -> dict[str, Any]:
    cm, kubeconfig = _fresh_control_plane()
    try:
        nodes = _add_nodes(kubeconfig, sizes.bulk)
        api = api_client(kubeconfig, pool=CLIENT_WORKERS)
        create_namespace(api, NS)
        all_names = names(sizes.bulk)
        objects_per_md = len(children(all_names[0]))

        def apply_children(name: str) -> None:
            for obj in children(name):
                ssa(api, path_of(ref_of(obj)), obj, manager="bench-baseline")

        phases = []
        done = 0
        for batch in (all_names[: sizes.bulk_first], all_names[sizes.bulk_first:]):
            t0 = time.monotonic()
            machine0 = cpu_by_command()
            parallel(apply_children, batch, workers=CLIENT_WORKERS)
            applied = time.monotonic() - t0
            done += len(batch)
            t1 = _wait_count("baseline Deployments ready", lambda: _baseline_ready(api), done, timeout=3600)
            phases.append({"mds": len(batch), "applied_s": round(applied, 2), "ready_s": round(t1 - t0, 2),
                           "cpu_s_by_command": cpu_delta(machine0, cpu_by_command())})
            log(f"baseline phase: {phases[-1]}")
        return {"phases": phases, "total_s": round(sum(p["ready_s"] for p in phases), 2),
                "objects_per_md": objects_per_md, "nodes": nodes, "client_workers": CLIENT_WORKERS}
    finally:
        cm.__exit__(None, None, None)


# --- the operator side ---------------------------------------------------------------------------------
def _ready_mds(api: client.ApiClient) -> int:
    """ModelDeployments whose Ready condition is True (the CRD's Ready printer column)."""
    return sum(1 for c in table_column(api, f"/apis/tollgate.dev/v1alpha1/namespaces/{NS}/modeldeployments", "Ready")
               if c == "True")


def _at_scale(sizes: Sizes) -> str:
    """The result files' suffix at 10,000 ModelDeployments (BENCH_SCALE=10), so they sit beside the 1,000 ones."""
    return "_10k" if sizes.bulk >= 10_000 else ""


def _ready_mds_noting_peak(api: client.ApiClient, pids: list[int], peak: list[int]) -> int:
    """_ready_mds, sampling the replicas' RSS on the way (peak[0]: the largest seen, kB): the burst's peak."""
    peak[0] = max(peak[0], *(rss_kb(p) for p in pids))
    return _ready_mds(api)


def _settle_rss(pid: int, seconds: float = 20.0) -> int:
    """RSS after the process has been quiet for a while (the smallest of the last samples): 20 s, so
    the idle connections of the burst (aiohttp keeps them 15 s) are closed; steady state, not the peak."""
    return _settle_rss_all([pid], seconds)[0]


def _settle_rss_all(pids: list[int], seconds: float = 20.0) -> list[int]:
    """_settle_rss of several replicas, sampled side by side."""
    samples: list[list[int]] = [[] for _ in pids]
    for _ in range(int(seconds)):
        time.sleep(1)
        for i, pid in enumerate(pids):
            samples[i].append(rss_kb(pid))
    return [min(s[-3:]) for s in samples]


def _metric(op: OperatorProcess, prefix: str, *names: str) -> float:
    """The first sample whose line starts with `prefix` (name and labels), 0 if the operator has none.
    `names`: ask the operator for only these metrics (only those registered with a describe(), as the
    Histogram behind _reconciles: the custom collectors drop out of a filtered page)."""
    for line in op.metrics(*names).splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _reconciles(op: OperatorProcess) -> float:
    """Decisions made so far. Polled 5 times a second through a restart: the whole page (10 series per
    ModelDeployment, ~100,000 at 10,000) cost the operator a scrape's CPU and garbage each time, which
    the restart's figures then measured."""
    return _metric(op, "tollgate_reconcile_duration_seconds_count", "tollgate_reconcile_duration_seconds_count")


def _bulk_requests(kubeconfig: str, since: float, n: int, ops: list[OperatorProcess]) -> dict[str, Any]:
    """What the operator sent during the bulk (audit log, watches aside) and how often the server said 429:
    the ratio follows the requests per ModelDeployment while the API server is the bottleneck."""
    flush_audit()
    reqs = [r for r in operator_requests(kubeconfig, since) if r.verb != "watch" and r.resource != "leases"]
    throttled = [r for r in reqs if r.code == 429]
    return {"requests": len(reqs), "requests_per_md": round(len(reqs) / n, 2), "answered_429": len(throttled),
            "by_kind": _classify(reqs), "throttled_kinds": _classify(throttled),
            "throttle_metric_total": sum(_metric(o, "tollgate_api_throttled_total ") for o in ops),
            "window_at_end": [_metric(o, "tollgate_api_window ") for o in ops]}


class TracedOperator(OperatorProcess):
    """The operator under tracemalloc (bench/traced_operator.py); `heap(label)` writes a snapshot."""

    def argv(self) -> list[str]:
        args = super().argv()
        return [sys.executable, str(Path(__file__).with_name("traced_operator.py")), *args[3:]]

    def start(self, wait: bool = True) -> OperatorProcess:
        super().start(wait=False)
        if wait:
            wait_for("traced operator health endpoint", self.healthy, timeout=300)
        return self

    def heap(self, label: str) -> None:
        assert self.proc is not None
        directory = Path(self.env["TOLLGATE_HEAP_DIR"])
        before = set(directory.glob("heap-*.done"))
        os.kill(self.proc.pid, signal.SIGUSR1)
        wait_for("heap snapshot", lambda: set(directory.glob("heap-*.done")) - before, timeout=300)
        done = (set(directory.glob("heap-*.done")) - before).pop()
        done.with_suffix(".snap").rename(directory / f"{label}.snap")
        done.unlink()  # a restarted operator numbers its snapshots from 1 again: its heap-1.done must be new
        log(f"heap snapshot {directory / label}.snap")


SHARDS = int(os.environ.get("BENCH_SHARDS") or 1)
"""BENCH_SHARDS=k: the operator side runs k replicas with --shards k (one shard each); bulk and memory only,
with RSS per replica, written as bulk_shards<k>.json and memory_shards<k>.json (docs/scaling.md)."""


def _operator(kubeconfig: str) -> OperatorProcess:
    heap_dir = os.environ.get("BENCH_HEAP")
    shards = {"TOLLGATE_SHARDS": str(SHARDS)}
    if heap_dir:
        Path(heap_dir).mkdir(parents=True, exist_ok=True)
        return TracedOperator(kubeconfig, leader_election=True, lease_namespace="default",
                              env={"TOLLGATE_HEAP_DIR": heap_dir, **shards})
    return OperatorProcess(kubeconfig, leader_election=True, lease_namespace="default", env=shards)


def _heap(op: OperatorProcess, label: str) -> None:
    if isinstance(op, TracedOperator):
        op.heap(label)


def _timeline(reqs: list[audit.Request], started: float, changed: tuple[str, str]) -> dict[str, float]:
    """Seconds from process start to: its first request, the first LIST and first WATCH of each kind,
    and the first request about the changed ModelDeployment or its sandbox (from the audit log)."""
    out: dict[str, float] = {}
    for r in sorted(reqs, key=lambda r: r.at):
        t = round(parse_ts(r.at) - started, 2)
        out.setdefault("first_request", t)
        if r.verb in ("list", "watch"):
            out.setdefault(f"{r.verb} {r.resource}", t)
        if r.namespace == changed[1] or (r.namespace, r.name) == (NS, changed[0]):
            out.setdefault(f"first {r.verb} for the changed one", t)
    return out


def _classify(reqs: list[audit.Request]) -> dict[str, int]:
    c: Counter[str] = Counter()
    for r in reqs:
        sub = f"/{r.subresource}" if r.subresource else ""
        c[f"{r.verb} {r.resource}{sub}"] += 1
    return dict(c.most_common())


def operator_side(sizes: Sizes, params: dict[str, Any], base: dict[str, Any] | None,
                  only: frozenset[str] = frozenset(("bulk", "memory", "api_load", "restart")),
                  bulk_only: bool = False) -> list[Result]:
    """base None: no baseline was run (`--only memory,restart`), so no bulk ratio is written. bulk_only: the
    bulk's Result alone, not written (bulk_pairs writes its runs together)."""
    cm, kubeconfig = _fresh_control_plane()
    results: list[Result] = []
    extra: list[OperatorProcess] = []
    try:
        nodes = _add_nodes(kubeconfig, sizes.bulk)
        api = api_client(kubeconfig, pool=CLIENT_WORKERS)
        create_namespace(api, NS)
        ops = [_operator(kubeconfig).start() for _ in range(SHARDS)]
        extra.extend(ops if SHARDS > 1 or bulk_only else [])  # one replica: _restart stops it
        op = ops[0]
        pids = [o.proc.pid for o in ops if o.proc is not None]
        if SHARDS > 1:
            wait_for("every replica holding one shard",
                     lambda: all(_metric(o, "tollgate_shards_held ") == 1 for o in ops), timeout=120)
        per_replica: dict[int, list[int]] = {}

        def settle(done: int) -> int:
            per_replica[done] = _settle_rss_all(pids)
            return max(per_replica[done])

        rss_idle = settle(0)
        log(f"operator idle RSS {rss_idle} kB")
        _heap(op, "heap-idle")
        all_names = names(sizes.bulk)
        phases, rss = [], {0: rss_idle}
        done = 0
        bulk_started = time.time()
        peak = [0]
        for batch in (all_names[: sizes.bulk_first], all_names[sizes.bulk_first:]):
            t0 = time.monotonic()
            cpu0 = sum(cpu_s(p) for p in pids)
            machine0 = cpu_by_command({p: "operator" for p in pids})
            parallel(lambda nm: apply_md(api, NS, md_manifest(nm, "1.0.0", replicas=1)), batch,
                     workers=CLIENT_WORKERS)
            applied = time.monotonic() - t0
            done += len(batch)
            t1 = _wait_count("ModelDeployments Ready", lambda: _ready_mds_noting_peak(api, pids, peak), done,
                             timeout=3600)
            cpu = sum(cpu_s(p) for p in pids) - cpu0
            phases.append({"mds": len(batch), "applied_s": round(applied, 2), "ready_s": round(t1 - t0, 2),
                           "operator_cpu_s": round(cpu, 1),
                           "operator_cpu_ms_per_md": round(cpu * 1000 / len(batch), 1),
                           "cpu_s_by_command": cpu_delta(machine0, cpu_by_command({p: "operator" for p in pids}))})
            log(f"operator phase: {phases[-1]}")
            rss[done] = settle(done)
            log(f"operator RSS at {done}: {rss[done]} kB (per replica: {per_replica[done]})")
            _heap(op, f"heap-{done}")

        total = sum(p["ready_s"] for p in phases)
        log(f"operator bulk: {phases}")
        try:
            sent = _bulk_requests(kubeconfig, bulk_started, sizes.bulk, ops)
        except Exception as exc:  # a figure less, not a failed run
            sent = {"error": str(exc)[:300]}
        log(f"operator requests during the bulk: { {k: v for k, v in sent.items() if k != 'by_kind'} }")
        ratio = total / base["total_s"] if base else 0.0
        suffix = f"{_at_scale(sizes)}_shards{SHARDS}" if SHARDS > 1 else _at_scale(sizes)
        ratio_target = 1.3 if sizes.bulk >= 10_000 else 1.5  # issue 22: 1.3x at 10,000
        results.append(Result(
            name=f"bulk{suffix}", sizes=sizes.name,
            params={**params, "N": sizes.bulk, "first_batch": sizes.bulk_first, "replicas": SHARDS, "nodes": nodes,
                    "client_workers": CLIENT_WORKERS,
                    "method": "ModelDeployments (or, for the baseline, the same child objects from the engine's "
                              "builders) are server-side-applied by 16 client threads in two batches "
                              f"({sizes.bulk_first}, then the rest), each timed until all are Ready (baseline: "
                              "all stable Deployments ready); fresh control plane for each side."},
            figures={"operator_s": round(total, 2), "baseline_s": (base or {}).get("total_s"),
                     "ratio": round(ratio, 2), "operator_phases": phases,
                     "baseline_phases": (base or {}).get("phases"),
                     "objects_per_md": (base or {}).get("objects_per_md"), "operator_requests": sent},
            targets={"ratio": f"<= {ratio_target}"}, met={"ratio": ratio <= ratio_target},
        ))
        if bulk_only:
            return results
        if base:
            results[-1].write()
        else:
            results.pop()

        first, n = sizes.bulk_first, sizes.bulk
        margin = (rss[n] - rss[first]) / (n - first)
        rss_target = 600 if n >= 10_000 else 150  # MB; issue 22: 150 at 1,000, 600 at 10,000
        log("measuring the per-object parts (bench/parts.py)")
        try:
            parts = breakdown(api, NS)
        except Exception as exc:  # a figure less, not a failed run
            parts = {"error": str(exc)[:300]}
        log(f"parts: {parts}")
        results.append(Result(
            name=f"memory{suffix}", sizes=sizes.name,
            params={**params, "N": n, "replicas": SHARDS,
                    "read": "/proc/<pid>/status VmRSS, smallest of the last 3 one-second samples after the batch "
                            "is Ready" + ("; the figures are the largest replica's" if SHARDS > 1 else "")},
            figures={"rss_idle_mb": round(rss_idle / 1024, 1), f"rss_{first}_mb": round(rss[first] / 1024, 1),
                     f"rss_{n}_mb": round(rss[n] / 1024, 1), "marginal_kb_per_md": round(margin, 1),
                     "rss_peak_during_bulk_mb": round(peak[0] / 1024, 1),
                     "rss_per_replica_mb": {str(k): [round(v / 1024, 1) for v in vs] for k, vs in per_replica.items()},
                     "parts_kb_per_md": parts},
            targets={"marginal_kb_per_md": "<= 50", f"rss_{n}_mb": f"<= {rss_target} (at {n:,})"},
            met={"marginal_kb_per_md": margin <= 50, f"rss_{n}_mb": rss[n] / 1024 <= rss_target},
        ))
        results[-1].write()
        if SHARDS > 1:
            return results

        # --- idle API load ---
        if "api_load" not in only:
            return _restart(sizes, params, api, kubeconfig, op, all_names, results)
        _api_load(sizes, params, api, kubeconfig, all_names, results)
        return _restart(sizes, params, api, kubeconfig, op, all_names, results)
    finally:
        for o in extra:
            o.stop()
        cm.__exit__(None, None, None)


def _api_load(sizes: Sizes, params: dict[str, Any], api: client.ApiClient, kubeconfig: str,
              all_names: list[str], results: list[Result]) -> None:
    """Idle API requests over the idle window, then writes on an identical re-apply and on a label touch."""
    n = sizes.bulk
    time.sleep(5)
    t0 = time.time()
    log(f"idle window {sizes.idle_window:.0f}s with {n} Ready ModelDeployments")
    time.sleep(sizes.idle_window)
    t1 = time.time()
    flush_audit()
    reqs = [r for r in operator_requests(kubeconfig, t0, t1) if r.verb != "watch"]
    leases = [r for r in reqs if r.resource == "leases"]
    other = [r for r in reqs if r.resource != "leases"]
    hours = (t1 - t0) / 3600
    per_md_hour = len(other) / n / hours

    # --- identical re-apply, then a metadata-only touch that does wake every ModelDeployment ---
    t2 = time.time()
    parallel(lambda nm: apply_md(api, NS, md_manifest(nm, "1.0.0", replicas=1)), all_names,
             workers=CLIENT_WORKERS)
    time.sleep(5)
    flush_audit()
    reapply_writes = [r for r in audit.writes(operator_requests(kubeconfig, t2)) if r.resource != "leases"]
    t3 = time.time()
    custom = client.CustomObjectsApi(api)
    parallel(lambda nm: custom.patch_namespaced_custom_object(
        "tollgate.dev", "v1alpha1", NS, "modeldeployments", nm,
        {"metadata": {"labels": {"bench.tollgate.dev/touched": "1"}}}), all_names, workers=CLIENT_WORKERS)
    time.sleep(10)
    flush_audit()
    touch_writes = [r for r in audit.writes(operator_requests(kubeconfig, t3)) if r.resource != "leases"]
    results.append(Result(
        name=f"api_load{_at_scale(sizes)}", sizes=sizes.name,
        params={**params, "N": n, "window_s": round(t1 - t0, 1),
                "source": "API server audit log, user agents tollgate-operator/ and kopf/, verb != watch"},
        figures={"requests_in_window": len(other), "requests_per_idle_md_per_hour": round(per_md_hour, 3),
                 "lease_requests_in_window": len(leases),
                 "lease_requests_per_hour": round(len(leases) / hours, 1),
                 "by_kind": _classify(reqs),
                 "writes_on_identical_reapply": len(reapply_writes),
                 "writes_on_label_touch": len(touch_writes),
                 "touch_write_kinds": _classify(touch_writes)},
        targets={"requests_per_idle_md_per_hour": "0 (watches aside)", "writes_on_identical_reapply": "0",
                 "writes_on_label_touch": "0 (not in the issue; a stricter variant that does send events)"},
        met={"requests_per_idle_md_per_hour": per_md_hour == 0, "writes_on_identical_reapply": not reapply_writes,
             "writes_on_label_touch": not touch_writes},
        notes=["An identical server-side re-apply changes nothing on the server, so no watch event reaches "
               "the operator; the label touch does send one event per ModelDeployment."],
    ))
    results[-1].write()


def _restart(sizes: Sizes, params: dict[str, Any], api: client.ApiClient, kubeconfig: str, op: OperatorProcess,
             all_names: list[str], results: list[Result]) -> list[Result]:
        n = sizes.bulk
        op.stop(signal.SIGTERM)
        changed = all_names[-1]
        apply_md(api, NS, md_manifest(changed, "1.0.0", replicas=2))
        changed_sandbox = default_sandbox_namespace(NS, changed)
        time.sleep(2)
        started = time.time()
        op2 = _operator(kubeconfig)
        op2.start(wait=False)
        assert op2.proc is not None
        healthy_at = None
        all_decided_at = None
        deadline = time.monotonic() + max(600.0, n * 0.2)  # 10,000: up to ~33 min to decide them all once
        while time.monotonic() < deadline and all_decided_at is None:
            try:
                if healthy_at is None and op2.healthy():
                    healthy_at = time.time()
                if healthy_at is not None and _reconciles(op2) >= n:
                    all_decided_at = time.time()
            except (OSError, RuntimeError):
                pass
            time.sleep(0.2)
        wait_for("changed ModelDeployment scaled", lambda: (client.AppsV1Api(api).read_namespaced_deployment(
            f"{changed}-stable", changed_sandbox).spec.replicas == 2), timeout=120)
        time.sleep(5)
        rss_restart = rss_kb(op2.proc.pid)
        _heap(op2, "heap-restart")
        flush_audit()
        reqs = [r for r in operator_requests(kubeconfig, started - 0.5) if r.resource != "leases"]
        writes = audit.writes(reqs)
        for_changed = [r for r in writes if r.namespace == changed_sandbox or (r.namespace, r.name) == (NS, changed)]
        others = [r for r in writes if r not in for_changed]
        acted = min((parse_ts(r.at) for r in for_changed), default=float("nan")) - started
        reads = [r for r in reqs if r.verb in ("get", "list")]
        op2.stop()
        results.append(Result(
            name=f"restart{_at_scale(sizes)}", sizes=sizes.name,
            params={**params, "N": n, "stop": "SIGTERM (the Lease is released, as in a rolling update)",
                    "change_while_down": f"{NS}/{changed}: replicas 1 -> 2",
                    "acts": "process start -> audit time of the first write for the ModelDeployment changed "
                            "while the operator was down"},
            figures={"acts_s": round(acted, 2),
                     "healthy_s": round(healthy_at - started, 2) if healthy_at else None,
                     "all_decided_once_s": round(all_decided_at - started, 2) if all_decided_at else None,
                     "writes_for_unchanged": len(others), "writes_for_changed": len(for_changed),
                     "unchanged_write_kinds": _classify(others), "reads": _classify(reads),
                     "rss_after_restart_mb": round(rss_restart / 1024, 1),
                     "timeline_s": _timeline(reqs, started, (changed, changed_sandbox))},
            targets={"writes_for_unchanged": "0", "acts_s": "<= 5",
                     **({"rss_after_restart_mb": "<= 600 (at 10,000)"} if n >= 10_000 else {})},
            met={"writes_for_unchanged": not others, "acts_s": acted <= 5,
                 **({"rss_after_restart_mb": rss_restart / 1024 <= 600} if n >= 10_000 else {})},
        ))
        results[-1].write()
        op.stop()
        return results


def bulk_pairs(sizes: Sizes, params: dict[str, Any], pairs: int) -> Result:
    """The bulk ratio over `pairs` pairs of runs, loader and operator interleaved, each on a fresh control
    plane; the median ratio is the figure, every pair is kept.

    One pair says little on this machine: with the same operator code and 12 requests per new
    ModelDeployment the ratio of single runs at 1,000 read 1.55 and 1.75 on the same day, and 1.37 to 1.93
    over the runs before; each side saturates the same 2 cores, which other work on the machine shares.
    Interleaving gives both sides the same drift of the machine; the median is robust to one disturbed run."""
    runs: list[dict[str, Any]] = []
    for i in range(pairs):
        log(f"bulk pair {i + 1}/{pairs}: the loader")
        base = baseline(sizes)
        log(f"bulk pair {i + 1}/{pairs}: the operator")
        bulk = operator_side(sizes, params, base, frozenset(("bulk",)), bulk_only=True)[0].figures
        sent = bulk["operator_requests"]
        runs.append({"ratio": bulk["ratio"], "operator_s": bulk["operator_s"], "baseline_s": bulk["baseline_s"],
                     "requests_per_md": sent.get("requests_per_md"), "loadavg_after": list(os.getloadavg()),
                     "operator_phases": bulk["operator_phases"], "baseline_phases": bulk["baseline_phases"]})
        log(f"bulk pair {i + 1}/{pairs}: { {k: v for k, v in runs[-1].items() if not k.endswith('_phases')} }")
    ratios = sorted(r["ratio"] for r in runs)
    median = statistics.median(ratios)
    target = 1.3 if sizes.bulk >= 10_000 else 1.5
    return Result(
        name=f"bulk_pairs{_at_scale(sizes)}", sizes=sizes.name,
        params={**params, "N": sizes.bulk, "first_batch": sizes.bulk_first, "pairs": pairs,
                "method": "the bulk benchmark's loader and operator sides, interleaved (loader, operator, loader, "
                          "...), each on a fresh control plane; the median of the pairs' ratios"},
        figures={"ratio_median": round(median, 2), "ratio_min": ratios[0], "ratio_max": ratios[-1], "runs": runs},
        targets={"ratio_median": f"<= {target}"}, met={"ratio_median": median <= target},
    )
