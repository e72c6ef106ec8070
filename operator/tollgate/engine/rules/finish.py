"""The draft becomes the Decision: controls seen, timeline, conditions, desired objects, actions, wakes.

Actions come out in the order the runtime executes them (engine.actions): traffic, desired objects,
removals, the record (promotion, rollback and its evidence), then events.
"""

from __future__ import annotations

from dataclasses import replace

from tollgate.api.spec import ModelDeploymentSpec, RouterKind
from tollgate.api.status import TIMELINE_LIMIT, Condition, ModelDeploymentStatus, Phase, TimelineEntry
from tollgate.engine import conditions as cond
from tollgate.engine.actions import (
    Action,
    ApplyObjects,
    Decision,
    DeleteObjects,
    ObjectRef,
    Reason,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.autoscale import HPA_API, split_for
from tollgate.engine.dataplane import DATAPLANE_KINDS, HTTP_ROUTE_API, TRAEFIK_API, route_name, service_name
from tollgate.engine.draft import Draft, seen_tokens, track_ready, with_template
from tollgate.engine.evidence import evidence_payload
from tollgate.engine.hook_jobs import hook_objects, job_ref
from tollgate.engine.observations import Track as TrackName
from tollgate.engine.policy import Policy
from tollgate.engine.revision import fallback_revision
from tollgate.engine.route_status import route_problem
from tollgate.engine.rules.hooks import hook_deadline, live_hooks
from tollgate.engine.rules.readiness import overdue
from tollgate.engine.rules.shares import report_served, report_shares
from tollgate.engine.sandbox import sandbox_namespace, sandbox_objects
from tollgate.engine.timeutil import parse_time
from tollgate.engine.traffic import rate_limits
from tollgate.engine.wakes import wake
from tollgate.engine.workloads import TrackPlan, TrafficPlan, deployment_ref, workload_objects


def finish(d: Draft, policy: Policy | None) -> Decision:
    d.st.controls = seen_tokens(d.prev.controls, d.obs.controls, defer=d.deferred)
    killed = d.spec.killSwitch and d.apply  # a spec the engine cannot act on moves nothing (rule 1)
    if killed:
        d.st.canaryWeight = 0
    if killed or d.st.killSwitchActive or d.st.canary is None:
        d.st.canaryMirror = 0  # no canary to mirror to (rolled back, aborted, promoted, kill switch)
    if policy is not None:
        d.st.rateLimits = rate_limits(d.spec, d.st, policy.dialect)
    share_problem = report_shares(d, policy) if policy is not None else None
    report_served(d)
    sandbox_ready = d.obs.sandbox_ready or (d.apply and policy is not None)
    if (sandbox_ready and not cond.is_true(d.prev.conditions, cond.SANDBOX_READY)
            and cond.find(d.prev.conditions, cond.SANDBOX_READY) is not None):
        # An Event when a sandbox comes back after status said it was not ready. A new ModelDeployment's
        # sandbox is named in its Deployed Event instead (the condition says it at once): one Event fewer
        # per new object, a request the API server serves a thousand times in a bulk create (issue 22).
        d.event(Reason.SANDBOX_READY, f"sandbox namespace {d.st.sandboxNamespace} is ready")
    d.st.timeline = _timeline(d)
    d.st.conditions = _conditions(d, policy, share_problem, sandbox_ready)
    d.st.hooks = live_hooks(d.st, d.at)
    st = d.st.freeze()

    actions: list[Action] = []
    if d.apply and policy is not None:
        actions.extend(_desired(d, policy, st))
    actions.extend(d.notices)
    if d.rollback is not None and policy is not None:
        rb = d.rollback
        actions.append(RollBack(rb.canary.revision, rb.canary.version,
                                rb.stable.revision if rb.stable else None, rb.message, rb.incident, rb.cause))
        payload = evidence_payload(
            ctx=d.ctx, incident=rb.incident, result=rb.cause.result, reason=rb.cause.reason.value,
            message=rb.message, at=d.at, canary=rb.canary, stable=rb.stable, step=rb.step, weight=rb.weight,
            policy=policy, analysis=st.analysis, observations=d.obs.slos, timeline=st.timeline,
        )
        if rb.mirror > 0:  # a shadow step: the canary answered mirrored copies only, no user got its answers
            payload["shadow"] = {"mirrorPercent": rb.mirror, "userWeight": rb.weight}
        if rb.digest is not None:  # the storage initializer refused the model's bytes
            model = rb.canary.model if rb.canary.model is not None else d.spec.model  # a canary is the spec's
            payload["modelDigest"] = {"expected": rb.digest.expected, "actual": rb.digest.actual, "uri": model.uri}
        if rb.bake is not None:  # judged after promotion: the window, and the baselines it was judged against
            payload["bake"] = rb.bake.model_dump(mode="json")
            payload["baselines"] = [b.model_dump(mode="json") for b in st.baselines]
        hooks = [h.model_dump(mode="json", exclude_none=True) for h in st.hooks if h.revision == rb.canary.revision]
        actions.append(RecordEvidence(rb.incident, {**payload, "hooks": hooks} if hooks else payload))
    actions.extend(d.events)
    woken = wake(policy, st, d.now)
    acting = policy is not None and st.phase is not Phase.STALLED and not st.killSwitchActive
    hooked = hook_deadline(d.spec, st, d.now) if acting else None
    if hooked is not None and (woken.deadline is None or hooked < woken.deadline):
        woken = replace(woken, deadline=hooked)
    return Decision(status=st, actions=tuple(actions), at=d.now, wake=woken)


def _desired(d: Draft, policy: Policy, st: ModelDeploymentStatus) -> list[Action]:
    """Traffic (when the routing changed), the desired objects, and the tracks the plan no longer has."""
    actions: list[Action] = []
    limits = st.rateLimits
    plan = replace(traffic_plan(d.spec, policy, st, d.replicas),
                   canary_rate_limit=limits.canary if limits else None, rate_limit=limits.model if limits else None)
    before, after = _routing(d.prev), _routing(st)
    if after != before:
        traffic = split_for(d.spec, d.replicas, plan.canary_weight)
        canary_count = plan.canary.replicas if plan.canary else None
        actions.append(SetWeight(
            router=d.spec.traffic.router,
            canary_weight=plan.canary_weight,
            stable_replicas=(plan.stable.replicas if plan.stable else 0),
            canary_replicas=canary_count if canary_count is not None else traffic.canary_replicas,
            fallback=plan.to_fallback,
            # Off the canary fast (a lower weight, or less mirrored with no weight rise); a shadow step's
            # successor raises the weight, which waits for the desired objects like any rise.
            fast=plan.to_fallback or after[0] < before[0] or (after[2] < before[2] and after[0] <= before[0]),
            keep_canary=plan.kept and plan.canary is None,
            mirror_percent=plan.mirror,
            canary_rate_limit=plan.canary_rate_limit,
            dialect=policy.dialect,
        ))
    hooks = hook_objects(d.spec, d.ctx, st)
    workloads = workload_objects(d.spec, d.ctx, plan, policy.initializer_image, policy.dialect)
    actions.append(ApplyObjects((*sandbox_objects(d.spec, d.ctx), *workloads, *hooks)))
    ns = sandbox_namespace(d.spec, d.ctx)
    deletes: list[ObjectRef] = []
    # Hook Jobs no record wants any more (a newer canary, a promotion, a changed hook spec): removed.
    wanted = {h["metadata"]["name"] for h in hooks if h["kind"] == "Job"}
    deletes.extend(job_ref(ns, j.name) for j in d.obs.jobs if j.name not in wanted)
    kept = st.keptCanary  # a failed canary kept for debugging (engine.rules.keep): not removed until its end
    keeping = kept is not None and kept.revision == d.obs.canary.revision
    if plan.canary is None and d.obs.canary.revision is not None and not keeping:
        deletes.append(deployment_ref(d.ctx, ns, TrackName.CANARY))
    if plan.fallback is None and d.obs.fallback.revision is not None:
        deletes.append(deployment_ref(d.ctx, ns, TrackName.FALLBACK))
    # An HPA the spec no longer asks for (autoscaling removed, or scaler: external): removed.
    wanted_hpas = {o["metadata"]["name"] for o in workloads if o["kind"] == "HorizontalPodAutoscaler"}
    deletes.extend(ObjectRef(HPA_API, "HorizontalPodAutoscaler", name, ns)
                   for name in d.obs.autoscalers if name not in wanted_hpas)
    # The traefik dialect's objects the desired objects no longer hold (the router or the chart's dialect
    # changed): removed. A lifted limit keeps its objects, at `average: 0` (engine.dataplane).
    wanted_dataplane = {(o["kind"], o["metadata"]["name"]) for o in workloads if o["kind"] in DATAPLANE_KINDS}
    deletes.extend(ObjectRef(TRAEFIK_API, kind, name, ns)
                   for kind, name in d.obs.dataplane_objects if (kind, name) not in wanted_dataplane)
    # The HTTPRoute of an earlier gatewayAPI spec, once the router is another: it would go on sending the
    # Gateway's requests to the track Services by its last weights, a canary's share included, whatever the
    # step plan or a rollback says.
    if d.spec.traffic.router is not RouterKind.GATEWAY_API and d.obs.route is not None:
        deletes.append(ObjectRef(HTTP_ROUTE_API, "HTTPRoute", route_name(d.ctx), ns))
    # And the replicas router's Service once the router is gatewayAPI: its selector takes every pod of the
    # main pool, so in-cluster callers would reach each later canary by its share of pods, unjudged by the
    # route's plan and untouched by its rollbacks.
    if d.spec.traffic.router is RouterKind.GATEWAY_API and d.obs.replicas_service:
        deletes.append(ObjectRef("v1", "Service", service_name(d.ctx), ns))
    if deletes:
        actions.append(DeleteObjects(tuple(deletes)))
    return actions


def _routing(st: ModelDeploymentStatus) -> tuple[int, bool, int]:
    """What the router serves for a status: the canary weight, whether the fallback takes all, and the
    percent of requests mirrored to the canary."""
    canary = st.canary is not None
    return (st.canaryWeight if canary else 0, st.fallback is not None, st.canaryMirror if canary else 0)


def traffic_plan(spec: ModelDeploymentSpec, policy: Policy, st: ModelDeploymentStatus, replicas: int) -> TrafficPlan:
    """Which revision each track runs, with how many replicas, and the canary's weight. `replicas`: the stable
    track's size (spec.replicas, or the autoscaler's current count: then the stable track is planned without
    a count, engine.autoscale)."""
    autoscaled = spec.autoscaling is not None
    full: int | None = None if autoscaled else replicas
    stable_ref = with_template(st.stable, spec)
    if spec.killSwitch or st.killSwitchActive:
        fallback = with_template(fallback_revision(spec, st), spec)
        separate = fallback is not None and (st.stable is None or fallback.revision != st.stable.revision)
        return TrafficPlan(
            stable=TrackPlan(stable_ref, full) if stable_ref is not None else None,
            canary=None,
            fallback=TrackPlan(fallback, max(1, replicas)) if separate and fallback is not None else None,
            canary_weight=0,
            to_fallback=separate and st.fallback is not None,
            kept=st.keptCanary is not None,
        )
    canary_ref = with_template(st.canary, spec)
    if canary_ref is None or not policy.steps:
        return TrafficPlan(TrackPlan(stable_ref, full) if stable_ref else None, None, None, 0, False,
                           kept=st.keptCanary is not None)
    weight = st.canaryWeight
    traffic = split_for(spec, replicas, weight)
    if st.promotingSince is not None:
        stable_plan: TrackPlan | None = TrackPlan(canary_ref, full)
    else:
        stable_plan = TrackPlan(stable_ref, None if autoscaled else traffic.stable_replicas) if stable_ref else None
    # Sized for the requests its pods answer: the weight, a shadow step's mirror, else the first step's.
    load = max(weight, st.canaryMirror)
    target = load if load > 0 else policy.steps[0].load
    return TrafficPlan(
        stable=stable_plan,
        canary=TrackPlan(canary_ref, split_for(spec, replicas, target).canary_replicas),
        fallback=None,
        canary_weight=weight,
        to_fallback=False,
        canary_alone=traffic.canary_alone,
        mirror=st.canaryMirror,
    )


def _conditions(d: Draft, policy: Policy | None, share_problem: str | None, sandbox_ready: bool) -> list[Condition]:
    """`sandbox_ready`: applied by an earlier decision, or by this one. A decision's status is written after
    its applies succeeded (runtime.reconciler; a failed apply writes none), so the status of the decision
    that applies the sandbox may say so: a new ModelDeployment reaches SandboxReady in its first status write,
    not in a second decision and write of its own (one status write fewer per ModelDeployment: bench
    `bulk`). The one status written before its actions (runtime.intent: a decision taking traffic off a
    canary) follows a canary, so its sandbox was applied already."""
    st = d.st
    phase = st.phase
    stable_ready = track_ready(d.obs.stable, st.stable, d.replicas)
    pending_late = (
        phase in (Phase.PENDING, Phase.STALLED) and policy is not None and st.notReadySince is not None
        and st.canary is None and st.lastKnownGood is None
        and overdue(parse_time(st.notReadySince) or d.now, policy, d.now)
    )
    route = route_problem(d.spec, d.st.sandboxNamespace or "", d.obs.route) if policy is not None else None
    return cond.of_status(d.prev.conditions, st, stable_ready=stable_ready, pending_late=pending_late,
                          sandbox_ready=sandbox_ready, now=d.now, generation=d.ctx.generation,
                          route=route if d.spec.traffic.router is RouterKind.GATEWAY_API else None,
                          routed=d.spec.traffic.router is RouterKind.GATEWAY_API, share_problem=share_problem,
                          shares_checked=policy is not None)


def _timeline(d: Draft) -> list[TimelineEntry]:
    start = d.timeline_from
    base = [] if start is not None else list(d.prev.timeline)
    events = d.events[start:] if start is not None else d.events
    entries = [
        TimelineEntry(at=d.at, reason=e.reason.value, message=e.message, step=d.st.currentStep,
                      weight=d.st.canaryWeight)
        for e in events
    ]
    return [*base, *entries][-TIMELINE_LIMIT:]
