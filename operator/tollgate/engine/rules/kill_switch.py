"""The kill switch (rule 2) and a spec the engine cannot act on (rule 1).

Kill switch on -> canary weight 0 and the canary removed in this decision, whatever the phase; all
traffic to the fallback (spec.fallback, else status.lastKnownGood) once it is Ready (stable serves
until then); with no fallback at all -> Stalled, stable keeps serving. Kill switch off -> back to
normal; an interrupted canary restarts at step one.

Controls under the kill switch (`controls_under_kill_switch`, `hold_retry`): no control that would act is
lost to it. abort rolls the interrupted canary back at once, as rule 6 says
(history, evidence; it stays rolled back, so turning the switch off does not restart it). retry, while it
would act (the spec's revision is the rolled-back one), waits until traffic leaves the fallback (the kill
switch off, or a kill-switch drill releasing it), since no canary may start under the kill switch; a retry
that would not act is recorded and ignored, as everywhere else, so a token from before a later abort never
undoes it. promote, approve and step are recorded and ignored: the interrupted canary starts over at step
one when the switch goes off (nothing to promote, no gate waits, no step entered).
"""

from __future__ import annotations

from tollgate.api.controls import ControlTokens
from tollgate.api.status import Phase
from tollgate.engine.actions import Cause, Reason
from tollgate.engine.draft import Draft, track_ready, with_template
from tollgate.engine.policy import Policy
from tollgate.engine.revision import desired_revision, fallback_revision
from tollgate.engine.rules.keep import release
from tollgate.engine.rules.revisions import restart_canary
from tollgate.engine.rules.rollback import roll_back


def stall(d: Draft, message: str, *, apply: bool) -> None:
    """The spec cannot be acted on: Stalled, with one warning event per distinct message. Nothing is
    applied, so nothing moves traffic, the kill switch included: status keeps the canary's weight and says
    the kill switch waits for a spec it can act on. (It used to record weight 0 and killSwitchActive while
    the router still split traffic: a platform team reading status took the kill switch for done.)"""
    if d.spec.killSwitch and (d.prev.canaryWeight > 0 or d.prev.canaryMirror > 0):
        message = (f"{message}; the kill switch cannot act until this is fixed: the canary keeps "
                   f"{d.prev.canaryWeight}% of traffic" + (f" and {d.prev.canaryMirror}% mirrored"
                                                          if d.prev.canaryMirror else ""))
    if d.prev.phase is not Phase.STALLED or d.prev.message != message:
        d.event(Reason.SPEC_INVALID, message, warning=True)
    d.phase(Phase.STALLED, message)
    d.apply = apply


def kill_switch_on(d: Draft, why: str = "kill switch on", *, drill: bool = False) -> None:
    """`why`: the kill switch (spec.killSwitch), or a first version that failed its bake window. `drill`: a
    kill-switch drill runs these rules (engine.rules.drills), which says so in its own events."""
    if not d.prev.killSwitchActive and not drill:
        d.event(Reason.KILL_SWITCH_ON, f"{why}: canary weight 0, traffic to the fallback", warning=True)
    d.cut_canary()
    release(d, "the kill switch removes every canary")
    d.st.killSwitchActive = True
    fallback = with_template(fallback_revision(d.spec, d.prev), d.spec)
    stable = d.st.stable
    if fallback is None:
        message = ("kill switch is on but there is no fallback: set spec.fallback (no lastKnownGood yet); "
                   "canary at weight 0, stable keeps serving")
        if d.prev.phase is not Phase.STALLED or d.prev.message != message:
            d.event(Reason.SPEC_INVALID, message, warning=True)
        d.phase(Phase.STALLED, message)
        d.st.fallback = None
        return
    separate = stable is None or fallback.revision != stable.revision
    if not separate or track_ready(d.obs.fallback, fallback, d.replicas):
        d.st.fallback = fallback
        d.phase(Phase.FALLBACK, f"{why}: all traffic on fallback {fallback.version} ({fallback.revision})")
    else:
        d.st.fallback = None
        d.phase(Phase.FALLBACK, f"{why}: starting fallback {fallback.version}; canary at 0, stable serves "
                                f"until the fallback is Ready ({d.obs.fallback.ready}/{d.replicas})")


def kill_switch_off(d: Draft, policy: Policy, *, drill: bool = False) -> None:
    if not drill:
        d.event(Reason.KILL_SWITCH_OFF, "kill switch off: back to normal routing")
    d.st.killSwitchActive = False
    d.st.fallback = None
    if d.st.canary is not None:
        restart_canary(d, policy, "kill switch off: the canary restarts at step 1")


def controls_under_kill_switch(d: Draft, tokens: ControlTokens) -> None:
    """The controls while spec.killSwitch is on, before its rules run: an abort rolls the interrupted canary
    back (its revision stays rolled back once the switch is off), a retry that would act waits
    (`hold_retry`). Applied first, so `kill_switch_on` still sets the phase and keeps all traffic on the
    fallback in the same decision."""
    if tokens.abort is not None and d.st.canary is not None:
        roll_back(d, Cause.ABORT, f"aborted by tollgate.dev/abort={tokens.abort} while the kill switch is on",
                 acted_by=tokens.abort)
        return  # a retry in the same decision is recorded and ignored, as when a canary runs (rule 6)
    hold_retry(d, tokens)


def hold_retry(d: Draft, tokens: ControlTokens) -> None:
    """A new retry token that would act (the spec's revision was rolled back: a normal decision would start
    it again) is deferred while traffic is held on the fallback: it is not marked handled, and acts in the
    first decision after the kill switch (or a kill-switch drill) lets a canary run. Judged on the status
    the decision started from, so an abort in this decision does not make an earlier retry act."""
    if tokens.retry is not None and d.prev.rolledBackRevision == desired_revision(d.spec).revision:
        d.deferred = d.deferred | {"retry"}
