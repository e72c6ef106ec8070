"""A canary in progress: controls, pause, analysis ticks, steps and approval gates (rules 6, 7, 9, 10).

- Controls act once per distinct token: abort rolls back now (with evidence); promote starts the
  promotion (skipping the remaining steps); step completes the entered step now (skipping its remaining
  pause and analysis, once the canary's pods for it are Ready; at the last step that starts the
  promotion; a gate on the next step still waits);
  approve passes a gate only while it waits (`gate_waiting`). A token that does not apply (approve
  with no gate waiting, step with no entered step, or while paused) is recorded and ignored.
- spec.paused holds the weights and ignores verdicts; on resume the entered step starts over, and every
  SLO's run without a verdict (noDataSince, bounded by maxNoDataDuration) restarts unless it had failed
  already before the pause: time paused never counts toward a deadline.
- An analysis tick (Observations.slos) at a judged weight is assessed (engine.analysis); a limit
  crossed rolls back in the same decision.
- A step is entered by setting its weight (after approval when it has a gate, only when the canary is
  Ready); it completes when the canary is Ready, its pause has elapsed and (analysis steps) a tick
  that ran in it passed with no non-passing tick after it. After the last step -> promotion.
"""

from __future__ import annotations

from datetime import timedelta

from tollgate.api.controls import ControlTokens
from tollgate.api.spec import ApprovalMode
from tollgate.api.status import ModelDeploymentStatus, Phase, SLOStatus, Verdict
from tollgate.engine import traffic
from tollgate.engine.actions import Cause, Reason
from tollgate.engine.analysis import TickOutcome, assess
from tollgate.engine.comparison import carry_forward
from tollgate.engine.draft import Draft, track_ready
from tollgate.engine.policy import Policy
from tollgate.engine.rules.hooks import before_first_weight, before_promotion, during_analysis
from tollgate.engine.rules.promotion import promotion_progress, start_promotion
from tollgate.engine.rules.readiness import canary_ready, pods_detail
from tollgate.engine.rules.rollback import roll_back
from tollgate.engine.timeutil import parse_duration, parse_time
from tollgate.engine.traffic import holds, receives
from tollgate.engine.wakes import grid_slack, judged


def gate_waiting(policy: Policy, status: ModelDeploymentStatus) -> int | None:
    """The index of the step whose approval gate waits now, or None.

    A gate waits when a canary runs under the current step plan (status.planHash), is not promoting and
    not under the kill switch, and the current step has `approval: required` and its weight is not set
    yet. The CLI's `approve` asks the same function.
    """
    if status.canary is None or status.promotingSince is not None or status.killSwitchActive:
        return None
    if status.planHash != policy.plan_hash or status.currentStep >= len(policy.steps):
        return None
    step = policy.steps[status.currentStep]
    if step.approval is ApprovalMode.REQUIRED and not holds(status, step):
        return status.currentStep
    return None


def progress(d: Draft, policy: Policy, tokens: ControlTokens) -> None:
    canary = d.st.canary
    assert canary is not None
    promoting = d.st.promotingSince is not None
    waiting = gate_waiting(policy, d.prev) is not None

    if tokens.abort is not None:
        roll_back(d, Cause.ABORT, f"aborted by tollgate.dev/abort={tokens.abort}", acted_by=tokens.abort)
        return
    if tokens.promote is not None and not promoting:
        start_promotion(d, f"promote control by tollgate.dev/promote={tokens.promote}: skipping the "
                           "remaining steps")
        promoting = True

    if d.spec.paused and not promoting:
        if d.prev.phase is not Phase.PAUSED:
            d.event(Reason.PAUSED, "rollout paused (spec.paused): weights hold, analysis does not count")
        d.st.notReadySince = None
        d.phase(Phase.PAUSED, f"paused at step {d.st.currentStep + 1}/{len(policy.steps)}, "
                              f"canary weight {traffic.text(d.st)}")
        if waiting:  # an approval arriving now counts on resume, at the gate it was meant for
            d.deferred = frozenset({"approve"})
        return
    if d.prev.phase is Phase.PAUSED and not promoting:
        d.event(Reason.RESUMED, "rollout resumed: the current step starts over")
        # maxNoDataDuration is a deadline too, and deadlines do not run while paused: ticks were not
        # judged then, so a run without a verdict restarts at the first look after the resume instead of
        # counting the pause (a healthy canary on thin traffic would fail at once). Failures and
        # lastFailedAt stay: they count checks, and a failure's interval gap only shortens with time.
        # A run that had already failed before the pause keeps its noDataSince: the pause took nothing
        # from it, and the Fail it recorded stays explained (a Fail on thin data shows when its run began).
        d.st.analysis = [s.model_copy(update={"noDataSince": None})
                         if s.noDataSince and s.verdict is not Verdict.FAIL else s for s in d.st.analysis]
        # Only a step that was entered starts over. Paused at a gate, the canary still holds the
        # previous step's weight; that step completed with its pass before the pause, and wiping
        # the pass would leave a later weight rise without the pass it was granted on.
        if receives(d.st) and holds(d.st, policy.steps[d.st.currentStep]):
            d.st.stepStartedAt = d.at
            d.st.passedAnalyses = 0

    ready = canary_ready(d, policy, promoting=promoting)
    if ready is None:
        return  # rolled back: not Ready within the deadline
    if d.obs.slos is not None and judged(policy, d.st):
        entered = not promoting and holds(d.st, policy.steps[d.st.currentStep])
        if not _analyse(d, policy, entered=entered, ready=ready):
            return
    if promoting:
        promotion_progress(d, policy)
        return
    _advance(d, policy, tokens, ready=ready, gate_waiting=waiting, skip=tokens.step)
    if d.rollback is None:
        during_analysis(d)  # spec.hooks.duringAnalysis: from the first weight until promotion


