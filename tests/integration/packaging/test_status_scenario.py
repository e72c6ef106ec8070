"""Every status the real operator wrote through a whole scenario (apply, canary, approval, promotion,
rollback, kill switch, stall, deletion), and the fresh object before any operator wrote one, judged by
kstatus, Argo CD's health.lua and Flux's CEL: GitOps tools never call a ModelDeployment done while it is
not serving, nor in progress while it has failed.

The statuses are recorded by a watch on the API server (every resourceVersion, not a poll), so none the
operator wrote is missed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from integration.runtime.helpers import apply, md_manifest, patch_spec, wait_phase
from tollgate.api import resource
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for
from unit.packaging.gitops import argocd_health, flux_health, kstatus


class Recorder:
    """Every version of the ModelDeployments of one namespace, in the order the API server served them."""

    def __init__(self, stack: Stack, namespace: str) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._api = client.CustomObjectsApi(stack.api)
        self._namespace = namespace
        self._watch = watch.Watch()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.broken: BaseException | None = None

    def _run(self, since: str) -> None:
        ended: BaseException
        try:
            for event in self._watch.stream(self._api.list_namespaced_custom_object, resource.GROUP,
                                            resource.VERSION, self._namespace, resource.PLURAL,
                                            resource_version=since, timeout_seconds=600):
                self.seen.append((event["type"], event["object"]))
            ended = TimeoutError("the watch ended before the test did")  # the server's timeout_seconds
        except Exception as exc:
            ended = exc
        # Once the test stopped the recorder, the stream may end with the control plane ("Response ended
        # prematurely"): the end of recording, not a lost status. Before that, _intact() reports it.
        if not self._stopped.is_set():
            self.broken = ended

    def __enter__(self) -> Recorder:
        # From the list's resourceVersion: every later change is delivered, however late the watch connects.
        listed = self._api.list_namespaced_custom_object(resource.GROUP, resource.VERSION, self._namespace,
                                                         resource.PLURAL)
        self._thread = threading.Thread(target=self._run, args=(listed["metadata"]["resourceVersion"],),
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._watch.stop()

    def _intact(self) -> None:
        # A stream that broke mid-test would leave statuses unjudged: say so instead of judging fewer.
        assert self.broken is None, f"the status recorder's watch broke during the test: {self.broken!r}"

    def saw(self, kind: str) -> bool:
        self._intact()
        return any(t == kind for t, _ in self.seen)

    def versions(self, name: str) -> list[dict[str, Any]]:
        self._intact()
        return [obj for _, obj in self.seen if obj["metadata"]["name"] == name]


def _conds(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def _judge(obj: dict[str, Any]) -> tuple[str, str, str]:
    return argocd_health(obj)[0], kstatus(obj), flux_health(obj)


@pytest.fixture
def recorder(stack: Stack, namespace: str) -> Iterator[Recorder]:
    with Recorder(stack, namespace) as rec:
        yield rec


def test_every_status_of_a_whole_scenario_is_judged_as_documented(
        stack: Stack, namespace: str, operator: OperatorProcess, recorder: Recorder) -> None:
    # given a ModelDeployment applied from Git, with an approval gate before full traffic
    steps = [{"weight": 25}, {"weight": 50, "approval": "required"}, {"weight": 100}]
    manifest = md_manifest("flow", "1.0.0", rollout={
        "steps": steps, "analysis": {"interval": "1s", "window": "5s", "minSamples": 10},
        "progressDeadline": "20s"})
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, "flow", "Stable")
    # when a canary runs, waits at the gate, is approved and promoted
    patch_spec(stack, namespace, "flow", {"model": {"version": "1.1.0", "uri": "s3://models/flow/1.1.0"}})
    wait_phase(stack, namespace, "flow", "AwaitingApproval", timeout=60)
    stack.kubectl("annotate", "modeldeployment", "flow", "-n", namespace, "tollgate.dev/approve=alice")
    wait_phase(stack, namespace, "flow", "Succeeded", timeout=60)
    # and a faulty version is rolled back
    stack.set_fault("1.2.0", error_rate=0.5)
    patch_spec(stack, namespace, "flow", {"model": {"version": "1.2.0", "uri": "s3://models/flow/1.2.0"}})
    wait_phase(stack, namespace, "flow", "RolledBack", timeout=60)
    # and the kill switch sends everything to the pinned fallback, then is lifted
    patch_spec(stack, namespace, "flow", {"fallback": {"version": "1.0.0"}, "killSwitch": True})
    wait_for("all traffic on the fallback", lambda: stack.md(namespace, "flow")["status"].get("fallback"),
             timeout=60)
    patch_spec(stack, namespace, "flow", {"killSwitch": False})
    wait_phase(stack, namespace, "flow", "RolledBack", timeout=60)
    # and a second ModelDeployment's first version never becomes Ready: Stalled past its deadline
    apply(stack, namespace, md_manifest("stuck", "1.0.0", runtime={"image": NEVER_READY_IMAGE},
                                        rollout={"steps": [{"weight": 50}, {"weight": 100}],
                                                 "progressDeadline": "10s"}))
    wait_phase(stack, namespace, "stuck", "Stalled", timeout=40)
    # and the first one is deleted
    stack.kubectl("delete", "modeldeployment", "flow", "-n", namespace, "--timeout=60s")
    wait_for("the deletion recorded", lambda: recorder.saw("DELETED"), timeout=10)

    flow, stuck = recorder.versions("flow"), recorder.versions("stuck")
    # then the fresh objects, before any operator wrote a status, are in progress for every tool
    for fresh in (flow[0], stuck[0]):
        assert fresh["status"]["observedGeneration"] == 0 and fresh["status"]["phase"] == "Pending", fresh["status"]
        assert _judge(fresh) == ("Progressing", "InProgress", "InProgress")
    # and every status written on the way is judged consistently with what it says
    phases: set[str] = set()
    for obj in flow + stuck:
        st, meta = obj["status"], obj["metadata"]
        argo, kst, flux = _judge(obj)
        phases.add(st["phase"])
        if meta.get("deletionTimestamp"):
            assert kst == "Terminating"
            phases.add("Terminating")
            continue
        if st["observedGeneration"] != meta["generation"]:
            assert (argo, kst, flux) == ("Progressing", "InProgress", "InProgress"), st
            continue
        conds = _conds(obj)
        ready, reconciling, stalled = (conds.get(t) == "True" for t in ("Ready", "Reconciling", "Stalled"))
        where = (st["phase"], conds, st.get("message"))
        # exactly one of the three states kstatus reads, and each tool agrees with it
        assert [ready, reconciling, stalled].count(True) == 1, where
        assert kst == ("Current" if ready else "Failed" if stalled else "InProgress"), where
        assert flux == kst, where
        assert (argo == "Degraded") == stalled, where
        assert argo != "Healthy" or ready, where
        # and the phase `kubectl get md` shows agrees with Stalled
        assert (st["phase"] in ("Stalled", "RollingBack", "RolledBack")) == stalled, where
        # and nothing mid-rollout is ever done
        if st["phase"] in ("Pending", "Progressing", "Promoting", "AwaitingApproval", "Paused"):
            assert kst == "InProgress", where
    assert phases >= {"Pending", "Stable", "Progressing", "AwaitingApproval", "Succeeded", "RolledBack",
                      "Fallback", "Stalled", "Terminating"}, phases
