"""Honest shares: what each step really gives the canary, and when that misses its weight."""

from __future__ import annotations

from tollgate.api.spec import RouterKind
from tollgate.engine import shares

REPLICAS = RouterKind.REPLICAS
GATEWAY = RouterKind.GATEWAY_API


def test_two_replicas_give_the_ten_percent_step_fifty_percent() -> None:
    # given the default 2 replicas and the medium tier's steps
    planned = shares.planned(REPLICAS, 2, [10, 50, 100])
    # then the 10% step runs 1 canary pod beside 1 stable pod: 50% of the requests
    assert [(s.share, s.canary_pods, s.stable_pods) for s in planned] == [(50.0, 1, 1), (50.0, 1, 1),
                                                                          (100.0, 2, 0)]
    assert [s.index for s in shares.beyond(planned, 5)] == [0]


def test_six_replicas_give_the_one_percent_step_a_sixth() -> None:
    (one,) = shares.planned(REPLICAS, 6, [1])
    assert round(one.share, 1) == 16.7
    assert one.describe(5) == "step 1/5 asks 1% but gets 16.7% (1 canary of 6 pods)"


def test_ten_replicas_give_ten_fifty_hundred_exactly() -> None:
    assert [s.share for s in shares.planned(REPLICAS, 10, [10, 50, 100])] == [10.0, 50.0, 100.0]
    assert shares.problem(REPLICAS, 10, [10, 50, 100], 0) is None


def test_gateway_api_gives_every_weight_exactly_whatever_the_replicas() -> None:
    planned = shares.planned(GATEWAY, 2, [1, 10, 100])
    assert [s.share for s in planned] == [1.0, 10.0, 100.0]
    assert shares.problem(GATEWAY, 1, [1, 5, 100], 0) is None


def test_replicas_for_is_the_smallest_count_within_tolerance() -> None:
    # given the medium tier's steps: 8 replicas give 12.5% and 50% (within 5 points), 7 give 57% at 50
    assert shares.replicas_for(REPLICAS, [10, 50, 100], 5) == 8
    assert shares.beyond(shares.planned(REPLICAS, 7, [10, 50, 100]), 5)
    # exact shares need 10
    assert shares.replicas_for(REPLICAS, [10, 50, 100], 0) == 10
    # a 0.5% share is out of reach below 1000 replicas: 1% needs 100
    assert shares.replicas_for(REPLICAS, [1, 100], 0) == 100


def test_problem_names_the_step_the_share_the_tolerance_and_the_fixes() -> None:
    message = shares.problem(REPLICAS, 2, [10, 50, 100], 5)
    assert message is not None
    assert "with spec.replicas 2" in message
    assert "step 1/3 asks 10% but gets 50.0% (1 canary of 2 pods)" in message
    assert "tolerance 5 percentage points" in message
    assert "set spec.replicas to 8 or more" in message
    assert "gatewayAPI" in message


def test_measured_share_is_ready_canary_pods_over_all_ready_pods() -> None:
    assert shares.measured(REPLICAS, 10, stable_ready=1, canary_ready=1) == 50.0
    assert shares.measured(REPLICAS, 10, stable_ready=9, canary_ready=1) == 10.0
    # a canary pod not Ready yet takes no traffic
    assert shares.measured(REPLICAS, 10, stable_ready=3, canary_ready=0) == 0.0
    # at weight 0 the Service selects stable only
    assert shares.measured(REPLICAS, 0, stable_ready=3, canary_ready=1) == 0.0
    assert shares.measured(REPLICAS, 10, stable_ready=0, canary_ready=0) is None
    assert shares.measured(GATEWAY, 10, stable_ready=9, canary_ready=9) == 10.0
