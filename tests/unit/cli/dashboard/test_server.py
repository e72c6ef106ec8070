"""The dashboard's Prometheus reads ModelDeployments without spec.metrics.profile as the operator does."""

from __future__ import annotations

import pytest

from tollgate.cli.dashboard import server
from tollgate.cli.errors import CliError


def test_the_default_profile_is_the_operators_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the operator's TOLLGATE_METRICS_PROFILE in the environment
    monkeypatch.setenv(server.PROFILE_ENV, "istio")
    source = server.series_source("http://prometheus.test:9090")
    # then the dashboard's provider reads that dialect for ModelDeployments that name none
    assert source is not None and source.__self__.profile.name == "istio"  # type: ignore[attr-defined]
    monkeypatch.delenv(server.PROFILE_ENV)
    unset = server.series_source("http://prometheus.test:9090")
    assert unset is not None and unset.__self__.profile.name == "mlserver"  # type: ignore[attr-defined]


def test_an_unknown_profile_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(server.PROFILE_ENV, "linkerd")
    with pytest.raises(CliError, match="TOLLGATE_METRICS_PROFILE='linkerd'"):
        server.series_source("http://prometheus.test:9090")
