"""When a drill can run, as one pure function the operator and the plugin both ask (api.drills).

A drill rehearses an escape route for real, so it is refused (nothing moves, the reason and the fix in
status.lastDrill and in the plugin's output) whenever the route does not exist or rehearsing it would
do something else than rehearse: no fallback distinct from the serving version, no canary taking
traffic, the kill switch already on, another drill still running.
"""

from __future__ import annotations

from tollgate.api.drills import DrillKind
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ROLLOUT_PHASES, ModelDeploymentStatus, RevisionRef
from tollgate.engine.draft import with_template
from tollgate.engine.revision import desired_revision, fallback_revision


def drill_fallback(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> RevisionRef | None:
    """Where a kill-switch drill sends traffic: the kill switch's fallback (spec.fallback, else
    lastKnownGood), when it can be rendered."""
    return with_template(fallback_revision(spec, status), spec)


def drill_refusal(kind: DrillKind, spec: ModelDeploymentSpec, status: ModelDeploymentStatus,
                  name: str = "NAME") -> str | None:
    """Why a drill of `kind` cannot run now, naming the fix; None when it can. `name` is the
    ModelDeployment's, for the commands in the message."""
    drill = status.lastDrill
    if drill is not None and drill.active:
        return (f"a {drill.kind} drill is still running (requested by {drill.requestedBy}): wait for its "
                f"outcome (kubectl tollgate status {name})")
    if spec.killSwitch or status.killSwitchActive:
        return (f"the kill switch is on (spec.killSwitch): traffic is already on the fallback; turn it off "
                f"(kubectl tollgate unkill {name}) before a drill")
    stable = status.stable
    if stable is None or (status.lastKnownGood is None and status.canary is None):
        return "nothing serves yet: drill once the first version is Stable"
    if kind is DrillKind.KILL_SWITCH:
        if status.bake is not None and status.canary is None:
            return (f"{status.bake.version} is in its bake window until {status.bake.until}: the kill switch "
                    "would suspend the window and start it over; drill once it ends")
        if status.canary is not None:
            return (f"canary {status.canary.version} is in progress ({status.phase}): the kill switch would "
                    f"restart it at step 1; rehearse `kubectl tollgate drill rollback {name}` on it, or drill the "
                    "kill switch when no rollout runs")
        pinned = fallback_revision(spec, status)
        if pinned is None:
            return ("no fallback: spec.fallback is not set and there is no lastKnownGood; set "
                    "spec.fallback.version to a version you trust")
        if pinned.revision == stable.revision:
            return (f"no fallback pinned: the kill switch would fall back to lastKnownGood {pinned.version}, "
                    f"the version serving now, so no traffic would move; set spec.fallback.version to an earlier "
                    "version you trust")
        if drill_fallback(spec, status) is None:
            return (f"fallback {pinned.version} cannot be re-created from status; set spec.fallback.version to a "
                    "version you trust")
        return None
    canary = status.canary
    if canary is None or status.phase not in ROLLOUT_PHASES:
        return (f"no canary in progress ({status.phase}): a rollback drill rolls a running canary back; drill "
                f"while a new version rolls out (change spec.model), or rehearse `kubectl tollgate drill "
                f"kill-switch {name}`")
    if desired_revision(spec).revision != canary.revision:
        return (f"canary {canary.version} is being replaced by spec.model.version "
                f"{spec.model.version}: drill once the new canary takes traffic")
    if status.canaryWeight <= 0 and status.canaryMirror <= 0:
        return (f"canary {canary.version} takes no traffic yet (weight 0): there is nothing to roll back; drill "
                f"once it has entered a step (kubectl tollgate status {name} --watch)")
    return None
