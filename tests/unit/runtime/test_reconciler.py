"""The reconciler over the real Kubernetes adapter at its HTTP seam (tests/unit/adapters/http_double): which
of a decision's requests go ahead of the throttle's queue (adapters.throttle.URGENT), and that a decision's
Events follow its status write (a write that conflicts posts none).

The kill switch here runs on the replicas router: a first decision starts the fallback's Deployment (no
traffic moves: nothing urgent), and once the fallback is Ready the next decision moves all traffic to it
(intent first, then the Service: every request urgent). The real API server's side of the kill switch is
proven in e2e/test_operations.py, tests/integration/runtime/test_operator.py and on the real node
(e2e/test_real_node.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from tollgate.adapters.errors import PermanentError
from tollgate.adapters.evidence import EvidenceStore
from tollgate.adapters.kube import Kube
from tollgate.adapters.no_provider import NoProvider
from tollgate.adapters.throttle import URGENT
from tollgate.api import resource
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.actions import Decision, DeleteObjects, ObjectRef
from tollgate.engine.observations import RouteObservation
from tollgate.engine.platform import PlatformLimits
from tollgate.engine.sandbox import legacy_cut_namespace
from tollgate.runtime.analysis import AnalysisScheduler
from tollgate.runtime.ownership import SandboxOwnership
from tollgate.runtime.reconciler import Reconciler
from tollgate.runtime.registry import ObjectState, Registry, TrackObservation
from unit.adapters.http_double import FakeApi, Response

SANDBOX = "ns-m-b16092"  # the default sandbox name of ns/m
STATUS_PATH = "/apis/tollgate.dev/v1alpha1/namespaces/ns/modeldeployments/m/status"
FALLBACK_PATH = f"/apis/apps/v1/namespaces/{SANDBOX}/deployments/m-fallback"


class Server:
    """Answers like an empty API server that accepts every write (echoing it); records each request with
    whether it was sent as urgent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []
        self.bodies: dict[str, Any] = {}

    def __call__(self, method: str, url: str, body: Any) -> Response:
        path = url.split("?", maxsplit=1)[0]
        self.sent.append((method, path, URGENT.get()))
        if method == "GET":
            return Response(404)
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(
            body or {}).encode()
        self.bodies[path] = json.loads(data)
        return Response(201 if method == "POST" else 200, data)


def killed() -> dict[str, Any]:
    """A Stable ModelDeployment whose kill switch was just turned on, with a pinned fallback."""
    return {
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": "ns", "uid": "u1", "generation": 2, "resourceVersion": "5"},
        "spec": {"model": {"name": "m", "version": "1.0.0", "uri": "s3://models/m/1.0.0"},
                 "runtime": {"image": "registry.example/model-server:1.0"}, "replicas": 2,
                 "killSwitch": True, "fallback": {"version": "0.9.0"}},
        "status": {"observedGeneration": 1, "phase": "Stable", "sandboxNamespace": SANDBOX}}


class Conflicting(Server):
    """As Server, but the status write is refused as stale (409) while `conflict` is set."""

    conflict = True

    def __call__(self, method: str, url: str, body: Any) -> Response:
        if method == "PATCH" and url.split("?", maxsplit=1)[0] == STATUS_PATH and self.conflict:
            self.sent.append((method, STATUS_PATH, URGENT.get()))
            return Response(409, b'{"kind": "Status", "reason": "Conflict", "code": 409}')
        return super().__call__(method, url, body)


def test_the_events_of_a_decision_whose_status_write_conflicts_are_not_posted() -> None:
    server = Conflicting()
    kube = Kube(FakeApi(server))  # type: ignore[arg-type]
    kube.warm([], "x")
    registry = Registry()
    posted: list[str] = []
    rec = Reconciler(kube, registry, AnalysisScheduler(NoProvider()), EvidenceStore(kube),
                     lambda _body, _type, reason, _message: posted.append(reason), SandboxOwnership(kube))
    st = registry.state("ns", "m")
    st.body = killed()
    st.sandbox_ready = True
    # given the kill switch's first decision (start the fallback, tell the user), whose status write
    # meets a newer object
    asyncio.run(rec.reconcile(st))
    assert ("PATCH", STATUS_PATH, False) in server.sent and ("PATCH", FALLBACK_PATH, False) in server.sent
    # then its Event is not posted: the decision is made again on the newer object
    assert posted == []
    # when it is decided again and the write goes through, the Event is posted once
    server.conflict = False
    st.body = killed()
    asyncio.run(rec.reconcile(st))
    assert server.bodies[STATUS_PATH]["status"]["phase"] == "Fallback"
    assert posted.count("KillSwitchOn") == 1, posted


