"""How GitOps tools judge a ModelDeployment: Argo CD's health.lua (run with lupa), kstatus, Flux CEL.

Shared by the unit tests (fixtures) and the integration tests (statuses of the real operator).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
HEALTH_LUA = REPO / "deploy" / "gitops" / "argocd-health.lua"
FLUX_KUSTOMIZATION = REPO / "deploy" / "gitops" / "flux-kustomization.yaml"


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the health script as Argo CD does: a global `obj`, a table `hs` returned."""
    import lupa

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH_LUA.read_text())
    return str(hs["status"]), str(hs["message"])


def kstatus(obj: dict[str, Any]) -> str:
    """The kstatus rules for a generic resource (sigs.k8s.io/cli-utils/pkg/kstatus/status)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if conds.get("Reconciling") == "True":
        return "InProgress"
    if conds.get("Stalled") == "True":
        return "Failed"
    if conds.get("Ready") == "False":
        return "InProgress"
    return "Current"


@cache
def _flux_programs() -> dict[str, Any]:
    import celpy

    doc = yaml.safe_load(FLUX_KUSTOMIZATION.read_text())
    (check,) = [c for c in doc["spec"]["healthCheckExprs"] if c["kind"] == "ModelDeployment"]
    env = celpy.Environment()
    return {k: env.program(env.compile(check[k])) for k in ("inProgress", "failed", "current")}


def flux_health(obj: dict[str, Any]) -> str:
    """Flux's healthCheckExprs, evaluated in Flux's order: inProgress, failed, current, else Unknown."""
    import celpy

    if "status" not in obj:
        return "InProgress"  # Flux waits for a status before it evaluates the expressions
    act = {k: celpy.json_to_cel(obj.get(k) or {}) for k in ("metadata", "spec", "status")}
    for key, verdict in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if bool(_flux_programs()[key].evaluate(act)):
            return verdict
    return "Unknown"
