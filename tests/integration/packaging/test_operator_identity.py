"""The chart's RBAC is enough: the operator running as the chart's ServiceAccount completes a rollout
and a rollback on the real control plane, no request of it is denied, Prometheus scrapes its
weight changing, and GitOps tools (Argo CD health.lua, kstatus, Flux CEL) judge its real statuses."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster import Cluster
from integration.packaging import install
from integration.runtime.helpers import apply, md_manifest, patch_spec, stepped, wait_phase
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for
from unit.packaging.gitops import argocd_health, flux_health, kstatus


@pytest.fixture(scope="module")
def installed(cluster: Cluster, crds: list[str], tool_bin: Path) -> Iterator[install.Installed]:
    suffix = uuid.uuid4().hex[:6]
    inst = install.install(cluster, tool_bin, f"tollgate-system-{suffix}", f"tg-{suffix}")
    yield inst
    install.uninstall(cluster, inst)


@pytest.fixture
def chart_operator(stack: Stack, cluster: Cluster, installed: install.Installed, namespace: str,
                   tmp_path: Path) -> Iterator[tuple[OperatorProcess, str]]:
    """`python -m tollgate` authenticated only by a token of the chart's ServiceAccount, with the
    chart's settings: Lease election in the release namespace, the Prometheus token from the Secret.
    Yields the process and an audit-log marker taken before it started."""
    since = audit.now_marker()
    kubeconfig = install.token_kubeconfig(cluster, installed, tmp_path / "sa.kubeconfig")
    op = OperatorProcess(str(kubeconfig), prometheus_url=stack.prometheus.url,
                         metrics_profile=stack.simulator.dialect,
                         namespaces=[namespace, f"{namespace}-*"], leader_election=True,
                         lease_namespace=installed.namespace,
                         extra_args=["--prometheus-token-secret", f"{installed.namespace}/{install.PROM_SECRET}:token"])
    op.start()
    stack.operators.append(op)  # Prometheus scrapes it as job "tollgate-operator", as Stack.start_operator does
    stack.prometheus.reload(stack.operator_targets())
    yield op, since
    op.stop()
    stack.operators.remove(op)
    stack.clear_faults()


def follow(stack: Stack, namespace: str, name: str, until: tuple[str, ...],
           timeout: float = 150) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """Weights seen (repeats folded) and the last whole object seen in each phase, until a phase in `until`."""
    weights: list[int] = []
    by_phase: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = stack.md(namespace, name)
        st = obj.get("status") or {}
        w = int(st.get("canaryWeight") or 0)
        if not weights or weights[-1] != w:
            weights.append(w)
        if st.get("phase"):
            by_phase[st["phase"]] = obj
        if st.get("phase") in until:
            return weights, by_phase
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {until}; weights {weights}; phases {list(by_phase)}")


def prom_range(stack: Stack, promql: str, start: float, end: float) -> list[float]:
    q = urllib.parse.urlencode({"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"})
    with urllib.request.urlopen(f"{stack.prometheus.url}/api/v1/query_range?{q}", timeout=10) as r:
        data = json.loads(r.read())
    return [float(v) for series in data["data"]["result"] for _, v in series["values"]]


def judged(obj: dict[str, Any]) -> tuple[str, str, str]:
    return argocd_health(obj)[0], kstatus(obj), flux_health(obj)


def test_operator_as_the_charts_service_account_promotes_and_rolls_back(
        stack: Stack, cluster: Cluster, installed: install.Installed, namespace: str,
        chart_operator: tuple[OperatorProcess, str]) -> None:
    op, since = chart_operator
    t0 = time.time()
    # given a ModelDeployment serving 1.0.0
    apply(stack, namespace, md_manifest("scorer", "1.0.0"))
    wait_phase(stack, namespace, "scorer", "Stable")
    stable = stack.md(namespace, "scorer")
    sel = f'tollgate_canary_weight_percent{{job="tollgate-operator",namespace="{namespace}",name="scorer"}}'
    # and Prometheus has scraped its weight at 0 (a rollout can pass 0 faster than one scrape interval)
    wait_for("the weight series at 0 in Prometheus",
             lambda: 0.0 in prom_range(stack, sel, t0, time.time()), timeout=30)
    # when 2.0.0 is rolled out
    patch_spec(stack, namespace, "scorer", {"model": {"name": "scorer", "version": "2.0.0",
                                                      "uri": "s3://models/scorer/2.0.0"}})
    weights, seen = follow(stack, namespace, "scorer", ("Succeeded", "RolledBack"))
    # then the canary went through its steps in order and promoted, with only the chart's permissions (the
    # steps from the rollout's own timeline: on a loaded machine a step can pass between two polls)
    assert seen.keys() >= {"Progressing", "Succeeded"}, (weights, list(seen), op.log_tail())
    promoted = seen["Succeeded"]
    assert stepped(promoted["status"]) == [25, 50, 100], promoted["status"]["timeline"]
    assert promoted["status"]["stable"]["version"] == "2.0.0"

    # when 3.0.0 fails its error-rate SLO
    stack.set_fault("3.0.0", error_rate=0.5)
    patch_spec(stack, namespace, "scorer", {"model": {"name": "scorer", "version": "3.0.0",
                                                      "uri": "s3://models/scorer/3.0.0"}})
    _, seen_bad = follow(stack, namespace, "scorer", ("RolledBack",))
    rolled_back = seen_bad["RolledBack"]
    # then it rolled back and wrote its evidence ConfigMap, again with only the chart's permissions
    # (written after the traffic actions, which follow the status write: intent first)
    incident = rolled_back["status"]["lastIncident"]
    assert incident
    wait_for("the evidence record", lambda: cluster.kubectl("get", "configmap", incident, "-n", namespace,
                                                            check=False).returncode == 0, timeout=30)

    # and GitOps tools judge the operator's real statuses as docs/operations.md says
    assert judged(stable) == ("Healthy", "Current", "Current")
    assert judged(seen["Progressing"]) == ("Progressing", "InProgress", "InProgress")
    assert judged(promoted) == ("Healthy", "Current", "Current")
    assert judged(rolled_back) == ("Degraded", "Failed", "Failed")

    # and Prometheus, scraping the operator as job tollgate-operator, saw the canary weight move
    # (a step can pass within one scrape interval: the canary's stream counts every request since it
    # started, so a look at 50% may pass at once; Prometheus sees a sample of the weights, never others)
    values = wait_for("the weight series in Prometheus",
                      lambda: (v := prom_range(stack, sel, t0, time.time())) and max(v) >= 25 and v, timeout=30)
    assert 0.0 in values and set(values) <= {0.0, 25.0, 50.0, 100.0}, sorted(set(values))

    # when the ModelDeployment is deleted, the finalizer removes the sandbox namespace Tollgate created
    sandbox = promoted["status"]["sandboxNamespace"]
    cluster.kubectl("delete", "modeldeployment", "scorer", "-n", namespace, "--timeout=60s")
    wait_for("sandbox namespace deleted", lambda: cluster.kubectl(
        "get", "namespace", sandbox, "-o", "jsonpath={.status.phase}", check=False).stdout in ("", "Terminating"),
        timeout=30)

    # and the API server's audit log shows the ServiceAccount made every request, none denied (neither by
    # RBAC nor by the chart's admission policy confining it to its sandboxes)
    # (watches are logged only when they end, so the lists that start them stand for them)
    time.sleep(2)  # the audit log is written in 1 s batches
    reqs = install.requests_by(audit_log(cluster.kubeconfig), installed.user, since)
    denied = [(r["verb"], r.get("objectRef")) for r in reqs if (r.get("responseStatus") or {}).get("code") == 403]
    assert not denied, denied
    refs = [(r["verb"], r.get("objectRef") or {}) for r in reqs]
    used = {(verb, ref.get("resource", ""), ref.get("subresource", "")) for verb, ref in refs}
    for needed in [("patch", "modeldeployments", "status"), ("create", "namespaces", ""),
                   ("delete", "namespaces", ""), ("list", "modeldeployments", ""), ("list", "deployments", ""),
                   ("get", "deployments", ""), ("patch", "deployments", "scale"),
                   ("patch", "configmaps", ""), ("get", "secrets", ""), ("patch", "leases", "")]:
        assert needed in used, (needed, sorted(used))
    print("requests by the chart identity:", sorted(used))
    secret_reads = {(r["objectRef"]["namespace"], r["objectRef"].get("name")) for r in reqs
                    if (r.get("objectRef") or {}).get("resource") == "secrets"}
    assert secret_reads == {(installed.namespace, install.PROM_SECRET)}
    log = op.log_path.read_text()
    assert "Forbidden" not in log and "Not enough permissions" not in log
