"""The declarative controls, defined once: one field each of `ControlTokens`.

A control is an annotation `tollgate.dev/<control>` whose value is an opaque token (typically who and
when); the operator acts once per distinct value, so re-applying the same manifest does not approve
twice, and Git can carry a control like any other change. Everything else derives from the fields of
`ControlTokens`: the annotations (`annotation`), what the runtime observes (`tokens_of`), the status
field recording the tokens already handled (status.controls), and the plugin's commands. Adding a
control is adding a field here (and the rule that gives it meaning, in the engine).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

ANNOTATION_PREFIX = "tollgate.dev/"


class ControlTokens(BaseModel):
    """One token per control annotation (None: absent)."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    approve: str | None = None
    """Approve the approval gate the canary is waiting at (only while it waits)."""
    promote: str | None = None
    """Promote the canary now, skipping its remaining steps."""
    abort: str | None = None
    """Roll the canary back now, with an evidence record."""
    retry: str | None = None
    """Start the rolled-back revision again from step 1."""
    step: str | None = None
    """Complete the canary's current step now, skipping its remaining pause and analysis (one step; an
    approval gate on the next step still waits)."""
    drillKillSwitch: str | None = None
    """Rehearse the kill switch: all traffic to the fallback, time it, then back (annotation
    tollgate.dev/drill-kill-switch; api.drills)."""
    drillRollback: str | None = None
    """Rehearse a rollback: roll the running canary back as an abort does, and time it (annotation
    tollgate.dev/drill-rollback; api.drills)."""

    def token(self, control: str) -> str | None:
        value: str | None = getattr(self, control)
        return value


CONTROLS: tuple[str, ...] = tuple(ControlTokens.model_fields)
"""Every control's name, in declaration order."""


def annotation(control: str) -> str:
    """The annotation that carries a control's token, e.g. tollgate.dev/approve; a camelCase control is
    written in kebab case, as annotation keys are (drillKillSwitch: tollgate.dev/drill-kill-switch)."""
    return ANNOTATION_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "-", control).lower()


def summary(control: str) -> str:
    """What a control does, in one line (the field's docstring)."""
    return ControlTokens.model_fields[control].description or control


def tokens_of(annotations: Mapping[str, str] | None) -> ControlTokens:
    """The control tokens on an object (an empty value counts as absent)."""
    ann = annotations or {}
    return ControlTokens(**{c: ann.get(annotation(c)) or None for c in CONTROLS})