def test_a_kill_switch_moves_traffic_with_urgent_requests_and_only_then() -> None:
    server = Server()
    kube = Kube(FakeApi(server))  # type: ignore[arg-type]
    kube.warm([], "x")
    registry = Registry()
    rec = Reconciler(kube, registry, AnalysisScheduler(NoProvider()), EvidenceStore(kube),
                     lambda *_: None, SandboxOwnership(kube))
    # given a Stable ModelDeployment whose kill switch was just turned on, with a pinned fallback
    body = killed()
    st = registry.state("ns", "m")
    st.body = body
    st.sandbox_ready = True
    # when it decides first, then it starts the fallback, and no request went ahead of the queue
    asyncio.run(rec.reconcile(st))
    assert (("PATCH", FALLBACK_PATH, False)) in server.sent
    assert not any(urgent for *_, urgent in server.sent), server.sent
    # when the fallback is Ready and it decides again
    revision = server.bodies[FALLBACK_PATH]["metadata"]["labels"]["tollgate.dev/revision"]
    registry.tracks[(SANDBOX, "m-fallback")] = TrackObservation(revision=revision, desired=2, ready=2, updated=2)
    body["status"] = server.bodies[STATUS_PATH]["status"]
    st.body = body
    server.sent.clear()
    asyncio.run(rec.reconcile(st))
    # then traffic moved (status first, then the Service), every request of it urgent
    assert server.sent[0] == ("PATCH", STATUS_PATH, True)
    assert ("PATCH", f"/api/v1/namespaces/{SANDBOX}/services/m", True) in server.sent
    assert all(urgent for *_, urgent in server.sent), server.sent
    assert server.bodies[STATUS_PATH]["status"]["killSwitchActive"] is True


def test_a_sandbox_an_older_release_cut_with_6_hex_and_did_not_record_is_used_not_doubled() -> None:
    server = Server()
    kube = Kube(FakeApi(server))  # type: ignore[arg-type]
    kube.warm([], "x")
    registry = Registry()
    ownership = SandboxOwnership(kube)
    rec = Reconciler(kube, registry, AnalysisScheduler(NoProvider()), EvidenceStore(kube),
                     lambda *_: None, ownership)
    # given a ModelDeployment whose default sandbox name must be cut, with no status, and the 6-hex sandbox
    # an older release created for it (its UID on it, seen in the start-up LIST)
    ns, name = "team-" + "b" * 40, "a" * 30
    legacy = legacy_cut_namespace(ns, name)
    assert legacy is not None
    ownership.learn({"metadata": {"name": legacy, "labels": {"tollgate.dev/owner-uid": "u1"}}})
    st = registry.state(ns, name)
    st.body = {
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns, "uid": "u1", "generation": 1, "resourceVersion": "5"},
        "spec": {"model": {"name": "m", "version": "1.0.0", "uri": "s3://models/m/1.0.0"},
                 "runtime": {"image": "registry.example/model-server:1.0"}, "replicas": 2}}
    # when it decides
    asyncio.run(rec.reconcile(st))
    # then every object goes into that sandbox, status records it, and no second sandbox is written
    written = {m.group(1) for method, path, _ in server.sent
               if method in ("PATCH", "POST") and (m := re.search(r"/namespaces/([^/]+)/", path))}
    assert written == {legacy, ns}, written
    assert server.bodies[f"/apis/tollgate.dev/v1alpha1/namespaces/{ns}/modeldeployments/{name}/status"][
        "status"]["sandboxNamespace"] == legacy


