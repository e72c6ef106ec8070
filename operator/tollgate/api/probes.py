"""Health probes of the model server, with defaults that suit models taking minutes to load.

Three probes, as Kubernetes runs them:
- startup: gives a loading model time before the others start (default: every 10s for as long as the
  progress deadline, e.g. 30 checks for 5 minutes), so a slow load is never killed by liveness;
- readiness: takes a pod out of the Service while it cannot serve (default every 5s, 3 failures);
- liveness: restarts a hung server (default a TCP connect to the port every 15s, 4 failures: a busy
  model that answers slowly is not restarted; give `path` for an HTTP check).
An explicit startup budget longer than an explicit spec.rollout.progressDeadline is refused: the rollout
would give up on a model the kubelet still lets load.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

PATH = Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class Probe(_Model):
    """One probe; omitted fields take the probe's default (docs/api.md)."""

    enabled: bool = True
    """false: no such probe (readiness cannot be turned off: traffic needs it)."""
    path: PATH | None = None
    """HTTP path. Default: spec.runtime.readinessPath for startup and readiness; a TCP connect for liveness."""
    periodSeconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    """Seconds between checks."""
    timeoutSeconds: Annotated[int, Field(ge=1, le=600)] | None = None
    """Seconds a check may take."""
    failureThreshold: Annotated[int, Field(ge=1, le=10000)] | None = None
    """Failures in a row before the probe fails (startup: period x threshold is the time a model may load)."""
    initialDelaySeconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    """Seconds before the first check."""


@cel(
    "!has(self.readiness) || !has(self.readiness.enabled) || self.readiness.enabled",
    "spec.probes.readiness.enabled cannot be false: the Service sends traffic only to Ready pods and the "
    "rollout waits for them; tune periodSeconds or failureThreshold instead",
    field_path=".readiness.enabled",
)
class Probes(_Model):
    """Startup, readiness and liveness probes of the model-server container."""

    startup: Probe = Field(default_factory=Probe)
    """Default: GET readinessPath every 10s, timeout 5s, for as long as the progress deadline (failureThreshold
    = deadline / period, at least 6)."""
    readiness: Probe = Field(default_factory=Probe)
    """Default: GET readinessPath every 5s, timeout 2s, 3 failures."""
    liveness: Probe = Field(default_factory=Probe)
    """Default: TCP connect to the port every 15s, timeout 5s, 4 failures."""
