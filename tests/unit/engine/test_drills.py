"""Drills (engine.rules.drills), written given / when / then.

The Sim reads the router's switch back from the Service or HTTPRoute the previous decision applied, so
a decision only sees traffic on the fallback once an earlier one moved it there: exactly what a drill
times (the decision that acted on the request, to the first one that observed every request on the
target with all its pods Ready).
"""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.drills import DrillKind, DrillOutcome
from tollgate.api.status import Phase
from tollgate.engine.actions import Cause, DrillRecorded, Reason, RecordEvidence, RollBack, SetWeight
from tollgate.engine.observations import Controls, Track
from tollgate.engine.timeutil import format_time

from .conftest import Sim, make_spec, objects_of, updated

ALICE = "alice@2026-03-01T12:00:00.000000Z"
BOB = "bob@2026-03-01T12:05:00.000000Z"


def pinned() -> Sim:
    """Given 1.0.0 serving stable, with fallback 0.9.0 pinned."""
    sim = Sim(make_spec(fallback={"version": "0.9.0"}))
    sim.deploy_stable()
    return sim


def rolled_back() -> Sim:
    """Given canary 2.0.0 aborted: the spec still names it, 1.0.0 serves, fallback 0.9.0 pinned."""
    sim = pinned()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    sim.controls = Controls(abort="oncall")
    sim.step()
    assert sim.status.rolledBackRevision is not None and sim.status.canary is None
    return sim


def selector(sim: Sim) -> str | None:
    """The track the Service of the last decision selects (None: both, or no Service applied)."""
    services = objects_of(sim.decisions[-1], "Service")
    return services[0]["spec"]["selector"].get("tollgate.dev/track") if services else None


def drill_records(sim: Sim) -> list[DrillRecorded]:
    return [a for d in sim.decisions for a in d.of_type(DrillRecorded)]


# --- kill-switch drill ---------------------------------------------------------------------------------


def test_kill_switch_drill_times_the_fallback_from_observed_routing_then_restores_traffic() -> None:
    sim = pinned()
    # when alice asks for a kill-switch drill
    sim.controls = Controls(drillKillSwitch=ALICE)
    started = sim.now + timedelta(seconds=1)
    d = sim.step(after=1)
    # then it starts: the kill switch's rules run (fallback track started, stable serves until it is Ready)
    drill = d.status.lastDrill
    assert drill is not None and drill.kind is DrillKind.KILL_SWITCH and drill.outcome is DrillOutcome.RUNNING
    assert drill.requestedBy == ALICE and drill.startedAt == format_time(started)
    assert (drill.fromVersion, drill.toVersion) == ("1.0.0", "0.9.0")
    assert d.status.phase is Phase.FALLBACK and d.status.killSwitchActive
    assert "fallback" in sim.tracks and selector(sim) == "stable"
    assert Reason.DRILL_STARTED in d.event_reasons and Reason.KILL_SWITCH_ON not in d.event_reasons
    # when the fallback's pods are Ready (2 s later), the router is switched to it
    d = sim.step(after=2)
    assert selector(sim) == "fallback" and d.of_type(SetWeight)[0].fallback
    # but the switch this decision asked for is not yet observed: not timed yet
    assert d.status.lastDrill is not None and d.status.lastDrill.fallbackAt is None
    # when the next decision (0.5 s later) observes every request on the Ready fallback
    d = sim.step(after=0.5)
    drill = d.status.lastDrill
    # then the time to fallback is recorded from the two observed moments, and traffic goes back
    assert drill is not None and drill.secondsToFallback == 2.5
    assert drill.fallbackAt == format_time(started + timedelta(seconds=2.5))
    assert drill.outcome is DrillOutcome.RUNNING
    assert not d.status.killSwitchActive and selector(sim) == "stable"
    assert Reason.DRILL_MEASURED in d.event_reasons and Reason.KILL_SWITCH_OFF not in d.event_reasons
    # when the next decision observes traffic back on the Ready stable track
    d = sim.step(after=0.25)
    drill = d.status.lastDrill
    # then the drill passed, the previous state is back, and who asked is in the history
    assert drill is not None and drill.outcome is DrillOutcome.PASSED
    assert drill.secondsToRestore == 0.25
    assert d.status.phase is Phase.STABLE and "fallback" not in sim.tracks
    assert d.status.stable is not None and d.status.stable.version == "1.0.0"
    entry = d.status.history[0]
    assert (entry.result, entry.actedBy, entry.version) == ("KillSwitchDrill", ALICE, "1.0.0")
    assert "2.50s" in entry.reason
    assert drill_records(sim) == [DrillRecorded("kill-switch", "Passed", 2.5)]
    # and the token acts once: deciding again starts nothing
    d = sim.step(after=5)
    assert d.status.lastDrill == drill and not d.status.killSwitchActive


