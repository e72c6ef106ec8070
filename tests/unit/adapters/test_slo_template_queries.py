"""ClusterSLOTemplates batch like built-ins; SLOTemplates run per ModelDeployment and track."""

from __future__ import annotations

from tollgate.api.spec import SLO
from tollgate.engine.observations import AnalysisRequest, MetricValue, TemplateQuery

from .test_prometheus_adapter import answer_of, labels, provider, vector

BATCHED = TemplateQuery("ClusterSLOTemplate", "gpu", "avg by ({{by}}) (gpu_util{ {{selector}} }[{{window}}])")
PER_TRACK = TemplateQuery("SLOTemplate", "approvals", 'sum(rate(approvals_total{ {{selector}} }[{{window}}]))')


def req(name: str, template: TemplateQuery) -> AnalysisRequest:
    slo = SLO.model_validate({"name": "t", "max": 1, "templateRef": {"kind": template.kind, "name": template.name}})
    return AnalysisRequest("ml", name, (slo,), "1m", sandbox=f"ml-{name}", templates=(("t", template),))


def test_a_batched_cluster_template_is_one_query_for_every_modeldeployment() -> None:
    def answer(promql: str) -> object:
        return answer_of(((labels("ml", "a", "canary"), "0.7"), (labels("ml", "b", "canary"), "0.2")),
                         ((labels("ml", "a", "canary"), "50"), (labels("ml", "b", "canary"), "60")))

    prom, transport = provider(answer)  # type: ignore[arg-type]
    out = prom.observe([req("a", BATCHED), req("b", BATCHED)])
    # then one query covers both, with {{by}} and {{selector}} filled in, and values are split per track
    (q,) = transport.queries
    assert "avg by (namespace, modeldeployment_namespace, modeldeployment, track, version) (gpu_util{ " in q
    assert 'modeldeployment=~"a|b"' in q and "[1m]" in q
    assert out[("ml", "a")][0].canary == MetricValue(0.7, 50)
    assert out[("ml", "b")][0].canary == MetricValue(0.2, 60)


def test_a_tenant_template_runs_per_track_with_the_exact_selector() -> None:
    def answer(promql: str) -> object:
        if "increase(" in promql:
            return vector((labels("ml", "a", "canary"), "10"), (labels("ml", "a", "stable"), "20"))
        return vector(({}, "3" if 'track="canary"' in promql else "4"))

    prom, transport = provider(answer)  # type: ignore[arg-type]
    (obs,) = prom.observe([req("a", PER_TRACK)])[("ml", "a")]
    assert ('sum(rate(approvals_total{ namespace="ml-a", modeldeployment_namespace="ml", modeldeployment="a", '
            'track="canary" }[1m]))') in transport.queries
    assert obs.canary == MetricValue(3.0, 10) and obs.stable == MetricValue(4.0, 20)


def test_an_unresolved_template_is_an_error_of_that_slo_only() -> None:
    slo = SLO.model_validate({"name": "t", "max": 1, "templateRef": {"name": "gone"}})
    prom, transport = provider(lambda q: vector())
    (obs,) = prom.observe([AnalysisRequest("ml", "a", (slo,), "1m", sandbox="ml-a")])[("ml", "a")]
    assert obs.error is not None and "gone" in obs.error and transport.queries == []
