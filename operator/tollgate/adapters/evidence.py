"""Evidence store: one ConfigMap per rollback or abort, in the ModelDeployment's namespace.

Why a ConfigMap next to the ModelDeployment: the people who own the model can read it with the same
rights they use for the ModelDeployment (`kubectl get cm NAME -o yaml`, `kubectl tollgate evidence`),
it survives operator restarts, and the owner reference lets the garbage collector remove it with the
ModelDeployment. Old records are pruned past a bound so a flapping model cannot fill etcd.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tollgate.adapters.kube import Kube
from tollgate.api import resource
from tollgate.engine.actions import ObjectRef
from tollgate.engine.naming import fit

EVIDENCE_LABEL = "tollgate.dev/evidence"
EVIDENCE_KEY = "evidence.json"
DEFAULT_KEEP = 10


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

    def record(self, name: str, owner: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        namespace = owner["metadata"]["namespace"]
        self._kube.apply(evidence_configmap(name, namespace, owner, payload))
        self.prune(namespace, owner["metadata"]["name"], keep_name=name)

    def prune(self, namespace: str, md_name: str, keep_name: str | None = None) -> list[str]:
        """Delete the oldest records beyond `keep` for one ModelDeployment; returns what was deleted."""
        probe = ObjectRef("v1", "ConfigMap", "x", namespace)
        items = self._kube.list(probe, f"{EVIDENCE_LABEL}=true,{resource.LABEL_MD_NAME}={fit(md_name)}")
        items.sort(key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"]["name"]))
        excess = len(items) - self.keep
        deleted = []
        for item in items:
            if excess <= 0:
                break
            name = item["metadata"]["name"]
            if name == keep_name:
                continue
            self._kube.delete(ObjectRef("v1", "ConfigMap", name, namespace))
            deleted.append(name)
            excess -= 1
        return deleted
