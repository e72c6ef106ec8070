"""Fixtures for the operator against the real control plane, Prometheus and the traffic simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.cluster import Cluster
from tollgate.testing.stack import OperatorProcess, Stack, running_stack


@pytest.fixture(scope="session")
def stack(cluster: Cluster, crds: list[str]) -> Iterator[Stack]:
    """Prometheus scraping the simulator, which follows every ModelDeployment on the cluster."""
    with running_stack(kubeconfig=str(cluster.kubeconfig), with_operator=False) as s:
        yield s


@pytest.fixture
def operator(stack: Stack, namespace: str) -> Iterator[OperatorProcess]:
    """An operator process for this test's namespace and its sandbox namespaces (<namespace>-*)."""
    op = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    yield op
    op.stop()
    stack.clear_faults()
