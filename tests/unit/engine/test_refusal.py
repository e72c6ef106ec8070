"""A canary in flight when its spec is refused (engine.refusal): held at weight 0, restarted once accepted."""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import RouterKind
from tollgate.api.status import Phase, RateLimitStatus
from tollgate.engine.actions import Reason, RollBack, SetWeight
from tollgate.engine.observations import RoutingObservation, Track, TrackObservation
from tollgate.engine.refusal import Refusal, Switch, refuse
from tollgate.engine.rollout import refused
from unit.engine.conftest import Sim, make_spec, persisted

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
LIMIT = "spec.replicas 40 is over the platform's limit of 8: lower it"
STABLE_ONLY = RoutingObservation(sole=Track.STABLE)


def canary_with_traffic(sim: Sim) -> None:
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    sim.step(after=1)
    assert sim.status.canaryWeight == 10 and sim.status.planHash is not None


def switch_of(sim: Sim, **extra: object) -> Switch:
    """What the runtime sees of the router: the switch the last decision made, and the tracks."""
    obs = sim.observations(None)
    gateway = sim.spec.traffic.router is RouterKind.GATEWAY_API
    return Switch(route=sim.routing if gateway else None, service=None if gateway else sim.routing,
                  stable=obs.stable, canary=obs.canary, **extra)  # type: ignore[arg-type]


def on_stable(sim: Sim) -> Switch:
    """The replicas router's Service seen selecting the stable track only."""
    obs = sim.observations(None)
    return Switch(route=None, service=STABLE_ONLY, stable=obs.stable, canary=obs.canary)


def refusing(sim: Sim, switch: Switch, after: float = 1.0) -> Refusal:
    sim.now += timedelta(seconds=after)
    status = refused(sim.status, LIMIT, sim.now, sim.ctx.generation, "OverPlatformLimit")
    return refuse(status, switch, sim.now, "OverPlatformLimit")


def only(out: Refusal) -> SetWeight:
    """The one router move a refusal asks for."""
    assert len(out.actions) == 1, out.actions
    return out.actions[0]


def grown(sim: Sim, pods: int = 4) -> None:
    """The stable track scaled back and Ready at `pods` (what the router's scale leads to)."""
    revision, _ = sim.tracks["stable"]
    sim.tracks["stable"] = (revision, pods)


def test_a_refused_spec_grows_stable_back_then_takes_the_canary_off_traffic_and_keeps_its_pods() -> None:
    # given a canary with 10% of traffic on the replicas router (4 replicas: 1 canary pod, 3 stable)
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    step = sim.status.steps[0]
    assert (step.stablePods, step.canaryPods) == (3, 1)
    before = sim.status
    # when its spec is refused (over the platform's limits)
    out = refusing(sim, switch_of(sim))
    # then status says Stalled with the refusal and the hold, and why
    st = out.status
    assert st.phase is Phase.STALLED and st.message.startswith(LIMIT)
    assert "canary 2.0.0" in st.message and "held" in st.message and "restarts at step 1" in st.message
    # and it is a hold, not a rollback: no rolled-back revision, no history, the canary still named
    assert st.rolledBackRevision is None and st.history == before.history and st.canary == before.canary
    assert st.planHash is None and st.timeline[-1].reason == "OverPlatformLimit"
    # and stable grows back to the step's 4 pods first, the Service untouched: the canary keeps its 10% until
    # stable can carry all the traffic
    action = only(out)
    assert action.router is RouterKind.REPLICAS and action.fast and not action.keep_canary
    assert action.stable_replicas == step.stablePods + step.canaryPods == 4
    assert action.canary_weight == st.canaryWeight == 10 and action.canary_replicas == 1
    sim.status = persisted(st)
    # when stable is scaled but not Ready yet, then nothing more is sent and status stays as it is
    obs = sim.observations(None)
    waiting = refusing(sim, Switch(route=None, service=sim.routing, canary=obs.canary,
                                   stable=TrackObservation(revision=obs.stable.revision, desired=4, ready=3)))
    assert waiting.actions == () and waiting.status.canaryWeight == 10
    assert waiting.status.message == st.message and waiting.status.timeline == sim.status.timeline
    # when its 4 stable pods are Ready
    grown(sim)
    out = refusing(sim, switch_of(sim))
    # then the Service selects stable only (canary pods kept, stable's count left alone) and status says weight 0
    action = only(out)
    assert action.keep_canary and action.canary_weight == 0 and action.stable_replicas is None
    assert out.status.canaryWeight == 0 and out.status.canaryShare is None and out.status.timeline[-1].weight == 0
    assert "once stable's pods are Ready" in st.message and "held at weight 0" in out.status.message


def autoscaled(sim: Sim, ready: int) -> Switch:
    """The switch with the stable Deployment marked as an autoscaler's, `ready` of its 3 pods Ready."""
    obs = sim.observations(None)
    stable = TrackObservation(revision=obs.stable.revision, desired=3, ready=ready, updated=3, autoscaled=True)
    return Switch(route=None, service=sim.routing, stable=stable, canary=obs.canary)


