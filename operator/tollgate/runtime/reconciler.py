"""One reconcile: read what the watches delivered, measure if due, decide, act, write status.

The handlers stay thin: they only feed events into the registry and wake the loop of the
ModelDeployment; this module carries out the engine's decision. All Kubernetes I/O goes through
`tollgate.adapters.kube.Kube` (server-side apply, skip-if-unchanged, bounded retries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tollgate.adapters.evidence import EvidenceStore
from tollgate.adapters.kube import Kube
from tollgate.adapters.prometheus import AnalysisRequest
from tollgate.adapters.routers import router_for
from tollgate.api import resource
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.actions import (
    ApplyObjects,
    Context,
    Decision,
    DeleteObjects,
    EmitEvent,
    ObjectRef,
    Promote,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.observations import Controls, Observations, Track
from tollgate.engine.policy import resolve_policy
from tollgate.engine.rollout import analysis_due, decide, next_analysis_at
from tollgate.engine.sandbox import sandbox_namespace
from tollgate.runtime import metrics
from tollgate.runtime.analysis import AnalysisScheduler, align, grid_slack
from tollgate.runtime.registry import ObjectState, Registry

log = logging.getLogger("tollgate.reconcile")

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


def context_of(body: Mapping[str, Any]) -> Context:
    meta = body["metadata"]
    return Context(name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid", ""),
                   generation=int(meta.get("generation") or 0))


def controls_of(body: Mapping[str, Any]) -> Controls:
    ann = body.get("metadata", {}).get("annotations") or {}
    return Controls(
        approve=ann.get(resource.ANNOTATION_APPROVE) or None,
        promote=ann.get(resource.ANNOTATION_PROMOTE) or None,
        abort=ann.get(resource.ANNOTATION_ABORT) or None,
        retry=ann.get(resource.ANNOTATION_RETRY) or None,
    )


def status_json(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json")


def stalled_status(body: Mapping[str, Any], message: str, now: datetime) -> dict[str, Any]:
    """Status for a spec the models refuse (the API server's schema should have caught it first)."""
    prev = ModelDeploymentStatus.model_validate(body.get("status") or {})
    gen = int(body["metadata"].get("generation") or 0)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conds = [
        {"type": "Ready", "status": "False", "reason": "SpecInvalid", "message": message,
         "lastTransitionTime": at, "observedGeneration": gen},
        {"type": "Stalled", "status": "True", "reason": "SpecInvalid", "message": message,
         "lastTransitionTime": at, "observedGeneration": gen},
    ]
    return {**status_json(prev), "phase": Phase.STALLED.value, "message": message,
            "observedGeneration": gen, "conditions": conds}


@dataclass
class Reconciler:
    kube: Kube
    registry: Registry
    scheduler: AnalysisScheduler
    evidence: EvidenceStore
    post_event: EventPoster
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def reconcile(self, st: ObjectState) -> float | None:
        """Decide once for this ModelDeployment; returns seconds until the engine wants to look again."""
        body = st.body
        if body is None:
            return None
        st.deciding_on = st.revision
        started = time.monotonic()
        try:
            return await self._reconcile(st, body)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    async def _reconcile(self, st: ObjectState, body: dict[str, Any]) -> float | None:
        ctx = context_of(body)
        now = self.clock()
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "spec." + ".".join(str(p) for p in first["loc"])
            message = f"{where}: {first['msg']} (value {first.get('input')!r}); fix the field and re-apply"
            new = stalled_status(body, message, now)
            await self._write_status(st, ctx, body, new)
            return None
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        sandbox = sandbox_namespace(spec, ctx)

        slos = None
        if self._on_grid_and_due(spec, status, now):
            policy = resolve_policy(spec)
            tracks = (("stable", status.stable), ("canary", status.canary))
            versions = tuple((track, ref.version) for track, ref in tracks if ref is not None)
            request = AnalysisRequest(ctx.namespace, ctx.name, tuple(r.slo for r in policy.slos), policy.window,
                                      versions)
            slos = await self.scheduler.measure(request)
            for obs in slos:
                metrics.record_observation(ctx, obs)
            now = self.clock()

        observations = Observations(
            generation=ctx.generation,
            stable=self.registry.track(sandbox, ctx, Track.STABLE),
            canary=self.registry.track(sandbox, ctx, Track.CANARY),
            fallback=self.registry.track(sandbox, ctx, Track.FALLBACK),
            sandbox_ready=st.sandbox_ready,
            slos=slos,
            controls=controls_of(body),
        )
        decision = decide(spec, status, observations, now, ctx)
        st.decisions += 1
        await asyncio.to_thread(self._execute, st, ctx, body, spec, decision)
        new = status_json(decision.status)
        if new != status_json(status):
            await self._write_status(st, ctx, body, new)
        metrics.record_status(ctx, decision.status)
        if slos is not None:
            metrics.record_verdicts(ctx, decision.status)
        return self._next_wake(decision, spec, now)

    @staticmethod
    def _on_grid_and_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
        """Measure when the grid point of the next tick has come: never between grid points (a wake for
        another reason must not start an off-grid batch), and at most the slack before the engine's due
        time (see analysis.grid_slack)."""
        if not analysis_due(spec, status, now + timedelta(seconds=_slack(spec))):
            return False
        policy = resolve_policy(spec)
        due = next_analysis_at(policy, status)
        if due is None:
            return False
        interval = policy.interval_seconds
        return now >= align(due, interval, grid_slack(interval)) - timedelta(milliseconds=20)

    def _next_wake(self, decision: Decision, spec: ModelDeploymentSpec, now: datetime) -> float | None:
        # Relative to the clock now, not to the decision's `now`: executing the decision and writing
        # status took time, and sleeping the full delay from here would wake each loop late by its
        # own write latency, scattering the loops that should meet on the grid.
        elapsed = (self.clock() - now).total_seconds()
        requeue = None if decision.requeue_after is None else decision.requeue_after - elapsed
        wake = requeue
        if decision.analysis_at is not None:
            interval = resolve_policy(spec).interval_seconds
            aligned = (align(decision.analysis_at, interval, grid_slack(interval)) - now).total_seconds() - elapsed
            # The engine's requeue_after includes the (unaligned) analysis time itself: when that is
            # what it points at, the grid decides; only an earlier deadline or pause end comes first.
            analysis_in = (max(decision.analysis_at, now) - now).total_seconds() - elapsed
            if requeue is not None and abs(requeue - analysis_in) < 1e-3:
                requeue = None
            wake = aligned if requeue is None else min(requeue, aligned)
        return None if wake is None else max(wake, 0.0)

    # --- carrying out the decision (in a worker thread: the Kubernetes client is synchronous) ----
    def _execute(self, st: ObjectState, ctx: Context, body: dict[str, Any], spec: ModelDeploymentSpec,
                 decision: Decision) -> None:
        sandbox = decision.status.sandboxNamespace or sandbox_namespace(spec, ctx)
        for action in decision.actions:
            if isinstance(action, SetWeight):
                # Traffic away from the canary moves first, through the router's fast path; raising
                # weight waits for the desired objects below, which carry the same split.
                if action.fallback or action.canary_weight < st.last_weight:
                    router_for(action.router, self.kube).set_weight(ctx, sandbox, action)
                st.last_weight = action.canary_weight
                metrics.set_weight(ctx.namespace, ctx.name, action.canary_weight)
            elif isinstance(action, ApplyObjects):
                self._apply(st, ctx, body, action)
            elif isinstance(action, DeleteObjects):
                for ref in action.refs:
                    self.kube.delete(ref)
            elif isinstance(action, Promote):
                metrics.PROMOTIONS.labels(ctx.namespace, ctx.name).inc()
                log.info("promoted", extra={"md": f"{ctx.namespace}/{ctx.name}", "revision": action.revision,
                                            "version": action.version})
            elif isinstance(action, RollBack):
                metrics.ROLLBACKS.labels(ctx.namespace, ctx.name, action.cause).inc()
                log.warning("rolled back", extra={"md": f"{ctx.namespace}/{ctx.name}",
                                                  "revision": action.revision, "reason": action.reason,
                                                  "incident": action.incident})
            elif isinstance(action, RecordEvidence):
                self.evidence.record(action.name, body, action.payload)
            elif isinstance(action, EmitEvent):
                self.post_event(body, action.type.value, action.reason.value, action.message)

    def _apply(self, st: ObjectState, ctx: Context, body: dict[str, Any], action: ApplyObjects) -> None:
        owner = f"{ctx.namespace}/{ctx.name}"
        for obj in action.objects:
            # A namespace live with the hash of our own desired manifest (owner annotation included)
            # is ours: no GET. Only an unknown or changed one is read before applying.
            if (obj["kind"] == "Namespace" and not self.kube.is_applied(obj)
                    and not self._may_manage_namespace(obj, owner, body)):
                continue
            self.kube.apply(obj)
        st.sandbox_ready = True

    def _may_manage_namespace(self, obj: Mapping[str, Any], owner: str, body: Mapping[str, Any]) -> bool:
        """Never adopt a namespace somebody else created: apply it only if absent or ours."""
        ref = ObjectRef("v1", "Namespace", obj["metadata"]["name"])
        live = self.kube.get(ref)
        if live is None:
            return True
        ours = (live["metadata"].get("annotations") or {}).get(resource.ANNOTATION_OWNER) == owner
        if not ours:
            log.info("sandbox namespace exists and is not Tollgate's; leaving its labels alone",
                     extra={"namespace": ref.name, "md": owner})
        return ours

    async def _write_status(self, st: ObjectState, ctx: Context, body: dict[str, Any],
                            new: dict[str, Any]) -> None:
        old = body.get("status") or {}
        # merge patch: fields that disappeared must be sent as null to be removed
        patch = {**{k: None for k in old if k not in new}, **new}
        written = await asyncio.to_thread(self.kube.patch_status, ctx.namespace, ctx.name, patch)
        rv = written.get("metadata", {}).get("resourceVersion")
        if not rv:
            body["status"] = new
            if st.revision == st.deciding_on:  # no newer body arrived while we decided
                st.body = body
                st.deciding_on = st.revision
            return
        # The response is the whole object as of our write, newer than any event still in flight.
        st.written_resource_version = rv
        st.body = written
        meta, seen = written.get("metadata", {}), body.get("metadata", {})
        if (written.get("spec") != body.get("spec") or meta.get("annotations") != seen.get("annotations")
                or meta.get("deletionTimestamp") != seen.get("deletionTimestamp")):
            st.kick()  # someone changed the object while we decided: decide again


def _slack(spec: ModelDeploymentSpec) -> float:
    try:
        return grid_slack(resolve_policy(spec).interval_seconds)
    except ValueError:
        return 0.0
