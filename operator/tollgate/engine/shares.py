"""Honest traffic shares: what share of requests each step really gives the canary (pure).

The replicas router splits traffic by the ratio of Ready pods behind one Service, so a step's weight is
only as exact as the replica count allows (engine.routing.replica_split rounds the canary *up* to whole
pods): at 2 replicas the "10%" step runs 1 canary pod beside 1 stable pod, i.e. 50% of the requests; at
6 replicas "1%" is 16.7%. Nothing may hide that. So:

- `planned` gives, per step, the share the router will produce at the current replica count;
- `beyond` picks the steps whose share misses their weight by more than the tolerance (percentage
  points; spec.traffic.shareTolerance, default DEFAULT_TOLERANCE);
- `replicas_for` finds the smallest replica count that gives every step within the tolerance, for the
  fix the user is told;
- `measured` is the share the canary really gets now, from the Ready pods the runtime observed.

The gatewayAPI router carries exact weights in the HTTPRoute, so every step is met exactly there.
With spec.autoscaling the replica count is the stable track's current size (the autoscaler's), so the
shares are planned afresh whenever it changes (`cap` below; engine.routing.autoscaled_split).
The last step (100) is always exact: the canary takes all the pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tollgate.api.spec import RouterKind
from tollgate.engine.routing import autoscaled_split, effective_weight, replica_split, split

DEFAULT_TOLERANCE = 5
"""Percentage points a step's real share may miss its weight by before it is reported (the operator's
default when spec.traffic.shareTolerance is not set; then it warns, never refuses)."""
MAX_REPLICAS = 1000
"""spec.replicas' upper bound: the search for a fitting replica count stops there."""
MAX_NAMED = 3
"""Steps named in the problem message (status and Events stay small)."""


@dataclass(frozen=True)
class StepShare:
    """The share one step gives the canary at a replica count."""

    index: int
    """0-based step index."""
    weight: int
    """Percent asked for."""
    share: float
    """Percent the router gives."""
    canary_pods: int
    stable_pods: int

    @property
    def deviation(self) -> float:
        """How far the share misses the weight, in percentage points."""
        return abs(self.share - self.weight)

    def describe(self, steps: int) -> str:
        """E.g. "step 1/3 asks 10% but gets 50.0% (1 canary of 2 pods)"."""
        pods = self.canary_pods + self.stable_pods
        return (f"step {self.index + 1}/{steps} asks {self.weight}% but gets {self.share:.1f}% "
                f"({self.canary_pods} canary of {pods} pods)")


def planned(router: RouterKind, replicas: int, weights: Sequence[int], *,
            cap: int | None = None) -> tuple[StepShare, ...]:
    """Per step, the share the router produces with `replicas` stable replicas. `cap`: the stable track is
    autoscaled (`replicas` is its current size, the canary is sized from it, at most `cap` pods;
    engine.routing.autoscaled_split)."""
    out = []
    for index, weight in enumerate(weights):
        traffic = split(router, replicas, weight) if cap is None else autoscaled_split(router, replicas, weight, cap)
        out.append(StepShare(index, weight, traffic.effective_canary_percent, traffic.canary_replicas,
                             0 if router is RouterKind.GATEWAY_API else traffic.stable_serving))
    return tuple(out)


def beyond(shares: Sequence[StepShare], tolerance: int) -> tuple[StepShare, ...]:
    """The steps whose share misses the weight by more than `tolerance` percentage points."""
    return tuple(s for s in shares if s.deviation > tolerance + 1e-9)


def replicas_for(router: RouterKind, weights: Sequence[int], tolerance: int) -> int | None:
    """The smallest replica count (up to MAX_REPLICAS) at which every step is within the tolerance."""
    if router is RouterKind.GATEWAY_API:
        return 1
    for replicas in range(1, MAX_REPLICAS + 1):
        if all(_within(replicas, w, tolerance) for w in weights):  # stops at the first step that misses
            return replicas
    return None


def _within(replicas: int, weight: int, tolerance: int) -> bool:
    stable, canary = replica_split(replicas, weight)
    return abs(effective_weight(stable, canary) - weight) <= tolerance + 1e-9


def _autoscaled_fit(weights: Sequence[int], tolerance: int, cap: int) -> int | None:
    """The smallest stable size (up to `cap`) at which every step is within the tolerance, autoscaled."""
    for stable in range(1, cap + 1):
        if not beyond(planned(RouterKind.REPLICAS, stable, weights, cap=cap), tolerance):
            return stable
    return None


def problem(router: RouterKind, replicas: int, weights: Sequence[int], tolerance: int, *,
            cap: int | None = None) -> str | None:
    """Why the step plan's shares cannot be met within the tolerance, with the fix; None when they can.
    `cap`: autoscaled (planned's)."""
    missed = beyond(planned(router, replicas, weights, cap=cap), tolerance)
    if not missed:
        return None
    named = "; ".join(s.describe(len(weights)) for s in missed[:MAX_NAMED])
    if len(missed) > MAX_NAMED:
        named += f"; and {len(missed) - MAX_NAMED} more steps"
    if cap is not None:
        fit = _autoscaled_fit(weights, tolerance, cap)
        fixes = [f"set spec.autoscaling.minReplicas to {fit} or more" if fit is not None else
                 f"no stable size up to maxReplicas {cap} gives them"]
        fixes.append("use spec.traffic.router: gatewayAPI (exact weights)")
        fixes.append("choose step weights these replicas can give, or raise spec.traffic.shareTolerance")
        return (f"with the stable track autoscaled to {replicas} pods the replicas router cannot give {named}"
                + f" (tolerance {tolerance} percentage points): " + ", ".join(fixes))
    fit = replicas_for(router, weights, tolerance)
    fixes = [f"set spec.replicas to {fit} or more" if fit is not None else
             "no replica count up to 1000 gives them"]
    fixes.append("use spec.traffic.router: gatewayAPI (exact weights)")
    fixes.append("choose step weights these replicas can give, or raise spec.traffic.shareTolerance")
    return (f"with spec.replicas {replicas} the replicas router cannot give {named}"
            + f" (tolerance {tolerance} percentage points): " + ", ".join(fixes))


def measured(router: RouterKind, weight: int, stable_ready: int, canary_ready: int, *,
             canary_alone: bool = False) -> float | None:
    """The share the canary really gets now: the route weight (gatewayAPI), or Ready canary pods over all
    Ready pods behind the Service (replicas router; at weight 0 the Service selects stable only; with
    `canary_alone`, the canary only). None when no pod is Ready."""
    if router is RouterKind.GATEWAY_API or weight <= 0:
        return float(max(0, min(weight, 100)))
    if canary_alone:
        return 100.0 if canary_ready > 0 else None
    total = stable_ready + canary_ready
    if total == 0:
        return None
    return round(effective_weight(stable_ready, canary_ready), 1)
