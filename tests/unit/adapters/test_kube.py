"""The Kubernetes adapter's contract at its HTTP seam: skip-unchanged applies and bounded retries.

A function-based double stands in for the API client's transport (as httpx tests do); the adapter's
behaviour against the real API server is proven in tests/integration/runtime.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollgate.adapters.errors import ConflictError, FencedError, PermanentError, TemporaryError
from tollgate.adapters.kube import ANNOTATION_HASH, Kube, manifest_hash
from tollgate.engine.actions import ObjectRef
from unit.adapters.http_double import FakeApi, Response

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


def test_learning_one_sandbox_lists_only_there_and_leaves_the_rest_read_first() -> None:
    # given a sandbox holding one of our ConfigMaps, applied as desired
    ours = {**CM, "metadata": {**CM["metadata"], "annotations": {ANNOTATION_HASH: manifest_hash(CM)}}}
    api = FakeApi(lambda m, u, b: Response(200, json.dumps({"items": [ours] if "/namespaces/ns/" in u else []})
                                           .encode() if m == "GET" else b"{}"))
    kube = Kube(api)  # type: ignore[arg-type]
    seen: list[tuple[str, str]] = []
    # when only that sandbox is learnt
    learnt = kube.warm([("v1", "ConfigMap"), ("v1", "Namespace")], "x",
                       lambda k, i: seen.append((k, i["metadata"]["name"])), namespace="ns")
    assert learnt == 1
    # then the namespaced kinds were listed in it and the Namespace by its name, nothing cluster-wide
    urls = sorted(u for _, u in api.calls)
    assert "/api/v1/namespaces/ns/configmaps?" in urls[0]
    assert "/api/v1/namespaces?" in urls[1] and "fieldSelector=metadata.name=ns" in urls[1]
    assert seen == [("ConfigMap", "a")]
    # and its unchanged object needs no request, while an object elsewhere is still read before it is applied
    api.calls.clear()
    assert kube.apply(CM) is False and api.calls == []
    elsewhere = {**CM, "metadata": {"name": "b", "namespace": "other"}}
    kube.apply(elsewhere)
    assert [m for m, _ in api.calls] == ["GET", "PATCH"]


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


def test_a_fenced_replica_sends_no_write_but_still_reads() -> None:
    # given an adapter whose replica has lost the leader Lease (renew deadline passed)
    api = FakeApi(lambda m, u, b: Response(200, b'{"items": []}' if m == "GET" else b"{}"))
    leading = [True]
    kube = Kube(api, fence=lambda: leading[0])  # type: ignore[arg-type]
    kube.warm([("v1", "ConfigMap")], "x")
    leading[0] = False
    api.calls.clear()
    # when it applies, deletes and writes status
    with pytest.raises(FencedError):
        kube.apply(CM)
    with pytest.raises(FencedError):
        kube.delete(ObjectRef("v1", "ConfigMap", "a", "ns"))
    with pytest.raises(FencedError):
        kube.patch_status("ns", "md", {"phase": "Stable"})
    with pytest.raises(FencedError):
        kube.create(CM)
    # then nothing was sent, and reads still work
    assert api.calls == []
    assert kube.get(ObjectRef("v1", "ConfigMap", "a", "ns")) is not None
    assert [m for m, _ in api.calls] == ["GET"]


def test_a_create_that_finds_the_name_taken_is_an_answer_not_a_retry_nor_a_takeover() -> None:
    # given a name somebody else's object already holds (the API server answers 409 AlreadyExists)
    api = FakeApi(lambda m, u, b: Response(409, b'{"reason": "AlreadyExists"}', "Conflict"))
    kube = Kube(api)  # type: ignore[arg-type]
    # when Tollgate creates its object under that name
    created = kube.create(CM)
    # then one POST was sent and answered "taken": no retry, no read, no apply over it
    assert created is None
    assert [m for m, _ in api.calls] == ["POST"]
    assert not kube.is_applied(CM)


def test_a_create_of_a_free_name_is_remembered_as_applied() -> None:
    api = FakeApi(lambda m, u, b: Response(201, json.dumps(CM).encode()))
    kube = Kube(api)  # type: ignore[arg-type]
    assert kube.create(CM) is not None
    assert [m for m, _ in api.calls] == ["POST"]
    assert kube.is_applied(CM) and kube.apply(CM) is False  # the next apply of the same manifest sends nothing


def test_a_hand_edit_right_after_a_create_is_drift_even_when_it_is_the_first_event_seen() -> None:
    # given a sandbox namespace Tollgate created (resourceVersion 5), whose watch lags behind
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "sb", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    api = FakeApi(lambda m, u, b: Response(201, json.dumps(
        {**ns, "metadata": {**ns["metadata"], "resourceVersion": "5"}}).encode()))
    kube = Kube(api)  # type: ignore[arg-type]
    assert kube.create(ns) is not None
    # when the first event that arrives is someone lifting Pod Security enforcement
    lifted = {**ns, "metadata": {"name": "sb", "resourceVersion": "6",
                                 "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    # then it is drift (not taken as the baseline), and the next apply writes the namespace again
    assert kube.observe(lifted, deleted=False) == "changed"
    assert not kube.is_applied(ns)
    # while the echo of the create itself is not drift
    kube2 = Kube(FakeApi(lambda m, u, b: Response(201, json.dumps(
        {**ns, "metadata": {**ns["metadata"], "resourceVersion": "5"}}).encode())))  # type: ignore[arg-type]
    kube2.create(ns)
    assert kube2.observe({**ns, "metadata": {**ns["metadata"], "resourceVersion": "5"}}, deleted=False) is None
    assert kube2.is_applied(ns)


def _live(rv: int, replicas: int = 1, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": str(rv), **meta},
            "spec": {"replicas": replicas}, "status": {"readyReplicas": rv}}


DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
       "spec": {"replicas": 1}}


def _applied_kube(rv: int = 10) -> tuple[Kube, FakeApi]:
    api = FakeApi(lambda m, u, b: Response(200, json.dumps(_live(rv)).encode() if m == "PATCH"
                                           else b'{"items": []}'))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([("apps/v1", "Deployment")], "x")
    assert kube.apply(DEP) is True
    return kube, api


def test_status_updates_and_the_echo_of_our_own_apply_are_not_drift() -> None:
    # given a Deployment we applied (resourceVersion 10)
    kube, api = _applied_kube()
    # when its own watch event, an older event and a controller's status update arrive
    assert kube.observe(_live(10), deleted=False) is None
    assert kube.observe(_live(9, replicas=3), deleted=False) is None
    assert kube.observe({**_live(11), "status": {"readyReplicas": 1}}, deleted=False) is None
    assert kube.observe(_live(12, annotations={"deployment.kubernetes.io/revision": "2"}), deleted=False) is None
    # then the cache still skips the next identical apply
    api.calls.clear()
    assert kube.apply(DEP) is False
    assert api.calls == []


def test_a_hand_edit_or_deletion_is_drift_and_the_next_apply_writes_again() -> None:
    # given a Deployment we applied
    kube, _ = _applied_kube()
    # when someone scales it by hand
    assert kube.observe(_live(11, replicas=0), deleted=False) == "changed"
    # then the next apply writes it again
    assert kube.apply(DEP) is True
    # and when someone deletes it
    assert kube.observe(_live(12), deleted=True) == "deleted"
    assert kube.apply(DEP) is True
    # but our own delete is not drift
    kube.delete(ObjectRef("apps/v1", "Deployment", "d", "ns"))
    assert kube.observe(_live(13), deleted=True) is None


def test_throttling_is_retried_no_sooner_than_the_servers_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    held: list[int] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        held.append(kube.throttle.inflight)

    monkeypatch.setattr("time.sleep", sleep)
    # given an API server that sheds load: 429 with Retry-After 3, twice, then accepts
    answers = iter([Response(429, b"{}", "Too Many Requests", {"Retry-After": "3"}),
                    Response(429, b"{}", "Too Many Requests", {"Retry-After": "3"}), Response(200, b"{}")])
    api = FakeApi(lambda m, u, b: next(answers))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([], "x")
    # when applying, then it waited at least what the server asked before each retry
    assert kube.apply(CM) is True
    assert len(api.calls) == 3
    assert len(slept) == 2 and all(s >= 3 for s in slept), slept
    # and it sends fewer requests at once while the server throttles: each 429 halved the window (its own
    # round each time, as every retry was sent after the previous halving), the answer regrew it a little
    assert kube.throttle.decreases == 2 and kube.throttle.window == 8
    # and the request kept its place in the window while it waited (so the window bounds 429s per second)
    assert held == [1, 1] and kube.throttle.inflight == 0


def test_a_conditional_status_write_that_conflicts_is_not_retried_but_reported() -> None:
    # given an object changed since it was read
    api = FakeApi(lambda m, u, b: Response(409, b"{}", "Conflict"))
    kube = Kube(api)  # type: ignore[arg-type]
    # when status is written conditioned on the old resourceVersion
    with pytest.raises(ConflictError):
        kube.patch_status("ns", "md", {"phase": "Stable"}, resource_version="41")
    # then it was sent once, with the precondition
    assert len(api.calls) == 1


MD = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
      "metadata": {"name": "md", "namespace": "ns", "uid": "u-1"}}


def test_an_event_posted_directly_names_the_object_and_a_refused_one_fails_no_decision() -> None:
    # given an API server that accepts the first Event and refuses the second
    bodies: list[Any] = []
    answers = iter([Response(201), Response(403, reason="Forbidden")])
    api = FakeApi(lambda m, u, b: (bodies.append(b), next(answers))[1])
    kube = Kube(api)  # type: ignore[arg-type]
    # when two Events are posted directly (a loop started outside kopf's context)
    kube.post_event(MD, "Normal", "Deployed", "m" * 2000)
    kube.post_event(MD, "Normal", "Deployed", "again")  # refused: logged, not raised
    # then each went to the object's namespace, about the object, with the message cut to 1,000 characters
    assert api.calls == [("POST", "/api/v1/namespaces/ns/events")] * 2
    sent = bodies[0]
    assert sent["involvedObject"] == {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
                                      "name": "md", "uid": "u-1", "namespace": "ns"}
    assert (sent["type"], sent["reason"], len(sent["message"])) == ("Normal", "Deployed", 1000)
AUTOSCALED = {"tollgate.dev/autoscaled": "true"}
SCALED_DEP = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "namespace": "ns", "annotations": AUTOSCALED}, "spec": {"paused": False}}


def _scaled_live(rv: int, replicas: int, managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": str(rv), "annotations": AUTOSCALED,
                         "managedFields": managed or []},
            "spec": {"paused": False, "replicas": replicas}}


def test_an_autoscaler_scaling_a_deployment_marked_autoscaled_is_not_drift_but_a_spec_edit_is() -> None:
    # given a Deployment applied without replicas, marked autoscaled (its live count is 2)
    api = FakeApi(lambda m, u, b: Response(200, json.dumps(_scaled_live(10, 2)).encode() if m != "GET" or "?" not in u
                                           else b'{"items": []}'))
    kube = Kube(api)  # type: ignore[arg-type]
    kube.warm([("apps/v1", "Deployment")], "x")
    assert kube.apply(SCALED_DEP) is True
    # when the HPA scales it to 18
    assert kube.observe(_scaled_live(11, 18), deleted=False) is None
    # then nothing is re-applied (no write to fight the HPA with)
    api.calls.clear()
    assert kube.apply(SCALED_DEP) is False and api.calls == []
    # but someone else pausing it is drift
    edited = _scaled_live(12, 18)
    edited["spec"]["paused"] = True
    assert kube.observe(edited, deleted=False) == "changed"


TOLLGATE_OWNS_REPLICAS = [{"manager": "tollgate", "operation": "Apply",
                           "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}}]


def test_turning_autoscaling_on_hands_the_replicas_over_before_the_apply_drops_them() -> None:
    # given a live Deployment whose replicas (6) Tollgate's applies own
    sent: list[tuple[str, str, Any]] = []

    def answer(method: str, url: str, body: Any) -> Response:
        sent.append((method, url, body))
        return Response(200, json.dumps(_scaled_live(10, 6, TOLLGATE_OWNS_REPLICAS)).encode())

    kube = Kube(FakeApi(answer))  # type: ignore[arg-type]
    # when it is applied without replicas, marked autoscaled
    assert kube.apply(SCALED_DEP) is True
    # then another field manager first applies the live count, then Tollgate's apply (without it) follows
    patches = [(u, json.loads(b) if isinstance(b, (str, bytes)) else b) for m, u, b in sent if m == "PATCH"]
    assert len(patches) == 2
    (handover_url, handover), (apply_url, applied) = patches
    assert "fieldManager=tollgate-replicas-handover" in handover_url and "force=false" in handover_url
    assert handover["spec"] == {"replicas": 6}
    assert "fieldManager=tollgate&" in apply_url and "replicas" not in applied["spec"]


def test_no_handover_when_tollgate_owns_no_replicas_there() -> None:
    sent: list[str] = []

    def answer(method: str, url: str, body: Any) -> Response:
        sent.append(url)
        return Response(200, json.dumps(_scaled_live(10, 6, [{"manager": "kube-controller-manager",
                                                               "operation": "Update",
                                                               "fieldsV1": {"f:spec": {"f:replicas": {}}}}])).encode())

    kube = Kube(FakeApi(answer))  # type: ignore[arg-type]
    assert kube.apply(SCALED_DEP) is True
    assert not [u for u in sent if "tollgate-replicas-handover" in u]


def test_a_list_is_read_a_page_at_a_time_and_only_what_is_kept_is_returned() -> None:
    # given three ModelDeployments served in two pages
    pages = {"": {"metadata": {"continue": "t2"},
                  "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]},
             "t2": {"metadata": {"continue": ""}, "items": [{"metadata": {"name": "c"}}]}}

    def answer(method: str, url: str, body: Any) -> Response:
        token = url.split("continue=", 1)[1] if "continue=" in url else ""
        return Response(200, json.dumps(pages[token]).encode())

    api = FakeApi(answer)
    kube = Kube(api)  # type: ignore[arg-type]
    # when they are listed keeping only some
    kept = kube.list_all("tollgate.dev/v1alpha1", "modeldeployments", "team",
                         keep=lambda o: o["metadata"]["name"] != "b")
    # then both pages were asked for, with a page size, the second by the first's token
    assert len(api.calls) == 2 and all("limit=500" in u for _, u in api.calls)
    assert "continue=t2" in api.calls[1][1]
    # and what was kept came from both pages
    assert [o["metadata"]["name"] for o in kept] == ["a", "c"]
