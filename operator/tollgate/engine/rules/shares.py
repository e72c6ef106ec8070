"""Honest shares in status: each step's real canary share, the share now, and a warning when a step
cannot get its weight within the tolerance (engine.shares has the arithmetic).

Runs in every decision that has a policy (from finish): status.steps gets the planned share of every
step at the current replica count and, for the step the canary holds, the share measured from Ready
pods; status.canaryShare is the share now. A plan outside the tolerance (spec.traffic.shareTolerance,
default engine.shares.DEFAULT_TOLERANCE) is reported by the ShareWithinTolerance condition (False) and
a Warning Event once per new problem, never silently; with shareTolerance set the API server already
refused it at admission (api.share_rule), unless the replica count changed the answer since.

Runs in every decision: status.served is the share the canary actually served (engine.served), measured at
an analysis tick of the same canary from the request counts the tick fetched, under the traffic the window
ran with (the persisted status's weight and mirror: a step entered in this decision came after it). It is
kept until the next tick while the canary takes requests, and cleared with its traffic (rolled back, superseded,
promoting, kill switch, a plan change back to no weight).
"""

from __future__ import annotations

from tollgate.api.status import StepStatus
from tollgate.engine import conditions as cond
from tollgate.engine import shares
from tollgate.engine.actions import Reason
from tollgate.engine.autoscale import canary_cap, split_for
from tollgate.engine.draft import Draft
from tollgate.engine.policy import Policy
from tollgate.engine.served import measure
from tollgate.engine.timeutil import parse_time
from tollgate.engine.traffic import holds, receives


def report_shares(d: Draft, policy: Policy) -> str | None:
    """Write status.steps and status.canaryShare; return the share problem (None: every step fits)."""
    router = d.spec.traffic.router
    weights = [s.canary_weight for s in policy.steps]  # a shadow step gives no user to the canary: 0
    cap = canary_cap(d.spec) if d.spec.autoscaling is not None else None
    plan = shares.planned(router, d.replicas, weights, cap=cap)
    same_canary = (d.st.canary is not None and d.prev.canary is not None
                   and d.st.canary.revision == d.prev.canary.revision
                   and d.st.canaryStartedAt == d.prev.canaryStartedAt)
    same_plan = [s.weight for s in d.prev.steps] == weights
    kept = {i: s.share for i, s in enumerate(d.prev.steps)} if same_canary and same_plan else {}

    now = _measured_now(d)
    d.st.canaryShare = now
    holding = (now is not None and d.st.currentStep < len(weights)
               and holds(d.st, policy.steps[d.st.currentStep]))
    if holding:
        kept[d.st.currentStep] = now
    d.st.steps = [
        StepStatus(weight=s.weight, mirror=step.mirror or None, plannedShare=round(s.share, 1),
                   canaryPods=s.canary_pods if step.shadow is None else d.canary_pods(step.load),
                   stablePods=s.stable_pods, share=kept.get(s.index))
        for s, step in zip(plan, policy.steps, strict=True)
    ]

    tolerance = d.spec.traffic.shareTolerance
    problem = shares.problem(router, d.replicas, weights,
                             shares.DEFAULT_TOLERANCE if tolerance is None else tolerance, cap=cap)
    before = cond.find(d.prev.conditions, cond.SHARE_WITHIN_TOLERANCE)
    if problem is not None and (before is None or before.message != problem):
        d.event(Reason.SHARE_OUT_OF_TOLERANCE, problem, warning=True)
    return problem


def _measured_now(d: Draft) -> float | None:
    """The canary's share now, while a canary takes traffic (not while promoting or under the kill
    switch, when the tracks no longer split by the plan)."""
    canary = d.st.canary
    if canary is None or d.st.promotingSince is not None or d.st.killSwitchActive or d.spec.killSwitch:
        return None
    ready = d.obs.canary.ready if d.obs.canary.revision == canary.revision else 0
    alone = split_for(d.spec, d.replicas, d.st.canaryWeight).canary_alone
    return shares.measured(d.spec.traffic.router, d.st.canaryWeight, d.obs.stable.ready, ready, canary_alone=alone)


def report_served(d: Draft) -> None:
    """Write status.served: measured at an analysis tick, kept between ticks, None without a canary."""
    canary, prev = d.st.canary, d.prev
    same_canary = (canary is not None and prev.canary is not None and canary.revision == prev.canary.revision
                   and d.st.canaryStartedAt == prev.canaryStartedAt)
    if (not same_canary or not receives(d.st) or d.st.promotingSince is not None or d.st.killSwitchActive
            or d.spec.killSwitch):
        d.st.served = None
        return
    if d.obs.slos is None or prev.promotingSince is not None:
        return  # no tick in this decision: the last measurement of this canary stands
    d.st.served = measure(d.obs.slos, weight=prev.canaryWeight, mirror=prev.canaryMirror, now=d.now,
                          step_started=parse_time(prev.stepStartedAt))
