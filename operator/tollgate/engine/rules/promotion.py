"""Promotion: after the last step (or the promote control) the stable track rolls to the canary
revision while the canary keeps serving; once stable is Ready on it the canary is removed,
lastKnownGood updated -> Succeeded, or with a bake window -> Baking (engine.rules.bake), lastKnownGood once
it passed. Not Ready within progressDeadline -> rolled back."""

from __future__ import annotations

from tollgate.api.status import Phase
from tollgate.engine.actions import Promote, Reason
from tollgate.engine.draft import Draft, track_ready, with_template
from tollgate.engine.policy import Policy
from tollgate.engine.rules.bake import start_bake
from tollgate.engine.rules.readiness import roll_back_when_late
from tollgate.engine.timeutil import parse_time


def start_promotion(d: Draft, why: str) -> None:
    canary = d.st.canary
    assert canary is not None
    d.st.promotingSince = d.at
    d.st.notReadySince = None
    d.phase(Phase.PROMOTING, f"promoting {canary.version}: {why}")
    d.event(Reason.PROMOTING, f"promoting {canary.version} ({canary.revision}): {why}")


def promotion_progress(d: Draft, policy: Policy) -> None:
    canary = d.st.canary
    assert canary is not None
    previous = d.st.stable
    if track_ready(d.obs.stable, canary, d.replicas):
        d.history(canary, "Promoted", d.st.message)
        d.notices.append(Promote(canary.revision, canary.version, previous.revision if previous else None))
        d.event(Reason.PROMOTED, f"{canary.version} ({canary.revision}) is stable")
        d.cut_canary()
        # The canary's ref is stored without its model and runtime (they come from the spec while it
        # is the spec's revision, engine.status_size). Stable must carry its own: once the spec moves
        # to the next version it is the only place the running revision can be rendered from, and a
        # stable track that cannot be rendered is scaled to zero.
        serving = with_template(canary, d.spec) or canary
        d.st.stable = serving
        d.st.canary = None
        if start_bake(d, policy, serving):
            return  # lastKnownGood once the bake window passed (engine.rules.bake)
        d.st.lastKnownGood = serving
        d.phase(Phase.SUCCEEDED, f"serving {canary.version} ({canary.revision}); promoted")
        return
    since = parse_time(d.st.promotingSince) or d.now
    if roll_back_when_late(d, policy, since, f"stable track not Ready on {canary.version}", " of promotion"):
        return
    have = d.obs.stable.ready if d.obs.stable.revision == canary.revision else 0
    d.phase(Phase.PROMOTING, f"promoting {canary.version}: stable track {have}/{d.replicas} pods Ready on it")
