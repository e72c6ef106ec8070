"""Fixtures shared by every suite that runs on the real local control plane (integration and e2e).

A plain module, imported by tests/integration/conftest.py and e2e/conftest.py, so both suites start
the control plane, the CRDs and the stack (Prometheus scraping the traffic simulator) the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster
from tollgate.api import resource
from tollgate.engine.naming import fit
from tollgate_testkit import controlplane
from tollgate_testkit.stack import OperatorProcess, Stack, running_stack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The real control plane: reused from KUBECONFIG when set, else started for this session."""
    controlplane.build()  # cached after the first time; puts the matching kubectl on PATH
    existing = os.environ.get("KUBECONFIG")
    if existing:
        yield Cluster(Path(existing))
        return
    directory = Path(tempfile.mkdtemp(prefix="tollgate-testenv-"))
    with controlplane.running(directory) as state:
        yield Cluster(Path(state.kubeconfig))


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for it to finish)."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    release_namespace(cluster.kubectl, name)


def release_namespace(kubectl: Callable[..., subprocess.CompletedProcess[str]], name: str) -> None:
    """Delete a test's namespace and everything Tollgate made for it, even with no operator left running.

    The session's control plane, Prometheus and simulator outlive every test: a ModelDeployment whose
    operator was stopped keeps its finalizer, so its namespace never finishes deleting, and its sandbox
    (not owned by it: a namespaced object cannot own a Namespace) keeps its pods. The simulator then
    serves, and Prometheus scrapes every second, the pods of every earlier test, until the late tests'
    scrapes time out and their canaries see no data. Here the finalizers are released and the sandboxes
    (labelled with this namespace) deleted, without waiting."""
    listed = kubectl("get", "modeldeployments", "-n", name, "-o", "name", check=False)
    for ref in listed.stdout.split() if listed.returncode == 0 else []:
        kubectl("patch", ref, "-n", name, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    kubectl("delete", "namespaces", "-l", f"{resource.LABEL_MD_NAMESPACE}={fit(name)}", "--wait=false",
            "--ignore-not-found", check=False)
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """Tollgate's CRDs from crds/, applied and Established."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    assert files, "crds/ is empty: run `make crds`"
    names = []
    for f in files:
        out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f), "-o", "name")
        names += [n for n in out.stdout.split() if n]
    controlplane.wait_established(cluster.kubeconfig, names)
    time.sleep(0.5)  # discovery of the new group reaches kubectl's cache
    return names


@pytest.fixture(scope="session")
def stack(cluster: Cluster, crds: list[str]) -> Iterator[Stack]:
    """Prometheus (1s scrapes) scraping the simulator, which follows every ModelDeployment on the cluster."""
    with running_stack(kubeconfig=str(cluster.kubeconfig), with_operator=False) as s:
        yield s


@pytest.fixture
def operator(stack: Stack, namespace: str) -> Iterator[OperatorProcess]:
    """An operator process for this test's namespace and its sandbox namespaces (<namespace>-*)."""
    op = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    yield op
    if op.running:
        # The real delete path while the operator still runs: traffic back on stable, sandbox removed.
        stack.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--timeout=30s", check=False)
    op.stop()
    stack.clear_faults()
