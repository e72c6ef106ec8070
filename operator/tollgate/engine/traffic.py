"""Which step the canary's traffic holds: a weight (users on the canary) or a mirror (a shadow step).

A step is identified by what the router gives the canary while it holds, (canaryWeight, canaryMirror) in
status against (weight, shadow.percent) of the step: a shadow step has weight 0 and a mirror, a weighted
step a weight and no mirror. So "entered" means the status carries the step's pair, and a canary
"receives" requests when either is above zero (its pods answer them, so it is judged), even though during
a shadow step no user ever gets its answer.
"""

from __future__ import annotations

from tollgate.api.spec import Step
from tollgate.api.status import ModelDeploymentStatus


def holds(status: ModelDeploymentStatus, step: Step) -> bool:
    """The canary's traffic is the step's own: its weight and its mirror."""
    return status.canaryWeight == step.canary_weight and status.canaryMirror == step.mirror


def receives(status: ModelDeploymentStatus) -> bool:
    """The canary's pods answer requests: a weight, or mirrored copies in a shadow step."""
    return status.canaryWeight > 0 or status.canaryMirror > 0


def text(status: ModelDeploymentStatus) -> str:
    """The canary's traffic in a few words: "25%" or "shadow 50%" (users get stable's answers)."""
    if status.canaryMirror > 0 and status.canaryWeight == 0:
        return f"shadow {status.canaryMirror}%"
    return f"{status.canaryWeight}%"
