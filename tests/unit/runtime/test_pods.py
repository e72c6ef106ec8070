"""Why a pod is not Ready, from its status, and which pods' reasons a track reports."""

from __future__ import annotations

from typing import Any

from tollgate.api import resource
from tollgate.api.status import RevisionRef
from tollgate.engine.actions import Context
from tollgate.engine.draft import track_ready
from tollgate.engine.observations import PodProblemKind, Track
from tollgate.runtime.pods import pod_problem
from tollgate.runtime.registry import Registry

CTX = Context(name="scorer", namespace="team", uid="u", generation=1)


def _pod(name: str = "scorer-canary-1", revision: str = "r2", track: str = "canary", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "sandbox", "labels": {
        resource.LABEL_MD_NAMESPACE: "team", resource.LABEL_MD_NAME: "scorer",
        resource.LABEL_TRACK: track, resource.LABEL_REVISION: revision}}, "status": status}


def _waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "model-server", "state": {"waiting": {"reason": reason, "message": message}},
                                   **extra}]}


def test_image_pull_backoff_is_failing_with_the_kubelets_words() -> None:
    p = pod_problem(_pod(**_waiting("ImagePullBackOff", 'Back-off pulling image "registry.example/x:9"')))
    assert p is not None and p.kind is PodProblemKind.FAILING
    assert p.describe() == ('pod scorer-canary-1 container model-server: ImagePullBackOff: '
                            'Back-off pulling image "registry.example/x:9"')


def test_crash_loop_reports_restarts_and_the_last_exit() -> None:
    status = _waiting("CrashLoopBackOff", "back-off 10s restarting failed container", restartCount=3,
                      lastState={"terminated": {"reason": "Error", "exitCode": 1}})
    p = pod_problem(_pod(**status))
    assert p is not None and p.kind is PodProblemKind.FAILING and p.restarts == 3
    assert p.describe().endswith("(3 restarts, last exit Error, exit code 1)")


def test_a_first_pull_error_is_not_yet_failing() -> None:
    # ErrImagePull is also what a registry hiccup gives; the kubelet turns a lasting one into ImagePullBackOff
    assert pod_problem(_pod(**_waiting("ErrImagePull"))) is None
    assert pod_problem(_pod(**_waiting("ContainerCreating"))) is None


def test_unschedulable_carries_the_schedulers_message() -> None:
    p = pod_problem(_pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                      "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]))
    assert p is not None and p.kind is PodProblemKind.UNSCHEDULABLE
    assert "Insufficient nvidia.com/gpu" in p.message


def test_registry_reports_the_problem_of_the_tracks_revision_and_wakes_only_on_change() -> None:
    reg = Registry()
    reg.state("team", "scorer")
    dep = {"metadata": {"name": "scorer-canary", "namespace": "sandbox", "generation": 1, "labels": {
        resource.LABEL_MD_NAMESPACE: "team", resource.LABEL_MD_NAME: "scorer", resource.LABEL_REVISION: "r2"}},
        "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}
    reg.observe_deployment(dep, deleted=False)
    failing = _pod(**_waiting("ImagePullBackOff"))
    # when the kubelet reports the pod cannot pull its image
    assert reg.observe_pod(failing, deleted=False) == ("team", "scorer")
    # then the canary track says so; the same status again wakes nobody
    problem = reg.track("sandbox", CTX, Track.CANARY).problem
    assert problem is not None and problem.reason == "ImagePullBackOff"
    assert reg.observe_pod(failing, deleted=False) is None
    # a pod of another revision (the previous canary, terminating) does not count
    reg.observe_pod(failing, deleted=True)
    reg.observe_pod(_pod(name="old", revision="r1", **_waiting("CrashLoopBackOff")), deleted=False)
    assert reg.track("sandbox", CTX, Track.CANARY).problem is None


def _initializer(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"initContainerStatuses": [{"name": "storage-initializer", "state": state, **extra}],
            "containerStatuses": [{"name": "model-server", "state": {"waiting": {"reason": "PodInitializing"}}}]}


MISMATCH = ('{"actual": "sha256:' + "b" * 64 + '", "expected": "sha256:' + "a" * 64
            + '", "reason": "ModelDigestMismatch", "uri": "s3://m/1"}')


def test_a_digest_mismatch_fails_the_pod_at_the_initializers_first_exit() -> None:
    # given the initializer exited non-zero with its termination message (before any back-off)
    p = pod_problem(_pod(**_initializer({"terminated": {"exitCode": 2, "reason": "Error", "message": MISMATCH}})))
    # then the pod is failing, naming both digests
    assert p is not None and p.kind is PodProblemKind.FAILING and p.reason == "ModelDigestMismatch"
    assert p.container == "storage-initializer"
    assert p.digest is not None and p.digest.expected == "sha256:" + "a" * 64
    assert "sha256:" + "b" * 64 in p.describe() and "sha256:" + "a" * 64 in p.describe()


def test_a_digest_mismatch_is_still_read_while_the_initializer_backs_off() -> None:
    status = _initializer({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}, restartCount=2,
                          lastState={"terminated": {"exitCode": 2, "reason": "Error", "message": MISMATCH}})
    p = pod_problem(_pod(**status))
    assert p is not None and p.reason == "ModelDigestMismatch" and p.restarts == 2


def test_an_initializer_that_succeeded_is_no_problem() -> None:
    status = _initializer({"terminated": {"exitCode": 0, "reason": "Completed", "message": MISMATCH}})
    assert pod_problem(_pod(**status)) is None


def _rolling(total: int, updated: int, ready: int) -> dict[str, Any]:
    """A stable track's Deployment on revision r2 (its template), mid-rollout from r1 at these counts."""
    return {"metadata": {"name": "scorer-stable", "namespace": "sandbox", "generation": 2, "labels": {
        resource.LABEL_MD_NAMESPACE: "team", resource.LABEL_MD_NAME: "scorer", resource.LABEL_REVISION: "r2"}},
        "spec": {"replicas": 1}, "status": {"observedGeneration": 2, "replicas": total, "updatedReplicas": updated,
                                            "readyReplicas": ready}}


def test_a_rolling_track_is_not_ready_on_its_new_revision_while_only_its_old_pod_is_ready() -> None:
    # given one replica rolling to r2: the surge pod (r2) created, not Ready; the old pod (r1) Ready
    reg = Registry()
    reg.observe_deployment(_rolling(total=2, updated=1, ready=1), deleted=False)
    track = reg.track("sandbox", CTX, Track.STABLE)
    # then no pod counts as Ready on r2 (readyReplicas 1 is the old pod's), so a promotion waits
    assert (track.revision, track.ready, track.updated) == ("r2", 0, 1)
    assert not track_ready(track, RevisionRef(revision="r2", version="2.0.0"), 1)
    # when the new pod turns Ready (both Ready, the old one not yet gone), then r2 has its pod Ready
    reg.observe_deployment(_rolling(total=2, updated=1, ready=2), deleted=False)
    assert reg.track("sandbox", CTX, Track.STABLE).ready == 1
    # and once the old pod is gone, the counts are the Deployment's own
    reg.observe_deployment(_rolling(total=1, updated=1, ready=1), deleted=False)
    assert track_ready(reg.track("sandbox", CTX, Track.STABLE), RevisionRef(revision="r2", version="2.0.0"), 1)
