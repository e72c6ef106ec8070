"""Backpressure: an API server that sheds load with 429 and Retry-After is waited for, never hammered.

This test starts its own control plane with `--max-requests-inflight` set low (and API Priority and
Fairness off, so that cap is what throttles): the server answers 429 with `Retry-After: 1` whenever
more requests are in flight. The operator runs as an ordinary user (the filter exempts system:masters).
A burst of 200 ModelDeployments must still all reach Ready, and the API
server's audit log must show that the operator never repeated a throttled request before the server
said it may, and made no more than a bounded number of requests per ModelDeployment (no hot loop).

"Never repeated" covers every request of the operator's process: its own client (adapters.kube, the
Lease) and kopf's (watch listings, finalizers, Events). The path that once broke it: a decision whose
requests were throttled for seconds came back with a wake-up time counted from its start, so already
past, and re-sent within 0.03-0.8 s of the last 429 (runtime.handlers._reconcile_once).
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from integration.runtime.helpers import md_manifest
from tollgate_testkit import audit, controlplane
from tollgate_testkit.stack import OperatorProcess, install_crds, kubectl, wait_for

BURST = 200
INFLIGHT = 4
RETRY_AFTER_S = 1.0
"""What kube-apiserver's max-in-flight filter sends with its 429 (`Retry-After: 1`)."""


@pytest.fixture(scope="module")
def throttled() -> Iterator[str]:
    controlplane.build()
    directory = Path(tempfile.mkdtemp(prefix="tollgate-throttled-"))
    with controlplane.running(directory, max_requests_inflight=INFLIGHT) as state:
        install_crds(state.kubeconfig)
        yield state.kubeconfig


def _ready(kubeconfig: str, namespace: str) -> int:
    out = kubectl(kubeconfig, "get", "modeldeployments", "-n", namespace, "-o", "json", check=False)
    if out.returncode != 0:
        return 0
    items = json.loads(out.stdout)["items"]
    return sum(1 for md in items for c in (md.get("status") or {}).get("conditions", [])
               if c["type"] == "Ready" and c["status"] == "True")


