"""What the plugin shows, as pure functions of a ModelDeployment (a plain dict) and `now`.

Two layers: *views* (plain data, what `-o json|yaml` prints) and *renderers* (text for people). Nothing
here talks to a cluster or reads a clock, so every line of output is unit-tested.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tollgate.api.invalid import InvalidSpecError, parse_spec
from tollgate.api.spec import ApprovalMode, ModelDeploymentSpec, Step
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.cli.errors import Exit
from tollgate.engine.policy import Policy, resolve_policy
from tollgate.engine.rollout import gate_waiting as engine_gate_waiting
from tollgate.engine.timeutil import parse_time

Obj = Mapping[str, Any]

GITOPS_MARKERS: tuple[tuple[str, str], ...] = (
    ("argocd.argoproj.io/instance", "Argo CD"),
    ("argocd.argoproj.io/tracking-id", "Argo CD"),
    ("kustomize.toolkit.fluxcd.io/name", "Flux"),
    ("helm.toolkit.fluxcd.io/name", "Flux"),
)


# ----------------------------------------------------------------------------------------------------
# Small helpers


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def status_of(obj: Obj) -> Mapping[str, Any]:
    return obj.get("status") or {}


def age(since: str | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 5d (``-`` when unknown)."""
    at = parse_time(since) if since else None
    if at is None:
        return "-"
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def number(value: Any) -> str:
    """A metric value for a table: short, and honest about missing or non-finite values."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if not math.isfinite(v):
        return repr(v)
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.001:
        return f"{v:.3g}"
    return f"{v:.4g}"


def revision_text(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return "-"
    return f"{ref.get('version', '?')} ({ref.get('revision', '?')})"


def spec_model(obj: Obj) -> ModelDeploymentSpec | None:
    """The typed spec, or None when it does not parse (then steps are shown as unknown)."""
    try:
        return parse_spec(obj.get("spec"))
    except InvalidSpecError:
        return None


def policy_of(obj: Obj) -> Policy | None:
    """The effective policy the operator follows, or None when the spec cannot be resolved."""
    spec = spec_model(obj)
    if spec is None:
        return None
    try:
        return resolve_policy(spec)
    except InvalidSpecError:
        return None


def steps_of(obj: Obj) -> tuple[Step, ...]:
    """The effective steps: spec.rollout.steps, else the risk tier's (what the operator follows)."""
    policy = policy_of(obj)
    return policy.steps if policy is not None else ()


def gate_waiting(obj: Obj) -> int | None:
    """Index of the step whose approval gate waits now, or None: the engine's own rule
    (tollgate.engine.rollout.gate_waiting), plan-hash check included."""
    policy = policy_of(obj)
    if policy is None:
        return None
    try:
        status = ModelDeploymentStatus.model_validate(status_of(obj))
    except ValidationError:  # not written by the operator (edited by hand): nothing is known to wait
        return None
    return engine_gate_waiting(policy, status)


def gitops_manager(obj: Obj) -> str | None:
    """"Argo CD" or "Flux" when a GitOps tool manages the object (labels or annotations), else None."""
    m = meta(obj)
    marks = {**(m.get("labels") or {}), **(m.get("annotations") or {})}
    for key, tool in GITOPS_MARKERS:
        if key in marks:
            return f"{tool} ({key}={marks[key]})"
    return None


def slo_health(analysis: Sequence[Mapping[str, Any]]) -> str:
    """One word for a table: the worst verdict first, with the SLOs it concerns."""
    if not analysis:
        return "-"
    for verdict in ("Fail", "Error", "NoData", "Inconclusive"):
        names = [a.get("name", "?") for a in analysis if a.get("verdict") == verdict]
        if names:
            return f"{verdict}({','.join(names)})"
    passed = sum(1 for a in analysis if a.get("verdict") == "Pass")
    if passed == len(analysis):
        return f"Pass {passed}/{len(analysis)}"
    return f"Pending {passed}/{len(analysis)}"


# ----------------------------------------------------------------------------------------------------
# Views (data)


def summary(obj: Obj, now: datetime) -> dict[str, Any]:
    """One row of `get`."""
    st = status_of(obj)
    canary = st.get("canary")
    steps = int(st.get("stepCount") or 0)
    step = f"{int(st.get('currentStep') or 0) + 1}/{steps}" if canary and steps else "-"
    return {
        "namespace": meta(obj).get("namespace"),
        "name": meta(obj).get("name"),
        "phase": st.get("phase") or "Pending",
        "stable": (st.get("stable") or {}).get("version"),
        "canary": (canary or {}).get("version"),
        "weight": int(st.get("canaryWeight") or 0) if canary else 0,
        "step": step,
        "slos": slo_health(st.get("analysis") or []) if canary else "-",
        "age": age(meta(obj).get("creationTimestamp"), now),
    }


