"""The platform's Gateway dialect reaches the runtime: the setting, and which traefik.io kinds the operator lists
and watches (only in the traefik dialect: the chart grants them, and their CRDs exist, only then)."""

from __future__ import annotations

import pytest

from tollgate.adapters.kube import _KINDS
from tollgate.api.routers import GatewayDialect
from tollgate.runtime import handlers
from tollgate.runtime.app import managed_kinds
from tollgate.runtime.config import parse


def test_the_dialect_defaults_to_standard_and_is_set_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse([]).gateway_dialect is GatewayDialect.STANDARD
    assert parse(["--gateway-dialect", "traefik"]).gateway_dialect is GatewayDialect.TRAEFIK
    monkeypatch.setenv("TOLLGATE_GATEWAY_DIALECT", "traefik")
    assert parse([]).gateway_dialect is GatewayDialect.TRAEFIK
    with pytest.raises(SystemExit):
        parse(["--gateway-dialect", "istio"])


def test_traefik_kinds_are_listed_only_in_the_traefik_dialect() -> None:
    standard = {kind for _, kind in managed_kinds(GatewayDialect.STANDARD)}
    traefik = {kind for _, kind in managed_kinds(GatewayDialect.TRAEFIK)}
    assert not {"TraefikService", "Middleware"} & standard
    assert traefik - standard == {"TraefikService", "Middleware"}


def test_the_watched_traefik_kinds_are_the_ones_the_operator_writes() -> None:
    watched = {plural for _, _, plural in handlers.DIALECT_CHILD_KINDS[GatewayDialect.TRAEFIK]}
    assert watched == {_KINDS[kind][0] for _, kind in managed_kinds(GatewayDialect.TRAEFIK)
                       if kind in ("TraefikService", "Middleware")}
    assert handlers.DIALECT_CHILD_KINDS[GatewayDialect.STANDARD] == ()
    # and they are streamed with Tollgate's label selector, like every other child
    assert {("traefik.io", p) for p in watched} <= handlers.WATCHED
