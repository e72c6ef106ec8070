"""Which revision runs (rules 3-5), and the canary's start.

- First deployment (nothing has served yet) -> straight to the stable track, no canary; its pods not
  Ready within progressDeadline is reported (Stalled), there is nothing to roll back to. Once Ready, with
  a bake window, it is judged there on its absolute limits (engine.rules.bake); failed, it stays failed
  (on the fallback when one is configured) until the spec changes or tollgate.dev/retry.
- A new revision while a canary runs -> the canary is Superseded (history), all traffic back on
  stable, a new canary starts at step one. Replica or policy changes are not new revisions; a changed
  step plan restarts the running canary at step one, and so does a spec accepted after a refusal held the
  canary at weight 0 (engine.refusal: status.planHash forgotten).
- A revision that was rolled back stays rolled back until the spec changes it or a new
  tollgate.dev/retry token arrives.
- A promoted version in its bake window is judged there (engine.rules.bake); a new revision ends the window.
"""

from __future__ import annotations

from tollgate.api.controls import ControlTokens
from tollgate.api.status import Phase, RevisionRef
from tollgate.engine.actions import Reason
from tollgate.engine.draft import Draft, track_ready
from tollgate.engine.observations import PodProblemKind
from tollgate.engine.policy import Policy
from tollgate.engine.revision import desired_revision
from tollgate.engine.rules.bake import bake_progress, end_bake, first_failed, start_first_bake
from tollgate.engine.rules.keep import release
from tollgate.engine.rules.readiness import late, overdue, pods_detail
from tollgate.engine.rules.rollback import rolled_back
from tollgate.engine.rules.steps import progress
from tollgate.engine.timeutil import format_time, parse_time


def reconcile(d: Draft, policy: Policy, tokens: ControlTokens) -> None:
    rev = desired_revision(d.spec)
    if d.st.stable is None or (d.st.lastKnownGood is None and d.st.canary is None):
        _first_deployment(d, policy, rev, tokens)
        return
    canary = d.st.canary
    if canary is not None and canary.revision != rev.revision:
        reason = f"superseded by revision {rev.revision} (version {rev.version})"
        d.history(canary, "Superseded", reason)
        d.event(Reason.SUPERSEDED, f"canary {canary.version} ({canary.revision}) {reason}: traffic back on stable")
        d.cut_canary()
        d.st.canary = canary = None
    stable = d.st.stable
    assert stable is not None
    if canary is None:
        if d.st.bake is not None:
            if rev.revision == stable.revision:
                bake_progress(d, policy, tokens)
                return
            end_bake(d, f"new revision {rev.revision} (version {rev.version})")
        if rev.revision == stable.revision:
            _steady(d)
        elif rev.revision == d.st.rolledBackRevision:
            if tokens.retry is not None:
                d.event(Reason.RETRIED, f"retry of rolled-back revision {rev.revision} requested by {tokens.retry}")
                d.st.rolledBackRevision = None
                _start_canary(d, policy, rev)
            else:
                rolled_back(d)
        else:
            _start_canary(d, policy, rev)
        return
    if d.st.planHash is None:  # held at weight 0 while its spec was refused (engine.refusal)
        restart_canary(d, policy, "the canary held at weight 0 while its spec was refused (or its decision "
                                  "failed) restarts at step 1")
    elif d.st.planHash != policy.plan_hash:
        restart_canary(d, policy, "rollout steps changed: the canary restarts at step 1")
    progress(d, policy, tokens)


