"""spec.scheduling reaches every track's pods, and GPUs reach the sandbox quota (issue 19)."""

from __future__ import annotations

from typing import Any

from tollgate.api import resource
from tollgate.engine.observations import Track
from tollgate.engine.revision import desired_revision
from tollgate.engine.sandbox import quota_hard
from tollgate.engine.workloads import TrackPlan, deployment

from .conftest import CTX, make_spec

GPU_SCHEDULING: dict[str, Any] = {
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {"required": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]}]}]},
        "podAntiAffinity": {"preferred": [{"weight": 10, "term": {"topologyKey": "kubernetes.io/hostname"}}]},
    },
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}],
    "priorityClassName": "ml-serving",
}
GPU_RUNTIME = {"image": "img:1", "resources": {"requests": {"cpu": "2", "nvidia.com/gpu": "1"},
                                               "limits": {"nvidia.com/gpu": "1"}}}


def _pod(track: Track, **spec: Any) -> dict[str, Any]:
    s = make_spec(**spec)
    pod: dict[str, Any] = deployment(s, CTX, track, TrackPlan(desired_revision(s), 1))["spec"]["template"]["spec"]
    return pod


def test_every_track_carries_the_same_placement() -> None:
    # given a GPU model with a node selector, a toleration, affinity, spread and a priority class
    pods = {t: _pod(t, runtime=GPU_RUNTIME, scheduling=GPU_SCHEDULING) for t in Track}
    for track, pod in pods.items():
        # then each track's pods ask for the same nodes, tolerate the same taint, get the same priority
        assert pod["nodeSelector"] == {"pool": "gpu"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["priorityClassName"] == "ml-serving"
        assert pod["affinity"]["nodeAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]}]}]}}
        # and a pod term without a selector means this ModelDeployment's pods (all tracks)
        (anti,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"][resource.LABEL_MD_NAME] == CTX.name
        assert resource.LABEL_TRACK not in anti["podAffinityTerm"]["labelSelector"]["matchLabels"]
        # and the spread counts the pods of the track itself (a 1-pod canary is not held to stable's)
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert spread["labelSelector"]["matchLabels"][resource.LABEL_TRACK] == track.value
        # and the GPU is in requests and limits of the model-server container
        assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}


def test_no_scheduling_adds_no_pod_fields() -> None:
    pod = _pod(Track.STABLE)
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName"):
        assert key not in pod


def test_scheduling_is_not_part_of_the_revision() -> None:
    # moving a model to other nodes rolls the tracks in place; it does not start a canary
    assert desired_revision(make_spec()).revision == desired_revision(
        make_spec(scheduling=GPU_SCHEDULING)).revision


def test_derived_quota_has_room_for_the_gpus_of_stable_a_canary_and_the_surge() -> None:
    # given 4 replicas of 1 GPU each: stable 4 + canary 4 + surge 1 = 9 pods
    hard = quota_hard(make_spec(runtime=GPU_RUNTIME, replicas=4))
    assert hard["pods"] == "9"
    assert hard["requests.nvidia.com/gpu"] == "9"
    assert "limits.nvidia.com/gpu" not in hard  # extended resources are quota'd by request only
