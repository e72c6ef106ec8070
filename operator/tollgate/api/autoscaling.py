"""spec.autoscaling: who decides how many pods the stable track runs.

Without it, spec.replicas does, and Tollgate writes it. With it, an autoscaler owns the stable track's
replica count and Tollgate never writes it (engine.autoscale):

- scaler: hpa (the default): Tollgate creates one HorizontalPodAutoscaler (autoscaling/v2) for the
  stable track in the sandbox, from minReplicas, maxReplicas and metrics;
- scaler: external: something else (KEDA's ScaledObject, the platform's own HPA) owns it; Tollgate
  creates no HPA and leaves replicas alone; minReplicas may be 0 (scale to zero; see docs/api.md).

The canary is sized by Tollgate from the stable track's current size (the split is the canary's
count), and the fallback at the stable track's current size; an HPA on either would fight the split.
The metric forms are autoscaling/v2's Resource (cpu, memory: a utilisation of the pods' requests or an
average value), Pods (a per-pod custom metric, e.g. inference requests per second from a metrics
adapter) and External (e.g. a queue's length), flattened: each entry names one source. Object metrics
(a metric of another object, named by the tenant) and ContainerResource are not offered (see docs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:.|/-]*$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_REPLICAS = 1000
DEFAULT_CPU_UTILIZATION = 80
"""The HPA controller's own default target when an HPA names no metric; Tollgate writes it explicitly."""

Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN, min_length=1, max_length=253)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class Scaler(StrEnum):
    """Who scales the stable track."""

    HPA = "hpa"
    EXTERNAL = "external"


class ResourceName(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"


class MetricSelector(_Model):
    """Labels that pick the series of a custom or external metric (metav1.LabelSelector matchLabels)."""

    matchLabels: Annotated[
        dict[Annotated[str, StringConstraints(max_length=317, pattern=LABEL_KEY_PATTERN)],
             Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]],
        Field(max_length=16),
    ] = Field(default_factory=dict)
    """Labels the metric's series must carry."""


@cel(
    "has(self.averageUtilization) != has(self.averageValue)",
    "spec.autoscaling.metrics[].resource needs exactly one target: averageUtilization (percent of the pods' "
    "requests, e.g. 70) or averageValue (a quantity per pod, e.g. 500m)",
)
class ResourceMetric(_Model):
    """CPU or memory of the model's pods (autoscaling/v2 Resource metric; needs the metrics server)."""

    name: ResourceName
    """cpu or memory."""
    averageUtilization: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Target percent of the pods' requests (1-1000), e.g. 70."""
    averageValue: Quantity | None = None
    """Target quantity per pod, e.g. 500m CPU or 2Gi memory."""


class PodsMetric(_Model):
    """A custom metric per pod, averaged over the stable track's pods (autoscaling/v2 Pods metric), e.g.
    inference requests per second served through a custom-metrics adapter."""

    name: MetricName
    """The metric's name as the custom metrics API serves it."""
    averageValue: Quantity
    """Target average per pod, e.g. "20"."""
    selector: MetricSelector | None = None
    """Narrows the metric's series."""


@cel(
    "has(self.value) != has(self.averageValue)",
    "spec.autoscaling.metrics[].external needs exactly one target: value (the metric's total, e.g. a queue of "
    "\"100\") or averageValue (the total divided by the pods)",
)
class ExternalMetric(_Model):
    """A metric from outside the cluster's objects (autoscaling/v2 External metric), e.g. a queue's length."""

    name: MetricName
    """The metric's name as the external metrics API serves it."""
    selector: MetricSelector | None = None
    """Narrows the metric's series."""
    value: Quantity | None = None
    """Target total value."""
    averageValue: Quantity | None = None
    """Target value per pod."""


@cel(
    "[has(self.resource), has(self.pods), has(self.external)].filter(x, x).size() == 1",
    "each spec.autoscaling.metrics[] entry names exactly one source: resource, pods or external",
)
class MetricTarget(_Model):
    """One metric the HPA scales the stable track on; the HPA takes the largest replica count any asks for."""

    resource: ResourceMetric | None = None
    """CPU or memory of the pods."""
    pods: PodsMetric | None = None
    """A custom per-pod metric."""
    external: ExternalMetric | None = None
    """An external metric."""


@cel(
    "self.minReplicas <= self.maxReplicas",
    "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas: raise maxReplicas or lower "
    "minReplicas (a messageExpression naming both values is estimated over the API server's CEL cost budget)",
    field_path=".minReplicas",
)
@cel(
    "self.minReplicas >= 1 || (has(self.scaler) && self.scaler == 'external')",
    "spec.autoscaling.minReplicas 0 (scale to zero) needs scaler: external: an HPA does not scale a track up "
    "from zero pods, so the model would stay down; set minReplicas: 1, or let KEDA own the track (scaler: external)",
    field_path=".minReplicas",
)
@cel(
    "!has(self.metrics) || size(self.metrics) == 0 || !has(self.scaler) || self.scaler == 'hpa'",
    "spec.autoscaling.metrics configure the HPA Tollgate creates; with scaler: external your own scaler "
    "(e.g. a KEDA ScaledObject) has its triggers: remove metrics or set scaler: hpa",
    field_path=".metrics",
)
class Autoscaling(_Model):
    """An autoscaler owns the stable track's replica count; Tollgate never writes it (spec.replicas is then
    not used) and sizes the canary from the stable track's current size."""

    scaler: Scaler = Scaler.HPA
    """hpa: Tollgate creates a HorizontalPodAutoscaler (autoscaling/v2) for the stable track in the sandbox.
    external: another scaler (KEDA, your own HPA) owns the stable Deployment <name>-stable; Tollgate creates
    none and leaves its replicas alone."""
    minReplicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    """Fewest stable pods (0 only with scaler: external, for scale to zero)."""
    maxReplicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
    """Most stable pods (1-1000); the sandbox quota leaves room for this many stable pods plus a canary as
    large, and the platform's maxReplicas limit applies to it."""
    metrics: Annotated[list[MetricTarget], Field(max_length=8)] = Field(default_factory=list)
    """What the HPA scales on (at most 8). Empty with scaler hpa: CPU at 80% of the pods' requests (the HPA's
    own default, written explicitly)."""

    @property
    def hpa(self) -> bool:
        return self.scaler is Scaler.HPA
