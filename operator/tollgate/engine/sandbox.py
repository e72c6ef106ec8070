"""The desired sandbox: the isolated namespace a model runs in, as Kubernetes manifests (pure).

- Namespace with Pod Security `restricted` enforced, audited and warned, pinned to a version, the
  tollgate.dev/owner-uid label (the UID of the ModelDeployment it is created for: the ownership Tollgate
  and the chart's admission policy check before any write) and the tollgate.dev/owner annotation
  (<namespace>/<name>, for people).
- NetworkPolicies: default deny (ingress and egress) for every pod; DNS to kube-system (UDP/TCP 53);
  ingress to the model port from spec.sandbox.ingressFrom and from the Prometheus namespace; egress to
  spec.sandbox.egressTo.
- ResourceQuota (spec.sandbox.quota, or derived: room for stable + a full canary + rolling surge, + 2 hook pods
  when spec.hooks has Jobs; with spec.autoscaling, for maxReplicas stable pods and a canary as large),
  LimitRange (defaults for containers that state nothing), ServiceAccount without token automount.
"""

from __future__ import annotations

import math
from typing import Any

from tollgate.api import resource
from tollgate.api.hooks import HOOK_PODS
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context
from tollgate.engine.labels import owner_labels, selector_labels
from tollgate.engine.naming import DNS_LABEL_MAX, fit, short_hash
from tollgate.engine.quantity import multiply

POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_VERSION = "v1.36"
NETWORKING_V1 = "networking.k8s.io/v1"
SANDBOX_SUFFIX_LENGTH = 6
CUT_SUFFIX_LENGTH = 16
"""Hex digits of a default name's hash: whole names, and at most for names cut to fit 63 characters."""
SURGE_FRACTION = 0.25
"""maxSurge of the Deployments' rolling updates (see workloads.py)."""

Manifest = dict[str, Any]


def default_sandbox_namespace(namespace: str, name: str, recorded: str | None = None) -> str:
    """<namespace>-<name>-<6 hex>, or, when that does not fit a DNS label, the same cut to fit with a longer
    hash (cut_suffix_length).

    The suffix hashes namespace and name apart (joined by a NUL), so a/b-c and a-b/c, which read alike,
    get different namespaces; without it the second would take over the first's sandbox. A whole name
    can be chosen by one tenant only (its prefix is the namespace), so 24 bits suffice: a collision is
    chance (one in 16 million) and still caught (the namespace then carries the other ModelDeployment's
    UID; the second is Stalled). A cut name is different: its hidden tail is free, and a tenant whose
    namespace is a dash-prefix of another's (ml, ml-fraud) could search offline for a name whose cut
    default equals one the other will use, and create it first (a denial of service). So a cut name
    carries up to 64 bits, beyond any such search, and keeps <namespace>- whole (an operator that
    watches `<namespace>-*` must see its sandboxes).

    `recorded` is status.sandboxNamespace, or the 6-hex cut name an older release created for this very
    ModelDeployment without recording it (runtime.ownership.SandboxOwnership.with_legacy): that name is
    kept, so an upgrade never moves a running sandbox or leaves one behind.
    """
    whole = f"{namespace}-{name}"
    legacy = legacy_cut_namespace(namespace, name)
    if legacy is None:
        return f"{whole}-{short_hash(namespace, name, length=SANDBOX_SUFFIX_LENGTH)}"
    if recorded == legacy:
        return legacy
    return _cut(whole, short_hash(namespace, name, length=cut_suffix_length(namespace)))


def cut_suffix_length(namespace: str) -> int:
    """Hex digits of a cut default name's hash: 16 (64 bits) while <namespace>-, the hash and the dash before
    it fit; then as many as leave <namespace>- whole (the name then shows none of metadata.name); never
    fewer than 6.

    Two cut names are equal only with equal suffix lengths: at 16 the hash protects them; between 7 and
    15 the length fixes the namespace's, and the name then starts with the whole <namespace>-, so only the
    same namespace can produce it. At 6 (namespaces of 55 characters or more) the head is cut inside the
    namespace name, as before 64-bit suffixes: tenants whose namespace names are that long and agree in
    their first 55 characters can search for each other's sandbox names (docs/operations.md)."""
    return max(SANDBOX_SUFFIX_LENGTH, min(CUT_SUFFIX_LENGTH, DNS_LABEL_MAX - len(namespace) - 2))


def legacy_cut_namespace(namespace: str, name: str) -> str | None:
    """The default of a name that must be cut as releases before 64-bit suffixes made it (6 hex), or None
    when <namespace>-<name>-<6 hex> fits (such names did not change)."""
    whole = f"{namespace}-{name}"
    if len(whole) + 1 + SANDBOX_SUFFIX_LENGTH <= DNS_LABEL_MAX:
        return None
    return _cut(whole, short_hash(namespace, name, length=SANDBOX_SUFFIX_LENGTH))


def _cut(whole: str, suffix: str) -> str:
    return f"{whole[: DNS_LABEL_MAX - len(suffix) - 1].rstrip('-')}-{suffix}"


def sandbox_namespace(spec: ModelDeploymentSpec, ctx: Context) -> str:
    """spec.sandbox.namespace, else the default name (see default_sandbox_namespace)."""
    if spec.sandbox.namespace:
        return spec.sandbox.namespace
    return default_sandbox_namespace(ctx.namespace, ctx.name, ctx.sandbox)


