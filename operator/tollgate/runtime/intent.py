"""Which decisions are persisted before they are carried out (intent first).

A decision that takes traffic off a canary (a rollback, an abort, a new revision superseding it, the
kill switch, a promotion removing it) must be in status before its first traffic action: status is
what the next decision starts from, and if it still named the canary at its old weight after a crash
halfway through, the next decision would apply the canary again and send it traffic. With the intent
written first, a crash anywhere after it resumes toward the same end state; a crash before it leaves
everything as it was, and the same decision is simply made again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def kill_switch_pending(body: Mapping[str, Any] | None) -> bool:
    """The kill switch is on in spec and status does not say traffic is on the fallback yet.

    Such a decision does not queue for a decision slot (runtime.app.DECISION_SLOTS) behind a burst of new
    ModelDeployments: the kill switch promises all traffic on the fallback in seconds. Read from the raw
    body, before anything is parsed, since the point is not to wait; rare, so it costs no memory bound."""
    if not body:
        return False
    spec, status = body.get("spec") or {}, body.get("status") or {}
    return spec.get("killSwitch") is True and not status.get("killSwitchActive")
