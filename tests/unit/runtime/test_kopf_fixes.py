"""runtime.kopf_fixes: with namespace patterns, a sandbox created while kopf re-lists namespaces is watched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kopf._cogs.structs import references

from tollgate.runtime import kopf_fixes

PATTERNS = ["ml-team", "ml-team-*"]


def listed(name: str) -> dict[str, Any]:
    """An event of the namespace stream's own LIST (kopf gives those type None)."""
    return {"type": None, "object": {"metadata": {"name": name}}}


def handled(processor: Any, *events: dict[str, Any]) -> set[Any]:
    """The namespaces kopf watches after its first listing (ml-team) and these events of the stream."""
    insights = references.Insights()
    insights.namespaces.add("ml-team")

    async def feed() -> None:
        for event in events:
            await processor(raw_event=event, namespaces=PATTERNS, insights=insights)

    asyncio.run(feed())
    return set(insights.namespaces)


def test_a_sandbox_seen_only_in_the_streams_list_is_watched() -> None:
    # given a sandbox created after kopf's first listing, seen only in its namespace stream's LIST
    # when that LIST reaches the namespace observer
    got = handled(kopf_fixes.process_namespace_event, listed("ml-team-scorer"), listed("other-team"))
    # then kopf watches the sandbox (it matches a pattern), and nothing outside the patterns
    assert got == {"ml-team", "ml-team-scorer"}


def test_a_list_of_watched_namespaces_wakes_nobody() -> None:
    # given kopf watching ml-team, when its stream's LIST carries ml-team and a namespace outside the patterns
    insights = references.Insights()
    insights.namespaces.add("ml-team")
    woken: list[bool] = []

    async def feed() -> None:
        async def waiter() -> None:
            async with insights.revised:
                woken.append(await asyncio.wait_for(insights.revised.wait(), 0.2))

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        for event in (listed("ml-team"), listed("other-team")):
            await kopf_fixes.process_namespace_event(raw_event=event, namespaces=PATTERNS, insights=insights)
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(feed())
    # then kopf's orchestrator is not woken (a LIST of hundreds of namespaces would wake it hundreds of times)
    assert woken == [] and set(insights.namespaces) == {"ml-team"}


def terminating(name: str, blocked: bool) -> dict[str, Any]:
    """A LIST event of a namespace being deleted; `blocked`: the namespace controller reports content or
    finalizers remaining (a condition True), else its conditions are all False (nothing left to remove)."""
    status = "True" if blocked else "False"
    return {"type": None, "object": {
        "metadata": {"name": name, "deletionTimestamp": "2026-12-03T12:00:00Z"},
        "status": {"phase": "Terminating", "conditions": [
            {"type": "NamespaceFinalizersRemaining", "status": status, "reason": "SomeFinalizersRemain"}]}}}


def test_a_listed_namespace_being_deleted_is_not_watched() -> None:
    # given a sandbox seen only in the stream's LIST while it is being deleted, with content left or without
    # then kopf does not start watching it (kopf's own revision skips a terminating namespace)
    assert handled(kopf_fixes.process_namespace_event, terminating("ml-team-old", blocked=True)) == {"ml-team"}
    assert handled(kopf_fixes.process_namespace_event, terminating("ml-team-old", blocked=False)) == {"ml-team"}


def test_a_list_only_adds_a_watched_namespace_being_deleted_is_left_to_its_watch_events() -> None:
    # given kopf watching ml-team, when the stream's LIST shows it terminating with nothing left to remove
    # then it stays watched, as kopf alone leaves it: only its watch events (MODIFIED, DELETED) drop it
    assert handled(kopf_fixes.process_namespace_event, terminating("ml-team", blocked=False)) == {"ml-team"}
    deleted = {"type": "DELETED", "object": terminating("ml-team", blocked=False)["object"]}
    assert handled(kopf_fixes.process_namespace_event, deleted) == set()


def test_kopfs_own_handler_drops_it_the_race_this_fixes() -> None:
    assert handled(kopf_fixes._drops_listed, listed("ml-team-scorer")) == {"ml-team"}


def test_watch_events_are_handled_as_kopf_does() -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "ml-team-new"}}}
    deleted = {"type": "DELETED", "object": {"metadata": {"name": "ml-team-new"}}}
    assert handled(kopf_fixes.process_namespace_event, added) == {"ml-team", "ml-team-new"}
    assert handled(kopf_fixes.process_namespace_event, added, deleted) == {"ml-team"}


def test_another_kopf_version_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf_fixes.importlib.metadata, "version", lambda _: "1.46.0")
    with pytest.raises(RuntimeError, match=r"kopf 1\.46\.0"):
        kopf_fixes.apply()


