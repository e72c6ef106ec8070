"""Autoscaled stable tracks (spec.autoscaling): the sizes Tollgate plans from, and the HPA it creates (pure).

With spec.autoscaling an autoscaler owns the stable track's replica count. Tollgate then:
- renders the stable Deployment without spec.replicas (server-side apply: a field absent from Tollgate's
  applied configuration is not Tollgate's, so the HPA's writes through the scale subresource stand and
  Tollgate's applies never reset them) and marks it with ANNOTATION_AUTOSCALED, so the drift check does
  not take the autoscaler's changes of replicas for someone else's edit (adapters.kube.live_fingerprint);
- plans from the stable track's current size as the Deployment watch reports it (its spec.replicas, the
  autoscaler's latest decision), clamped to [minReplicas, maxReplicas]: the canary's count follows the
  step weight as a ratio of it (engine.routing.autoscaled_split), the fallback runs as many;
- with scaler hpa, applies one HorizontalPodAutoscaler (autoscaling/v2) for the stable track, named like
  it; with scaler external, none (KEDA or the platform's own HPA owns the track).
"""

from __future__ import annotations

from typing import Any

from tollgate.api.autoscaling import DEFAULT_CPU_UTILIZATION, MetricSelector, MetricTarget
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.labels import owner_labels
from tollgate.engine.naming import fit
from tollgate.engine.observations import TrackObservation
from tollgate.engine.routing import TrafficSplit, autoscaled_split, split
from tollgate.engine.sandbox import sandbox_namespace

Manifest = dict[str, Any]
HPA_API = "autoscaling/v2"
ANNOTATION_AUTOSCALED = "tollgate.dev/autoscaled"
"""On a Deployment whose replicas an autoscaler owns ("true"): its replicas are not Tollgate's."""


def stable_size(spec: ModelDeploymentSpec, stable: TrackObservation) -> int:
    """Pods the stable track runs now: spec.replicas, or (autoscaled) the observed Deployment's replicas within
    [minReplicas, maxReplicas] (minReplicas while no Deployment was observed)."""
    scaling = spec.autoscaling
    if scaling is None:
        return spec.replicas
    current = stable.desired if stable.revision is not None else scaling.minReplicas
    return max(scaling.minReplicas, min(scaling.maxReplicas, current))


def canary_cap(spec: ModelDeploymentSpec) -> int:
    """Most pods a canary may get: maxReplicas when autoscaled (the quota's room), else spec.replicas."""
    return spec.autoscaling.maxReplicas if spec.autoscaling is not None else spec.replicas


def split_for(spec: ModelDeploymentSpec, stable: int, weight: int) -> TrafficSplit:
    """The tracks' sizes for `weight`: engine.routing.split over spec.replicas, or (autoscaled) the canary sized
    from the stable track's current size `stable`."""
    if spec.autoscaling is None:
        return split(spec.traffic.router, spec.replicas, weight)
    return autoscaled_split(spec.traffic.router, stable, weight, canary_cap(spec))


def canary_pods(spec: ModelDeploymentSpec, stable: int, weight: int) -> int:
    """Canary pods a step of `weight` needs Ready."""
    return split_for(spec, stable, weight).canary_replicas


def hpa_name(ctx: Context) -> str:
    return fit(f"{ctx.name}-stable")


def hpa_ref(ctx: Context, namespace: str) -> ObjectRef:
    return ObjectRef(HPA_API, "HorizontalPodAutoscaler", hpa_name(ctx), namespace)


def _selector(selector: MetricSelector | None) -> Manifest:
    return {"selector": {"matchLabels": dict(selector.matchLabels)}} if selector and selector.matchLabels else {}


def _metric(target: MetricTarget) -> Manifest:
    """One autoscaling/v2 MetricSpec from Tollgate's flattened form."""
    if target.resource is not None:
        r = target.resource
        goal: Manifest = ({"type": "Utilization", "averageUtilization": r.averageUtilization}
                          if r.averageUtilization is not None
                          else {"type": "AverageValue", "averageValue": r.averageValue})
        return {"type": "Resource", "resource": {"name": r.name.value, "target": goal}}
    if target.pods is not None:
        p = target.pods
        return {"type": "Pods", "pods": {"metric": {"name": p.name, **_selector(p.selector)},
                                         "target": {"type": "AverageValue", "averageValue": p.averageValue}}}
    e = target.external
    if e is None:  # CEL admits exactly one source; the engine must not act on one that got through
        raise ValueError("spec.autoscaling.metrics[] names no source")
    goal = ({"type": "Value", "value": e.value} if e.value is not None
            else {"type": "AverageValue", "averageValue": e.averageValue})
    return {"type": "External", "external": {"metric": {"name": e.name, **_selector(e.selector)}, "target": goal}}


def hpa(spec: ModelDeploymentSpec, ctx: Context, deployment: str) -> Manifest | None:
    """The HPA of the stable track (scaler hpa), None otherwise."""
    scaling = spec.autoscaling
    if scaling is None or not scaling.hpa:
        return None
    metrics = [_metric(m) for m in scaling.metrics] or [
        {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    return {
        "apiVersion": HPA_API,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name(ctx), "namespace": sandbox_namespace(spec, ctx),
                     "labels": owner_labels(ctx, spec.model.name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": max(1, scaling.minReplicas),
            "maxReplicas": scaling.maxReplicas,
            "metrics": metrics,
        },
    }
