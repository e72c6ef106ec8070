"""Desired Deployments, Services and HTTPRoute."""

from __future__ import annotations

from tollgate.api import resource
from tollgate.engine.observations import Track
from tollgate.engine.revision import desired_revision
from tollgate.engine.workloads import TrackPlan, TrafficPlan, deployment, workload_objects

from .conftest import CTX, make_spec, with_version


def test_pods_meet_restricted_and_carry_model_env_probe_and_labels() -> None:
    spec = make_spec(runtime={"image": "img@sha256:" + "a" * 64, "port": 9000, "readinessPath": "/healthz",
                              "env": [{"name": "MODEL_NAME", "value": "spoof"}, {"name": "X", "value": "1"}]})
    ref = desired_revision(spec)
    dep = deployment(spec, CTX, Track.CANARY, TrackPlan(ref, 2))
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"MODEL_NAME": "fraud-scorer", "MODEL_VERSION": "1.0.0", "MODEL_URI": "s3://models/fraud/1.0.0",
                   "MODEL_DIR": "/mnt/models", "X": "1"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels[resource.LABEL_TRACK] == "canary"
    assert labels[resource.LABEL_REVISION] == ref.revision
    assert labels[resource.LABEL_VERSION] == "1.0.0"
    assert labels[resource.LABEL_MODEL] == "fraud-scorer"
    # the selector is immutable: it never contains the revision
    assert resource.LABEL_REVISION not in dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["replicas"] == 2


def test_stable_track_is_rendered_from_its_own_revision_during_a_canary() -> None:
    old = make_spec()
    new = with_version(old, "2.0.0")
    plan = TrafficPlan(TrackPlan(desired_revision(old), 3), TrackPlan(desired_revision(new), 1), None, 10, False)
    deps = {o["metadata"]["name"]: o for o in workload_objects(new, CTX, plan) if o["kind"] == "Deployment"}
    stable_env = {e["name"]: e["value"] for e in
                  deps["fraud-scorer-stable"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert stable_env["MODEL_VERSION"] == "1.0.0"


def test_gateway_router_has_per_track_services_and_a_weighted_route() -> None:
    spec = make_spec(traffic={"router": "gatewayAPI",
                              "gatewayAPI": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                                             "hostnames": ["fraud.example"]}})
    ref = desired_revision(spec)
    objs = workload_objects(spec, CTX, TrafficPlan(TrackPlan(ref, 2), TrackPlan(ref, 1), None, 25, False))
    services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    assert services == {"fraud-scorer-stable", "fraud-scorer-canary", "fraud-scorer-fallback"}
    route = next(o for o in objs if o["kind"] == "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"][0]["namespace"] == "infra"
    assert route["spec"]["hostnames"] == ["fraud.example"]
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"fraud-scorer-stable": 75, "fraud-scorer-canary": 25}


def test_pods_say_where_their_metrics_are_for_the_shipped_scrape_config() -> None:
    # given the default metrics settings: the serving port, /metrics
    pod = deployment(make_spec(), CTX, Track.STABLE, TrackPlan(desired_revision(make_spec()), 1))["spec"]["template"]
    assert pod["metadata"]["annotations"] == {resource.ANNOTATION_METRICS_PORT: "8080",
                                              resource.ANNOTATION_METRICS_PATH: "/metrics"}
    # and the container port the scrape config keeps is named http
    assert pod["spec"]["containers"][0]["ports"][0]["name"] == "http"
    # given MLServer's metrics port, or Istio's merged metrics
    spec = make_spec(metrics={"port": 15020, "path": "/stats/prometheus"})
    pod = deployment(spec, CTX, Track.CANARY, TrackPlan(desired_revision(spec), 1))["spec"]["template"]
    assert pod["metadata"]["annotations"] == {resource.ANNOTATION_METRICS_PORT: "15020",
                                              resource.ANNOTATION_METRICS_PATH: "/stats/prometheus"}


def test_metrics_settings_are_not_part_of_the_revision() -> None:
    # changing where metrics are scraped never starts a canary
    assert desired_revision(make_spec(metrics={"port": 8082})).revision == desired_revision(make_spec()).revision