def step_rows(obj: Obj) -> list[dict[str, Any]]:
    """The step plan with the state of each step for the current canary."""
    st = status_of(obj)
    canary = st.get("canary")
    current = int(st.get("currentStep") or 0)
    weight = int(st.get("canaryWeight") or 0)
    mirror = int(st.get("canaryMirror") or 0)
    promoting = bool(st.get("promotingSince"))
    plan = steps_of(obj)
    # status.steps: the share each step really gives (issue 19), when it describes this plan
    reported = st.get("steps") or []
    shares = reported if [r.get("weight") for r in reported] == [s.canary_weight for s in plan] else [{}] * len(plan)
    rows = []
    for i, s in enumerate(plan):
        if not canary:
            state = "-"
        elif promoting or i < current:
            state = "done"
        elif i == current:
            if (weight, mirror) == (s.canary_weight, s.mirror):
                state = "paused" if st.get("phase") == Phase.PAUSED else "running"
            elif s.approval is ApprovalMode.REQUIRED:
                state = "awaiting approval"
            else:
                state = "next"
        else:
            state = "pending"
        rows.append({
            "index": i + 1, "weight": s.canary_weight, "shadow": s.mirror or None, "pause": s.pause,
            "analysis": s.analysis,
            "approval": s.approval.value == "required", "state": state,
            "current": bool(canary) and not promoting and i == current,
            "plannedShare": shares[i].get("plannedShare"), "share": shares[i].get("share"),
        })
    return rows


def share_text(row: Mapping[str, Any]) -> str:
    """The share a step gives the canary: planned at the current replica count, and measured once the
    canary held it, e.g. "50%" or "50% (got 50%)"; "-" when status has none."""
    planned, got = row.get("plannedShare"), row.get("share")
    if planned is None:
        return "-"
    text = f"{planned:g}%"
    return f"{text} (got {got:g}%)" if got is not None else text


def status_view(obj: Obj, now: datetime, timeline: int = 8) -> dict[str, Any]:
    """Everything `status` shows, as data."""
    st = status_of(obj)
    m = meta(obj)
    spec = obj.get("spec") or {}
    thresholds = {s.get("name"): s for s in spec.get("slos") or []}
    slos = []
    for a in st.get("analysis") or []:
        slo = dict(a)
        if not slo.get("threshold") and a.get("name") in thresholds:
            t = thresholds[a["name"]]
            slo["threshold"] = ", ".join(f"{k} {t[k]}" for k in ("min", "max", "maxIncreaseOverBaseline") if k in t)
        slos.append(slo)
    return {
        "namespace": m.get("namespace"),
        "name": m.get("name"),
        "generation": m.get("generation"),
        "observedGeneration": st.get("observedGeneration"),
        "phase": st.get("phase") or "Pending",
        "message": st.get("message") or "",
        "stable": st.get("stable"),
        "canary": st.get("canary"),
        "canaryWeight": int(st.get("canaryWeight") or 0),
        "canaryMirror": int(st.get("canaryMirror") or 0),
        "served": st.get("served"),
        "currentStep": int(st.get("currentStep") or 0),
        "lastKnownGood": st.get("lastKnownGood"),
        "bake": st.get("bake"),
        "keptCanary": st.get("keptCanary"),
        "sandbox": st.get("sandboxNamespace"),
        "fallback": st.get("fallback"),
        "paused": bool(spec.get("paused")),
        "killSwitch": bool(spec.get("killSwitch")),
        "approvedBy": st.get("approvedBy"),
        "gitops": gitops_manager(obj),
        "steps": step_rows(obj),
        "slos": slos,
        "conditions": list(st.get("conditions") or []),
        "lastIncident": st.get("lastIncident"),
        "lastDrill": st.get("lastDrill"),
        "timeline": list(st.get("timeline") or [])[-timeline:] if timeline > 0 else [],
        "age": age(m.get("creationTimestamp"), now),
    }


