"""Which decisions are persisted before they are carried out (intent first).

A decision that takes traffic off a canary (a rollback, an abort, a new revision superseding it, the
kill switch, a promotion removing it) must be in status before its first traffic action: status is
what the next decision starts from, and if it still named the canary at its old weight after a crash
halfway through, the next decision would apply the canary again and send it traffic. With the intent
written first, a crash anywhere after it resumes toward the same end state; a crash before it leaves
everything as it was, and the same decision is simply made again.
"""

from __future__ import annotations

from tollgate.api.status import ModelDeploymentStatus
from tollgate.engine.actions import Decision, RollBack, SetWeight


def leaves_canary(prev: ModelDeploymentStatus, decision: Decision) -> bool:
    """True when `decision` moves traffic away from a canary (or removes it)."""
    nxt = decision.status
    if any(isinstance(a, RollBack) for a in decision.actions):
        return True
    if any(isinstance(a, SetWeight) and (a.fallback or a.canary_weight < prev.canaryWeight
                                         or a.mirror_percent < prev.canaryMirror)
           for a in decision.actions):
        return True
    return prev.canary is not None and (nxt.canary is None or nxt.canary.revision != prev.canary.revision)
