"""The share the canary actually served (engine.served): measured from the request counts each analysis tick
fetches, shown in status.served beside the plan (canaryShare) and the limits in force (rateLimits)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import Phase
from tollgate.engine.observations import Controls, MetricValue, SLOObservation
from tollgate.engine.served import measure

from .conftest import T0, Sim, make_spec, updated

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def requests(canary: int, stable: int, *, name: str = "error-rate", window: str = "1m",
             error: str | None = None) -> SLOObservation:
    """One SLO's observation of a healthy tick whose request-count query found these counts."""
    return SLOObservation(name=name, canary=MetricValue(0.001, canary), stable=MetricValue(0.001, stable),
                          error=error, window=window)


def spec(*steps: dict[str, Any], failure_limit: int = 1, **traffic: Any) -> ModelDeploymentSpec:
    return make_spec(traffic={**GATEWAY, **traffic}, rollout={
        "steps": list(steps), "progressDeadline": "5m",
        "analysis": {"interval": "30s", "failureLimit": failure_limit, "consecutiveErrorLimit": 2,
                     "minSamples": 100}})


def at_first_step(sim: Sim) -> None:
    """Given a stable 1.0.0, 2.0.0 is applied and its canary enters the first step once its pods are up."""
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert sim.status.canary is not None and sim.status.canary.version == "2.0.0", sim.status.message


# --- the computation ---------------------------------------------------------------------------------------


def test_a_weighted_step_served_the_canary_its_requests_over_all_requests() -> None:
    # given a tick whose window counted 20 requests answered by the canary and 80 by stable, at weight 20
    served = measure([requests(20, 80)], weight=20, mirror=0, now=T0)
    # then the canary served 20.0% of the users' requests, with the counts and the window behind it
    assert served is not None
    assert (served.canaryPercent, served.canaryRequests, served.stableRequests) == (20.0, 20, 80)
    assert (served.weight, served.window, served.at) == (20, "1m", "2026-03-01T12:00:00Z")
    # and nothing says mirrored
    assert served.mirror is None and served.mirroredRequests is None and served.mirroredPercent is None


def test_the_percent_is_rounded_to_a_tenth() -> None:
    served = measure([requests(1, 2)], weight=50, mirror=0, now=T0)
    assert served is not None and served.canaryPercent == 33.3


def test_a_canary_rate_limit_biting_shows_as_a_served_percent_below_the_weight() -> None:
    # given a 50% route weight, but the gateway sent what was over the canary's limit to stable
    served = measure([requests(100, 900)], weight=50, mirror=0, now=T0)
    # then the canary served 10%, not 50%
    assert served is not None and (served.weight, served.canaryPercent) == (50, 10.0)


def test_a_shadow_step_serves_no_user_and_its_requests_are_reported_as_mirrored_copies() -> None:
    # given a shadow step (weight 0, 50% mirrored) whose canary answered 40 copies while stable answered 80 users
    served = measure([requests(40, 80)], weight=0, mirror=50, now=T0)
    # then no user request is counted for the canary, and the copies are reported apart, as copies
    assert served is not None
    assert (served.canaryPercent, served.canaryRequests, served.stableRequests) == (0.0, 0, 80)
    assert (served.mirror, served.mirroredRequests, served.mirroredPercent) == (50, 40, 50.0)


def test_a_canary_rate_limit_dropping_copies_shows_as_a_mirrored_percent_below_the_mirror() -> None:
    served = measure([requests(5, 100)], weight=0, mirror=100, now=T0)
    assert served is not None and (served.mirror, served.mirroredPercent) == (100, 5.0)


def test_copies_counted_over_the_live_requests_read_as_every_request_copied_never_more() -> None:
    # given a shadow step whose young canary series Prometheus extrapolated to more copies than live requests
    # (seen in CI: 137.8% for a 50% mirror over a blended window)
    served = measure([requests(138, 100)], weight=0, mirror=50, now=T0)
    # then the percent copied is capped at every request (one copy each at most), the estimate kept as counted
    assert served is not None and (served.mirroredPercent, served.mirroredRequests) == (100.0, 138)