def _first_deployment(d: Draft, policy: Policy, rev: RevisionRef, tokens: ControlTokens) -> None:
    stable = d.st.stable
    if stable is None or stable.revision != rev.revision:
        if d.st.bake is not None:
            end_bake(d, f"new revision {rev.revision} (version {rev.version})")
        if d.st.rolledBackRevision is not None:
            d.st.rolledBackRevision = None  # the failed first version was replaced
        d.st.stable = rev
        d.st.notReadySince = d.at
    elif d.st.rolledBackRevision == rev.revision:  # a first version that failed its bake window
        if tokens.retry is None:
            first_failed(d)
            return
        d.event(Reason.RETRIED, f"retry of failed first version {rev.revision} requested by {tokens.retry}")
        d.st.rolledBackRevision = None
    elif d.st.bake is not None:
        bake_progress(d, policy, tokens)
        return
    if track_ready(d.obs.stable, rev, d.replicas):
        d.st.notReadySince = None
        if start_first_bake(d, policy, rev):
            return  # lastKnownGood once the bake window passed (engine.rules.bake)
        d.st.lastKnownGood = rev
        d.st.notReadySince = None
        d.phase(Phase.STABLE, f"serving {rev.version} ({rev.revision})")
        d.event(Reason.DEPLOYED, f"version {rev.version} ({rev.revision}) is serving from sandbox namespace "
                                 f"{d.st.sandboxNamespace}")
        return
    since = parse_time(d.st.notReadySince) or d.now
    d.st.notReadySince = format_time(since)
    ready = d.obs.stable.ready if d.obs.stable.revision == rev.revision else 0
    problem = d.obs.stable.problem if d.obs.stable.revision == rev.revision else None
    if problem is not None and problem.kind is PodProblemKind.UNSCHEDULABLE:
        d.st.notReadySince = d.at  # the deadline counts from the moment the pods are scheduled
        since = d.now
    if overdue(since, policy, d.now):
        message = late(policy, f"first version {rev.version} not Ready",
                       f" ({ready}/{d.replicas} pods Ready){pods_detail(d.obs.stable, rev)}")
        if d.prev.message != message:
            d.event(Reason.PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
        # Stalled in the phase too, so `kubectl get md` agrees with the Stalled condition; pods turning
        # Ready later (a Deployment event) still make it Stable.
        d.phase(Phase.STALLED, message)
    else:
        d.phase(Phase.PENDING, f"deploying {rev.version}: {ready}/{d.replicas} pods Ready"
                               f"{pods_detail(d.obs.stable, rev)}")


def _steady(d: Draft) -> None:
    stable = d.st.stable
    assert stable is not None
    promoted = d.prev.phase in (Phase.PROMOTING, Phase.SUCCEEDED)
    message = f"serving {stable.version} ({stable.revision})"
    if not track_ready(d.obs.stable, stable, d.replicas):
        message += f"; {d.obs.stable.ready}/{d.replicas} pods Ready{pods_detail(d.obs.stable, stable)}"
    d.st.canaryWeight = 0
    d.st.canaryMirror = 0
    d.st.promotingSince = None
    d.st.notReadySince = None
    d.phase(Phase.SUCCEEDED if promoted else Phase.STABLE, message)


def _start_canary(d: Draft, policy: Policy, rev: RevisionRef) -> None:
    kept = d.st.keptCanary
    if kept is not None:
        # The kept failed canary goes first (engine.rules.keep): its Deployment is removed in this decision
        # and the new canary starts in the next one, on fresh pods (a retry has the same template).
        release(d, f"canary {rev.version} ({rev.revision}) replaces it")
        d.phase(d.st.phase, f"removing the kept failed canary {kept.version} before canary {rev.version} "
                            f"({rev.revision}) starts; all traffic on {d.st.stable.version if d.st.stable else '-'}")
        return
    d.cut_canary()
    d.timeline_from = len(d.events)
    d.st.canary = rev
    d.st.approvedBy = None
    _canary_clock(d, policy, f"canary {rev.version} ({rev.revision}) starting: waiting for its pods")
    if d.st.rolledBackRevision not in (None, rev.revision):
        d.st.rolledBackRevision = None
    stable = d.st.stable
    d.event(Reason.CANARY_STARTED,
            f"canary {rev.version} ({rev.revision}) started against stable "
            f"{stable.version if stable else '-'}; {len(policy.steps)} steps up to {policy.max_weight}%")


def restart_canary(d: Draft, policy: Policy, message: str) -> None:
    """The running canary starts over at step one (plan changed, kill switch off)."""
    d.cut_canary()
    _canary_clock(d, policy, message)
    d.event(Reason.CANARY_STARTED, message)


def _canary_clock(d: Draft, policy: Policy, message: str) -> None:
    """A (re)started canary: its clocks from now, the plan it follows, no analysis yet."""
    d.st.canaryStartedAt = d.at
    d.st.notReadySince = d.at
    d.st.analysis = []
    d.st.baselines = []
    d.st.planHash = policy.plan_hash
    d.st.stepCount = len(policy.steps)
    d.phase(Phase.PROGRESSING, message)
