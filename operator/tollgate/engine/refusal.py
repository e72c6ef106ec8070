"""A canary in flight when its ModelDeployment's spec is refused: traffic back on stable, held there.

A refused spec (a stored object the API types refuse, a spec over the platform's limits, a feature the
platform's Gateway dialect lacks, model credentials that cannot be copied) is not acted on: no policy, no
desired objects, no analysis. A canary that had traffic would keep it, unjudged, for as long as the spec
stays refused; and the kill switch, set in that same refused spec, would not act. So the refusal itself
holds the canary:

- Only a canary that has traffic (the router observed sending it requests, or a hold begun earlier) in a
  sandbox that is this ModelDeployment's (status.sandboxNamespace, its owner label checked by the caller).
  Not while promoting (stable already rolls to the canary's revision: taking traffic off the canary would
  leave it on pods being replaced), nor with traffic on the fallback (kill switch, a failed first version).
  Traffic on a canary status no longer names (a rollback's intent written, its router request lost) is
  moved to stable at once, as the next accepted decision would.
- Traffic goes back to stable through the router's fast path alone, decided from what was observed, since
  the refused spec cannot be trusted to say which router is in force, or whether an autoscaler sizes
  stable: the HTTPRoute when one is seen (its backendRefs weigh stable 100), else the replicas router's
  Service, which then selects the stable track only. The move waits until stable can carry all traffic
  (its pods Ready: at least one, and all its Deployment asks for). The replicas router shrank stable for
  the step: it is scaled back to the step's pod total first (status.steps, the last accepted plan); an
  autoscaler's count (the Deployment's mark, as watched) is left alone. The canary's pods stay, with no
  traffic. status.canaryWeight says where traffic is; if stable never gets its pods Ready (quota, no node,
  an autoscaler at zero) the canary keeps its share, and the message says what it waits for.
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
    kill_switch: bool = False
    """spec.killSwitch as stored (False when the spec could not be read): only what the message says."""
    dialect: GatewayDialect = DEFAULT_DIALECT
    """The platform's Gateway dialect (Settings.gateway_dialect), for the route's backendRefs."""


@dataclass(frozen=True)
class Refusal:
    status: ModelDeploymentStatus
    """The refused status; with a canary held, its plan forgotten, its weight where traffic is, and the
    message saying so."""
    actions: tuple[SetWeight, ...] = ()
    """The router's fast path (stable grown back, or traffic off the canary), one per router object seen
    sending the canary requests; empty when nothing is to move."""


STABLE_SIDE = (Track.STABLE, Track.FALLBACK)
"""Where a switch sends every request when no canary takes any (the fallback: kill switch, a failed first
version; never moved here)."""
MESSAGE_ROOM = 3000
"""Characters of the refusal's own text kept before the hold's note: status strings are cut at 4,096, and the
note must stay in (an unparsable spec's message quotes the input)."""


def _splits(seen: RoutingObservation | None) -> bool:
    """A router object seen sending the canary requests (weighted, mirrored or all of them)."""
    return seen is not None and seen.sole not in STABLE_SIDE


def refuse(status: ModelDeploymentStatus, switch: Switch, now: datetime, reason: str) -> Refusal:
    """The refusal with the canary in flight held (`status`: the refused status, from rollout.refused;
    `reason`: the refusal's, for the timeline). The caller has checked that status.sandboxNamespace is this
    ModelDeployment's. A held canary keeps its note in the message while the spec stays refused, so a later
    look writes nothing (module docstring)."""
    if (not status.sandboxNamespace or status.promotingSince is not None or status.killSwitchActive
            or status.fallback is not None):
        return Refusal(status)
    seen = switch.route is not None or switch.service is not None
    served = _splits(switch.route) or _splits(switch.service)
    canary = status.canary
    if canary is None:
        # Traffic on a canary status no longer names (a rollback or a supersede wrote its intent, then its
        # router request failed or the operator stopped): finish the move, as the next decision would.
        return Refusal(status, _off(status, switch, grow=True))
    held = status.planHash is None  # a running canary always follows a plan (engine.rules.revisions)
    if not served and not held:
        return Refusal(status)  # no traffic seen on the canary: it goes on from where it is once accepted
    at_zero = held and status.canaryWeight == 0 and status.canaryMirror == 0  # moved by an earlier look
    total = _step_total(status) if _splits(switch.service) and not switch.stable.autoscaled else None
    ready = switch.stable.ready >= (total if total is not None else max(1, switch.stable.desired))
    actions: tuple[SetWeight, ...] = ()
    if served and (ready or at_zero):
        actions = _off(status, switch, grow=False)
    elif served and total is not None and switch.stable.desired < total:
        # The replicas router shrank stable for this step: it grows back first, and traffic leaves the
        # canary once stable can carry all of it (the canary was not judged failed: no need to hurry).
        actions = (SetWeight(router=RouterKind.REPLICAS, canary_weight=status.canaryWeight, stable_replicas=total,
                             canary_replicas=switch.canary.desired, fast=True, stable_only=True),)
    off = at_zero or (seen and (ready or not served))
    stable = status.stable
    serving = f"stable {stable.version} ({stable.revision})" if stable is not None else "stable"
    what = f"canary {canary.version} ({canary.revision})"
    base = status.message if len(status.message) <= MESSAGE_ROOM else status.message[:MESSAGE_ROOM] + "..."
    message = (f"{base}; {what} held at weight 0: {serving} serves until the spec is accepted, then the canary "
               f"restarts at step 1" if off else
               f"{base}; {what} held: its traffic moves to {serving} once stable's pods are Ready, and the "
               f"canary restarts at step 1 once the spec is accepted")
    if switch.kill_switch:
        message += "; the kill switch's fallback waits for an accepted spec"
    update: dict[str, object] = {"message": message}
    if not held:
        update |= {"planHash": None, "passedAnalyses": 0, "lastAnalysisAt": None, "stepStartedAt": None}
    moved = off and not at_zero
    if moved:
        limits = status.rateLimits
        kept = limits.model_copy(update={"canary": None}) if limits is not None and limits.model else None
        update |= {"canaryWeight": 0, "canaryMirror": 0, "canaryShare": None, "served": None, "rateLimits": kept}
    if not held or moved:
        update["timeline"] = _with_entry(status, now, reason, message, 0 if moved else status.canaryWeight)
    return Refusal(status.model_copy(update=update), actions)


def _off(status: ModelDeploymentStatus, switch: Switch, *, grow: bool) -> tuple[SetWeight, ...]:
    """All traffic to stable through the router's fast path, for each router object seen sending the canary
    requests: the route's backendRefs, or the replicas router's Service selecting the stable track (the
    canary's pods stay); `grow`: stable is scaled back to the step's pod total in the same move (finishing a
    rollback's, which does not wait)."""
    out: list[SetWeight] = []
    if _splits(switch.route):
        out.append(SetWeight(router=RouterKind.GATEWAY_API, canary_weight=0, stable_replicas=None,
                             canary_replicas=switch.canary.desired, fast=True, dialect=switch.dialect))
    if _splits(switch.service):
        total = _step_total(status) if grow and not switch.stable.autoscaled else None
        out.append(SetWeight(router=RouterKind.REPLICAS, canary_weight=0, stable_replicas=total,
                             canary_replicas=switch.canary.desired, fast=True, keep_canary=True))
    return tuple(out)


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