def test_kopfs_watch_stream_parses_with_the_operators_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    # given kopf's API module as it ships (its stream parses each line with the module global `json`)
    import json

    from kopf._cogs.clients import api
    from kopf._core.reactor import observation

    monkeypatch.setattr(api, "json", api.json)  # restored after the test, like the processor below
    monkeypatch.setattr(observation, "process_discovered_namespace_event",
                        observation.process_discovered_namespace_event)
    line = '{"type": "ADDED", "object": {"metadata": {"name": "m", "resourceVersion": "7"}, "n": 1.5}}'
    # when the fixes are applied
    kopf_fixes.apply()
    # then the stream's parser is the codec (orjson): the same event, and json's error for a cut line
    assert api.json.loads.__module__ == "tollgate.adapters.json_codec"
    assert api.json.loads(line) == json.loads(line)
    with pytest.raises(json.JSONDecodeError):
        api.json.loads(line[:-5])


async def stream_of(*items: Any) -> Any:
    """A watch stream as kopf's infinite_watch yields it: kopf's own bookmarks and raw events."""
    for item in items:
        yield item


def pod(name: str, type_: str | None) -> dict[str, Any]:
    return {"type": type_, "object": {"kind": "Pod", "metadata": {"namespace": "sb", "name": name}}}


def test_a_direct_route_gets_every_object_event_in_order_and_no_bookmark() -> None:
    from kopf._cogs.clients import watching

    # given kopf's stream of a routed kind: its listing, kopf's LISTED mark, a server BOOKMARK, watch events
    got: list[tuple[str | None, str]] = []
    bookmark = {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"name": "", "resourceVersion": "9"}}}
    events = [pod("a", None), watching.Bookmark.LISTED, bookmark,
              pod("a", "MODIFIED"), pod("b", "ADDED"), pod("a", "DELETED")]
    # when the fixes' watcher delivers it
    asyncio.run(kopf_fixes.deliver(stream_of(*events), lambda e: got.append(
        (e["type"], e["object"]["metadata"]["name"])), "pods"))
    # then the route saw each object event once, in the stream's order, and neither bookmark
    assert got == [(None, "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_a_route_that_raises_is_logged_and_the_stream_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    # given a route that fails on one object's event
    got: list[str] = []

    def route(event: dict[str, Any]) -> None:
        if event["object"]["metadata"]["name"] == "bad":
            raise KeyError("status")
        got.append(event["object"]["metadata"]["name"])

    # when the stream carries it between two others
    with caplog.at_level("ERROR", logger="tollgate.kopf_fixes"):
        asyncio.run(kopf_fixes.deliver(stream_of(pod("a", "ADDED"), pod("bad", "ADDED"), pod("c", "ADDED")),
                                       route, "pods"))
    # then the events after it are still delivered, and the failure names the object
    assert got == ["a", "c"]
    assert [r.__dict__.get("object") for r in caplog.records] == ["sb/bad"]


def test_only_routed_unindexed_kinds_leave_kopfs_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf._cogs.clients import watching

    # given kopf's watcher replaced by a recorder, and a route for pods only
    to_kopf: list[str] = []
    routed: list[str] = []

    async def kopf_watcher(**kwargs: Any) -> None:
        to_kopf.append(kwargs["resource"].plural)

    def infinite_watch(**kwargs: Any) -> Any:
        return stream_of(pod("p", None))

    monkeypatch.setattr(kopf_fixes, "_kopf_watcher", kopf_watcher)
    monkeypatch.setattr(watching, "infinite_watch", infinite_watch)
    monkeypatch.setattr(kopf_fixes, "_direct", {("", "pods"): lambda e: routed.append(e["object"]["kind"])})
    pods = references.Resource("", "v1", "pods", namespaced=True)
    mds = references.Resource("tollgate.dev", "v1alpha1", "modeldeployments", namespaced=True)

    async def run(resource: references.Resource, indexed: Any = None) -> None:
        await kopf_fixes.watcher(namespace=None, settings=None, resource=resource, processor=None,
                                 resource_indexed=indexed)

    # when kopf's orchestrator starts a watcher for each
    asyncio.run(run(pods))
    asyncio.run(run(mds))
    asyncio.run(run(pods, indexed=object()))
    # then pods go to the route; ModelDeployments, and a kind kopf indexes, stay with kopf's watcher
    assert routed == ["Pod"]
    assert to_kopf == ["modeldeployments", "pods"]


def test_apply_puts_the_watcher_where_kopfs_orchestrator_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf._cogs.clients import api
    from kopf._core.reactor import observation, queueing

    for module, name in ((api, "json"), (observation, "process_discovered_namespace_event"),
                         (queueing, "watcher")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    monkeypatch.setattr(kopf_fixes, "_direct", {})
    kopf_fixes.apply(direct={("", "pods"): print})
    assert queueing.watcher is kopf_fixes.watcher
    assert kopf_fixes._direct == {("", "pods"): print}
