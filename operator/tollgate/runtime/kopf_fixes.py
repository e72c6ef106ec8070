"""Where kopf (1.45.2) does not do what Tollgate relies on, and what Tollgate does about it.

**A namespace created while kopf re-lists namespaces is never watched.** With namespace patterns (the chart's
`watchNamespaces`, e.g. `["ml-team", "ml-team-*"]`), kopf's namespace observer lists the namespaces once,
then runs a watch stream over them; that stream starts (and restarts after the errors listed below) with its
own LIST, whose events carry type None, and `process_discovered_namespace_event` drops them (as kopf does for
CRDs, whose comment says the first listing saw them already). A namespace created between the observer's list
and the stream's list, or while a broken stream re-lists, is in no event kopf looks at: kopf never watches it
until the operator restarts. For Tollgate that namespace is a sandbox it just created: its Deployments are
never seen, so the first version Stalls "not Ready" and every later canary is rolled back on its progress
deadline although its pods are Ready. Seen in a backpressure run: 2 of 200 sandboxes, created 1 s after
kopf's namespace LIST met a 429. The fix: a listed namespace not watched yet is revised like a watch event
(kopf's own `revise_namespaces`, which adds what matches a pattern), so the stream's every LIST adds what it
missed.
tests/integration/runtime/test_kopf_namespace_race.py holds the stream's LIST open against the real API server,
creates a namespace in the gap, and shows kopf alone dropping it and the fix watching it.

What else it changes (kopf 1.45.2's `observation`, `queueing` and `clients.watching`, read for this):
- *A LIST only adds.* A listed namespace kopf watches already is left alone, as kopf leaves it (no revision, no
  wake-up), so a watched namespace that is terminating is dropped by its watch events only, as before. A listed
  namespace not watched goes through kopf's own `revise_namespaces`: outside the patterns, nothing; terminating
  with a condition True (NamespaceContentRemaining, NamespaceFinalizersRemaining), not added (kopf logs it at
  debug); marked deleted before the namespace controller wrote any condition, added, as kopf's own MODIFIED
  path would, and dropped on its DELETED event.
- *Deleted namespaces are not pruned.* A namespace deleted while the stream was down (its DELETED missed)
  stays watched, an idle watch, as in kopf; a namespace re-created under that name is then watched, rightly.
  Pruning would need the LIST's end, which kopf's watcher keeps to itself (Bookmark.LISTED never reaches a
  processor).
- *Wake-ups and the lock.* kopf's orchestrator is woken (`insights.revised.notify_all`) only when a LIST adds
  a namespace, and then costs what kopf's own ADDED event costs; the `insights.revised` lock (which the
  orchestrator holds while it adjusts its watchers) is taken only for a namespace not watched. Every other
  listed namespace costs one set lookup.
- *When LISTs happen.* At the stream's start (just after the first listing) and whenever kopf re-creates the
  stream: a connection error or timeout during the LIST, a 429 beyond its retries, a 410 Gone. A watch that
  ends at its server timeout (300 s, runtime.handlers) resumes from its resourceVersion without a LIST. So in a
  cluster where nothing matching the patterns is created in such a gap, the operator behaves exactly as kopf
  alone; when the fix acts it logs "namespace seen only in a namespace LIST, watched now".
- kopf hands a processor the latest event of a short batch per namespace: a LIST event followed at once by a
  watch event of the same namespace is handled as that watch event, as in kopf. With
  `settings.watching.initial_streaming` (not set by Tollgate) kopf gives the streamed initial ADDED events
  type None too, and they are handled the same way.

Cluster-wide operation (the chart's default, no `watchNamespaces`) has no namespace observer and is not
affected.

**kopf parses every watch event with the standard library's `json`.** Not a fault, a cost: in a bulk create of
1,000 ModelDeployments the parsing of the watch streams' ~20 events per new object was a sixth of the
operator's CPU (py-spy, issue 22), on the cores the API server needs. `kopf._cogs.clients.api.stream` reads the
module global `json` for each line; it is given adapters.json_codec (orjson, the standard library for what
orjson refuses), which returns the same dicts. Nothing else in that module uses the global (its other
`json` names are aiohttp's keyword and `response.json()`, the LIST pages, left as they are).

Each fix checks the kopf version it was written against and refuses to start on another, so an
upgrade of kopf re-reads this module instead of silently relying on internals that moved.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

from kopf._cogs.clients import api
from kopf._core.reactor import observation

from tollgate.adapters import json_codec

log = logging.getLogger("tollgate.kopf_fixes")

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
                log.info("namespace seen only in a namespace LIST, watched now (kopf 1.45 would never watch it)",
                         extra={"namespace": name})
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
    # kopf's stream() parses each watch line with this module global's loads
    setattr(api, "json", WatchJson)  # noqa: B010 (kopf does not export the name; mypy would refuse it)


class WatchJson:
    """What kopf's watch stream finds as its module's `json`: the operator's codec for `loads`."""

    loads = staticmethod(json_codec.loads)
