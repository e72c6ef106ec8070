"""What the dashboard shows, as pure functions of ModelDeployment dicts (and evidence records) and `now`.

The plugin's own views (tollgate.cli.view) supply the step plan, SLO health and ages, so the page and
`kubectl tollgate status` never disagree; this module adds what only a picture needs: kstatus health,
the step timeline with when each step began and who approved it, the moments of each verdict, and the
evidence record grouped for reading. Nothing here talks to a cluster or reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollgate.cli import view
from tollgate.cli.view import Obj, meta, status_of
from tollgate.engine.timeutil import parse_time

VERDICT_REASONS = ("AnalysisPassed", "AnalysisFailed", "AnalysisError", "RolledBack", "Aborted", "Promoted",
                   "ProgressDeadlineExceeded")
"""Timeline reasons that are a judgement of the canary: marked on every SLO chart."""


@dataclass(frozen=True)
class Health:
    """kstatus' computed status of an object, as `kstatus` (and so Argo CD, Flux, Helm) would say it."""

    status: str
    """Current, InProgress or Failed."""
    message: str


def health(obj: Obj) -> Health:
    """kstatus rules: a status older than the spec is InProgress; Stalled=True is Failed; Reconciling=True
    is InProgress; then Ready decides; an object with none of these conditions is Current."""
    st = status_of(obj)
    generation = meta(obj).get("generation")
    if generation is not None and int(st.get("observedGeneration") or 0) < int(generation):
        return Health("InProgress", f"generation {generation} not yet observed by the operator")
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    stalled = conditions.get("Stalled")
    if stalled and stalled.get("status") == "True":
        return Health("Failed", str(stalled.get("message") or stalled.get("reason") or "Stalled"))
    reconciling = conditions.get("Reconciling")
    if reconciling and reconciling.get("status") == "True":
        return Health("InProgress", str(reconciling.get("message") or reconciling.get("reason") or "Reconciling"))
    ready = conditions.get("Ready")
    if ready and ready.get("status") != "True":
        return Health("InProgress", str(ready.get("message") or ready.get("reason") or "not Ready"))
    return Health("Current", "Ready" if ready else "no conditions")


def last_incident(obj: Obj) -> dict[str, Any] | None:
    """The newest rollback or abort: its evidence record name, result, version, reason and time."""
    st = status_of(obj)
    name = st.get("lastIncident")
    if not name:
        return None
    entry = next((h for h in st.get("history") or [] if h.get("incident") == name), None) or {}
    return {"name": name, "result": entry.get("result") or "RolledBack", "version": entry.get("version"),
            "reason": entry.get("reason") or "", "at": entry.get("at")}


def list_row(obj: Obj, now: datetime) -> dict[str, Any]:
    """One row of the list: the plugin's `get` row plus risk tier, kstatus health and the last incident."""
    row = view.summary(obj, now)
    h = health(obj)
    row.update({
        "tier": (obj.get("spec") or {}).get("riskTier") or "medium",
        "health": h.status,
        "healthMessage": h.message,
        "message": status_of(obj).get("message") or "",
        "incident": last_incident(obj),
    })
    return row


def list_rows(objs: Sequence[Obj], now: datetime) -> list[dict[str, Any]]:
    ordered = sorted(objs, key=lambda o: (meta(o).get("namespace") or "", meta(o).get("name") or ""))
    return [list_row(o, now) for o in ordered]


def rollout_timeline(obj: Obj) -> list[dict[str, Any]]:
    """Timeline entries of the latest rollout (from its last CanaryStarted or Retried), oldest first."""
    entries = list(status_of(obj).get("timeline") or [])
    start = 0
    for i, t in enumerate(entries):
        if t.get("reason") in ("CanaryStarted", "Retried"):
            start = i
    return entries[start:]


def step_timeline(obj: Obj) -> list[dict[str, Any]]:
    """The step plan with, for each step, when it began, whether it waits for a gate and who approved it.

    A step began at its StepAdvanced entry of the latest rollout; its approver is named by the
    Approved entry of that step (the token `<who>@<time>` the operator recorded).
    """
    entries = rollout_timeline(obj)
    rows = []
    for row in view.step_rows(obj):
        i = row["index"] - 1
        began = next((t.get("at") for t in entries
                      if t.get("reason") == "StepAdvanced" and int(t.get("step") or 0) == i), None)
        approval = next((t for t in entries if t.get("reason") == "Approved" and int(t.get("step") or 0) == i), None)
        approver = None
        if approval is not None:
            message = str(approval.get("message") or "")
            approver = message.split(" approved by ", 1)[1] if " approved by " in message else message
        rows.append({**row, "began": began, "approvedBy": approver})
    return rows


