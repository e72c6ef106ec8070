"""decide(): one pure step of the rollout state machine, and the order its rules apply in.

Inputs are the spec, the persisted status, what the runtime observed, `now` and the object's identity;
the output is the next status, the actions that get there, and when to look again (engine.actions).
Nothing here reads a clock, a cluster or Prometheus, so every rule below is replayable in a test.

The runtime opens a `Case` (spec, status, identity; the policy resolved once), asks it what to measure
(`Case.analysis_request`: the SLOs, when the grid point of the next tick has come), then decides once
(`Case.decide`). Each rule lives in its own module under engine.rules (listed there).

The rules, in the order a decision applies them:

1. Invalid spec (gatewayAPI router without settings, bad durations, an empty or unsorted step plan)
   -> Stalled, nothing applied. Without a policy (the first two) nothing moves traffic, the kill switch
   included: status keeps the canary's weight and says so (the CRD refuses these specs at admission; only
   an object stored before its rule gets here). With a policy (a bad step plan) rule 2 still acts.
2. Kill switch on -> canary weight 0 and the canary removed in this decision, whatever the phase;
   all traffic to the fallback (spec.fallback, else status.lastKnownGood) once it is Ready (stable
   serves until then); with no fallback at all -> Stalled, stable keeps serving. Kill switch off ->
   back to normal; an interrupted canary restarts at step one. Controls still act under it (rule 6):
   abort rolls the interrupted canary back (history, evidence), so it stays rolled back once the switch
   is off; a retry that would act waits, unhandled, until the switch is off (no canary starts under it);
   promote, approve and step are recorded and ignored (engine.rules.kill_switch).
2b. Drills (tollgate.dev/drill-kill-switch, drill-rollback; engine.rules.drills): a kill-switch drill runs
   rule 2 until all traffic is observed on the fallback, then releases it; a rollback drill rolls the
   canary back as abort does. Each is timed from the decision that acted on it to the first decision
   observing all traffic on the fallback or stable (status.lastDrill), or refused with the fix. While a
   kill-switch drill holds traffic on the fallback, a retry that would act waits as under rule 2.
3. First deployment (nothing has served yet) -> straight to the stable track, no canary; with a bake
   window it is judged there on its absolute limits; failed, all traffic to spec.fallback as in rule 2
   (else Stalled, it keeps serving) until the spec changes or tollgate.dev/retry.
4. A new revision while a canary runs -> the canary is Superseded (history), all traffic back on
   stable, a new canary starts at step one. Replica or policy changes are not new revisions.
5. A revision that was rolled back stays rolled back until the spec changes it or a new
   tollgate.dev/retry token arrives.
6. Controls act once per distinct token: abort (roll back now, with evidence; under the kill switch
   too), promote (skip the remaining steps), approve (only while an approval gate is waiting; a token
   seen at any other time is recorded and ignored, so nothing is approved before a person saw the gate),
   retry (deferred while traffic is held on the fallback, rule 2).
7. spec.paused -> weights hold, analysis results are ignored, deadlines do not run; on resume the
   current step starts over (its pause and analysis count again from the resume), and so does each
   SLO's maxNoDataDuration hold (status.analysis[].noDataSince restarts at the first look after it),
   unless that SLO's run had failed already before the pause.
8. Canary readiness: the canary must be fully Ready (pods of its revision) within progressDeadline of
   the moment the engine started waiting (canary start, a step's scale-up) or, when the scheduler found
   no node for them, of the moment they were scheduled; past it -> roll back in that decision, and
   Decision.wake.deadline points exactly at that deadline. A canary container that cannot start (image
   never pulls, crash loop) -> roll back when the pod reports it.
9. Analysis tick (Observations.slos is not None, the canary holds the weight of a step with
   `analysis: true`): verdicts per SLO (analysis.py);
   a limit crossed rolls back in the same decision (weight 0 now). Analysis is judged while awaiting
   approval and while promoting too: failures there still roll back.
10. Steps: a step is entered by setting its weight (after approval when it has a gate, and only when
    the canary is Ready); it completes when the canary is Ready, its pause has elapsed since it was
    entered, and (analysis steps) at least one analysis tick that ran in this step passed with no
    non-passing tick after it (an error, a failure within failureLimit or no verdict voids the earlier
    passes). Time the operator was down never counts as passed analysis. After the last step ->
    Promoting: the stable track rolls to the canary revision while the canary keeps serving; once
    stable is Ready on it the canary is removed, lastKnownGood updated -> Succeeded.
11. Bake window (spec.rollout.bakeWindow, else the risk tier's; engine.rules.bake): a promoted version
    stays Baking, judged at full traffic on absolute limits and the previous version's carried baseline;
    failures over failureLimit before its end roll back to lastKnownGood with evidence (as rule 9); at
    its end it becomes lastKnownGood -> Succeeded.
12. Kept failed canary (spec.rollout.keepFailedCanary; engine.rules.keep): a rolled-back or aborted canary's
    Deployment stays with zero traffic (no Service selects its pods) until status.keptCanary.until, then
    goes; a new canary (new version, retry) removes it first and starts in the next decision, the kill
    switch removes it at once. Checked first in every decision, so its end needs only the deadline wake.

Weight invariant: the canary weight only rises when (a) the canary is Ready and the first step is
entered (0 -> steps[0].weight; after approval if that step has a gate), or (b) the previous step
completed (analysis steps: a pass recorded in that step) and the next step is entered (after approval
if it has a gate). Promote control does not raise it: promotion moves the stable track instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollgate.api.controls import ControlTokens
from tollgate.api.hooks import SyntheticTraffic
from tollgate.api.invalid import InvalidSpecError
from tollgate.api.routers import DEFAULT_DIALECT, ROUTER_CAPABILITIES, USES, GatewayDialect, routers_with
from tollgate.api.spec import ModelDeploymentSpec, RouterKind
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine import conditions as cond
from tollgate.engine.actions import Context, Decision
from tollgate.engine.bake_analysis import bake_slos
from tollgate.engine.draft import Draft, new_tokens
from tollgate.engine.hook_observations import WebhookCall
from tollgate.engine.model_delivery import DEFAULT_INITIALIZER_IMAGE
from tollgate.engine.observations import AnalysisRequest, Observations
from tollgate.engine.policy import Policy, plan_problem, resolve_policy
from tollgate.engine.revision import desired_revision
from tollgate.engine.rules import drills, keep
from tollgate.engine.rules.finish import finish
from tollgate.engine.rules.hooks import webhook_due
from tollgate.engine.rules.kill_switch import (
    controls_under_kill_switch,
    hold_retry,
    kill_switch_off,
    kill_switch_on,
    stall,
)
from tollgate.engine.rules.revisions import reconcile
from tollgate.engine.rules.steps import gate_waiting
from tollgate.engine.sandbox import sandbox_namespace
from tollgate.engine.timeutil import parse_time, require_aware
from tollgate.engine.wakes import analysis_time

__all__ = ["Case", "decide", "gate_waiting", "refused", "spec_problem"]


def spec_problem(spec: ModelDeploymentSpec) -> str | None:
    """Why the engine cannot act on a spec the API types accepted (CEL refuses these at admission; the
    engine must still not act on one that got through), or None."""
    if spec.traffic.router is RouterKind.GATEWAY_API and spec.traffic.gatewayAPI is None:
        return "spec.traffic.router is gatewayAPI but spec.traffic.gatewayAPI is missing: add parentRefs"
    for use in USES:  # what the router cannot do (refused at admission; never acted on if it got past)
        if use.asks(spec) and use.capability not in ROUTER_CAPABILITIES[spec.traffic.router]:
            able = routers_with(use.capability)
            fix = (f"use spec.traffic.router: {' or '.join(k.value for k in able)}, or {use.drop}" if able
                   else f"no router can yet: {use.drop}")
            return (f"{use.field} is set, but spec.traffic.router is {spec.traffic.router.value}, which cannot "
                    f"{use.what} ({use.why[spec.traffic.router]}): {fix}")
    return None


@dataclass(frozen=True)
class Case:
    """What one decision is about: the spec, the persisted status and the object's identity, with the
    effective policy resolved once (None with `problem` when the spec cannot be acted on)."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    ctx: Context
    policy: Policy | None
    problem: str | None

    @classmethod
    def of(cls, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, ctx: Context, *,
           scrape_interval: float | None = None, initializer_image: str = DEFAULT_INITIALIZER_IMAGE,
           dialect: GatewayDialect = DEFAULT_DIALECT) -> Case:
        """`scrape_interval`: seconds between scrapes of the model's metrics (operator setting): canaries
        under analysis are looked at that often (engine.policy.Policy.look_interval)."""
        problem = spec_problem(spec)
        policy: Policy | None = None
        if problem is None:
            try:
                policy = resolve_policy(spec, scrape_interval=scrape_interval, initializer_image=initializer_image,
                                        dialect=dialect)
            except InvalidSpecError as exc:
                problem = f"spec has an invalid duration: {exc}"
        return cls(spec, status, ctx, policy, problem)

    @property
    def sandbox(self) -> str:
        """The namespace the model runs in (where the tracks' Deployments are)."""
        return sandbox_namespace(self.spec, self.ctx)

    def analysis_request(self, now: datetime) -> AnalysisRequest | None:
        """The SLOs to measure before deciding at `now`: when the grid point of the next analysis tick
        has come (engine.wakes.analysis_time), never between grid points; else None.

        A canary's range never reaches back before its current attempt started (status.canaryStartedAt):
        while it is younger than the window, the range is its age in whole look intervals
        (Policy.analysis_range), so a previous attempt of the same model version (a superseded revision,
        the rolled-back one a retry starts again), whose series carry the same labels, is never judged
        as this one's."""
        if self.policy is None:
            return None
        at = analysis_time(self.policy, self.status)
        if at is None or require_aware(now) < at:
            return None
        bake = self.status.bake
        if bake is not None and self.status.canary is None:
            # The promoted version, on the stable track, in its bake window (engine.bake_analysis).
            judged = bake_slos(self.policy, self.status)
            streamed = any(r.slo.maxIncreaseOverBaseline is not None and r.slo.query is None
                           and r.slo.templateRef is None for r in judged)
            return AnalysisRequest(
                namespace=self.ctx.namespace, name=self.ctx.name, slos=tuple(r.slo for r in judged),
                window=self.policy.window, versions=(("stable", bake.version),),
                stream_since=bake.streamSince if streamed else None,
                sandbox=self.status.sandboxNamespace or self.sandbox,
                profile=self.spec.metrics.profile.value if self.spec.metrics.profile else None,
                exclude_synthetic=self.spec.hooks.syntheticTraffic is SyntheticTraffic.EXCLUDE,
            )
        tracks = (("stable", self.status.stable), ("canary", self.status.canary))
        # Counts since the canary started, for the SLOs compared with their baseline by a test.
        streamed = any(r.slo.maxIncreaseOverBaseline is not None and r.slo.query is None
                       and r.slo.templateRef is None for r in self.policy.slos)
        # The window, cut to the canary's age while it is younger: never before this attempt started.
        window = self.policy.analysis_range(parse_time(self.status.canaryStartedAt), require_aware(now))
        return AnalysisRequest(
            namespace=self.ctx.namespace, name=self.ctx.name, slos=tuple(r.slo for r in self.policy.slos),
            window=window, versions=tuple((track, ref.version) for track, ref in tracks if ref),
            stream_since=self.status.canaryStartedAt if streamed else None,
            sandbox=self.status.sandboxNamespace or self.sandbox,
            profile=self.spec.metrics.profile.value if self.spec.metrics.profile else None,
            exclude_synthetic=self.spec.hooks.syntheticTraffic is SyntheticTraffic.EXCLUDE,
        )

    def webhook_due(self, now: datetime) -> WebhookCall | None:
        """The confirmation gate's question to ask before deciding at `now` (spec.hooks.confirmRollout), or
        None (engine.rules.hooks.webhook_due)."""
        if self.policy is None:
            return None
        return webhook_due(self.spec, self.status, self.ctx, self.status.sandboxNamespace or self.sandbox,
                           require_aware(now))

    def decide(self, obs: Observations, now: datetime) -> Decision:
        """The next status, the actions to get there and when to look again (pure, deterministic)."""
        spec, status, policy = self.spec, self.status, self.policy
        d = Draft.start(spec, status, obs, require_aware(now), self.ctx)
        d.st.observedGeneration = self.ctx.generation
        d.st.sandboxNamespace = self.sandbox
        tokens = new_tokens(status.controls, obs.controls)
        keep.expire(d)  # a failed canary kept for debugging goes at its end (engine.rules.keep)
        if policy is None:  # rule 1: nothing applied
            stall(d, self.problem or "invalid spec", apply=False)
            drills.interrupt(d, None, "the spec cannot be acted on")
            drills.refuse_new(d, tokens, f"the spec cannot be acted on: {d.st.message}")
            return finish(d, None)
        first_failed = not spec.killSwitch and _first_failed_on_fallback(spec, status, tokens)
        if spec.killSwitch or first_failed:  # rule 2
            if first_failed:
                drills.interrupt(d, policy, "the first version failed its analysis: traffic to the fallback")
                kill_switch_on(d, "first version failed its analysis")
                drills.refuse_new(d, tokens, "the first version failed its analysis and traffic is on the fallback: "
                                             "change the spec or set tollgate.dev/retry before a drill")
                return finish(d, policy)
            drills.interrupt(d, policy, "the kill switch was turned on (spec.killSwitch)")
            controls_under_kill_switch(d, tokens)  # rule 6 still holds: an abort is not lost
            kill_switch_on(d)
            drills.refuse_new(d, tokens, f"the kill switch is on (spec.killSwitch): turn it off (kubectl tollgate "
                                         f"unkill {self.ctx.name}) before a drill")
            return finish(d, policy)
        if drills.start(d, policy, tokens) or drills.kill_switch_drill(d, policy):  # rule 2b
            hold_retry(d, tokens)  # no canary starts while a drill holds traffic on the fallback
            return drills.with_wake(finish(d, policy), policy)
        if d.st.killSwitchActive:  # (a kill-switch drill may have released it in this decision)
            kill_switch_off(d, policy)
        problem = plan_problem(policy)
        if problem is not None:
            stall(d, problem, apply=False)
            return finish(d, policy)
        reconcile(d, policy, tokens)  # rules 3-10
        drills.follow(d, policy)
        return drills.with_wake(finish(d, policy), policy)


