"""A TCP relay between an operator and the API server, to cut its connections the way a partition does.

TLS passes through (the serving certificate is for 127.0.0.1); stopping the relay breaks every watch
and every request at once, and starting it again on the same port restores them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tollgate_testkit.controlplane import free_port


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


def relayed_kubeconfig(kubeconfig: str | Path, out: Path) -> tuple[Relay, Path]:
    """A started relay to the API server of `kubeconfig`, and a kubeconfig at `out` that goes through it."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port
    relay = Relay((server.hostname, server.port), free_port()).start()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    out.write_text(yaml.safe_dump(config))
    return relay, out
