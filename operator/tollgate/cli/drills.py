"""`kubectl tollgate drill kill-switch|rollback NAME`: ask the operator to rehearse an escape route.

A drill is asked for like the other controls, by an annotation whose value names who asked
(tollgate.dev/drill-kill-switch or drill-rollback = <you>@<time>; the chart's trusted-approvals policy
admits it only in your own name), so it works from Git too and who asked is on record (status.lastDrill,
history). Before writing, the plugin asks the same rule the operator applies (engine.drills.drill_refusal)
and refuses with the operator's words and fix, writing nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tollgate.api.drills import DrillKind, DrillOutcome
from tollgate.api.invalid import InvalidSpecError, parse_spec
from tollgate.api.status import ModelDeploymentStatus
from tollgate.cli import controls as ctl
from tollgate.cli.actions import Written
from tollgate.cli.cluster import Session
from tollgate.cli.errors import CliError, Exit
from tollgate.cli.view import Obj, meta, status_of
from tollgate.engine.drills import drill_fallback, drill_refusal
from tollgate.engine.status_size import expand

DRILLS: dict[DrillKind, ctl.AnnotationControl] = {k: ctl.AnnotationControl(k.control) for k in DrillKind}
"""Each drill kind's control (annotation tollgate.dev/drill-kill-switch, tollgate.dev/drill-rollback)."""


def check_drill(kind: DrillKind, obj: Obj) -> str:
    """What the drill will do, or CliError(NOT_APPLICABLE) with the operator's reason and fix."""
    name = str(meta(obj).get("name") or "NAME")
    try:
        spec = parse_spec(obj.get("spec"))
    except InvalidSpecError as exc:
        raise CliError(f"{kind} drill refused: the spec cannot be acted on: {exc}", Exit.NOT_APPLICABLE) from exc
    status = ModelDeploymentStatus.model_validate(expand(dict(status_of(obj))))
    why = drill_refusal(kind, spec, status, name)
    if why is not None:
        raise CliError(f"{kind} drill refused: {why}", Exit.NOT_APPLICABLE)
    stable = status.stable
    if kind is DrillKind.KILL_SWITCH:
        fallback = drill_fallback(spec, status)
        return (f"sends all traffic from {stable.version if stable else '-'} to fallback "
                f"{fallback.version if fallback else '-'}, times it, then sends it back")
    canary = status.canary
    return (f"rolls canary {canary.version if canary else '-'} back to stable {stable.version if stable else '-'} "
            "as an abort does (evidence says drill), and times it; retry it afterwards (kubectl tollgate retry)")


def write_drill(session: Session, namespace: str, name: str, kind: DrillKind, now: datetime) -> Written:
    """Check the drill against the object as it is now, then write `<who>@<time>` as its annotation."""
    control = DRILLS[kind]
    obj = session.get(namespace, name)
    does = check_drill(kind, obj)
    current = (meta(obj).get("annotations") or {}).get(control.annotation)
    value = ctl.fresh_token(ctl.who(session.whoami(), session.context_user), now, current)
    session.patch(namespace, name, ctl.annotation_patch(control, value))
    return Written(f"drill {kind}", True, f"{control.annotation}={value}", f"the operator {does}", value=value)


def drill_outcome(obj: Obj, kind: DrillKind, value: str) -> Mapping[str, Any] | None:
    """status.lastDrill once the operator has finished the drill asked for by `value` (None: not yet)."""
    st = status_of(obj)
    if (st.get("controls") or {}).get(kind.control) != value:
        return None
    drill = st.get("lastDrill") or {}
    if drill.get("requestedBy") != value:
        # Handled but not recorded as the last drill: refused while another drill ran (status keeps that one).
        return {"kind": kind.value, "requestedBy": value, "outcome": DrillOutcome.REFUSED.value,
                "message": "refused: another drill was running (see the DrillRefused event)"}
    return None if drill.get("outcome") == DrillOutcome.RUNNING.value else drill


def drill_text(drill: Mapping[str, Any]) -> str:
    """One line for people: kind, outcome, who asked, and the measured times."""
    parts = [f"{drill.get('kind')} drill {drill.get('outcome')} (requested by {drill.get('requestedBy')})"]
    if drill.get("secondsToFallback") is not None:
        parts.append(f"time to fallback {drill['secondsToFallback']:.2f}s ({drill.get('fromVersion')} -> "
                     f"{drill.get('toVersion')})")
    if drill.get("secondsToRestore") is not None:
        parts.append(f"restored in {drill['secondsToRestore']:.2f}s")
    if drill.get("message"):
        parts.append(str(drill["message"]))
    return "; ".join(parts)


def exit_of(drill: Mapping[str, Any]) -> Exit:
    """Passed: 0; Refused: 5 (nothing moved); Failed or Interrupted: 1."""
    outcome = drill.get("outcome")
    if outcome == DrillOutcome.PASSED.value:
        return Exit.OK
    return Exit.NOT_APPLICABLE if outcome == DrillOutcome.REFUSED.value else Exit.ERROR
