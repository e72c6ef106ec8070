"""Reusable SLO templates: ClusterSLOTemplate (platform-wide, trusted) and SLOTemplate (a tenant's own).

Why two kinds, as Argo Rollouts has AnalysisTemplate and ClusterAnalysisTemplate and Flagger has
MetricTemplate: the platform team writes a query once for every team (`ClusterSLOTemplate`, cluster
scoped, only it can write them), and a team shares a query among its own ModelDeployments
(`SLOTemplate`, in its namespace). A ModelDeployment names one in `spec.slos[].templateRef`.

Trust follows who writes them. A ClusterSLOTemplate is trusted PromQL: it runs as written, and when it
uses `{{by}}` and `{{selector}}` it is batched like the built-ins (one query per template per tick for
every ModelDeployment in analysis). An SLOTemplate is a tenant's query: it runs once per
ModelDeployment and track, like an inline `query`, and goes through the same tenant scoping (every
selector must be limited to the ModelDeployment's own sandbox namespace).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from tollgate.api.spec import _Model
from tollgate.api.validation import cel

CLUSTER_KIND = "ClusterSLOTemplate"
CLUSTER_PLURAL = "clusterslotemplates"
KIND = "SLOTemplate"
PLURAL = "slotemplates"

_BY = r"'\\{\\{\\s*by\\s*\\}\\}'"
_SELECTOR = r"'\\{\\{\\s*selector\\s*\\}\\}'"
_TRACK = r"'\\{\\{\\s*track\\s*\\}\\}'"


class _TemplateSpec(_Model):
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """PromQL. Per ModelDeployment and track: {{namespace}} (the ModelDeployment's), {{name}}, {{track}},
    {{window}}, {{sandbox}} (the namespace its pods run in) and {{selector}} (the exact label matchers of
    that ModelDeployment's track); it must return one value."""
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """What the value means and its unit, for the people who pick a threshold."""


@cel(
    "!self.query.matches(" + _BY + ") || self.query.matches(" + _SELECTOR + ")",
    "spec.query of a batched ClusterSLOTemplate uses {{by}} and must also use {{selector}} in every "
    "series selector, e.g. sum by ({{by}}) (rate(my_requests_total{ {{selector}} }[{{window}}]))",
    field_path=".query",
)
@cel(
    "!self.query.matches(" + _BY + ") || !self.query.matches(" + _TRACK + ")",
    "spec.query of a batched ClusterSLOTemplate (one using {{by}}) covers both tracks at once: remove "
    "{{track}}, the result is split by the track label",
    field_path=".query",
)
class ClusterSLOTemplateSpec(_TemplateSpec):
    """A platform-wide SLO template. Its query is trusted and runs as written.

    Batched form: `{{by}}` (the grouping labels) and `{{selector}}` (label matchers of every
    ModelDeployment in the tick), e.g. `sum by ({{by}}) (rate(x{ {{selector}} }[{{window}}]))`: one query
    per tick covers every canary, split by the identity labels. Otherwise it runs per ModelDeployment and
    track with the per-track variables."""


@cel(
    "!self.query.matches(" + _BY + ")",
    "spec.query of an SLOTemplate runs per ModelDeployment and track, scoped to the tenant's own series: "
    "{{by}} batching is for ClusterSLOTemplates; use {{selector}} or namespace=\"{{sandbox}}\" instead",
    field_path=".query",
)
class SLOTemplateSpec(_TemplateSpec):
    """A team's SLO template, usable by the ModelDeployments of its namespace. Runs per ModelDeployment
    and track; every series selector must be limited to the ModelDeployment's sandbox namespace
    (`namespace="{{sandbox}}"`, or `{{selector}}`), or the query is refused and never sent."""


class ClusterSLOTemplate(_Model):
    spec: ClusterSLOTemplateSpec = Field(description="The template.")


class SLOTemplate(_Model):
    spec: SLOTemplateSpec = Field(description="The template.")
