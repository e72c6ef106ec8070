"""kopf 1.45.2's namespace observer against the real API server, with the gap it loses namespaces in held open.

The observer lists namespaces, then starts a watch stream that begins with a LIST of its own; the watch goes on
from that LIST's resourceVersion, so a namespace created between the two lists is in that LIST and in no watch
event. These tests hold the stream's LIST (kopf's own `fetching.fetch_objs`, the only thing replaced) until the
test has created such a namespace, then let it run against the API server: no timing decides the outcome. The
observer is kopf's, in this process; the operator's processes install the same fix the same way
(`kopf_fixes.apply()` before `kopf.run`). The operator-level symptom (a sandbox never watched, its model Stalled
although Ready) needs a sandbox created inside that gap, which an operator process gives no hook to force."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from kopf._cogs.clients import auth, fetching, scanning
from kopf._cogs.configs import configuration
from kopf._cogs.structs import credentials, references
from kopf._core.intents import piggybacking
from kopf._core.reactor import observation

from integration.cluster import Cluster
from integration.fixtures import release_namespace
from tollgate.runtime import kopf_fixes

GUARD = 120.0
"""Seconds before a step that should happen is declared never to have happened (a hang, not a measurement)."""


async def observed(cluster: Cluster, patterns: list[str], late: str,
                   during_gap: Callable[[], None]) -> tuple[set[Any], str | None]:
    """Run kopf's namespace observer with `patterns`; call `during_gap` after its first listing and before its
    stream's LIST; return the namespaces it watches once the stream's processor has handled `late`'s event,
    and that event's type (None: seen only in the LIST)."""
    settings = configuration.OperatorSettings()
    info = piggybacking.login_with_kubeconfig(settings=settings)
    assert info is not None
    vault = credentials.Vault()
    await vault.populate({"kubeconfig": info})
    auth.vault_var.set(vault)
    insights = references.Insights()
    await insights.backbone.fill(resources=await scanning.scan_resources(
        groups={""}, settings=settings, logger=logging.getLogger("test")))

    gap_open, gap_closed, handled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[str | None] = []
    lists = 0
    real_fetch, processor = fetching.fetch_objs, observation.process_discovered_namespace_event

    async def fetch_objs(**kwargs: Any) -> AsyncIterator[Any]:
        nonlocal lists
        lists += 1
        if lists == 2:  # the stream's LIST: after the observer's first listing, held until the test says
            gap_open.set()
            await gap_closed.wait()
        async for item in real_fetch(**kwargs):
            yield item

    async def recorded(*, raw_event: Any, **kwargs: Any) -> None:
        await processor(raw_event=raw_event, **kwargs)
        if raw_event["object"]["metadata"]["name"] == late and not handled.is_set():
            seen.append(raw_event["type"])
            handled.set()

    fetching.fetch_objs = fetch_objs  # type: ignore[assignment]
    observation.process_discovered_namespace_event = recorded  # type: ignore[assignment]
    task = asyncio.create_task(observation.namespace_observer(
        clusterwide=False, namespaces=patterns, insights=insights, settings=settings))
    try:
        await asyncio.wait_for(gap_open.wait(), GUARD)
        await asyncio.to_thread(during_gap)
        gap_closed.set()
        await asyncio.wait_for(handled.wait(), GUARD)
        async with insights.revised:
            return set(insights.namespaces), seen[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await vault.close()  # kopf's HTTP sessions
        fetching.fetch_objs = real_fetch  # type: ignore[assignment]
        observation.process_discovered_namespace_event = processor  # type: ignore[assignment]


@pytest.fixture
def kopf_observer(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kopf's login reads KUBECONFIG; kopf's observer module is restored after the test whatever it installed."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setattr(observation, "process_discovered_namespace_event",
                        observation.process_discovered_namespace_event)
    yield


@pytest.fixture
def late(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The name of a namespace the test creates inside the gap; matches `<namespace>-*`."""
    name = f"{namespace}-late"
    yield name
    release_namespace(cluster.kubectl, name)


def test_kopf_alone_never_watches_a_namespace_created_between_its_two_lists(
        cluster: Cluster, namespace: str, late: str, kopf_observer: None) -> None:
    # given kopf 1.45.2's own observer watching <namespace> and <namespace>-* (as the chart's watchNamespaces)
    # when <namespace>-late is created after its first listing and before its stream's LIST
    watched, event = asyncio.run(observed(cluster, [namespace, f"{namespace}-*"], late,
                                          lambda: cluster.kubectl("create", "namespace", late)))
    # then the stream's LIST is the only place kopf sees it, and kopf drops it: the race the fix is for
    assert event is None
    assert namespace in watched and late not in watched, watched


def test_with_the_fix_a_namespace_created_between_the_two_lists_is_watched(
        cluster: Cluster, namespace: str, late: str, kopf_observer: None) -> None:
    # given the observer with tollgate's fix installed as the operator installs it
    kopf_fixes.apply()
    # when <namespace>-late is created after its first listing and before its stream's LIST
    watched, event = asyncio.run(observed(cluster, [namespace, f"{namespace}-*"], late,
                                          lambda: cluster.kubectl("create", "namespace", late)))
    # then kopf watches it although it was seen only in that LIST
    assert event is None
    assert {namespace, late} <= watched, watched


def test_with_the_fix_a_listed_namespace_being_deleted_is_not_watched(
        cluster: Cluster, namespace: str, late: str, kopf_observer: None) -> None:
    # given <namespace>-late being deleted, held in Terminating by a ConfigMap's finalizer (the namespace
    # controller reports NamespaceFinalizersRemaining), not yet watched by anyone
    cluster.kubectl("create", "namespace", late)
    held = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": late, "finalizers": ["tollgate.dev/test-hold"]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(held))
    cluster.kubectl("delete", "namespace", late, "--wait=false")
    cluster.kubectl("wait", "namespace", late, "--for=condition=NamespaceFinalizersRemaining",
                    f"--timeout={GUARD:g}s")
    try:
        # when the observer with the fix starts and its stream's LIST carries it
        kopf_fixes.apply()
        watched, event = asyncio.run(observed(cluster, [namespace, f"{namespace}-*"], late, lambda: None))
    finally:
        cluster.kubectl("patch", "configmap", "held", "-n", late, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}')
    # then it is not watched: the fix adds what kopf's own revision adds, and kopf skips a terminating namespace
    assert event is None
    assert namespace in watched and late not in watched, watched
