"""SLO charts as data: what is asked of Prometheus for one ModelDeployment, and what each chart draws."""

from __future__ import annotations

from typing import Any

from tollgate.adapters.slo_series import SLOSeries
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.cli.dashboard import charts, views
from tollgate.cli.errors import CliError, Exit
from tollgate.engine.policy import resolve_policy
from unit.cli.samples import NOW, md, rolled_back

T0 = views.epoch("2026-03-01T11:50:00Z") or 0.0


def test_plan_is_scoped_to_the_modeldeployment_and_the_versions_under_analysis() -> None:
    p = charts.plan(md(), NOW)
    assert p is not None
    assert (p.request.namespace, p.request.name) == ("ml", "fraud")
    assert [s.name for s in p.request.slos] == ["error-rate", "latency-p99"]
    assert dict(p.request.versions) == {"stable": "1.0.0", "canary": "2.0.0"}
    # and the series asked for are its pods', in its sandbox, in the operator's default dialect
    assert p.request.sandbox.startswith("ml-fraud") and p.request.profile is None  # the default sandbox


def test_the_plan_asks_for_the_sandbox_in_status_and_the_profile_in_spec() -> None:
    obj = md(sandboxNamespace="team-fraud-sbx")
    obj["spec"]["metrics"] = {"profile": "istio"}
    p = charts.plan(obj, NOW)
    assert p is not None and p.request.sandbox == "team-fraud-sbx" and p.request.profile == "istio"


def test_a_rolled_back_rollout_is_drawn_with_the_versions_of_its_evidence_and_ends_after_it() -> None:
    evidence = {"canary": {"version": "2.0.0"}, "stable": {"version": "1.0.0"}}
    p = charts.plan(rolled_back(), NOW, evidence)
    assert p is not None
    assert dict(p.request.versions) == {"stable": "1.0.0", "canary": "2.0.0"}
    # from shortly before CanaryStarted to shortly after the rollback (not up to now)
    assert p.start == T0 - charts.LEAD_SECONDS
    assert p.end == views.epoch("2026-03-01T11:53:00Z") + charts.TAIL_SECONDS  # type: ignore[operator]


def test_crossings_are_the_points_beyond_max_min_or_the_baseline_increase() -> None:
    spec = ModelDeploymentSpec.model_validate({
        **md()["spec"], "slos": [{"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.01}]})
    (slo,) = resolve_policy(spec).slos
    canary = [(1.0, 0.01), (2.0, 0.03), (3.0, 0.06), (4.0, None)]
    stable = [(1.0, 0.01), (2.0, 0.01), (3.0, 0.01)]
    crossed = charts.crossings(slo, canary, stable)
    assert [(c["t"], c["limit"]) for c in crossed] == [(2000.0, "+0.01 over baseline 0.01"), (3000.0, "max 0.05")]


def test_chart_carries_series_threshold_lines_and_marks() -> None:
    spec = ModelDeploymentSpec.model_validate(md()["spec"])
    slo = resolve_policy(spec).slos[0]
    series = SLOSeries("error-rate", canary=((T0, 0.0), (T0 + 60, 0.2)), stable=((T0, 0.0), (T0 + 60, 0.001)))
    c = charts.chart(slo, series, [{"at": "2026-03-01T11:51:00Z", "reason": "RolledBack"}],
                     [{"at": "2026-03-01T11:50:00Z", "step": 1, "weight": 10}], "Fail")
    assert c["canary"] == {"x": [T0 * 1000, (T0 + 60) * 1000], "y": [0.0, 0.2]}
    assert c["thresholds"] == [{"label": "max 0.01", "value": 0.01}]
    assert c["firstCrossing"] == {"t": (T0 + 60) * 1000, "value": 0.2, "limit": "max 0.01"}
    assert c["moments"][0]["t"] == (T0 + 60) * 1000 and c["steps"][0]["t"] == T0 * 1000
    assert c["verdict"] == "Fail"


def test_a_score_shift_chart_shows_the_distance_the_engine_judges() -> None:
    # given the mean scores of each track (what Prometheus answers)
    spec = ModelDeploymentSpec.model_validate({**md()["spec"], "slos": [{"name": "score-shift", "max": 0.05}]})
    (slo,) = resolve_policy(spec).slos
    series = SLOSeries("score-shift", canary=((T0, 0.7), (T0 + 1, 0.62)), stable=((T0, 0.6), (T0 + 1, 0.6)))
    # when charted, then the canary line is |canary - stable| against a stable baseline of 0 (engine.analysis)
    c = charts.chart(slo, series, [], [], "Fail")
    assert [round(v, 6) for v in c["canary"]["y"]] == [0.1, 0.02] and c["stable"]["y"] == [0.0, 0.0]
    assert [x["t"] for x in c["crossings"]] == [T0 * 1000]


def test_slos_that_name_templates_are_charted_with_the_templates_queries_or_say_why_not() -> None:
    # given SLOs naming a ClusterSLOTemplate, a missing SLOTemplate and one the person may not read
    obj = md()
    obj["spec"]["slos"] = [
        {"name": "error-rate", "max": 0.01},
        {"name": "gpu-util", "max": 0.9, "templateRef": {"name": "gpu-util"}},
        {"name": "toxicity", "max": 0.1, "templateRef": {"kind": "SLOTemplate", "name": "toxicity"}},
        {"name": "secret-sauce", "max": 1, "templateRef": {"kind": "SLOTemplate", "name": "sauce"}},
    ]
    asked: list[tuple[str, str, str]] = []

    def fetch(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        asked.append((kind, namespace, name))
        if name == "gpu-util":
            return {"metadata": {"name": name}, "spec": {"query": "avg(gpu_util{$selector})"}}
        if name == "sauce":
            raise CliError('forbidden: you may not get SLOTemplate "sauce"', Exit.FORBIDDEN)
        return None

    p = charts.plan(obj, NOW)
    assert p is not None
    # when the dashboard resolves them
    resolved, why = charts.with_templates(p, fetch)
    # then each template is read where the operator would look (cluster-wide, or the MD's namespace)
    assert asked == [("ClusterSLOTemplate", "", "gpu-util"), ("SLOTemplate", "ml", "toxicity"),
                     ("SLOTemplate", "ml", "sauce")]
    # the found one is asked with its own query; the others get no query and a reason on their chart
    assert [(t[0], t[1].query) for t in resolved.request.templates] == [("gpu-util", "avg(gpu_util{$selector})")]
    assert [s.name for s in resolved.request.slos] == ["error-rate", "gpu-util"]
    assert "SLOTemplate 'toxicity' not found in namespace ml" in why["toxicity"]
    assert why["secret-sauce"].startswith("forbidden")
