"""The hook rules (engine/rules/hooks.py) and the hook Jobs (engine/hook_jobs.py), given / when / then."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from tollgate.api.hook_status import HookPhase
from tollgate.api.status import Phase
from tollgate.engine.actions import Cause, DeleteObjects, Reason, RecordEvidence, RollBack, SetWeight
from tollgate.engine.hook_observations import JobObservation, JobState, WebhookAnswer
from tollgate.engine.observations import Observations, SLOObservation
from tollgate.engine.rollout import Case

from .conftest import GOOD, Sim, make_spec, objects_of

PRE = {"image": "registry.example/smoke:1", "timeout": "2m"}


@dataclass
class HookSim(Sim):
    """Sim plus hook Jobs: each Job a decision applies exists (Active) until the test ends it."""

    jobs: dict[str, JobObservation] = field(default_factory=dict)
    answer: WebhookAnswer | None = None
    asked: list[dict[str, Any]] = field(default_factory=list)

    def observations(self, slos: tuple[SLOObservation, ...] | None) -> Observations:
        webhook = None
        call = Case.of(self.spec, self.status, self.ctx).webhook_due(self.now)
        if call is not None and self.answer is not None:
            self.asked.append(dict(call.payload))
            webhook = self.answer
        return replace(super().observations(slos), jobs=tuple(self.jobs.values()), webhook=webhook)

    def step(self, slos: tuple[SLOObservation, ...] | None = None, after: float = 0.0) -> Any:
        d = super().step(slos, after)
        for job in objects_of(d, "Job"):
            name = job["metadata"]["name"]
            self.jobs.setdefault(name, JobObservation(name, JobState.ACTIVE))
        for action in d.of_type(DeleteObjects):
            for ref in action.refs:
                if ref.kind == "Job":
                    self.jobs.pop(ref.name, None)
        return d

    def end_job(self, hook: str, state: JobState, reason: str = "", message: str = "") -> str:
        name = next(n for n in self.jobs if f"-{hook.lower()}-" in n)
        self.jobs[name] = JobObservation(name, state, reason, message)
        return name


def hook_sim(**hooks: Any) -> HookSim:
    sim = HookSim(make_spec(hooks=hooks))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    return sim


def hook(sim: HookSim, name: str) -> Any:
    return next(h for h in sim.status.hooks if h.name == name)


def weights(sim: HookSim) -> list[int]:
    return [d.status.canaryWeight for d in sim.decisions]


# --- preTraffic ---------------------------------------------------------------------------------


def test_pre_traffic_job_runs_against_the_ready_canary_before_any_weight_and_success_lets_it_proceed() -> None:
    # given a ModelDeployment with a preTraffic hook and a new version whose canary is Ready
    sim = hook_sim(preTraffic=PRE)
    sim.step()
    d = sim.step()
    # then a Job is applied, the canary still has weight 0 and the phase says what it waits for
    jobs = objects_of(d, "Job")
    assert len(jobs) == 1 and d.status.canaryWeight == 0
    assert "preTraffic hook" in d.status.message
    assert hook(sim, "preTraffic").phase is HookPhase.RUNNING
    assert Reason.HOOK_STARTED in d.event_reasons
    # when nothing changes, then it keeps waiting (no weight)
    assert sim.step(after=30).status.canaryWeight == 0
    # when the Job succeeds
    sim.end_job("preTraffic", JobState.SUCCEEDED)
    d = sim.step()
    # then the first step's weight is set and the hook is recorded as succeeded
    assert d.status.canaryWeight == 10
    assert hook(sim, "preTraffic").phase is HookPhase.SUCCEEDED
    assert Reason.HOOK_SUCCEEDED in d.event_reasons


def test_failed_pre_traffic_job_rolls_back_before_a_single_request_with_evidence_and_history() -> None:
    # given a canary waiting for its preTraffic Job
    sim = hook_sim(preTraffic=PRE)
    sim.step()
    sim.step()
    # when the Job fails
    job = sim.end_job("preTraffic", JobState.FAILED, "BackoffLimitExceeded", "Job has reached the backoff limit")
    d = sim.step()
    # then the canary is rolled back in that decision, having never had a weight above 0
    assert d.status.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK)
    assert max(weights(sim)) == 0
    assert not any(a.canary_weight > 0 for dd in sim.decisions for a in dd.of_type(SetWeight))
    rollback = d.of_type(RollBack)[0]
    assert rollback.cause is Cause.HOOK and job in rollback.reason
    # and status, history and evidence carry the hook's result
    assert hook(sim, "preTraffic").phase is HookPhase.FAILED
    assert sim.status.history[0].hooks == [f"preTraffic: Failed (job {job})"]
    evidence = d.of_type(RecordEvidence)[0].payload
    assert evidence["hooks"][0]["name"] == "preTraffic" and evidence["hooks"][0]["phase"] == "Failed"
    # and the failed Job is kept (its pod's logs) while the canary stays rolled back
    assert [j["metadata"]["name"] for j in objects_of(d, "Job")] == [job]


def test_failed_pre_traffic_job_with_failure_policy_ignore_is_recorded_and_the_rollout_goes_on() -> None:
    sim = hook_sim(preTraffic={**PRE, "failurePolicy": "ignore"})
    sim.step()
    sim.step()
    # when the Job fails
    sim.end_job("preTraffic", JobState.FAILED, "BackoffLimitExceeded")
    d = sim.step()
    # then the canary takes its first weight, and the failure is recorded as ignored
    assert d.status.canaryWeight == 10
    entry = hook(sim, "preTraffic")
    assert entry.phase is HookPhase.FAILED and entry.ignored
    assert Reason.HOOK_FAILED in d.event_reasons


def test_a_pre_traffic_job_that_never_reports_fails_at_its_timeout_and_the_engine_wakes_exactly_then() -> None:
    sim = hook_sim(preTraffic=PRE)
    sim.step()
    d = sim.step()
    # then the decision asks to be woken at the timeout (2m after the Job was started)
    assert d.wake.deadline == sim.now + timedelta(minutes=2)
    # when a second less passes, nothing happens
    assert sim.step(after=119).status.canary is not None
    # when the timeout passes, the canary is rolled back (failurePolicy rollback)
    d = sim.step(after=1)
    assert d.of_type(RollBack)[0].cause is Cause.HOOK
    assert "timeout 2m" in hook(sim, "preTraffic").message


# --- duringAnalysis -----------------------------------------------------------------------------


def test_during_analysis_job_starts_with_the_first_weight_and_goes_when_promotion_starts() -> None:
    sim = hook_sim(duringAnalysis={"image": "registry.example/loadgen:1", "timeout": "1h"})
    sim.step()
    d = sim.step()
    # then at the first weight the load Job is started
    assert d.status.canaryWeight == 10
    job = [j["metadata"]["name"] for j in objects_of(d, "Job")]
    assert len(job) == 1 and hook(sim, "duringAnalysis").phase is HookPhase.RUNNING
    # when every step passes and promotion starts
    for _ in range(12):
        d = sim.tick(GOOD)
        if sim.status.promotingSince is not None or sim.status.phase is Phase.SUCCEEDED:
            break
    # then the running Job is not wanted any more and is deleted, and status says it was stopped
    assert not objects_of(d, "Job")
    assert hook(sim, "duringAnalysis").phase is HookPhase.STOPPED
    assert any(r.name == job[0] for a in d.of_type(DeleteObjects) for r in a.refs)


def test_failed_during_analysis_job_rolls_the_canary_back() -> None:
    sim = hook_sim(duringAnalysis={"image": "registry.example/loadgen:1", "timeout": "1h"})
    sim.step()
    sim.step()
    # when the load Job fails mid-analysis
    sim.end_job("duringAnalysis", JobState.FAILED, "DeadlineExceeded", "Job was active longer than specified")
    d = sim.step()
    # then the canary is rolled back with cause hook
    assert d.of_type(RollBack)[0].cause is Cause.HOOK
    assert d.status.canaryWeight == 0 and d.status.canary is None


# --- prePromotion -------------------------------------------------------------------------------


def test_pre_promotion_job_gates_promotion_after_the_last_step() -> None:
    sim = hook_sim(prePromotion={"image": "registry.example/regression:1", "timeout": "10m"})
    sim.step()
    sim.step()
    # when every step passes
    d = None
    for _ in range(12):
        d = sim.tick(GOOD)
        if objects_of(d, "Job"):
            break
    assert d is not None
    # then promotion waits for the prePromotion Job
    assert d.status.promotingSince is None and d.status.canaryWeight == 100
    assert "prePromotion hook" in d.status.message
    # when it succeeds, promotion starts
    sim.end_job("prePromotion", JobState.SUCCEEDED)
    d = sim.step()
    assert d.status.promotingSince is not None or d.status.phase is Phase.SUCCEEDED
    assert Reason.PROMOTING in d.event_reasons


# --- confirmRollout -----------------------------------------------------------------------------


def test_confirm_rollout_holds_on_anything_but_200_and_proceeds_on_200() -> None:
    sim = hook_sim(confirmRollout={"secretName": "tollgate-confirm-rollout", "interval": "10s"})
    sim.answer = WebhookAnswer(503)
    sim.step()
    d = sim.step()
    # then the gate waits and asks at once (the first question is due now)
    assert d.status.canaryWeight == 0 and d.wake.deadline == sim.now
    d = sim.step()
    # then it was asked with a payload naming the ModelDeployment and the canary, and holds on 503
    assert sim.asked[-1]["name"] == sim.ctx.name and sim.asked[-1]["namespace"] == sim.ctx.namespace
    assert sim.asked[-1]["type"] == "confirm-rollout" and sim.asked[-1]["metadata"]["version"] == "2.0.0"
    assert d.status.canaryWeight == 0 and hook(sim, "confirmRollout").phase is HookPhase.HOLDING
    assert "HTTP 503" in d.status.message
    # and it asks again one interval later, not before
    assert d.wake.deadline == sim.now + timedelta(seconds=10)
    asked = len(sim.asked)
    sim.step(after=5)
    assert len(sim.asked) == asked
    # when no answer comes (connection refused), it still holds
    sim.answer = WebhookAnswer(None, "no answer: ConnectionRefusedError")
    d = sim.step(after=5)
    assert d.status.canaryWeight == 0 and "no answer" in d.status.message
    # when the endpoint answers 200, the canary takes its first weight
    sim.answer = WebhookAnswer(200)
    d = sim.step(after=10)
    assert d.status.canaryWeight == 10
    assert hook(sim, "confirmRollout").phase is HookPhase.SUCCEEDED


# --- the Job and its isolation ------------------------------------------------------------------


def test_hook_job_is_restricted_tokenless_bounded_and_reaches_only_the_canary() -> None:
    sim = hook_sim(preTraffic={**PRE, "command": ["/smoke"], "env": [{"name": "N", "value": "5"}]})
    sim.step()
    d = sim.step()
    job = objects_of(d, "Job")[0]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # then one pod, no retries, bounded by the timeout, no service account token, restricted
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 120
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CANARY_URL"].startswith("http://fraud-scorer-canary.") and env["N"] == "5"
    # and it is told the header that tags its requests as synthetic (spec.hooks.syntheticTraffic)
    assert env["TOLLGATE_SYNTHETIC_HEADER"] == "X-Tollgate-Synthetic"
    assert env["TOLLGATE_SYNTHETIC_VALUE"] == "preTraffic"
    # and its pod is not selected as a model pod (the model's own policies and Services do not apply)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert "tollgate.dev/modeldeployment" not in labels and labels["tollgate.dev/hook"] == "preTraffic"
    # and the NetworkPolicies open only hook pods -> canary pods on the model port
    policies = {p["metadata"]["name"]: p["spec"] for p in objects_of(d, "NetworkPolicy")}
    egress = policies["allow-hook-egress"]["egress"]
    assert egress == [{"to": [{"podSelector": {"matchLabels": {
        "tollgate.dev/modeldeployment": "fraud-scorer", "tollgate.dev/modeldeployment-namespace": "ml-team",
        "tollgate.dev/track": "canary"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert policies["allow-hooks-to-canary"]["podSelector"]["matchLabels"]["tollgate.dev/track"] == "canary"
    # and the canary has its own Service (replicas router)
    assert "fraud-scorer-canary" in {s["metadata"]["name"] for s in objects_of(d, "Service")}


def test_without_hooks_no_hook_objects_are_rendered() -> None:
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.step()
    d = sim.step()
    assert not objects_of(d, "Job")
    assert "allow-hook-egress" not in {p["metadata"]["name"] for p in objects_of(d, "NetworkPolicy")}
    assert d.status.canaryWeight == 10


def test_a_changed_hook_spec_is_a_new_job_and_the_old_one_is_deleted() -> None:
    sim = hook_sim(preTraffic=PRE)
    sim.step()
    d = sim.step()
    old = objects_of(d, "Job")[0]["metadata"]["name"]
    # when the hook's image changes while it runs
    data = sim.spec.model_dump(mode="json", exclude_none=True)
    data["hooks"]["preTraffic"]["image"] = "registry.example/smoke:2"
    sim.spec = type(sim.spec).model_validate(data)
    d = sim.step()
    # then the old Job (whose template cannot change) is deleted, not updated
    assert old not in {j["metadata"]["name"] for j in objects_of(d, "Job")}
    assert any(r.name == old for a in d.of_type(DeleteObjects) for r in a.refs)


def test_the_analysis_request_says_whether_hook_traffic_is_left_out() -> None:
    # given a canary under analysis with syntheticTraffic exclude (istio profile), and one with the default
    for traffic, excluded in (("exclude", True), ("include", False)):
        sim = Sim(make_spec(hooks={"duringAnalysis": {**PRE}, "syntheticTraffic": traffic},
                            metrics={"profile": "istio"}))
        sim.deploy_stable()
        sim.set_version("2.0.0")
        sim.step()
        sim.step()
        assert sim.status.canaryWeight > 0
        due = sim.decisions[-1].wake.analysis
        assert due is not None
        request = Case.of(sim.spec, sim.status, sim.ctx).analysis_request(due)
        # then the request carries the choice to the metrics provider
        assert request is not None and request.exclude_synthetic is excluded
