"""Leader election on the real API server: a frozen leader writes nothing once it lost the Lease, and a
holder whose clock is far behind is not taken over while it keeps renewing.

The two replicas run as two users (client certificates from the control plane's CA), so the API
server's audit log says which process sent each request. Lease timings go through the environment
(TOLLGATE_LEASE_*), which an operator without those settings ignores and runs with 15/10/2 s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from integration.cluster import Cluster
from integration.runtime.helpers import apply, md_manifest, patch_spec, two_replicas, wait_phase
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

FAST_LEASE = {"TOLLGATE_LEASE_DURATION": "6", "TOLLGATE_LEASE_RENEW_DEADLINE": "4",
              "TOLLGATE_LEASE_RETRY_PERIOD": "1"}


def _lease(stack: Stack, namespace: str) -> dict[str, object]:
    res = stack.kubectl("get", "lease", "tollgate-operator", "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout)["spec"] if res.returncode == 0 else {}


def _holder_pid(stack: Stack, namespace: str) -> int | None:
    holder = str(_lease(stack, namespace).get("holderIdentity") or "")
    parts = holder.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@pytest.fixture
def replicas(stack: Stack, cluster: Cluster, namespace: str) -> Iterator[dict[str, OperatorProcess]]:
    """Two operator replicas with leader election on a Lease in the test namespace, as users op-a and op-b."""
    with two_replicas(stack, cluster.kubeconfig, namespace, FAST_LEASE) as ops:
        yield ops


def test_a_frozen_leader_writes_nothing_after_it_lost_the_lease(
        stack: Stack, namespace: str, replicas: dict[str, OperatorProcess]) -> None:
    # given two replicas, one leading, and a canary under analysis (a status write every 1 s tick:
    # minSamples is out of reach, so every tick is Inconclusive and the step holds)
    wait_for("a leader", lambda: _holder_pid(stack, namespace), timeout=60)
    apply(stack, namespace, md_manifest("split", "1.0.0"))
    wait_phase(stack, namespace, "split", "Stable")
    patch_spec(stack, namespace, "split", {
        "model": {"version": "1.1.0", "uri": "s3://models/split/1.1.0"},
        "rollout": {"steps": [{"weight": 25}, {"weight": 100}],
                    "analysis": {"interval": "1s", "window": "5s", "minSamples": 10_000_000},
                    "progressDeadline": "5m"},
        "slos": [{"name": "error-rate", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "10m"}]})
    wait_for("the canary under analysis",
             lambda: (stack.md(namespace, "split").get("status") or {}).get("analysis"), timeout=60)
    pid = _holder_pid(stack, namespace)
    old = next(u for u, op in replicas.items() if op.proc is not None and op.proc.pid == pid)
    new = next(u for u in replicas if u != old)
    # when the leader is frozen (SIGSTOP) past its lease, and the standby takes over
    os.killpg(replicas[old].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    new_pid = replicas[new].proc.pid  # type: ignore[union-attr]
    wait_for("the standby to take the Lease", lambda: _holder_pid(stack, namespace) == new_pid, timeout=60)
    # and the old leader wakes up with its intentions from before (its timers are all overdue)
    resumed = audit.now_marker()
    os.killpg(replicas[old].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    # then, while the new leader carries the rollout on (ten more status writes of its own),
    log = audit_log(stack.kubeconfig)

    def new_leader_writes() -> int:
        return sum(1 for r in audit.writes(audit.read(log, resumed))
                   if r.user == new and r.resource == "modeldeployments" and r.subresource == "status")

    wait_for("the new leader to write status ten times", lambda: new_leader_writes() >= 10, timeout=90)
    # the old leader sent no write of any kind since it woke: not status, not children, not the Lease
    stale = [r for r in audit.writes(audit.read(log, resumed)) if r.user == old]
    assert stale == [], "the deposed leader wrote after losing the Lease:\n" + "\n".join(
        f"{r.at} {r.verb} {r.resource}/{r.subresource} {r.namespace}/{r.name} -> {r.code}" for r in stale)
    # and it is alive, standing by, and said why it stopped
    assert replicas[old].proc is not None and replicas[old].proc.poll() is None
    wait_for("the old leader to log that it stopped acting",
             lambda: "lost leadership" in replicas[old].log_path.read_text(errors="replace"), timeout=30)



def _freeze_until_deposed(stack: Stack, namespace: str, replicas: dict[str, OperatorProcess]) -> tuple[str, str, str]:
    """SIGSTOP the leader until the standby holds the Lease, then SIGCONT it: (old, new, audit marker)."""
    pid = _holder_pid(stack, namespace)
    old = next(u for u, op in replicas.items() if op.proc is not None and op.proc.pid == pid)
    new = next(u for u in replicas if u != old)
    os.killpg(replicas[old].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    new_pid = replicas[new].proc.pid  # type: ignore[union-attr]
    wait_for("the standby to take the Lease", lambda: _holder_pid(stack, namespace) == new_pid, timeout=60)
    resumed = audit.now_marker()
    os.killpg(replicas[old].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    wait_for("the old leader to log that it stopped acting",
             lambda: "lost leadership" in replicas[old].log_path.read_text(errors="replace"), timeout=30)
    return old, new, resumed


def test_a_deposed_leader_leaves_a_deletion_to_the_new_leader_and_kopf_writes_nothing_for_it(
        stack: Stack, namespace: str, replicas: dict[str, OperatorProcess]) -> None:
    """kopf runs the delete handler in every replica. One that does not lead must not fail it (kopf would
    write its progress annotation, then a touch annotation at every retry): it waits, reading only."""
    # given two replicas and a ModelDeployment with its sandbox
    wait_for("a leader", lambda: _holder_pid(stack, namespace), timeout=60)
    apply(stack, namespace, md_manifest("bye", "1.0.0"))
    sandbox = wait_phase(stack, namespace, "bye", "Stable")["sandboxNamespace"]
    # and a leader that was frozen past its lease, replaced, and woke up deposed
    old, new, resumed = _freeze_until_deposed(stack, namespace, replicas)
    # when the ModelDeployment is deleted (both replicas' kopf see the deletion and run the handler)
    stack.kubectl("delete", "modeldeployment", "bye", "-n", namespace, "--wait=false")
    # then the new leader releases it: the sandbox namespace is deleted and the object is gone
    wait_for("the ModelDeployment released", lambda: stack.kubectl(
        "get", "modeldeployment", "bye", "-n", namespace, check=False).returncode != 0, timeout=90)
    log = audit_log(stack.kubeconfig)
    wait_for("the new leader's namespace delete in the audit log", lambda: any(
        r.user == new and r.verb == "delete" and r.resource == "namespaces" and r.name == sandbox
        for r in audit.read(log, resumed)), timeout=30)
    # and no write of the deposed leader took effect since it woke: no progress or touch annotation, no
    # finalizer change, no child. The one request allowed is kopf's finalizer removal after the handler
    # stood down, which meets the 404 of an object that no longer exists.
    def stale() -> list[audit.Request]:
        return [r for r in audit.writes(audit.read(log, resumed)) if r.user == old
                and not (r.code == 404 and r.resource == "modeldeployments" and r.name == "bye")]

    def listing(requests: list[audit.Request]) -> str:
        return "\n".join(f"{r.at} {r.verb} {r.resource}/{r.subresource} {r.namespace}/{r.name} -> {r.code}"
                         for r in requests)

    assert stale() == [], "the deposed leader wrote after losing the Lease:\n" + listing(stale())
    # and it stood down once it saw the object gone, still without writing
    wait_for("the deposed leader to stand down", lambda: "released by the leader while standing by"
             in replicas[old].log_path.read_text(errors="replace"), timeout=60)
    assert stale() == [], "the deposed leader wrote after losing the Lease:\n" + listing(stale())


def test_a_holder_whose_clock_is_an_hour_behind_keeps_the_lease_while_it_renews(
        stack: Stack, cluster: Cluster, namespace: str) -> None:
    # given a Lease held by another replica whose wall clock is an hour behind: it renews every second,
    # but the renewTime it writes is an hour old
    coord = client.CoordinationV1Api(stack.api)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    stamp = behind.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coord.create_namespaced_lease(namespace, {"metadata": {"name": "tollgate-operator"}, "spec": {
        "holderIdentity": "skewed-holder", "leaseDurationSeconds": 6, "renewTime": stamp,
        "acquireTime": stamp, "leaseTransitions": 0}})
    op = OperatorProcess(str(cluster.kubeconfig), prometheus_url=stack.prometheus.url,
                         namespaces=[namespace], leader_election=True, lease_namespace=namespace,
                         env=dict(FAST_LEASE)).start()
    try:
        # when the operator tries for three lease durations while the holder keeps renewing
        for _ in range(18):
            lease = coord.read_namespaced_lease("tollgate-operator", namespace)
            assert lease.spec.holder_identity == "skewed-holder", "took a Lease whose holder is alive"
            lease.spec.renew_time = behind = behind + dt.timedelta(seconds=1)
            coord.replace_namespaced_lease("tollgate-operator", namespace, lease)
            time.sleep(1.0)
        # then it never took it; and once the holder stops renewing, it takes over
        wait_for("the operator to take the Lease",
                 lambda: coord.read_namespaced_lease("tollgate-operator", namespace).spec.holder_identity
                 != "skewed-holder", timeout=60)
        assert f"-{op.proc.pid}-" in coord.read_namespaced_lease(  # type: ignore[union-attr]
            "tollgate-operator", namespace).spec.holder_identity
    finally:
        op.stop()