class Holding(Server):
    """As Server, with the replicas router's Service and the stable Deployment there to be patched."""

    present = (f"/api/v1/namespaces/{SANDBOX}/services/m", f"/apis/apps/v1/namespaces/{SANDBOX}/deployments/m-stable",
               f"/apis/apps/v1/namespaces/{SANDBOX}/deployments/m-canary")

    def __call__(self, method: str, url: str, body: Any) -> Response:
        path = url.split("?", maxsplit=1)[0]
        if method == "GET" and path in self.present:
            self.sent.append((method, path, URGENT.get()))
            return Response(200, json.dumps({"metadata": {"name": path.rsplit("/", 1)[-1]}}).encode())
        return super().__call__(method, url, body)


def over_the_limit_mid_canary() -> dict[str, Any]:
    """A canary with 25% of traffic on the replicas router (1 of 4 pods), whose spec now asks for 40 replicas."""
    body = killed()
    body["spec"] = {**body["spec"], "replicas": 40, "killSwitch": False}
    body["spec"].pop("fallback")
    body["status"] = {
        "observedGeneration": 1, "phase": "Progressing", "sandboxNamespace": SANDBOX,
        "stable": {"revision": "r1", "version": "1.0.0"}, "canary": {"revision": "r2", "version": "2.0.0"},
        "lastKnownGood": {"revision": "r1", "version": "1.0.0"}, "canaryWeight": 25, "planHash": "p1",
        "stepCount": 2, "steps": [{"weight": 25, "plannedShare": 25.0, "canaryPods": 1, "stablePods": 3},
                                  {"weight": 100, "plannedShare": 100.0, "canaryPods": 4, "stablePods": 0}]}
    return body


def reconciler_over(server: Server, *, owner: str | None = "u1", post: Any = lambda *_: None,
                    limits: PlatformLimits | None = None) -> tuple[Reconciler, Registry]:
    """A reconciler over `server` whose sandbox carries `owner`'s owner label (as the namespace watch saw it;
    None: no sandbox seen)."""
    kube = Kube(FakeApi(server))  # type: ignore[arg-type]
    kube.warm([], "x")
    registry = Registry()
    ownership = SandboxOwnership(kube)
    if owner is not None:
        ownership.learn({"metadata": {"name": SANDBOX, "labels": {"tollgate.dev/owner-uid": owner}}})
    rec = Reconciler(kube, registry, AnalysisScheduler(NoProvider()), EvidenceStore(kube), post, ownership,
                     limits=limits or PlatformLimits())
    return rec, registry


def splitting(registry: Registry, stable_pods: int) -> None:
    """The Service seen selecting both tracks, the stable Deployment with `stable_pods` Ready."""
    registry.observe_routing({"kind": "Service", "metadata": {"namespace": SANDBOX, "name": "m"},
                              "spec": {"selector": {"tollgate.dev/pool": "m"}}}, deleted=False)
    registry.tracks[(SANDBOX, "m-stable")] = TrackObservation(revision="r1", desired=stable_pods, ready=stable_pods,
                                                              updated=stable_pods)


