"""Prometheus fixtures for integration tests; they need no Kubernetes control plane.

conftest.py imports the `prometheus` fixture (`from integration.prometheus_fixtures import prometheus`),
so tests that only need Prometheus run without `cluster`. `serve_metrics()` is a plain context manager
(not a fixture) so tests can use it without conftest wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from tollgate_testkit.prometheus import Prometheus, ScrapeTarget

PrometheusFactory = Callable[..., Prometheus]


@pytest.fixture
def prometheus() -> Iterator[PrometheusFactory]:
    """Factory: `prometheus(targets, scrape_interval="1s")` starts one; all stop afterwards."""
    started: list[Prometheus] = []

    def make(targets: Sequence[ScrapeTarget] = (), scrape_interval: str = "1s") -> Prometheus:
        prom = Prometheus(targets, scrape_interval=scrape_interval)
        started.append(prom)
        return prom.start()

    yield make
    for prom in started:
        prom.close()


@dataclass(frozen=True)
class MetricsServer:
    """A prometheus_client HTTP server on loopback serving its own registry."""

    registry: CollectorRegistry
    address: str


@contextmanager
def serve_metrics() -> Iterator[MetricsServer]:
    """A /metrics server on a free loopback port with a fresh registry; shut down on exit."""
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield MetricsServer(registry=registry, address=f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
