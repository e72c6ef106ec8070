"""What the runtime saw of a rollout's hooks: the hook Jobs (watch) and the confirmation gate's answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobObservation:
    """One hook Job as its watch reports it (status.conditions Complete / Failed)."""

    name: str
    state: JobState
    reason: str = ""
    """The terminal condition's reason (e.g. BackoffLimitExceeded, DeadlineExceeded)."""
    message: str = ""


@dataclass(frozen=True)
class WebhookAnswer:
    """The confirmation gate's answer to one POST (runtime.hooks asked it for this decision)."""

    status: int | None
    """HTTP status; None when no answer came (connection refused, timeout, Secret unreadable)."""
    detail: str = ""
    """Why there was no 200, in words (never the token or the URL's credentials)."""

    @property
    def go(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class WebhookCall:
    """A question to the confirmation gate (engine.rules.hooks.webhook_due): the Secret holding its URL and
    token, the timeout, and the JSON payload (Flagger's confirm-rollout shape)."""

    secret_namespace: str
    secret_name: str
    timeout: float
    payload: Mapping[str, Any] = field(default_factory=dict)
