"""The Kubernetes adapter's contract at its HTTP seam: skip-unchanged applies and bounded retries.

A function-based double stands in for the API client's transport (as httpx tests do); the adapter's
behaviour against the real API server is proven in tests/integration/runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tollgate.adapters.errors import PermanentError, TemporaryError
from tollgate.adapters.kube import ANNOTATION_HASH, Kube, manifest_hash
from tollgate.engine.actions import ObjectRef


@dataclass
class Response:
    status: int
    data: bytes = b"{}"
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return {}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default


@dataclass
class FakeApi:
    """Records requests; `answer` decides each response."""

    answer: Callable[[str, str, Any], Response]
    calls: list[tuple[str, str]] = field(default_factory=list)

    def param_serialize(self, method: str, resource_path: str, query_params: list[tuple[str, str]],
                        header_params: dict[str, str], body: Any, auth_settings: list[str]) -> tuple[Any, ...]:
        url = resource_path + ("?" + "&".join(f"{k}={v}" for k, v in query_params) if query_params else "")
        return (method, url, header_params, body, None)

    def call_api(self, method: str, url: str, headers: Any, body: Any, post: Any,
                 _request_timeout: float | None = None) -> Response:
        self.calls.append((method, url))
        return self.answer(method, url, body)


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}


def test_hash_ignores_key_order_and_sees_content() -> None:
    reordered = {"data": {"k": "v"}, "metadata": {"namespace": "ns", "name": "a"}, "kind": "ConfigMap",
                 "apiVersion": "v1"}
    assert manifest_hash(CM) == manifest_hash(reordered)
    assert manifest_hash(CM) != manifest_hash({**CM, "data": {"k": "w"}})


def test_apply_of_an_unchanged_object_sends_no_write() -> None:
    # given an object whose live copy carries the hash of the desired manifest
    live = json.dumps({**CM, "metadata": {**CM["metadata"], "annotations": {ANNOTATION_HASH: manifest_hash(CM)}}})
    api = FakeApi(lambda m, u, b: Response(200, live.encode()))
    kube = Kube(api)  # type: ignore[arg-type]
    # when it is applied twice
    first = kube.apply(CM)
    second = kube.apply(CM)
    # then one GET learnt it was current and nothing was written
    assert (first, second) == (False, False)
    assert [m for m, _ in api.calls] == ["GET"]
    assert kube.counter.writes == 0


def test_apply_after_warm_up_needs_no_read_first() -> None:
    # given a warmed cache that does not know the object (so it does not exist)
    api = FakeApi(lambda m, u, b: Response(200, b'{"items": []}' if m == "GET" else b"{}"))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([("v1", "ConfigMap")], "app.kubernetes.io/managed-by=tollgate")
    api.calls.clear()
    # when it is applied
    assert kube.apply(CM) is True
    # then the apply is one server-side-apply PATCH with our field manager and hash annotation
    assert len(api.calls) == 1
    method, url = api.calls[0]
    assert method == "PATCH" and "fieldManager=tollgate" in url and "force=true" in url


def test_conflicts_and_server_errors_are_retried_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)  # tenacity's waits, not the behaviour under test
    # given an API server that answers 409 twice, then succeeds
    answers = iter([Response(409, b"{}", "Conflict"), Response(500, b"{}", "boom"), Response(200, b"{}")])
    api = FakeApi(lambda m, u, b: next(answers))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([], "x")
    # when applying, then it succeeds on the third attempt
    assert kube.apply(CM) is True
    assert len(api.calls) == 3
    # given an API server that always answers 503
    api2 = FakeApi(lambda m, u, b: Response(503, b"{}", "unavailable"))
    kube2 = Kube(api2)  # type: ignore[arg-type]
    kube2.warm([], "x")
    # then the error surfaces after exactly 5 attempts, not an endless loop, typed as temporary
    with pytest.raises(TemporaryError) as err:
        kube2.apply(CM)
    assert err.value.status == 503
    assert len(api2.calls) == 5


def test_client_errors_are_not_retried() -> None:
    api = FakeApi(lambda m, u, b: Response(422, b'{"message": "invalid"}', "Unprocessable"))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([], "x")
    with pytest.raises(PermanentError) as err:
        kube.apply(CM)
    assert err.value.status == 422 and "invalid" in str(err.value)
    assert len(api.calls) == 1


def test_delete_of_a_missing_object_is_not_an_error() -> None:
    api = FakeApi(lambda m, u, b: Response(404, b"{}", "Not Found"))
    kube = Kube(api)  # type: ignore[arg-type]
    assert kube.delete(ObjectRef("v1", "ConfigMap", "gone", "ns")) is False
    assert kube.counter.deletes == 0