def _analyse(d: Draft, policy: Policy, *, entered: bool, ready: bool) -> bool:
    """Assess one analysis tick; False when it rolled the canary back."""
    assert d.obs.slos is not None
    if d.obs.missing_templates:
        # A template that does not exist is a configuration gap, not a failed check: the tick holds
        # (no verdict, no failure, no provider error), the step cannot complete, nothing rolls back.
        if d.st.missingTemplates != list(d.obs.missing_templates):
            d.event(Reason.TEMPLATE_MISSING, "; ".join(d.obs.missing_templates), warning=True)
        d.st.missingTemplates = list(d.obs.missing_templates)
        d.st.lastAnalysisAt = d.at
        if entered:
            d.st.passedAnalyses = 0
        return True
    if d.st.missingTemplates:
        d.st.missingTemplates = []
    tick = assess(policy.slos, d.st.analysis, d.obs.slos, d.now, failure_limit=policy.failure_limit,
                  consecutive_error_limit=policy.consecutive_error_limit, baselines=d.st.baselines,
                  confidence=policy.confidence, failure_gap=_full_interval(policy),
                  full_traffic=d.st.canaryWeight >= 100, window=policy.window, look_gap=policy.look_gap)
    d.tick = tick
    d.st.analysis = list(tick.slos)
    d.st.lastAnalysisAt = d.at
    # The stable track's measurement, carried into the 100% step and the bake window (engine.comparison).
    d.st.baselines = carry_forward(policy.slos, d.obs.slos, d.st.baselines, at=d.at, step=d.st.currentStep,
                                   weight=d.st.canaryWeight)
    if tick.failing:
        d.event(Reason.ANALYSIS_FAILED, _describe(tick, "failing"), warning=True)
    if tick.erroring:
        d.event(Reason.ANALYSIS_ERROR, _describe(tick, "erroring"), warning=True)
    if tick.must_roll_back:
        why = []
        if tick.failed:
            why.append(f"failures over failureLimit {policy.failure_limit}: {', '.join(tick.failed)}")
        if tick.errored:
            why.append(f"provider errors over consecutiveErrorLimit {policy.consecutive_error_limit} "
                       f"(failing closed): {', '.join(tick.errored)}")
        roll_back(d, Cause.ERROR if tick.errored else Cause.ANALYSIS, "; ".join(why))
        return False
    started = parse_time(d.st.stepStartedAt)
    # Looks come every scrape interval, but passing a step still takes its full analysis interval: a
    # pass before it neither counts nor voids (a failure or no verdict voids as always).
    full = started is None or (d.now - started).total_seconds() >= _full_interval(policy)
    if tick.passed and entered and ready and not full:
        pass
    elif tick.passed and entered and ready:
        d.st.passedAnalyses += 1
        if d.st.passedAnalyses == 1:
            d.event(Reason.ANALYSIS_PASSED, f"step {d.st.currentStep + 1}/{len(policy.steps)} at "
                                            f"{traffic.text(d.st)}: every SLO passed")
    elif entered and not tick.passed:
        # The step completes on its latest verdicts, not on a pass from before: a tick that errored
        # (Prometheus down), failed within failureLimit or had no verdict voids the earlier passes, so
        # a step never completes (nor promotes) while the SLOs are unknown.
        d.st.passedAnalyses = 0
    return True


def _describe(tick: TickOutcome, which: str) -> str:
    names = set(tick.failing if which == "failing" else tick.erroring)
    parts = [
        f"{s.name}: {s.verdict} value={s.value} baseline={s.baseline} ({s.threshold}; samples {s.samples}, "
        f"failures {s.failures}, consecutive errors {s.consecutiveErrors}){_test_text(s)}"
        for s in tick.slos if s.name in names
    ]
    return "; ".join(parts)