def test_a_spec_over_the_platforms_limits_mid_canary_grows_stable_back_then_takes_the_canary_off_intent_first() -> None:
    server = Holding()
    posted: list[tuple[str, str]] = []
    rec, registry = reconciler_over(server, post=lambda _body, _type, reason, message: posted.append((reason, message)),
                                    limits=PlatformLimits(max_replicas=8))
    # given a canary with 25% of traffic, the Service seen selecting both tracks, whose spec goes over the
    # platform's limit of 8 replicas
    splitting(registry, stable_pods=3)
    registry.tracks[(SANDBOX, "m-canary")] = TrackObservation(revision="r2", desired=1, ready=1, updated=1)
    st = registry.state("ns", "m")
    st.body = over_the_limit_mid_canary()
    # when it decides
    asyncio.run(rec.reconcile(st))
    # then status is written first (Stalled, the canary held, still at 25%), then stable alone is scaled back to
    # the step's 4 pods, every request of it urgent; the Service and the canary are not touched yet
    scale = f"/apis/apps/v1/namespaces/{SANDBOX}/deployments/m-stable/scale"
    service = f"/api/v1/namespaces/{SANDBOX}/services/m"
    writes = [(m, p) for m, p, _ in server.sent if m != "GET"]
    assert writes == [("PATCH", STATUS_PATH), ("PATCH", scale)], server.sent
    assert all(urgent for *_, urgent in server.sent), server.sent
    assert server.bodies[scale] == {"spec": {"replicas": 4}}
    status = server.bodies[STATUS_PATH]["status"]
    assert status["phase"] == "Stalled" and status["canaryWeight"] == 25 and status.get("planHash") is None
    assert "canary 2.0.0 (r2) held" in status["message"] and "spec.replicas 40" in status["message"]
    # and one Warning Event says so
    assert [reason for reason, _ in posted] == ["OverPlatformLimit"] and "held" in posted[0][1]
    # when the 4 stable pods are Ready and it decides again
    registry.tracks[(SANDBOX, "m-stable")] = TrackObservation(revision="r1", desired=4, ready=4, updated=4)
    body = over_the_limit_mid_canary()
    body["status"] = status
    st.body = body
    server.sent.clear()
    asyncio.run(rec.reconcile(st))
    # then status says weight 0 first, then one more Event says so, then the Service selects stable only
    writes = [(m, p) for m, p, _ in server.sent if m != "GET"]
    assert writes == [("PATCH", STATUS_PATH), ("PATCH", service)], server.sent
    assert all(urgent for *_, urgent in server.sent), server.sent
    status = server.bodies[STATUS_PATH]["status"]
    assert status["canaryWeight"] == 0 and status.get("planHash") is None
    assert server.bodies[service] == {"spec": {"selector": {"tollgate.dev/pool": None, "tollgate.dev/track": "stable"}}}
    assert len(posted) == 2 and "held at weight 0" in posted[1][1]
    # when it is looked at again, the Service seen on stable: nothing is written, nothing posted
    registry.observe_routing({"kind": "Service", "metadata": {"namespace": SANDBOX, "name": "m"},
                              "spec": {"selector": {"tollgate.dev/track": "stable"}}}, deleted=False)
    body = over_the_limit_mid_canary()
    body["status"] = status
    st.body = body
    server.sent.clear()
    asyncio.run(rec.reconcile(st))
    assert server.sent == [] and len(posted) == 2


def test_a_refusal_never_writes_into_a_sandbox_whose_owner_label_is_not_this_modeldeployments() -> None:
    server = Holding()
    # given the namespace status names now carries another ModelDeployment's owner label (deleted and re-made
    # for another tenant), with a Service and Deployments of the same names seen splitting traffic
    rec, registry = reconciler_over(server, owner="someone-else", limits=PlatformLimits(max_replicas=8))
    splitting(registry, stable_pods=4)
    st = registry.state("ns", "m")
    st.body = over_the_limit_mid_canary()
    # when its over-the-limit spec is refused
    asyncio.run(rec.reconcile(st))
    # then only its own status is written: nothing in that namespace, and status claims no hold
    assert [p for _, p, _ in server.sent] == [STATUS_PATH], server.sent
    status = server.bodies[STATUS_PATH]["status"]
    assert status["canaryWeight"] == 25 and status["planHash"] == "p1" and "held" not in status["message"]


def raising_mid_canary(registry: Registry, monkeypatch: Any) -> ObjectState:
    """A canary with 25% of traffic (stable's 4 pods Ready, the Service selecting both tracks) whose decision
    raises, as an operator bug would."""
    splitting(registry, stable_pods=4)
    st = registry.state("ns", "m")
    st.body = over_the_limit_mid_canary()
    st.body["spec"]["replicas"] = 4

    def broken(*_: Any) -> Any:
        raise IndexError("list index out of range")

    monkeypatch.setattr("tollgate.runtime.reconciler.Case.decide", broken)
    return st


