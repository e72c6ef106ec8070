"""What a pod's status says about why it is not Ready: the scheduler's or the kubelet's own words.

The pod watch (runtime.handlers) records, per pod of a track, one `PodProblem` or none; the engine
reads the worst per track (engine.observations.TrackObservation.problem). Only states that do not
resolve by waiting count as failing: an image that keeps failing to pull (ImagePullBackOff, not the
first ErrImagePull, which a registry hiccup also gives), a crash loop, a container that cannot be
created from its configuration. An unschedulable pod is reported with the scheduler's message; a node
may still join, so the progress deadline decides on it. A storage initializer that refused the model's
bytes (its termination message reports a digest mismatch, engine.model_delivery) fails the pod at its
first exit: a wrong artifact does not become right by retrying.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollgate.engine.model_delivery import INIT_CONTAINER_NAME
from tollgate.engine.observations import PodProblem, PodProblemKind
from tollgate.model_digest import MISMATCH_REASON, parse_mismatch

FAILING_REASONS = frozenset({
    "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError",
})
"""Container waiting reasons that do not resolve by waiting (kubelet's own reason strings)."""
MESSAGE_LIMIT = 512


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _last_exit(status: Mapping[str, Any]) -> str | None:
    term = ((status.get("lastState") or {}).get("terminated")) or {}
    if not term:
        return None
    return f"{term.get('reason') or 'Terminated'}, exit code {term.get('exitCode')}"


def _digest_refused(name: str, status: Mapping[str, Any]) -> PodProblem | None:
    """The storage initializer's exit with a digest mismatch (now, or before its restart's back-off)."""
    for cs in status.get("initContainerStatuses") or []:
        if cs.get("name") != INIT_CONTAINER_NAME:
            continue
        for state in (cs.get("state") or {}, cs.get("lastState") or {}):
            term = state.get("terminated") or {}
            mismatch = parse_mismatch(term.get("message")) if term.get("exitCode") not in (None, 0) else None
            if mismatch is not None:
                return PodProblem(PodProblemKind.FAILING, MISMATCH_REASON, "", name, INIT_CONTAINER_NAME,
                                  int(cs.get("restartCount") or 0),
                                  f"{term.get('reason') or 'Error'}, exit code {term.get('exitCode')}",
                                  digest=mismatch)
    return None


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The reason this pod is not Ready when it is one Tollgate acts on or reports; None otherwise."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    name = meta.get("name", "")
    status = pod.get("status") or {}
    refused = _digest_refused(name, status)
    if refused is not None:
        return refused
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason in FAILING_REASONS:
            return PodProblem(PodProblemKind.FAILING, reason, _short(waiting.get("message") or ""), name,
                              cs.get("name"), int(cs.get("restartCount") or 0), _last_exit(cs))
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return PodProblem(PodProblemKind.UNSCHEDULABLE, cond.get("reason") or "Unschedulable",
                              _short(cond.get("message") or ""), name)
    return None


def worst(problems: list[PodProblem]) -> PodProblem | None:
    """Failing before unschedulable, then by pod name (stable across decisions)."""
    if not problems:
        return None
    return min(problems, key=lambda p: (p.kind is not PodProblemKind.FAILING, p.pod))