def _advance(d: Draft, policy: Policy, tokens: ControlTokens, *, ready: bool, gate_waiting: bool,
             skip: str | None = None) -> None:
    """Enter and complete steps as far as this decision allows. `skip`: a new step token; the step
    entered now completes without its remaining pause and analysis (once)."""
    steps = policy.steps
    canary = d.st.canary
    assert canary is not None
    skipped = False
    for _ in range(len(steps) + 1):
        index = d.st.currentStep
        step = steps[index]
        weight = traffic.text(d.st)
        label = f"step {index + 1}/{len(steps)}"
        if not holds(d.st, step):
            if step.approval is ApprovalMode.REQUIRED:
                if gate_waiting and tokens.approve is not None:
                    d.st.approvedBy = tokens.approve
                    d.event(Reason.APPROVED, f"{label} ({step.describe()}) approved by {tokens.approve}")
                    gate_waiting = False
                else:
                    if d.prev.phase is not Phase.AWAITING_APPROVAL or d.prev.currentStep != index:
                        d.event(Reason.AWAITING_APPROVAL,
                                f"{label} ({step.describe()}) waits for approval: annotate "
                                f"tollgate.dev/approve=<who> on {d.ctx.namespace}/{d.ctx.name}")
                    d.phase(Phase.AWAITING_APPROVAL, f"{label} waits for approval (tollgate.dev/approve) before "
                                                     f"{step.describe()}; canary at {weight}")
                    return
            if not ready:
                d.phase(Phase.PROGRESSING, f"{label}: waiting for canary pods to be Ready before "
                                           f"{step.describe()}{pods_detail(d.obs.canary, canary)}")
                return
            if not receives(d.st) and not before_first_weight(d, label):
                return  # spec.hooks.preTraffic / confirmRollout wait, or rolled the canary back
            d.st.canaryWeight = step.canary_weight
            d.st.canaryMirror = step.mirror
            d.st.stepStartedAt = d.at
            d.st.passedAnalyses = 0
            d.st.phase = Phase.PROGRESSING
            if step.shadow is not None:
                d.event(Reason.STEP_ADVANCED, f"{label}: shadow, {step.mirror}% of requests mirrored to the canary "
                                              "(users get stable's answers only)")
            else:
                d.event(Reason.STEP_ADVANCED, f"{label}: canary weight {weight} -> {step.describe()}")
            skip = None  # one step: a step entered in this decision is not skipped in it
            if not track_ready(d.obs.canary, canary, d.canary_pods(step.load)):
                ready = False
                d.st.notReadySince = d.at
            continue
        started = parse_time(d.st.stepStartedAt) or d.now
        pause = parse_duration(step.pause) if step.pause else 0.0
        pause_left = (started + timedelta(seconds=pause) - d.now).total_seconds()
        analysed = not step.analysis or d.st.passedAnalyses >= 1
        if skip is not None and not ready:
            d.deferred = d.deferred | {"step"}  # acts once the canary's pods for this step are Ready
        if ready and skip is not None:
            d.event(Reason.STEP_PROMOTED, f"{label} at {weight} completed by tollgate.dev/step={skip}: its "
                                          "remaining pause and analysis skipped")
            skip, skipped = None, True
        elif not (ready and pause_left <= 0 and analysed):
            waits = []
            if not ready:
                waits.append("canary pods to be Ready" + pods_detail(d.obs.canary, canary))
            if pause_left > 0:
                waits.append(f"pause ({pause_left:.0f}s left)")
            if not analysed:
                waits.append("a passing analysis")
            d.phase(Phase.PROGRESSING, f"{label} at {weight}: waiting for {', '.join(waits)}")
            return
        if index == len(steps) - 1:
            if not before_promotion(d, label):
                return  # spec.hooks.prePromotion waits, or rolled the canary back
            start_promotion(d, "the last step completed by the step control" if skipped else
                            f"all {len(steps)} steps passed")
            promotion_progress(d, policy)
            return
        d.st.currentStep = index + 1  # passedAnalyses resets when the next step is entered


def _test_text(s: SLOStatus) -> str:
    """The tests' evidence: a limit's p-value (engine.limits); the comparison's test, effect and interval,
    p-value and samples."""
    limit = f"; limit test p {s.limitPValue:.3g} (exact binomial)" if s.limitPValue is not None else ""
    if s.test is None or s.effect is None:
        return limit
    return limit + (
        f"; {s.test} effect {s.effect:+.4g} [{s.effectLower:+.4g}, {s.effectUpper:+.4g}], always-valid p "
        f"{s.pValue:.3g}, canary {s.streamSamples} vs {s.baselineSource} baseline {s.baselineSamples}"
        f" ({s.baselineFrom})")


def _full_interval(policy: Policy) -> float:
    """One analysis interval, as looks on the grid measure it (a look may come up to the grid slack
    before its due time, engine.wakes)."""
    return policy.interval_seconds - grid_slack(policy.look_interval)