def test_no_request_in_the_window_is_no_share() -> None:
    assert measure([requests(0, 0)], weight=50, mirror=0, now=T0) is None
    # a shadow step with copies but no live request to relate them to has no share either
    assert measure([requests(10, 0)], weight=0, mirror=50, now=T0) is None


def test_without_a_canary_taking_requests_there_is_no_share() -> None:
    assert measure([requests(0, 100)], weight=0, mirror=0, now=T0) is None


def test_provider_errors_give_no_counts_and_no_share() -> None:
    assert measure([requests(0, 0, error="timeout")], weight=50, mirror=0, now=T0) is None
    assert measure([], weight=50, mirror=0, now=T0) is None


def test_the_counts_come_from_the_observation_with_the_most_requests_free_of_errors() -> None:
    # given a tick where one SLO failed, one found fewer requests (a late scrape) and one found the most
    observed = [requests(999, 1, name="latency-p99", error="timeout"), requests(10, 30, name="score-shift"),
                requests(25, 75, name="error-rate", window="2m")]
    served = measure(observed, weight=25, mirror=0, now=T0)
    # then the share is the one with the most requests among those without an error
    assert served is not None and (served.canaryRequests, served.stableRequests, served.window) == (25, 75, "2m")


def test_a_window_reaching_back_before_the_step_is_marked_blended() -> None:
    # given a 1m window, the step having started 30s before the tick
    blended = measure([requests(20, 80)], weight=20, mirror=0, now=T0, step_started=T0 - timedelta(seconds=30))
    # then the share says it includes the previous step's split; a window wholly inside the step does not
    whole = measure([requests(20, 80)], weight=20, mirror=0, now=T0, step_started=T0 - timedelta(seconds=60))
    assert blended is not None and blended.blended is True
    assert whole is not None and whole.blended is None


# --- in a rollout ------------------------------------------------------------------------------------------


def test_status_shows_a_canary_rate_limit_biting_route_weight_50_served_10() -> None:
    # given a canary at a 50% step that holds (5m pause), limited to 5 requests per second at the gateway
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}, canaryRateLimit=5),
              dialect=GatewayDialect.TRAEFIK)
    at_first_step(sim)
    assert sim.status.served is None  # no tick yet: nothing measured
    # when an analysis tick counts 100 canary and 900 stable requests over its window
    sim.tick((requests(100, 900),))
    # then status shows the plan, the limit in force and what was served: weight 50, served 10%
    st = sim.status
    assert (st.canaryWeight, st.canaryShare) == (50, 50.0)
    assert st.rateLimits is not None and st.rateLimits.canary == 5
    assert st.served is not None and (st.served.weight, st.served.canaryPercent) == (50, 10.0)
    assert (st.served.canaryRequests, st.served.stableRequests) == (100, 900)
    # and the first tick's 1m window began before the step did (30s earlier): it says so
    assert st.served.blended is True
    # when the next tick comes, its window wholly inside the step
    sim.tick((requests(110, 890),))
    assert sim.status.served is not None and sim.status.served.blended is None
    assert sim.status.served.canaryPercent == 11.0
    # and a decision without a tick keeps the last measurement
    before = sim.status.served
    sim.step(after=1)
    assert sim.status.served == before


def test_a_tick_that_completes_its_step_keeps_the_share_measured_under_that_steps_weight() -> None:
    # given a canary at its 10% step (no pause: one passing tick completes it)
    sim = Sim(spec({"weight": 10}, {"weight": 50}, {"weight": 100}))
    at_first_step(sim)
    # when the tick passes with 150 canary and 1350 stable requests
    sim.tick((requests(150, 1350),))
    # then the canary moved on to 50%, and status.served says 10.0% measured at weight 10 (not at 50)
    assert sim.status.canaryWeight == 50
    assert sim.status.served is not None and (sim.status.served.weight, sim.status.served.canaryPercent) == (10, 10.0)


