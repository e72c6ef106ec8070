"""`kubectl tollgate dashboard`: serve the dashboard on this machine until Ctrl-C.

It runs as the user, with the user's kubeconfig: nothing is installed in the cluster, and the API
server's RBAC decides what the page can show and which controls succeed. It listens on loopback
unless told otherwise, because the page can write controls with the user's credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from typing import TextIO

import uvicorn

from tollgate.adapters.metric_profiles import DEFAULT_PROFILE, PROFILES
from tollgate.adapters.prometheus import PrometheusProvider, _redact_url
from tollgate.adapters.slo_series import SLOSeries
from tollgate.cli.cluster import Session
from tollgate.cli.dashboard.app import Settings, create_app
from tollgate.cli.dashboard.store import Store, Watcher
from tollgate.cli.errors import CliError, Exit
from tollgate.engine.observations import AnalysisRequest

PROMETHEUS_ENV = "TOLLGATE_PROMETHEUS_URL"
PROFILE_ENV = "TOLLGATE_METRICS_PROFILE"
"""The metric profile of ModelDeployments that name none: the operator's --metrics-profile (same variable)."""


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def allowed_hosts(address: str) -> tuple[str, ...]:
    """Host headers accepted: the loopback names, plus the address itself when it is not loopback."""
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    if address not in hosts and address not in ("0.0.0.0", "::"):
        hosts.append(address)
    if address in ("0.0.0.0", "::"):
        hosts.append(socket.gethostname())
    return tuple(hosts)


def series_source(url: str | None) -> Callable[[AnalysisRequest, float, float], Sequence[SLOSeries]] | None:
    if not url:
        return None
    profile = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise CliError(f"${PROFILE_ENV}={profile!r} is not a metric profile; use one of {', '.join(sorted(PROFILES))} "
                       "(the operator's --metrics-profile)", Exit.USAGE)
    provider = PrometheusProvider(url, timeout=10.0, attempts=2, max_retry_time=10.0, profile=profile)
    return provider.series


def serve(session: Session, *, namespace: str | None, address: str, port: int, prometheus_url: str | None,
          read_only: bool, stdout: TextIO, stderr: TextIO) -> int:
    url = prometheus_url or os.environ.get(PROMETHEUS_ENV) or None
    if not is_loopback(address):
        stderr.write(f"warning: serving on {address}: anyone who reaches it acts with your kubeconfig's rights "
                     "(the page can approve, abort and kill); prefer the default 127.0.0.1\n")
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)  # connections wait for the server from now on: the URL printed below works at once
    except OSError as exc:
        raise CliError(f"cannot listen on {address}:{port}: {exc.strerror}; pick another --port "
                       "(0 takes a free one)", Exit.USAGE) from exc
    bound_port = sock.getsockname()[1]
    store = Store()
    settings = Settings(session=session, store=store, series=series_source(url),
                        prometheus=_redact_url(url) if url else None, read_only=read_only,
                        allowed_hosts=allowed_hosts(address))
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)

    async def main() -> None:
        watcher = Watcher(session, store, asyncio.get_running_loop(), namespace=namespace)
        watcher.start()
        host = f"[{address}]" if ":" in address else address
        stdout.write(f"Tollgate dashboard: http://{host}:{bound_port}/  (Ctrl-C to stop)\n")
        if not url:
            stdout.write(f"No Prometheus configured (--prometheus-url or ${PROMETHEUS_ENV}): charts are off.\n")
        stdout.flush()
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return int(Exit.INTERRUPTED)
    return int(Exit.OK)
