"""Where the model's pods may run: node selection, taints tolerated, affinity, spread and priority.

`spec.scheduling` is carried unchanged into the pod template of every track (stable, canary,
fallback), so a canary lands where its stable track does. It is not part of the revision (like
replicas): changing it rolls the running tracks in place, it does not start a canary. GPUs are asked for
as extended resources in spec.runtime.resources (nvidia.com/gpu: "1" in limits); the sandbox quota
gets them too (engine.sandbox.quota_hard).

The shapes are Kubernetes' own (core/v1 Toleration, NodeAffinity, PodAffinityTerm,
TopologySpreadConstraint), reduced to what a model server needs, and the mistakes people make with them
most often are refused by the API server with the field, the value and the fix (CEL below): a toleration
with operator Exists and a value, an empty key without Exists, tolerationSeconds without NoExecute; a
node-selector requirement whose values do not fit its operator; minDomains without DoNotSchedule; a
system- priority class.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

LABEL_KEY = Annotated[str, StringConstraints(min_length=1, max_length=317,
                                             pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
LABEL_VALUE = Annotated[str, StringConstraints(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]
PRIORITY_CLASS_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@cel(
    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    "spec.scheduling.tolerations[].value must be empty with operator: Exists (it matches any value): "
    "remove value, or use operator: Equal",
    field_path=".value",
)
@cel(
    "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    "spec.scheduling.tolerations[].key may be empty only with operator: Exists (tolerate every taint): "
    "set key, e.g. nvidia.com/gpu",
    field_path=".key",
)
@cel(
    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    "spec.scheduling.tolerations[].tolerationSeconds applies only to effect: NoExecute: "
    "set effect: NoExecute or remove tolerationSeconds",
    field_path=".tolerationSeconds",
)
class Toleration(_Model):
    """A node taint the model's pods tolerate (core/v1 Toleration), e.g. the taint of a GPU node pool:
    {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}."""

    key: Annotated[str, StringConstraints(max_length=317)] | None = None
    """Taint key; empty with operator Exists tolerates every taint."""
    operator: TolerationOperator = TolerationOperator.EQUAL
    """Equal (key and value match) or Exists (any value)."""
    value: LABEL_VALUE | None = None
    """Taint value (operator Equal only)."""
    effect: TaintEffect | None = None
    """NoSchedule, PreferNoSchedule or NoExecute; empty: every effect."""
    tolerationSeconds: Annotated[int, Field(ge=0, le=31_536_000)] | None = None
    """NoExecute only: how long the pod stays after the taint appears."""


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


@cel(
    "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
    "spec.scheduling.affinity: a requirement with operator In or NotIn needs values: list them, "
    "or use Exists",
    field_path=".values",
)
@cel(
    "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
    "spec.scheduling.affinity: a requirement with operator Exists or DoesNotExist takes no values: "
    "remove values, or use In",
    field_path=".values",
)
@cel(
    "!(self.operator in ['Gt', 'Lt']) || (has(self.values) && size(self.values) == 1 && "
    "self.values[0].matches('^-?[0-9]+$'))",
    "spec.scheduling.affinity: a requirement with operator Gt or Lt needs exactly one integer value, "
    "e.g. values: [\"40\"]",
    field_path=".values",
)
class SelectorRequirement(_Model):
    """One label requirement (core/v1 NodeSelectorRequirement / LabelSelectorRequirement)."""

    key: LABEL_KEY
    """Label key, e.g. nvidia.com/gpu.product."""
    operator: SelectorOperator
    """In, NotIn, Exists, DoesNotExist; for nodes also Gt and Lt (integer comparison)."""
    values: Annotated[list[LABEL_VALUE], Field(max_length=32)] | None = None
    """Values for In and NotIn (one integer for Gt and Lt)."""


class NodeSelectorTerm(_Model):
    """Requirements that must all hold for a node (terms of one list are ORed)."""

    matchExpressions: Annotated[list[SelectorRequirement], Field(min_length=1, max_length=16)]
    """Label requirements on the node."""


class PreferredNodeTerm(_Model):
    """A node preference with its weight."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """1-100; the scheduler adds it to the score of nodes matching `preference`."""
    preference: NodeSelectorTerm
    """Which nodes are preferred."""


class NodeAffinity(_Model):
    """Rules on node labels beyond nodeSelector (core/v1 NodeAffinity)."""

    required: Annotated[list[NodeSelectorTerm], Field(min_length=1, max_length=8)] | None = None
    """Hard: the node must match one of these terms
    (requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms)."""
    preferred: Annotated[list[PreferredNodeTerm], Field(max_length=8)] | None = None
    """Soft: preferredDuringSchedulingIgnoredDuringExecution."""


class PodLabelSelector(_Model):
    """Selects pods by labels (metav1.LabelSelector)."""

    matchLabels: Annotated[dict[LABEL_KEY, LABEL_VALUE], Field(max_length=16)] | None = None
    """Labels the pods must carry."""
    matchExpressions: Annotated[list[SelectorRequirement], Field(max_length=16)] | None = None
    """Label requirements (In, NotIn, Exists, DoesNotExist)."""


class PodAffinityTerm(_Model):
    """Pods (in the sandbox) this model's pods are placed near or away from, per topology domain."""

    topologyKey: LABEL_KEY
    """Node label that defines the domain, e.g. kubernetes.io/hostname or topology.kubernetes.io/zone."""
    labelSelector: PodLabelSelector | None = None
    """The pods; default: every pod of this ModelDeployment (all tracks)."""


