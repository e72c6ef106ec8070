"""tollgate.engine: the pure, deterministic decision core (no I/O, no clock reads).

Entry point: `decide(spec, status, observations, now, ctx) -> Decision`, or `Case.of(spec, status,
ctx)` then `.analysis_request(now)` and `.decide(observations, now)` (rollout.py: the order of the
rules). The rules, one concern per module: rules/ (kill switch, revisions, steps and gates, promotion,
readiness deadlines, rollback, finish). Their working state: draft.py. Pure parts they use:
actions.py (Decision, Wake, Context, actions), wakes.py (deadlines and the analysis grid),
analysis.py (verdicts), policy.py (risk-tier resolution), revision.py (revision hashes), routing.py
(weights to replicas), conditions.py (kstatus conditions), sandbox.py and workloads.py (desired
objects), evidence.py (rollback records), observations.py (what the runtime saw and is asked to measure).
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
from tollgate.engine.rollout import Case, decide

__all__ = [
    "Action",
    "ApplyObjects",
    "Case",
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
    "decide",
]