def test_a_retry_in_the_decision_that_starts_a_kill_switch_drill_is_not_lost() -> None:
    # given a rolled-back canary 2.0.0, 1.0.0 serving, fallback 0.9.0 pinned
    sim = rolled_back()
    revision = sim.status.rolledBackRevision
    # when a kill-switch drill and a retry of the rolled-back revision arrive together
    sim.controls = Controls(abort="oncall", drillKillSwitch=ALICE, retry="bob")
    d = sim.step(after=1)
    # then the drill's kill switch holds traffic on the fallback path, no canary starts, and the retry is
    # not marked handled: it waits for the switch to be released
    assert d.status.killSwitchActive and d.status.canary is None and d.status.controls.retry is None
    # when the drill has measured the fallback and released the switch
    for _ in range(3):
        d = sim.step(after=1)
        if not d.status.killSwitchActive:
            break
    assert d.status.lastDrill is not None and d.status.lastDrill.fallbackAt is not None
    # then the retry acts: the revision starts again from step one
    assert not d.status.killSwitchActive and d.status.controls.retry == "bob"
    assert Reason.RETRIED in d.event_reasons
    assert d.status.canary is not None and d.status.canary.revision == revision


def test_a_kill_switch_drill_after_a_rollback_runs_to_the_end_and_the_revision_stays_rolled_back() -> None:
    # given canary 2.0.0 aborted: the spec still names 2.0.0, 1.0.0 serves, fallback 0.9.0 pinned
    sim = rolled_back()
    revision = sim.status.rolledBackRevision
    # when a kill-switch drill is asked for
    sim.controls = Controls(abort="oncall", drillKillSwitch=ALICE)
    sim.step(after=1)
    # then it is not taken for a change of spec.model: it falls back, is timed, switches back and passes
    for _ in range(4):
        d = sim.step(after=1)
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.PASSED, drill
    assert (drill.fromVersion, drill.toVersion) == ("1.0.0", "0.9.0") and drill.secondsToFallback is not None
    # and 2.0.0 stays rolled back: stable serves alone, no canary started
    assert not d.status.killSwitchActive and d.status.canary is None
    assert d.status.rolledBackRevision == revision and selector(sim) == "stable"


def test_kill_switch_drill_whose_fallback_never_becomes_ready_fails_at_the_deadline_and_switches_back() -> None:
    sim = pinned()
    sim.not_ready = {"fallback"}
    sim.controls = Controls(drillKillSwitch=ALICE)
    d = sim.step()
    started = sim.now
    # then the runtime is woken at the drill's deadline (progressDeadline 5m), not before
    assert d.wake.deadline == started + timedelta(minutes=5)
    d = sim.step(after=60)
    assert d.status.lastDrill is not None and d.status.lastDrill.outcome is DrillOutcome.RUNNING
    assert selector(sim) == "stable"  # stable keeps serving while the fallback is not Ready
    # when the deadline passes with the fallback still not Ready
    d = sim.step(after=240)
    drill = d.status.lastDrill
    # then the drill failed, saying what was observed, and traffic is back on stable
    assert drill is not None and drill.outcome is DrillOutcome.FAILED
    assert drill.secondsToFallback is None
    assert "0/4 pods Ready" in drill.message and "fix the fallback" in drill.message
    assert not d.status.killSwitchActive and selector(sim) == "stable"
    assert Reason.DRILL_FAILED in d.event_reasons
    assert drill_records(sim) == [DrillRecorded("kill-switch", "Failed", None)]


def test_kill_switch_drill_is_timed_on_the_gateway_routes_weights() -> None:
    sim = Sim(make_spec(fallback={"version": "0.9.0"},
                        traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}))
    sim.deploy_stable()
    assert sim.routing is not None and sim.routing.sole is Track.STABLE
    sim.controls = Controls(drillKillSwitch=ALICE)
    sim.step()
    sim.step(after=1)  # fallback Ready: the route weighs it 100
    assert sim.routing is not None and sim.routing.sole is Track.FALLBACK
    d = sim.step(after=1)
    assert d.status.lastDrill is not None and d.status.lastDrill.secondsToFallback == 2.0
    d = sim.step(after=1)
    assert d.status.lastDrill is not None and d.status.lastDrill.outcome is DrillOutcome.PASSED


