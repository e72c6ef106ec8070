"""How a canary weight becomes replica counts and route weights.

replicas router (any cluster, no mesh): one Service selects the pods of both tracks, so the traffic
share is the share of Ready pods. For a weight w (percent) and `replicas` pods:

    canary = ceil(replicas * w / 100), at least 1 when w > 0, 0 when w == 0
    stable = replicas - canary, but at least 1 while w < 100 (0 at w == 100)

so a small weight on few replicas rounds *up* to one canary pod (replicas=4, w=5: 1 canary, 3 stable,
an effective 25%), and a single replica surges to 1 + 1 pods rather than leaving stable with none.
`effective_weight` gives the share the pods really produce. At w == 0 the Service selects the stable
track only, so pre-warmed canary pods take no traffic until the first step is set.

gatewayAPI router: the HTTPRoute carries the exact weight (canary w, stable 100 - w). The canary is
sized like above (ceil, at least 1), the stable track keeps all its replicas, so rolling back never
waits for stable pods to start.

Autoscaled (spec.autoscaling, `autoscaled_split`): the stable track's size S is the autoscaler's, so
Tollgate never shrinks it; the canary is sized from S instead. replicas router: canary =
ceil(S * w / (100 - w)) (so canary / (S + canary) comes as close to w as whole pods allow, rounded up),
at least 1, at most the cap (maxReplicas); at w == 100 the Service selects the canary track alone and
the canary runs S pods. gatewayAPI: canary = ceil(S * w / 100), at least 1 (its share of the load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tollgate.api.spec import RouterKind


@dataclass(frozen=True)
class TrafficSplit:
    """Replica counts and the route weight for one canary weight."""

    router: RouterKind
    canary_weight: int
    """Percent of traffic asked for the canary."""
    stable_replicas: int
    canary_replicas: int
    canary_alone: bool = False
    """The router sends every request to the canary (autoscaled replicas router at 100: the Service selects
    the canary track, the autoscaled stable pods stay up but take none)."""

    @property
    def effective_canary_percent(self) -> float:
        """The share of traffic the canary really gets (exact for gatewayAPI, pod ratio for replicas)."""
        if self.router is RouterKind.GATEWAY_API:
            return float(self.canary_weight)
        if self.canary_alone:
            return 100.0
        return effective_weight(self.stable_replicas, self.canary_replicas)

    @property
    def stable_serving(self) -> int:
        """Stable pods that take requests behind the replicas router's Service."""
        return 0 if self.canary_alone else self.stable_replicas


def canary_replicas(replicas: int, weight: int) -> int:
    """Canary pods for a weight: ceil(replicas * weight / 100), at least 1 when weight > 0."""
    if weight <= 0:
        return 0
    return max(1, math.ceil(replicas * min(weight, 100) / 100))


def replica_split(replicas: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods of the replicas router for a weight; see the module docstring."""
    canary = canary_replicas(replicas, weight)
    if weight >= 100:
        return 0, canary
    return max(1, replicas - canary), canary


def effective_weight(stable_replicas: int, canary_replicas: int) -> float:
    """Percent of traffic the canary gets when a Service spreads it evenly over Ready pods."""
    total = stable_replicas + canary_replicas
    return 0.0 if total == 0 else 100.0 * canary_replicas / total


def split(router: RouterKind, replicas: int, weight: int) -> TrafficSplit:
    """The replica counts and route weight a router uses for `weight` percent on the canary."""
    weight = max(0, min(weight, 100))
    if router is RouterKind.GATEWAY_API:
        return TrafficSplit(router, weight, replicas, canary_replicas(replicas, weight))
    stable, canary = replica_split(replicas, weight)
    return TrafficSplit(router, weight, stable, canary)


def autoscaled_split(router: RouterKind, stable: int, weight: int, cap: int) -> TrafficSplit:
    """The split when an autoscaler owns the stable track: stable keeps its current size `stable`, the canary
    is sized from it (module docstring), at most `cap` pods."""
    weight = max(0, min(weight, 100))
    stable = max(0, stable)
    if weight == 0:
        return TrafficSplit(router, 0, stable, 0)
    if router is RouterKind.GATEWAY_API:
        return TrafficSplit(router, weight, stable, min(cap, canary_replicas(stable, weight)))
    if weight >= 100:
        return TrafficSplit(router, weight, stable, min(cap, max(1, stable)), canary_alone=True)
    canary = max(1, -(-stable * weight // (100 - weight)))  # integer ceil
    return TrafficSplit(router, weight, stable, max(1, min(cap, canary)))
