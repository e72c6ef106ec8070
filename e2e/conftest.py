"""E2E fixtures: whole scenarios with the operator, Prometheus and the traffic simulator.

`E2E_BACKEND` picks where they run: `local` (default) starts the local control plane, Prometheus, the
simulator and operator processes (the same fixtures as tests/integration); `kind` needs Docker, kind
and helm (e2e/kind_backend.py) and skips the session with the reason when they are missing; `node`
runs the machine's real node with the operator image installed by its chart (e2e/node_backend.py,
root; it fails with what is missing rather than skip, since CI runs it).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent
REPO = E2E.parent
for path in (REPO / "operator", REPO / "tests", E2E):  # operator/ is a source root, never a package
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from e2e_world import LocalWorld, World  # noqa: E402
from integration.fixtures import cluster, crds, release_namespace, stack  # noqa: E402, F401

BACKEND = os.environ.get("E2E_BACKEND", "local")
BACKENDS = ("local", "kind", "node")


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(f"E2E_BACKEND={BACKEND!r}: choose one of {', '.join(BACKENDS)}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


def pytest_report_header() -> str:
    return f"e2e backend: {BACKEND}"


@pytest.fixture(scope="session")
def kind_world() -> Iterator[World]:
    from kind_backend import KindWorld, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"kind backend skipped: {reason}. Run `make e2e` without E2E_BACKEND for the local "
                    "control plane.")
    world = KindWorld().up()
    yield world
    world.down()


@pytest.fixture(scope="session")
def node_world() -> Iterator[World]:
    from node_backend import NodeWorld
    from tollgate_testkit import node

    lacking = node.missing()
    if lacking:
        pytest.fail("E2E_BACKEND=node cannot run on this host: " + "; ".join(lacking))
    world = NodeWorld()
    try:
        world.up()
        yield world
    finally:
        world.down()


@pytest.fixture
def namespace_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def bare_world(request: pytest.FixtureRequest, namespace_name: str) -> Iterator[World]:
    """The backend with a fresh namespace (world.namespace) and no operator started for it yet."""
    world: World
    if BACKEND in ("kind", "node"):
        world = request.getfixturevalue(f"{BACKEND}_world")
    else:
        world = LocalWorld(request.getfixturevalue("stack"), namespace_name)
    world.namespace = namespace_name
    world.kubectl("create", "namespace", namespace_name)
    try:
        yield world
    finally:
        if isinstance(world, LocalWorld):
            world.close()
        else:
            world.clear_faults()
        release_namespace(world.kubectl, namespace_name)


@pytest.fixture
def world(bare_world: World) -> World:
    """The backend with Tollgate acting on this test's namespace (local: one operator process)."""
    if isinstance(bare_world, LocalWorld):
        bare_world.start_operator()
    return bare_world
