"""Which decisions are written to status before their first action."""

from __future__ import annotations

from datetime import UTC, datetime

from tollgate.api.spec import RouterKind
from tollgate.api.status import ModelDeploymentStatus, RevisionRef
from tollgate.engine.actions import ApplyObjects, Decision, RollBack, SetWeight
from tollgate.runtime.intent import leaves_canary

CANARY = RevisionRef(revision="abc", version="1.1.0")
AT_25 = ModelDeploymentStatus(canary=CANARY, canaryWeight=25)


def _decision(status: ModelDeploymentStatus, *actions: object) -> Decision:
    return Decision(status=status, actions=tuple(actions), at=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]


def _weight(w: int, fallback: bool = False) -> SetWeight:
    return SetWeight(RouterKind.REPLICAS, w, 4 - w // 25, w // 25, fallback)


def test_a_rollback_an_abort_and_any_weight_decrease_go_to_status_first() -> None:
    rolled = ModelDeploymentStatus(canary=None, canaryWeight=0, rolledBackRevision="abc")
    assert leaves_canary(AT_25, _decision(rolled, _weight(0), RollBack("abc", "1.1.0", None, "why", "inc")))
    assert leaves_canary(AT_25, _decision(AT_25.model_copy(update={"canaryWeight": 0}), _weight(0)))
    assert leaves_canary(AT_25, _decision(AT_25, _weight(25, fallback=True)))


def test_a_canary_removed_or_replaced_goes_to_status_first() -> None:
    assert leaves_canary(AT_25, _decision(ModelDeploymentStatus(canary=None)))
    other = RevisionRef(revision="def", version="1.2.0")
    assert leaves_canary(AT_25, _decision(ModelDeploymentStatus(canary=other)))


def test_raising_the_weight_or_holding_it_writes_status_after_the_objects() -> None:
    at_50 = AT_25.model_copy(update={"canaryWeight": 50})
    assert not leaves_canary(AT_25, _decision(at_50, _weight(50), ApplyObjects(())))
    assert not leaves_canary(AT_25, _decision(AT_25, ApplyObjects(())))
    assert not leaves_canary(ModelDeploymentStatus(), _decision(AT_25, _weight(25)))
