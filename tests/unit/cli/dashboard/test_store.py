"""The Store and its Watcher: one list, then one watch for every object; the scope falls back to the
context's namespace when listing everywhere is forbidden; an expired watch lists again; errors become
a problem shown on the page, and the page wakes on each change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from tollgate.cli.dashboard.store import ALL, Store, Watcher
from tollgate.cli.errors import CliError, Exit
from unit.cli.samples import md


def named(name: str, rv: str = "1") -> dict[str, Any]:
    obj = md()
    obj["metadata"].update(name=name, resourceVersion=rv)
    return obj


class FakeSession:
    """Lists and watches from scripts; records what was asked."""

    namespace = "ml"

    def __init__(self, lists: list[Any], watches: list[list[dict[str, Any]]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[tuple[str, str | None, str]] = []
        self.done = asyncio.Event()

    def list_versioned(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", namespace, ""))
        answer = self.lists.pop(0)
        if isinstance(answer, CliError):
            raise answer
        return answer, "10"

    def watch_all(self, namespace: str | None, rv: str, timeout: int) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch", namespace, rv))
        if not self.watches:
            self.loop.call_soon_threadsafe(self.done.set)
            self.stopper.wait()
            return
        yield from self.watches.pop(0)


def run_watcher(session: FakeSession, namespace: str | None = None) -> tuple[Store, list[str]]:
    async def main() -> tuple[Store, list[str]]:
        import threading

        store = Store()
        queue = store.subscribe()
        session.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        session.stopper = threading.Event()  # type: ignore[attr-defined]
        watcher = Watcher(session, store, asyncio.get_running_loop(), namespace=namespace)  # type: ignore[arg-type]
        watcher.start()
        await asyncio.wait_for(session.done.wait(), 10)
        await asyncio.sleep(0)  # let the posted callbacks run
        watcher.stop()
        session.stopper.set()  # type: ignore[attr-defined]
        keys = []
        while not queue.empty():
            keys.append(queue.get_nowait())
        return store, keys

    return asyncio.run(main())


def test_one_list_then_one_watch_keeps_every_object_current() -> None:
    session = FakeSession([[named("a"), named("b")]], [[
        {"type": "MODIFIED", "object": named("a", "11")},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
        {"type": "DELETED", "object": named("b", "13")},
    ]])
    store, keys = run_watcher(session)
    assert store.scope == "all namespaces" and sorted(store.objects) == [("ml", "a")]
    assert store.objects[("ml", "a")]["metadata"]["resourceVersion"] == "11"
    # one list of all namespaces; the watch resumes from the last resourceVersion seen (the bookmark's)
    assert session.calls == [("list", None, ""), ("watch", None, "10"), ("watch", None, "13")]
    assert keys == [ALL, "ml/a", "ml/b"]


def test_forbidden_everywhere_falls_back_to_the_context_namespace() -> None:
    session = FakeSession([CliError("forbidden", Exit.FORBIDDEN), [named("a")]], [])
    store, _ = run_watcher(session)
    assert [c[:2] for c in session.calls] == [("list", None), ("list", "ml"), ("watch", "ml")]
    assert store.scope.startswith('namespace "ml"') and list(store.objects) == [("ml", "a")]


def test_an_expired_watch_lists_again() -> None:
    session = FakeSession([[named("a")], [named("b")]], [[{"type": "EXPIRED", "object": {}}]])
    store, _ = run_watcher(session, namespace="ml")
    assert [c[0] for c in session.calls] == ["list", "watch", "list", "watch"]
    assert list(store.objects) == [("ml", "b")]


def test_a_failure_becomes_a_problem_and_the_next_list_clears_it() -> None:
    session = FakeSession([CliError("cannot reach the API server: refused", Exit.UNREACHABLE), [named("a")]], [])
    store, keys = run_watcher(session, namespace="ml")
    assert store.problem is None and list(store.objects) == [("ml", "a")]
    assert keys.count(ALL) == 2  # the failure, then the list


def test_a_page_that_stopped_reading_gets_one_everything_changed() -> None:
    async def main() -> list[str]:
        store = Store()
        queue = store.subscribe()
        for i in range(300):
            store.apply("MODIFIED", named(f"m{i}"))
        return [queue.get_nowait() for _ in range(queue.qsize())]

    keys = asyncio.run(main())
    assert ALL in keys and len(keys) <= 256
