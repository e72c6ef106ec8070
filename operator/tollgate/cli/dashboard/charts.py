"""The SLO charts of one rollout as data: what to ask Prometheus for, and what each chart draws.

Pure: the request (which ModelDeployment, SLOs, window and versions), the time range worth drawing,
and for each SLO its canary and stable series with the threshold lines, where the limit was crossed,
where each step began and each verdict was given. The page's script hands this to Plotly unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tollgate.adapters.slo_series import Point, SLOSeries
from tollgate.api import templates
from tollgate.api.invalid import InvalidSpecError
from tollgate.cli.dashboard import views
from tollgate.cli.errors import CliError
from tollgate.cli.view import Obj, meta, spec_model, status_of
from tollgate.engine.actions import Context
from tollgate.engine.analysis import compared
from tollgate.engine.observations import AnalysisRequest, MetricValue, SLOObservation
from tollgate.engine.policy import Policy, ResolvedSLO, resolve_policy
from tollgate.engine.sandbox import sandbox_namespace
from tollgate.runtime.templates import TemplateIndex

LEAD_SECONDS = 30.0
"""Drawn before the rollout's first entry, so the chart shows stable alone before the canary."""
TAIL_SECONDS = 60.0
"""Drawn after the rollout's last entry once it ended (a finished rollout's chart stops moving)."""
MAX_RANGE_SECONDS = 3600.0
DEFAULT_RANGE_SECONDS = 900.0


@dataclass(frozen=True)
class Plan:
    """What to ask Prometheus for one ModelDeployment's charts."""

    request: AnalysisRequest
    start: float
    end: float
    policy: Policy


