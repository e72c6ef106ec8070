"""Liveness that reflects the watches: /healthz fails when the API server has been unreachable too long.

kopf's own liveness endpoint answers 200 while its event loop runs and every `@kopf.on.probe`
handler succeeds. kopf already ends the process when one of its root tasks dies, and it re-opens a
watch stream that ends; what it does not report is a process whose watches cannot reach the API
server at all (network partition, rejected or expired credentials): it retries forever and keeps
answering 200. This probe closes that gap: each probe makes one cheap authenticated request
(GET /version, which needs no RBAC but does need valid credentials), and fails once no request
has succeeded for longer than the grace period. The kubelet then restarts the operator, which
also re-reads a rotated ServiceAccount token. kopf caches probe results for 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client

from tollgate.adapters.errors import KubeError, kube_errors


class UnhealthyError(RuntimeError):
    """The API server has not answered for longer than the grace period."""


@dataclass
class ApiHealth:
    api: client.ApiClient
    grace: float = 30.0
    timeout: float = 3.0
    clock: Callable[[], float] = time.monotonic
    last_ok: float = field(init=False)
    last_error: str = ""

    def __post_init__(self) -> None:
        self.last_ok = self.clock()  # startup counts as contact: kopf could not start without it

    def ping(self) -> None:
        client.VersionApi(self.api).get_code(_request_timeout=self.timeout)

    def check(self) -> str:
        """One probe: 'ok', or how long the API server has been unreachable; raises past the grace."""
        try:
            with kube_errors():
                self.ping()
        except KubeError as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            self.last_ok = self.clock()
            self.last_error = ""
            return "ok"
        age = self.clock() - self.last_ok
        if age > self.grace:
            raise UnhealthyError(f"API server unreachable for {age:.0f}s (grace {self.grace:.0f}s): {self.last_error}")
        return f"unreachable for {age:.0f}s (grace {self.grace:.0f}s)"
