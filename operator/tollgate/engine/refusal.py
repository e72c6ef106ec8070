"""A canary in flight when its ModelDeployment's spec is refused: traffic back on stable, held there.

A refused spec (a stored object the API types refuse, a spec over the platform's limits, a feature the
platform's Gateway dialect lacks, model credentials that cannot be copied) is not acted on: no policy, no
desired objects, no analysis. A canary that had traffic would keep it, unjudged, for as long as the spec
stays refused; and the kill switch, set in that same refused spec, would not act. So the refusal itself
holds the canary:

- Only a canary that has traffic (status.canaryWeight or canaryMirror above 0, or the router observed
  sending it requests) in a sandbox that is this ModelDeployment's (status.sandboxNamespace; a sandbox
  refused as not ours or not granted is never written). Not while promoting (stable already rolls to the
  canary's revision: taking traffic off the canary would leave it on pods being replaced) and not under the
  kill switch (traffic is on the fallback already).
- Traffic goes back to stable through the router's fast path alone, decided from what was observed, since
  the refused spec cannot be trusted to say which router is in force: the HTTPRoute when one is seen (its
  backendRefs weigh stable 100), else the replicas router's Service, which then selects the stable track
  only. The replicas router shrank stable for the step: it is scaled back to the step's pod total first
  (status.steps, the last accepted plan), and the Service moves once that many stable pods are Ready (the
  canary was not judged failed, so there is no need to send all traffic to too few pods); an autoscaler's
  count is left alone. The canary's pods stay, with no traffic. status.canaryWeight says where traffic is.
- It is a hold, not a rollback: the canary was never judged failed, so there is no rolledBackRevision, no
  evidence and no history entry. Its step plan is forgotten (status.planHash), so once a spec is accepted
  the canary restarts at step one (engine.rules.revisions), judged from the start.
- Intent first: status (weight 0) is written before the router is touched; a hold the router did not carry
  out yet (a crash between the two) is seen from the router's own object and carried out again.
- The kill switch's move to the fallback needs the fallback's Deployment, which only an accepted spec
  gives: under a refused spec the kill switch gets the canary off traffic and says the rest waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect
from tollgate.api.spec import RouterKind
from tollgate.api.status import TIMELINE_LIMIT, ModelDeploymentStatus, TimelineEntry
from tollgate.engine.actions import SetWeight
from tollgate.engine.observations import RoutingObservation, Track, TrackObservation
from tollgate.engine.timeutil import format_time


@dataclass(frozen=True)
class Switch:
    """The router's objects as the watches saw them, and what the refused spec can still tell."""

    route: RoutingObservation | None
    """The gatewayAPI router's HTTPRoute (None: no route of ours seen)."""
    service: RoutingObservation | None
    """The replicas router's Service (None: not seen)."""
    stable: TrackObservation
    canary: TrackObservation
    autoscaled: bool = False
    """An autoscaler owns the stable track's count (spec.autoscaling, as stored): never scaled here."""
    kill_switch: bool = False
    """spec.killSwitch as stored (False when the spec could not be read)."""
    dialect: GatewayDialect = DEFAULT_DIALECT
    """The platform's Gateway dialect (Settings.gateway_dialect), for the route's backendRefs."""


@dataclass(frozen=True)
class Refusal:
    status: ModelDeploymentStatus
    """The refused status; with a canary held, at weight 0 with its plan forgotten, and the message says so."""
    action: SetWeight | None = None
    """The router's fast path back to stable; None when nothing is to move."""


def refuse(status: ModelDeploymentStatus, switch: Switch, now: datetime, reason: str) -> Refusal:
    """The refusal with the canary in flight held (`status`: the refused status, from rollout.refused;
    `reason`: the refusal's, for the timeline). A canary held earlier keeps its note in the message while the
    spec stays refused, so a later look writes nothing (module docstring)."""
    canary = status.canary
    if (canary is None or not status.sandboxNamespace or status.promotingSince is not None
            or status.killSwitchActive):
        return Refusal(status)
    observed = switch.route if switch.route is not None else switch.service
    splitting = observed is not None and observed.sole is not Track.STABLE
    held = status.planHash is None  # a running canary always follows a plan (engine.rules.revisions)
    if not splitting and not held:
        return Refusal(status)  # no traffic seen on the canary: it goes on from where it is once accepted
    stable = status.stable
    serving = f"stable {stable.version} ({stable.revision})" if stable is not None else "stable"
    message = (f"{status.message}; canary {canary.version} ({canary.revision}) held: its traffic goes to "
               f"{serving} until the spec is accepted, then the canary restarts at step 1")
    if switch.kill_switch:
        message += "; the kill switch's fallback waits for an accepted spec"
    update: dict[str, object] = {"message": message}
    if not held:
        update |= {"planHash": None, "passedAnalyses": 0, "lastAnalysisAt": None, "stepStartedAt": None}
    action = None
    off = observed is not None and not splitting  # seen on stable already (moved before a crash)
    if splitting:
        total = None if switch.route is not None or switch.autoscaled else _step_total(status)
        if total is not None and switch.stable.ready < total:
            # The replicas router shrank stable for this step: it grows back first, and traffic leaves the
            # canary once stable can carry all of it (the canary was not judged failed: no need to hurry).
            if switch.stable.desired < total:
                action = SetWeight(router=RouterKind.REPLICAS, canary_weight=status.canaryWeight,
                                   stable_replicas=total, canary_replicas=switch.canary.desired, fast=True)
        else:
            off = True
            action = (SetWeight(router=RouterKind.GATEWAY_API, canary_weight=0, stable_replicas=None,
                                canary_replicas=switch.canary.desired, fast=True, dialect=switch.dialect)
                      if switch.route is not None else
                      SetWeight(router=RouterKind.REPLICAS, canary_weight=0, stable_replicas=None,
                                canary_replicas=switch.canary.desired, fast=True, keep_canary=True))
    moved = off and (status.canaryWeight > 0 or status.canaryMirror > 0)
    if moved:
        update |= {"canaryWeight": 0, "canaryMirror": 0, "canaryShare": None, "rateLimits": None}
    if not held or moved:
        update["timeline"] = _with_entry(status, now, reason, message, 0 if moved else status.canaryWeight)
    return Refusal(status.model_copy(update=update), action)


def _step_total(status: ModelDeploymentStatus) -> int | None:
    """The pods the replicas router split at the current step of the last accepted plan (stable and canary
    together): stable's count once it serves alone. None when status does not say (stable is not scaled)."""
    if not 0 <= status.currentStep < len(status.steps):
        return None
    step = status.steps[status.currentStep]
    total = step.stablePods + step.canaryPods
    return total if total > 0 else None


def _with_entry(status: ModelDeploymentStatus, now: datetime, reason: str, message: str,
                weight: int) -> list[TimelineEntry]:
    entry = TimelineEntry(at=format_time(now), reason=reason, message=message, step=status.currentStep,
                          weight=weight)
    return [*status.timeline, entry][-TIMELINE_LIMIT:]