def _versions(obj: Obj, evidence: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The version under analysis on each track: the live canary's, else the rolled-back one's."""
    st = status_of(obj)
    stable, canary = st.get("stable"), st.get("canary")
    if canary is None and evidence and evidence.get("canary"):
        canary = evidence.get("canary")
        stable = evidence.get("stable") or stable
    tracks = (("stable", stable), ("canary", canary))
    return tuple((track, str(ref["version"])) for track, ref in tracks if ref and ref.get("version"))


def time_range(obj: Obj, now: datetime) -> tuple[float, float]:
    """From shortly before the latest rollout began to now (or shortly after it ended), at most an hour."""
    end = now.timestamp()
    times = [t for t in (views.epoch(e.get("at")) for e in views.rollout_timeline(obj)) if t is not None]
    if not times:
        return end - DEFAULT_RANGE_SECONDS, end
    st = status_of(obj)
    if st.get("canary") is None:
        end = min(end, max(times) + TAIL_SECONDS)
    start = max(min(times) - LEAD_SECONDS, end - MAX_RANGE_SECONDS)
    return start, end


def plan(obj: Obj, now: datetime, evidence: Mapping[str, Any] | None = None) -> Plan | None:
    """The range request for this ModelDeployment's SLOs, or None when its spec does not parse."""
    spec = spec_model(obj)
    if spec is None:
        return None
    try:
        policy = resolve_policy(spec)
    except (InvalidSpecError, ValueError):
        return None
    m = meta(obj)
    namespace, name = str(m.get("namespace")), str(m.get("name"))
    # Whose series: the pods' sandbox (their `namespace` label) and the metric profile, as the operator
    # asks (engine.rollout.Case.analysis_request); a spec without a profile reads the default one's.
    ctx = Context(name=name, namespace=namespace, uid=str(m.get("uid") or ""), generation=0)
    sandbox = str(status_of(obj).get("sandboxNamespace") or sandbox_namespace(spec, ctx))
    request = AnalysisRequest(namespace, name, tuple(r.slo for r in policy.slos), policy.window,
                              _versions(obj, evidence), sandbox=sandbox,
                              profile=spec.metrics.profile.value if spec.metrics.profile else None)
    start, end = time_range(obj, now)
    return Plan(request, start, end, policy)


TemplateFetch = Callable[[str, str, str], dict[str, Any] | None]
"""(kind, namespace, name) -> the SLO template's object, or None where it does not exist."""


def with_templates(p: Plan, fetch: TemplateFetch) -> tuple[Plan, dict[str, str]]:
    """The plan with the query of every SLO template its SLOs name (read as the person running the
    dashboard, so their RBAC applies), and why each SLO whose template is missing has no chart. The
    operator resolves the same way (runtime.templates), from its watch instead of a GET."""
    index = TemplateIndex()
    unreadable: dict[str, str] = {}
    for slo in p.request.slos:
        ref = slo.templateRef
        if ref is None:
            continue
        namespace = p.request.namespace if ref.kind.value == templates.KIND else ""
        try:
            obj = fetch(ref.kind.value, namespace, ref.name)
        except CliError as exc:  # e.g. forbidden: that chart says so, the others are still drawn
            unreadable[slo.name] = exc.message
            continue
        if obj is not None:
            index.observe(ref.kind.value, obj, deleted=False)
    request, missing = index.resolve(p.request)
    kept = {s.name for s in request.slos}
    unmeasured = [s.name for s in p.request.slos if s.name not in kept]
    why = dict(zip(unmeasured, missing, strict=True))
    why.update(unreadable)
    return replace(p, request=request), why


def judged(slo: ResolvedSLO, series: SLOSeries) -> SLOSeries:
    """The series as the engine judges each instant (engine.analysis.compared: e.g. a score shift is
    |canary - stable| against a baseline of 0), so the chart shows what the threshold applies to."""
    stable = dict(series.stable)
    canary: list[Point] = []
    base: list[Point] = []
    for t in sorted(set(stable) | {t for t, _ in series.canary}):
        obs = SLOObservation(name=slo.name, canary=MetricValue(dict(series.canary).get(t), 0),
                             stable=MetricValue(stable.get(t), 0))
        seen = compared(slo, obs) or obs
        canary.append((t, seen.canary.value if seen.canary is not None else None))
        base.append((t, seen.stable.value if seen.stable is not None else None))
    return replace(series, canary=tuple(canary), stable=tuple(base))


def crossings(slo: ResolvedSLO, canary: Sequence[Point], stable: Sequence[Point]) -> list[dict[str, Any]]:
    """Every point where the canary was beyond a limit: above max, below min, or more than
    maxIncreaseOverBaseline above stable at the same instant (the engine's comparisons)."""
    base = dict(stable)
    out = []
    for t, v in canary:
        if v is None:
            continue
        limit = None
        if slo.slo.max is not None and v > slo.slo.max:
            limit = f"max {slo.slo.max:g}"
        elif slo.slo.min is not None and v < slo.slo.min:
            limit = f"min {slo.slo.min:g}"
        elif slo.slo.maxIncreaseOverBaseline is not None and base.get(t) is not None:
            b = base[t]
            assert b is not None
            if v - b > slo.slo.maxIncreaseOverBaseline:
                limit = f"+{slo.slo.maxIncreaseOverBaseline:g} over baseline {b:.4g}"
        if limit is not None:
            out.append({"t": t * 1000, "value": v, "limit": limit})
    return out


def _xy(points: Sequence[Point]) -> dict[str, list[Any]]:
    return {"x": [t * 1000 for t, _ in points], "y": [v for _, v in points]}


def chart(slo: ResolvedSLO, series: SLOSeries, moments: Sequence[Mapping[str, Any]],
          starts: Sequence[Mapping[str, Any]], verdict: str | None) -> dict[str, Any]:
    """One SLO's chart: canary and stable series, threshold lines, crossings and the marked moments."""
    series = judged(slo, series)
    crossed = crossings(slo, series.canary, series.stable)
    lines = []
    if slo.slo.max is not None:
        lines.append({"label": f"max {slo.slo.max:g}", "value": slo.slo.max})
    if slo.slo.min is not None:
        lines.append({"label": f"min {slo.slo.min:g}", "value": slo.slo.min})
    baseline_limit = None
    if slo.slo.maxIncreaseOverBaseline is not None:
        delta = slo.slo.maxIncreaseOverBaseline
        baseline_limit = {"label": f"stable +{delta:g}",
                          **_xy([(t, v + delta if v is not None else None) for t, v in series.stable])}
    return {
        "name": slo.name,
        "verdict": verdict or "-",
        "threshold": slo.threshold_text(),
        "canary": _xy(series.canary),
        "stable": _xy(series.stable),
        "samples": _xy(series.canary_samples),
        "thresholds": lines,
        "baselineLimit": baseline_limit,
        "crossings": crossed,
        "firstCrossing": crossed[0] if crossed else None,
        "moments": [{**m, "t": (views.epoch(m.get("at")) or 0) * 1000} for m in moments],
        "steps": [{**s, "t": (views.epoch(s.get("at")) or 0) * 1000} for s in starts],
        "query": series.query,
        "error": series.error,
    }


def charts(obj: Obj, p: Plan, series: Sequence[SLOSeries], evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every SLO chart of the ModelDeployment, in spec order, with the range they cover."""
    verdicts = {a.get("name"): a.get("verdict") for a in status_of(obj).get("analysis") or []}
    if evidence and not status_of(obj).get("canary"):
        verdicts.update({s.get("name"): s.get("verdict") for s in evidence.get("slos") or []})
    by_name = {s.name: s for s in series}
    moments = views.verdict_moments(obj, evidence)
    starts = views.step_starts(obj)
    out = [chart(r, by_name.get(r.name) or SLOSeries(r.name, error="no answer"), moments, starts,
                 verdicts.get(r.name)) for r in p.policy.slos]
    return {"start": p.start * 1000, "end": p.end * 1000, "window": p.policy.window,
            "versions": dict(p.request.versions), "charts": out}
