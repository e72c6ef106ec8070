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

from tollgate.engine.observations import AnalysisRequest, SLOObservation
from tollgate.ports.metrics import MetricsProvider
from tollgate.runtime import metrics

log = logging.getLogger("tollgate.analysis")


class AnalysisScheduler:
    def __init__(self, provider: MetricsProvider, gather_window: float = 0.05, quiet: float = 0.02,
                 max_gather: float = 0.5):
        """Gathers for `gather_window`, then for as long as requests keep arriving (a pause of `quiet`
        ends it), at most `max_gather` in all: loops woken at the same grid point reach `measure` one
        after another as the event loop gets to them, which under load takes longer than a fixed window."""
        self.provider = provider
        self.gather_window = gather_window
        self.quiet = quiet
        self.max_gather = max_gather
        self._pending: list[tuple[AnalysisRequest, asyncio.Future[tuple[SLOObservation, ...]]]] = []
        self._flush: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0

    async def measure(self, request: AnalysisRequest) -> tuple[SLOObservation, ...]:
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
