"""Carrying out a control: read the object, check the rule, write the annotation or spec field.

One implementation for every front end: the plugin's commands and the dashboard's buttons both call
these, so a control clicked in the page writes exactly what `kubectl tollgate <control>` writes
(same token format, same identity, same field manager) and is refused by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollgate.cli import controls as ctl
from tollgate.cli import view
from tollgate.cli.cluster import Session


@dataclass(frozen=True)
class Written:
    """What a control wrote (nothing, when a spec toggle already had its value) and what follows."""

    name: str
    written: bool
    what: str
    """The annotation or field written, e.g. tollgate.dev/approve=alice@... or spec.paused=true."""
    does: str
    """What the operator does next, or why nothing was written."""
    notes: tuple[str, ...] = ()
    """Warnings worth showing (GitOps reverting a spec change, no fallback for the kill switch)."""
    value: str | None = None
    """The annotation token written (annotation controls only)."""


def write_annotation(session: Session, namespace: str, name: str, control: ctl.AnnotationControl,
                     now: datetime) -> Written:
    """Check the control against the object as it is now, then write `<who>@<time>` as the annotation."""
    obj = session.get(namespace, name)
    does = ctl.check_annotation(control, obj)
    current = (view.meta(obj).get("annotations") or {}).get(control.annotation)
    value = ctl.fresh_token(ctl.who(session.whoami(), session.context_user), now, current)
    session.patch(namespace, name, ctl.annotation_patch(control, value))
    return Written(control.name, True, f"{control.annotation}={value}", f"the operator {does}", value=value)


def toggle_field(toggle: ctl.SpecToggle) -> str:
    return f"spec.{toggle.field}={str(toggle.value).lower()}"


def toggle_warnings(obj: view.Obj, toggle: ctl.SpecToggle) -> tuple[str, ...]:
    """The GitOps warning (a spec change is reverted unless committed) and the toggle's own notes."""
    notes: list[str] = []
    manager = view.gitops_manager(obj)
    if manager:
        notes.append(f"{view.meta(obj).get('name')} is managed by {manager}: `{toggle.name}` "
                     f"({toggle_field(toggle)}) is a spec change and will be reverted by the GitOps tool at its "
                     "next sync unless the same change is committed to Git")
    notes.extend(ctl.toggle_notes(toggle, obj))
    return tuple(notes)


def write_toggle(session: Session, namespace: str, name: str, toggle: ctl.SpecToggle) -> Written:
    """Set the spec field, unless it already has the value (then nothing is written)."""
    obj = session.get(namespace, name)
    field = toggle_field(toggle)
    if not ctl.toggle_needed(toggle, obj):
        return Written(toggle.name, False, field, f"{field} already; nothing written")
    notes = toggle_warnings(obj, toggle)
    session.patch(namespace, name, ctl.toggle_patch(toggle))
    return Written(toggle.name, True, field, f"{field} written", notes)