def verdict_moments(obj: Obj, evidence: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """When the canary was judged (step analyses passed, failures, rollback, promotion) and what was said.

    The rollback's own moment comes from the evidence record when there is one (its time is the
    decision's), so the chart marks the instant the limit was acted on.
    """
    moments = [{"at": t.get("at"), "reason": t.get("reason"), "message": t.get("message") or "",
                "step": int(t.get("step") or 0) + 1, "weight": t.get("weight", 0)}
               for t in rollout_timeline(obj) if t.get("reason") in VERDICT_REASONS]
    if evidence and not any(m["at"] == evidence.get("at") and m["reason"] in ("RolledBack", "Aborted")
                            for m in moments):
        moments.append({"at": evidence.get("at"), "reason": evidence.get("result") or "RolledBack",
                        "message": evidence.get("message") or "", "step": int(evidence.get("step") or 0) + 1,
                        "weight": evidence.get("weight", 0)})
    return sorted(moments, key=lambda m: str(m["at"]))


def step_starts(obj: Obj) -> list[dict[str, Any]]:
    """Where each step of the latest rollout began (vertical marks on the charts)."""
    return [{"at": t.get("at"), "step": int(t.get("step") or 0) + 1, "weight": t.get("weight", 0)}
            for t in rollout_timeline(obj) if t.get("reason") == "StepAdvanced"]


def detail(obj: Obj, now: datetime) -> dict[str, Any]:
    """Everything the page of one ModelDeployment shows besides the charts and the evidence."""
    v = view.status_view(obj, now, timeline=50)
    h = health(obj)
    v.update({
        "tier": (obj.get("spec") or {}).get("riskTier") or "medium",
        "health": h.status,
        "healthMessage": h.message,
        "stepTimeline": step_timeline(obj),
        "history": list(status_of(obj).get("history") or []),
        "incident": last_incident(obj),
        "rolloutTimeline": rollout_timeline(obj),
        "hint": view.next_step_hint(v),
    })
    return v


def evidence_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence record grouped for reading: the decision, then per SLO its verdict with the value,
    baseline and threshold next to the query that produced them, then the limits and the timeline."""
    observations = {o.get("name"): o for o in record.get("observations") or []}
    slos = []
    for s in record.get("slos") or []:
        o = observations.get(s.get("name")) or {}
        slos.append({
            "name": s.get("name"), "verdict": s.get("verdict") or "-", "value": view.number(s.get("value")),
            "baseline": view.number(s.get("baseline")), "threshold": s.get("threshold") or "-",
            "samples": s.get("samples", 0), "failures": s.get("failures", 0),
            "errors": s.get("consecutiveErrors", 0), "window": o.get("window"), "query": o.get("query") or "",
            "canary": _metric_text(o.get("canary")), "stable": _metric_text(o.get("stable")),
            "error": o.get("error"),
        })
    md = record.get("modelDeployment") or {}
    return {
        "incident": record.get("incident"),
        "object": f"{md.get('namespace')}/{md.get('name')}",
        "generation": md.get("generation"),
        "result": record.get("result"),
        "reason": record.get("reason"),
        "message": record.get("message"),
        "at": record.get("at"),
        "canary": view.revision_text(record.get("canary")),
        "stable": view.revision_text(record.get("stable")),
        "step": int(record.get("step") or 0) + 1,
        "weight": record.get("weight"),
        "limits": record.get("limits") or {},
        "slos": slos,
        "timeline": list(record.get("timeline") or []),
        "raw": json.dumps(record, indent=2, sort_keys=True),
    }


def _metric_text(metric: Mapping[str, Any] | None) -> str:
    if not metric:
        return "-"
    return f"{view.number(metric.get('value'))} ({metric.get('samples', 0)} samples)"


def epoch(at: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (None when absent or unparsable)."""
    t = parse_time(at) if at else None
    return t.timestamp() if t is not None else None
