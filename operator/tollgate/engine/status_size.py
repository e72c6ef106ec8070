"""Status keeps each revision's model and runtime once, so its size does not grow with the spec.

A RevisionRef in status may carry the model and runtime it runs (so the stable track can be re-created
exactly while the spec asks for something else). Kept naively, a canary with large args and env would
carry the runtime three times: stable, canary and lastKnownGood, besides the spec itself.

`compact` drops what can be found again: the canary's (it is the spec's own revision, or superseded;
the engine renders a ref without a template from the spec when the revision matches), and those of
lastKnownGood and fallback when the same revision is already stable (or lastKnownGood). `expand` puts
them back from the ref of the same revision before the engine reads the status. Pure, on status as JSON.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_KEYS = ("model", "runtime")


def _strip(ref: dict[str, Any]) -> dict[str, Any]:
    # null, not absent: status is written as a JSON merge patch, where only null removes a key
    return {**ref, **dict.fromkeys(TEMPLATE_KEYS)}


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, dict) and isinstance(b, dict) and a.get("revision") == b.get("revision")


def compact(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with every model/runtime that another ref (or the spec) holds set to null."""
    out = dict(status)
    if isinstance(out.get("canary"), dict):
        out["canary"] = _strip(out["canary"])
    stable, lkg = status.get("stable"), status.get("lastKnownGood")
    if isinstance(lkg, dict) and _same(lkg, stable):
        out["lastKnownGood"] = _strip(lkg)
    fallback = status.get("fallback")
    if isinstance(fallback, dict) and (_same(fallback, stable) or _same(fallback, lkg)):
        out["fallback"] = _strip(fallback)
    return out


def expand(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with the model/runtime of lastKnownGood and fallback restored from a ref of the same
    revision that carries them (the inverse of `compact` for everything but the canary)."""
    out = dict(status)
    holders = [r for r in (status.get("stable"), status.get("lastKnownGood"), status.get("fallback"))
               if isinstance(r, dict) and all(r.get(k) is not None for k in TEMPLATE_KEYS)]
    for key in ("lastKnownGood", "fallback"):
        ref = out.get(key)
        if not isinstance(ref, dict) or all(ref.get(k) is not None for k in TEMPLATE_KEYS):
            continue
        source = next((h for h in holders if _same(h, ref)), None)
        if source is not None:
            out[key] = {**ref, **{k: source[k] for k in TEMPLATE_KEYS}}
    return out
