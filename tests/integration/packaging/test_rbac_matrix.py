"""The chart's RBAC is not more than needed: checked in the rendered rules, and by the real API
server's authorizer (`kubectl auth can-i --as=<the ServiceAccount>`) for allowed and denied requests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster
from integration.packaging import install

FORBIDDEN_VERBS = {"escalate", "bind", "impersonate", "*"}


@pytest.fixture(scope="module")
def installed(cluster: Cluster, crds: list[str], tool_bin: Path) -> Iterator[install.Installed]:
    suffix = uuid.uuid4().hex[:6]
    inst = install.install(cluster, tool_bin, f"tollgate-rbac-{suffix}", f"tgr-{suffix}")
    yield inst
    install.uninstall(cluster, inst)


def test_rendered_rules_have_no_wildcards_no_escalation_and_no_broad_secret_access(
        installed: install.Installed) -> None:
    roles = [m for m in installed.manifests if m["kind"] in ("ClusterRole", "Role")]
    assert {r["kind"] for r in roles} == {"ClusterRole", "Role"}
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), rule
            assert not {"roles", "clusterroles", "rolebindings", "clusterrolebindings", "users", "groups",
                        "pods/exec", "pods/log", "serviceaccounts/token", "nodes"} & set(rule["resources"]), rule
            if "pods" in rule["resources"]:
                # the tracks' pods are read (why a canary is not Ready), never written
                assert rule["resources"] == ["pods"] and set(rule["verbs"]) == {"get", "list", "watch"}, rule
            if "secrets" in rule["resources"] and role["kind"] == "ClusterRole":
                assert rule["resources"] == ["secrets"], rule
                if rule["verbs"] == ["create"]:
                    # the sandbox's copy of model credentials: RBAC cannot limit create by name; the
                    # confine-operator admission policy allows only that name, only in sandboxes
                    assert "resourceNames" not in rule, rule
                elif rule.get("resourceNames") == [MODEL_CREDENTIALS_COPY]:
                    assert rule["verbs"] == ["get", "patch", "delete"], rule
                else:
                    # confirmRollout gates and model credentials: only get, only the names the chart lists
                    assert rule["verbs"] == ["get"], rule
                    assert rule["resourceNames"] in ([WEBHOOK_SECRET], [MODEL_CREDENTIALS]), rule
            elif "secrets" in rule["resources"]:
                # only in a namespaced Role, only get, only the named Prometheus credentials
                assert role["kind"] == "Role" and rule["verbs"] == ["get"]
                assert rule["resourceNames"] == [install.PROM_SECRET]


WEBHOOK_SECRET = "tollgate-confirm-rollout"
"""The chart's default hooks.webhookSecretNames: the one Secret name a confirmRollout gate may use."""
MODEL_CREDENTIALS = "model-store-credentials"
"""The chart's default modelDelivery.credentialSecretNames: the Secret name model credentials may have."""
MODEL_CREDENTIALS_COPY = "tollgate-model-credentials"
"""The sandbox's copy of those credentials (engine.model_delivery.CREDENTIALS_SECRET)."""

