"""The evidence record of a rollback or abort: what was judged, with which values, and why.

Names are deterministic from their inputs (ModelDeployment uid, revision, time, reason), so a decision
replayed after a crash writes the same record instead of a second one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tollgate.api.status import ModelDeploymentStatus, RevisionRef, SLOStatus, TimelineEntry
from tollgate.engine.actions import Context
from tollgate.engine.naming import fit, short_hash
from tollgate.engine.observations import MetricValue, SLOObservation, StreamData
from tollgate.engine.policy import Policy


def _stream(data: StreamData | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {"samples": data.samples, "events": _number(data.events), "buckets": _buckets(data.buckets)}


def incident_name(ctx: Context, revision: str, at: str, reason: str) -> str:
    """e.g. fraud-scorer-incident-3f2a9c0d1e (a DNS label, stable for the same inputs)."""
    return fit(f"{ctx.name}-incident-{short_hash(ctx.uid, revision, at, reason)}")


def _number(value: float | None) -> float | str | None:
    """JSON-safe: NaN and infinities become strings."""
    if value is None or math.isfinite(value):
        return value
    return repr(value)


def _buckets(buckets: tuple[tuple[float, float], ...] | None) -> list[list[float | str | None]] | None:
    return None if buckets is None else [[_number(le), _number(c)] for le, c in buckets]


def _metric(metric: MetricValue | None) -> dict[str, Any] | None:
    if metric is None:
        return None
    out: dict[str, Any] = {"value": _number(metric.value), "samples": metric.samples}
    if metric.buckets is not None:  # a limit's test read these: latency, or scores (engine.limits)
        out["buckets"] = _buckets(metric.buckets)
    return out


def _ref(ref: RevisionRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"revision": ref.revision, "version": ref.version, "digest": ref.digest, "image": ref.image,
            "uri": ref.model.uri if ref.model is not None else None}


def evidence_payload(
    *,
    ctx: Context,
    incident: str,
    result: str,
    reason: str,
    message: str,
    at: str,
    canary: RevisionRef,
    stable: RevisionRef | None,
    step: int,
    weight: int,
    policy: Policy,
    analysis: Sequence[SLOStatus],
    observations: Sequence[SLOObservation] | None,
    timeline: Sequence[TimelineEntry],
) -> dict[str, Any]:
    """Everything needed to understand the rollback later, as JSON-safe values."""
    return {
        "incident": incident,
        "modelDeployment": {"namespace": ctx.namespace, "name": ctx.name, "uid": ctx.uid,
                            "generation": ctx.generation},
        "result": result,
        "reason": reason,
        "message": message,
        "at": at,
        "canary": _ref(canary),
        "stable": _ref(stable),
        "step": step,
        "weight": weight,
        "limits": {
            "failureLimit": policy.failure_limit,
            "consecutiveErrorLimit": policy.consecutive_error_limit,
            "interval": policy.interval_seconds,
            "window": policy.window,
            "progressDeadline": policy.progress_deadline_seconds,
        },
        "slos": [
            {**s.model_dump(mode="json"),
             "value": _number(s.value), "baseline": _number(s.baseline)}
            for s in analysis
        ],
        "observations": None if observations is None else [
            {"name": o.name, "query": o.query, "window": o.window, "error": o.error,
             "canary": _metric(o.canary), "stable": _metric(o.stable),
             # the counts since the canary started, which SLOs compared by a test were judged on
             "streamSince": o.stream_since, "canaryStream": _stream(o.canary_stream),
             "stableStream": _stream(o.stable_stream)}
            for o in observations
        ],
        "timeline": [t.model_dump(mode="json") for t in timeline],
    }


def evidence_from_status(ctx: Context, status: ModelDeploymentStatus, policy: Policy) -> dict[str, Any] | None:
    """The evidence of the last rollback, rebuilt from status alone; None when status records none.

    Status is written before a rollback's first traffic action (intent first) and the evidence after,
    so an operator that died in between resumes with the rollback recorded but no evidence. Status
    holds the verdicts, the reason and the timeline; only the raw query results are gone, and the
    record says so.
    """
    incident = status.lastIncident
    entry = next((h for h in status.history if h.incident == incident), None) if incident else None
    if incident is None or entry is None:
        return None
    reason = next((t.reason for t in reversed(status.timeline) if t.at == entry.at
                   and t.reason in ("RolledBack", "Aborted")), entry.result)
    payload = evidence_payload(
        ctx=ctx, incident=incident, result=entry.result, reason=reason, message=entry.reason, at=entry.at,
        canary=RevisionRef(revision=entry.revision, version=entry.version), stable=status.stable,
        step=status.currentStep, weight=0, policy=policy, analysis=status.analysis, observations=None,
        timeline=status.timeline,
    )
    payload["reconstructed"] = ("the operator stopped between recording this rollback in status and writing "
                                "its evidence; rebuilt from status, without the raw query results")
    return payload
