"""One reconcile: read what the watches delivered, measure if due, decide, act, write status.

The handlers stay thin: they only feed events into the registry and wake the loop of the
ModelDeployment; this module carries out the engine's decision. All Kubernetes I/O goes through
`tollgate.adapters.kube.Kube` (server-side apply, skip-if-unchanged, bounded retries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tollgate.adapters.destinations import DestinationPolicy
from tollgate.adapters.errors import ConflictError, PermanentError, TemporaryError
from tollgate.adapters.evidence import EvidenceStore
from tollgate.adapters.kube import Kube
from tollgate.adapters.routers import router_for
from tollgate.adapters.throttle import URGENT
from tollgate.adapters.webhook import confirm
from tollgate.api import resource
from tollgate.api.controls import tokens_of
from tollgate.api.invalid import InvalidSpecError, parse_spec
from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect, dialect_problem
from tollgate.api.spec import RouterKind
from tollgate.api.status import ModelDeploymentStatus, Phase, bounded
from tollgate.engine.actions import (
    ApplyObjects,
    Context,
    Decision,
    DeleteObjects,
    DrillRecorded,
    EmitEvent,
    ObjectRef,
    Promote,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.dataplane import route_name
from tollgate.engine.evidence import evidence_from_status
from tollgate.engine.model_delivery import DEFAULT_INITIALIZER_IMAGE
from tollgate.engine.observations import Observations, Track
from tollgate.engine.platform import PlatformLimits, over_limits
from tollgate.engine.refusal import Refusal, Switch, refuse
from tollgate.engine.rollout import Case, refused
from tollgate.engine.status_size import compact, expand
from tollgate.runtime import metrics
from tollgate.runtime.analysis import AnalysisScheduler
from tollgate.runtime.credentials import CredentialsCopier, CredentialsUnavailableError
from tollgate.runtime.decision_slots import DecisionSlots
from tollgate.runtime.intent import leaves_canary
from tollgate.runtime.ownership import SandboxNotGrantedError, SandboxNotOwnedError, SandboxOwnership
from tollgate.runtime.registry import ObjectState, PendingEvidence, Registry

log = logging.getLogger("tollgate.reconcile")
T = TypeVar("T")

IN_SLOT: ContextVar[bool] = ContextVar("tollgate_in_decision_slot", default=True)
"""False for a decision the loop let through without a decision slot (runtime.intent.kill_switch_pending):
it must not give back, around its analysis batch, a slot it never took."""

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]

RESTORED = "Restored"
"""Event reason: a child someone else deleted or edited was put back (level-triggered children)."""
EVIDENCE_FAILED = "EvidenceFailed"
EVIDENCE_ATTEMPTS = 5
REFUSED_RECHECK_SECONDS = 30.0
"""A refused ModelDeployment is looked at again this often (one GET), in case its namespace went away."""


def context_of(body: Mapping[str, Any]) -> Context:
    meta = body["metadata"]
    return Context(name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid", ""),
                   generation=int(meta.get("generation") or 0),
                   sandbox=(body.get("status") or {}).get("sandboxNamespace") or None)


def incidents_of(status: Mapping[str, Any]) -> set[str]:
    """Evidence records a status still points to (its bounded history and the latest incident)."""
    named = {h.get("incident") for h in status.get("history") or []} | {status.get("lastIncident")}
    return {n for n in named if n}


def status_json(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json")


def storable(status: ModelDeploymentStatus) -> dict[str, Any]:
    """Status as written: each runtime once (engine.status_size), every string within the CRD's cap."""
    out: dict[str, Any] = bounded(compact(status_json(status)))  # type: ignore[assignment]
    return out


