"""kopf's per-object memories as the operator keeps them (runtime.main.CompactMemories, issue 22): one per
watched object, as kopf's own, but sharing the daemons and indexing memories no Tollgate handler uses."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kopf._core.reactor.inventory import ResourceMemories

import tollgate.runtime.handlers  # noqa: F401 - registers the operator's handlers in kopf's default registry
from tollgate.runtime.main import CompactMemories, SharedMemo
from tollgate.runtime.registry import ObjectState, Wake


def _body(uid: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"uid": uid, "name": f"svc-{uid}", "namespace": "ns"}}


def test_the_operators_handlers_register_no_daemon_timer_or_index_so_the_compact_memories_accept_them() -> None:
    # given the registry kopf.run serves (every handler module imported)
    registry = kopf.get_default_registry()
    # then it has no daemons, timers or indexers: the memories kopf would keep for them are never written
    assert not registry._spawning.get_all_handlers()
    assert not registry._indexing.get_all_handlers()
    # and the operator's memories accept it
    CompactMemories(registry)


@pytest.mark.parametrize("register", ["timer", "daemon", "index"])
def test_a_registry_with_a_daemon_timer_or_index_is_refused(register: str) -> None:
    # given a registry with one handler that keeps per-object state in kopf's daemons or indexing memory
    registry = kopf.OperatorRegistry()

    def handler(**_: Any) -> None:
        return None

    if register == "timer":
        kopf.timer("v1", "services", interval=1, registry=registry, id="tick")(handler)
    elif register == "daemon":
        kopf.daemon("v1", "services", registry=registry, id="watchdog")(handler)
    else:
        kopf.index("v1", "services", registry=registry, id="by-name")(handler)
    # when the compact memories are made for it, then they refuse, naming the handler
    with pytest.raises(ValueError, match="use kopf's ResourceMemories") as exc:
        CompactMemories(registry)
    assert ("tick" if register == "timer" else "watchdog" if register == "daemon" else "by-name") in str(exc.value)


def test_each_object_keeps_its_own_memory_and_shares_only_the_unused_parts() -> None:
    async def scenario() -> None:
        # given the operator's memories and its shared memo
        memories = CompactMemories(kopf.get_default_registry())
        memo = SharedMemo(runtime=object())
        # when two objects are recalled, one of them twice, as their watch events arrive
        a = await memories.recall(_body("a"), memobase=memo, noticed_by_listing=True)
        b = await memories.recall(_body("b"), memobase=memo)
        again = await memories.recall(_body("a"), memobase=memo)
        # then the same object gets the same memory back, with what kopf recorded about it
        assert again is a and a.noticed_by_listing and not b.noticed_by_listing
        # and each object has its own error throttler and flags, as with kopf's own memories
        assert a is not b and a.error_throttler is not b.error_throttler
        a.fully_handled_once = True
        assert not b.fully_handled_once
        # and only the daemons and indexing memories (empty: no daemon, timer or index) are one
        assert a.daemons_memory is b.daemons_memory and a.indexing_memory is b.indexing_memory
        assert a.daemons_memory.live_fresh_body is None and not a.daemons_memory.running_daemons
        assert list(memories.iter_all_daemon_memories()) == [a.daemons_memory, a.daemons_memory]
        # and the memo is the operator's, as SharedMemo's copy gives it
        assert a.memo is memo
        # when an object is deleted, its memory is forgotten, and a new one starts afresh
        await memories.forget(_body("a"))
        fresh = await memories.recall(_body("a"), memobase=memo)
        assert fresh is not a and not fresh.fully_handled_once
        # and an ephemeral recall (an admission review) keeps nothing
        await memories.recall(_body("c"), memobase=memo, ephemeral=True)
        assert len(list(memories.iter_all_memories())) == 2

    asyncio.run(scenario())


def test_a_memory_costs_less_than_kopfs_own() -> None:
    async def per_object(memories: ResourceMemories) -> float:
        memo = SharedMemo(runtime=object())
        bodies = [_body(f"uid-{i}") for i in range(500)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for body in bodies:
            await memories.recall(body, memobase=memo)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        return sum(s.size_diff for s in after.compare_to(before, "filename")) / len(bodies)

    # given kopf's memories and the operator's, each holding 500 objects
    kopf_own = asyncio.run(per_object(ResourceMemories()))
    compact = asyncio.run(per_object(CompactMemories(kopf.get_default_registry())))
    # then the operator's hold less than half as many bytes per object (0.25 vs 0.74 KB measured)
    assert compact < kopf_own / 2, (compact, kopf_own)


# --- the loop's wake-up signal (runtime.registry.Wake): asyncio.Event's behaviour, without its deque ------
@pytest.mark.parametrize("make", [asyncio.Event, Wake], ids=["asyncio.Event", "Wake"])
def test_the_wake_signal_behaves_as_an_asyncio_event(make: Any) -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        signal = make()
        # given a signal set before anyone waits: the wait returns at once
        signal.set()
        assert signal.is_set() and await signal.wait() is True
        # when it is cleared, a wait times out (and leaves nothing waiting behind)
        signal.clear()
        assert not signal.is_set()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout=0.01)

        # when two waiters wait and it is set, both wake
        async def waiter(name: str) -> None:
            await signal.wait()
            seen.append(name)

        tasks = [asyncio.create_task(waiter("a")), asyncio.create_task(waiter("b"))]
        await asyncio.sleep(0)
        assert seen == []
        signal.set()
        signal.set()  # a second set changes nothing
        await asyncio.gather(*tasks)
        # and a waiter cancelled before the set is simply gone
        signal.clear()
        cancelled = asyncio.create_task(signal.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        signal.set()
        return sorted(seen)

    assert asyncio.run(scenario()) == ["a", "b"]


def test_the_wake_signal_holds_less_than_an_asyncio_event() -> None:
    async def per_signal(make: Any) -> float:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        kept = [make() for _ in range(500)]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        assert len(kept) == 500
        return sum(s.size_diff for s in after.compare_to(before, "filename")) / len(kept)

    # given 500 idle signals of each kind (one per ModelDeployment in the registry)
    event = asyncio.run(per_signal(asyncio.Event))
    wake = asyncio.run(per_signal(Wake))
    # then the Wake holds a fraction of the Event's bytes
    assert wake < event / 4, (wake, event)


# --- the latest body a ModelDeployment's state keeps (runtime.registry.ObjectState.raw) -----------------
def test_the_kept_body_reads_back_exactly_and_is_stored_compressed() -> None:
    # given the full example ModelDeployment with a status as the operator writes it
    body = yaml.safe_load((Path(__file__).parents[3] / "examples" / "full.yaml").read_text())
    body["metadata"].update({"namespace": "team-a", "resourceVersion": "4711", "uid": "0f3c-é"})
    body["status"] = {"phase": "Stable", "observedGeneration": 3, "conditions": [
        {"type": t, "status": "True", "reason": "Ready", "message": f"{t} is as desired",
         "lastTransitionTime": "2026-12-03T04:00:00Z"} for t in ("Ready", "SandboxReady", "Serving")]}
    st = ObjectState(("team-a", "full"))
    # when it is taken
    st.adopt(body)
    # then each read is a fresh dict equal to it, and the revision counts the take
    assert st.body == body and st.body is not st.body and st.revision == 1
    assert st.adopted_resource_version == "4711" and st.sandbox_ready
    # and it is kept in fewer bytes than its compact JSON
    compact = json.dumps(body, separators=(",", ":")).encode()
    assert st.raw is not None and len(st.raw) < len(compact) * 0.6, (len(st.raw), len(compact))
    # and clearing it keeps nothing
    st.body = None
    assert st.body is None and st.raw is None and st.revision == 2
