"""ModelDeployment dicts as the API server returns them, for the plugin's unit tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tollgate.api.invalid import parse_spec
from tollgate.engine.policy import resolve_policy

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

STEPS = [{"weight": 10, "pause": "1m"}, {"weight": 50, "approval": "required"}, {"weight": 100}]


def md(phase: str = "Progressing", *, canary: bool = True, step: int = 0, weight: int = 10,
       steps: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": 2, "resourceVersion": "41",
                     "creationTimestamp": "2026-03-01T09:00:00Z", "annotations": {}, "labels": {}},
        "spec": {
            "model": {"name": "fraud", "version": "2.0.0"},
            "runtime": {"image": "registry.example/server:1"},
            "rollout": {"steps": copy.deepcopy(steps if steps is not None else STEPS)},
            "slos": [{"name": "error-rate", "max": 0.01}, {"name": "latency-p99", "max": 0.25}],
        },
        "status": {
            "observedGeneration": 2, "phase": phase, "message": f"{phase} message",
            "stable": {"revision": "aaa111", "version": "1.0.0"},
            "lastKnownGood": {"revision": "aaa111", "version": "1.0.0"},
            "canary": {"revision": "bbb222", "version": "2.0.0"} if canary else None,
            "currentStep": step, "stepCount": 3, "canaryWeight": weight if canary else 0,
            "analysis": [
                {"name": "error-rate", "verdict": "Pass", "value": 0.0021, "baseline": 0.0019,
                 "threshold": "max 0.01, minSamples 200", "samples": 812, "failures": 0,
                 "lastCheckedAt": "2026-03-01T11:59:58Z"},
                {"name": "latency-p99", "verdict": "Pass", "value": 0.18, "baseline": 0.17, "samples": 812},
            ] if canary else [],
            "conditions": [{"type": "Ready", "status": "False", "reason": "NotReady",
                            "lastTransitionTime": "2026-03-01T11:50:00Z", "message": "rolling out"}],
            "timeline": [{"at": "2026-03-01T11:58:00Z", "reason": "StepAdvanced",
                          "message": "step 1/3: canary weight 0% -> 10%", "step": 0, "weight": 10}],
            "history": [],
            "controls": {},
        },
    }
    if canary:  # the operator records the plan the canary follows
        obj["status"]["planHash"] = resolve_policy(parse_spec(obj["spec"])).plan_hash
    obj["status"].update(status)
    return obj


ROLLED_BACK_TIMELINE = [
    {"at": "2026-03-01T11:40:00Z", "reason": "Promoted", "message": "1.0.0 is stable", "step": 2, "weight": 100},
    {"at": "2026-03-01T11:50:00Z", "reason": "CanaryStarted", "message": "canary 2.0.0", "step": 0, "weight": 0},
    {"at": "2026-03-01T11:50:01Z", "reason": "StepAdvanced", "message": "step 1/3", "step": 0, "weight": 10},
    {"at": "2026-03-01T11:51:01Z", "reason": "AnalysisPassed", "message": "step 1 passed", "step": 0, "weight": 10},
    {"at": "2026-03-01T11:52:00Z", "reason": "Approved",
     "message": "step 2/3 (50%) approved by alice@2026-03-01T11:52:00.000000Z", "step": 1, "weight": 10},
    {"at": "2026-03-01T11:52:00Z", "reason": "StepAdvanced", "message": "step 2/3", "step": 1, "weight": 50},
    {"at": "2026-03-01T11:53:00Z", "reason": "RolledBack", "message": "error-rate 0.12 > max 0.01", "step": 1,
     "weight": 0},
]


def rolled_back() -> dict[str, Any]:
    """A rollout of 2.0.0 that passed step 1, was approved at step 2 by alice and rolled back there."""
    return md("RolledBack", canary=False, lastIncident="fraud-incident-1", rolledBackRevision="bbb222",
              timeline=ROLLED_BACK_TIMELINE, conditions=[
                  {"type": "Ready", "status": "True", "reason": "RolledBack"}],
              history=[{"at": "2026-03-01T11:53:00Z", "version": "2.0.0", "revision": "bbb222", "result": "RolledBack",
                        "reason": "AnalysisFailed", "incident": "fraud-incident-1"}])
