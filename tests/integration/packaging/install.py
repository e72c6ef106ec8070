"""The chart's RBAC and ServiceAccount installed into the real control plane, and a kubeconfig for that identity."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from integration.cluster import Cluster
from integration.packaging import tools
from tollgate_testkit import audit

PROM_SECRET = "prom-auth"


@dataclass(frozen=True)
class Installed:
    namespace: str
    release: str
    service_account: str
    manifests: list[dict[str, Any]]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def install(cluster: Cluster, bin_dir: Path, namespace: str, release: str) -> Installed:
    """`helm template | kubectl apply` of the chart (CRDs come from the session's crds fixture)."""
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("create", "secret", "generic", PROM_SECRET, "-n", namespace, "--from-literal=token=s3cr3t")
    cluster.kubectl("create", "secret", "generic", "other-secret", "-n", namespace, "--from-literal=token=no")
    text = tools.render(bin_dir, release=release, namespace=namespace, include_crds=False,
                        values={"prometheus": {"url": "http://127.0.0.1:9090", "tokenSecret": {"name": PROM_SECRET}}})
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=text)
    manifests = tools.docs(text)
    (sa,) = [m["metadata"]["name"] for m in manifests if m["kind"] == "ServiceAccount"]
    return Installed(namespace, release, sa, manifests)


def uninstall(cluster: Cluster, inst: Installed) -> None:
    for m in inst.manifests:
        if m["kind"] in ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                         "ValidatingAdmissionPolicyBinding"):
            cluster.kubectl("delete", m["kind"].lower(), m["metadata"]["name"], "--ignore-not-found", check=False)
    cluster.kubectl("delete", "namespace", inst.namespace, "--wait=false", "--ignore-not-found", check=False)


def chart_object(inst: Installed, kind: str, name_suffix: str) -> dict[str, Any]:
    """The one rendered object of `kind` whose name ends with `name_suffix` (e.g. "-confine-operator")."""
    (found,) = [m for m in inst.manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)]
    return found


@contextlib.contextmanager
def removed(cluster: Cluster, obj: dict[str, Any]) -> Iterator[None]:
    """`obj` (a chart object, e.g. a policy binding) deleted for the block, then applied back as rendered.
    For negative controls: the same request, without the protection, shows what the protection does."""
    cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"])
    try:
        yield
    finally:
        cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(obj))


@contextlib.contextmanager
def applied(cluster: Cluster, objs: list[dict[str, Any]]) -> Iterator[None]:
    """Rendered cluster-scoped chart objects (e.g. a second release's policy) applied for the block, then deleted."""
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objs))
    try:
        yield
    finally:
        for m in objs:
            cluster.kubectl("delete", m["kind"].lower(), m["metadata"]["name"], "--ignore-not-found", check=False)


def token_kubeconfig(cluster: Cluster, inst: Installed, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (a TokenRequest token)."""
    token = cluster.kubectl("create", "token", inst.service_account, "-n", inst.namespace,
                            "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server_cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": server_cluster}],
        "users": [{"name": inst.service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": inst.service_account}}],
        "current-context": "sa",
    }))
    return path


def requests_by(audit_log: Path, user: str, since: str) -> list[dict[str, Any]]:
    """The API server's own record of every request `user` made since `since`."""
    return [ev for ev in audit.events(audit_log, since) if (ev.get("user") or {}).get("username") == user]


def can_i(cluster: Cluster, user: str, *args: str) -> bool:
    res = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "auth", "can-i", *args,
                          f"--as={user}"], capture_output=True, text=True, timeout=60, check=False)
    answer = res.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {args}: {res.stdout} {res.stderr}"
    return answer == "yes"