def test_a_decision_that_raises_mid_canary_holds_the_canary_as_a_refusal_does(monkeypatch: Any) -> None:
    server = Holding()
    posted: list[str] = []
    rec, registry = reconciler_over(server, post=lambda _body, _type, reason, _message: posted.append(reason))
    # given a canary with 25% of traffic, stable's pods Ready, the Service seen selecting both tracks
    # when its decision raises (an operator bug)
    asyncio.run(rec.reconcile(raising_mid_canary(registry, monkeypatch)))
    # then it is Stalled with the error, a Warning Event says so, and the canary is taken off traffic
    status = server.bodies[STATUS_PATH]["status"]
    assert status["phase"] == "Stalled" and "internal error while deciding: IndexError" in status["message"]
    assert status["canaryWeight"] == 0 and "held at weight 0" in status["message"] and posted == ["DecisionFailed"]
    assert server.bodies[f"/api/v1/namespaces/{SANDBOX}/services/m"] == {
        "spec": {"selector": {"tollgate.dev/pool": None, "tollgate.dev/track": "stable"}}}


class RouterRefusing(Holding):
    """As Holding, but the API server refuses the Service's patch (403)."""

    def __call__(self, method: str, url: str, body: Any) -> Response:
        if method == "PATCH" and url.split("?", maxsplit=1)[0] == f"/api/v1/namespaces/{SANDBOX}/services/m":
            self.sent.append((method, url.split("?", maxsplit=1)[0], URGENT.get()))
            return Response(403, b'{"kind": "Status", "reason": "Forbidden", "code": 403}')
        return super().__call__(method, url, body)


def test_a_failed_decisions_hold_whose_router_request_fails_goes_to_the_loops_backoff(monkeypatch: Any) -> None:
    server = RouterRefusing()
    rec, registry = reconciler_over(server)
    # given a decision that raises mid-canary, and an API server that refuses the Service's patch
    st = raising_mid_canary(registry, monkeypatch)
    # when it is decided, then the router's error reaches the loop (its backoff retries), not a fallback
    # that would write the plain Stalled status over the hold and stop looking
    with pytest.raises(PermanentError):
        asyncio.run(rec.reconcile(st))
    writes = [p for m, p, _ in server.sent if m == "PATCH"]
    assert writes == [STATUS_PATH, f"/api/v1/namespaces/{SANDBOX}/services/m"], server.sent
    assert "held at weight 0" in server.bodies[STATUS_PATH]["status"]["message"]


class Gone(Server):
    """As Server, but every DELETE finds nothing (404)."""

    def __call__(self, method: str, url: str, body: Any) -> Response:
        if method == "DELETE":
            self.sent.append((method, url.split("?", maxsplit=1)[0], URGENT.get()))
            return Response(404, b'{"kind": "Status", "reason": "NotFound", "code": 404}')
        return super().__call__(method, url, body)


def test_a_route_a_delete_finds_gone_is_forgotten_so_it_is_not_deleted_at_every_decision() -> None:
    server = Gone()
    rec, registry = reconciler_over(server)
    # given a replicas-router model whose HTTPRoute of an earlier gatewayAPI spec is still in the registry, but
    # already gone from the API server (its DELETED event missed)
    labels = {resource.LABEL_MD_NAMESPACE: "ns", resource.LABEL_MD_NAME: "m"}
    route = {"kind": "HTTPRoute", "metadata": {"namespace": SANDBOX, "name": "m", "labels": labels}}
    st = registry.state("ns", "m")
    registry.observe_route(route, RouteObservation(parents=()))
    assert registry.route(SANDBOX, "m") is not None
    st.body = killed()
    st.body["spec"] = {**st.body["spec"], "killSwitch": False}
    # when it decides, then the route's DELETE finds nothing, and the registry no longer holds it
    asyncio.run(rec.reconcile(st))
    assert ("DELETE", f"/apis/gateway.networking.k8s.io/v1/namespaces/{SANDBOX}/httproutes/m", False) in server.sent
    assert registry.route(SANDBOX, "m") is None


def new_md() -> dict[str, Any]:
    """A ModelDeployment just created: no status, its default sandbox (SANDBOX) not yet made."""
    body = killed()
    body["spec"] = {k: v for k, v in body["spec"].items() if k not in ("killSwitch", "fallback")}
    body.pop("status")
    return body


