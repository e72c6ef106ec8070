"""Fixtures for tests against the real local control plane (and a real Prometheus).

The session starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on
loopback (tollgate.testing.controlplane), or reuses the cluster KUBECONFIG points at when it is set.
Every test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster
from tollgate.testing import controlplane

REPO = Path(__file__).resolve().parents[2]

try:  # the Prometheus factory fixture lives next to its launcher's tests
    from integration.prometheus_fixtures import prometheus  # noqa: F401
except ImportError:  # pragma: no cover - only while that module does not exist yet
    pass


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


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
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """Tollgate's CRDs from crds/, applied and Established."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    assert files, "crds/ is empty: run `make crds`"
    names = []
    for f in files:
        out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f), "-o", "name")
        names += [n for n in out.stdout.split() if n]
    for n in names:
        cluster.kubectl("wait", "--for=condition=Established", n, "--timeout=60s")
    time.sleep(0.5)  # discovery of the new group reaches kubectl's cache
    return names
