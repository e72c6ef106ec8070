"""tollgate.engine: the pure, deterministic decision core (no I/O, no clock reads).

Entry point: `decide(spec, status, observations, now, ctx) -> Decision` (rollout.py). Its parts:
actions.py (Decision, Context, actions), analysis.py (verdicts), policy.py (risk-tier resolution),
revision.py (revision hashes), routing.py (weights to replicas), conditions.py (kstatus conditions),
sandbox.py and workloads.py (desired objects), evidence.py (rollback records).
"""

from tollgate.engine.actions import (
    Action,
    ApplyObjects,
    Context,
    Decision,
    DeleteObjects,
    EmitEvent,
    EventType,
    ObjectRef,
    Promote,
    Reason,
    RecordEvidence,
    RollBack,
    SetWeight,
)
from tollgate.engine.rollout import analysis_due, decide, next_analysis_at

__all__ = [
    "Action",
    "ApplyObjects",
    "Context",
    "Decision",
    "DeleteObjects",
    "EmitEvent",
    "EventType",
    "ObjectRef",
    "Promote",
    "Reason",
    "RecordEvidence",
    "RollBack",
    "SetWeight",
    "analysis_due",
    "decide",
    "next_analysis_at",
]