def service_account_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-model")


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> Manifest:
    meta: Manifest = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace(spec: ModelDeploymentSpec, ctx: Context) -> Manifest:
    labels = owner_labels(ctx, spec.model.name)
    labels["kubernetes.io/metadata.name"] = sandbox_namespace(spec, ctx)
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = POD_SECURITY_LEVEL
        labels[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    labels[resource.LABEL_OWNER_UID] = ctx.uid
    meta = _meta(sandbox_namespace(spec, ctx), None, labels)
    meta["annotations"] = {resource.ANNOTATION_OWNER: f"{ctx.namespace}/{ctx.name}"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def network_policies(spec: ModelDeploymentSpec, ctx: Context) -> list[Manifest]:
    ns = sandbox_namespace(spec, ctx)
    labels = owner_labels(ctx, spec.model.name)
    port = spec.runtime.port

    def policy(name: str, body: Manifest) -> Manifest:
        return {"apiVersion": NETWORKING_V1, "kind": "NetworkPolicy",
                "metadata": _meta(name, ns, labels), "spec": body}

    out = [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-dns", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }),
    ]
    peers: list[Manifest] = []
    for peer in spec.sandbox.ingressFrom:
        entry: Manifest = {}
        if peer.namespaceSelector is not None:
            entry["namespaceSelector"] = {"matchLabels": dict(peer.namespaceSelector.matchLabels)}
        if peer.podSelector is not None:
            entry["podSelector"] = {"matchLabels": dict(peer.podSelector.matchLabels)}
        peers.append(entry)
    prometheus = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": spec.sandbox.prometheusNamespace}}}
    peers.append(prometheus)
    ingress: list[Manifest] = [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}]
    if spec.metrics.port is not None and spec.metrics.port != port:
        # Prometheus scrapes the metrics port (spec.metrics.port); callers only reach the model port.
        ingress.append({"from": [prometheus], "ports": [{"protocol": "TCP", "port": spec.metrics.port}]})
    out.append(policy("allow-model-ingress", {
        "podSelector": {"matchLabels": selector_labels(ctx)},
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    }))
    if spec.sandbox.egressTo:
        rules: list[Manifest] = []
        for egress in spec.sandbox.egressTo:
            rule: Manifest = {"to": [{"ipBlock": {"cidr": egress.cidr}}]}
            if egress.ports:
                rule["ports"] = [{"protocol": "TCP", "port": p} for p in egress.ports]
            rules.append(rule)
        out.append(policy("allow-model-egress", {
            "podSelector": {"matchLabels": selector_labels(ctx)},
            "policyTypes": ["Egress"],
            "egress": rules,
        }))
    return out


def max_pods(replicas: int) -> int:
    """Pods the sandbox may need at once: stable + a full canary + the rolling-update surge of one."""
    return 2 * replicas + math.ceil(replicas * SURGE_FRACTION)


def quota_hard(spec: ModelDeploymentSpec) -> dict[str, str]:
    """ResourceQuota hard limits: spec.sandbox.quota (extended resources as requests.<name>), else
    the runtime's requests and limits times max_pods(replicas, or autoscaling.maxReplicas), plus the pod
    count: the autoscaler can grow the stable track to maxReplicas, and a canary then as large."""
    if spec.sandbox.quota:
        hard: dict[str, str] = {}
        for name, value in spec.sandbox.quota.items():
            extended = "/" in name and not name.startswith(("requests.", "limits."))
            hard[f"requests.{name}" if extended else name] = value
        return dict(sorted(hard.items()))
    most = spec.autoscaling.maxReplicas if spec.autoscaling is not None else spec.replicas
    pods = max_pods(most) + (HOOK_PODS if spec.hooks.has_jobs else 0)
    hard = {"pods": str(pods)}
    for name, value in spec.runtime.resources.requests.items():
        hard[f"requests.{name}"] = multiply(value, pods)
    for name, value in spec.runtime.resources.limits.items():
        if "/" in name:  # extended resources are quota'd by request only (request == limit for them)
            hard.setdefault(f"requests.{name}", multiply(value, pods))
            continue
        hard[f"limits.{name}"] = multiply(value, pods)
    return dict(sorted(hard.items()))


def resource_quota(spec: ModelDeploymentSpec, ctx: Context) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": _meta("tollgate-quota", sandbox_namespace(spec, ctx), owner_labels(ctx, spec.model.name)),
        "spec": {"hard": quota_hard(spec)},
    }


def limit_range(spec: ModelDeploymentSpec, ctx: Context) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": _meta("tollgate-limits", sandbox_namespace(spec, ctx),
                          owner_labels(ctx, spec.model.name)),
        "spec": {"limits": [{
            "type": "Container",
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"cpu": "1", "memory": "1Gi"},
        }]},
    }


def service_account(spec: ModelDeploymentSpec, ctx: Context) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": _meta(service_account_name(ctx), sandbox_namespace(spec, ctx),
                          owner_labels(ctx, spec.model.name)),
        "automountServiceAccountToken": False,
    }


def sandbox_objects(spec: ModelDeploymentSpec, ctx: Context) -> tuple[Manifest, ...]:
    """Every sandbox object, namespace first."""
    return (
        namespace(spec, ctx),
        *network_policies(spec, ctx),
        resource_quota(spec, ctx),
        limit_range(spec, ctx),
        service_account(spec, ctx),
    )
