"""The analysis scheduler: batches the SLO measurements of every canary due at the same moment.

Why: Flagger and Argo Rollouts send one query per metric per canary per tick, so 50 canaries with 3
SLOs cost 150 queries a tick. Here each ModelDeployment's loop asks for its measurement, the
scheduler gathers every request that arrives within a short window and sends them to the provider
as one batch, which issues one grouped query per SLO template. Loops wake on an interval grid (the
engine's `wakes.analysis_time`), so canaries with the same interval ask together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace

from tollgate.api.spec import SLO, TemplateKind
from tollgate.engine.observations import AnalysisRequest, SLOObservation
from tollgate.ports.metrics import MetricsProvider
from tollgate.runtime import metrics

log = logging.getLogger("tollgate.analysis")


TENANT_BUDGET_SECONDS = 15.0
"""How long one namespace's custom queries of one tick may take before its SLOs report an error."""


def tenant_written(slo: SLO) -> bool:
    """An SLO whose PromQL the tenant wrote: an inline `query:` or a namespaced SLOTemplate."""
    ref = slo.templateRef
    return slo.query is not None or (ref is not None and ref.kind is TemplateKind.NAMESPACED)


class AnalysisScheduler:
    def __init__(self, provider: MetricsProvider, gather_window: float = 0.05, quiet: float = 0.02,
                 max_gather: float = 0.5, tenant_budget: float = TENANT_BUDGET_SECONDS):
        """Gathers for `gather_window`, then for as long as requests keep arriving (a pause of `quiet`
        ends it), at most `max_gather` in all: loops woken at the same grid point reach `measure` one
        after another as the event loop gets to them, which under load takes longer than a fixed window.

        Custom queries (SLOs with `query:` or an SLOTemplate) are written by tenants and may be slow, so
        they never join the shared batch: each namespace has its own lane, one tick at a time, bounded by
        `tenant_budget` seconds. A tenant whose queries are slow delays its own next tick, nobody else's."""
        self.provider = provider
        self.gather_window = gather_window
        self.quiet = quiet
        self.max_gather = max_gather
        self.tenant_budget = tenant_budget
        self._pending: list[tuple[AnalysisRequest, asyncio.Future[tuple[SLOObservation, ...]]]] = []
        self._flush: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Lock] = {}
        self.batches = 0
        self.requests = 0

    async def measure(self, request: AnalysisRequest) -> tuple[SLOObservation, ...]:
        """Observations of every SLO of `request`, in its order: the platform's (built-ins and
        ClusterSLOTemplates) from the shared batch, the tenant's (custom queries and SLOTemplates) from the
        namespace's own lane, both at once."""
        shared = replace(request, slos=tuple(s for s in request.slos if not tenant_written(s)))
        own = replace(request, slos=tuple(s for s in request.slos if tenant_written(s)))
        parts: list[Awaitable[tuple[SLOObservation, ...]]] = []
        if shared.slos:
            parts.append(self._batched(shared))
        if own.slos:
            parts.append(self._in_lane(own))
        observed = {o.name: o for part in await asyncio.gather(*parts) for o in part}
        return tuple(observed.get(s.name) or SLOObservation(name=s.name, error="no result for this SLO",
                                                            window=request.window) for s in request.slos)

    async def _in_lane(self, request: AnalysisRequest) -> tuple[SLOObservation, ...]:
        """The custom queries of one ModelDeployment, in its namespace's lane, within the tenant budget.

        Past the budget the SLOs report an error at once, but the lane stays taken until the queries
        finish: the tenant's next tick waits for its own slow queries, and cannot pile up more."""
        lane = self._lanes.setdefault(request.namespace, asyncio.Lock())
        await lane.acquire()
        observing = asyncio.ensure_future(asyncio.to_thread(self.provider.observe, [request]))
        done, _ = await asyncio.wait([observing], timeout=self.tenant_budget)
        if not done:
            observing.add_done_callback(lambda _: lane.release())
            metrics.TENANT_BUDGET_EXCEEDED.labels(request.namespace).inc()
            log.warning("custom queries over their time budget", extra={
                "md": f"{request.namespace}/{request.name}", "budget": self.tenant_budget})
            return tuple(SLOObservation(
                name=s.name, window=request.window,
                error=f"custom queries of namespace {request.namespace} took longer than their time budget "
                      f"of {self.tenant_budget:g}s; make the query cheaper (shorter range, fewer series)")
                for s in request.slos)
        lane.release()
        failure = observing.exception()
        if failure is not None:  # the provider promises never to raise; its SLOs then fail closed
            log.error("metrics provider raised", exc_info=failure)
            return tuple(SLOObservation(name=s.name, error=f"provider failed: {failure}", window=request.window)
                         for s in request.slos)
        return observing.result().get(request.key, ())

    async def _batched(self, request: AnalysisRequest) -> tuple[SLOObservation, ...]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[SLOObservation, ...]] = loop.create_future()
        self._pending.append((request, fut))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._run_batch())
        return await fut

    async def _run_batch(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.max_gather
        await asyncio.sleep(self.gather_window)
        seen = -1
        while len(self._pending) != seen and loop.time() < until:
            seen = len(self._pending)
            await asyncio.sleep(self.quiet)
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.batches += 1
        self.requests += len(batch)
        metrics.ANALYSIS_TICKS.inc()
        metrics.ANALYSIS_REQUESTS.inc(len(batch))
        reqs = [r for r, _ in batch]
        observing = asyncio.ensure_future(asyncio.to_thread(self.provider.observe, reqs))
        await asyncio.wait([observing])
        failure = observing.exception()
        if failure is None:
            results = observing.result()
        else:
            # The provider promises never to raise (MetricsProvider); one that does breaks that promise,
            # and its SLOs count as provider errors, which fail closed, like an unreachable Prometheus.
            log.error("metrics provider raised", exc_info=failure)
            results = {r.key: tuple(SLOObservation(name=s.name, error=f"provider failed: {failure}",
                                                   window=r.window) for s in r.slos) for r in reqs}
        for req, fut in batch:
            if not fut.done():
                fut.set_result(results.get(req.key, tuple(
                    SLOObservation(name=s.name, error="no result for this ModelDeployment", window=req.window)
                    for s in req.slos)))
