"""The state of a rollout's hooks in status (one entry per hook of the current canary)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class HookPhase(StrEnum):
    """Where one hook is."""

    RUNNING = "Running"
    """The Job was created (or the gate asked) and has no result yet."""
    SUCCEEDED = "Succeeded"
    """The Job completed (exit 0), or the gate answered 200."""
    FAILED = "Failed"
    """The Job failed or outlived its timeout; its failurePolicy applied."""
    STOPPED = "Stopped"
    """Its Job was removed while it ran: the canary ended (promoted, rolled back) or, for duringAnalysis,
    promotion started."""
    HOLDING = "Holding"
    """The confirmation gate answered something other than 200 (or nothing): asked again later."""


class HookStatus(BaseModel):
    """One hook of the current canary."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, StringConstraints(max_length=32)]
    """preTraffic, duringAnalysis, prePromotion or confirmRollout."""
    revision: Annotated[str, StringConstraints(max_length=64)]
    """The canary revision it ran for."""
    phase: HookPhase = HookPhase.RUNNING
    """Running, Succeeded, Failed or Holding."""
    job: Annotated[str, StringConstraints(max_length=63)] | None = None
    """The Job's name in the sandbox (Job hooks); its pod's logs are the hook's output."""
    startedAt: str | None = None
    """When the Job was created or the gate first asked (RFC 3339)."""
    checkedAt: str | None = None
    """When the confirmation gate last answered (RFC 3339); it is asked again one interval later."""
    finishedAt: str | None = None
    """When it succeeded or failed (RFC 3339)."""
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    """The outcome in words: the Job's condition reason and message, or the gate's HTTP answer."""
    ignored: bool = False
    """Failed with failurePolicy ignore: recorded, the rollout went on."""
