"""spec.autoscaling: an autoscaler owns the stable track's count; Tollgate never writes it, creates the HPA,
and sizes the canary from the stable track's current size (engine.autoscale, engine.routing)."""

from __future__ import annotations

from typing import Any

import pytest

from tollgate.api.spec import RouterKind
from tollgate.engine.actions import DeleteObjects, SetWeight
from tollgate.engine.autoscale import ANNOTATION_AUTOSCALED
from tollgate.engine.platform import PlatformLimits, over_limits
from tollgate.engine.routing import autoscaled_split
from tollgate.engine.sandbox import quota_hard

from .conftest import BAD, GOOD, Sim, make_spec, objects_of, updated

AUTOSCALING = {"minReplicas": 4, "maxReplicas": 20,
               "metrics": [{"resource": {"name": "cpu", "averageUtilization": 70}},
                           {"pods": {"name": "inference_requests_per_second", "averageValue": "20"}}]}


def _sim(**spec: Any) -> Sim:
    sim = Sim(make_spec(autoscaling=AUTOSCALING, **spec))
    sim.autoscale(4)
    return sim


def _stable_deployment(sim: Sim) -> dict[str, Any]:
    decision = sim.decisions[-1]
    (dep,) = [o for o in objects_of(decision, "Deployment") if o["metadata"]["name"].endswith("-stable")]
    return dict(dep)


def test_a_first_version_waits_for_the_autoscaler_to_reach_min_replicas() -> None:
    # given a new Deployment applied without replicas (the API server defaults it to 1) and an HPA 4..20
    sim = Sim(make_spec(autoscaling=AUTOSCALING))
    sim.settle()
    # then the version is not Stable on 1 pod: it waits for the HPA to raise the track to minReplicas
    assert sim.status.phase.value == "Pending" and "1/4 pods Ready" in sim.status.message
    # when the HPA controller scales it to 4
    sim.autoscale(4)
    sim.settle()
    assert sim.status.phase.value == "Stable"


def test_the_stable_deployment_is_applied_without_replicas_and_an_hpa_owns_them() -> None:
    # given a model with autoscaling 4..20 on CPU and a per-pod custom metric
    sim = _sim()
    # when it deploys
    sim.deploy_stable()
    # then the stable Deployment Tollgate applies carries no replica count, and says why
    dep = _stable_deployment(sim)
    assert "replicas" not in dep["spec"]
    assert dep["metadata"]["annotations"][ANNOTATION_AUTOSCALED] == "true"
    # and one autoscaling/v2 HPA targets it with the spec's bounds and metrics, labelled as Tollgate's
    (hpa,) = objects_of(sim.decisions[-1], "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert hpa["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tollgate"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 20)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Pods", "pods": {"metric": {"name": "inference_requests_per_second"},
                                  "target": {"type": "AverageValue", "averageValue": "20"}}},
    ]