def served_line(served: Mapping[str, Any]) -> str:
    """status.served in one line: what the canary answered (users, or mirrored copies in a shadow step), the
    counts and window behind it, and the weight it was measured under."""
    window = f"over {served.get('window') or '?'}" + (" (the window includes the previous step)"
                                                        if served.get("blended") else "")
    stable = served.get("stableRequests", 0)
    if served.get("mirroredRequests") is not None:
        return (f"0% of users (shadow); {served['mirroredRequests']} mirrored copies = "
                f"{served.get('mirroredPercent')}% of {stable} live requests (mirror {served.get('mirror')}%) "
                f"{window}")
    return (f"{served.get('canaryPercent')}% of users ({served.get('canaryRequests', 0)} canary / {stable} stable "
            f"requests) {window}, at weight {served.get('weight')}%")


def drill_line(drill: Mapping[str, Any]) -> str:
    """status.lastDrill in one line: kind, outcome, who asked, when, the measured times, the message."""
    text = f"{drill.get('kind')} {drill.get('outcome')} by {drill.get('requestedBy')}"
    if drill.get("startedAt"):
        text += f" at {drill['startedAt']}"
    if drill.get("secondsToFallback") is not None:
        text += (f": time to fallback {drill['secondsToFallback']:.2f}s "
                 f"({drill.get('fromVersion')} -> {drill.get('toVersion')})")
    if drill.get("secondsToRestore") is not None:
        text += f", restored in {drill['secondsToRestore']:.2f}s"
    if drill.get("message"):
        text += f" — {drill['message']}"
    return text


def watch_outcome(obj: Obj) -> Exit | None:
    """How `status --watch` ends for this object, or None to keep watching.

    The status must reflect the latest spec (observedGeneration), so a version applied a moment ago
    is not reported as the previous rollout's Succeeded.
    """
    st = status_of(obj)
    generation = meta(obj).get("generation")
    if generation is not None and int(st.get("observedGeneration") or 0) < int(generation):
        return None
    phase = st.get("phase")
    stalled = any(c.get("type") == "Stalled" and c.get("status") == "True" for c in st.get("conditions") or [])
    if phase in (Phase.SUCCEEDED, Phase.STABLE):
        return Exit.OK
    if phase == Phase.ROLLED_BACK:
        return Exit.ROLLED_BACK
    if phase == Phase.STALLED or (phase == Phase.PENDING and stalled):
        return Exit.STALLED
    if phase == Phase.FALLBACK and (st.get("lastDrill") or {}).get("outcome") != "Running":
        return Exit.FALLBACK  # (a kill-switch drill's Fallback is a rehearsal that switches back by itself)
    return None


# ----------------------------------------------------------------------------------------------------
# Rendering (text)


