"""Tenants on one Prometheus: a custom query sees only its own sandbox's series, and a slow one delays only
its own tenant. Real PromQL on the real Prometheus scraping the simulator's pods through the shipped
discovery, the operator as its own process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from integration.fixtures import release_namespace
from integration.runtime.helpers import apply, patch_spec, status, wait_phase
from integration.slo.helpers import evidence, slo_manifest
from tollgate.api.resource import GROUP, PLURAL, VERSION
from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.prometheus import Prometheus
from tollgate_testkit.stack import OperatorProcess, Stack, simulator_discovery, wait_for

ERROR_RATE_SLO = {"name": "error-rate", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "30s"}


@pytest.fixture
def other_tenant(stack: Stack, namespace: str) -> Iterator[str]:
    """A second tenant's namespace, <namespace>-b (watched by the `operator` fixture's glob)."""
    name = f"{namespace}-b"
    stack.kubectl("create", "namespace", name)
    yield name
    release_namespace(stack.kubectl, name)


def test_a_custom_query_over_another_namespaces_series_is_refused_never_answered(
        stack: Stack, namespace: str, other_tenant: str, operator: OperatorProcess) -> None:
    # given another tenant serving traffic, so its series exist in Prometheus
    apply(stack, other_tenant, slo_manifest("victim", [ERROR_RATE_SLO], replicas=2))
    wait_phase(stack, other_tenant, "victim", "Stable")
    victim_sandbox = status(stack, other_tenant, "victim")["sandboxNamespace"]
    their = requests_selector(stack.simulator.dialect, namespace=victim_sandbox)
    wait_for("victim's series scraped", lambda: stack.prometheus.query(f"sum({their})"), timeout=30)
    # when a tenant's canary is judged on a query that reads the other tenant's sandbox
    spy = {"name": "spy", "query": f"sum(rate({their}[{{{{window}}}}]))", "max": 1e9, "onNoData": "fail"}
    apply(stack, namespace, slo_manifest("spy", [spy], replicas=2,
                                         steps=[{"weight": 50, "pause": "60s"}, {"weight": 100}],
                                         analysis={"consecutiveErrorLimit": 2}))
    wait_phase(stack, namespace, "spy", "Stable")
    patch_spec(stack, namespace, "spy", {"model": {"version": "1.1.0", "uri": "s3://models/spy/1.1.0"}})
    st = wait_phase(stack, namespace, "spy", "RolledBack", timeout=90)
    # then the check was an error saying why, with no value: their data never reached this tenant
    record = evidence(stack, namespace, st)
    (observed,) = [o for o in record["observations"] or [] if o["name"] == "spy"]
    assert observed["error"].startswith("custom query refused"), observed
    assert observed["canary"] is None and observed["stable"] is None
    assert next(s for s in record["slos"] if s["name"] == "spy")["value"] is None
    # and it failed closed: rolled back, never promoted
    assert st["history"][0]["result"] == "RolledBack" and st["stable"]["version"] == "1.0.0"


SLOW = ("sum(rate(rest_server_requests_total{ {{selector}} }[{{window}}]))"
        " + 0 * scalar(count_over_time(vector(1)[3h:1ms]))")
"""Scoped to its own sandbox (the stack's simulator speaks MLServer's dialect), and slow on purpose: a
subquery of 10.8 million points. Measured on this 2-core machine with the tests' Prometheus 3.16 at load
average 5-7: 6 to 10 s per evaluation and 1.4 to 1.6 GB at its peak, so a tick of the slow tenant takes
seconds while the other tenant's ticks come every second. A 1h subquery, enough on Debian's 2.42 (2.5 to
12 s), takes 0.5 to 1.2 s on 3.16, and the test then saw one quick tick, not two, before the slow one.
3.16 stops an evaluation at the query's `timeout` (a 6h one answered 503 after its 1 s timeout plus the
step it was in, and its CPU stopped); 2.42 did not, which is why this test has a Prometheus of its own."""


@pytest.fixture
def own_prometheus(stack: Stack) -> Iterator[Prometheus]:
    """A Prometheus for this test alone, scraping the session's simulator's pods through the shipped
    discovery. The deliberately slow queries run here and end with it: on the session's Prometheus, the
    evaluations abandoned by the operator kept it saturated after the test, and the next tests of the
    session saw it refuse or time out connections and miss scrapes (an approval test's canary rolled back
    on NoData)."""
    with Prometheus([], scrape_interval=f"{stack.scrape_interval:g}s",
                    pods=simulator_discovery(stack.kubeconfig, stack.simulator)) as prom:
        yield prom


@pytest.fixture
def operator_on_own_prometheus(stack: Stack, namespace: str, other_tenant: str,
                               own_prometheus: Prometheus) -> Iterator[OperatorProcess]:
    """The operator of both tenants (this namespace and <namespace>-b, by the glob), judging on `own_prometheus`;
    stopped before that Prometheus is."""
    op = OperatorProcess(stack.kubeconfig, prometheus_url=own_prometheus.url,
                         metrics_profile=stack.simulator.dialect, namespaces=[namespace, f"{namespace}-*"])
    op.start()
    yield op
    op.stop()


def test_a_tenant_with_slow_queries_does_not_delay_another_tenants_analysis(
        stack: Stack, namespace: str, other_tenant: str, operator_on_own_prometheus: OperatorProcess) -> None:
    # given tenant a judged on a deliberately slow custom query, tenant b on a platform template,
    # both analysed every second on the same grid (so, before lanes, in the same batch)
    slow_slo = {"name": "slow", "query": SLOW, "max": 1e9, "onNoData": "hold", "maxNoDataDuration": "120s"}
    steps = [{"weight": 50, "pause": "60s"}, {"weight": 100}]
    apply(stack, namespace, slo_manifest("slowpoke", [slow_slo], replicas=2, steps=steps, deadline="120s",
                                         analysis={"consecutiveErrorLimit": 50}))
    apply(stack, other_tenant, slo_manifest("quick", [ERROR_RATE_SLO], replicas=2, steps=steps, deadline="120s"))
    wait_phase(stack, namespace, "slowpoke", "Stable")
    wait_phase(stack, other_tenant, "quick", "Stable")
    # when both start a canary at the same moment
    since = _custom(stack).list_cluster_custom_object(GROUP, VERSION, PLURAL).get("metadata", {})["resourceVersion"]
    for ns, name in ((namespace, "slowpoke"), (other_tenant, "quick")):
        patch_spec(stack, ns, name, {"model": {"version": "1.1.0", "uri": f"s3://models/{name}/1.1.0"}})
    # then b completes analyses while a's first one is still out (ordering, not timing). Before lanes both
    # were in one batch, so b's first analysis came back with a's, and b had at most one before a's first
    # (b's status may be written a moment before a's). Two or more: b did not wait for a. (b's own queries are
    # slowed too, by Prometheus' CPU, which the slow queries share on this 2-core machine: the lanes keep the
    # operator's scheduling apart, not the CPU of one Prometheus.) The ticks are read from one watch of both
    # objects, which the API server delivers in the order it wrote them, every write: a poll of the two (two
    # kubectl calls, seconds each on a loaded machine) saw one quick tick where there were more.
    quick_ticks, slow = _quick_ticks_before_slowpokes_first(stack, since, (namespace, "slowpoke"),
                                                            (other_tenant, "quick"))
    assert len(quick_ticks) >= 2, (f"quick's analyses {quick_ticks} before slowpoke's first "
                                   f"(at {slow.get('lastAnalysisAt')}, analysis {slow.get('analysis')})")


def _custom(stack: Stack) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(stack.api)


def _quick_ticks_before_slowpokes_first(stack: Stack, since: str, slow: tuple[str, str],
                                        quick: tuple[str, str]) -> tuple[list[str], dict[str, Any]]:
    """quick's analysis times (lastAnalysisAt), in the order written after `since`, up to the write of
    slowpoke's first analysis; and slowpoke's status as that write left it."""
    ticks: list[str] = []
    w = watch.Watch()
    for event in w.stream(_custom(stack).list_cluster_custom_object, GROUP, VERSION, PLURAL,
                          resource_version=since, timeout_seconds=90):
        obj = event["object"]
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        at = (obj.get("status") or {}).get("lastAnalysisAt")
        if key == slow and at is not None:
            w.stop()
            return ticks, obj["status"]
        if key == quick and at is not None and (not ticks or ticks[-1] != at):
            ticks.append(at)
    raise AssertionError(f"slowpoke never finished an analysis; quick ticks {ticks}")