def test_a_shadow_step_in_status_is_marked_mirrored_and_gives_users_nothing() -> None:
    # given a canary in a 50% shadow step (held by a pause)
    sim = Sim(spec({"shadow": {"percent": 50}, "pause": "5m"}, {"weight": 10}, {"weight": 100}))
    at_first_step(sim)
    assert (sim.status.canaryWeight, sim.status.canaryMirror) == (0, 50)
    # when a tick counts 500 copies answered by the canary and 1000 user requests answered by stable
    sim.tick((requests(500, 1000),))
    # then status says users got 0% from the canary, and the canary's requests were mirrored copies
    served = sim.status.served
    assert served is not None
    assert (served.canaryPercent, served.canaryRequests, served.weight) == (0.0, 0, 0)
    assert (served.mirror, served.mirroredRequests, served.mirroredPercent) == (50, 500, 50.0)


def test_a_tick_without_requests_clears_the_share() -> None:
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}))
    at_first_step(sim)
    sim.tick((requests(150, 150),))
    assert sim.status.served is not None
    # when the next tick's window counted no request (nobody called the model)
    sim.tick((requests(0, 0),))
    # then there is no share to show (the SLO holds for lack of samples; nothing is made up)
    assert sim.status.served is None


def test_a_rolled_back_canary_has_no_share() -> None:
    # given a canary at 50% with a measured share
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}, failure_limit=0))
    at_first_step(sim)
    sim.tick((requests(500, 500),))
    assert sim.status.served is not None
    # when a failing tick rolls it back (error rate 20%, with requests counted)
    failing = SLOObservation(name="error-rate", canary=MetricValue(0.2, 500), stable=MetricValue(0.001, 500),
                             window="1m")
    sim.tick((failing,))
    # then no canary, no share
    assert sim.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and sim.status.canary is None
    assert sim.status.served is None


def test_an_aborted_canary_has_no_share() -> None:
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}))
    at_first_step(sim)
    sim.tick((requests(500, 500),))
    sim.controls = Controls(abort="alice")
    sim.step(after=1)
    assert sim.status.canary is None and sim.status.served is None


def test_a_new_canary_does_not_inherit_the_previous_canarys_share() -> None:
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}))
    at_first_step(sim)
    sim.tick((requests(500, 500),))
    assert sim.status.served is not None
    # when 3.0.0 supersedes 2.0.0
    sim.set_version("3.0.0")
    sim.step(after=1)
    # then the share measured for 2.0.0 is gone
    assert sim.status.canary is not None and sim.status.canary.version == "3.0.0"
    assert sim.status.served is None


def test_a_promoting_canary_has_no_share() -> None:
    sim = Sim(spec({"weight": 50}, {"weight": 100}))
    at_first_step(sim)
    sim.tick((requests(500, 500),))  # 50% passes, 100% entered
    assert sim.status.canaryWeight == 100 and sim.status.served is not None
    sim.tick((requests(1000, 0),))   # 100% passes: promotion starts
    assert sim.status.phase is Phase.PROMOTING, sim.status.message
    assert sim.status.served is None


def test_a_plan_change_that_restarts_the_canary_clears_the_share() -> None:
    # given a canary at 50% with a measured share
    sim = Sim(spec({"weight": 50, "pause": "5m"}, {"weight": 100}))
    at_first_step(sim)
    sim.tick((requests(500, 500),))
    assert sim.status.served is not None
    # when the plan changes mid-rollout (the canary restarts at step one, now 20%)
    sim.spec = updated(sim.spec, rollout={"steps": [{"weight": 20, "pause": "5m"}, {"weight": 100}],
                                          "progressDeadline": "5m",
                                          "analysis": {"interval": "30s", "minSamples": 100}})
    sim.step(after=1)
    # then the share measured under the old plan is not shown as the new step's
    assert sim.status.canaryWeight == 20 and sim.status.served is None
