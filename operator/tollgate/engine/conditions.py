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

from tollgate.api.status import (
    ROLLBACK_PHASES,
    ROLLOUT_PHASES,
    SERVING_PHASES,
    Condition,
    ConditionStatus,
    ModelDeploymentStatus,
    Phase,
)
from tollgate.engine.timeutil import format_time

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SANDBOX_READY = "SandboxReady"
PROGRESSING = "Progressing"
AWAITING_APPROVAL = "AwaitingApproval"
ROLLED_BACK = "RolledBack"
ROUTE_ACCEPTED = "RouteAccepted"
"""gatewayAPI router only: every parent Gateway accepted the HTTPRoute and resolved its backends."""
SHARE_WITHIN_TOLERANCE = "ShareWithinTolerance"
"""Every step's real traffic share is within spec.traffic.shareTolerance of its weight (engine.shares)."""
TEMPLATES_RESOLVED = "TemplatesResolved"
"""Every SLO template named in spec.slos[].templateRef exists (shown once one was ever missing)."""

ABNORMAL_TRUE = frozenset({RECONCILING, STALLED})
ORDER = (READY, RECONCILING, STALLED, SANDBOX_READY, PROGRESSING, AWAITING_APPROVAL, ROLLED_BACK, ROUTE_ACCEPTED,
         SHARE_WITHIN_TOLERANCE, TEMPLATES_RESOLVED)


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


def of_status(
    previous: Sequence[Condition],
    st: ModelDeploymentStatus,
    *,
    stable_ready: bool,
    pending_late: bool,
    sandbox_ready: bool,
    now: datetime,
    generation: int,
    route: str | None = None,
    routed: bool = False,
    share_problem: str | None = None,
    shares_checked: bool = True,
) -> list[Condition]:
    """Every condition of a status, the one place they are derived from the phase.

    Ready: serving (Stable or Succeeded) with the stable track Ready, or the fallback serving all
    traffic; with the gatewayAPI router (`routed`) also every parent Gateway accepted the route and
    resolved its backends (`route` is the problem otherwise, naming the parent and its reason, in the
    RouteAccepted condition). Stalled (kstatus failed): the spec cannot be acted on, a rollback, or a
    first deployment past its progress deadline (`pending_late`). Reconciling: neither.
    ShareWithinTolerance (when `shares_checked`): False with `share_problem` (engine.shares) when a
    step's real traffic share misses its weight beyond the tolerance.
    """
    phase = st.phase
    ready = (phase in SERVING_PHASES and stable_ready) or (phase is Phase.FALLBACK and st.fallback is not None)
    serving_message = st.message
    if routed and route is not None and ready:
        ready = False
        serving_message = f"{st.message}; not serving: {route}"
    stalled = phase is Phase.STALLED or phase in ROLLBACK_PHASES or pending_late
    if pending_late:
        stalled_reason = "ProgressDeadlineExceeded"
    else:
        stalled_reason = "SpecInvalid" if phase is Phase.STALLED else "RolledBack"
    rolled_back = phase in ROLLBACK_PHASES
    wanted = [
        Want(READY, ready, phase.value if ready else "NotReady", serving_message),
        Want(RECONCILING, not ready and not stalled, phase.value, serving_message),
        Want(STALLED, stalled, stalled_reason, st.message),
        Want(SANDBOX_READY, sandbox_ready, "SandboxReady" if sandbox_ready else "SandboxNotReady",
             f"namespace {st.sandboxNamespace}"),
        Want(PROGRESSING, st.canary is not None and phase in ROLLOUT_PHASES, phase.value,
             st.message if st.canary is not None else "no rollout in progress"),
        Want(AWAITING_APPROVAL, phase is Phase.AWAITING_APPROVAL, phase.value,
             st.message if phase is Phase.AWAITING_APPROVAL else ""),
        Want(ROLLED_BACK, rolled_back, phase.value, f"incident {st.lastIncident}" if rolled_back else ""),
    ]
    if routed:
        wanted.append(Want(ROUTE_ACCEPTED, route is None, "Accepted" if route is None else "NotAccepted",
                           route or "every parent Gateway accepted the HTTPRoute and resolved its backends"))
    if shares_checked:
        wanted.append(Want(SHARE_WITHIN_TOLERANCE, share_problem is None,
                           "WithinTolerance" if share_problem is None else "ShareOutOfTolerance",
                           share_problem or "every step's traffic share is within tolerance of its weight"))
    if st.missingTemplates is not None:  # only once a template was ever missing
        missing = bool(st.missingTemplates)
        wanted.append(Want(TEMPLATES_RESOLVED, not missing, "TemplateNotFound" if missing else "Resolved",
                           "; ".join(st.missingTemplates) if missing else "every SLO template exists"))
    return merge(previous, wanted, now, generation)


def spec_refused(message: str, now: datetime, generation: int, reason: str = "SpecInvalid") -> list[Condition]:
    """The conditions of a spec that is not acted on (refused by the API types, which the API server's
    schema should have caught first; a sandbox or a request Tollgate refuses; or a decision that failed,
    reason DecisionFailed): exactly Ready=False and Stalled=True with `reason`; nothing else is known."""
    wanted = [Want(READY, False, reason, message), Want(STALLED, True, reason, message)]
    return merge([], wanted, now, generation)


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of a type, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """True when the condition is present with status True."""
    cond = find(conditions, type_)
    return cond is not None and cond.status == ConditionStatus.TRUE
