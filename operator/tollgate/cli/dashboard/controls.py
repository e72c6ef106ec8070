"""The plugin's controls as buttons: which apply now, what each will do (the confirmation's text),
and carrying one out through the plugin's own code (tollgate.cli.actions).

The rules are the plugin's (tollgate.cli.controls): a button is enabled exactly when
`kubectl tollgate <control>` would write, and its confirmation says what the plugin would print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollgate.cli import actions
from tollgate.cli import controls as ctl
from tollgate.cli.cluster import Session
from tollgate.cli.errors import CliError
from tollgate.cli.view import Obj

ANNOTATIONS: dict[str, ctl.AnnotationControl] = dict(ctl.ANNOTATION_CONTROLS)
"""Every control of the table in api.controls (adding one there adds its button)."""
TOGGLES: dict[str, ctl.SpecToggle] = {t.name: t for t in (ctl.PAUSE, ctl.RESUME, ctl.KILL, ctl.UNKILL)}
DANGEROUS = frozenset({"abort", "kill", "promote", "step"})
"""Shown in red: they move traffic at once."""


@dataclass(frozen=True)
class Button:
    name: str
    label: str
    enabled: bool
    confirm: str
    """What the operator will do (enabled), or why the control makes no sense now (disabled)."""
    writes: str
    """The annotation or spec field the control writes."""
    dangerous: bool


def buttons(obj: Obj) -> list[Button]:
    """approve, promote, abort, retry, step, then pause or resume and kill or unkill (whichever changes the
    spec)."""
    out = []
    for name, control in ANNOTATIONS.items():
        try:
            text, enabled = ctl.check_annotation(control, obj), True
        except CliError as exc:
            text, enabled = exc.message, False
        out.append(Button(name, name.capitalize(), enabled, f"The operator {text}." if enabled else text,
                          f"annotation {control.annotation}=<you>@<time>", name in DANGEROUS))
    spec = obj.get("spec") or {}
    shown = (ctl.RESUME if spec.get("paused") else ctl.PAUSE, ctl.UNKILL if spec.get("killSwitch") else ctl.KILL)
    for toggle in shown:
        field = actions.toggle_field(toggle)
        notes = " ".join(f"Warning: {n}." for n in actions.toggle_warnings(obj, toggle))
        label = {"kill": "Kill switch", "unkill": "Kill switch off"}.get(toggle.name, toggle.name.capitalize())
        out.append(Button(toggle.name, label, True, f"Sets {field}. {notes}".strip(), f"spec field {field}",
                          toggle.name in DANGEROUS))
    return out


def run(session: Session, namespace: str, name: str, control: str, now: datetime) -> actions.Written:
    """Carry out a control by name, exactly as the plugin's command of the same name does."""
    if control in ANNOTATIONS:
        return actions.write_annotation(session, namespace, name, ANNOTATIONS[control], now)
    if control in TOGGLES:
        return actions.write_toggle(session, namespace, name, TOGGLES[control])
    raise KeyError(control)