@dataclass
class Reconciler:
    kube: Kube
    registry: Registry
    scheduler: AnalysisScheduler
    evidence: EvidenceStore
    post_event: EventPoster
    ownership: SandboxOwnership
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    scrape_interval: float | None = None
    """Seconds between scrapes of the models' metrics (Settings.scrape_interval)."""
    limits: PlatformLimits = field(default_factory=PlatformLimits)
    initializer_image: str = DEFAULT_INITIALIZER_IMAGE
    """The storage initializer's image (Settings.storage_initializer_image)."""
    dialect: GatewayDialect = DEFAULT_DIALECT
    """How the gatewayAPI router writes routes (Settings.gateway_dialect)."""
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)
    """Where a confirmRollout gate's URL may lead (Settings.confirm_rollout_destinations)."""
    credentials: CredentialsCopier | None = None
    """Copies model-delivery credentials into sandboxes (default: one over `kube`)."""
    slots: DecisionSlots | None = None
    """The decision slots the loops hold while deciding (runtime.app.DECISION_SLOTS), given back while a
    decision waits for its analysis batch (see _outside_slot)."""

    def __post_init__(self) -> None:
        if self.credentials is None:
            self.credentials = CredentialsCopier(self.kube)

    async def _outside_slot(self, waiting: Awaitable[T]) -> T:
        """Wait for the analysis batch without holding a decision slot: every canary due at one grid point
        must reach the scheduler together, or the batch splits into as many queries per template as it
        took rounds of slots (bench: prometheus_queries)."""
        if self.slots is None or not IN_SLOT.get():
            return await waiting
        self.slots.release()
        try:
            return await waiting
        finally:
            await self.slots.acquire()  # as a resuming decision: ahead of every first one

    async def reconcile(self, st: ObjectState) -> datetime | None:
        """Decide once for this ModelDeployment; returns when the engine wants to look again (None:
        only on events)."""
        body = st.body
        if body is None:
            return None
        st.deciding_on = st.revision
        started = time.monotonic()
        try:
            return await self._reconcile(st, body)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    async def _reconcile(self, st: ObjectState, body: dict[str, Any]) -> datetime | None:
        # Read: the object as the watch delivered it, the tracks from the watch cache.
        ctx = context_of(body)
        now = self.clock()
        status = ModelDeploymentStatus.model_validate(expand(body.get("status") or {}))
        try:
            spec = parse_spec(body.get("spec"))
        except InvalidSpecError as exc:
            return await self._refuse(st, ctx, body, status, str(exc), now, "SpecInvalid", recheck=False)
        ctx = self.ownership.with_legacy(ctx, explicit=bool(spec.sandbox.namespace))
        # Refused before anything is decided (so nothing is written but this status): a spec over the
        # platform's limits, or a sandbox namespace that is not this ModelDeployment's (ownership.py).
        over = over_limits(spec, self.limits)
        if over is not None:
            return await self._refuse(st, ctx, body, status, over, now, "OverPlatformLimit")
        # What the platform's Gateway dialect cannot carry out (admission knows the router, not the dialect,
        # a chart value): refused here, before any traffic moves, with the field, the dialect and the fix.
        unable = dialect_problem(spec, self.dialect)
        if unable is not None:
            return await self._refuse(st, ctx, body, status, unable, now, "UnsupportedByDataPlane")
        try:
            case = Case.of(spec, status, ctx, scrape_interval=self.scrape_interval,
                           initializer_image=self.initializer_image, dialect=self.dialect)
        except Exception as exc:
            return await self._stall(st, ctx, body, status, now, exc)
        explicit = bool(spec.sandbox.namespace)
        try:
            # A default name nobody is known to hold is checked by the create that claims it, ahead of every
            # other action of the decision (_claim_sandbox): no read before it (ownership.read_first).
            if self.ownership.read_first(case.sandbox, ctx, explicit=explicit):
                await asyncio.to_thread(self.ownership.check, case.sandbox, ctx, explicit=explicit)
        except SandboxNotGrantedError as exc:
            return await self._refuse(st, ctx, body, status, str(exc), now, "SandboxNotGranted")
        except SandboxNotOwnedError as exc:
            return await self._refuse(st, ctx, body, status, str(exc), now, "SandboxNotOwned")
        assert self.credentials is not None
        try:  # before anything is decided or written: a Secret that cannot be copied names its fix
            await asyncio.to_thread(self.credentials.prepare, spec, ctx)
        except CredentialsUnavailableError as exc:
            return await self._refuse(st, ctx, body, status, str(exc), now, "CredentialsUnavailable")

        # Measure, when the engine says the grid point of an analysis tick has come.
        slos = None
        missing: tuple[str, ...] = ()
        request = case.analysis_request(now)
        if request is not None:
            request, missing = self.registry.templates.resolve(request)
            slos = await self._outside_slot(self.scheduler.measure(request))
            for obs in slos:
                metrics.record_observation(ctx, obs)
            now = self.clock()

        # Ask the confirmation gate (spec.hooks.confirmRollout) when the engine says it is due.
        webhook = None
        call = case.webhook_due(now)
        if call is not None:
            webhook = await asyncio.to_thread(confirm, self.kube, call, self.destinations)
            now = self.clock()

        # Decide once, execute the actions in order, write the status.
        sandbox = case.sandbox
        observations = Observations(
            generation=ctx.generation,
            stable=self.registry.track(sandbox, ctx, Track.STABLE),
            canary=self.registry.track(sandbox, ctx, Track.CANARY),
            fallback=self.registry.track(sandbox, ctx, Track.FALLBACK),
            sandbox_ready=st.sandbox_ready,
            slos=slos,
            controls=tokens_of(body.get("metadata", {}).get("annotations")),
            route=self.registry.route(sandbox, route_name(ctx)),
            missing_templates=missing,
            jobs=self.registry.jobs_of(sandbox),
            autoscalers=self.registry.autoscalers_of(sandbox),
            dataplane_objects=self.registry.dataplane_objects_of(sandbox),
            webhook=webhook,
            routing=self.registry.routing_of(sandbox, ctx, spec.traffic.router),
            replicas_service=(spec.traffic.router is RouterKind.GATEWAY_API  # else `routing` already is it
                              and self.registry.routing_of(sandbox, ctx, RouterKind.REPLICAS) is not None),
        )
        try:
            decision = case.decide(observations, now)
        except Exception as exc:
            return await self._stall(st, ctx, body, status, now, exc)
        st.decisions += 1
        new = storable(decision.status)
        changed = new != storable(status)
        # Intent first: a decision that takes traffic off a canary is persisted before its first action,
        # so a crash anywhere after resumes it (status no longer names the canary) and never returns
        # traffic to it. Other decisions write status after their actions, as the objects then carry it.
        leaving = leaves_canary(status, decision)
        intent = changed and leaving
        # Taking traffic off a canary goes ahead of the requests waiting for room at a throttling API server
        # (adapters.throttle.URGENT); reset after, as this task's context outlives the decision.
        urgent = URGENT.set(leaving)
        try:
            if intent and not await self._write_status(st, ctx, body, new):
                return now  # the object changed since we read it: nothing done, decide again on the new one
            try:
                await asyncio.to_thread(self._execute, st, ctx, body, case, decision, explicit, intent or not changed)
            except SandboxNotOwnedError as exc:  # the claim found the name taken (or it appeared since the check)
                reason = "SandboxNotGranted" if isinstance(exc, SandboxNotGrantedError) else "SandboxNotOwned"
                return await self._refuse(st, ctx, body, status, str(exc), now, reason)
        finally:
            URGENT.reset(urgent)
        if changed and not intent:
            # Events after the status they report: a write that conflicts is decided again, and the events
            # of the decision that was not written would otherwise be posted twice.
            if not await self._write_status(st, ctx, body, new):
                return now
            await asyncio.to_thread(self._post_events, body, decision)
        metrics.record_status(ctx, decision.status)
        if slos is not None:
            metrics.record_verdicts(ctx, decision.status)
        return decision.wake.earliest()

    async def _stall(self, st: ObjectState, ctx: Context, body: dict[str, Any], status: ModelDeploymentStatus,
                     now: datetime, exc: Exception) -> datetime | None:
        """A decision that raised: Stalled with the reason in status, an Event and the log, nothing of the
        spec acted on, and no retry until the object changes (a bug must surface, never loop silently). A
        canary with traffic is held as under a refusal (engine.refusal): a bug never leaves it serving
        unjudged."""
        message = (f"internal error while deciding: {type(exc).__name__}: {exc}"[:400]
                   + "; nothing of the spec was acted on. Report it with the operator's log; change the spec to retry")
        log.exception("decision failed; the ModelDeployment is Stalled",
                      extra={"md": f"{ctx.namespace}/{ctx.name}", "reason": message})
        try:
            out = self._refusal(ctx, body, status, message, now, "DecisionFailed")
        except Exception:  # deciding the hold failed too: the plain Stalled status, nothing moved
            log.exception("holding the canary of a failed decision failed", extra={"md": f"{ctx.namespace}/{ctx.name}"})
            out = Refusal(refused(status, message, now, ctx.generation, reason="DecisionFailed"))
        # Carried out as any refusal: an API error while the router moves goes to the loop's backoff, and
        # the next pass finds the router still splitting (the status already says weight 0).
        return await self._carry_out(st, ctx, body, out, message, now, "DecisionFailed", recheck=False)

    async def _refuse(self, st: ObjectState, ctx: Context, body: dict[str, Any], status: ModelDeploymentStatus,
                      message: str, now: datetime, reason: str, *, recheck: bool = True) -> datetime | None:
        """Stalled, naming the owner (or the limit) and the fix; nothing written but this status, and only
        when it changes, and a canary in flight in this ModelDeployment's own sandbox held (engine.refusal).
        Looked at again later (`recheck`): the namespace may go away (a spec change wakes us anyway)."""
        out = self._refusal(ctx, body, status, message, now, reason)
        return await self._carry_out(st, ctx, body, out, message, now, reason, recheck=recheck)

    def _refusal(self, ctx: Context, body: dict[str, Any], status: ModelDeploymentStatus, message: str,
                 now: datetime, reason: str) -> Refusal:
        """The refused status, and the hold of a canary in flight. The hold writes only into a sandbox whose
        owner label names this ModelDeployment (as watched: no read), whatever the refused spec now names."""
        new = refused(status, message, now, ctx.generation, reason)
        sandbox = status.sandboxNamespace
        if not sandbox or not self.ownership.owned(sandbox, ctx):
            return Refusal(new)
        return refuse(new, self._switch(ctx, status, body.get("spec")), now, reason)

    async def _carry_out(self, st: ObjectState, ctx: Context, body: dict[str, Any], out: Refusal, message: str,
                         now: datetime, reason: str, *, recheck: bool) -> datetime | None:
        sandbox = out.status.sandboxNamespace
        stored = storable(out.status)
        old = body.get("status") or {}
        announce = (old.get("phase") != Phase.STALLED.value or old.get("message") != stored.get("message")
                    or old.get("observedGeneration") != ctx.generation)
        after = out.status  # a hold moves on without a new message at times: stable grown back, then weight 0
        changed = announce or ((old.get("canaryWeight") or 0, old.get("canaryMirror") or 0, old.get("planHash"))
                               != (after.canaryWeight, after.canaryMirror, after.planHash))
        # Traffic leaving a canary goes ahead of the throttle's queue, its status write (intent first, as for
        # any decision that takes traffic off a canary: a crash after it finds the router still splitting and
        # moves it then, engine.refusal) and the router's requests alike.
        urgent = URGENT.set(bool(out.actions))
        try:
            if announce:
                log.warning("refused", extra={"md": f"{ctx.namespace}/{ctx.name}", "reason": reason,
                                              "detail": message, "held": after.canary is not None
                                              and after.planHash is None})
            if changed and not await self._write_status(st, ctx, body, stored):
                return now
            if announce:  # before the router's requests: one that fails is retried without a second Event
                self.post_event(body, "Warning", reason, out.status.message)
            for action in out.actions:
                assert sandbox  # refuse() holds nothing without one
                await asyncio.to_thread(router_for(action.router, self.kube).set_weight, ctx, sandbox, action)
                metrics.set_weight(ctx.namespace, ctx.name, action.canary_weight)
        finally:
            URGENT.reset(urgent)
        # A hold under way is looked at again whatever the refusal (its router objects' events wake nobody).
        return self.clock() + timedelta(seconds=REFUSED_RECHECK_SECONDS) if recheck or out.actions else None

    def _switch(self, ctx: Context, status: ModelDeploymentStatus, spec: object) -> Switch:
        """The router's objects as watched, for a refusal's hold; from the stored spec only whether the message
        mentions the kill switch."""
        sandbox = status.sandboxNamespace
        raw = spec if isinstance(spec, Mapping) else {}
        return Switch(route=self.registry.routing_of(sandbox, ctx, RouterKind.GATEWAY_API),
                      service=self.registry.routing_of(sandbox, ctx, RouterKind.REPLICAS),
                      stable=self.registry.track(sandbox, ctx, Track.STABLE),
                      canary=self.registry.track(sandbox, ctx, Track.CANARY),
                      kill_switch=raw.get("killSwitch") is True, dialect=self.dialect)

    # --- carrying out the decision (in a worker thread: the Kubernetes client is synchronous) ----
    def _post_events(self, body: dict[str, Any], decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, EmitEvent):
                self.post_event(body, action.type.value, action.reason.value, action.message)

    def _execute(self, st: ObjectState, ctx: Context, body: dict[str, Any], case: Case,
                 decision: Decision, explicit: bool, events: bool = True) -> None:
        """`events`: post the decision's Events here; False when they wait for its status write."""
        sandbox = decision.status.sandboxNamespace
        if sandbox and not self.ownership.owned(sandbox, ctx):
            self._claim_sandbox(ctx, sandbox, decision, explicit)
        for action in decision.actions:
            if isinstance(action, SetWeight):
                if action.fast and sandbox:
                    router_for(action.router, self.kube).set_weight(ctx, sandbox, action)
                metrics.set_weight(ctx.namespace, ctx.name, action.canary_weight)
            elif isinstance(action, ApplyObjects):
                self._apply(st, ctx, body, action, explicit)
            elif isinstance(action, DeleteObjects):
                for ref in action.refs:
                    if not self.kube.delete(ref):  # already gone: its DELETED event may never come
                        self.registry.forget_router_object(ref)
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
                dropped = incidents_of(body.get("status") or {}) - incidents_of(status_json(decision.status))
                st.pending_evidence = PendingEvidence(action.name, action.payload, frozenset(dropped))
            elif isinstance(action, DrillRecorded):
                metrics.record_drill(ctx, action)
                log.info("drill ended", extra={"md": f"{ctx.namespace}/{ctx.name}", "kind": action.kind,
                                               "outcome": action.outcome, "seconds": action.seconds})
        if events:
            self._post_events(body, decision)
        self._evidence(st, ctx, body, case, decision)

    def _claim_sandbox(self, ctx: Context, sandbox: str, decision: Decision, explicit: bool) -> None:
        """Before the first action into a sandbox not yet known as ours: create it (the Namespace this decision
        applies; a create that finds the name taken reads it and raises SandboxNotOwnedError unless it carries
        this ModelDeployment's UID), or, when the decision applies none, read it (ownership.check). Whatever
        the action (a router's fast path, a delete, an apply), nothing is sent into a namespace before this."""
        manifest = next((obj for action in decision.actions if isinstance(action, ApplyObjects)
                         for obj in action.objects
                         if obj["kind"] == "Namespace" and obj["metadata"]["name"] == sandbox), None)
        if manifest is not None:
            self.ownership.claim(manifest, ctx, explicit=explicit)
        else:
            self.ownership.check(sandbox, ctx, explicit=explicit)

    def _evidence(self, st: ObjectState, ctx: Context, body: dict[str, Any], case: Case,
                  decision: Decision) -> None:
        """Best effort, after the traffic actions: a failure never blocks or reverses the rollback; it is
        reported in an Event and retried at the next decisions (a bounded number of times). After a
        restart, a rollback whose evidence is missing (the operator died between its status write and
        its evidence) gets the record rebuilt from status, written by create: the operator reads no
        ConfigMap, and a create finding the name taken leaves the original record as it is."""
        status = decision.status
        if (st.pending_evidence is None and st.decisions == 1 and status.lastIncident
                and status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and case.policy is not None):
            payload = evidence_from_status(ctx, status, case.policy)
            if payload is not None:
                st.pending_evidence = PendingEvidence(status.lastIncident, payload, rebuilt=True)
        pending = st.pending_evidence
        if pending is None:
            return
        try:
            if pending.rebuilt:
                if self.evidence.create(pending.name, body, pending.payload):
                    log.info("evidence rebuilt from status", extra={"md": f"{ctx.namespace}/{ctx.name}",
                                                                    "incident": pending.name})
            else:
                self.evidence.record(pending.name, body, pending.payload, pending.dropped)
        except (TemporaryError, PermanentError) as exc:
            pending.attempts += 1
            last = pending.attempts >= EVIDENCE_ATTEMPTS
            if last:
                st.pending_evidence = None
            log.warning("evidence not recorded", extra={"md": f"{ctx.namespace}/{ctx.name}", "incident": pending.name,
                                                        "attempt": pending.attempts, "error": str(exc)[:300]})
            self.post_event(body, "Warning", EVIDENCE_FAILED,
                            f"evidence {pending.name} not recorded (attempt {pending.attempts}/{EVIDENCE_ATTEMPTS}): "
                            f"{str(exc)[:300]}; " + ("giving up; the rollback stands" if last else
                                                     "retrying at the next decision; the rollback stands"))
            return
        st.pending_evidence = None

    def _apply(self, st: ObjectState, ctx: Context, body: dict[str, Any], action: ApplyObjects,
               explicit: bool) -> None:
        drifted = set(st.drifted)  # a drift reported while this pass runs is kept for the next decision
        for obj in action.objects:
            namespace = obj["metadata"].get("namespace")
            if obj["kind"] == "Namespace":
                # Created by POST for this ModelDeployment, never taken over (ownership.py); raises
                # SandboxNotOwnedError before anything else of this decision is written into it.
                self.ownership.claim(obj, ctx, explicit=explicit)
            elif namespace is not None and not self.ownership.owned(namespace, ctx):
                raise SandboxNotOwnedError(
                    f"refusing to write {obj['kind']} {obj['metadata']['name']} into namespace {namespace!r}: "
                    "not a sandbox Tollgate created for this ModelDeployment")
            meta = obj["metadata"]
            key = (obj["kind"], meta.get("namespace") or "", meta["name"])
            assert self.credentials is not None
            if self.kube.apply(self.credentials.fill(obj)) and key in st.drifted:
                how = st.drifted.pop(key)
                where = f"{key[1]}/{key[2]}" if key[1] else key[2]
                self.post_event(body, "Warning", RESTORED,
                                f"{key[0]} {where} was {how} by someone else; restored as Tollgate applied it")
                metrics.RESTORED.labels(key[0]).inc()
        for key in drifted:  # what was not re-applied is no longer wanted (e.g. a canary being removed)
            st.drifted.pop(key, None)
        st.sandbox_ready = True

    async def _write_status(self, st: ObjectState, ctx: Context, body: dict[str, Any],
                            new: dict[str, Any]) -> bool:
        """Write the decision's status, conditioned on the resourceVersion it was decided from. False: the
        object changed meanwhile (a new spec, a control, another replica's status); nothing was written,
        the newest body is in `st` and the loop is woken to decide again."""
        old = body.get("status") or {}
        # merge patch: fields that disappeared must be sent as null to be removed
        patch = {**{k: None for k in old if k not in new}, **new}
        seen_rv = body.get("metadata", {}).get("resourceVersion")
        try:
            written = await asyncio.to_thread(self.kube.patch_status, ctx.namespace, ctx.name, patch, seen_rv)
        except ConflictError:
            log.info("status write conflicted: re-reading and deciding again",
                     extra={"md": f"{ctx.namespace}/{ctx.name}"})
            if st.revision == st.deciding_on:  # the watch has not brought the newer body yet: read it
                fresh = await asyncio.to_thread(self.kube.get, ObjectRef(resource.API_VERSION, resource.KIND,
                                                                         ctx.name, ctx.namespace))
                if fresh is not None and st.revision == st.deciding_on:
                    st.body = fresh
            st.kick()
            return False
        rv = written.get("metadata", {}).get("resourceVersion")
        if not rv:
            body["status"] = new
            if st.revision == st.deciding_on:  # no newer body arrived while we decided
                st.body = body
                st.deciding_on = st.revision
            return True
        # The response is the whole object as of our write, newer than any event still in flight.
        st.written_resource_version = rv
        st.body = written  # its watch event is not stored again (handlers.take)
        meta, seen = written.get("metadata", {}), body.get("metadata", {})
        if (written.get("spec") != body.get("spec") or meta.get("annotations") != seen.get("annotations")
                or meta.get("deletionTimestamp") != seen.get("deletionTimestamp")):
            st.kick()  # someone changed the object while we decided: decide again
        return True

