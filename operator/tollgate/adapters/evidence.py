"""Evidence store: one ConfigMap per rollback or abort, in the ModelDeployment's namespace.

Why a ConfigMap next to the ModelDeployment: the people who own the model can read it with the same
rights they use for the ModelDeployment (`kubectl get cm NAME -o yaml`, `kubectl tollgate evidence`),
it survives operator restarts, and the owner reference lets the garbage collector remove it with the
ModelDeployment. Old records are pruned past a bound so a flapping model cannot fill etcd.

Reads: none. The operator has no right to read ConfigMaps (the chart grants create, patch and delete
only, and its admission policy limits those to records labelled tollgate.dev/evidence). Pruning needs
no listing: the records a ModelDeployment still points to are the incidents in its status history
(bounded); a record whose incident left the history is deleted by name.

Size: a record is at most RECORD_MAX_BYTES, far below a ConfigMap's 1 MiB. A larger payload is cut
(each long query text, then the timeline from its oldest end, then the observations) and the record says
what was cut under "truncated".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tollgate.adapters.kube import Kube
from tollgate.api import resource
from tollgate.engine.actions import ObjectRef
from tollgate.engine.naming import fit

EVIDENCE_LABEL = "tollgate.dev/evidence"
EVIDENCE_KEY = "evidence.json"
DEFAULT_KEEP = 10
RECORD_MAX_BYTES = 256 * 1024
QUERY_MAX_CHARS = 2048


def _size(payload: Mapping[str, Any]) -> int:
    return len(json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def bounded_payload(payload: Mapping[str, Any], limit: int = RECORD_MAX_BYTES) -> dict[str, Any]:
    """`payload` cut to at most `limit` bytes of JSON, with what was cut recorded under "truncated"."""
    out: dict[str, Any] = json.loads(json.dumps(payload, default=str))
    if _size(out) <= limit:
        return out
    cut: dict[str, Any] = {"limitBytes": limit, "originalBytes": _size(out)}
    out["truncated"] = cut
    for obs in out.get("observations") or []:  # query texts first: the values and verdicts stay
        if isinstance(obs, dict) and isinstance(obs.get("query"), str) and len(obs["query"]) > QUERY_MAX_CHARS:
            obs["query"] = obs["query"][:QUERY_MAX_CHARS] + "\u2026"
            cut["queriesCutTo"] = QUERY_MAX_CHARS
    timeline = list(out.get("timeline") or [])
    dropped = 0
    excess = _size(out) - limit
    # Oldest first, by each entry's own size (one measure each, not the whole record per entry) ...
    while timeline and excess > 0:
        excess -= _size(timeline.pop(0))
        dropped += 1
    out["timeline"] = timeline
    while timeline and _size(out) > limit:  # ... then exactly, for the indentation the estimate missed
        timeline.pop(0)
        dropped += 1
    if dropped:
        cut["timelineEntriesDropped"] = dropped
    if _size(out) > limit and out.get("observations"):
        cut["observationsDropped"] = len(out["observations"])
        out["observations"] = None
    if _size(out) > limit:  # still too large: keep the verdict, drop the detail
        out = {k: out[k] for k in ("incident", "modelDeployment", "result", "reason", "at", "canary", "stable",
                                   "step", "weight") if k in out}
        out["truncated"] = {**cut, "detailDropped": True}
        out["message"] = str(payload.get("message", ""))[:4096]
    return out


def evidence_configmap(
    name: str, namespace: str, owner: Mapping[str, Any], payload: Mapping[str, Any]
) -> dict[str, Any]:
    md_name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE,
                resource.LABEL_MD_NAME: fit(md_name),
                EVIDENCE_LABEL: "true",
            },
            "ownerReferences": [{
                "apiVersion": resource.API_VERSION, "kind": resource.KIND, "name": md_name,
                "uid": owner["metadata"]["uid"], "controller": False, "blockOwnerDeletion": False,
            }],
        },
        "data": {EVIDENCE_KEY: json.dumps(payload, indent=2, sort_keys=True, default=str)},
    }


class EvidenceStore:
    def __init__(self, kube: Kube, keep: int = DEFAULT_KEEP):
        self._kube = kube
        self.keep = keep

    def record(self, name: str, owner: Mapping[str, Any], payload: Mapping[str, Any],
               dropped: Iterable[str] = ()) -> None:
        """Write the record `name`, then delete the records in `dropped` (incidents that left the
        ModelDeployment's bounded history), never `name` itself."""
        namespace = owner["metadata"]["namespace"]
        self._kube.apply(evidence_configmap(name, namespace, owner, bounded_payload(payload)), read_first=False)
        self.prune(namespace, (d for d in dropped if d != name))

    def create(self, name: str, owner: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
        """Write the record `name` only if no record of that name exists (POST; the name taken is the
        answer, not an error). How a record rebuilt after a restart avoids overwriting the original
        without reading it. True if it was written."""
        namespace = owner["metadata"]["namespace"]
        return self._kube.create(evidence_configmap(name, namespace, owner, bounded_payload(payload))) is not None

    def prune(self, namespace: str, names: Iterable[str]) -> list[str]:
        """Delete these records by name (no listing: the operator cannot read ConfigMaps)."""
        deleted = []
        for name in sorted(set(names)):
            if self._kube.delete(ObjectRef("v1", "ConfigMap", name, namespace)):
                deleted.append(name)
        return deleted
