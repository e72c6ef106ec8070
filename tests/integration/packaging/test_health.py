"""/healthz fails when the operator's watches cannot reach the API server, and recovers with it.

The operator talks to the real API server through a TCP relay on loopback (TLS passes through; the
serving certificate is for 127.0.0.1); stopping the relay cuts every watch the way a partition does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from integration.cluster import Cluster
from tollgate_testkit.stack import OperatorProcess, free_port, wait_for


class Relay:
    """A TCP relay 127.0.0.1:port -> upstream that can be cut and restored on the same port."""

    def __init__(self, upstream: tuple[str, int], port: int):
        self.upstream, self.port = upstream, port
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Relay:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()
        return self

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


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
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port
    relay = Relay((server.hostname, server.port), free_port()).start()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    path = tmp_path / "relayed.kubeconfig"
    path.write_text(yaml.safe_dump(config))
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
