"""The ModelDeployment API on the real kube-apiserver: examples accepted, bad input refused with a
message that names the field, and a fully populated status survives a round trip (nothing pruned)."""

from __future__ import annotations

import copy
import enum
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from integration.cluster import Cluster
from tollgate.api import resource
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

pytestmark = pytest.mark.usefixtures("crds")


def _dry_run(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(manifest),
        check=False,
    )


# --- (a) every example is accepted -------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_is_accepted_by_the_api_server(cluster: Cluster, namespace: str, example: str) -> None:
    # given an example, placed in the test's namespace
    manifest = yaml.safe_load((EXAMPLES / example).read_text())
    manifest["metadata"].pop("namespace", None)
    # when it is applied with a server-side dry run
    res = _dry_run(cluster, namespace, manifest)
    # then the API server accepts it as it is
    assert res.returncode == 0, res.stderr
    assert "created (server dry run)" in res.stdout


# --- (b) invalid manifests are refused, naming the field ---------------------------------------------


def _valid() -> dict[str, Any]:
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": "bad"},
        "spec": {
            "model": {"name": "fraud", "version": "2.4.0", "uri": "s3://models/fraud/2.4.0"},
            "runtime": {
                "image": "registry.example/model-server:1.0",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            },
            "replicas": 2,
            "rollout": {"steps": [{"weight": 10}, {"weight": 50}, {"weight": 100}]},
            "slos": [{"name": "error-rate", "max": 0.01}],
        },
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or, with value DELETE, remove) a dotted path below spec; list indexes as numbers."""

    def apply(manifest: dict[str, Any]) -> None:
        node: Any = manifest["spec"]
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in keys[:-1]:
            if isinstance(key, str) and key not in node:
                node[key] = {}
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return apply


DELETE = object()


@dataclass(frozen=True)
class Bad:
    id: str
    change: Callable[[dict[str, Any]], None]
    field: str
    phrase: str


BAD = [
    Bad("model-missing", _set("model", DELETE), "spec.model", "Required value"),
    Bad("image-missing", _set("runtime.image", DELETE), "spec.runtime.image", "Required value"),
    Bad("model-name-not-dns", _set("model.name", "Fraud_Scorer"), "spec.model.name", "should match"),
    Bad("model-version-space", _set("model.version", "2.4 beta"), "spec.model.version", "should match"),
    Bad("digest-not-sha256", _set("model.digest", "md5:abc"), "spec.model.digest", "should match"),
    Bad("replicas-zero", _set("replicas", 0), "spec.replicas", "greater than or equal to 1"),
    Bad("replicas-too-many", _set("replicas", 5000), "spec.replicas", "less than or equal to 1000"),
    Bad("risk-tier-unknown", _set("riskTier", "extreme"), "spec.riskTier", 'Unsupported value: "extreme"'),
    Bad("port-out-of-range", _set("runtime.port", 70000), "spec.runtime.port", "less than or equal to 65535"),
    Bad(
        "readiness-path-relative",
        _set("runtime.readinessPath", "ready"),
        "spec.runtime.readinessPath",
        "should match",
    ),
    Bad(
        "env-name-not-identifier",
        _set("runtime.env", [{"name": "1BAD", "value": "x"}]),
        "spec.runtime.env[0].name",
        "should match",
    ),
    Bad(
        "env-name-repeated",
        _set("runtime.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.runtime.env",
        "names must be unique",
    ),
    Bad(
        "cpu-not-a-quantity",
        _set("runtime.resources.requests.cpu", "two"),
        "spec.runtime.resources.requests.cpu",
        "should match",
    ),
    Bad(
        "resource-name-invalid",
        _set("runtime.resources.requests", {"CPU cores": "1"}),
        "spec.runtime.resources.requests",
        "keys must be resource names",
    ),
    Bad(
        "gpu-request-without-equal-limit",
        _set("runtime.resources", {"requests": {"nvidia.com/gpu": "1"}}),
        "spec.runtime.resources.limits",
        "must equal requests for extended resources",
    ),
    Bad(
        "request-above-limit",
        _set("runtime.resources.requests.memory", "4Gi"),
        "spec.runtime.resources.requests",
        "must not exceed limits",
    ),
    Bad(
        "ingress-peer-empty",
        _set("sandbox.ingressFrom", [{}]),
        "spec.sandbox.ingressFrom[0]",
        "needs namespaceSelector, podSelector or both",
    ),
    Bad(
        "egress-cidr-invalid",
        _set("sandbox.egressTo", [{"cidr": "300.1.1.1/8"}]),
        "spec.sandbox.egressTo[0].cidr",
        "CIDR notation",
    ),
    Bad(
        "quota-pods-below-twice-replicas",
        _set("sandbox.quota", {"pods": "3"}),
        "spec.sandbox.quota",
        "at least twice spec.replicas",
    ),
    Bad(
        "router-unknown", _set("traffic.router", "istio"), "spec.traffic.router", 'Unsupported value: "istio"'
    ),
    Bad(
        "gateway-router-without-settings",
        _set("traffic", {"router": "gatewayAPI"}),
        "spec.traffic.gatewayAPI",
        "required when spec.traffic.router is gatewayAPI",
    ),
    Bad(
        "gateway-settings-with-replica-router",
        _set("traffic", {"router": "replicas", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}),
        "spec.traffic.router",
        "only used with router: gatewayAPI",
    ),
    Bad(
        "gateway-without-parent",
        _set("traffic", {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": []}}),
        "spec.traffic.gatewayAPI.parentRefs",
        "at least 1 items",
    ),
    Bad(
        "step-weight-zero",
        _set("rollout.steps.0.weight", 0),
        "spec.rollout.steps[0].weight",
        "greater than or equal to 1",
    ),
    Bad(
        "step-weight-over-100",
        _set("rollout.steps", [{"weight": 150}]),
        "spec.rollout.steps[0].weight",
        "less than or equal to 100",
    ),
    Bad(
        "steps-decreasing",
        _set("rollout.steps", [{"weight": 50}, {"weight": 25}, {"weight": 100}]),
        "spec.rollout.steps",
        "strictly increasing",
    ),
    Bad(
        "steps-repeated-weight",
        _set("rollout.steps", [{"weight": 25}, {"weight": 25}, {"weight": 100}]),
        "spec.rollout.steps",
        "strictly increasing",
    ),
    Bad(
        "steps-not-ending-at-100",
        _set("rollout.steps", [{"weight": 10}, {"weight": 50}]),
        "spec.rollout.steps",
        "must end with weight 100",
    ),
    Bad("steps-empty", _set("rollout.steps", []), "spec.rollout.steps", "at least 1 items"),
    # shadow steps (issue 21): the replicas router cannot mirror, said at admission with the router's value
    Bad(
        "shadow-with-the-replicas-router",
        _set("rollout.steps", [{"shadow": {"percent": 50}}, {"weight": 100}]),
        "spec.traffic.router",
        "spec.rollout.steps[].shadow is set, but spec.traffic.router is replicas, which cannot mirror requests "
        "(its one Service, served by kube-proxy, cannot copy a request): use spec.traffic.router: gatewayAPI, or "
        "remove the shadow steps",
    ),
    Bad(
        "canary-rate-limit-with-the-replicas-router",
        _set("traffic", {"canaryRateLimit": 20}),
        "spec.traffic.router",
        "spec.traffic.canaryRateLimit is set, but spec.traffic.router is replicas, which cannot limit the request "
        "rate to the canary (kube-proxy spreads connections over pods and counts nothing): use "
        "spec.traffic.router: gatewayAPI, or remove spec.traffic.canaryRateLimit",
    ),
    Bad(
        "model-rate-limit-with-the-replicas-router",
        _set("traffic", {"router": "replicas", "rateLimit": 500}),
        "spec.traffic.router",
        "spec.traffic.rateLimit is set, but spec.traffic.router is replicas, which cannot limit the request rate "
        "to the model (kube-proxy spreads connections over pods and counts nothing): use spec.traffic.router: "
        "gatewayAPI, or remove spec.traffic.rateLimit",
    ),
    Bad(
        "shadow-after-a-weighted-step",
        _set("rollout.steps", [{"weight": 10}, {"shadow": {"percent": 50}}, {"weight": 100}]),
        "spec.rollout.steps",
        "shadow steps come before the first weighted step",
    ),
    Bad(
        "step-with-weight-and-shadow",
        _set("rollout.steps.0", {"weight": 10, "shadow": {"percent": 50}}),
        "spec.rollout.steps[0].shadow",
        "has both weight and shadow",
    ),
    Bad(
        "step-without-weight-or-shadow",
        _set("rollout.steps.0", {"pause": "1m"}),
        "spec.rollout.steps[0].weight",
        "needs weight (percent of users on the canary) or shadow",
    ),
    Bad(
        "shadow-last",
        _set("rollout.steps", [{"weight": 100}, {"shadow": {"percent": 50}}]),
        "spec.rollout.steps",
        "must end with weight 100",
    ),
    Bad(
        "shadow-percent-repeated",
        _set("rollout.steps", [{"shadow": {"percent": 50}}, {"shadow": {"percent": 50}}, {"weight": 100}]),
        "spec.rollout.steps",
        "shadow percents must be strictly increasing",
    ),
    Bad(
        "step-pause-and-approval",
        _set("rollout.steps.0", {"weight": 10, "pause": "1m", "approval": "required"}),
        "spec.rollout.steps[0].pause",
        "either a timed pause or an approval gate",
    ),
    Bad(
        "step-pause-not-a-duration",
        _set("rollout.steps.0.pause", "2 minutes"),
        "spec.rollout.steps[0].pause",
        "should match",
    ),
    Bad(
        "step-approval-unknown",
        _set("rollout.steps.0.approval", "yes"),
        "spec.rollout.steps[0].approval",
        'Unsupported value: "yes"',
    ),
    Bad(
        "analysis-interval-below-1s",
        _set("rollout.analysis", {"interval": "500ms"}),
        "spec.rollout.analysis.interval",
        "at least 1s",
    ),
    Bad(
        "analysis-window-below-interval",
        _set("rollout.analysis", {"interval": "1m", "window": "30s"}),
        "spec.rollout.analysis.window",
        "at least the interval",
    ),
    Bad(
        "failure-limit-negative",
        _set("rollout.analysis", {"failureLimit": -1}),
        "spec.rollout.analysis.failureLimit",
        "greater than or equal to 0",
    ),
    Bad(
        "progress-deadline-too-short",
        _set("rollout.progressDeadline", "5s"),
        "spec.rollout.progressDeadline",
        "at least 10s",
    ),
    Bad(
        "slo-unknown-template",
        _set("slos", [{"name": "accuracy", "max": 1}]),
        "spec.slos[0].name",
        "must be a built-in template",
    ),
    Bad("slo-without-threshold", _set("slos", [{"name": "error-rate"}]), "spec.slos[0]", "needs a threshold"),
    Bad(
        "slo-min-above-max",
        _set("slos", [{"name": "score-shift", "min": 0.5, "max": 0.1}]),
        "spec.slos[0].min",
        "must not exceed spec.slos[].max",
    ),
    Bad(
        "slo-shift-min-above-its-relative-limit",
        _set("slos", [{"name": "score-shift", "min": 0.2, "maxIncreaseOverBaseline": 0.1}]),
        "spec.slos[0].min",
        "must not exceed its maxIncreaseOverBaseline",
    ),
    Bad(
        "slo-rate-as-percent",
        _set("slos", [{"name": "error-rate", "max": 5}]),
        "spec.slos[0].max",
        "ratio between 0 and 1",
    ),
    Bad(
        "slo-latency-in-ms",
        _set("slos", [{"name": "latency-p99", "max": 250}]),
        "spec.slos[0].max",
        "in seconds",
    ),
    Bad(
        "slo-no-data-policy-unknown",
        _set("slos.0.onNoData", "ignore"),
        "spec.slos[0].onNoData",
        'Unsupported value: "ignore"',
    ),
    Bad(
        "slo-hold-without-bound",
        _set("slos.0.maxNoDataDuration", "0s"),
        "spec.slos[0].maxNoDataDuration",
        "positive bound",
    ),
    Bad(
        "slo-increase-negative",
        _set("slos.0.maxIncreaseOverBaseline", -0.1),
        "spec.slos[0].maxIncreaseOverBaseline",
        "greater than or equal to 0",
    ),
    Bad(
        "slo-names-repeated",
        _set("slos", [{"name": "error-rate", "max": 0.01}, {"name": "error-rate", "max": 0.02}]),
        "spec.slos",
        "names must be unique",
    ),
    Bad(
        "fallback-same-as-model",
        _set("fallback", {"version": "2.4.0"}),
        "spec.fallback.version",
        "must differ from spec.model.version",
    ),
    Bad(
        "critical-without-approval",
        _set("riskTier", "critical"),
        "spec.rollout.steps",
        "needs a step with approval: required",
    ),
    Bad("unknown-field", _set("replicaCount", 3), "spec.replicaCount", "unknown field"),
    # Durations the engine could not hold (timedelta overflow) or that would freeze a rollout for years
    Bad("pause-overflows", _set("rollout.steps.0.pause", "99999999999999h"), "spec.rollout.steps[0].pause",
        "should match"),
    Bad("pause-over-a-week", _set("rollout.steps.0.pause", "169h"), "spec.rollout.steps[0].pause",
        "at most 168h"),
    Bad("deadline-over-a-day", _set("rollout.progressDeadline", "25h"), "spec.rollout.progressDeadline",
        "at most 24h"),
    Bad("interval-over-an-hour", _set("rollout.analysis.interval", "2h"), "spec.rollout.analysis.interval",
        "at most 1h"),
    Bad("window-over-a-day", _set("rollout.analysis.window", "1441m"), "spec.rollout.analysis.window",
        "at most 24h"),
    Bad("no-data-bound-over-a-day", _set("slos.0.maxNoDataDuration", "90000s"),
        "spec.slos[0].maxNoDataDuration", "at most 24h"),
    # 2 replicas give the 10% step 1 canary pod of 2: 50% (issue 19)
    Bad("share-beyond-tolerance", _set("traffic.shareTolerance", 5), "spec.replicas",
        "a step's weight cannot be given by spec.replicas within spec.traffic.shareTolerance"),
    # scheduling, GPUs and probes (issue 19): the mistakes people make most with them
    Bad("toleration-exists-with-value",
        _set("scheduling", {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "value": "true"}]}),
        "spec.scheduling.tolerations[0].value", "must be empty with operator: Exists"),
    Bad("toleration-empty-key-equal", _set("scheduling", {"tolerations": [{"value": "x"}]}),
        "spec.scheduling.tolerations[0].key", "may be empty only with operator: Exists"),
    Bad("toleration-seconds-without-noexecute",
        _set("scheduling", {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                             "tolerationSeconds": 30}]}),
        "spec.scheduling.tolerations[0].tolerationSeconds", "applies only to effect: NoExecute"),
    Bad("node-affinity-in-without-values",
        _set("scheduling", {"affinity": {"nodeAffinity": {"required": [
            {"matchExpressions": [{"key": "pool", "operator": "In"}]}]}}}),
        "spec.scheduling.affinity.nodeAffinity.required[0].matchExpressions[0].values", "needs values"),
    Bad("node-affinity-gt-not-integer",
        _set("scheduling", {"affinity": {"nodeAffinity": {"required": [
            {"matchExpressions": [{"key": "gpu-mem", "operator": "Gt", "values": ["40GB"]}]}]}}}),
        "spec.scheduling.affinity.nodeAffinity.required[0].matchExpressions[0].values",
        "exactly one integer value"),
    Bad("spread-min-domains-schedule-anyway",
        _set("scheduling", {"topologySpreadConstraints": [{"topologyKey": "zone", "minDomains": 2}]}),
        "spec.scheduling.topologySpreadConstraints[0].minDomains", "only with whenUnsatisfiable: DoNotSchedule"),
    Bad("priority-class-system", _set("scheduling", {"priorityClassName": "system-node-critical"}),
        "spec.scheduling.priorityClassName", "must not be a system- class"),
    Bad("gpu-fraction", _set("runtime.resources", {"limits": {"nvidia.com/gpu": "0.5"}}),
        "spec.runtime.resources", "whole devices"),
    Bad("quota-without-the-gpus",
        lambda m: (_set("runtime.resources", {"limits": {"nvidia.com/gpu": "1"}})(m),
                   _set("sandbox", {"quota": {"pods": "10", "requests.cpu": "8"}})(m)),
        "spec.sandbox.quota", "must list every extended resource"),
    Bad("readiness-probe-off", _set("probes", {"readiness": {"enabled": False}}),
        "spec.probes.readiness.enabled", "cannot be false"),
    Bad("startup-longer-than-deadline",
        lambda m: (_set("probes", {"startup": {"periodSeconds": 10, "failureThreshold": 60}})(m),
                   _set("rollout.progressDeadline", "5m")(m)),
        "spec.rollout.progressDeadline", "shorter than the time spec.probes.startup gives"),
    Bad(
        "slo-query-and-template",
        _set("slos", [{"name": "x", "max": 1, "query": "up", "templateRef": {"name": "t"}}]),
        "spec.slos[0].templateRef",
        "keep one",
    ),
    Bad(
        "slo-template-kind",
        _set("slos", [{"name": "x", "max": 1, "templateRef": {"kind": "AnalysisTemplate", "name": "t"}}]),
        "spec.slos[0].templateRef.kind",
        'Unsupported value: "AnalysisTemplate"',
    ),
    Bad("metrics-profile", _set("metrics", {"profile": "linkerd"}), "spec.metrics.profile",
        'Unsupported value: "linkerd"'),
    Bad(
        "hook-timeout-too-long",
        _set("hooks.preTraffic", {"image": "registry.example/smoke:1", "timeout": "7h"}),
        "spec.hooks.preTraffic.timeout",
        "must be between 1s and 6h",
    ),
    Bad(
        "hook-failure-policy-unknown",
        _set("hooks.prePromotion", {"image": "registry.example/check:1", "failurePolicy": "retry"}),
        "spec.hooks.prePromotion.failurePolicy",
        'Unsupported value: "retry"',
    ),
    Bad(
        "confirm-rollout-interval-zero",
        _set("hooks.confirmRollout", {"interval": "0s"}),
        "spec.hooks.confirmRollout.interval",
        "must be between 1s and 10m",
    ),
    Bad("keep-failed-canary-too-long", _set("rollout.keepFailedCanary", "25h"), "spec.rollout.keepFailedCanary",
        "spec.rollout.keepFailedCanary is 25h, more than the 24h maximum"),
    Bad("synthetic-exclude-without-a-tagging-profile", _set("hooks.syntheticTraffic", "exclude"),
        "spec.hooks.syntheticTraffic", "spec.metrics.profile is unset (the operator default), which does not label"),
    Bad("synthetic-exclude-with-mlserver",
        lambda m: (_set("hooks.syntheticTraffic", "exclude")(m), _set("metrics", {"profile": "mlserver"})(m)),
        "spec.hooks.syntheticTraffic", "spec.metrics.profile is mlserver, which does not label synthetic requests"),
    Bad("synthetic-exclude-with-a-query-without-selector",
        lambda m: (_set("hooks.syntheticTraffic", "exclude")(m), _set("metrics", {"profile": "istio"})(m),
                   _set("slos", [{"name": "x", "max": 1, "query": 'sum(up{namespace="{{sandbox}}"})'}])(m)),
        "spec.slos", "does not use {{selector}}"),
    # spec.podTemplate (issue 19): held to Pod Security restricted at admission, the refusal saying why
    Bad("pod-template-host-network", _set("podTemplate", {"spec": {"hostNetwork": True}}),
        "spec.podTemplate.spec.hostNetwork", "the sandbox enforces Pod Security restricted"),
    Bad("pod-template-host-pid", _set("podTemplate", {"spec": {"hostPID": True}}),
        "spec.podTemplate.spec.hostPID", "forbids the host's PID namespace"),
    Bad("pod-template-root-user", _set("podTemplate", {"spec": {"securityContext": {"runAsUser": 0}}}),
        "spec.podTemplate.spec.securityContext.runAsUser", "runAsUser: 0 (root) is refused"),
    Bad("pod-template-privileged",
        _set("podTemplate", {"spec": {"containers": [{"name": "model-server",
                                                      "securityContext": {"privileged": True}}]}}),
        "spec.podTemplate.spec.containers[0].securityContext.privileged", "forbids privileged containers"),
    Bad("pod-template-capability",
        _set("podTemplate", {"spec": {"containers": [{"name": "model-server", "securityContext": {
            "capabilities": {"add": ["SYS_ADMIN"]}}}]}}),
        "spec.podTemplate.spec.containers[0].securityContext.capabilities.add", "may only hold NET_BIND_SERVICE"),
    Bad("pod-template-escalation",
        _set("podTemplate", {"spec": {"containers": [{"name": "model-server", "securityContext": {
            "allowPrivilegeEscalation": True}}]}}),
        "spec.podTemplate.spec.containers[0].securityContext.allowPrivilegeEscalation", "Pod Security restricted"),
    Bad("pod-template-sidecar",
        _set("podTemplate", {"spec": {"containers": [{"name": "proxy"}]}}),
        "spec.podTemplate.spec.containers[0]", "sidecars are not offered"),
    Bad("pod-template-host-path",
        _set("podTemplate", {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}),
        "spec.podTemplate.spec.volumes[0]", 'unknown field "spec.podTemplate.spec.volumes[0].hostPath"'),
    Bad("pod-template-selector-label",
        _set("podTemplate", {"metadata": {"labels": {"tollgate.dev/track": "stable"}}}),
        "spec.podTemplate.metadata.labels", "may not set tollgate.dev/"),
    # spec.autoscaling (issue 19)
    Bad("autoscaling-min-over-max", _set("autoscaling", {"minReplicas": 12, "maxReplicas": 4}),
        "spec.autoscaling.minReplicas", "must not exceed spec.autoscaling.maxReplicas: raise maxReplicas"),
    Bad("autoscaling-max-unbounded", _set("autoscaling", {"maxReplicas": 5000}),
        "spec.autoscaling.maxReplicas", "less than or equal to 1000"),
    Bad("autoscaling-zero-with-hpa", _set("autoscaling", {"minReplicas": 0, "maxReplicas": 4}),
        "spec.autoscaling.minReplicas", "minReplicas 0 (scale to zero) needs scaler: external"),
    Bad("autoscaling-metrics-with-external",
        _set("autoscaling", {"scaler": "external", "maxReplicas": 4,
                             "metrics": [{"resource": {"name": "cpu", "averageUtilization": 70}}]}),
        "spec.autoscaling.metrics", "with scaler: external your own scaler"),
    Bad("autoscaling-metric-two-sources",
        _set("autoscaling", {"maxReplicas": 4, "metrics": [{
            "resource": {"name": "cpu", "averageUtilization": 70},
            "pods": {"name": "rps", "averageValue": "20"}}]}),
        "spec.autoscaling.metrics[0]", "names exactly one source"),
    Bad("autoscaling-resource-two-targets",
        _set("autoscaling", {"maxReplicas": 4, "metrics": [{
            "resource": {"name": "cpu", "averageUtilization": 70, "averageValue": "500m"}}]}),
        "spec.autoscaling.metrics[0].resource", "exactly one target"),
    Bad("autoscaling-quota-pods-below-twice-max",
        lambda m: m["spec"].update(autoscaling={"minReplicas": 2, "maxReplicas": 10},
                                   sandbox={"quota": {"pods": "12"}}),
        "spec.sandbox.quota", "twice spec.autoscaling.maxReplicas"),
]


def _template(kind: str, query: str) -> dict[str, Any]:
    return {"apiVersion": resource.API_VERSION, "kind": kind, "metadata": {"name": "t"}, "spec": {"query": query}}


@pytest.mark.parametrize(("kind", "query", "accepted", "phrase"), [
    ("ClusterSLOTemplate", "sum by ({{by}}) (rate(x{ {{selector}} }[{{window}}]))", True, ""),
    ("ClusterSLOTemplate", 'sum(rate(x{ {{selector}} }[{{window}}]))', True, ""),
    ("ClusterSLOTemplate", "sum by ({{by}}) (rate(x[{{window}}]))", False, "must also use {{selector}}"),
    ("ClusterSLOTemplate", 'sum by ({{by}}) (rate(x{ {{selector}}, t="{{track}}" }[{{window}}]))', False,
     "remove {{track}}"),
    ("SLOTemplate", 'sum(rate(x{namespace="{{sandbox}}"}[{{window}}]))', True, ""),
    ("SLOTemplate", "sum by ({{by}}) (rate(x{ {{selector}} }[{{window}}]))", False,
     "batching is for ClusterSLOTemplates"),
])
def test_slo_template_queries_are_checked_by_the_api_server(cluster: Cluster, namespace: str, kind: str, query: str,
                                                            accepted: bool, phrase: str) -> None:
    res = _dry_run(cluster, namespace, _template(kind, query))
    if accepted:
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode != 0 and "spec.query" in res.stderr and phrase in res.stderr, res.stderr


def test_the_table_has_at_least_25_distinct_cases() -> None:
    assert len(BAD) >= 25
    assert len({b.id for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_invalid_manifest_is_refused_naming_the_field(cluster: Cluster, namespace: str, bad: Bad) -> None:
    # given a valid manifest the server accepts ...
    manifest = _valid()
    # ... with one thing wrong
    bad.change(manifest)
    # when it is applied with a server-side dry run
    res = _dry_run(cluster, namespace, manifest)
    # then the API server refuses it, naming the field and saying what is wrong
    assert res.returncode != 0, f"accepted: {bad.id}"
    assert bad.field in res.stderr, res.stderr
    assert bad.phrase in res.stderr, res.stderr


def test_synthetic_exclude_with_the_istio_profile_and_a_kept_canary_are_accepted(cluster: Cluster,
                                                                                  namespace: str) -> None:
    manifest = _valid()
    _set("hooks.syntheticTraffic", "exclude")(manifest)
    _set("metrics", {"profile": "istio"})(manifest)
    _set("rollout.keepFailedCanary", "24h")(manifest)
    res = _dry_run(cluster, namespace, manifest)
    assert res.returncode == 0, res.stderr


def test_shadow_steps_before_weighted_steps_are_accepted_with_the_gateway_api_router(cluster: Cluster,
                                                                                     namespace: str) -> None:
    manifest = _valid()
    _set("traffic", {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}})(manifest)
    _set("rollout.steps", [{"shadow": {"percent": 10}, "pause": "1m"}, {"shadow": {"percent": 50}},
                           {"weight": 10}, {"weight": 100}])(manifest)
    res = _dry_run(cluster, namespace, manifest)
    assert res.returncode == 0, res.stderr


def test_rate_limits_are_accepted_with_the_gateway_api_router(cluster: Cluster, namespace: str) -> None:
    # (whether the platform's Gateway dialect can carry them out is the operator's to say, before any
    # traffic moves: admission cannot know a chart value; api.routers.dialect_problem)
    manifest = _valid()
    _set("traffic", {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]},
                     "canaryRateLimit": 20, "rateLimit": 500})(manifest)
    res = _dry_run(cluster, namespace, manifest)
    assert res.returncode == 0, res.stderr


def test_the_valid_base_manifest_is_accepted(cluster: Cluster, namespace: str) -> None:
    res = _dry_run(cluster, namespace, _valid())
    assert res.returncode == 0, res.stderr


# --- (c) a status with every field set reads back unchanged ------------------------------------------


def _valid_spec_parts() -> dict[type[BaseModel], Any]:
    """Spec models reused in the status (they carry patterns and rules): one valid, fully set instance
    of each, taken from examples/full.yaml, which sets every spec field."""
    spec = ModelDeploymentSpec.model_validate(yaml.safe_load((EXAMPLES / "full.yaml").read_text())["spec"])
    found: dict[type[BaseModel], Any] = {}

    def visit(value: Any) -> None:
        if isinstance(value, BaseModel):
            found.setdefault(type(value), value.model_dump(mode="json"))
            for name in type(value).model_fields:
                visit(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    visit(spec)
    return found


def _sample(annotation: Any, name: str) -> Any:
    """A non-default value for every field of a type, recursively (so a new status field is covered)."""
    if isinstance(annotation, type) and annotation in SPEC_PARTS:
        return copy.deepcopy(SPEC_PARTS[annotation])
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _sample(args[0], name)
    if origin in (typing.Union, types.UnionType):
        return _sample(args[0], name)
    if origin is list:
        return [_sample(args[0], name)]
    if origin is dict:
        return {"k": _sample(args[1], name)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {f: _sample(info.annotation, f) for f, info in annotation.model_fields.items()}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return list(annotation)[-1].value
    if annotation is bool:
        return True
    if annotation is int:
        return 7
    if annotation is float:
        return 0.375
    if annotation is str:
        return f"{name}-value"
    raise AssertionError(f"no sample for {name}: {annotation!r}")


SPEC_PARTS = _valid_spec_parts()


def test_status_with_every_field_set_reads_back_unchanged(cluster: Cluster, namespace: str) -> None:
    from kubernetes import client

    # given a ModelDeployment and a status that sets every declared field
    manifest = _valid()
    manifest["metadata"]["namespace"] = namespace
    api = client.CustomObjectsApi(cluster.api_client())
    api.create_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, manifest
    )
    status = _sample(ModelDeploymentStatus, "status")
    status["conditions"][0]["lastTransitionTime"] = "2026-01-02T03:04:05Z"
    assert ModelDeploymentStatus.model_validate(status).model_dump(mode="json") == status
    # when the operator's way of writing it, the status subresource, is used
    api.patch_namespaced_custom_object_status(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, "bad", {"status": status}
    )
    # then reading it back gives exactly what was written: nothing pruned, nothing changed
    got = api.get_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, "bad"
    )
    assert json.dumps(got["status"], sort_keys=True) == json.dumps(status, sort_keys=True)
    # and the spec did not move (status writes cannot change it)
    assert got["spec"]["replicas"] == 2


def test_status_cannot_be_changed_through_the_main_resource(cluster: Cluster, namespace: str) -> None:
    from kubernetes import client

    # given a ModelDeployment created with a status in the body
    manifest = copy.deepcopy(_valid())
    manifest["metadata"]["namespace"] = namespace
    manifest["status"] = {"phase": "Succeeded"}
    api = client.CustomObjectsApi(cluster.api_client())
    # when it is created through the main resource
    created = api.create_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, manifest
    )
    # then the status is ignored: only the status subresource writes it
    assert "status" not in created or created["status"].get("phase") != "Succeeded"


def test_a_fresh_object_is_in_progress_before_any_operator_wrote_its_status(
    cluster: Cluster, namespace: str
) -> None:
    from kubernetes import client

    from unit.packaging.gitops import argocd_health, flux_health, kstatus

    # given a ModelDeployment just created, with no operator running for it
    manifest = _valid()
    manifest["metadata"]["namespace"] = namespace
    api = client.CustomObjectsApi(cluster.api_client())
    api.create_namespaced_custom_object(resource.GROUP, resource.VERSION, namespace, resource.PLURAL, manifest)
    # when it is read back from the API server
    got = api.get_namespaced_custom_object(resource.GROUP, resource.VERSION, namespace, resource.PLURAL, "bad")
    # then the server serves the defaulted status: generation 1 not observed yet, phase Pending
    assert got["metadata"]["generation"] == 1
    assert (got["status"]["observedGeneration"], got["status"]["phase"]) == (0, "Pending")
    # and every GitOps tool waits instead of calling it done
    assert kstatus(got) == "InProgress"
    assert argocd_health(got)[0] == "Progressing"
    assert flux_health(got) == "InProgress"