def test_a_new_modeldeployment_claims_its_default_sandbox_by_create_before_any_other_write_and_reads_nothing() -> None:
    server = Server()
    rec, registry = reconciler_over(server, owner=None)
    st = registry.state("ns", "m")
    st.body = new_md()
    # when a new ModelDeployment decides first
    asyncio.run(rec.reconcile(st))
    # then its sandbox is never read: the first request is the create of the Namespace, ahead of every
    # object written into it, and its status names it
    assert [m for m, *_ in server.sent if m == "GET"] == [], server.sent
    assert server.sent[0][:2] == ("POST", "/api/v1/namespaces"), server.sent
    assert any(f"/namespaces/{SANDBOX}/" in p for _, p, _ in server.sent[1:]), server.sent
    assert server.bodies[STATUS_PATH]["status"]["sandboxNamespace"] == SANDBOX


class Squatted(Server):
    """As Server, with SANDBOX already made by somebody else (no owner label): its create is refused (409)."""

    def __call__(self, method: str, url: str, body: Any) -> Response:
        path = url.split("?", maxsplit=1)[0]
        if method == "POST" and path == "/api/v1/namespaces":
            self.sent.append((method, path, URGENT.get()))
            return Response(409, b'{"kind": "Status", "reason": "AlreadyExists", "code": 409}')
        if method == "GET" and path == f"/api/v1/namespaces/{SANDBOX}":
            self.sent.append((method, path, URGENT.get()))
            return Response(200, json.dumps({"metadata": {"name": SANDBOX}}).encode())
        return super().__call__(method, url, body)


def test_a_default_sandbox_name_somebody_else_holds_is_refused_at_its_create_with_nothing_written_into_it() -> None:
    server = Squatted()
    posted: list[str] = []
    rec, registry = reconciler_over(server, owner=None,
                                    post=lambda _body, _type, reason, _message: posted.append(reason))
    st = registry.state("ns", "m")
    st.body = new_md()
    # given the default sandbox name already made by somebody else, when the new ModelDeployment decides
    asyncio.run(rec.reconcile(st))
    # then the create failed, the name was read, and only its own status was written: Stalled, naming the fix
    assert [(m, p) for m, p, _ in server.sent] == [
        ("POST", "/api/v1/namespaces"), ("GET", f"/api/v1/namespaces/{SANDBOX}"), ("PATCH", STATUS_PATH)], server.sent
    status = server.bodies[STATUS_PATH]["status"]
    assert status["phase"] == "Stalled" and "Tollgate did not create it" in status["message"], status
    assert posted == ["SandboxNotOwned"]
    # when it is looked at again, then the name is read before deciding and no create is attempted again
    body = new_md()
    body["status"] = status
    st.body = body
    server.sent.clear()
    asyncio.run(rec.reconcile(st))
    assert [(m, p) for m, p, _ in server.sent] == [("GET", f"/api/v1/namespaces/{SANDBOX}")], server.sent


def test_a_decision_that_creates_no_namespace_reads_an_unknown_sandbox_before_its_first_action(
        monkeypatch: Any) -> None:
    server = Squatted()
    rec, registry = reconciler_over(server, owner=None)
    st = registry.state("ns", "m")
    st.body = new_md()
    st.body["status"] = {"observedGeneration": 1, "phase": "Stable", "sandboxNamespace": SANDBOX}
    canary = ObjectRef("apps/v1", "Deployment", "m-canary", SANDBOX)

    def deletes_only(_case: Any, _obs: Any, now: Any) -> Decision:
        status = ModelDeploymentStatus(observedGeneration=1, phase=Phase.STABLE, sandboxNamespace=SANDBOX)
        return Decision(status, (DeleteObjects((canary,)),), now)

    # given a decision whose only action deletes a Deployment in a sandbox not known as ours, now held by
    # somebody else
    monkeypatch.setattr("tollgate.runtime.reconciler.Case.decide", deletes_only)
    # when it is carried out
    asyncio.run(rec.reconcile(st))
    # then the namespace is read first, found not ours, and nothing is deleted: only status is written
    assert [(m, p) for m, p, _ in server.sent] == [("GET", f"/api/v1/namespaces/{SANDBOX}"), ("PATCH", STATUS_PATH)]
    assert server.bodies[STATUS_PATH]["status"]["phase"] == "Stalled"
