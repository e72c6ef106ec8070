"""spec.scheduling rendered into a track's pod spec (pure): the same placement for every track.

Kubernetes' long field names come back here (requiredDuringSchedulingIgnoredDuringExecution); pod
(anti-)affinity terms without a labelSelector select every pod of this ModelDeployment, and a topology
spread counts the pods of its own track, so a 1-pod canary is not held to the stable track's spread.
"""

from __future__ import annotations

from typing import Any

from tollgate.api.scheduling import (
    NodeSelectorTerm,
    PodAffinity,
    PodAffinityTerm,
    PodLabelSelector,
    Scheduling,
    SelectorRequirement,
)
from tollgate.engine.actions import Context
from tollgate.engine.labels import selector_labels

Manifest = dict[str, Any]


def _requirement(r: SelectorRequirement) -> Manifest:
    out: Manifest = {"key": r.key, "operator": r.operator.value}
    if r.values:
        out["values"] = list(r.values)
    return out


def _node_term(term: NodeSelectorTerm) -> Manifest:
    return {"matchExpressions": [_requirement(r) for r in term.matchExpressions]}


def _selector(selector: PodLabelSelector | None, ctx: Context) -> Manifest:
    if selector is None:
        return {"matchLabels": selector_labels(ctx)}
    out: Manifest = {}
    if selector.matchLabels:
        out["matchLabels"] = dict(selector.matchLabels)
    if selector.matchExpressions:
        out["matchExpressions"] = [_requirement(r) for r in selector.matchExpressions]
    return out


def _pod_term(term: PodAffinityTerm, ctx: Context) -> Manifest:
    return {"topologyKey": term.topologyKey, "labelSelector": _selector(term.labelSelector, ctx)}


def _pod_affinity(affinity: PodAffinity, ctx: Context) -> Manifest:
    out: Manifest = {}
    if affinity.required:
        out["requiredDuringSchedulingIgnoredDuringExecution"] = [_pod_term(t, ctx) for t in affinity.required]
    if affinity.preferred:
        out["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": p.weight, "podAffinityTerm": _pod_term(p.term, ctx)} for p in affinity.preferred]
    return out


def _affinity(scheduling: Scheduling, ctx: Context) -> Manifest:
    affinity = scheduling.affinity
    out: Manifest = {}
    if affinity is None:
        return out
    node = affinity.nodeAffinity
    if node is not None:
        rendered: Manifest = {}
        if node.required:
            rendered["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [_node_term(t) for t in node.required]}
        if node.preferred:
            rendered["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": p.weight, "preference": _node_term(p.preference)} for p in node.preferred]
        if rendered:
            out["nodeAffinity"] = rendered
    for name, pod in (("podAffinity", affinity.podAffinity), ("podAntiAffinity", affinity.podAntiAffinity)):
        if pod is not None and (pod.required or pod.preferred):
            out[name] = _pod_affinity(pod, ctx)
    return out


def pod_placement(scheduling: Scheduling, ctx: Context, track: str) -> Manifest:
    """The pod-spec fields for spec.scheduling (empty when nothing is set)."""
    out: Manifest = {}
    if scheduling.nodeSelector:
        out["nodeSelector"] = dict(scheduling.nodeSelector)
    if scheduling.tolerations:
        tolerations = []
        for t in scheduling.tolerations:
            entry: Manifest = {"operator": t.operator.value}
            if t.key:
                entry["key"] = t.key
            if t.value:
                entry["value"] = t.value
            if t.effect is not None:
                entry["effect"] = t.effect.value
            if t.tolerationSeconds is not None:
                entry["tolerationSeconds"] = t.tolerationSeconds
            tolerations.append(entry)
        out["tolerations"] = tolerations
    affinity = _affinity(scheduling, ctx)
    if affinity:
        out["affinity"] = affinity
    if scheduling.topologySpreadConstraints:
        spread = []
        for c in scheduling.topologySpreadConstraints:
            entry = {"maxSkew": c.maxSkew, "topologyKey": c.topologyKey,
                     "whenUnsatisfiable": c.whenUnsatisfiable,
                     "labelSelector": {"matchLabels": selector_labels(ctx, track)}}
            if c.minDomains is not None:
                entry["minDomains"] = c.minDomains
            spread.append(entry)
        out["topologySpreadConstraints"] = spread
    if scheduling.priorityClassName:
        out["priorityClassName"] = scheduling.priorityClassName
    return out
