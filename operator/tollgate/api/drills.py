"""Drills: a rehearsal of an escape route on a live ModelDeployment, and its record in status.

A drill is asked for like every other control, by an annotation whose value names who asked
(`tollgate.dev/drill-kill-switch` or `tollgate.dev/drill-rollback`, admitted by the chart's
trusted-approvals policy only when it names the requesting user; api.controls). The operator then
rehearses the route for real and measures how long traffic took to get to safety:

- kill-switch: all traffic to the fallback (as spec.killSwitch would), measured until every request
  goes to a fully Ready fallback; then traffic goes back where it was, measured the same way.
- rollback: the running canary is rolled back exactly as an abort would (evidence says it was a drill),
  measured until every request goes to a fully Ready stable track. It stays rolled back until retried.

The times are differences of timestamps the runtime supplied with its observations (the decision that
acted on the request, and the first decision that observed the router sending every request to the
target track with all its pods Ready): the decision core reads no clock.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class DrillKind(StrEnum):
    """Which escape route a drill rehearses."""

    KILL_SWITCH = "kill-switch"
    """All traffic to the fallback (spec.fallback, else lastKnownGood), then back."""
    ROLLBACK = "rollback"
    """The running canary rolled back to stable, as tollgate.dev/abort does."""

    @property
    def control(self) -> str:
        """The control (api.controls field) that asks for this drill."""
        return DRILL_CONTROLS[self]


DRILL_CONTROLS: dict[DrillKind, str] = {DrillKind.KILL_SWITCH: "drillKillSwitch", DrillKind.ROLLBACK: "drillRollback"}
"""Drill kind -> the control whose token asks for it (annotation tollgate.dev/drill-kill-switch, -rollback)."""


class DrillOutcome(StrEnum):
    """Where a drill stands."""

    RUNNING = "Running"
    """Traffic is moving to the fallback (or, kill-switch, back from it)."""
    PASSED = "Passed"
    """Traffic reached safety (secondsToFallback) and, kill-switch, came back (secondsToRestore)."""
    FAILED = "Failed"
    """Traffic did not reach safety within the progress deadline (see message): the route does not work."""
    REFUSED = "Refused"
    """Not started: the ModelDeployment has no such route now (see message for the fix); nothing moved."""
    INTERRUPTED = "Interrupted"
    """Ended early by a real change (the kill switch turned on, a new revision); not measured to the end."""


class DrillStatus(BaseModel):
    """The last drill: what was rehearsed, who asked, and how long traffic took to reach safety."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    kind: DrillKind
    """kill-switch or rollback."""
    requestedBy: str
    """The request's token (value of tollgate.dev/drill-kill-switch or -rollback: <user>@<time>)."""
    outcome: DrillOutcome
    """Running, Passed, Failed, Refused or Interrupted."""
    message: str = ""
    """What happened, or why it was refused and how to make it possible."""
    startedAt: str | None = None
    """When the operator acted on the request (RFC 3339); the time to fallback counts from here."""
    fromVersion: str | None = None
    """The version traffic left: stable (kill-switch) or the canary (rollback)."""
    fromRevision: str | None = None
    """Its revision."""
    toVersion: str | None = None
    """The version traffic went to: the fallback (kill-switch) or stable (rollback)."""
    fallbackAt: str | None = None
    """When the operator observed every request going to `toVersion` with all its pods Ready (RFC 3339)."""
    secondsToFallback: float | None = None
    """fallbackAt - startedAt: the measured time to fallback."""
    restoredAt: str | None = None
    """kill-switch: when the operator observed traffic back off the fallback on a Ready stable (RFC 3339)."""
    secondsToRestore: float | None = None
    """restoredAt - fallbackAt."""
    incident: str | None = None
    """rollback: the evidence record of the drill's rollback."""

    @property
    def active(self) -> bool:
        return self.outcome is DrillOutcome.RUNNING