def test_a_real_kill_switch_interrupts_a_kill_switch_drill_and_stays_on() -> None:
    sim = pinned()
    sim.controls = Controls(drillKillSwitch=ALICE)
    sim.step()
    # when someone turns the real kill switch on mid-drill
    sim.spec = updated(sim.spec, killSwitch=True)
    d = sim.step(after=1)
    # then the drill is interrupted and the kill switch stays on (the real change wins)
    assert d.status.lastDrill is not None and d.status.lastDrill.outcome is DrillOutcome.INTERRUPTED
    assert d.status.killSwitchActive and d.status.phase is Phase.FALLBACK
    d = sim.step(after=1)
    assert d.status.killSwitchActive and selector(sim) == "fallback"


def test_a_new_revision_interrupts_a_kill_switch_drill_and_starts_its_canary() -> None:
    sim = pinned()
    sim.not_ready = {"fallback"}
    sim.controls = Controls(drillKillSwitch=ALICE)
    sim.step()
    sim.set_version("2.0.0")
    d = sim.step(after=1)
    assert d.status.lastDrill is not None and d.status.lastDrill.outcome is DrillOutcome.INTERRUPTED
    assert not d.status.killSwitchActive
    assert d.status.canary is not None and d.status.canary.version == "2.0.0"


# --- rollback drill ------------------------------------------------------------------------------------


def canary_at_step_one(sim: Sim) -> None:
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    sim.step(after=1)
    assert sim.status.canaryWeight == 10 and selector(sim) is None  # the Service selects both tracks


def test_rollback_drill_rolls_the_canary_back_as_abort_does_and_times_stable_taking_all_traffic() -> None:
    sim = Sim(make_spec())
    canary_at_step_one(sim)
    revision = sim.status.canary.revision if sim.status.canary else None
    # when bob asks for a rollback drill
    sim.controls = Controls(drillRollback=BOB)
    d = sim.step(after=1)
    started = sim.now
    # then the canary is rolled back now, with evidence saying it was a drill, not a regression
    assert d.status.canary is None and d.status.canaryWeight == 0
    assert d.status.rolledBackRevision == revision
    (rollback,) = d.of_type(RollBack)
    assert rollback.cause is Cause.DRILL
    (evidence,) = d.of_type(RecordEvidence)
    assert evidence.payload["result"] == "DrillRolledBack"
    assert "drill" in evidence.payload["message"] and "not a regression" in evidence.payload["message"]
    assert d.status.history[0].result == "DrillRolledBack" and d.status.history[0].actedBy == BOB
    drill = d.status.lastDrill
    assert drill is not None and drill.kind is DrillKind.ROLLBACK and drill.outcome is DrillOutcome.RUNNING
    assert (drill.fromVersion, drill.toVersion, drill.incident) == ("2.0.0", "1.0.0", d.status.lastIncident)
    assert selector(sim) == "stable"
    # when the next decision observes every request on the Ready stable track
    d = sim.step(after=1.5)
    drill = d.status.lastDrill
    # then the drill passed with its measured time to fallback
    assert drill is not None and drill.outcome is DrillOutcome.PASSED
    assert drill.secondsToFallback == 1.5 and drill.fallbackAt == format_time(started + timedelta(seconds=1.5))
    assert "Passed" in d.status.history[0].reason and d.status.history[0].actedBy == BOB
    assert drill_records(sim) == [DrillRecorded("rollback", "Passed", 1.5)]
    # and traffic never returns to the rolled-back canary until someone retries it
    for _ in range(3):
        d = sim.step(after=30)
        assert d.status.canary is None and d.status.phase is Phase.ROLLED_BACK and selector(sim) == "stable"
    sim.controls = Controls(drillRollback=BOB, retry="carol")
    d = sim.step()
    assert d.status.canary is not None and d.status.canary.revision == revision and d.status.currentStep == 0


def test_rollback_drill_waits_for_stable_pods_before_it_counts() -> None:
    sim = Sim(make_spec())
    canary_at_step_one(sim)
    sim.not_ready = {"stable"}  # the stable track's scale-up back to 4 pods is not Ready yet
    sim.controls = Controls(drillRollback=BOB)
    sim.step()
    d = sim.step(after=2)
    assert d.status.lastDrill is not None and d.status.lastDrill.fallbackAt is None
    sim.not_ready = set()
    d = sim.step(after=3)
    assert d.status.lastDrill is not None and d.status.lastDrill.secondsToFallback == 5.0


