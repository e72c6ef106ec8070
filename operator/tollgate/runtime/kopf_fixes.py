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

**kopf takes every watch event through its per-object machinery.** Not a fault, a cost: each event of a
watched object gets a worker task of its own (kept `idle_timeout` after the object's last event), a
ResourceMemory, cause detection, a handler lookup and an invocation context before the handler runs. For the
children (~20 events per new ModelDeployment in a bulk create: its pods and Deployment changing state, the
quota's usage) whose only handlers are `on.event` functions that decide nothing, that machinery was a quarter
of the operator's busy samples (py-spy, issue 22) and a ResourceMemory per child. `queueing.watcher`, which
kopf's orchestrator calls (as a module attribute) for each resource and namespace it watches, is wrapped: for a
kind in the operator's direct routes (runtime.handlers.direct_routes) it reads kopf's own
`watching.infinite_watch` (the same LIST, WATCH, re-list after 410, reconnect, label selector and pause) and
gives each event to the route in stream order, the same functions kopf's handlers call; every other resource
(ModelDeployments, templates, Namespaces, kopf's peering) goes to kopf's watcher unchanged. A route that
raises is logged and the stream goes on, as kopf does for a failing event handler. What kopf did that the
route does not: keep a memory and a worker task per object (no handler of these kinds reads the memory;
kopf 1.45's worker handles an object's events one by one, as the route does, with no batching since kopf
removed it) and run other objects' handlers concurrently (these never await). A resource kopf indexes
(none here) keeps kopf's watcher, whose indexing toggles the route would not drop.

Each fix checks the kopf version it was written against and refuses to start on another, so an
upgrade of kopf re-reads this module instead of silently relying on internals that moved.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kopf._cogs.clients import api, watching
from kopf._core.reactor import observation, queueing

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


DirectRoute = Callable[[Any], None]
"""A kind's watch events handled in stream order, straight from kopf's watch stream (one raw event each)."""

_kopf_watcher = queueing.watcher
_direct: dict[tuple[str, str], DirectRoute] = {}


async def watcher(*, namespace: Any, settings: Any, resource: Any, processor: Any, operator_paused: Any = None,
                  operator_indexed: Any = None, resource_indexed: Any = None) -> None:
    """kopf's per-resource watcher; a kind with a direct route is read here and each event given to it."""
    route = _direct.get((resource.group, resource.plural))
    if route is None or resource_indexed is not None:
        await _kopf_watcher(namespace=namespace, settings=settings, resource=resource, processor=processor,
                            operator_paused=operator_paused, operator_indexed=operator_indexed,
                            resource_indexed=resource_indexed)
        return
    await deliver(watching.infinite_watch(settings=settings, resource=resource, namespace=namespace,
                                          operator_paused=operator_paused), route, resource.plural)


async def deliver(stream: Any, route: DirectRoute, plural: str) -> None:
    """Each object event of a watch stream to the route, in order; kopf's bookmarks and the server's
    BOOKMARK events carry no object and are skipped. A route that raises does not end the stream."""
    async for raw_event in stream:
        if isinstance(raw_event, watching.Bookmark) or raw_event.get("type") == "BOOKMARK":
            continue
        try:
            route(raw_event)
        except Exception:
            meta = (raw_event.get("object") or {}).get("metadata") or {}
            log.exception("a watch event's handler failed; the stream goes on",
                          extra={"resource": plural, "object": f"{meta.get('namespace')}/{meta.get('name')}",
                                 "event_type": raw_event.get("type")})


def apply(direct: Mapping[tuple[str, str], DirectRoute] | None = None) -> None:
    """Install the fixes into kopf before it runs (runtime.main); `direct`: the kinds whose watch events
    go straight to their route (runtime.handlers.direct_routes)."""
    version = importlib.metadata.version("kopf")
    if not version.startswith(VERIFIED_KOPF):
        raise RuntimeError(f"kopf {version}: tollgate.runtime.kopf_fixes was written against kopf "
                           f"{'/'.join(v + 'x' for v in VERIFIED_KOPF)}; re-read it for this version before running")
    # namespace_observer builds its processor from this module global when it starts its stream
    observation.process_discovered_namespace_event = process_namespace_event
    # kopf's stream() parses each watch line with this module global's loads
    setattr(api, "json", WatchJson)  # noqa: B010 (kopf does not export the name; mypy would refuse it)
    # kopf's orchestrator starts each resource's watcher through this module attribute
    _direct.clear()
    _direct.update(direct or {})
    queueing.watcher = watcher


class WatchJson:
    """What kopf's watch stream finds as its module's `json`: the operator's codec for `loads`."""

    loads = staticmethod(json_codec.loads)
