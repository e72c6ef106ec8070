"""The runtime's SLO template index: what a tick measures when templates exist, and when they do not."""

from __future__ import annotations

from tollgate.api.spec import SLO
from tollgate.engine.observations import AnalysisRequest, TemplateQuery
from tollgate.runtime.templates import TemplateIndex, references


def slo(slo_name: str, **ref: str) -> SLO:
    return SLO.model_validate({"name": slo_name, "max": 1, "templateRef": ref})


def template(kind: str, name: str, namespace: str = "", query: str = "up") -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
            "spec": {"query": query}}


def test_found_templates_are_attached_and_missing_ones_named_with_the_fix() -> None:
    # given a cluster template, and a tenant template in another namespace than the ModelDeployment's
    index = TemplateIndex()
    index.observe("ClusterSLOTemplate", template("ClusterSLOTemplate", "gpu", query="gpu"), deleted=False)
    index.observe("SLOTemplate", template("SLOTemplate", "approvals", "other-team"), deleted=False)
    request = AnalysisRequest("ml", "fraud", (SLO(name="error-rate", max=0.1), slo("gpu", name="gpu"),
                                              slo("approvals", kind="SLOTemplate", name="approvals")), "1m")
    # when a tick resolves them
    resolved, missing = index.resolve(request)
    # then the cluster template is attached, and the tenant's, absent from ml, is missing and not measured
    assert resolved.templates == (("gpu", TemplateQuery("ClusterSLOTemplate", "gpu", "gpu")),)
    assert [s.name for s in resolved.slos] == ["error-rate", "gpu"]
    assert missing == ("spec.slos[2] (approvals): SLOTemplate 'approvals' not found in namespace ml; "
                       "create it or fix spec.slos[2].templateRef",)


def test_a_deleted_template_goes_missing_and_the_modeldeployments_naming_it_are_found() -> None:
    index = TemplateIndex()
    key = index.observe("ClusterSLOTemplate", template("ClusterSLOTemplate", "gpu"), deleted=False)
    index.observe("ClusterSLOTemplate", template("ClusterSLOTemplate", "gpu"), deleted=True)
    _, missing = index.resolve(AnalysisRequest("ml", "a", (slo("gpu", name="gpu"),), "1m"))
    assert len(missing) == 1
    body = {"metadata": {"namespace": "ml"}, "spec": {"slos": [{"name": "gpu", "templateRef": {"name": "gpu"}}]}}
    assert references(body, key)
    assert not references(body, ("SLOTemplate", "ml", "gpu"))
