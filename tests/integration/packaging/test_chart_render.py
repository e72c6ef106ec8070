"""The chart passes `helm lint`, renders for Kubernetes 1.36, and the output passes kubeconform
against local schemas (kubernetes-validate's bundled ones, plus schemas generated from crds/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.packaging import tools

ALL_ON = {
    "metrics": {"serviceMonitor": {"enabled": True}},
    "modelMetrics": {"profile": "istio", "podMonitor": {"enabled": True}},
    "prometheus": {"url": "http://prometheus.monitoring:9090",
                   "tokenSecret": {"name": "prom-auth", "namespace": "monitoring"}},
    "watchNamespaces": ["ml-team", "ml-team-*"],
    "hooks": {"webhookAllowedDestinations": ["gate.example.com", "*.gates.example.com", "10.20.0.0/16"],
              "webhookDeniedCIDRs": ["10.96.0.0/12", "10.244.0.0/16", "fd00:10:96::/112"]},
}


def test_helm_lint_passes_strictly(tool_bin: Path) -> None:
    # given the chart, when helm lints it strictly (warnings fail) with defaults and with everything on
    for extra in ([], ["--set", "metrics.serviceMonitor.enabled=true", "--set", "prometheus.tokenSecret.name=x"]):
        res = tools.run(tool_bin / "helm", "lint", "--strict", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                        *extra)
        # then it reports no failures
        assert "0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("values", [{}, ALL_ON, {"replicaCount": 1, "leaderElection": {"enabled": False},
                                                 "podDisruptionBudget": {"enabled": False}}],
                         ids=["defaults", "everything-on", "single-replica"])
def test_rendered_manifests_pass_kubeconform_offline(tool_bin: Path, k8s_schemas: Path, crd_schemas: Path,
                                                     tmp_path: Path, values: dict) -> None:  # type: ignore[type-arg]
    # given the chart rendered for 1.36 with its CRDs
    out = tmp_path / "rendered.yaml"
    out.write_text(tools.render(tool_bin, values=values))
    # when kubeconform validates it strictly against local schemas only
    # (ServiceMonitor and PodMonitor are the Prometheus Operator's CRDs, whose schemas we do not ship:
    # skipped by name)
    results = tools.kubeconform(tool_bin, k8s_schemas, crd_schemas, out, skip=("ServiceMonitor", "PodMonitor"))
    # then every resource is valid, none silently skipped for want of a schema
    kinds = {r["kind"]: r["status"] for r in results}
    assert kinds.pop("ServiceMonitor", "statusSkipped") == "statusSkipped"
    assert kinds.pop("PodMonitor", "statusSkipped") == "statusSkipped"
    assert set(kinds.values()) == {"statusValid"}, kinds
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Service"} <= set(kinds)


def test_examples_pass_kubeconform_against_the_crd_schema(tool_bin: Path, k8s_schemas: Path,
                                                          crd_schemas: Path) -> None:
    # given the example ModelDeployments, when validated against the schema generated from crds/
    results = tools.kubeconform(tool_bin, k8s_schemas, crd_schemas, *sorted((tools.REPO / "examples").glob("*.yaml")))
    # then each is valid
    assert results and {r["status"] for r in results} == {"statusValid"}


def test_kubeconform_rejects_a_broken_manifest(tool_bin: Path, k8s_schemas: Path, crd_schemas: Path,
                                               tmp_path: Path) -> None:
    # given a Deployment with a misspelt field and a ModelDeployment with an unknown spec field
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n"
        "  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, "
        "spec: {containers: [{name: c, image: i}]}}\n---\n"
        "apiVersion: tollgate.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: y}\n"
        "spec: {modle: {name: y}}\n")
    # when kubeconform validates it, then it fails on both, offline
    with pytest.raises(AssertionError) as err:
        tools.kubeconform(tool_bin, k8s_schemas, crd_schemas, bad)
    assert "replica" in str(err.value) and "modle" in str(err.value)


def test_values_schema_rejects_unsafe_values(tool_bin: Path) -> None:
    # given values that would run two acting replicas, or mistype a key
    for argv, message in (
        (["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"], "needs leaderElection"),
        (["--set", "replicaCont=2"], "additional properties"),
        (["--set", "image.digest=latest"], "image/digest"),
    ):
        # when helm renders, then it refuses with a useful message
        res = tools.run(tool_bin / "helm", "template", "t", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                        *argv, check=False)
        assert res.returncode != 0 and message in res.stderr, (argv, res.stderr)


def test_a_slow_starting_replica_is_not_killed_before_it_first_answers(tool_bin: Path) -> None:
    # given the chart rendered with its defaults
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False)) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # when the kubelet probes a replica that is still starting (on the real node a loaded 2-core machine
    # took longer than liveness's 10 s + 3 x 10 s, and liveness killed it in a loop)
    startup = container["startupProbe"]
    # then a startup probe on the same /healthz gives it minutes before liveness takes over
    assert startup["httpGet"] == {"path": "/healthz", "port": "health"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["livenessProbe"]["httpGet"] == startup["httpGet"]


def _operator(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"
               and any("modeldeployments" in r["resources"] for r in d["rules"])]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return role["rules"], {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_the_gateway_dialect_is_the_platform_teams_choice_and_traefik_objects_are_granted_only_with_it(
        tool_bin: Path) -> None:
    # given the chart rendered with its defaults
    rules, env = _operator([d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False)) if d])
    # then the operator speaks the standard dialect and may not touch any traefik.io object
    assert env["TOLLGATE_GATEWAY_DIALECT"] == "standard"
    assert not [r for r in rules if "traefik.io" in r["apiGroups"]]
    # when the platform team chooses Traefik
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False,
                                                       values={"gatewayAPI": {"dialect": "traefik"}})) if d]
    rules, env = _operator(docs)
    # then the operator is told so, and is granted exactly the two kinds that dialect writes, nothing else
    assert env["TOLLGATE_GATEWAY_DIALECT"] == "traefik"
    assert [r for r in rules if "traefik.io" in r["apiGroups"]] == [
        {"apiGroups": ["traefik.io"], "resources": ["traefikservices", "middlewares"],
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]
    # and a dialect the operator does not speak is refused by the values schema
    res = tools.run(tool_bin / "helm", "template", "t", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                    "--set", "gatewayAPI.dialect=istio", check=False)
    assert res.returncode != 0 and "gatewayAPI" in res.stderr, res.stderr


def test_one_scrape_interval_tells_the_operator_how_often_to_look_and_the_pod_monitor_how_often_to_scrape(
        tool_bin: Path) -> None:
    # given the platform team's Prometheus scrapes the model pods every 5 s
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False, values={
        "modelMetrics": {"scrapeIntervalSeconds": 5, "podMonitor": {"enabled": True}}})) if d]
    # when the chart renders, then the operator looks at canaries every 5 s and the PodMonitor scrapes at 5 s,
    # with no scrape timeout longer than that (Prometheus refuses one; unset, it caps its own at the interval)
    _, env = _operator(docs)
    assert env["TOLLGATE_SCRAPE_INTERVAL"] == "5"
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert [e["interval"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["5s"]
    assert [e.get("scrapeTimeout") for e in monitor["spec"]["podMetricsEndpoints"]] == [None]
    # and the defaults are Prometheus' own default, 15 s, on both
    monitor_on = {"modelMetrics": {"podMonitor": {"enabled": True}}}
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False, values=monitor_on)) if d]
    assert _operator(docs)[1]["TOLLGATE_SCRAPE_INTERVAL"] == "15"
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert [e["interval"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["15s"]
    # and an interval the operator cannot use is refused by the values schema, naming the key
    res = tools.run(tool_bin / "helm", "template", "t", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                    "--set", "modelMetrics.scrapeIntervalSeconds=0", check=False)
    assert res.returncode != 0 and "scrapeIntervalSeconds" in res.stderr, res.stderr


def _lease_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election")]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def test_shards_are_granted_exactly_their_named_leases(tool_bin: Path) -> None:
    # given the chart's defaults: one leader Lease, get/patch by name, and a LIST (does a replica of
    # another shard count still run?)
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False)) if d]
    assert _operator(docs)[1]["TOLLGATE_SHARDS"] == "1"
    assert _lease_rules(docs) == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["tollgate-operator"],
         "verbs": ["get", "patch"]}]
    # when the platform team splits the work into three shards
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False, values={
        "leaderElection": {"shards": 3}})) if d]
    # then the operator is told so, and may read, renew and take over exactly the leader Lease and the three
    # shard and three member Leases by name (plus the LIST); still no delete, no other Lease by name
    assert _operator(docs)[1]["TOLLGATE_SHARDS"] == "3"
    rules = _lease_rules(docs)
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]} in rules
    (named,) = [r for r in rules if r.get("resourceNames")]
    assert named["verbs"] == ["get", "patch"]
    assert sorted(named["resourceNames"]) == sorted(
        ["tollgate-operator"] + [f"tollgate-operator-shard-{k}-of-3" for k in range(3)]
        + [f"tollgate-operator-member-{k}-of-3" for k in range(3)])
    assert not [r for r in rules if "delete" in r["verbs"] or "update" in r["verbs"]]
    # and shards without leader election, or beyond 64, are refused with the key named
    res = tools.run(tool_bin / "helm", "template", "t", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                    "--set", "leaderElection.shards=4", "--set", "leaderElection.enabled=false",
                    "--set", "replicaCount=1", check=False)
    assert res.returncode != 0 and "leaderElection.shards" in res.stderr, res.stderr
    res = tools.run(tool_bin / "helm", "template", "t", tools.CHART, "--kube-version", tools.KUBE_VERSION,
                    "--set", "leaderElection.shards=65", check=False)
    assert res.returncode != 0 and "shards" in res.stderr, res.stderr


def test_lease_requests_get_the_leader_election_priority_level(tool_bin: Path) -> None:
    # given the chart's defaults
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False)) if d]
    # then the operator's own Lease requests (and only those, only in the release namespace) are in the
    # API server's leader-election priority level, apart from its bulk work
    (fs,) = [d for d in docs if d["kind"] == "FlowSchema"]
    assert fs["spec"]["priorityLevelConfiguration"]["name"] == "leader-election"
    (rule,) = fs["spec"]["rules"]
    assert rule["subjects"] == [{"kind": "ServiceAccount", "serviceAccount": {
        "name": "tollgate", "namespace": "tollgate-system"}}]
    assert rule["resourceRules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                      "verbs": ["get", "list", "create", "patch", "update"],
                                      "namespaces": ["tollgate-system"]}]
    # and a platform team that may not create FlowSchemas can leave it out
    docs = [d for d in yaml.safe_load_all(tools.render(tool_bin, include_crds=False, values={
        "leaderElection": {"flowSchema": False}})) if d]
    assert not [d for d in docs if d["kind"] == "FlowSchema"]