def _ts(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(1800)
def test_a_burst_of_200_reaches_ready_through_429s_without_a_hot_loop(throttled: str) -> None:
    kubeconfig, namespace = throttled, "burst"
    kubectl(kubeconfig, "create", "namespace", namespace)
    # the max-in-flight filter exempts system:masters (the admin kubeconfig): the operator runs as a user
    # outside it, with cluster-admin through RBAC
    user = "tollgate-throttled"
    kubectl(kubeconfig, "create", "clusterrolebinding", user, "--clusterrole=cluster-admin", f"--user={user}")
    op_kubeconfig = str(controlplane.user_kubeconfig(kubeconfig, user, groups=()))
    start = audit.now_marker()
    op = OperatorProcess(op_kubeconfig, namespaces=[namespace, f"{namespace}-*"]).start()
    try:
        # given 200 ModelDeployments created at once, against an API server that admits few requests
        manifests = [md_manifest(f"b{i:03d}", "1.0.0", replicas=1) for i in range(BURST)]

        def create(m: dict[str, object]) -> None:
            wait_for("create accepted", lambda: kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-",
                                                        stdin=json.dumps(m), check=False).returncode == 0,
                     timeout=120, interval=0.5)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, manifests))
        # when the operator works through them, then every one reaches Ready
        wait_for(f"{BURST} ModelDeployments Ready", lambda: _ready(kubeconfig, namespace) == BURST,
                 timeout=1500, interval=2)
        # (the operator keeps working after Ready: its 429s are compared with the audit log's up to the scrape,
        # with a second's slack before it for answers the server sent and the client had not counted yet)
        scrape_start = audit.now_marker(time.time() - 1.0)
        counted = _metric(op.metrics(), "tollgate_api_throttled_total")
        scrape_end = audit.now_marker()
    finally:
        op.stop()
    # every request of the operator process: Tollgate's own client and kopf's (watches, finalizers, Events)
    reqs = [r for r in audit.read(controlplane.audit_log(kubeconfig), start)
            if r.user_agent.startswith(audit.OPERATOR_AGENTS) and r.user == user]
    throttled_reqs = [r for r in reqs if r.code == 429]
    # and the server did push back (the test would prove nothing otherwise)
    assert throttled_reqs, "no 429 reached the operator: lower INFLIGHT"
    # and no throttled request was sent again before its Retry-After had passed
    by_key: dict[tuple[str, ...], list[audit.Request]] = defaultdict(list)
    for r in reqs:
        if r.verb == "create" and not r.name:
            continue  # generateName (kopf's Events): each one is another object, not a retry
        if r.user_agent.startswith("kopf/") and r.resource == "namespaces" and not r.name:
            # two kopf streams list all namespaces (the resolver of the --namespace glob and the watch of
            # the sandbox namespaces); the log cannot tell them apart, and each waits on its own 429
            continue
        # one client's requests for one object (kopf and Tollgate's client both list namespaces at start)
        by_key[(r.user_agent, r.verb, r.resource, r.subresource, r.namespace, r.name)].append(r)
    early = []
    for key, series in by_key.items():
        for prev, nxt in itertools.pairwise(series):
            if prev.code == 429 and _ts(nxt.at) - _ts(prev.at) < RETRY_AFTER_S - 0.05:
                early.append((prev.at, nxt.at, *key))
    assert early == [], f"{len(early)} retries inside Retry-After, e.g. {early[:5]}"
    # and the work stayed bounded: no ModelDeployment's status was written more than a few times
    status_writes: dict[str, int] = defaultdict(int)
    for r in audit.writes(reqs):
        if r.resource == "modeldeployments" and r.subresource == "status" and r.code < 300:
            status_writes[r.name] += 1
    assert max(status_writes.values()) <= 4, sorted(status_writes.items(), key=lambda kv: -kv[1])[:5]
    # and Tollgate's own requests stayed bounded (kopf's are mostly its one LIST per watched kind in each of
    # the 200 sandbox namespaces, and the 429s those met)
    own = [r for r in reqs if r.user_agent.startswith("tollgate-operator/")]
    # and the operator's metric counted the 429s its adapter met (every request for an API resource but the
    # Lease, which has a client of its own), as the server's audit log tells them
    adapter_429s = [r.at for r in reqs if r.user_agent.startswith("tollgate-operator/") and r.code == 429
                    and r.resource and r.resource != "leases"]
    before = sum(1 for at in adapter_429s if at < scrape_start)
    by_end = sum(1 for at in adapter_429s if at <= scrape_end)
    assert 0 < before <= counted <= by_end, (before, counted, by_end)
    own_429 = Counter(f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}" for r in own
                      if r.code == 429)
    print(f"operator: {len(own)} requests over {_span(own):.0f} s, {sum(own_429.values())} answered 429 "
          f"({own_429.most_common(5)}); kopf: {len(reqs) - len(own)}")
    assert len(own) <= 40 * BURST, (
        f"{len(own)} operator requests for {BURST} ModelDeployments over {_span(own):.0f} s: "
        f"{sum(own_429.values())} answered 429 ({own_429.most_common(5)}), {sum(r.verb == 'list' for r in own)} LISTs "
        f"(re-listing resyncs), {sum(r.subresource == 'status' for r in own)} status writes; kopf's "
        f"{len(reqs) - len(own)} requests, {len(throttled_reqs) - sum(r.code == 429 for r in own)} of them "
        f"answered 429 (a burst slowed by machine load meets more 429s and re-listings: bench/README.md)")


def _metric(text: str, name: str) -> float:
    """One unlabelled sample of the operator's /metrics."""
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def _span(reqs: list[audit.Request]) -> float:
    """Seconds from the first request to the last."""
    times = [_ts(r.at) for r in reqs]
    return max(times) - min(times) if times else 0.0