@dataclass(frozen=True)
class Style:
    """ANSI styling, off when the output is not a terminal (or NO_COLOR is set)."""

    color: bool = False

    def phase(self, phase: str) -> str:
        code = {"Succeeded": "32", "Stable": "32", "Progressing": "36", "Promoting": "36",
                "AwaitingApproval": "33", "Paused": "33", "RollingBack": "31", "RolledBack": "31",
                "Stalled": "31", "Fallback": "35", "Baking": "36"}.get(phase)
        return self._wrap(phase, code)

    def verdict(self, verdict: str) -> str:
        code = {"Pass": "32", "Fail": "31", "Error": "31", "NoData": "33", "Inconclusive": "33"}.get(verdict)
        return self._wrap(verdict, code)

    def bold(self, text: str) -> str:
        return self._wrap(text, "1")

    def _wrap(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text


def _visible_len(text: str) -> int:
    out, skip = 0, False
    for ch in text:
        if ch == "\x1b":
            skip = True
        elif skip and ch == "m":
            skip = False
        elif not skip:
            out += 1
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """kubectl-style columns: upper-case headers, left-aligned, three spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _visible_len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [c + " " * (widths[i] - _visible_len(c)) for i, c in enumerate(row)]
        lines.append((indent + "   ".join(cells)).rstrip())
    return "\n".join(lines)


def render_get(rows: Sequence[Mapping[str, Any]], all_namespaces: bool, style: Style = Style()) -> str:
    headers = ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "SLOS", "AGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    out = []
    for r in rows:
        cells = [str(r["name"]), style.phase(str(r["phase"])), r["stable"] or "-", r["canary"] or "-",
                 f"{r['weight']}%" if r["canary"] else "-", str(r["step"]), str(r["slos"]), str(r["age"])]
        if all_namespaces:
            cells.insert(0, str(r["namespace"]))
        out.append(cells)
    return table(headers, out)


def render_status(view: Mapping[str, Any], now: datetime, style: Style = Style()) -> str:
    lines = [
        f"Name:          {view['namespace']}/{view['name']}",
        f"Phase:         {style.phase(view['phase'])}",
        f"Message:       {view['message'] or '-'}",
        f"Stable:        {revision_text(view['stable'])}",
    ]
    if view["canary"]:
        mirror = (f", mirror {view['canaryMirror']}% (shadow: users get stable's answers)"
                  if view.get("canaryMirror") else "")
        lines.append(f"Canary:        {revision_text(view['canary'])}   weight {view['canaryWeight']}%{mirror}")
        if view.get("served"):
            lines.append(f"Served:        {served_line(view['served'])}")
    else:
        lines.append("Canary:        - (no rollout in progress)")
    lines.append(f"LastKnownGood: {revision_text(view['lastKnownGood'])}")
    bake = view.get("bake")
    if bake:
        lines.append(f"Bake window:   {bake.get('version')} under analysis until {bake.get('until')} (window "
                     f"{bake.get('window')}); a failure rolls back to {bake.get('rollbackTo') or '-'}")
    kept = view.get("keptCanary")
    if kept:
        lines.append(f"Kept canary:   {kept.get('version')} ({kept.get('revision')}) kept with zero traffic until "
                     f"{kept.get('until')}: kubectl logs -n {view.get('sandbox') or '<sandbox>'} "
                     f"deploy/{kept.get('deployment')}")
    controls = [f"paused={'yes' if view['paused'] else 'no'}", f"killSwitch={'on' if view['killSwitch'] else 'off'}"]
    lines.append(f"Controls:      {'  '.join(controls)}")
    if view["fallback"]:
        lines.append(f"Fallback:      {revision_text(view['fallback'])} serves all traffic")
    lines.append(f"Approved by:   {view['approvedBy'] or '-'}")
    if view["lastIncident"]:
        lines.append(f"Last incident: {view['lastIncident']}   (kubectl tollgate evidence {view['name']})")
    if view.get("lastDrill"):
        lines.append(f"Last drill:    {drill_line(view['lastDrill'])}")
    if view["gitops"]:
        lines.append(f"Managed by:    {view['gitops']}")
    hint = next_step_hint(view)
    if hint:
        lines.append(f"Next:          {hint}")
    if view["generation"] is not None and int(view["observedGeneration"] or 0) < int(view["generation"]):
        lines.append(f"Note:          the operator has not observed generation {view['generation']} yet "
                     f"(status is of generation {view['observedGeneration'] or 0})")

    lines += ["", style.bold("Steps:")]
    if view["steps"]:
        rows = []
        for s in view["steps"]:
            mark = "=>" if s["current"] else "  "
            rows.append([mark, str(s["index"]), f"shadow {s['shadow']}%" if s.get("shadow") else f"{s['weight']}%",
                         share_text(s), s["pause"] or "-",
                         "yes" if s["analysis"] else "no", "required" if s["approval"] else "-", s["state"]])
        lines.append(table(["", "#", "WEIGHT", "SHARE", "PAUSE", "ANALYSIS", "APPROVAL", "STATE"], rows,
                           indent="  "))
    else:
        lines.append("  (unknown: the spec does not parse)")

    lines += ["", style.bold("SLOs:")]
    if view["slos"]:
        rows = []
        for a in view["slos"]:
            rows.append([str(a.get("name")), number(a.get("value")), number(a.get("baseline")),
                         str(a.get("threshold") or "-"), style.verdict(str(a.get("verdict") or "-")),
                         str(a.get("samples", 0)), str(a.get("failures", 0)), str(a.get("consecutiveErrors", 0)),
                         age(a.get("lastCheckedAt"), now)])
        lines.append(table(["NAME", "VALUE", "BASELINE", "THRESHOLD", "VERDICT", "SAMPLES", "FAILURES",
                            "ERRORS", "CHECKED"], rows, indent="  "))
    else:
        lines.append("  (no analysis yet)" if view["canary"] or bake else "  (no canary being analysed)")

    lines += ["", style.bold("Conditions:")]
    if view["conditions"]:
        rows = [[str(c.get("type")), str(c.get("status")), str(c.get("reason") or "-"),
                 age(c.get("lastTransitionTime"), now), str(c.get("message") or "")] for c in view["conditions"]]
        lines.append(table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows, indent="  "))
    else:
        lines.append("  (none yet)")

    if view["timeline"]:
        lines += ["", style.bold("Timeline:")]
        rows = [[age(t.get("at"), now), f"step {int(t.get('step') or 0) + 1}", f"{t.get('weight', 0)}%",
                 str(t.get("reason")), str(t.get("message") or "")] for t in view["timeline"]]
        lines.append(table(["AGO", "STEP", "WEIGHT", "REASON", "MESSAGE"], rows, indent="  "))
    return "\n".join(lines)


def next_step_hint(view: Mapping[str, Any]) -> str | None:
    """The command a person most likely wants now, when the rollout waits for one."""
    target = f"{view['name']} -n {view['namespace']}"
    if any(s["current"] and s["state"] == "awaiting approval" for s in view["steps"]):
        return f"kubectl tollgate approve {target}   (or abort)"
    if view["phase"] == "RolledBack":
        return f"kubectl tollgate evidence {target}; then fix the spec, or kubectl tollgate retry {target}"
    if view["phase"] == "Paused":
        return f"kubectl tollgate resume {target}"
    return None


def progress_line(view: Mapping[str, Any]) -> str:
    """One line per change for `status --watch` when stdout is not a terminal (CI logs)."""
    canary = view["canary"]
    where = f" {canary.get('version')} at {view['canaryWeight']}%" if canary else ""
    slos = f" slos={slo_health(view['slos'])}" if view["slos"] else ""
    return f"{view['phase']}{where}{slos}: {view['message']}"


def render_history(obj: Obj) -> str:
    entries = status_of(obj).get("history") or []
    if not entries:
        return f"no finished rollouts recorded for {meta(obj).get('name')}"
    rows = [[str(h.get("at")), str(h.get("version")), str(h.get("revision")), str(h.get("result")),
             str(h.get("incident") or "-"), str(h.get("reason") or "")] for h in entries]
    return table(["FINISHED", "VERSION", "REVISION", "RESULT", "INCIDENT", "REASON"], rows)


def render_evidence(record: Mapping[str, Any], style: Style = Style()) -> str:
    md = record.get("modelDeployment") or {}
    limits = record.get("limits") or {}
    lines = [
        f"Incident:      {record.get('incident')}",
        f"Object:        {md.get('namespace')}/{md.get('name')} (generation {md.get('generation')})",
        f"Result:        {style.phase(str(record.get('result')))} ({record.get('reason')}) at {record.get('at')}",
        f"Why:           {record.get('message')}",
        f"Canary:        {revision_text(record.get('canary'))}",
        f"Stable:        {revision_text(record.get('stable'))}",
        f"At:            step {int(record.get('step') or 0) + 1}, weight {record.get('weight')}%",
        "Limits:        " + ", ".join(f"{k} {v}" for k, v in limits.items()),
        "",
        style.bold("SLOs at the decision:"),
    ]
    slos = record.get("slos") or []
    if slos:
        rows = [[str(s.get("name")), number(s.get("value")), number(s.get("baseline")), str(s.get("threshold") or "-"),
                 style.verdict(str(s.get("verdict") or "-")), str(s.get("samples", 0)), str(s.get("failures", 0)),
                 str(s.get("consecutiveErrors", 0))] for s in slos]
        lines.append(table(["NAME", "VALUE", "BASELINE", "THRESHOLD", "VERDICT", "SAMPLES", "FAILURES", "ERRORS"],
                           rows, indent="  "))
    else:
        lines.append("  (none: no analysis had run)")
    observations = record.get("observations")
    if observations:
        lines += ["", style.bold("Queries of the last analysis tick:")]
        for o in observations:
            error = f", error {o.get('error')}" if o.get("error") else ""
            lines.append(f"  {o.get('name')} (window {o.get('window')}): canary {json.dumps(o.get('canary'))}, "
                         f"stable {json.dumps(o.get('stable'))}{error}")
            if o.get("query"):
                lines.append(f"    {o.get('query')}")
    timeline = record.get("timeline") or []
    if timeline:
        lines += ["", style.bold("Timeline:")]
        rows = [[str(t.get("at")), f"step {int(t.get('step') or 0) + 1}", f"{t.get('weight', 0)}%",
                 str(t.get("reason")), str(t.get("message") or "")] for t in timeline]
        lines.append(table(["AT", "STEP", "WEIGHT", "REASON", "MESSAGE"], rows, indent="  "))
    return "\n".join(lines)
