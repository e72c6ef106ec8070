"""Fixtures for tests against the real local control plane (and a real Prometheus).

The session starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on
loopback (tollgate_testkit.controlplane), or reuses the cluster KUBECONFIG points at when it is set.
Every test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import pytest

# The control plane, CRDs, namespace, stack and operator fixtures are shared with e2e/.
from integration.fixtures import cluster, crds, namespace, operator, stack  # noqa: F401

try:  # the Prometheus factory fixture lives next to its launcher's tests
    from integration.prometheus_fixtures import prometheus  # noqa: F401
except ImportError:  # pragma: no cover - only while that module does not exist yet
    pass


NEEDS_TRAEFIK = frozenset({"traefik", "traefik_operator"})
"""Fixtures that build (or wait for) Traefik: hack/gateway/build.sh, about 20 min cold."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test `integration`; run the ones that need Traefik last. CI builds Traefik in its
    background lane and the build script waits on that lane's lock: run first, these tests would hold the
    whole stage while the lane builds; run last, the lane has had the stage's idle CPU to finish."""
    for item in items:
        item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: bool(NEEDS_TRAEFIK & set(getattr(item, "fixturenames", ()))))
