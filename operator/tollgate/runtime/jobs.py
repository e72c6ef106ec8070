"""A hook Job's state as the engine reads it (engine.hook_observations.JobObservation), from its status.

Only the terminal conditions count: Complete (succeeded) and Failed (its pod failed, backoffLimit 0, or
activeDeadlineSeconds passed: reason DeadlineExceeded). Anything else is Active.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollgate.engine.hook_observations import JobObservation, JobState


def job_observation(body: Mapping[str, Any]) -> JobObservation:
    name = (body.get("metadata") or {}).get("name", "")
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobObservation(name, JobState.SUCCEEDED, cond.get("reason") or "", cond.get("message") or "")
        if cond.get("type") == "Failed":
            return JobObservation(name, JobState.FAILED, cond.get("reason") or "", (cond.get("message") or "")[:300])
    return JobObservation(name, JobState.ACTIVE)
