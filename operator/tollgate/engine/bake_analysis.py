"""What a bake window judges: which SLOs, on which data, and when it looks.

After promotion the version serves all traffic on the stable track, and the previous version serves
nothing, so there is no live baseline. The runtime measures the stable track for the promoted version
(AnalysisRequest.versions), and the judgement reuses the canary's (engine.analysis) with the stable
track's data in the canary's place (`subject`). Per SLO, as at the canary's 100% step
(engine.analysis.full_traffic_slos) except for missing data:

- absolute limits (min, max) are judged as for a canary;
- `maxIncreaseOverBaseline` is judged only against the baseline the previous version recorded during the
  canary (status.baselines, carried; engine.comparison), so SLOs with a carried record keep their
  statistical test; without one the relative limit is dropped (nothing to compare with), and an SLO with
  nothing else left is not judged;
- shift SLOs (score-shift: the distance between two tracks) are not judged: one track serves;
- missing data and too few requests never fail (onNoData: pass): a quiet night does not roll back a
  version that passed its canary.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from tollgate.api.spec import NoDataPolicy
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.analysis import full_traffic_slos
from tollgate.engine.observations import SLOObservation
from tollgate.engine.policy import Policy, ResolvedSLO
from tollgate.engine.timeutil import parse_time


def baking(status: ModelDeploymentStatus) -> bool:
    """A promoted version is in its bake window and judged now (not under the kill switch)."""
    return (status.bake is not None and status.canary is None and status.phase is Phase.BAKING
            and not status.killSwitchActive)


def bake_slos(policy: Policy, status: ModelDeploymentStatus) -> tuple[ResolvedSLO, ...]:
    """The SLOs judged in the bake window, as they are judged there (see the module docstring)."""
    carried = {b.name for b in status.baselines}
    return tuple(replace(r, slo=r.slo.model_copy(update={"onNoData": NoDataPolicy.PASS}))
                 for r in full_traffic_slos(policy.slos, carried))


def subject(observed: tuple[SLOObservation, ...]) -> tuple[SLOObservation, ...]:
    """The observations as the bake judges them: the stable track (the promoted version) in the canary's
    place, and no live baseline (the previous version serves nothing)."""
    return tuple(replace(o, canary=o.stable, stable=None, canary_stream=o.stable_stream, stable_stream=None)
                 for o in observed)


def bake_analysis_at(policy: Policy, status: ModelDeploymentStatus) -> datetime | None:
    """When the bake's next look is due: one look interval after the later of the window's start and the
    previous look; None when no bake is judged or nothing in it is."""
    if not baking(status) or status.bake is None or not bake_slos(policy, status):
        return None
    anchors = [t for t in (parse_time(status.bake.since), parse_time(status.lastAnalysisAt)) if t]
    if not anchors:
        return None
    return max(anchors) + timedelta(seconds=policy.look_interval)


def bake_end(status: ModelDeploymentStatus) -> datetime | None:
    """The end of the running bake window (a decision is due then: the version becomes lastKnownGood)."""
    if not baking(status) or status.bake is None:
        return None
    return parse_time(status.bake.until)
