"""Where kopf (1.45.2) does not do what Tollgate relies on, and what Tollgate does about it.

**A namespace created while kopf re-lists namespaces is never watched.** With namespace patterns (the chart's
`watchNamespaces`, e.g. `["ml-team", "ml-team-*"]`), kopf's namespace observer lists the namespaces once,
then runs a watch stream over them; that stream starts (and, after any error, restarts) with its own LIST,
whose events carry type None, and `process_discovered_namespace_event` drops them (kopf's comment: the
first listing already saw them). A namespace created between the observer's list and the stream's list, or
while a broken stream re-lists, is in no event kopf looks at: kopf never watches it until the operator
restarts. For Tollgate that namespace is a sandbox it just created: its Deployments are never seen, so the
first version Stalls "not Ready" and every later canary is rolled back on its progress deadline although its
pods are Ready. Seen in a backpressure run: 2 of 200 sandboxes, created 1 s after kopf's namespace LIST met a
429. The fix: the listed namespaces are revised like watched ones (kopf's own `revise_namespaces`, which adds
what matches a pattern and is idempotent), so the stream's every LIST re-synchronises the watched set.

Cluster-wide operation (the chart's default, no `watchNamespaces`) has no namespace observer and is not
affected. Each fix checks the kopf version it was written against and refuses to start on another, so an
upgrade of kopf re-reads this module instead of silently relying on internals that moved.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from kopf._core.reactor import observation

VERIFIED_KOPF = ("1.45.",)
"""kopf versions whose internals these fixes were read against."""

_drops_listed = observation.process_discovered_namespace_event


async def process_namespace_event(*, raw_event: Any, namespaces: Any, insights: Any, **kwargs: Any) -> None:
    """kopf's handler of the namespace stream's events, that also takes the stream's LIST (type None)."""
    if raw_event["type"] is None:
        name = raw_event["object"]["metadata"]["name"]
        if name in insights.namespaces:
            return  # watched already: every namespace of every LIST but a missed one, so no wake-up for it
        async with insights.revised:
            observation.revise_namespaces(raw_bodies=[raw_event["object"]], insights=insights, namespaces=namespaces)
            if name in insights.namespaces:  # matched a pattern: kopf starts its watches
                insights.revised.notify_all()
        return
    await _drops_listed(raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs)


def apply() -> None:
    """Install the fixes into kopf before it runs (runtime.main)."""
    version = importlib.metadata.version("kopf")
    if not version.startswith(VERIFIED_KOPF):
        raise RuntimeError(f"kopf {version}: tollgate.runtime.kopf_fixes was written against kopf "
                           f"{'/'.join(v + 'x' for v in VERIFIED_KOPF)}; re-read it for this version before running")
    # namespace_observer builds its processor from this module global when it starts its stream
    observation.process_discovered_namespace_event = process_namespace_event
