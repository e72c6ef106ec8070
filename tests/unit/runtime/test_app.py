"""The runtime's start-up learning (Runtime.learn_managed): every managed child listed a page at a time, each
page recorded before the next is fetched, and a failed listing leaving the adapter to read before it applies.

Why it matters: whole LISTs of 10,000 ModelDeployments' children held ~1 GB at once, and the allocator kept
it (bench/README.md, issue 22). The adapter's HTTP seam is a function double (unit.adapters.http_double);
the same start-up against the real API server is in tests/integration/runtime/test_operator.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tollgate.adapters.kube import ANNOTATION_HASH, manifest_hash
from tollgate.adapters.no_provider import NoProvider
from tollgate.runtime.app import Runtime
from tollgate.runtime.config import Settings
from unit.adapters.http_double import FakeApi, Response


def _deployment(name: str) -> dict[str, Any]:
    desired = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "sb"},
               "spec": {"replicas": 1}}
    live = json.loads(json.dumps(desired))
    live["metadata"].update(resourceVersion="7", annotations={ANNOTATION_HASH: manifest_hash(desired)})
    return live


def _desired(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "sb"},
            "spec": {"replicas": 1}}


def _runtime(api: FakeApi) -> Runtime:
    return Runtime(settings=Settings(leader_election=False), api=api, provider=NoProvider())  # type: ignore[arg-type]


def test_each_page_is_recorded_before_the_next_is_fetched_and_every_page_is_learnt() -> None:
    # given Deployments listed in two pages (the server's continue token between them), no other kind
    recorded: list[str] = []
    recorded_when_page_two_was_asked: list[list[str]] = []

    def answer(method: str, url: str, body: Any) -> Response:
        if method == "GET" and "/deployments?" in url:
            assert "limit=500" in url
            if "continue=page-2" in url:
                recorded_when_page_two_was_asked.append(list(recorded))
                return Response(200, json.dumps({"metadata": {"continue": ""}, "items": [_deployment("b")]}).encode())
            return Response(200, json.dumps({"metadata": {"continue": "page-2"}, "items": [_deployment("a")]}).encode())
        return Response(200, b'{"items": []}' if method == "GET" else b"{}")

    api = FakeApi(answer)
    rt = _runtime(api)
    seen = rt._seen
    rt._seen = lambda kind, item: (recorded.append(item["metadata"]["name"]), seen(kind, item))[1]  # type: ignore[method-assign]
    # when the start-up learns every managed object
    asyncio.run(rt.learn_managed())
    # then page one was recorded before page two was asked for, and both were recorded
    assert recorded_when_page_two_was_asked == [["a"]]
    assert recorded == ["a", "b"]
    # and the objects of both pages are known as applied: neither needs a request
    api.calls.clear()
    assert rt.kube.apply(_desired("a")) is False and rt.kube.apply(_desired("b")) is False
    assert api.calls == []
    # and one on no page is known to be absent: applied without a read first
    rt.kube.apply(_desired("c"))
    assert [m for m, _ in api.calls] == ["PATCH"]


def test_a_listing_that_fails_leaves_every_apply_to_read_first() -> None:
    # given an API server that lists nothing but refuses the Deployments' second page (its token expired)
    def answer(method: str, url: str, body: Any) -> Response:
        if method == "GET" and "/deployments?" in url:
            if "continue=" in url:
                return Response(410, b'{"message": "the provided continue parameter is too old"}', "Gone")
            return Response(200, json.dumps({"metadata": {"continue": "old"}, "items": [_deployment("a")]}).encode())
        return Response(200, b'{"items": []}' if method == "GET" else b"{}")

    api = FakeApi(answer)
    rt = _runtime(api)
    # when the start-up learns
    asyncio.run(rt.learn_managed())
    # then an object it did not see is not taken for absent: it is read before it is applied
    api.calls.clear()
    rt.kube.apply(_desired("c"))
    assert [m for m, _ in api.calls] == ["GET", "PATCH"]
