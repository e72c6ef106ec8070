"""Desired sandbox objects."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tollgate.api import resource
from tollgate.engine.actions import Context
from tollgate.engine.sandbox import default_sandbox_namespace, quota_hard, sandbox_namespace, sandbox_objects

from .conftest import CTX, make_spec


def by_kind(objs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def test_namespace_enforces_restricted_pod_security_pinned_and_names_its_owner() -> None:
    ns = by_kind(sandbox_objects(make_spec(), CTX), "Namespace")[0]
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.36"
    assert ns["metadata"]["annotations"][resource.ANNOTATION_OWNER] == "ml-team/fraud-scorer"
    assert labels[resource.LABEL_OWNER_UID] == CTX.uid
    assert re.fullmatch(r"ml-team-fraud-scorer-[0-9a-f]{6}", ns["metadata"]["name"])


def test_default_names_of_look_alike_modeldeployments_differ() -> None:
    # given a/b-c and a-b/c, which both read "a-b-c"
    first = sandbox_namespace(make_spec(), Context("b-c", "a", "u1", 1))
    second = sandbox_namespace(make_spec(), Context("c", "a-b", "u2", 1))
    # then their sandboxes are distinct, readable, and stable for the same input
    assert first != second
    assert first.startswith("a-b-c-") and second.startswith("a-b-c-")
    assert first == sandbox_namespace(make_spec(), Context("b-c", "a", "other-uid", 2))


@settings(max_examples=300)
@given(ns=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
       name=st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True))
def test_every_default_name_is_a_dns_label(ns: str, name: str) -> None:
    sandbox = sandbox_namespace(make_spec(), Context(name, ns, "u", 1))
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", sandbox)


def test_long_names_are_shortened_with_a_hash_and_explicit_names_win() -> None:
    ctx = Context(name="a" * 60, namespace="team-" + "b" * 40, uid="u", generation=1)
    name = sandbox_namespace(make_spec(), ctx)
    assert len(name) <= 63 and name != sandbox_namespace(make_spec(), Context("a" * 61, ctx.namespace, "u", 1))
    assert sandbox_namespace(make_spec(sandbox={"namespace": "mine"}), ctx) == "mine"


def test_a_cut_default_name_carries_64_bits_so_a_prefix_namespace_cannot_aim_at_it() -> None:
    # given tenants ml and ml-fraud, and ml-fraud's model whose <namespace>-<name> must be cut
    victim = Context(name="x" * 50, namespace="ml-fraud", uid="v", generation=1)
    target = sandbox_namespace(make_spec(), victim)
    # then the name is the cut head and 16 hex digits, a 63-character DNS label
    head, suffix = target.rsplit("-", 1)
    assert len(target) == 63 and len(suffix) == 16 and head == ("ml-fraud-" + "x" * 50)[:46]
    # and tenant ml, whose names reach the same head ("fraud-xxx..."), meets a different name for every
    # tail it tries (the search space of the old 6-hex suffix: one in 16 million per try)
    attempts = {sandbox_namespace(make_spec(), Context(name="fraud-" + "x" * 44 + f"{i:07d}"[:7], namespace="ml",
                                                       uid="a", generation=1)) for i in range(2000)}
    assert target not in attempts and len(attempts) == 2000
    assert {a.rsplit("-", 1)[0] for a in attempts} == {head}


@settings(max_examples=300)
@given(ns=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
       name=st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True))
def test_a_default_name_keeps_its_namespace_whole_up_to_55_characters(ns: str, name: str) -> None:
    # given any namespace and name; when the default sandbox name is derived
    sandbox = sandbox_namespace(make_spec(), Context(name, ns, "u", 1))
    suffix = sandbox.rsplit("-", 1)[1]
    # then an operator watching <namespace>-* sees it (as before 64-bit suffixes: namespaces up to 55)
    if len(ns) <= 55:
        assert sandbox.startswith(f"{ns}-"), sandbox
    # and a cut name carries 16 hex digits up to a 45-character namespace, then what room leaves, at least 6
    if len(f"{ns}-{name}") > 56:
        assert len(suffix) == max(6, min(16, 61 - len(ns))), sandbox
    else:
        assert len(suffix) == 6 and sandbox == f"{ns}-{name}-{suffix}"


def test_between_7_and_15_hex_digits_the_name_is_the_namespace_and_the_hash() -> None:
    # given a 50-character namespace: <namespace>- and 16 hex digits do not fit with a dash
    ns = "team-" + "c" * 45
    first = sandbox_namespace(make_spec(), Context("a" * 20, ns, "u", 1))
    second = sandbox_namespace(make_spec(), Context("b" * 20, ns, "u", 1))
    # then each is <namespace>-<11 hex>, a DNS label of 63 characters, distinct per ModelDeployment
    assert re.fullmatch(rf"{ns}-[0-9a-f]{{11}}", first) and len(first) == 62
    assert first != second and second.startswith(f"{ns}-")


def test_a_sandbox_cut_by_an_older_release_keeps_its_name() -> None:
    # given a ModelDeployment whose default sandbox was cut with a 6-hex suffix before 64-bit suffixes
    ns, name = "team-" + "b" * 40, "a" * 30
    legacy = f"{(ns + '-' + name)[:56]}-" + hashlib.sha256(f"{ns}\x00{name}".encode()).hexdigest()[:6]
    # when its status records that name, the name stays; any other recorded value does not move it
    assert sandbox_namespace(make_spec(), Context(name, ns, "u", 1, sandbox=legacy)) == legacy
    fresh = sandbox_namespace(make_spec(), Context(name, ns, "u", 1))
    assert fresh != legacy and len(fresh.rsplit("-", 1)[1]) == 16
    assert sandbox_namespace(make_spec(), Context(name, ns, "u", 1, sandbox="kube-system")) == fresh
    assert default_sandbox_namespace(ns, name, "kube-system") == fresh
    # and a name that fits keeps its 6-hex suffix whatever is recorded
    assert re.fullmatch(r"ml-fraud-[0-9a-f]{6}", sandbox_namespace(make_spec(), Context("fraud", "ml", "u", 1)))


def test_network_policies_deny_by_default_and_allow_dns_callers_prometheus_and_egress() -> None:
    spec = make_spec(sandbox={
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}],
        "egressTo": [{"cidr": "10.20.0.0/16", "ports": [443]}],
        "prometheusNamespace": "observability",
    })
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(sandbox_objects(spec, CTX), "NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["allow-dns"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    ingress = policies["allow-model-ingress"]["ingress"][0]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert {"namespaceSelector": {"matchLabels": {"team": "payments"}}} in ingress["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}} in ingress["from"]
    egress = policies["allow-model-egress"]["egress"][0]
    assert egress == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}


def test_no_egress_policy_beyond_dns_when_nothing_is_listed() -> None:
    names = {p["metadata"]["name"] for p in by_kind(sandbox_objects(make_spec(), CTX), "NetworkPolicy")}
    assert "allow-model-egress" not in names


def test_quota_is_derived_from_replicas_and_resources() -> None:
    spec = make_spec(replicas=4, runtime={"image": "i", "resources": {
        "requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"}}})
    hard = quota_hard(spec)
    assert hard["pods"] == "9"  # 4 stable + 4 canary + 1 surge
    assert hard["requests.cpu"] == "4500m"
    assert hard["requests.memory"] == "18Gi"
    assert hard["limits.memory"] == "36Gi"
    assert hard["requests.nvidia.com/gpu"] == "9"


def test_explicit_quota_maps_extended_resources_to_requests() -> None:
    hard = quota_hard(make_spec(sandbox={"quota": {"cpu": "16", "nvidia.com/gpu": "2", "pods": "20"}}))
    assert hard == {"cpu": "16", "pods": "20", "requests.nvidia.com/gpu": "2"}


def test_service_account_has_no_token_and_everything_is_labelled_without_owner_refs() -> None:
    objs = sandbox_objects(make_spec(), CTX)
    assert by_kind(objs, "ServiceAccount")[0]["automountServiceAccountToken"] is False
    assert by_kind(objs, "LimitRange") and by_kind(objs, "ResourceQuota")
    for obj in objs:
        labels = obj["metadata"]["labels"]
        assert labels[resource.LABEL_MANAGED_BY] == "tollgate"
        assert labels[resource.LABEL_MD_NAME] == CTX.name
        assert labels[resource.LABEL_MD_NAMESPACE] == CTX.namespace
        assert "ownerReferences" not in obj["metadata"]


def test_prometheus_may_reach_a_separate_metrics_port_and_callers_may_not() -> None:
    spec = make_spec(metrics={"port": 8082}, sandbox={"ingressFrom": [{"namespaceSelector": {
        "matchLabels": {"team": "web"}}}]})
    (allow,) = [o for o in sandbox_objects(spec, CTX) if o["metadata"]["name"] == "allow-model-ingress"]
    model, metrics = allow["spec"]["ingress"]
    assert model["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert {"namespaceSelector": {"matchLabels": {"team": "web"}}} in model["from"]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 8082}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": spec.sandbox.prometheusNamespace}}}]
    # and without a separate port there is one rule only
    (allow,) = [o for o in sandbox_objects(make_spec(), CTX) if o["metadata"]["name"] == "allow-model-ingress"]
    assert len(allow["spec"]["ingress"]) == 1
