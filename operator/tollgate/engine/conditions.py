"""Status conditions, kstatus style.

`Reconciling` and `Stalled` are "abnormal-true" conditions: present (True) only while the abnormal
state holds and removed otherwise, so kstatus, Argo CD and Flux read: Reconciling -> in progress,
Stalled -> failed, else `Ready` decides. Domain conditions (SandboxReady, Progressing,
AwaitingApproval, RolledBack) are always present. `lastTransitionTime` changes only when a condition's
status flips; reason and message may change without a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tollgate.api.status import Condition, ConditionStatus
from tollgate.engine.timeutil import format_time

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SANDBOX_READY = "SandboxReady"
PROGRESSING = "Progressing"
AWAITING_APPROVAL = "AwaitingApproval"
ROLLED_BACK = "RolledBack"

ABNORMAL_TRUE = frozenset({RECONCILING, STALLED})
ORDER = (READY, RECONCILING, STALLED, SANDBOX_READY, PROGRESSING, AWAITING_APPROVAL, ROLLED_BACK)


@dataclass(frozen=True)
class Want:
    """The desired state of one condition."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    previous: Sequence[Condition], wanted: Iterable[Want], now: datetime, generation: int
) -> list[Condition]:
    """The new condition list: `wanted` applied over `previous`.

    Abnormal-true conditions wanted False are dropped. Conditions not mentioned are kept as they were.
    """
    by_type = {c.type: c for c in previous}
    for want in wanted:
        if want.type in ABNORMAL_TRUE and not want.status:
            by_type.pop(want.type, None)
            continue
        status = ConditionStatus.TRUE if want.status else ConditionStatus.FALSE
        old = by_type.get(want.type)
        transition = (
            old.lastTransitionTime
            if old is not None and old.status == status and old.lastTransitionTime
            else format_time(now)
        )
        by_type[want.type] = Condition(
            type=want.type,
            status=status,
            reason=want.reason,
            message=want.message,
            lastTransitionTime=transition,
            observedGeneration=generation,
        )
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(by_type.values(), key=lambda c: (rank.get(c.type, len(ORDER)), c.type))


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of a type, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """True when the condition is present with status True."""
    cond = find(conditions, type_)
    return cond is not None and cond.status == ConditionStatus.TRUE
