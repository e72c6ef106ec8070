"""Weights to replicas (replicas router) and route weights (gatewayAPI)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollgate.api.spec import RouterKind
from tollgate.engine.routing import effective_weight, replica_split, split


@pytest.mark.parametrize(("replicas", "weight", "expected"), [
    (4, 0, (4, 0)), (4, 5, (3, 1)), (4, 25, (3, 1)), (4, 50, (2, 2)), (4, 60, (1, 3)),
    (4, 100, (0, 4)), (1, 5, (1, 1)), (10, 10, (9, 1)), (3, 99, (1, 3)),
])
def test_replica_split_table(replicas: int, weight: int, expected: tuple[int, int]) -> None:
    assert replica_split(replicas, weight) == expected


@given(st.integers(1, 1000), st.integers(0, 100))
def test_replica_split_properties(replicas: int, weight: int) -> None:
    stable, canary = replica_split(replicas, weight)
    assert (canary == 0) == (weight == 0)
    if 0 < weight < 100:
        assert stable >= 1 and canary >= 1
        assert stable + canary <= replicas + 1
    if weight == 100:
        assert (stable, canary) == (0, replicas)


@given(st.integers(1, 1000), st.integers(0, 100))
def test_gateway_keeps_exact_weight_and_full_stable(replicas: int, weight: int) -> None:
    traffic = split(RouterKind.GATEWAY_API, replicas, weight)
    assert traffic.effective_canary_percent == weight
    assert traffic.stable_replicas == replicas
    assert traffic.canary_replicas == replica_split(replicas, weight)[1]


def test_effective_weight_is_the_pod_share() -> None:
    assert effective_weight(3, 1) == 25.0
    assert effective_weight(0, 0) == 0.0
