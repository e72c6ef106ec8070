"""Evidence rebuilt from status: what an operator that died between the rollback's status write and its
evidence write records on resume."""

from __future__ import annotations

from tollgate.engine.actions import RecordEvidence
from tollgate.engine.evidence import evidence_from_status
from tollgate.engine.policy import resolve_policy

from .conftest import BAD, CTX, Sim
from .test_rollout import start_canary


def test_the_evidence_rebuilt_from_status_names_the_same_incident_verdicts_and_reason(sim: Sim) -> None:
    # given a canary rolled back on failing analysis (the decision's own evidence is the reference)
    start_canary(sim)
    sim.tick(BAD)
    decision = sim.tick(BAD)
    recorded = decision.of_type(RecordEvidence)[0]
    # when the evidence is rebuilt from the status that decision wrote
    rebuilt = evidence_from_status(CTX, decision.status, resolve_policy(sim.spec))
    # then it is the same record, short of the raw query results, and it says so
    assert rebuilt is not None
    for key in ("incident", "result", "reason", "message", "at", "slos", "limits", "stable", "timeline", "step"):
        assert rebuilt[key] == recorded.payload[key], key
    assert rebuilt["canary"]["revision"] == recorded.payload["canary"]["revision"]
    assert rebuilt["observations"] is None and "rebuilt from status" in rebuilt["reconstructed"]


def test_no_rollback_in_status_means_no_evidence(sim: Sim) -> None:
    start_canary(sim)
    assert evidence_from_status(CTX, sim.status, resolve_policy(sim.spec)) is None
