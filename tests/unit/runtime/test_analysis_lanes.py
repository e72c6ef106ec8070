"""A tenant's custom queries run in its own lane: slow ones delay that tenant only."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from tollgate.api.spec import SLO
from tollgate.engine.observations import AnalysisRequest, MDKey, MetricValue, SLOObservation
from tollgate.runtime.analysis import AnalysisScheduler

SLOW = SLO(name="slow", query='sum(x{namespace="{{namespace}}"})', max=1)
ERRORS = SLO(name="error-rate", max=0.01)


class Provider:
    """Answers every SLO with 0.0; a request holding the custom SLO `slow` blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[tuple[str, ...]] = []

    def observe(self, requests: Sequence[AnalysisRequest]) -> dict[MDKey, tuple[SLOObservation, ...]]:
        self.calls.append(tuple(s.name for r in requests for s in r.slos))
        if any(s.name == "slow" for r in requests for s in r.slos):
            self.release.wait(timeout=30)
        return {r.key: tuple(SLOObservation(name=s.name, canary=MetricValue(0.0, 100), window=r.window)
                             for s in r.slos) for r in requests}

    def healthy(self) -> bool:
        return True


def test_a_slow_tenant_does_not_delay_another_tenants_tick() -> None:
    async def scenario() -> list[str]:
        provider = Provider()
        scheduler = AnalysisScheduler(provider, gather_window=0.01, quiet=0.01, tenant_budget=60)
        order: list[str] = []

        async def tick(ns: str, *slos: SLO) -> None:
            obs = await scheduler.measure(AnalysisRequest(ns, "m", slos, "1m"))
            assert [o.name for o in obs] == [s.name for s in slos]  # spec order kept
            order.append(ns)

        # given tenant a whose custom query hangs, and tenant b asking in the same tick
        slow = asyncio.create_task(tick("team-a", ERRORS, SLOW))
        fast = asyncio.create_task(tick("team-b", ERRORS))
        # when b's tick is answered
        await asyncio.wait_for(fast, timeout=10)
        # then a is still waiting for its own query, and only then finishes
        assert not slow.done()
        provider.release.set()
        await asyncio.wait_for(slow, timeout=10)
        # and the custom query never joined the shared batch
        assert ("slow",) in provider.calls and all("slow" not in c or c == ("slow",) for c in provider.calls)
        return order

    assert asyncio.run(scenario()) == ["team-b", "team-a"]


def test_past_its_budget_a_tenant_gets_an_error_and_its_next_tick_waits_for_its_own_queries() -> None:
    async def scenario() -> None:
        provider = Provider()
        scheduler = AnalysisScheduler(provider, gather_window=0.01, quiet=0.01, tenant_budget=0.2)
        # given a tick whose custom query outlives the budget
        (obs,) = await scheduler.measure(AnalysisRequest("team-a", "m", (SLOW,), "1m"))
        # then it reports an error naming the budget, at once
        assert obs.error is not None and "time budget" in obs.error
        # and the tenant's next tick queues behind its own running query, not beside it
        nxt = asyncio.create_task(scheduler.measure(AnalysisRequest("team-a", "m", (SLOW,), "1m")))
        await asyncio.sleep(0.3)
        assert len(provider.calls) == 1 and not nxt.done()
        provider.release.set()
        await asyncio.wait_for(nxt, timeout=10)

    asyncio.run(scenario())


def test_slo_templates_go_where_their_author_belongs() -> None:
    # given a tenant's SLOTemplate, the platform's ClusterSLOTemplate and a built-in in one request
    tenant = SLO.model_validate({"name": "t", "max": 1, "templateRef": {"kind": "SLOTemplate", "name": "x"}})
    platform = SLO.model_validate({"name": "p", "max": 1, "templateRef": {"name": "y"}})

    async def scenario() -> Provider:
        provider = Provider()
        scheduler = AnalysisScheduler(provider, gather_window=0.01, quiet=0.01, tenant_budget=60)
        await scheduler.measure(AnalysisRequest("team-a", "m", (ERRORS, tenant, platform), "1m"))
        return provider

    # then the tenant's runs in its namespace's lane, the platform's in the shared batch with the built-in
    assert sorted(asyncio.run(scenario()).calls) == [("error-rate", "p"), ("t",)]
