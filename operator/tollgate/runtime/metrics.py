"""The operator's own Prometheus metrics (prometheus_client), served on --metrics-port.

Names are prefixed `tollgate_`; labels are the ModelDeployment's namespace and name, so a platform
team can alert per model. Phases are a state-set gauge (1 for the current phase, 0 for the others).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tollgate.adapters.throttle import Throttle
from tollgate.api.status import ModelDeploymentStatus
from tollgate.engine.actions import Context, DrillRecorded
from tollgate.engine.observations import SLOObservation
from tollgate.runtime import malloc


class PerObject:
    """The gauges every ModelDeployment has (phase state set, canary weight), rendered at scrape time
    from one small dict entry each. As labelled prometheus_client Gauges they cost eleven child
    objects (with their locks) per ModelDeployment: over 10 KB each, the largest share of the
    operator's memory per object at 1,000."""

    def __init__(self) -> None:
        self.phase: dict[tuple[str, str], str] = {}
        self.weight: dict[tuple[str, str], float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # The current phase only, at 1 (as Argo Rollouts' rollout_info): the whole state set, a 0 for each
        # other phase, was 9 of every 10 samples of the page, and at 10,000 ModelDeployments a scrape took
        # a second of the operator's CPU (in the metrics thread, holding the GIL the decisions need) and a
        # 54 MB transient. `== 1`, `max by` and `sum` read the same either way (deploy/prometheus, grafana).
        phases = GaugeMetricFamily("tollgate_modeldeployment_phase",
                                   "1 for the current phase of each ModelDeployment (other phases are absent)",
                                   labels=["namespace", "name", "phase"])
        for (ns, name), current in list(self.phase.items()):
            phases.add_metric([ns, name, current], 1.0)
        yield phases
        weights = GaugeMetricFamily("tollgate_canary_weight_percent", "Percent of traffic on the canary",
                                    labels=["namespace", "name"])
        for (ns, name), value in list(self.weight.items()):
            weights.add_metric([ns, name], value)
        yield weights

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


OBJECTS = PerObject()
REGISTRY.register(OBJECTS)


class Heap:
    """glibc's malloc statistics at scrape time (runtime.malloc.heap_stats), one series per figure:
    whether the RSS is memory in use or free memory glibc keeps. Nothing where there is no mallinfo2."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = malloc.heap_stats()
        if stats is None:
            return
        heap = GaugeMetricFamily("tollgate_malloc_bytes",
                                 "glibc malloc (mallinfo2), bytes: heap (arenas' size), in_use (incl. mmapped), "
                                 "mmapped, free (inside the heaps, resident or not), releasable (top of the heap)",
                                 labels=["kind"])
        for kind in ("heap", "in_use", "mmapped", "free", "releasable"):
            heap.add_metric([kind], float(getattr(stats, kind)))
        yield heap
        yield GaugeMetricFamily("tollgate_malloc_free_chunks", "Free chunks in glibc's heaps (mallinfo2 ordblks)",
                                value=float(stats.free_chunks))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


REGISTRY.register(Heap())


class ApiWindow:
    """The throttle over the operator's requests to the API server (adapters.throttle) at scrape time:
    a window below its ceiling, or a growing count of 429s, says the API server is shedding the
    operator's load and rollouts are slowed by it."""

    def __init__(self) -> None:
        self.throttle: Throttle | None = None
        """Set by the runtime to its Kubernetes adapter's throttle."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        t = self.throttle
        if t is None:
            return
        yield GaugeMetricFamily("tollgate_api_window", "Requests the operator may have in progress at the "
                                "API server (its ceiling unless the server answered 429)", value=float(t.window))
        yield GaugeMetricFamily("tollgate_api_requests_in_progress",
                                "The operator's requests in progress at the API server, retries' waits included",
                                value=float(t.inflight))
        yield CounterMetricFamily("tollgate_api_throttled", "The operator's requests answered 429 by the API server",
                                  value=float(t.throttled))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


API_WINDOW = ApiWindow()
REGISTRY.register(API_WINDOW)


def set_weight(namespace: str, name: str, weight: float) -> None:
    OBJECTS.weight[(namespace, name)] = float(weight)
ANALYSIS_VALUE = Gauge("tollgate_analysis_value", "Latest canary value of each SLO",
                       ["namespace", "name", "slo", "track"])
ANALYSIS_RESULTS = Counter("tollgate_analysis_results_total", "SLO checks by verdict",
                           ["namespace", "name", "slo", "verdict"])
QUERY_ERRORS = Counter("tollgate_prometheus_query_errors_total", "SLO queries that returned an error",
                       ["namespace", "name", "slo"])
ROLLBACKS = Counter("tollgate_rollbacks_total", "Rollbacks by reason", ["namespace", "name", "reason"])
PROMOTIONS = Counter("tollgate_promotions_total", "Promotions", ["namespace", "name"])
RESTORED = Counter("tollgate_restored_total",
                   "Managed objects put back after someone else deleted or changed them", ["kind"])
RECONCILE_SECONDS = Histogram("tollgate_reconcile_duration_seconds", "Time of one reconcile",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WATCH_EVENTS = Counter("tollgate_watch_events_total", "Watch events handled", ["kind"])
ANALYSIS_TICKS = Counter("tollgate_analysis_ticks_total",
                         "Analysis batches sent to the metrics provider (one per tick)")
ANALYSIS_REQUESTS = Counter("tollgate_analysis_requests_total",
                            "ModelDeployments analysed, summed over the batches")
TENANT_BUDGET_EXCEEDED = Counter("tollgate_tenant_query_budget_exceeded_total",
                                 "Ticks whose custom queries ran past the namespace's time budget",
                                 ["namespace"])
IS_LEADER = Gauge("tollgate_leader", "1 while this replica holds the leader Lease (with --shards: any shard Lease)")
SHARDS_HELD = Gauge("tollgate_shards_held", "Shard Leases this replica holds (--shards > 1)")
SHARD_MEMBERS = Gauge("tollgate_shard_members", "Replicas this one sees sharing the shards (--shards > 1)")
DRILL_SECONDS = Gauge("tollgate_drill_seconds",
                      "Measured time to fallback of the last drill that got there (kubectl tollgate drill): from "
                      "the operator acting on the request to it observing every request on the fallback or stable",
                      ["namespace", "name", "kind"])
DRILLS = Counter("tollgate_drills_total", "Drills by outcome (Passed, Failed, Refused, Interrupted)",
                 ["namespace", "name", "kind", "outcome"])


def record_observation(ctx: Context, obs: SLOObservation) -> None:
    if obs.error:
        QUERY_ERRORS.labels(ctx.namespace, ctx.name, obs.name).inc()
        return
    for track, metric in (("canary", obs.canary), ("stable", obs.stable)):
        if metric is not None and metric.value is not None and math.isfinite(metric.value):
            ANALYSIS_VALUE.labels(ctx.namespace, ctx.name, obs.name, track).set(metric.value)


def record_status(ctx: Context, status: ModelDeploymentStatus) -> None:
    OBJECTS.phase[(ctx.namespace, ctx.name)] = status.phase.value
    set_weight(ctx.namespace, ctx.name, status.canaryWeight)


def record_verdicts(ctx: Context, status: ModelDeploymentStatus) -> None:
    """Count the verdicts of an analysis tick that just ran."""
    for slo in status.analysis:
        if slo.verdict is not None:
            ANALYSIS_RESULTS.labels(ctx.namespace, ctx.name, slo.name, slo.verdict.value).inc()


def record_drill(ctx: Context, drill: DrillRecorded) -> None:
    """A drill ended: its outcome counted, its time to fallback (when it got there) the gauge's value."""
    DRILLS.labels(ctx.namespace, ctx.name, drill.kind, drill.outcome).inc()
    if drill.seconds is not None:
        DRILL_SECONDS.labels(ctx.namespace, ctx.name, drill.kind).set(drill.seconds)
        _drilled.add((ctx.namespace, ctx.name, drill.kind))


_drilled: set[tuple[str, str, str]] = set()
"""(namespace, name, kind) of the drill gauges set, so a deleted ModelDeployment's are removed."""


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted ModelDeployment, so metrics do not grow without bound."""
    OBJECTS.phase.pop((namespace, name), None)
    OBJECTS.weight.pop((namespace, name), None)
    for key in [k for k in _drilled if k[:2] == (namespace, name)]:
        _drilled.discard(key)
        DRILL_SECONDS.remove(*key)


def decisions() -> float:
    """Decisions made so far (the runtime trims the heap once this pauses)."""
    return _total(RECONCILE_SECONDS, "tollgate_reconcile_duration_seconds_count")


def activity() -> float:
    """Decisions made and watch events handled so far."""
    return decisions() + _total(WATCH_EVENTS, "tollgate_watch_events_total")


def _total(metric: Histogram | Counter, sample_name: str) -> float:
    return sum(s.value for family in metric.collect() for s in family.samples if s.name == sample_name)
