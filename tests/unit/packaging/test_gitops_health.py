"""Argo CD health.lua, kstatus and the Flux CEL example agree on status fixtures shaped like the operator's."""

from __future__ import annotations

from typing import Any

import pytest

from unit.packaging.gitops import argocd_health, flux_health, kstatus


def md(phase: str | None, *, generation: int = 2, observed: int = 2, paused: bool = False,
       message: str = "", **conds: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
                           "metadata": {"name": "m", "namespace": "ns", "generation": generation},
                           "spec": {"paused": paused}}
    if phase is not None:
        obj["status"] = {"phase": phase, "message": message, "observedGeneration": observed,
                         "conditions": [{"type": t, "status": s, "reason": phase} for t, s in conds.items()]}
    return obj


CASES = [
    # (fixture, Argo CD, kstatus, Flux)
    # no status at all (only a CRD without the root status default): kstatus calls it Current
    (md(None), "Progressing", "Current", "InProgress"),
    # created and never reconciled: the CRD's status default is served (observedGeneration 0)
    (md("Pending", generation=1, observed=0), "Progressing", "InProgress", "InProgress"),
    (md("Stable", generation=3, observed=2, Ready="True"), "Progressing", "InProgress", "InProgress"),
    (md("Pending", Ready="False", Reconciling="True"), "Progressing", "InProgress", "InProgress"),
    (md("Stable", Ready="True", SandboxReady="True"), "Healthy", "Current", "Current"),
    (md("Succeeded", Ready="True"), "Healthy", "Current", "Current"),
    (md("Baking", Ready="True"), "Healthy", "Current", "Current"),
    (md("Progressing", message="canary at 25%", Ready="False", Reconciling="True", Progressing="True"),
     "Progressing", "InProgress", "InProgress"),
    (md("AwaitingApproval", message="step 3 awaits approval", Ready="False", Reconciling="True",
        AwaitingApproval="True"), "Suspended", "InProgress", "InProgress"),
    (md("Paused", paused=True, Ready="False", Reconciling="True"), "Suspended", "InProgress", "InProgress"),
    (md("Fallback", Ready="True"), "Suspended", "Current", "Current"),
    (md("RollingBack", message="error-rate failed", Ready="False", Stalled="True", RolledBack="True"),
     "Degraded", "Failed", "Failed"),
    (md("RolledBack", message="error-rate failed", Ready="False", Stalled="True", RolledBack="True"),
     "Degraded", "Failed", "Failed"),
    (md("Stalled", message="spec.rollout.steps: weights must increase", Ready="False", Stalled="True"),
     "Degraded", "Failed", "Failed"),
]


@pytest.mark.parametrize(("obj", "argo", "kstat", "flux"), CASES,
                         ids=[f"{c[0].get('status', {}).get('phase', 'no-status')}-{i}" for i, c in enumerate(CASES)])
def test_each_tool_judges_the_status_as_documented(obj: dict[str, Any], argo: str, kstat: str, flux: str) -> None:
    # given a ModelDeployment status, when each GitOps tool's rules judge it
    status, message = argocd_health(obj)
    # then Argo CD, kstatus and Flux's CEL say what docs/operations.md promises
    assert (status, kstatus(obj), flux_health(obj)) == (argo, kstat, flux)
    assert message  # Argo CD always shows why


def test_argocd_message_is_the_operators_message() -> None:
    # given a rollout the operator describes, then Argo CD shows the operator's own words
    obj = md("AwaitingApproval", message="step 3 (50%) awaits tollgate.dev/approve", AwaitingApproval="True",
             Reconciling="True")
    assert argocd_health(obj) == ("Suspended", "step 3 (50%) awaits tollgate.dev/approve")
