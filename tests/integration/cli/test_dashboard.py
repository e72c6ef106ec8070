"""`kubectl tollgate dashboard` against the real control plane: what it says when the user lacks
rights, when the cluster or Prometheus cannot be reached, and that it recovers when rights arrive.

The page in a real browser during a rollout is e2e/test_dashboard.py; here the pages are fetched as
HTML, the dashboard running as its own process with the kubeconfig a user would have.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from integration.cli.dashboard import running_dashboard
from integration.cluster import Cluster
from integration.runtime.helpers import md_manifest
from tollgate_testkit.stack import wait_for


def limited_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    """A kubeconfig of a ServiceAccount with no RBAC, its context's namespace set to `namespace`."""
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    token = cluster.kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    admin: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    limited = {**admin, "users": [{"name": "viewer", "user": {"token": token}}],
               "contexts": [{"name": "viewer", "context": {"cluster": admin["clusters"][0]["name"],
                                                           "user": "viewer", "namespace": namespace}}],
               "current-context": "viewer"}
    path.write_text(yaml.safe_dump(limited))
    return path


def test_without_rights_the_page_says_so_and_recovers_when_a_role_is_granted(
        cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path) -> None:
    # given a ModelDeployment and a user who may read nothing
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(md_manifest("idle", "1.0.0")))
    kc = limited_kubeconfig(cluster, namespace, tmp_path / "viewer")
    with running_dashboard(kc) as dash:
        # when the user opens the dashboard, then an error page says what is missing and how to check it
        wait_for("the forbidden page", lambda: dash.get("/")[0] == 403, timeout=30)
        _, page = dash.get("/")
        assert "You may not read ModelDeployments" in page and "forbidden" in page, page
        assert "kubectl auth can-i watch modeldeployments.tollgate.dev" in page
        # when list and watch are granted in the user's own namespace only
        cluster.kubectl("create", "role", "md-reader", "--verb=get,list,watch",
                        "--resource=modeldeployments.tollgate.dev", "-n", namespace)
        cluster.kubectl("create", "rolebinding", "md-reader", "--role=md-reader",
                        f"--serviceaccount={namespace}:viewer", "-n", namespace)
        # then, without a restart, the list shows that namespace's ModelDeployments and says why only it
        wait_for("the list", lambda: dash.get("/")[0] == 200, timeout=60)
        _, page = dash.get("/")
        assert f'data-md="{namespace}/idle"' in page, page
        assert f'namespace &#34;{namespace}&#34; (you may not list ModelDeployments in all namespaces)' in page


def test_an_unreachable_cluster_gets_an_error_page(cluster: Cluster, tmp_path: Path) -> None:
    admin: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    broken = {**admin, "clusters": [{"name": admin["clusters"][0]["name"],
                                     "cluster": {**admin["clusters"][0]["cluster"], "server": "https://127.0.0.1:9"}}]}
    (tmp_path / "broken").write_text(yaml.safe_dump(broken))
    with running_dashboard(tmp_path / "broken") as dash:
        wait_for("the error page", lambda: dash.get("/")[0] == 502, timeout=60)
        _, page = dash.get("/")
        assert "The cluster cannot be reached" in page and "cannot reach the API server" in page, page
        assert "kubectl cluster-info" in page


def test_an_unreachable_prometheus_is_named_above_the_charts(cluster: Cluster, crds: list[str],
                                                             namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(md_manifest("idle", "1.0.0")))
    with running_dashboard(cluster.kubeconfig, "--prometheus-url", "http://127.0.0.1:9") as dash:
        wait_for("the object", lambda: dash.get(f"/md/{namespace}/idle")[0] == 200, timeout=30)
        code, body = dash.get(f"/md/{namespace}/idle/series")
        answer = json.loads(body)
        assert code == 502 and "Prometheus at http://127.0.0.1:9 did not answer" in answer["error"], answer
        assert "--prometheus-url" in answer["error"]


def test_slos_naming_templates_are_asked_with_the_templates_query_or_say_the_template_is_missing(
        cluster: Cluster, crds: list[str], namespace: str) -> None:
    # given a ClusterSLOTemplate, and a ModelDeployment naming it and an SLOTemplate that does not exist
    template = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ClusterSLOTemplate",
                "metadata": {"name": f"gpu-{namespace}"},
                "spec": {"query": "sum by ({{by}}) (rate(gpu_busy_seconds_total{ {{selector}} }[{{window}}]))"}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(template))
    try:
        slos = [{"name": "gpu", "max": 0.9, "templateRef": {"name": f"gpu-{namespace}"}},
                {"name": "toxicity", "max": 0.1, "templateRef": {"kind": "SLOTemplate", "name": "toxicity"}}]
        cluster.kubectl("apply", "-n", namespace, "-f", "-",
                        input=yaml.safe_dump(md_manifest("templated", "1.0.0", slos=slos)))
        # when its charts are asked for (Prometheus unreachable: each chart says what it would have asked)
        with running_dashboard(cluster.kubeconfig, "--prometheus-url", "http://127.0.0.1:9") as dash:
            wait_for("the object", lambda: dash.get(f"/md/{namespace}/templated")[0] == 200, timeout=30)
            _, body = dash.get(f"/md/{namespace}/templated/series")
        charts = {c["name"]: c for c in json.loads(body)["charts"]}
        # then the template that exists was read and queried (the error is Prometheus', not "unknown template")
        assert "unknown SLO template" not in (charts["gpu"]["error"] or ""), charts["gpu"]
        assert "127.0.0.1:9" in charts["gpu"]["error"] or "connect" in charts["gpu"]["error"].lower(), charts["gpu"]
        # and the missing one says which template is missing and where
        assert f"SLOTemplate 'toxicity' not found in namespace {namespace}" in charts["toxicity"]["error"], charts
    finally:
        cluster.kubectl("delete", "clusterslotemplate", f"gpu-{namespace}", "--ignore-not-found")
