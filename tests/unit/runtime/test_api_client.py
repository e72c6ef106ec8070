"""The operator's API client: 429s reach the adapter's throttle, not urllib3's hidden retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollgate.runtime.app import IO_THREADS, api_client

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_a_throttled_read_is_not_retried_out_of_sight_but_a_dropped_connection_still_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the operator's client, built from a kubeconfig
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))  # read at import
    cfg = api_client().configuration
    retries = cfg.retries
    # then a 429 with Retry-After on a GET comes back to the adapter (its throttle halves, its metric counts)
    assert not retries.is_retry("GET", 429, has_retry_after=True)
    assert not retries.is_retry("DELETE", 503, has_retry_after=True)
    # and urllib3 still retries a connection the server dropped, a few times
    assert retries.total == 3
    assert cfg.connection_pool_maxsize == IO_THREADS
