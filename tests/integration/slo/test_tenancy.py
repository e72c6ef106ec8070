"""Tenants on one Prometheus: a custom query sees only its own sandbox's series, and a slow one delays only
its own tenant. Real PromQL on the real Prometheus scraping the simulator's pods through the shipped
discovery, the operator as its own process."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client, watch

from integration.fixtures import release_namespace
from integration.runtime.helpers import apply, patch_spec, status, wait_phase
from integration.slo.helpers import evidence, slo_manifest
from tollgate.api.resource import GROUP, PLURAL, VERSION
from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

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


SLOW = "sum(rate(rest_server_requests_total{ {{selector}} }[{{window}}]))"
"""Scoped to its own sandbox (the stack's simulator speaks MLServer's dialect). It is slow because the
`HeldPrometheus` in front of Prometheus does not answer it, not because Prometheus works on it: the test used
to make it expensive (a 3h subquery at 1 ms steps, 6 to 10 s and 1.4 GB on Prometheus 3.16), and on a loaded
2-core machine that CPU slowed the other tenant's queries just as much (the operator gave up on the slow one
after its 10 s of retries while the other tenant had completed one analysis, with lanes or without: failed in
full slo runs on main and on the kopf-fix branch alike, 2026-12-03). Held, it costs Prometheus nothing and
the test reads only what it is about: the operator's scheduling."""


class HeldPrometheus:
    """An HTTP front of a Prometheus that holds every query naming `held` (never answering it while the test
    runs) and passes everything else through. The operator's client gives up on a held query after its own
    timeout and retries, as on a Prometheus too busy to answer."""

    def __init__(self, upstream: str, held: str) -> None:
        self.upstream, self.held = upstream, held
        self.release = threading.Event()
        self.holding = threading.Event()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = " ".join(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", []))
                if front.held in query:
                    front.holding.set()
                    front.release.wait()
                    self.send_error(503, "held by the test")
                    return
                try:
                    with urllib.request.urlopen(front.upstream + self.path, timeout=30) as resp:
                        status, body, kind = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as err:
                    status, body, kind = err.code, err.read(), err.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_: None  # type: ignore[method-assign]  # a held client gone
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def operator_on_held_prometheus(stack: Stack, namespace: str,
                                other_tenant: str) -> Iterator[tuple[OperatorProcess, HeldPrometheus]]:
    """The operator of both tenants (this namespace and <namespace>-b, by the glob), judging on the session's
    Prometheus through a front that holds slowpoke's queries; stopped before the front is."""
    front = HeldPrometheus(stack.prometheus.url, held='modeldeployment="slowpoke"')
    op = OperatorProcess(stack.kubeconfig, prometheus_url=front.url,
                         metrics_profile=stack.simulator.dialect, namespaces=[namespace, f"{namespace}-*"])
    op.start()
    yield op, front
    op.stop()
    front.close()


def test_a_tenant_with_slow_queries_does_not_delay_another_tenants_analysis(
        stack: Stack, namespace: str, other_tenant: str,
        operator_on_held_prometheus: tuple[OperatorProcess, HeldPrometheus]) -> None:
    _, front = operator_on_held_prometheus
    # given tenant a judged on a custom query that Prometheus does not answer, tenant b on a platform
    # template, both analysed every second on the same grid (so, before lanes, in one batch)
    slow_slo = {"name": "slow", "query": SLOW, "max": 1e9, "onNoData": "hold", "maxNoDataDuration": "120s"}
    steps = [{"weight": 50, "pause": "60s"}, {"weight": 100}]
    apply(stack, namespace, slo_manifest("slowpoke", [slow_slo], replicas=2, steps=steps, deadline="120s",
                                         analysis={"consecutiveErrorLimit": 50}))
    quick_steps = [{"weight": 50, "pause": "300s"}, {"weight": 100}]  # analysed until the test ends
    apply(stack, other_tenant, slo_manifest("quick", [ERROR_RATE_SLO], replicas=2, steps=quick_steps,
                                            deadline="120s"))
    wait_phase(stack, namespace, "slowpoke", "Stable")
    wait_phase(stack, other_tenant, "quick", "Stable")
    assert not front.holding.is_set(), "slowpoke's query was sent before its canary"
    # and b's canary under analysis (started first: on a loaded machine, two canaries started together were
    # seen starting 11 s apart, after a's first analysis had ended)
    patch_spec(stack, other_tenant, "quick", {"model": {"version": "1.1.0", "uri": "s3://models/quick/1.1.0"}})
    wait_for("quick's first analysis", lambda: status(stack, other_tenant, "quick").get("lastAnalysisAt"), timeout=90)
    # when a's canary starts and its first analysis is out, on a query Prometheus does not answer
    patch_spec(stack, namespace, "slowpoke", {"model": {"version": "1.1.0", "uri": "s3://models/slowpoke/1.1.0"}})
    wait_for("slowpoke's first query", front.holding.is_set, timeout=90)
    since = _custom(stack).list_cluster_custom_object(GROUP, VERSION, PLURAL).get("metadata", {})["resourceVersion"]
    # then b completes analyses while a's first one is still out (ordering, not timing). Before lanes, a
    # batch out kept every later request waiting until it returned, so b had at most one analysis written
    # after a's query was out and before a's first analysis (one in a's batch, written a moment before a's).
    # Two or more: b did not wait for a. The analyses are read from one watch of both objects, which the API
    # server delivers in the order it wrote them, every write (a poll of the two, two kubectl calls of seconds
    # each on a loaded machine, can miss one).
    quick_ticks, slow = _quick_ticks_before_slowpokes_first(stack, since, (namespace, "slowpoke"),
                                                            (other_tenant, "quick"))
    assert len(quick_ticks) >= 2, (f"quick's analyses {quick_ticks} before slowpoke's first "
                                   f"(at {slow.get('lastAnalysisAt')}, analysis {slow.get('analysis')})")


def _custom(stack: Stack) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(stack.api)


def _quick_ticks_before_slowpokes_first(stack: Stack, since: str, slow: tuple[str, str],
                                        quick: tuple[str, str]) -> tuple[list[str], dict[str, Any]]:
    """quick's analysis times (lastAnalysisAt), in the order written after `since`, up to the write of
    slowpoke's first analysis; and slowpoke's status as that write left it. A tick of quick's in flight at
    `since` counts, as the one quick analysis a batch shared with slowpoke's would give."""
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
