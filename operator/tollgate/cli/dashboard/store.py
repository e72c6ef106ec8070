"""The ModelDeployments the dashboard shows, kept current by one list-and-watch.

Why one watch: the page must follow every rollout live without asking the API server about each
object over and over (a dashboard left open would otherwise load the API server like a controller).
`Watcher` runs the kubernetes client's blocking list and watch in a thread and hands each event to the
`Store` on the event loop; the Store keeps the latest objects and wakes every open page through a
queue per subscriber. What the user may read decides the scope: all namespaces when the API server
allows it, else the namespace of the kubeconfig context (or -n).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tollgate.cli.cluster import Session
from tollgate.cli.errors import CliError, Exit

log = logging.getLogger("tollgate.dashboard")

Key = tuple[str, str]
ALL = "*"
"""The key a subscriber receives when the whole list changed (relist, scope or error)."""


@dataclass(frozen=True)
class Problem:
    """Why the dashboard cannot show the cluster now, for the error page: what failed and the fix."""

    title: str
    message: str
    fix: str
    code: int
    """HTTP status of the error page."""


def problem_of(error: CliError, scope: str) -> Problem:
    if error.code is Exit.FORBIDDEN:
        return Problem("You may not read ModelDeployments", error.message,
                       f"ask for list and watch on modeldeployments.tollgate.dev in {scope} "
                       "(check with `kubectl auth can-i watch modeldeployments.tollgate.dev`)", 403)
    if error.code is Exit.UNREACHABLE:
        return Problem("The cluster cannot be reached", error.message,
                       "check the kubeconfig context (`kubectl cluster-info`); the page recovers on its own "
                       "once the API server answers", 502)
    if error.code is Exit.NOT_FOUND:
        return Problem("Tollgate is not installed on this cluster", error.message,
                       "install Tollgate's CRDs (crds/) or pick the right context with --context", 404)
    return Problem("The API server refused", error.message, "see the message; the page retries on its own", 502)


class Store:
    """Latest ModelDeployments by (namespace, name). Lives on the event loop; never blocks."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.scope = "all namespaces"
        self.synced = False
        """True once the first list arrived (before that, pages say they are loading)."""
        self.problem: Problem | None = None
        self._subscribers: set[asyncio.Queue[str]] = set()

    # --- fed by the watcher ---------------------------------------------------------------------------
    def replace(self, items: list[dict[str, Any]], scope: str) -> None:
        self.objects = {_key(o): o for o in items}
        self.scope = scope
        self.synced = True
        self.problem = None
        self._publish(ALL)

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self._publish(f"{key[0]}/{key[1]}")

    def fail(self, problem: Problem) -> None:
        self.problem = problem
        self._publish(ALL)

    # --- read by the pages ----------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, key: str) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a page that stopped reading gets one "everything changed" instead
                while not queue.empty():
                    queue.get_nowait()
                key = ALL
            queue.put_nowait(key)


def _key(obj: dict[str, Any]) -> Key:
    m = obj.get("metadata") or {}
    return (str(m.get("namespace") or ""), str(m.get("name") or ""))


class Watcher:
    """Lists, then watches, ModelDeployments in a thread; posts everything to the Store on `loop`.

    A watch that ends (server timeout) continues from the last resourceVersion; one that expired (410)
    lists again. Errors are shown on the page and retried with a growing delay, so the dashboard comes
    back by itself when the cluster does.
    """

    def __init__(self, session: Session, store: Store, loop: asyncio.AbstractEventLoop,
                 namespace: str | None = None, watch_seconds: int = 60) -> None:
        self.session = session
        self.store = store
        self.loop = loop
        self.namespace = namespace
        """Only this namespace (-n); None: all namespaces if allowed, else the context's namespace."""
        self.watch_seconds = watch_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tollgate-dashboard-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        if not self._stop.is_set():
            self.loop.call_soon_threadsafe(fn, *args)

    def _list(self) -> tuple[str | None, list[dict[str, Any]], str, str]:
        """(namespace watched or None for all, items, resourceVersion, scope in words)."""
        if self.namespace is not None:
            items, rv = self.session.list_versioned(self.namespace)
            return self.namespace, items, rv, f'namespace "{self.namespace}"'
        try:
            items, rv = self.session.list_versioned(None)
            return None, items, rv, "all namespaces"
        except CliError as exc:
            if exc.code is not Exit.FORBIDDEN:
                raise
        ns = self.session.namespace
        items, rv = self.session.list_versioned(ns)
        return ns, items, rv, f'namespace "{ns}" (you may not list ModelDeployments in all namespaces)'

    def _events(self, namespace: str | None, rv: str) -> Iterator[dict[str, Any]]:
        return self.session.watch_all(namespace, rv, self.watch_seconds)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            scope = f'namespace "{self.namespace}"' if self.namespace else "all namespaces"
            try:
                namespace, items, rv, scope = self._list()
                self._post(self.store.replace, items, scope)
                delay = 1.0
                while not self._stop.is_set():
                    expired = False
                    for event in self._events(namespace, rv):
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "EXPIRED":
                            expired = True
                            break
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self._post(self.store.apply, kind, obj)
                        if self._stop.is_set():
                            return
                    if expired:
                        break  # list again
            except CliError as exc:
                log.warning("dashboard watch: %s", exc.message)
                self._post(self.store.fail, problem_of(exc, scope))
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:  # the watch thread must survive anything and say what happened
                log.exception("dashboard watch failed")
                self._post(self.store.fail, Problem("The watch failed", f"{type(exc).__name__}: {exc}",
                                                    "the page retries on its own", 502))
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
