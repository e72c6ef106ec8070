"""Fixtures for the real node (tollgate_testkit.node): root, the node's parts and images built.

The module fixture starts the local control plane with the machine's one real node in a temporary
directory and stops it at the end; the host snapshot taken before it started is what the teardown
test compares against.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.realnode import RealNode
from tollgate_testkit import controlplane, hoststate, images, node


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.node)


@pytest.fixture(scope="module")
def real_node() -> Iterator[RealNode]:
    lacking = node.missing()
    if lacking:  # a clear failure, not a skip: CI must run these
        pytest.fail("the real node cannot run on this host: " + "; ".join(lacking))
    built = images.build()
    before = hoststate.snapshot()
    directory = Path(tempfile.mkdtemp(prefix="tollgate-node-test-"))
    state = controlplane.up(directory, real_node=True)
    images.load(Path(state.node_bin), built, (images.LOADGEN,))
    held = node.NodeState.load()
    assert held is not None
    rn = RealNode(dir=directory, state=state, before=before, images=built, pids={**state.pids, **held.pids})
    try:
        yield rn
    finally:
        rn.stop()
        os.environ.pop("KUBECONFIG_REAL_NODE", None)