class WeightedPodAffinityTerm(_Model):
    """A pod (anti-)affinity preference with its weight."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """1-100, added to the score of nodes that satisfy the term."""
    term: PodAffinityTerm
    """The term (podAffinityTerm)."""


class PodAffinity(_Model):
    """Hard and soft pod (anti-)affinity terms."""

    required: Annotated[list[PodAffinityTerm], Field(max_length=8)] | None = None
    """Hard (requiredDuringSchedulingIgnoredDuringExecution)."""
    preferred: Annotated[list[WeightedPodAffinityTerm], Field(max_length=8)] | None = None
    """Soft (preferredDuringSchedulingIgnoredDuringExecution)."""


class Affinity(_Model):
    """Node affinity, pod affinity and pod anti-affinity (core/v1 Affinity)."""

    nodeAffinity: NodeAffinity | None = None
    """Which nodes."""
    podAffinity: PodAffinity | None = None
    """Near which pods."""
    podAntiAffinity: PodAffinity | None = None
    """Away from which pods, e.g. one model pod per node: {required: [{topologyKey: kubernetes.io/hostname}]}."""


@cel(
    "!has(self.minDomains) || (has(self.whenUnsatisfiable) && self.whenUnsatisfiable == 'DoNotSchedule')",
    "spec.scheduling.topologySpreadConstraints[].minDomains applies only with whenUnsatisfiable: "
    "DoNotSchedule: set it or remove minDomains",
    field_path=".minDomains",
)
class TopologySpread(_Model):
    """Spread the model's pods over topology domains (core/v1 TopologySpreadConstraint); the pods counted
    are this ModelDeployment's, per track, so a canary spreads like its stable track."""

    maxSkew: Annotated[int, Field(ge=1, le=1000)] = 1
    """Largest allowed difference of pod counts between two domains."""
    topologyKey: LABEL_KEY
    """Node label that defines the domains, e.g. topology.kubernetes.io/zone."""
    whenUnsatisfiable: Annotated[str, StringConstraints(max_length=16, pattern=r"^(DoNotSchedule|ScheduleAnyway)$")] = (
        "ScheduleAnyway")
    """DoNotSchedule (hard) or ScheduleAnyway (soft, the default: a zone outage never blocks a rollback)."""
    minDomains: Annotated[int, Field(ge=1, le=1000)] | None = None
    """DoNotSchedule only: domains that must exist."""


@cel(
    "!has(self.priorityClassName) || !self.priorityClassName.startsWith('system-')",
    "spec.scheduling.priorityClassName must not be a system- class (system-node-critical and "
    "system-cluster-critical are for cluster components and may evict other teams' pods): "
    "use a class your platform team created for models",
    field_path=".priorityClassName",
)
class Scheduling(_Model):
    """Where the model's pods run; carried to every track (stable, canary, fallback)."""

    nodeSelector: Annotated[dict[LABEL_KEY, LABEL_VALUE], Field(max_length=16)] = Field(default_factory=dict)
    """Node labels the pods require, e.g. {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}."""
    tolerations: Annotated[list[Toleration], Field(max_length=16)] = Field(default_factory=list)
    """Node taints the pods tolerate; GPU node pools are usually tainted (e.g. nvidia.com/gpu:NoSchedule)."""
    affinity: Affinity | None = None
    """Node and pod (anti-)affinity."""
    topologySpreadConstraints: Annotated[list[TopologySpread], Field(max_length=8)] = Field(default_factory=list)
    """How the pods spread over zones or nodes."""
    priorityClassName: Annotated[str, StringConstraints(max_length=253, pattern=PRIORITY_CLASS_PATTERN)] | None = (
        None)
    """PriorityClass of the pods (it must exist; the API server refuses the pods otherwise)."""
