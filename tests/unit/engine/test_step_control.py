"""The step control (tollgate.dev/step, `kubectl tollgate promote --step`): the entered step completes
now, one step at a time; gates still wait, failures still roll back."""

from __future__ import annotations

from tollgate.api.status import Phase
from tollgate.engine.actions import Reason, RollBack
from tollgate.engine.observations import Controls

from .conftest import BAD, Sim, make_spec, updated


def at_first_step(sim: Sim) -> Sim:
    """Given a stable 1.0.0, 2.0.0 at step 1 (10%), with no analysis passed yet."""
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.settle()
    assert sim.status.canaryWeight == 10 and sim.status.passedAnalyses == 0, sim.status.message
    return sim


def test_a_step_token_completes_the_current_step_and_enters_the_next_one_only() -> None:
    sim = at_first_step(Sim(make_spec()))
    # when someone asks for one step
    sim.controls = Controls(step="alice@1")
    d = sim.step(after=1)
    # then the canary is at step 2 (50%) now, not further, and the events say who skipped what
    assert d.status.canaryWeight == 50 and d.status.currentStep == 1
    assert d.event_reasons[:2] == (Reason.STEP_PROMOTED, Reason.STEP_ADVANCED)
    assert "tollgate.dev/step=alice@1" in d.events[0].message
    # and the same token does not act again
    d = sim.step(after=1)
    assert d.status.canaryWeight == 50 and Reason.STEP_PROMOTED not in d.event_reasons
    # and a new token at the last step starts the promotion
    sim.controls = Controls(step="alice@2")
    d = sim.step(after=1)
    assert Reason.PROMOTING in d.event_reasons or d.status.canaryWeight == 100
    sim.controls = Controls(step="alice@3")
    d = sim.settle()
    assert sim.status.phase is Phase.SUCCEEDED, sim.status.message


def test_a_gate_on_the_next_step_still_waits_for_approval() -> None:
    sim = at_first_step(Sim(make_spec(rollout={
        "steps": [{"weight": 10}, {"weight": 50, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "30s", "minSamples": 100}})))
    sim.controls = Controls(step="bob@1")
    d = sim.step(after=1)
    assert Reason.STEP_PROMOTED in d.event_reasons
    assert d.status.phase is Phase.AWAITING_APPROVAL and d.status.canaryWeight == 10


def test_a_failing_tick_rolls_back_even_with_a_step_token() -> None:
    sim = at_first_step(Sim(make_spec(rollout={
        "steps": [{"weight": 10}, {"weight": 50}, {"weight": 100}],
        "analysis": {"interval": "30s", "failureLimit": 0, "minSamples": 100}})))
    sim.controls = Controls(step="carol@1")
    d = sim.tick(BAD)
    assert d.of_type(RollBack) and d.status.canaryWeight == 0


def test_a_step_token_while_paused_is_recorded_and_ignored() -> None:
    sim = at_first_step(Sim(make_spec()))
    sim.spec = updated(sim.spec, paused=True)
    sim.step(after=1)
    sim.controls = Controls(step="dave@1")
    d = sim.step(after=1)
    assert d.status.canaryWeight == 10 and d.status.controls.step == "dave@1"
    # and resuming does not replay it
    sim.spec = updated(sim.spec, paused=False)
    d = sim.step(after=1)
    assert d.status.canaryWeight == 10 and Reason.STEP_PROMOTED not in d.event_reasons


def test_a_step_token_waits_for_the_canary_pods_of_the_step_then_acts_once() -> None:
    sim = at_first_step(Sim(make_spec()))
    # given the canary's pods are not Ready
    sim.not_ready.add("canary")
    sim.controls = Controls(step="erin@1")
    d = sim.step(after=1)
    # then the token waits (not recorded as handled), the weight holds
    assert d.status.canaryWeight == 10 and d.status.controls.step is None
    # when the pods are Ready, then it acts, once
    sim.not_ready.discard("canary")
    d = sim.step(after=1)
    assert d.status.canaryWeight == 50 and d.status.controls.step == "erin@1"
    assert sim.step(after=1).status.canaryWeight == 50
