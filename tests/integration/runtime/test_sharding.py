"""Sharding on the real API server: two replicas with --shards 4 split the shard Leases, each writes only
for the ModelDeployments of the shards it holds, and a killed replica's shards (and their objects) move
to the other.

The two replicas run as two users (client certificates from the control plane's CA), so the audit log
says which process sent each request; which replica should have sent it comes from the shard Leases.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest

from integration.cluster import Cluster
from integration.runtime.helpers import apply, md_manifest, patch_spec, two_replicas, wait_phase
from tollgate.runtime.shard_plan import shard_of
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

SHARDS = 4
FAST_LEASE = {"TOLLGATE_LEASE_DURATION": "6", "TOLLGATE_LEASE_RENEW_DEADLINE": "4",
              "TOLLGATE_LEASE_RETRY_PERIOD": "1", "TOLLGATE_SHARDS": str(SHARDS)}


def _holders(stack: Stack, namespace: str) -> dict[int, str]:
    """Shard -> holder identity, from the shard Leases (missing: no holder)."""
    res = stack.kubectl("get", "leases", "-n", namespace, "-l", "tollgate.dev/lease-role=shard", "-o", "json")
    out: dict[int, str] = {}
    for lease in json.loads(res.stdout)["items"]:
        holder = lease["spec"].get("holderIdentity")
        if holder:
            out[int(lease["metadata"]["labels"]["tollgate.dev/shard"])] = holder
    return out


def _pid(identity: str) -> int:
    return int(identity.rsplit("-", 2)[1])


def _user_of(replicas: dict[str, OperatorProcess], identity: str) -> str:
    return next(u for u, op in replicas.items() if op.proc is not None and op.proc.pid == _pid(identity))


def _split(stack: Stack, namespace: str) -> dict[int, str] | None:
    """The holders once every shard is held and two replicas hold two each."""
    holders = _holders(stack, namespace)
    counts = sorted({h: list(holders.values()).count(h) for h in holders.values()}.values())
    return holders if len(holders) == SHARDS and counts == [2, 2] else None


@pytest.fixture
def replicas(stack: Stack, cluster: Cluster, namespace: str) -> Iterator[dict[str, OperatorProcess]]:
    """Two replicas with --shards 4 on Leases in the test namespace, as users op-a and op-b."""
    with two_replicas(stack, cluster.kubeconfig, namespace, FAST_LEASE) as ops:
        yield ops


def _status_writers(log: object, since: str, name: str) -> set[str]:
    return {r.user for r in audit.writes(audit.read(log, since))  # type: ignore[arg-type]
            if r.resource == "modeldeployments" and r.subresource == "status" and r.name == name}


def test_two_replicas_split_the_shards_and_each_writes_only_for_its_own(
        stack: Stack, namespace: str, replicas: dict[str, OperatorProcess]) -> None:
    # given two replicas that have shared the four shard Leases two and two
    holders = wait_for("the shards split two and two", lambda: _split(stack, namespace), timeout=90)
    started = audit.now_marker()
    # when ModelDeployments are created until both replicas own at least one (the UID decides the shard)
    owner: dict[str, str] = {}
    for i in range(16):
        name = f"sh{i}"
        apply(stack, namespace, md_manifest(name, "1.0.0"))
        uid = stack.md(namespace, name)["metadata"]["uid"]
        owner[name] = _user_of(replicas, holders[shard_of(uid, SHARDS)])
        if i >= 3 and len(set(owner.values())) == 2:
            break
    assert len(set(owner.values())) == 2, f"16 UIDs all hashed to one replica's shards: {owner}"
    # then every one is decided (Stable) ...
    for name in owner:
        wait_phase(stack, namespace, name, "Stable")
    # ... and every status write of each came from the replica holding its shard, never from the other
    log = audit_log(stack.kubeconfig)
    for name, user in owner.items():
        assert _status_writers(log, started, name) == {user}, name
    # and the split did not move meanwhile (no hand-over muddles the check above)
    assert _holders(stack, namespace) == holders


def test_a_killed_replicas_shards_and_objects_move_to_the_other(
        stack: Stack, namespace: str, replicas: dict[str, OperatorProcess]) -> None:
    # given the shards split, and a Stable ModelDeployment on each replica's shards
    holders = wait_for("the shards split two and two", lambda: _split(stack, namespace), timeout=90)
    owner: dict[str, str] = {}
    for i in range(16):
        name = f"mv{i}"
        apply(stack, namespace, md_manifest(name, "1.0.0"))
        owner[name] = _user_of(replicas, holders[shard_of(stack.md(namespace, name)["metadata"]["uid"], SHARDS)])
        if len(set(owner.values())) == 2:
            break
    for name in owner:
        wait_phase(stack, namespace, name, "Stable")
    victim = next(iter(set(owner.values())))
    survivor = next(u for u in replicas if u != victim)
    moved = next(n for n, u in owner.items() if u == victim)
    # when the replica holding one of them is killed (no release: its Leases must expire)
    killed = audit.now_marker()
    os.killpg(replicas[victim].proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
    survivor_pid = replicas[survivor].proc.pid  # type: ignore[union-attr]
    wait_for("the survivor to hold every shard", lambda: (h := _holders(stack, namespace)) and len(h) == SHARDS
             and {_pid(i) for i in h.values()} == {survivor_pid}, timeout=90)
    # and the object of the dead replica's shard is changed
    patch_spec(stack, namespace, moved, {"replicas": 3})
    # then the survivor decides it: the change is observed, with status written by the survivor only
    wait_for(f"{moved} decided after the change", lambda: (
        (md := stack.md(namespace, moved))["status"].get("observedGeneration") == md["metadata"]["generation"]),
        timeout=90)
    # (the audit log is written in batches up to 1 s late: wait for the write that was just observed)
    log = audit_log(stack.kubeconfig)
    writers = wait_for("the status write in the audit log", lambda: _status_writers(log, killed, moved), timeout=15)
    assert writers == {survivor}