# --- refused -------------------------------------------------------------------------------------------


def test_a_kill_switch_drill_without_a_pinned_fallback_is_refused_naming_the_fix_and_moves_nothing() -> None:
    # given a stable version and no spec.fallback (lastKnownGood is the version serving)
    sim = Sim(make_spec())
    sim.deploy_stable()
    before = sim.tracks.copy()
    # when a kill-switch drill is asked for
    sim.controls = Controls(drillKillSwitch=ALICE)
    d = sim.step()
    # then it is refused with the fix, and nothing moves
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.REFUSED and drill.requestedBy == ALICE
    assert "no fallback pinned" in drill.message and "spec.fallback.version" in drill.message
    assert not d.status.killSwitchActive and d.status.phase is Phase.STABLE
    assert not d.of_type(SetWeight) and sim.tracks == before and selector(sim) == "stable"
    assert Reason.DRILL_REFUSED in d.event_reasons
    assert d.status.controls.drillKillSwitch == ALICE  # handled: the same token is not refused again
    assert drill_records(sim) == [DrillRecorded("kill-switch", "Refused", None)]
    d = sim.step(after=1)
    assert Reason.DRILL_REFUSED not in d.event_reasons


def test_a_rollback_drill_without_a_canary_is_refused_naming_the_fix() -> None:
    sim = pinned()
    sim.controls = Controls(drillRollback=BOB)
    d = sim.step()
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.REFUSED
    assert "no canary in progress" in drill.message and "drill kill-switch" in drill.message
    assert d.status.history == sim.decisions[-2].status.history  # nothing rolled back, nothing recorded


def test_a_kill_switch_drill_during_a_rollout_is_refused_pointing_at_the_rollback_drill() -> None:
    sim = Sim(make_spec(fallback={"version": "0.9.0"}))
    canary_at_step_one(sim)
    sim.controls = Controls(drillKillSwitch=ALICE)
    d = sim.step()
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.REFUSED and "drill rollback" in drill.message
    assert d.status.canaryWeight == 10 and not d.status.killSwitchActive


def test_a_drill_while_the_kill_switch_is_on_is_refused() -> None:
    sim = pinned()
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.settle()
    sim.controls = Controls(drillKillSwitch=ALICE)
    d = sim.step()
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.REFUSED and "unkill" in drill.message
    assert d.status.killSwitchActive


def test_a_second_drill_while_one_runs_is_refused_and_the_first_goes_on() -> None:
    sim = pinned()
    sim.not_ready = {"fallback"}
    sim.controls = Controls(drillKillSwitch=ALICE)
    sim.step()
    sim.controls = Controls(drillKillSwitch=BOB)
    d = sim.step(after=1)
    # then the refusal is an event, and status keeps the running drill's record
    assert Reason.DRILL_REFUSED in d.event_reasons
    refusal = next(e for e in d.events if e.reason is Reason.DRILL_REFUSED)
    assert BOB in refusal.message and "still running" in refusal.message
    assert d.status.lastDrill is not None and d.status.lastDrill.requestedBy == ALICE
    assert d.status.lastDrill.outcome is DrillOutcome.RUNNING and d.status.killSwitchActive


def test_a_kill_switch_drill_in_a_bake_window_is_refused_and_the_window_runs_on() -> None:
    from .test_bake import baking_spec, promoted

    # given 2.0.0 promoted and Baking (the kill switch would start its window over)
    sim = promoted(Sim(baking_spec(fallback={"version": "0.9.0"})))
    assert sim.status.phase is Phase.BAKING and sim.status.bake is not None
    bake = sim.status.bake
    # when a kill-switch drill is asked for
    sim.controls = Controls(drillKillSwitch=ALICE)
    d = sim.step(after=1)
    # then it is refused naming the window's end, nothing moves and the window is the same
    drill = d.status.lastDrill
    assert drill is not None and drill.outcome is DrillOutcome.REFUSED
    assert "bake window until" in drill.message and bake.until in drill.message
    assert not d.status.killSwitchActive and d.status.phase is Phase.BAKING and d.status.bake == bake
    # and a rollback drill is refused too: there is no canary, the version is already stable
    sim.controls = Controls(drillKillSwitch=ALICE, drillRollback=BOB)
    d = sim.step(after=1)
    assert d.status.lastDrill is not None and "no canary in progress (Baking)" in d.status.lastDrill.message