def test_an_autoscaled_stable_track_is_left_to_its_autoscaler_and_takes_the_traffic_once_ready() -> None:
    # given a canary with traffic beside a stable Deployment marked as an autoscaler's (as watched: the refused
    # spec is not asked)
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    # when its spec is refused while the autoscaler's pods are not all Ready, then nothing is scaled or moved
    waiting = refusing(sim, autoscaled(sim, ready=2))
    assert waiting.actions == () and waiting.status.canaryWeight == 10
    assert "once stable's pods" in waiting.status.message
    # when they are, then the Service selects stable alone and its count stays the autoscaler's
    out = refusing(sim, autoscaled(sim, ready=3))
    move = only(out)
    assert move.keep_canary and move.stable_replicas is None
    assert out.status.canaryWeight == 0


def test_an_autoscaler_at_zero_never_gets_all_the_traffic() -> None:
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    obs = sim.observations(None)
    stable = TrackObservation(revision=obs.stable.revision, desired=0, ready=0, autoscaled=True)
    out = refusing(sim, Switch(route=None, service=sim.routing, stable=stable, canary=obs.canary))
    assert out.actions == () and out.status.canaryWeight == 10


def test_traffic_on_a_canary_status_no_longer_names_is_moved_to_stable_at_once() -> None:
    # given a rollback whose intent was written (no canary, weight 0) but whose router request was lost:
    # the Service still selects both tracks
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    split = sim.routing
    assert split is not None and split.sole is None
    sim.status = sim.status.model_copy(update={"canary": None, "canaryWeight": 0})
    # when the spec is refused, then the move is finished, stable scaled back as a rollback does
    out = refusing(sim, switch_of(sim))
    move = only(out)
    assert move.keep_canary and move.canary_weight == 0
    assert move.stable_replicas == 4 and "held" not in out.status.message
    # and traffic on a fallback (a failed first version's) is never moved
    fallback = RoutingObservation(sole=Track.FALLBACK)
    obs = sim.observations(None)
    assert refusing(sim, Switch(route=None, service=fallback, stable=obs.stable, canary=obs.canary)).actions == ()


def test_on_the_gateway_router_the_route_weighs_stable_alone_in_the_platforms_dialect() -> None:
    # given a canary with 10% on the gatewayAPI router, the route seen splitting traffic
    sim = Sim(make_spec(traffic=GATEWAY))
    canary_with_traffic(sim)
    assert sim.routing is not None and sim.routing.sole is None
    # when its spec is refused
    out = refusing(sim, switch_of(sim, dialect=GatewayDialect.TRAEFIK))
    # then the route's fast path moves all traffic to stable, in the platform's dialect
    action = only(out)
    assert action.router is RouterKind.GATEWAY_API and action.fast
    assert action.canary_weight == 0 and action.mirror_percent == 0 and action.dialect is GatewayDialect.TRAEFIK
    assert out.status.canaryWeight == 0


def held_at_zero(sim: Sim) -> Refusal:
    """A canary with traffic, stable's pods Ready, taken to weight 0 by a refusal whose status was written."""
    canary_with_traffic(sim)
    grown(sim)
    first = refusing(sim, switch_of(sim))
    assert first.status.canaryWeight == 0
    sim.status = persisted(first.status)
    return first


def test_a_held_canary_is_not_moved_again_and_its_note_stays_while_the_spec_is_refused() -> None:
    # given a canary held by a refusal, the router observed on stable since
    sim = Sim(make_spec())
    first = held_at_zero(sim)
    # when the refused spec is looked at again
    again = refusing(sim, on_stable(sim), after=30)
    # then nothing moves and the message is the same (nothing to write, no second event)
    assert again.actions == ()
    assert again.status.message == first.status.message
    assert len(again.status.timeline) == len(first.status.timeline)


def test_a_hold_the_router_did_not_carry_out_is_carried_out_again_from_the_observed_switch() -> None:
    # given a hold whose status was written (intent first) but whose router move was lost (a crash)
    sim = Sim(make_spec())
    first = held_at_zero(sim)
    # when the refused spec is looked at again and the Service still selects both tracks
    again = refusing(sim, switch_of(sim), after=5)
    # then the router is moved again, and status is not written anew (same message, no new timeline entry)
    move = only(again)
    assert move.keep_canary and move.canary_weight == 0
    assert again.status.message == first.status.message
    assert len(again.status.timeline) == len(first.status.timeline)


def test_once_the_spec_is_accepted_the_held_canary_restarts_at_step_one_and_is_judged_again() -> None:
    # given a canary held by a refusal, traffic on stable
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    grown(sim)
    sim.status = persisted(refusing(sim, switch_of(sim)).status)
    sim.routing = STABLE_ONLY
    # when the spec is accepted again (the same version, within the platform's limits)
    d = sim.step(after=10)
    # then the canary starts over at step 1: its plan again, its clock from now, no rollback
    assert d.status.phase is Phase.PROGRESSING and d.status.planHash is not None
    assert d.status.currentStep == 0 and d.status.passedAnalyses == 0 and not d.of_type(RollBack)
    assert d.status.canary is not None and d.status.canary.version == "2.0.0"
    assert d.status.rolledBackRevision is None
    started = [e for e in d.events if e.reason is Reason.CANARY_STARTED]
    assert started and "while its spec was refused" in started[0].message
    # and it regains traffic through the steps as any canary does
    sim.step(after=1)
    assert sim.status.canaryWeight == 10