def test_no_metrics_means_the_hpas_own_default_written_out() -> None:
    sim = Sim(make_spec(autoscaling={"minReplicas": 2, "maxReplicas": 6}))
    sim.autoscale(2)
    sim.deploy_stable()
    (hpa,) = objects_of(sim.decisions[-1], "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def test_the_canary_follows_the_stable_tracks_current_size_and_the_share_stays_honest() -> None:
    # given an autoscaled model serving 1.0.0 on 4 stable pods (steps 10/50/100, replicas router)
    sim = _sim()
    sim.deploy_stable()
    # when 1.1.0 takes its first step
    sim.set_version("1.1.0")
    sim.settle()
    assert sim.status.canaryWeight == 10
    # then the canary runs ceil(4 x 10 / 90) = 1 pod beside the 4 stable pods: 20%, reported as such
    assert sim.tracks["canary"][1] == 1 and sim.tracks["stable"][1] == 4
    assert sim.status.canaryShare == 20.0
    first = sim.status.steps[0]
    assert (first.plannedShare, first.canaryPods, first.stablePods) == (20.0, 1, 4)

    # when the HPA scales the stable track to 18 pods during the canary
    sim.autoscale(18)
    decision = sim.step()
    # then the share measured right then is what the pods give (1 of 19), the canary is resized to
    # ceil(18 x 10 / 90) = 2 pods, and once they are Ready the step gets its 10%, exactly
    assert sim.status.canaryShare == 5.3
    assert sim.tracks["canary"][1] == 2 and sim.tracks["stable"][1] == 18
    sim.step()
    assert sim.status.canaryShare == 10.0 and sim.status.steps[0].plannedShare == 10.0
    # and Tollgate wrote no count on the stable Deployment (the HPA's 18 stands)
    assert "replicas" not in _stable_deployment(sim)["spec"]
    assert not [a for a in decision.of_type(SetWeight) if a.stable_replicas is not None]


def test_weight_changes_never_scale_the_stable_track() -> None:
    sim = _sim()
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    sim.tick(GOOD)
    sim.settle()
    assert sim.status.canaryWeight == 50
    # at 50% the canary matches the stable track's size
    assert sim.tracks["canary"][1] == 4
    weights = [a for d in sim.decisions for a in d.of_type(SetWeight)]
    assert weights and all(a.stable_replicas is None for a in weights)


def test_at_full_weight_the_service_selects_the_canary_alone_and_stable_keeps_its_pods() -> None:
    # given an autoscaled canary that passed its steps up to 100%
    sim = _sim(rollout={"steps": [{"weight": 50}, {"weight": 100}],
                        "analysis": {"interval": "30s", "minSamples": 100}, "progressDeadline": "5m"})
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    sim.tick(GOOD)
    sim.settle()
    assert sim.status.canaryWeight == 100
    # then the Service selects the canary track only, the canary runs as many pods as stable has now,
    # and the share is 100% (the HPA's stable pods stay up, taking no requests)
    (service,) = [o for o in objects_of(sim.decisions[-1], "Service") if o["metadata"]["name"] == sim.ctx.name]
    assert service["spec"]["selector"]["tollgate.dev/track"] == "canary"
    assert sim.tracks["canary"][1] == 4
    assert sim.status.canaryShare == 100.0


def test_a_rollback_takes_traffic_off_the_canary_without_touching_the_stable_count() -> None:
    sim = _sim()
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.settle()
    sim.tick(BAD)
    decision = sim.tick(BAD)  # failureLimit 1: the second failure rolls back
    assert sim.status.phase.value in ("RollingBack", "RolledBack")
    (weight,) = decision.of_type(SetWeight)
    assert weight.canary_weight == 0 and weight.stable_replicas is None and weight.fast


def test_autoscaling_turned_off_removes_the_hpa_and_gives_replicas_back() -> None:
    sim = _sim()
    sim.deploy_stable()
    assert sim.autoscalers == ("fraud-scorer-stable",)
    # when autoscaling is removed from the spec
    data = sim.spec.model_dump(mode="json", exclude_none=True)
    data.pop("autoscaling")
    sim.spec = updated(make_spec(), **data)
    decision = sim.step()
    # then the HPA is deleted and the stable Deployment carries spec.replicas again, without the mark
    deleted = [r for a in decision.of_type(DeleteObjects) for r in a.refs if r.kind == "HorizontalPodAutoscaler"]
    assert [r.name for r in deleted] == ["fraud-scorer-stable"]
    dep = _stable_deployment(sim)
    assert dep["spec"]["replicas"] == 4 and ANNOTATION_AUTOSCALED not in (dep["metadata"].get("annotations") or {})
    # and once the HPA is gone nothing more is deleted
    again = sim.step()
    assert not [r for a in again.of_type(DeleteObjects) for r in a.refs if r.kind == "HorizontalPodAutoscaler"]


def test_an_external_scaler_gets_no_hpa_and_no_replicas() -> None:
    # given KEDA owns the stable track (scaler external, may scale to zero)
    sim = Sim(make_spec(autoscaling={"scaler": "external", "minReplicas": 0, "maxReplicas": 8}))
    sim.autoscale(3)
    sim.deploy_stable()
    # then Tollgate creates no HPA and writes no count
    assert not objects_of(sim.decisions[-1], "HorizontalPodAutoscaler")
    assert "replicas" not in _stable_deployment(sim)["spec"]


def test_a_stable_track_scaled_to_zero_gives_a_canary_one_pod_and_reports_it_takes_every_request() -> None:
    # given KEDA scaled the idle stable track to zero
    sim = Sim(make_spec(autoscaling={"scaler": "external", "minReplicas": 0, "maxReplicas": 8}))
    sim.autoscale(0)
    sim.deploy_stable()
    # when a canary starts
    sim.set_version("1.1.0")
    sim.settle()
    # then it gets one pod and, honestly, every request that arrives (no stable pod is up to share them)
    assert sim.status.canaryWeight == 10 and sim.tracks["canary"][1] == 1
    assert sim.status.canaryShare == 100.0


@pytest.mark.parametrize(("router", "stable", "weight", "expected"), [
    (RouterKind.REPLICAS, 4, 10, (4, 1)),      # ceil(4*10/90) = 1 -> 20%
    (RouterKind.REPLICAS, 9, 10, (9, 1)),      # 1 of 10 -> 10%
    (RouterKind.REPLICAS, 18, 10, (18, 2)),    # 2 of 20 -> 10%
    (RouterKind.REPLICAS, 4, 50, (4, 4)),
    (RouterKind.REPLICAS, 4, 75, (4, 12)),     # 12 of 16 -> 75%
    (RouterKind.REPLICAS, 4, 90, (4, 20)),     # capped at maxReplicas 20 (36 asked)
    (RouterKind.REPLICAS, 4, 100, (4, 4)),     # canary alone
    (RouterKind.REPLICAS, 4, 0, (4, 0)),
    (RouterKind.GATEWAY_API, 18, 10, (18, 2)),  # its share of the load: ceil(18*10/100)
    (RouterKind.GATEWAY_API, 4, 100, (4, 4)),
])
def test_autoscaled_split(router: RouterKind, stable: int, weight: int, expected: tuple[int, int]) -> None:
    split = autoscaled_split(router, stable, weight, cap=20)
    assert (split.stable_replicas, split.canary_replicas) == expected
    assert split.canary_alone == (router is RouterKind.REPLICAS and weight == 100)


def test_the_quota_leaves_room_for_max_replicas_and_a_canary_as_large() -> None:
    spec = make_spec(autoscaling={"minReplicas": 2, "maxReplicas": 10},
                     runtime={"image": "x", "resources": {"requests": {"cpu": "1"}}})
    hard = quota_hard(spec)
    assert hard["pods"] == str(2 * 10 + 3)  # stable 10 + canary 10 + a rolling surge of 25%
    assert hard["requests.cpu"] == "23"


def test_max_replicas_over_the_platform_limit_is_refused_naming_the_field() -> None:
    spec = make_spec(autoscaling={"minReplicas": 2, "maxReplicas": 50})
    message = over_limits(spec, PlatformLimits(max_replicas=20))
    assert message is not None
    assert message.startswith("spec.autoscaling.maxReplicas 50 is over the platform limit of 20")
    within = make_spec(autoscaling={"minReplicas": 2, "maxReplicas": 20})
    assert over_limits(within, PlatformLimits(max_replicas=20)) is None
