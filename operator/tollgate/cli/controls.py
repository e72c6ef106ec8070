"""The controls the plugin writes, and when each makes sense: pure rules over a ModelDeployment dict.

Controls are declarative, so they work from Git too: annotations (tollgate.dev/approve, promote, abort,
retry, step) carry a token the operator acts on once per distinct value; spec fields (paused, killSwitch) are
desired state. Status is the operator's alone and is never written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tollgate.api.controls import CONTROLS, annotation, summary
from tollgate.api.drills import DRILL_CONTROLS
from tollgate.api.status import ROLLBACK_PHASES, ROLLOUT_PHASES, Phase
from tollgate.cli.errors import CliError, Exit
from tollgate.cli.view import Obj, gate_waiting, meta, status_of, steps_of


@dataclass(frozen=True)
class AnnotationControl:
    """One control of the table in api.controls: its annotation, and the key in status.controls where
    the operator records the last token it handled (the control's own name)."""

    name: str

    @property
    def annotation(self) -> str:
        return annotation(self.name)

    @property
    def seen_key(self) -> str:
        return self.name


ANNOTATION_CONTROLS = {c: AnnotationControl(c) for c in CONTROLS if c not in DRILL_CONTROLS.values()}
"""The controls with a command of their own (a drill's are `drill KIND`, tollgate.cli.drills)."""
APPROVE = ANNOTATION_CONTROLS["approve"]
PROMOTE = ANNOTATION_CONTROLS["promote"]
ABORT = ANNOTATION_CONTROLS["abort"]
RETRY = ANNOTATION_CONTROLS["retry"]
STEP = ANNOTATION_CONTROLS["step"]


@dataclass(frozen=True)
class SpecToggle:
    name: str
    field: str
    value: bool


PAUSE = SpecToggle("pause", "paused", True)
RESUME = SpecToggle("resume", "paused", False)
KILL = SpecToggle("kill", "killSwitch", True)
UNKILL = SpecToggle("unkill", "killSwitch", False)


def token(user: str, now: datetime) -> str:
    """`<user>@<RFC 3339 time>` with microseconds, so two invocations never write the same value."""
    at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{user}@{at}"


def fresh_token(user: str, now: datetime, current: str | None) -> str:
    """A token different from the one already on the object (the operator acts once per value)."""
    value = token(user, now)
    return value if value != current else f"{value}#2"


def who(reviewed: str | None, context_user: str | None) -> str:
    """The identity recorded in tokens: the API server's view of us (SelfSubjectReview), else the
    kubeconfig context's user name, else "unknown"."""
    return reviewed or context_user or "unknown"


def _where(obj: Obj) -> str:
    st = status_of(obj)
    phase = st.get("phase") or "Pending"
    message = st.get("message")
    return f"{meta(obj).get('name')} is {phase}" + (f" ({message})" if message else "")


def check_annotation(control: AnnotationControl, obj: Obj) -> str:
    """What the control will do now, or CliError(NOT_APPLICABLE) when it makes no sense in this phase."""
    st = status_of(obj)
    phase = st.get("phase")
    canary: dict[str, Any] = st.get("canary") or {}
    if control is APPROVE:
        index = gate_waiting(obj)
        if index is None:
            raise CliError(f"nothing awaits approval: {_where(obj)}", Exit.NOT_APPLICABLE)
        steps = steps_of(obj)
        what = f"step {index + 1}/{len(steps)} ({steps[index].describe()}) of canary {canary.get('version')}"
        if phase == Phase.PAUSED:
            return f"approves {what}; the rollout is paused, the approval takes effect on resume"
        return f"approves {what}"
    if control is PROMOTE:
        bake = st.get("bake")
        if phase == Phase.BAKING and bake:
            return (f"ends the bake window of {bake.get('version')} now (it ran until {bake.get('until')}): it becomes "
                    "the last known good version")
        if not canary or phase not in ROLLOUT_PHASES or st.get("killSwitchActive"):
            raise CliError(f"no canary to promote: {_where(obj)}", Exit.NOT_APPLICABLE)
        if st.get("promotingSince") or phase == Phase.PROMOTING:
            raise CliError(f"already promoting: {_where(obj)}", Exit.NOT_APPLICABLE)
        return (f"promotes canary {canary.get('version')} now, skipping its remaining steps and analysis "
                f"(it is at {st.get('canaryWeight', 0)}%)")
    if control is ABORT:
        bake = st.get("bake")
        if phase == Phase.BAKING and bake:
            return (f"rolls {bake.get('version')} back in its bake window: all traffic back on "
                    f"{bake.get('rollbackTo')}, the revision stays rolled back, evidence recorded")
        if not canary or phase not in ROLLOUT_PHASES:
            raise CliError(f"no rollout to abort: {_where(obj)}", Exit.NOT_APPLICABLE)
        return (f"aborts canary {canary.get('version')}: all traffic back on stable, the revision stays "
                "rolled back, evidence recorded")
    if control is STEP:
        steps = steps_of(obj)
        index = int(st.get("currentStep") or 0)
        weight = int(st.get("canaryWeight") or 0)
        if not canary or phase != Phase.PROGRESSING or st.get("promotingSince") or not steps:
            raise CliError(f"no step to complete: {_where(obj)}", Exit.NOT_APPLICABLE)
        mirror = int(st.get("canaryMirror") or 0)
        if index >= len(steps) or (steps[index].canary_weight, steps[index].mirror) != (weight, mirror):
            raise CliError(f"step {index + 1} has not taken its weight yet (the canary waits for its pods); "
                           f"nothing to complete: {_where(obj)}", Exit.NOT_APPLICABLE)
        if index == len(steps) - 1:
            return (f"completes the last step ({weight}%) of canary {canary.get('version')} now, skipping its "
                    "remaining pause and analysis: the promotion starts")
        nxt = steps[index + 1]
        gate = "; the next step's approval gate still waits" if nxt.approval == "required" else ""
        return (f"completes step {index + 1}/{len(steps)} ({steps[index].describe()}) of canary "
                f"{canary.get('version')} now, skipping its remaining pause and analysis, and enters step "
                f"{index + 2} ({nxt.describe()}){gate}")
    if control is RETRY:
        if not st.get("rolledBackRevision") or phase not in ROLLBACK_PHASES:
            raise CliError(f"nothing was rolled back: {_where(obj)}", Exit.NOT_APPLICABLE)
        return f"retries rolled-back revision {st.get('rolledBackRevision')} from step 1"
    return summary(control.name)


def annotation_patch(control: AnnotationControl, value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {control.annotation: value}}}


def toggle_patch(toggle: SpecToggle) -> dict[str, Any]:
    return {"spec": {toggle.field: toggle.value}}


def toggle_needed(toggle: SpecToggle, obj: Obj) -> bool:
    """False when the spec already says so (then nothing is written)."""
    return bool((obj.get("spec") or {}).get(toggle.field, False)) != toggle.value


def toggle_notes(toggle: SpecToggle, obj: Obj) -> list[str]:
    """Warnings worth printing before a spec change."""
    notes = []
    st = status_of(obj)
    if toggle is KILL and not (obj.get("spec") or {}).get("fallback") and not st.get("lastKnownGood"):
        notes.append("there is no fallback (no spec.fallback and no status.lastKnownGood): the operator "
                     "will take the canary to 0% and report Stalled while stable keeps serving")
    if toggle is PAUSE and not st.get("canary"):
        notes.append("no rollout is in progress: the next rollout will hold at its start until resumed")
    return notes