def test_nothing_is_held_without_a_canary_with_traffic() -> None:
    # given a stable ModelDeployment (no canary)
    sim = Sim(make_spec())
    sim.deploy_stable()
    out = refusing(sim, switch_of(sim))
    assert out.actions == () and "held" not in out.status.message
    # given a canary whose pods are not Ready yet (weight 0, the Service on stable)
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.not_ready.add("canary")
    sim.step()
    sim.step()
    assert sim.status.canary is not None and sim.status.canaryWeight == 0
    out = refusing(sim, on_stable(sim))
    # then it goes on from where it is once accepted: nothing moves, its plan is kept
    assert out.actions == () and out.status.planHash == sim.status.planHash


def test_nothing_is_held_while_promoting_or_under_the_kill_switch() -> None:
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    grown(sim)
    switch = switch_of(sim)
    running = sim.status
    assert refusing(sim, switch).actions  # held, without the conditions below
    for update in ({"promotingSince": "2026-03-01T12:00:00Z"}, {"killSwitchActive": True}):
        sim.status = running.model_copy(update=update)
        out = refusing(sim, switch)
        assert out.actions == () and out.status.canaryWeight == 10, update


def test_a_kill_switch_in_the_refused_spec_gets_the_canary_off_and_says_the_fallback_waits() -> None:
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    out = refusing(sim, switch_of(sim, kill_switch=True))
    assert only(out).stable_replicas == 4
    assert "the kill switch's fallback waits for an accepted spec" in out.status.message


def test_a_shadow_step_loses_its_mirror_and_a_model_rate_limit_stays_in_status() -> None:
    # given a canary in its shadow step on the gatewayAPI router (50% mirrored, no user traffic)
    sim = Sim(make_spec(traffic=GATEWAY, rollout={"steps": [{"shadow": {"percent": 50}}, {"weight": 100}],
                                                  "analysis": {"interval": "30s", "minSamples": 100},
                                                  "progressDeadline": "5m"}))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert (sim.status.canaryWeight, sim.status.canaryMirror) == (0, 50) and sim.routing is not None
    sim.status = sim.status.model_copy(update={"rateLimits": RateLimitStatus(canary=5, model=100)})
    # when its spec is refused, then the route goes to stable alone (no mirror) and status says so
    out = refusing(sim, switch_of(sim))
    move = only(out)
    assert move.router is RouterKind.GATEWAY_API and move.mirror_percent == 0 and move.canary_weight == 0
    assert out.status.canaryMirror == 0 and "held at weight 0" in out.status.message
    # and the model's own limit is still in force (the gateway keeps it), the canary's is gone
    assert out.status.rateLimits is not None
    assert (out.status.rateLimits.canary, out.status.rateLimits.model) == (None, 100)


def test_every_router_object_seen_sending_the_canary_requests_is_moved() -> None:
    # given a replicas canary with traffic, and a route left from an earlier gatewayAPI spec
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    grown(sim)
    obs = sim.observations(None)
    split = sim.routing
    # when only the Service splits (the old route weighs stable alone), then only the Service is moved
    out = refusing(sim, Switch(route=STABLE_ONLY, service=split, stable=obs.stable, canary=obs.canary))
    assert only(out).router is RouterKind.REPLICAS and out.status.canaryWeight == 0
    # when both split, then both are moved
    both = refusing(sim, Switch(route=split, service=split, stable=obs.stable, canary=obs.canary))
    assert {a.router for a in both.actions} == {RouterKind.REPLICAS, RouterKind.GATEWAY_API}


def test_a_canary_at_weight_0_is_kept_off_even_when_a_stable_pod_drops() -> None:
    # given a canary held at weight 0 whose router move was lost (the Service still splits)
    sim = Sim(make_spec())
    first = held_at_zero(sim)
    # when a stable pod is not Ready at the next look
    grown(sim, pods=3)
    again = refusing(sim, switch_of(sim))
    # then the move is made again, without waiting, and the message does not flap
    assert only(again).canary_weight == 0 and again.status.message == first.status.message


def test_traffic_on_a_fallback_is_never_moved_even_with_a_canary_named() -> None:
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    grown(sim)
    sim.status = sim.status.model_copy(update={"fallback": sim.status.stable})
    out = refusing(sim, switch_of(sim))
    assert out.actions == () and out.status.canaryWeight == 10 and "held" not in out.status.message


def test_the_hold_note_survives_a_refusal_message_longer_than_status_keeps() -> None:
    sim = Sim(make_spec())
    canary_with_traffic(sim)
    grown(sim)
    sim.now += timedelta(seconds=1)
    status = refused(sim.status, "spec is invalid: " + "x" * 10_000, sim.now, 1, "SpecInvalid")
    out = refuse(status, switch_of(sim), sim.now, "SpecInvalid")
    assert len(out.status.message) < 4096 and out.status.message.endswith("then the canary restarts at step 1")
