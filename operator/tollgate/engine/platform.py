"""Platform limits: what the platform team lets any tenant ask for through a ModelDeployment (pure).

Set in the chart's values (platformLimits), passed to the operator as settings. A spec over a limit is
not acted on: the runtime reports Stalled with the message from `over_limits`, which names the field,
the value, the limit and where it is set. Because the ResourceQuota Tollgate writes is derived from the
spec (or is spec.sandbox.quota, checked here too), it never exceeds what the limits allow either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.quantity import value
from tollgate.engine.sandbox import max_pods

WHERE = "set by the platform team in the Tollgate chart's platformLimits"


@dataclass(frozen=True)
class PlatformLimits:
    max_replicas: int | None = None
    """Most pods a stable track may have (spec.replicas); None: no limit."""
    max_pod_resources: Mapping[str, str] = field(default_factory=dict)
    """Per pod, for requests and limits alike, e.g. {cpu: "8", memory: 32Gi, nvidia.com/gpu: "2"}."""

    @property
    def active(self) -> bool:
        return self.max_replicas is not None or bool(self.max_pod_resources)


def _quota_cap(name: str, limits: PlatformLimits) -> Decimal | None:
    """The most a sandbox quota entry may hold: the limit per pod times the pods a sandbox may need."""
    if limits.max_replicas is None:
        return None
    pods = max_pods(limits.max_replicas)
    if name == "pods":
        return Decimal(pods)
    resource = name.split(".", 1)[1] if name.startswith(("requests.", "limits.")) else name
    per_pod = limits.max_pod_resources.get(resource)
    return None if per_pod is None else value(per_pod) * pods


def over_limits(spec: ModelDeploymentSpec, limits: PlatformLimits) -> str | None:
    """Why the spec asks for more than the platform allows (the first reason), or None."""
    if limits.max_replicas is not None and spec.autoscaling is None and spec.replicas > limits.max_replicas:
        return (f"spec.replicas {spec.replicas} is over the platform limit of {limits.max_replicas} pods per track "
                f"(maxReplicas, {WHERE}): lower spec.replicas")
    scaling = spec.autoscaling
    if limits.max_replicas is not None and scaling is not None and scaling.maxReplicas > limits.max_replicas:
        return (f"spec.autoscaling.maxReplicas {scaling.maxReplicas} is over the platform limit of "
                f"{limits.max_replicas} pods per track (maxReplicas, {WHERE}): lower spec.autoscaling.maxReplicas")
    for kind, asked in (("requests", spec.runtime.resources.requests), ("limits", spec.runtime.resources.limits)):
        for name, quantity in sorted(asked.items()):
            cap = limits.max_pod_resources.get(name)
            if cap is not None and value(quantity) > value(cap):
                return (f"spec.runtime.resources.{kind}.{name} {quantity} is over the platform limit of {cap} per pod "
                        f"(maxPodResources.{name}, {WHERE}): lower it")
    for name, quantity in sorted(spec.sandbox.quota.items()):
        cap_total = _quota_cap(name, limits)
        if cap_total is not None and value(quantity) > cap_total:
            return (f"spec.sandbox.quota.{name} {quantity} is over what the platform limits allow a sandbox "
                    f"({cap_total.normalize():f}: maxReplicas {limits.max_replicas} with room for a canary, times "
                    f"maxPodResources; {WHERE}): lower it or omit it to have it derived")
    return None