ALLOWED = [
    # hook Jobs (spec.hooks) in sandboxes: applied, watched, deleted
    ("create", "jobs.batch", "-n", "any-ns"), ("patch", "jobs.batch", "-n", "any-ns"),
    ("delete", "jobs.batch", "-n", "any-ns"), ("watch", "jobs.batch", "-A"),
    # confirmRollout gates: the URL and token Secret of that one name
    ("get", f"secrets/{WEBHOOK_SECRET}", "-n", "any-ns"),
    # model delivery: the credentials of that one name, and the sandbox's copy (written by apply)
    ("get", f"secrets/{MODEL_CREDENTIALS}", "-n", "any-ns"),
    ("get", f"secrets/{MODEL_CREDENTIALS_COPY}", "-n", "any-ns"),
    ("patch", f"secrets/{MODEL_CREDENTIALS_COPY}", "-n", "any-ns"),
    ("create", "secrets", "-n", "any-ns"),
    ("watch", "pods", "-A"),
    ("list", "modeldeployments.tollgate.dev", "-A"),
    ("watch", "modeldeployments.tollgate.dev", "-A"),
    ("patch", "modeldeployments.tollgate.dev", "-A"),
    ("patch", "modeldeployments.tollgate.dev", "--subresource=status", "-A"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("watch", "namespaces"),
    ("create", "deployments.apps", "-n", "any-ns"),
    ("patch", "deployments.apps", "--subresource=scale", "-n", "any-ns"),
    ("delete", "deployments.apps", "-n", "any-ns"),
    # spec.autoscaling: the stable track's HPA, applied, watched, deleted
    ("create", "horizontalpodautoscalers.autoscaling", "-n", "any-ns"),
    ("patch", "horizontalpodautoscalers.autoscaling", "-n", "any-ns"),
    ("delete", "horizontalpodautoscalers.autoscaling", "-n", "any-ns"),
    ("watch", "horizontalpodautoscalers.autoscaling", "-A"),
    ("create", "networkpolicies.networking.k8s.io", "-n", "any-ns"),
    # every kind Tollgate writes is watched, so what someone else deletes or edits comes back
    ("watch", "networkpolicies.networking.k8s.io", "-A"),
    ("watch", "services", "-A"),
    ("watch", "serviceaccounts", "-A"),
    ("watch", "resourcequotas", "-A"),
    ("watch", "limitranges", "-A"),
    ("watch", "httproutes.gateway.networking.k8s.io", "-A"),
    ("patch", "httproutes.gateway.networking.k8s.io", "-n", "any-ns"),
    ("watch", "httproutes.gateway.networking.k8s.io", "-A"),
    ("create", "resourcequotas", "-n", "any-ns"),
    ("create", "limitranges", "-n", "any-ns"),
    ("create", "serviceaccounts", "-n", "any-ns"),
    ("create", "services", "-n", "any-ns"),
    ("create", "configmaps", "-n", "any-ns"),
    ("delete", "configmaps", "-n", "any-ns"),
    ("create", "events", "-n", "any-ns"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
]


def denied(inst: install.Installed) -> list[tuple[str, ...]]:
    ns = inst.namespace
    return [
        # Secrets: nothing cluster-wide, nothing by listing, no other name, not in another namespace
        ("get", "secrets", "-A"), ("list", "secrets", "-A"), ("watch", "secrets", "-A"),
        ("list", "secrets", "-n", ns), ("watch", "secrets", "-n", ns), ("get", "secrets/other-secret", "-n", ns),
        ("get", f"secrets/{install.PROM_SECRET}", "-n", "default"),
        ("patch", "secrets/other-secret", "-n", "any-ns"), ("delete", "secrets/other-secret", "-n", "any-ns"),
        ("update", f"secrets/{MODEL_CREDENTIALS}", "-n", "any-ns"),
        ("list", "secrets", "-n", "any-ns"), ("watch", "secrets", "-n", "any-ns"),
        ("get", "secrets/other-secret", "-n", "any-ns"), ("update", f"secrets/{WEBHOOK_SECRET}", "-n", "any-ns"),
        # hook Jobs run as pods the job controller creates: the operator still creates no pods itself
        # no privilege escalation
        ("escalate", "clusterroles"), ("bind", "clusterroles"), ("escalate", "roles", "-n", ns),
        ("bind", "roles", "-n", ns), ("create", "clusterrolebindings"), ("create", "rolebindings", "-n", ns),
        ("impersonate", "users"), ("impersonate", "groups"), ("impersonate", "serviceaccounts", "-n", ns),
        ("create", "serviceaccounts", "--subresource=token", "-n", ns),
        ("create", "pods", "-n", ns), ("create", "pods", "--subresource=exec", "-n", ns),
        ("*", "*"), ("delete", "nodes"),
        # HPAs are the HPA controller's to scale with and to write status on: no status writes, no update
        ("patch", "horizontalpodautoscalers.autoscaling", "--subresource=status", "-n", ns),
        ("update", "horizontalpodautoscalers.autoscaling", "-n", ns),
        # the resource: no create, update or delete (users own their ModelDeployments), no status update
        ("create", "modeldeployments.tollgate.dev", "-A"), ("delete", "modeldeployments.tollgate.dev", "-A"),
        ("update", "modeldeployments.tollgate.dev", "-A"),
        ("update", "modeldeployments.tollgate.dev", "--subresource=status", "-A"),
        # CRDs are read-only
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        # Leases: only the named one, only in the release namespace
        ("patch", "leases.coordination.k8s.io/someone-else", "-n", ns),
        ("get", "leases.coordination.k8s.io/tollgate-operator", "-n", "default"),
        ("create", "leases.coordination.k8s.io", "-n", "default"),
        ("delete", "leases.coordination.k8s.io/tollgate-operator", "-n", ns),
        ("list", "leases.coordination.k8s.io", "-n", "default"),
        ("patch", "leases.coordination.k8s.io/tollgate-operator-shard-0-of-2", "-n", ns),
        # no reads it does not need (pods are read, their logs and exec are not; evidence ConfigMaps are
        # written and deleted by name, never read)
        ("get", "pods", "--subresource=log", "-A"), ("list", "nodes"),
        ("get", "configmaps", "-A"), ("list", "configmaps", "-A"), ("watch", "configmaps", "-A"),
        ("get", "configmaps", "-n", "kube-system"), ("list", "configmaps", "-n", ns),
    ]


def test_the_api_server_allows_what_the_operator_needs(cluster: Cluster, installed: install.Installed) -> None:
    ns = installed.namespace
    rows = [*ALLOWED, ("create", "leases.coordination.k8s.io", "-n", ns),
            ("patch", "leases.coordination.k8s.io/tollgate-operator", "-n", ns),
            ("list", "leases.coordination.k8s.io", "-n", ns),
            ("get", f"secrets/{install.PROM_SECRET}", "-n", ns)]
    refused = [row for row in rows if not install.can_i(cluster, installed.user, *row)]
    assert not refused, refused


def test_the_api_server_denies_everything_else_in_the_matrix(cluster: Cluster, installed: install.Installed) -> None:
    granted = [row for row in denied(installed) if install.can_i(cluster, installed.user, *row)]
    assert not granted, granted
