"""Example tests of the rollout rules, written given / when / then."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import HISTORY_LIMIT, HistoryEntry, ModelDeploymentStatus, Phase, Verdict
from tollgate.engine import conditions as cond
from tollgate.engine.actions import (
    ApplyObjects,
    Cause,
    DeleteObjects,
    EventType,
    Promote,
    Reason,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.observations import Controls, MetricValue, Observations, SLOObservation, TrackObservation
from tollgate.engine.rollout import decide

from .conftest import BAD, CTX, GOOD, T0, Sim, deployments_of, make_spec, objects_of, persisted, slo_obs, updated


def start_canary(sim: Sim, version: str = "2.0.0") -> None:
    """Given a stable 1.0.0, when the spec asks for `version`, the canary reaches step 1 at 10%."""
    sim.deploy_stable()
    sim.set_version(version)
    sim.step()
    sim.step()
    assert sim.status.canaryWeight == 10, sim.status.message


# --- first deployment ---------------------------------------------------------------------------


def test_first_deployment_goes_straight_to_stable_without_a_canary() -> None:
    # given a new ModelDeployment
    sim = Sim(make_spec())
    # when the first decision is made
    first = sim.step()
    # then only a stable track is created and the phase waits for its pods
    assert set(sim.tracks) == {"stable"}
    assert first.status.phase is Phase.PENDING
    assert first.status.canary is None
    # when its pods are Ready
    second = sim.step()
    # then it is Stable, lastKnownGood is that revision, and Ready=True
    assert second.status.phase is Phase.STABLE
    assert second.status.lastKnownGood == second.status.stable
    assert cond.is_true(second.status.conditions, cond.READY)
    assert cond.find(second.status.conditions, cond.RECONCILING) is None
    assert Reason.DEPLOYED in second.event_reasons


def test_the_decision_that_applies_the_sandbox_reports_it_ready_in_its_own_status() -> None:
    # given a new ModelDeployment whose sandbox no earlier decision applied
    spec = make_spec()
    fresh = Observations(generation=1, sandbox_ready=False)
    # when the first decision is made
    first = decide(spec, ModelDeploymentStatus(), fresh, T0, CTX)
    # then it applies the sandbox, and the status written after that apply already says SandboxReady
    # (one status write per new ModelDeployment fewer than a second decision to flip it)
    applied = [o["kind"] for a in first.of_type(ApplyObjects) for o in a.objects]
    assert applied[0] == "Namespace"
    assert cond.is_true(first.status.conditions, cond.SANDBOX_READY)
    # and posts no Event for it: the Deployed Event names the sandbox (one Event fewer per new object)
    assert Reason.SANDBOX_READY not in first.event_reasons
    # when the next decision sees the sandbox applied and the pods not Ready yet
    second = decide(spec, first.status, replace(fresh, sandbox_ready=True), T0 + timedelta(seconds=1), CTX)
    # then nothing about the sandbox changes: no second event, the same conditions (no status write)
    assert Reason.SANDBOX_READY not in second.event_reasons
    assert second.status.conditions == first.status.conditions


def test_a_sandbox_reported_not_ready_that_is_applied_later_gets_its_event_and_deployed_names_it() -> None:
    # given a ModelDeployment whose first decision applied nothing (a plan that cannot be carried out)
    bad = make_spec(rollout={"steps": [{"weight": 100}, {"weight": 50}]})
    first = decide(bad, ModelDeploymentStatus(), Observations(generation=1, sandbox_ready=False), T0, CTX)
    assert not cond.is_true(first.status.conditions, cond.SANDBOX_READY)
    # when the spec is fixed and the sandbox applied
    second = decide(make_spec(), first.status, Observations(generation=1, sandbox_ready=False),
                    T0 + timedelta(seconds=1), CTX)
    # then the sandbox coming back is told in an Event
    assert cond.is_true(second.status.conditions, cond.SANDBOX_READY)
    assert second.event_reasons.count(Reason.SANDBOX_READY) == 1
    # when its stable pods are Ready, then the Deployed Event names the version and the sandbox
    stable = second.status.stable
    assert stable is not None
    ready = Observations(generation=1, sandbox_ready=True, stable=TrackObservation(
        revision=stable.revision, desired=4, ready=4, updated=4))
    third = decide(make_spec(), second.status, ready, T0 + timedelta(seconds=2), CTX)
    deployed = [e.message for e in third.events if e.reason == Reason.DEPLOYED]
    assert deployed == [f"version {stable.version} ({stable.revision}) is serving from sandbox namespace "
                        f"{second.status.sandboxNamespace}"], third.events


def test_a_decision_that_applies_nothing_does_not_report_the_sandbox_ready() -> None:
    # given a ModelDeployment whose plan cannot be carried out (a step weight of 100 before the end), and no
    # sandbox applied yet
    spec = make_spec(rollout={"steps": [{"weight": 100}, {"weight": 50}]})
    # when it is decided
    decision = decide(spec, ModelDeploymentStatus(), Observations(generation=1, sandbox_ready=False), T0, CTX)
    # then nothing is applied and SandboxReady stays False
    assert not decision.of_type(ApplyObjects)
    assert not cond.is_true(decision.status.conditions, cond.SANDBOX_READY)
    assert Reason.SANDBOX_READY not in decision.event_reasons


def test_first_deployment_not_ready_within_deadline_is_stalled_and_requeued_at_the_deadline() -> None:
    # given a first deployment whose pods never become Ready
    sim = Sim(make_spec())
    sim.not_ready.add("stable")
    # when decided
    first = sim.step()
    # then the engine looks again exactly at the deadline
    assert first.requeue_after == 300.0
    # when the deadline passes
    late = sim.step(after=300)
    # then the status says Stalled (kstatus failed), with an event
    assert cond.is_true(late.status.conditions, cond.STALLED)
    assert Reason.PROGRESS_DEADLINE_EXCEEDED in late.event_reasons


def test_observed_generation_is_the_context_generation() -> None:
    d = decide(make_spec(), ModelDeploymentStatus(), Observations(generation=7), T0, CTX)
    assert d.status.observedGeneration == CTX.generation
    assert all(c.observedGeneration == CTX.generation for c in d.status.conditions)


# --- what starts a canary ---------------------------------------------------------------------


def test_replica_or_policy_changes_do_not_start_a_canary(sim: Sim) -> None:
    # given a stable deployment
    sim.deploy_stable()
    # when replicas, tier and steps change
    sim.spec = updated(sim.spec, replicas=6, riskTier="high",
                       rollout={"steps": [{"weight": 20}, {"weight": 100}]})
    d = sim.settle()
    # then no canary starts, the stable track is just resized
    assert d.status.canary is None
    assert sim.tracks["stable"][1] == 6


def test_a_model_change_starts_a_canary_that_takes_no_traffic_until_ready(sim: Sim) -> None:
    # given a stable deployment
    sim.deploy_stable()
    # when the model version changes and the canary pods are not Ready yet
    sim.set_version("2.0.0")
    sim.not_ready.add("canary")
    d = sim.step()
    # then a canary starts at weight 0; the Service selects the stable track only
    assert d.status.phase is Phase.PROGRESSING
    assert d.status.canaryWeight == 0
    assert Reason.CANARY_STARTED in d.event_reasons
    service = objects_of(d, "Service")[0]
    assert service["spec"]["selector"]["tollgate.dev/track"] == "stable"
    # when the pods become Ready, then step 1's weight is set
    sim.not_ready.clear()
    d = sim.step()
    assert d.status.canaryWeight == 10
    assert Reason.STEP_ADVANCED in d.event_reasons
    assert d.of_type(SetWeight)[0].canary_weight == 10
    # and a rise waits for the desired objects (no router fast path)
    assert not d.of_type(SetWeight)[0].fast


# --- steps and analysis -----------------------------------------------------------------------


def test_full_rollout_promotes_after_every_step_passed(sim: Sim) -> None:
    # given a canary at step 1
    start_canary(sim)
    canary = sim.status.canary
    assert canary is not None
    # when every analysis passes
    for _ in range(10):
        d = sim.tick(GOOD)
        if sim.status.phase is Phase.SUCCEEDED:
            break
    # then the canary revision is stable, lastKnownGood, history says Promoted, the canary is removed
    assert sim.status.phase is Phase.SUCCEEDED
    assert sim.status.stable is not None and sim.status.stable.revision == canary.revision
    assert sim.status.lastKnownGood == sim.status.stable
    assert sim.status.canary is None
    assert sim.status.history[0].result == "Promoted"
    assert d.of_type(Promote)[0].revision == canary.revision
    assert "canary" not in sim.tracks
    assert cond.is_true(sim.status.conditions, cond.READY)


def test_an_analysis_step_never_passes_on_time_alone(sim: Sim) -> None:
    # given a canary at step 1 (an analysis step)
    start_canary(sim)
    # when an hour passes without any analysis tick (operator down), then the decision after it
    d = sim.step(after=3600)
    # then the step has not passed and the analysis is due now
    assert d.status.currentStep == 0 and d.status.canaryWeight == 10
    assert d.requeue_after == 0.0
    # when one passing tick runs, then the step passes
    d = sim.step(slos=GOOD)
    assert d.status.canaryWeight == 50


def test_inconclusive_analysis_holds_the_step(sim: Sim) -> None:
    start_canary(sim)
    d = sim.tick((slo_obs(samples=10),))
    assert d.status.analysis[0].verdict is Verdict.INCONCLUSIVE
    assert d.status.canaryWeight == 10


def test_inconclusive_analysis_holds_only_until_max_no_data_duration_then_rolls_back(sim: Sim) -> None:
    # given a canary at step 1 whose SLO tolerates 2m without a verdict (onNoData: hold)
    start_canary(sim)
    # when every tick sees fewer than minSamples canary requests for just under 2m
    held = [sim.tick((slo_obs(samples=10),)) for _ in range(4)]  # 30s apart: 0s .. 90s into the run
    # then the step holds: no verdict, no failure, no rollback
    for d in held:
        assert d.status.analysis[0].verdict is Verdict.INCONCLUSIVE
        assert d.status.canaryWeight == 10 and d.status.phase is Phase.PROGRESSING
    # when the run without a verdict reaches 2m (failureLimit 1: the second failure rolls back)
    fail1 = sim.tick((slo_obs(samples=10),))
    assert fail1.status.analysis[0].verdict is Verdict.FAIL and fail1.status.canaryWeight == 10
    d = sim.tick((slo_obs(samples=10),))
    # then the canary is rolled back: too little traffic to judge never promotes, nor holds forever
    assert d.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and d.status.canaryWeight == 0
    assert d.status.canary is None and d.of_type(RollBack) and d.of_type(RecordEvidence)


def test_pause_and_resume_at_an_approval_gate_keeps_the_completed_step() -> None:
    # given a canary whose 25% step passed and which now waits at the 60% approval gate
    sim = Sim(make_spec(rollout={
        "steps": [{"weight": 25}, {"weight": 60, "approval": "required"}, {"weight": 100}],
        "analysis": {"interval": "30s", "minSamples": 100}, "progressDeadline": "5m"}))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    d = sim.tick()
    assert d.status.phase is Phase.AWAITING_APPROVAL and d.status.canaryWeight == 25
    # when the rollout is paused and resumed at the gate
    sim.spec = updated(sim.spec, paused=True)
    sim.step(after=1)
    sim.spec = updated(sim.spec, paused=False)
    resumed = sim.step(after=1)
    # then the gate still waits and the completed step keeps its pass
    assert resumed.status.phase is Phase.AWAITING_APPROVAL
    assert resumed.status.passedAnalyses == 1
    # and approval enters the next step
    sim.controls = Controls(approve="alice")
    assert sim.step(after=1).status.canaryWeight == 60


def test_a_step_does_not_complete_on_an_old_pass_while_prometheus_errors() -> None:
    # given a step with a 60s pause that already recorded a passing tick
    sim = Sim(make_spec(rollout={"steps": [{"weight": 10, "pause": "60s"}, {"weight": 100}],
                                 "analysis": {"interval": "30s", "consecutiveErrorLimit": 5, "minSamples": 100},
                                 "progressDeadline": "5m"}))
    start_canary(sim)
    assert sim.tick().status.passedAnalyses == 1
    # when Prometheus errors on every tick past the end of the pause
    errored = [sim.tick((slo_obs(error="connection refused"),)) for _ in range(3)]
    # then the step holds at 10%: errors are within the limit, but the old pass does not complete it
    for d in errored:
        assert d.status.canaryWeight == 10 and d.status.phase is Phase.PROGRESSING
        assert d.status.passedAnalyses == 0 and d.status.analysis[0].verdict is Verdict.ERROR
    # when Prometheus answers again with good values, then the step completes on that fresh pass
    assert sim.tick().status.canaryWeight == 100


def test_timed_pause_requeues_at_its_end_and_holds_until_then() -> None:
    # given steps with a 2m pause and no analysis on the first
    sim = Sim(make_spec(rollout={"steps": [{"weight": 10, "pause": "2m", "analysis": False}, {"weight": 100}],
                                 "analysis": {"interval": "30s"}}))
    start_canary(sim)
    # then the engine wants to look again exactly at the end of the pause
    assert sim.decisions[-1].requeue_after == 120.0
    # when 119s pass, then the step still holds
    assert sim.step(after=119).status.canaryWeight == 10
    # when the pause ends, then the next step is entered
    assert sim.step(after=1).status.canaryWeight == 100


def test_failure_over_the_limit_rolls_back_in_the_same_decision(sim: Sim) -> None:
    # given a canary at step 1 with failureLimit 1
    start_canary(sim)
    canary = sim.status.canary
    assert canary is not None
    # when one failing tick arrives, then it is counted but tolerated
    d = sim.tick(BAD)
    assert d.status.analysis[0].failures == 1
    assert d.status.canaryWeight == 10
    assert Reason.ANALYSIS_FAILED in d.event_reasons
    # when a second failing tick arrives
    d = sim.tick(BAD)
    # then traffic is back on stable in this very decision, with evidence
    assert d.status.canaryWeight == 0
    assert d.status.canary is None
    assert d.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert d.status.rolledBackRevision == canary.revision
    assert d.of_type(SetWeight)[0].canary_weight == 0
    # and traffic leaves the canary through the router's fast path, decided from the persisted status
    # alone (an operator that just restarted decides the same)
    assert d.of_type(SetWeight)[0].fast
    assert any(r.name.endswith("-canary") for a in d.of_type(DeleteObjects) for r in a.refs)
    rollback = d.of_type(RollBack)[0]
    evidence = d.of_type(RecordEvidence)[0]
    assert rollback.incident == evidence.name == d.status.lastIncident
    assert evidence.payload["canary"]["revision"] == canary.revision
    assert evidence.payload["slos"][0]["value"] == 0.2
    assert evidence.payload["observations"][0]["query"].startswith("tollgate:error-rate")
    assert evidence.payload["limits"]["failureLimit"] == 1
    assert evidence.payload["timeline"][0]["reason"] == "CanaryStarted"
    assert d.status.history[0].result == "RolledBack"
    assert d.status.history[0].incident == evidence.name
    assert any(e.type is EventType.WARNING and e.reason is Reason.ROLLED_BACK for e in d.events)
    # and the status is Stalled (kstatus failed) with RolledBack=True
    assert cond.is_true(d.status.conditions, cond.STALLED)
    assert cond.is_true(d.status.conditions, cond.ROLLED_BACK)


def test_provider_errors_are_counted_apart_and_fail_closed(sim: Sim) -> None:
    # given consecutiveErrorLimit 2 and failureLimit 1
    start_canary(sim)
    err = (slo_obs(error="prometheus unreachable"),)
    # when two errors arrive, then no failure is counted and nothing rolls back
    sim.tick(err)
    d = sim.tick(err)
    assert d.status.analysis[0].consecutiveErrors == 2
    assert d.status.analysis[0].failures == 0
    assert d.status.canary is not None
    # when a pass arrives, then the error run resets
    d = sim.tick(GOOD)
    assert d.status.analysis[0].consecutiveErrors == 0
    # when three errors in a row arrive, then it fails closed: rolled back, never promoted
    for _ in range(3):
        d = sim.tick(err)
    assert d.status.canary is None
    assert d.status.rolledBackRevision is not None
    assert Reason.ANALYSIS_ERROR in d.event_reasons


def test_progress_deadline_rolls_back_exactly_at_the_deadline(sim: Sim) -> None:
    # given a canary whose pods never become Ready
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.not_ready.add("canary")
    d = sim.step()
    # then the engine looks again exactly at the deadline (5m)
    assert d.requeue_after == 300.0
    # when 299s pass, nothing happens
    d = sim.step(after=299)
    assert d.status.canary is not None
    assert d.requeue_after == 1.0
    # when the deadline is reached, then it is rolled back with evidence
    d = sim.step(after=1)
    assert d.status.canary is None
    assert Reason.PROGRESS_DEADLINE_EXCEEDED in d.event_reasons
    assert d.of_type(RecordEvidence)


def full_traffic_spec() -> ModelDeploymentSpec:
    """A canary whose 100% step pauses 5m, longer than maxNoDataDuration (2m), judged on a score-shift
    and an error-rate with an absolute and a relative limit."""
    return make_spec(
        rollout={"steps": [{"weight": 50}, {"weight": 100, "pause": "5m"}],
                 "analysis": {"interval": "30s", "failureLimit": 1, "consecutiveErrorLimit": 2, "minSamples": 100},
                 "progressDeadline": "5m"},
        slos=[{"name": "score-shift", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "2m"},
              {"name": "error-rate", "max": 0.01, "maxIncreaseOverBaseline": 0.005,
               "onNoData": "hold", "maxNoDataDuration": "2m"}],
    )


def canary_alone(error_rate: float) -> tuple[SLOObservation, ...]:
    """A look at the 100% step once stable's requests have left the window: stable's values are empty."""
    return (SLOObservation("score-shift", MetricValue(0.50, 1000), MetricValue(None, 0), window="1m"),
            slo_obs(value=error_rate, baseline=None))


def reach_full_traffic(sim: Sim) -> None:
    """Given a stable 1.0.0 and a healthy canary 2.0.0 (same mean score), the canary reaches 100%."""
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    both = (SLOObservation("score-shift", MetricValue(0.50, 1000), MetricValue(0.50, 1000), window="1m"), slo_obs())
    for _ in range(5):
        if sim.status.canaryWeight == 100:
            break
        sim.tick(both)
    assert sim.status.canaryWeight == 100, sim.status.message


def test_a_healthy_canary_at_full_traffic_is_not_rolled_back_for_want_of_a_stable_track() -> None:
    # given a healthy canary at the 100% step, which pauses longer than maxNoDataDuration
    sim = Sim(full_traffic_spec())
    reach_full_traffic(sim)
    # when stable serves nothing, so the shift and the relative limit have no stable value, for the pause
    for _ in range(20):
        d = sim.tick(canary_alone(0.001))
        assert d.status.phase not in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), d.status.message
        if sim.status.phase is Phase.SUCCEEDED:
            break
    # then the canary is promoted after its pause, judged on its absolute limits
    assert sim.status.phase is Phase.SUCCEEDED, sim.status.message
    assert sim.status.history[0].result == "Promoted"


def test_a_bad_canary_at_full_traffic_still_fails_on_its_absolute_limit() -> None:
    # given a canary at the 100% step, stable serving nothing
    sim = Sim(full_traffic_spec())
    reach_full_traffic(sim)
    # when its error rate is far over max
    for _ in range(5):
        sim.tick(canary_alone(0.2))
        if sim.status.canary is None:
            break
    # then it is rolled back on the failures (failureLimit 1: the second)
    assert sim.status.canary is None and sim.status.history[0].result == "RolledBack"
    assert "failureLimit" in sim.status.history[0].reason and "error-rate" in sim.status.history[0].reason


# --- a rollback stands; retry -------------------------------------------------------------------


def _rolled_back(sim: Sim) -> str:
    start_canary(sim)
    sim.tick(BAD)
    sim.tick(BAD)
    revision = sim.status.rolledBackRevision
    assert revision is not None
    return revision


def test_a_rolled_back_revision_stays_rolled_back(sim: Sim) -> None:
    revision = _rolled_back(sim)
    # when time passes and events arrive with the same spec
    for _ in range(3):
        d = sim.step(after=600)
    # then no canary starts again
    assert d.status.phase is Phase.ROLLED_BACK
    assert d.status.canary is None
    assert d.status.rolledBackRevision == revision
    assert "canary" not in sim.tracks


def test_retry_token_restarts_a_rolled_back_revision_once(sim: Sim) -> None:
    revision = _rolled_back(sim)
    # when a retry token appears
    sim.controls = Controls(retry="alice-1")
    d = sim.step()
    # then the same revision starts again from step one
    assert d.status.canary is not None and d.status.canary.revision == revision
    assert Reason.RETRIED in d.event_reasons
    assert d.status.rolledBackRevision is None


def test_a_retry_token_seen_before_the_rollback_does_not_retry(sim: Sim) -> None:
    start_canary(sim)
    sim.controls = Controls(retry="early")
    sim.step()
    sim.tick(BAD)
    d = sim.tick(BAD)
    assert d.status.canary is None
    d = sim.step(after=10)
    assert d.status.canary is None


def test_a_new_revision_after_a_rollback_starts_a_canary(sim: Sim) -> None:
    _rolled_back(sim)
    sim.set_version("2.0.1")
    d = sim.step()
    assert d.status.canary is not None and d.status.canary.version == "2.0.1"


def test_reverting_the_spec_to_stable_after_a_rollback_is_stable_again(sim: Sim) -> None:
    _rolled_back(sim)
    sim.set_version("1.0.0")
    d = sim.step()
    assert d.status.phase is Phase.STABLE
    assert cond.find(d.status.conditions, cond.STALLED) is None


# --- controls -------------------------------------------------------------------------------------


def test_abort_rolls_back_now_and_acts_once_per_token(sim: Sim) -> None:
    start_canary(sim)
    sim.controls = Controls(abort="bob")
    d = sim.step()
    assert d.status.canary is None
    assert d.status.history[0].result == "Aborted"
    assert d.status.history[0].actedBy == "bob"  # who acted stays in the history entry
    assert Reason.ABORTED in d.event_reasons
    assert d.of_type(RecordEvidence)
    assert d.status.controls.abort == "bob"
    # when retried, the same abort token does not abort the new attempt
    sim.controls = Controls(abort="bob", retry="r1")
    d = sim.step()
    assert d.status.canary is not None
    d = sim.step()
    assert d.status.canary is not None


def test_promote_control_skips_the_remaining_steps(sim: Sim) -> None:
    start_canary(sim)
    sim.controls = Controls(promote="carol")
    d = sim.step()
    assert d.status.phase is Phase.PROMOTING
    assert d.status.canaryWeight == 10  # promotion moves the stable track, not the weight
    d = sim.step()
    assert d.status.phase is Phase.SUCCEEDED
    assert d.status.stable is not None and d.status.stable.version == "2.0.0"


def test_approval_gate_waits_and_acts_once_per_token() -> None:
    spec = make_spec(rollout={
        "steps": [{"weight": 10}, {"weight": 50, "approval": "required"},
                  {"weight": 100, "approval": "required"}],
        "analysis": {"interval": "30s", "minSamples": 100},
    })
    sim = Sim(spec)
    start_canary(sim)
    # given a token set before the gate is reached: it is recorded and ignored
    sim.controls = Controls(approve="too-early")
    d = sim.tick(GOOD)
    assert d.status.phase is Phase.AWAITING_APPROVAL
    assert d.status.canaryWeight == 10
    assert cond.is_true(d.status.conditions, cond.AWAITING_APPROVAL)
    assert Reason.AWAITING_APPROVAL in d.event_reasons
    d = sim.step(after=600)
    assert d.status.phase is Phase.AWAITING_APPROVAL and d.status.canaryWeight == 10
    # when a new token arrives while the gate waits
    sim.controls = Controls(approve="dave")
    d = sim.step()
    # then the weight is set and the approver recorded
    assert d.status.canaryWeight == 50
    assert d.status.approvedBy == "dave"
    assert Reason.APPROVED in d.event_reasons
    # when the step passes, the next gate is not approved by the same token
    d = sim.tick(GOOD)
    assert d.status.phase is Phase.AWAITING_APPROVAL and d.status.canaryWeight == 50
    sim.controls = Controls(approve="erin")
    d = sim.step()
    assert d.status.canaryWeight == 100 and d.status.approvedBy == "erin"
    # when the last step passes and the canary is promoted
    for _ in range(10):
        sim.tick(GOOD)
        if sim.status.phase is Phase.SUCCEEDED:
            break
    # then the history entry keeps who approved it, after status moved on
    assert sim.status.history[0].result == "Promoted"
    assert sim.status.history[0].approvedBy == "erin" and sim.status.history[0].actedBy is None
    # and the next canary starts with no approver of its own
    sim.set_version("3.0.0")
    assert sim.step().status.approvedBy is None


# --- paused, new revision mid-rollout, plan change ------------------------------------------------


def test_paused_holds_weights_and_ignores_verdicts(sim: Sim) -> None:
    start_canary(sim)
    sim.spec = updated(sim.spec, paused=True)
    d = sim.step()
    assert d.status.phase is Phase.PAUSED
    assert d.wake.analysis is None
    # failing analysis while paused does not count
    for _ in range(3):
        d = sim.step(slos=BAD, after=30)
    assert d.status.canaryWeight == 10 and d.status.canary is not None
    assert d.status.analysis == [] or all(s.failures == 0 for s in d.status.analysis)
    # resume: the step starts over (a pass is needed after the resume)
    sim.spec = updated(sim.spec, paused=False)
    d = sim.step(slos=None)
    assert Reason.RESUMED in d.event_reasons
    assert d.status.stepStartedAt == d.status.timeline[-1].at
    assert d.status.passedAnalyses == 0


def test_time_paused_does_not_count_toward_max_no_data_duration(sim: Sim) -> None:
    # given a healthy canary at 10% on thin traffic (under minSamples): inconclusive, its no-data clock
    # running for a minute (maxNoDataDuration 2m, onNoData hold, failureLimit 1)
    start_canary(sim)
    thin = (slo_obs(value=0.0, samples=20, baseline=0.0),)
    sim.tick(thin)
    sim.tick(thin)
    assert sim.status.analysis[0].verdict is Verdict.INCONCLUSIVE and sim.status.analysis[0].noDataSince
    # when the rollout is paused for 10 minutes and resumed
    sim.spec = updated(sim.spec, paused=True)
    sim.step(after=1)
    sim.step(after=600)
    sim.spec = updated(sim.spec, paused=False)
    resumed = sim.step(after=1)
    # then the no-data clock restarts: it is not carried over the pause (rule 7)
    assert Reason.RESUMED in resumed.event_reasons
    assert all(s.noDataSince is None for s in resumed.status.analysis)
    # and thin traffic after the resume is held without a failure for maxNoDataDuration from the next look
    first = sim.tick(thin)
    since = first.status.analysis[0].noDataSince
    assert since == first.status.lastAnalysisAt
    looks = [first]
    while (sim.now - resumed.at).total_seconds() < 90:
        looks.append(sim.tick(thin))  # every look up to 2m after the resume
    assert all(s.verdict is Verdict.INCONCLUSIVE and s.failures == 0 for d in looks for s in d.status.analysis)
    assert all(d.status.canary is not None and d.status.canaryWeight == 10 for d in looks)
    # and it is still bounded: thin traffic for maxNoDataDuration after the resume fails as before
    for _ in range(4):
        d = sim.tick(thin)
    assert d.status.canary is None and d.status.history[0].result == "RolledBack"


def test_a_new_revision_mid_rollout_supersedes_the_canary(sim: Sim) -> None:
    start_canary(sim)
    old = sim.status.canary
    sim.tick(GOOD)
    assert sim.status.canaryWeight == 50
    sim.set_version("3.0.0")
    d = sim.step()
    assert d.status.history[0].result == "Superseded"
    assert old is not None and d.status.history[0].revision == old.revision
    assert d.status.canary is not None and d.status.canary.version == "3.0.0"
    assert d.status.canaryWeight == 0 and d.status.currentStep == 0
    assert d.of_type(SetWeight)[0].canary_weight == 0


def test_changing_the_steps_mid_rollout_restarts_at_step_one(sim: Sim) -> None:
    start_canary(sim)
    sim.tick(GOOD)
    assert sim.status.canaryWeight == 50
    sim.spec = updated(sim.spec, rollout={"steps": [{"weight": 20}, {"weight": 100}],
                                          "analysis": {"interval": "30s", "minSamples": 100}})
    d = sim.step()
    assert d.status.canary is not None
    assert d.status.canaryWeight in (0, 20)
    assert d.status.currentStep == 0


# --- kill switch ----------------------------------------------------------------------------------


def test_kill_switch_mid_rollout_cuts_the_canary_in_the_same_decision(sim: Sim) -> None:
    start_canary(sim)
    sim.tick(GOOD)
    sim.spec = updated(sim.spec, killSwitch=True, fallback={"version": "0.9.0"})
    d = sim.step()
    assert d.status.canaryWeight == 0
    assert d.status.phase is Phase.FALLBACK
    assert d.status.killSwitchActive
    assert d.of_type(SetWeight)[0].canary_weight == 0
    assert "canary" not in sim.tracks and "fallback" in sim.tracks
    assert Reason.KILL_SWITCH_ON in d.event_reasons
    # when the fallback pods are Ready, all traffic goes to the fallback track
    d = sim.step()
    assert d.status.fallback is not None and d.status.fallback.version == "0.9.0"
    service = objects_of(d, "Service")[0]
    assert service["spec"]["selector"]["tollgate.dev/track"] == "fallback"
    assert cond.is_true(d.status.conditions, cond.READY)
    # when the kill switch goes off, normal routing returns and the canary restarts at step 1
    sim.spec = updated(sim.spec, killSwitch=False)
    d = sim.step()
    assert Reason.KILL_SWITCH_OFF in d.event_reasons
    assert not d.status.killSwitchActive
    assert d.status.currentStep == 0
    assert "fallback" not in sim.tracks


def test_an_abort_under_the_kill_switch_rolls_the_canary_back_and_it_stays_rolled_back(sim: Sim) -> None:
    # given a canary at 10% and the kill switch on, all traffic on the pinned fallback
    start_canary(sim)
    revision = sim.status.canary.revision if sim.status.canary else None
    sim.spec = updated(sim.spec, killSwitch=True, fallback={"version": "0.9.0"})
    sim.step()
    sim.step()
    assert sim.status.fallback is not None and sim.status.canary is not None
    # when the on-call aborts the canary while the kill switch is on
    sim.controls = Controls(abort="oncall")
    d = sim.step()
    # then it is rolled back now, with its history entry and evidence (rule 6), and the kill switch still
    # keeps every request on the fallback
    assert d.status.canary is None and d.status.rolledBackRevision == revision
    assert d.status.history[0].result == "Aborted" and d.status.history[0].actedBy == "oncall"
    assert Reason.ABORTED in d.event_reasons
    assert [r.cause for r in d.of_type(RollBack)] == [Cause.ABORT] and d.of_type(RecordEvidence)
    assert d.status.killSwitchActive and d.status.phase is Phase.FALLBACK
    assert objects_of(d, "Service")[0]["spec"]["selector"]["tollgate.dev/track"] == "fallback"
    # when the kill switch goes off
    sim.spec = updated(sim.spec, killSwitch=False)
    for _ in range(3):
        d = sim.step(after=30)
        # then the aborted revision stays rolled back: it never takes traffic again (rule 5)
        assert d.status.canary is None and d.status.canaryWeight == 0
        assert d.status.phase is Phase.ROLLED_BACK and "canary" not in sim.tracks
    assert Reason.CANARY_STARTED not in [r for x in sim.decisions[-3:] for r in x.event_reasons]


def test_an_abort_in_the_decision_that_turns_the_kill_switch_on_is_acted_on_too(sim: Sim) -> None:
    # given a canary at 10%
    start_canary(sim)
    # when the kill switch and an abort arrive together
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.controls = Controls(abort="oncall")
    d = sim.step()
    # then the canary is cut and rolled back in that one decision, and traffic is on the fallback
    assert d.status.canary is None and d.status.history[0].result == "Aborted"
    assert d.status.killSwitchActive and d.status.canaryWeight == 0 and "canary" not in sim.tracks
    # and once the kill switch is off it stays rolled back
    sim.spec = updated(sim.spec, killSwitch=False)
    assert sim.step().status.canary is None


def test_a_retry_under_the_kill_switch_waits_until_the_switch_is_off(sim: Sim) -> None:
    # given a rolled-back revision and the kill switch on
    revision = _rolled_back(sim)
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.step()
    # when a retry token arrives while the kill switch is on
    sim.controls = Controls(retry="alice-1")
    for _ in range(2):
        d = sim.step(after=30)
        # then no canary starts and the token is not marked handled: it waits
        assert d.status.canary is None and d.status.killSwitchActive
        assert d.status.controls.retry is None and d.status.rolledBackRevision == revision
    # when the kill switch goes off, the retry acts: the revision starts again from step one
    sim.spec = updated(sim.spec, killSwitch=False)
    d = sim.step()
    assert Reason.RETRIED in d.event_reasons and d.status.controls.retry == "alice-1"
    assert d.status.canary is not None and d.status.canary.revision == revision and d.status.currentStep == 0


def test_a_retry_under_the_kill_switch_with_nothing_rolled_back_does_not_undo_a_later_abort(sim: Sim) -> None:
    # given a canary interrupted by the kill switch (nothing rolled back: a retry has nothing to act on)
    start_canary(sim)
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.step()
    # when a retry token arrives, and then an abort
    sim.controls = Controls(retry="early")
    d = sim.step()
    # then the retry is recorded and ignored, as it is outside the kill switch
    assert d.status.controls.retry == "early"
    sim.controls = Controls(retry="early", abort="oncall")
    sim.step()
    # so when the kill switch goes off, the abort stands
    sim.spec = updated(sim.spec, killSwitch=False)
    d = sim.step()
    assert d.status.canary is None and d.status.phase is Phase.ROLLED_BACK


def test_kill_switch_falls_back_to_last_known_good_without_a_pinned_fallback(sim: Sim) -> None:
    start_canary(sim)
    stable = sim.status.stable
    sim.spec = updated(sim.spec, killSwitch=True)
    d = sim.step()
    assert d.status.fallback == stable  # lastKnownGood is the stable track: no extra Deployment
    assert "fallback" not in sim.tracks
    assert objects_of(d, "Service")[0]["spec"]["selector"]["tollgate.dev/track"] == "stable"


def test_kill_switch_with_nothing_to_fall_back_to_is_stalled() -> None:
    sim = Sim(make_spec(killSwitch=True))
    d = sim.step()
    assert d.status.phase is Phase.STALLED
    assert Reason.SPEC_INVALID in d.event_reasons
    assert cond.is_true(d.status.conditions, cond.STALLED)
    assert d.status.canaryWeight == 0


def test_gateway_router_without_settings_is_stalled() -> None:
    # given a gatewayAPI router without its settings (CEL refuses this at admission; pydantic alone
    # does not, and the engine must still not act on it)
    valid = make_spec(traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}})
    spec = valid.model_copy(update={"traffic": valid.traffic.model_copy(update={"gatewayAPI": None})})
    d = decide(spec, ModelDeploymentStatus(), Observations(generation=1), T0, CTX)
    assert d.status.phase is Phase.STALLED
    assert not d.of_type(ApplyObjects)
    assert d.requeue_after is None


def test_a_kill_switch_on_a_spec_the_engine_cannot_act_on_says_it_waits_and_claims_nothing(sim: Sim) -> None:
    # given a canary at 10%
    start_canary(sim)
    # when the spec turns into one the engine cannot act on (a gatewayAPI router without its settings, which
    # only an object stored before the CRD's rule can be) and the kill switch is turned on with it
    broken = updated(sim.spec, traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
                     killSwitch=True)
    broken = broken.model_copy(update={"traffic": broken.traffic.model_copy(update={"gatewayAPI": None})})
    d = decide(broken, sim.status, sim.observations(None), sim.now, sim.ctx)
    # then nothing moves traffic, and status says so: the canary's 10% kept, the kill switch not active
    assert not d.of_type(SetWeight) and not d.of_type(ApplyObjects)
    assert d.status.phase is Phase.STALLED
    assert d.status.canaryWeight == 10 and not d.status.killSwitchActive, d.status
    assert "the kill switch cannot act until this is fixed: the canary keeps 10% of traffic" in d.status.message
    # and once the spec is fixed, the kill switch acts
    sim.spec = updated(sim.spec, killSwitch=True)
    sim.status = d.status
    fixed = sim.step()
    assert fixed.status.canaryWeight == 0 and fixed.status.killSwitchActive and fixed.of_type(SetWeight)


def test_gateway_router_sets_exact_route_weights() -> None:
    sim = Sim(make_spec(traffic={"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}))
    start_canary(sim)
    route = objects_of(sim.decisions[-1], "HTTPRoute")[0]
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"fraud-scorer-stable": 90, "fraud-scorer-canary": 10}
    assert sim.tracks["stable"][1] == 4  # the stable track keeps all its replicas


# --- bookkeeping ----------------------------------------------------------------------------------


def test_history_is_bounded() -> None:
    entries = [HistoryEntry(revision=f"r{i}", version="1", result="Promoted", at="2026-01-01T00:00:00Z")
               for i in range(HISTORY_LIMIT)]
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.status = sim.status.model_copy(update={"history": entries})
    sim.set_version("2.0.0")
    sim.step()
    sim.set_version("3.0.0")
    d = sim.step()
    assert len(d.status.history) == HISTORY_LIMIT
    assert d.status.history[0].result == "Superseded"


def test_condition_transition_time_changes_only_when_status_flips(sim: Sim) -> None:
    sim.deploy_stable()
    ready = cond.find(sim.status.conditions, cond.READY)
    assert ready is not None
    d = sim.step(after=100)
    again = cond.find(d.status.conditions, cond.READY)
    assert again is not None and again.lastTransitionTime == ready.lastTransitionTime
    sim.set_version("2.0.0")
    d = sim.step(after=5)
    flipped = cond.find(d.status.conditions, cond.READY)
    assert flipped is not None and flipped.lastTransitionTime != ready.lastTransitionTime
    assert cond.is_true(d.status.conditions, cond.RECONCILING)


def test_identical_inputs_give_identical_decisions(sim: Sim) -> None:
    start_canary(sim)
    obs = sim.observations(BAD)
    at = sim.now + timedelta(seconds=30)
    assert decide(sim.spec, sim.status, obs, at, CTX) == decide(sim.spec, sim.status, obs, at, CTX)


def test_naive_now_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="timezone"):
        decide(make_spec(), ModelDeploymentStatus(), Observations(generation=1), T0.replace(tzinfo=None), CTX)


def test_a_missing_slo_template_holds_the_step_with_a_condition_and_never_rolls_back(sim: Sim) -> None:
    # given a canary at step 1 whose spec names a template the runtime cannot find
    start_canary(sim)
    missing = ("spec.slos[1] (gpu): ClusterSLOTemplate 'gpu' not found; create it or fix spec.slos[1].templateRef",)

    def tick_without_template() -> None:
        last = sim.decisions[-1]
        due = last.wake.analysis_due
        wait = max(0.0, (due - sim.now).total_seconds()) if due is not None else 30.0
        sim.now += timedelta(seconds=wait)
        obs = replace(sim.observations(GOOD), missing_templates=missing)
        d = decide(sim.spec, sim.status, obs, sim.now, sim.ctx)
        sim.decisions.append(d)
        sim.status = d.status

    # when many analysis ticks pass like that (far past any failure or error limit)
    for _ in range(20):
        tick_without_template()
    # then the canary holds its step, nothing rolled back, no failure or error was counted
    st = sim.status
    assert st.canaryWeight == 10 and st.currentStep == 0 and st.phase.value == "Progressing", st.message
    assert all(s.failures == 0 and s.consecutiveErrors == 0 for s in st.analysis)
    # and the condition says which template is missing and how to fix it, with the next analysis still due
    (c,) = [c for c in st.conditions if c.type == cond.TEMPLATES_RESOLVED]
    assert c.status.value == "False" and c.reason == "TemplateNotFound" and "ClusterSLOTemplate 'gpu'" in c.message
    assert sim.decisions[-1].wake.analysis_due is not None and sim.decisions[-1].wake.analysis_due > sim.now
    # when the template appears, the next tick measures and the step passes
    d = sim.tick(GOOD)
    assert d.status.canaryWeight == 50
    (c,) = [c for c in d.status.conditions if c.type == cond.TEMPLATES_RESOLVED]
    assert c.status.value == "True"


def test_time_a_missing_template_left_an_slo_unjudged_is_no_part_of_its_run_without_a_verdict(sim: Sim) -> None:
    # given a canary at step 1 on thin traffic: its SLO has no verdict, 2m tolerated (looks every 30s)
    start_canary(sim)
    thin = (slo_obs(samples=10),)
    sim.tick(thin)
    (slo,) = sim.status.analysis
    assert slo.verdict is Verdict.INCONCLUSIVE and slo.noDataSince is not None
    # when a template goes missing for 5 minutes (nothing is judged) and comes back, still thin
    missing = replace(sim.observations(thin), missing_templates=("spec.slos[1] (gpu): not found",))
    for _ in range(10):
        sim.now += timedelta(seconds=30)
        sim.status = persisted(decide(sim.spec, sim.status, missing, sim.now, sim.ctx).status)
    d = sim.step(thin, after=30)
    # then the run counts the looks, not the 5 minutes nobody judged: no verdict, no failure, still at 10%
    (slo,) = d.status.analysis
    assert slo.verdict is Verdict.INCONCLUSIVE and slo.failures == 0, slo
    assert d.status.canaryWeight == 10
    # and the bound still holds on what is looked at: thin for 2 more minutes fails the check
    for _ in range(4):
        d = sim.tick(thin)
    assert d.status.analysis[0].verdict is Verdict.FAIL


def test_the_promoted_version_keeps_serving_through_the_next_canary_and_its_rollback(sim: Sim) -> None:
    # given a canary promoted through every step, its status stored the way the runtime stores it
    # (the canary's model and runtime left out: while it is the spec's revision they come from the spec)
    start_canary(sim)
    promoted = sim.status.canary
    assert promoted is not None
    for _ in range(10):
        sim.tick(GOOD)
        if sim.status.phase is Phase.SUCCEEDED:
            break
    assert sim.status.phase is Phase.SUCCEEDED
    # then stable carries its own model and runtime: it must be rendered once the spec moves on
    assert sim.status.stable is not None and sim.status.stable.runtime is not None
    # when the next version starts as a canary and fails its first analysis
    sim.set_version("3.0.0")
    sim.settle()
    assert sim.status.canary is not None and sim.status.canary.version == "3.0.0"
    decisions = []
    for _ in range(10):
        decisions.append(sim.tick(BAD))
        if sim.status.canary is None:
            break
    # then it is rolled back and the promoted version still runs on every stable replica
    assert sim.status.canary is None and sim.status.stable is not None
    assert sim.status.stable.revision == promoted.revision
    assert deployments_of(decisions[-1]).get("stable") == (promoted.revision, sim.spec.replicas)
    for action in (a for d in decisions for a in d.of_type(SetWeight)):
        assert action.stable_replicas == sim.spec.replicas, action
