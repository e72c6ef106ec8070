"""SLO templates (ClusterSLOTemplate, SLOTemplate) as the runtime sees them: a watch-fed index, and the
resolution of a tick's spec.slos[].templateRef against it.

Why an index fed by watch events: a template is read at every analysis tick of every ModelDeployment
that names it; a GET each time would cost the API server one request per canary per tick. kopf's
watches keep the index current (and wake the ModelDeployments that name a template when it appears,
changes or goes away).

Resolution: an SLO naming an existing template gets its PromQL (a ClusterSLOTemplate's is trusted and
may be batched; an SLOTemplate's is the tenant's and runs per ModelDeployment and track); an SLO naming
a template that does not exist is reported as missing, with a message naming the SLO, the template and
the fix, and is not measured: the engine holds the analysis (condition TemplatesResolved=False), it
never counts it as a failure or a provider error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tollgate.api import templates
from tollgate.api.spec import TemplateKind
from tollgate.engine.observations import AnalysisRequest, TemplateQuery

TemplateKey = tuple[str, str, str]
"""(kind, namespace ('' for a ClusterSLOTemplate), name)."""


@dataclass
class TemplateIndex:
    """The PromQL of every SLO template the operator's watches delivered."""

    queries: dict[TemplateKey, str] = field(default_factory=dict)

    def observe(self, kind: str, body: dict[str, Any], deleted: bool) -> TemplateKey:
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace") or "" if kind == templates.KIND else "", meta.get("name", ""))
        query = (body.get("spec") or {}).get("query")
        if deleted or not isinstance(query, str):
            self.queries.pop(key, None)
        else:
            self.queries[key] = query
        return key

    def resolve(self, request: AnalysisRequest) -> tuple[AnalysisRequest, tuple[str, ...]]:
        """The request with every found template attached, and one message per missing one."""
        found: list[tuple[str, TemplateQuery]] = []
        missing: list[str] = []
        unmeasured: set[str] = set()
        for i, slo in enumerate(request.slos):
            ref = slo.templateRef
            if ref is None:
                continue
            namespace = request.namespace if ref.kind is TemplateKind.NAMESPACED else ""
            query = self.queries.get((ref.kind.value, namespace, ref.name))
            if query is None:
                where = f" in namespace {request.namespace}" if ref.kind is TemplateKind.NAMESPACED else ""
                missing.append(f"spec.slos[{i}] ({slo.name}): {ref.kind.value} {ref.name!r} not found{where}; "
                               f"create it or fix spec.slos[{i}].templateRef")
                unmeasured.add(slo.name)
            else:
                found.append((slo.name, TemplateQuery(ref.kind.value, ref.name, query)))
        if unmeasured:
            request = replace(request, slos=tuple(s for s in request.slos if s.name not in unmeasured))
        return replace(request, templates=tuple(found)), tuple(missing)


def references(body: dict[str, Any], key: TemplateKey) -> bool:
    """Whether a ModelDeployment's body names this template in spec.slos[].templateRef."""
    kind, namespace, name = key
    if kind == templates.KIND and (body.get("metadata") or {}).get("namespace") != namespace:
        return False
    for slo in (body.get("spec") or {}).get("slos") or []:
        ref = slo.get("templateRef") if isinstance(slo, dict) else None
        if isinstance(ref, dict) and ref.get("name") == name and ref.get("kind", templates.CLUSTER_KIND) == kind:
            return True
    return False