def _first_failed_on_fallback(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, tokens: ControlTokens) -> bool:
    """A first version that failed its bake window and is still the spec's revision, with spec.fallback:
    traffic stays on the fallback as with the kill switch (engine.rules.bake), until the spec changes or a
    new tollgate.dev/retry token."""
    stable = status.stable
    return (spec.fallback is not None and status.lastKnownGood is None and stable is not None
            and status.rolledBackRevision == stable.revision == desired_revision(spec).revision
            and tokens.retry is None)


def decide(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    obs: Observations,
    now: datetime,
    ctx: Context,
    *,
    scrape_interval: float | None = None,
    dialect: GatewayDialect = DEFAULT_DIALECT,
) -> Decision:
    """`Case.of(spec, status, ctx, scrape_interval=..., dialect=...).decide(obs, now)`."""
    return Case.of(spec, status, ctx, scrape_interval=scrape_interval, dialect=dialect).decide(obs, now)


def refused(status: ModelDeploymentStatus, message: str, now: datetime, generation: int,
            reason: str = "SpecInvalid") -> ModelDeploymentStatus:
    """The status of an object that is not acted on: its spec the API types refuse
    (api.validation.InvalidSpecError), or, with another `reason`, a sandbox namespace that is not its own,
    a spec over the platform's limits, or a decision that failed (DecisionFailed). Stalled, nothing acted
    on, the rest of the status kept; a canary with traffic is then held at weight 0 by engine.refusal."""
    return status.model_copy(update={
        "phase": Phase.STALLED, "message": message, "observedGeneration": generation,
        "conditions": cond.spec_refused(message, require_aware(now), generation, reason),
    })
