"""/healthz fails when the operator's watches cannot reach the API server, and recovers with it.

The operator talks to the real API server through a TCP relay on loopback (TLS passes through; the
serving certificate is for 127.0.0.1); stopping the relay cuts every watch the way a partition does.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster
from tollgate_testkit.relay import Relay, relayed_kubeconfig
from tollgate_testkit.stack import OperatorProcess, wait_for


def healthz(op: OperatorProcess) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.fixture
def relayed(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Relay, Path]]:
    relay, path = relayed_kubeconfig(cluster.kubeconfig, tmp_path / "relayed.kubeconfig")
    yield relay, path
    relay.cut()


def test_healthz_fails_while_the_api_server_is_unreachable_and_recovers(
        crds: list[str], namespace: str, relayed: tuple[Relay, Path]) -> None:
    relay, kubeconfig = relayed
    # given an operator whose every watch goes through the relay, with a 3 s grace period
    op = OperatorProcess(str(kubeconfig), namespaces=[namespace], extra_args=["--health-grace", "3"]).start()
    try:
        assert healthz(op) == 200
        # when the API server becomes unreachable (the relay is cut: watches break, reconnects fail)
        relay.cut()
        # then /healthz fails (after the grace period and kopf's 10 s probe cache), while the process runs
        wait_for("healthz to fail", lambda: healthz(op) == 500, timeout=40, interval=1)
        assert op.proc is not None and op.proc.poll() is None
        # when the API server is reachable again, then /healthz recovers without a restart
        relay.start()
        wait_for("healthz to recover", lambda: healthz(op) == 200, timeout=40, interval=1)
    finally:
        op.stop()
