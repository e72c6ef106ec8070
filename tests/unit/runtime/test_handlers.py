"""Handlers: the reconcile loop's retry timing, and the delete handler on a replica that does not lead.

- A temporary failure (the server's Retry-After) is a floor for the next decision, counted from the
  failure. The real API server's 429s are in tests/integration/runtime/test_backpressure.py; here the
  clocks are injected, so the rules are checked exactly.
- The delete handler never fails on a replica that does not lead (kopf would then write its progress
  annotation from it): it waits, reading only. The deposed leader on the real API server is in
  tests/integration/runtime/test_leader.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tollgate.adapters.errors import TemporaryError
from tollgate.runtime import handlers
from tollgate.runtime.decision_slots import DecisionSlots
from tollgate.runtime.registry import ObjectState

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@dataclass
class SlowThrottledReconciler:
    """A decision whose requests were throttled and retried for `spent` seconds, then gave up."""

    now: datetime = T0
    spent: float = 8.0
    delay: float = 1.0
    calls: list[datetime] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    async def reconcile(self, st: ObjectState) -> datetime | None:
        self.calls.append(self.now)
        self.now += timedelta(seconds=self.spent)
        raise TemporaryError("HTTP 429: Too Many Requests", 429, delay=self.delay)


@dataclass
class FakeRuntime:
    reconciler: Any
    error_backoff: float = 5.0


def test_the_retry_after_a_throttled_decision_counts_from_the_failure_not_from_the_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.time, "monotonic", lambda: 500.0)
    # given a decision that spent 8 s in throttled retries before the server's last 429 (Retry-After 1)
    rec = SlowThrottledReconciler(spent=8.0, delay=1.0)
    st = ObjectState(("ns", "md"))
    # when the loop asks when to try again
    wake = asyncio.run(handlers._reconcile_once(FakeRuntime(rec), st))  # type: ignore[arg-type]
    # then it is 1 s after the failure (not 1 s after the start, which is already past)
    assert wake == T0 + timedelta(seconds=9)
    # and no event may start the next decision sooner
    assert st.hold_until == 501.0


def test_an_event_during_the_hold_waits_out_the_rest_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(handlers.time, "monotonic", lambda: 500.25)
    monkeypatch.setattr(handlers.asyncio, "sleep", sleep)
    # given a loop held until 501.0 (the server asked for 1 s at 500.0), and a watch event at 500.25
    st = ObjectState(("ns", "md"), hold_until=501.0)
    st.kick()
    # when the loop was woken by that event
    asyncio.run(handlers._hold(st))
    # then it sleeps the remaining 0.75 s before deciding, and the event is still pending afterwards
    assert slept == [0.75]
    assert st.wake.is_set()


def test_no_hold_without_a_temporary_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(handlers.asyncio, "sleep", sleep)
    asyncio.run(handlers._hold(ObjectState(("ns", "md"))))
    assert slept == []


@dataclass
class Elector:
    """Leadership the test turns on and off; wait_leadership returns once it is on."""

    leading: bool = False
    on: asyncio.Event = field(default_factory=asyncio.Event)

    def lead(self) -> None:
        self.leading = True
        self.on.set()


@dataclass
class FinalizingRuntime:
    elector: Elector
    live: list[bool]
    """What each GET of the ModelDeployment finds (True: still there); the last answer repeats."""
    fenced_first: bool = False
    finalized: list[str] = field(default_factory=list)
    gets: int = 0
    kube: Any = None
    registry: Any = None

    def __post_init__(self) -> None:
        rt = self

        class Kube:
            def get(self, ref: Any) -> dict[str, Any] | None:
                rt.gets += 1
                return {} if rt.live[min(rt.gets, len(rt.live)) - 1] else None

        class Registry:
            def forget(self, namespace: str, name: str) -> None:
                return None

        self.kube, self.registry = Kube(), Registry()

    def shard_of(self, body: Any) -> int:
        return 0

    def is_leader(self, shard: int = 0) -> bool:
        return self.elector.leading

    async def wait_leadership(self, shard: int = 0) -> None:
        await self.elector.on.wait()

    async def finalize(self, body: dict[str, Any]) -> None:
        if self.fenced_first and not self.finalized:
            self.finalized.append("fenced")
            self.elector.leading = False
            self.elector.on.clear()
            asyncio.get_running_loop().call_soon(self.elector.lead)
            raise handlers.FencedError("lost the Lease")
        self.finalized.append(body["metadata"]["name"])


class Logger:
    def info(self, *_: Any, **__: Any) -> None:
        return None


BODY = {"metadata": {"name": "md", "namespace": "ns"}}


def _finalize(rt: FinalizingRuntime) -> None:
    asyncio.run(handlers.finalize(body=BODY, namespace="ns", name="md",  # type: ignore[arg-type]
                                  memo=type("Memo", (), {"runtime": rt})(), logger=Logger()))


def test_a_replica_that_does_not_lead_waits_reading_only_and_stands_down_when_the_object_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "GONE_CHECK", 0.01)
    # given a standby, and an object the leader releases after two of our reads
    rt = FinalizingRuntime(Elector(), live=[True, True, False])
    # when kopf runs the delete handler here
    _finalize(rt)
    # then it returned without cleaning up (no error, so kopf writes no progress annotation), after reads
    assert rt.finalized == []
    assert rt.gets == 3


def test_a_standby_that_comes_to_lead_while_waiting_finalizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "GONE_CHECK", 0.01)
    elector = Elector()
    rt = FinalizingRuntime(elector, live=[True])

    async def run() -> None:
        asyncio.get_running_loop().call_later(0.05, elector.lead)
        await handlers.finalize(body=BODY, namespace="ns", name="md",  # type: ignore[arg-type]
                                memo=type("Memo", (), {"runtime": rt})(), logger=Logger())

    asyncio.run(run())
    assert rt.finalized == ["md"]


def test_losing_the_lease_part_way_goes_back_to_waiting_instead_of_failing() -> None:
    # given the leader, which loses the Lease in the middle of the cleanup (nothing more was sent)
    elector = Elector()
    elector.lead()
    rt = FinalizingRuntime(elector, live=[True], fenced_first=True)
    # when kopf runs the delete handler
    _finalize(rt)
    # then it did not fail (kopf would write its progress annotation): it waited, led again, finished
    assert rt.finalized == ["fenced", "md"]


# --- start-up: ModelDeployments changed while the operator was down are decided first ------------------
def _md(generation: int, observed: int | None, *, finalizer: bool = True, rv: str = "7") -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
                            "metadata": {"namespace": "ns", "name": "md", "generation": generation,
                                         "resourceVersion": rv, "managedFields": [{"manager": "x"}],
                                         "finalizers": [handlers.FINALIZER] if finalizer else []},
                            "spec": {"replicas": 2}}
    if observed is not None:
        body["status"] = {"observedGeneration": observed}
    return body


def test_only_objects_decided_before_whose_spec_changed_since_count_as_changed_while_down() -> None:
    from tollgate.runtime.app import changed_since_decided

    assert changed_since_decided(_md(2, 1), handlers.FINALIZER)
    assert not changed_since_decided(_md(2, 2), handlers.FINALIZER)  # settled
    assert not changed_since_decided(_md(1, None), handlers.FINALIZER)  # new: kopf adds the finalizer first
    assert not changed_since_decided(_md(2, 1, finalizer=False), handlers.FINALIZER)
    deleting = _md(2, 1)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-02T08:00:00Z"
    assert not changed_since_decided(deleting, handlers.FINALIZER)  # kopf's delete handler's


@dataclass
class RecordingReconciler:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    """What the start-up did, in order: "learn <namespace or all>" and "decide <name>"."""

    def clock(self) -> datetime:
        return T0

    async def reconcile(self, st: ObjectState) -> datetime | None:
        await asyncio.sleep(0.05)  # a decision takes a while (its requests)
        assert st.body is not None
        self.bodies.append(st.body)
        self.steps.append(f"decide {st.key[1]}")
        return None


@dataclass
class StartingRuntime:
    reconciler: RecordingReconciler
    changed: list[dict[str, Any]]
    registry: Any = None
    error_backoff: float = 5.0
    decision_slots: DecisionSlots = field(default_factory=lambda: DecisionSlots(64))

    def __post_init__(self) -> None:
        from tollgate.runtime.registry import Registry

        self.registry = Registry()

    async def changed_while_down(self) -> list[dict[str, Any]]:
        return self.changed

    async def learn_managed(self, namespace: str | None = None) -> None:
        self.reconciler.steps.append(f"learn {namespace or 'all'}")

    async def wait_leadership(self, shard: int = 0) -> None:
        return None

    def owns(self, body: Any) -> bool:
        return True

    def shard_of(self, body: Any) -> int:
        return 0


async def _event(rt: StartingRuntime, type_: str | None, body: dict[str, Any]) -> None:
    """A ModelDeployment watch event as kopf delivers it (None: part of the initial listing)."""
    memo = type("Memo", (), {"runtime": rt})()
    await handlers.md_event(event={"type": type_, "object": body}, body=body,  # type: ignore[arg-type]
                            namespace="ns", name="md", memo=memo)


def test_the_start_up_decides_an_object_changed_while_down_before_the_watches_start() -> None:
    async def scenario() -> tuple[StartingRuntime, ObjectState, bool]:
        # given one ModelDeployment whose spec changed while the operator was down
        rt = StartingRuntime(RecordingReconciler(), [_md(2, 1)])
        # when the start-up runs (kopf starts its watches only after it returns)
        await handlers.decide_changed_first(rt)  # type: ignore[arg-type]
        decided_before_return = len(rt.reconciler.bodies) == 1
        st = rt.registry.objects[("ns", "md")]
        # and kopf's listing then delivers the same object, same resourceVersion
        await _event(rt, None, _md(2, 1))
        woken = st.wake.is_set()
        rt.registry.stop_all()
        return rt, st, decided_before_return and not woken

    rt, _st, ok = asyncio.run(scenario())
    # then it was decided once, from the listed body (managedFields dropped), before the start-up returned,
    # and the listing event of the same version did not wake it again
    assert ok
    assert rt.reconciler.bodies[0]["spec"] == {"replicas": 2}
    assert "managedFields" not in rt.reconciler.bodies[0]["metadata"]


def test_the_start_up_learns_a_changed_objects_sandbox_decides_it_and_only_then_learns_everything() -> None:
    """Learning every managed object first took ~1.3 s per 1,000 ModelDeployments: at 10,000 the changed
    one waited ~15 s for LISTs of objects it does not need."""
    async def scenario() -> list[str]:
        # given two ModelDeployments changed while down, each with its sandbox in status
        bodies = [_md(2, 1), _md(2, 1)]
        for i, body in enumerate(bodies):
            body["metadata"]["name"] = f"md{i}"
            body["status"]["sandboxNamespace"] = f"sandbox-{i}"
        rt = StartingRuntime(RecordingReconciler(), bodies)
        # when the start-up runs
        await handlers.decide_changed_first(rt)  # type: ignore[arg-type]
        rt.registry.stop_all()
        return rt.reconciler.steps

    steps = asyncio.run(scenario())
    # then their sandboxes are learnt, they are decided, and everything else is learnt before it returns
    assert steps[:2] == ["learn sandbox-0", "learn sandbox-1"]
    assert sorted(steps[2:4]) == ["decide md0", "decide md1"]
    assert steps[4:] == ["learn all"]


def test_many_objects_changed_while_down_learn_everything_at_once_before_deciding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "CHANGED_FIRST_SANDBOXES", 1)
    # given more objects changed while down than are worth learning sandbox by sandbox
    bodies = [_md(2, 1), _md(2, 1)]
    for i, body in enumerate(bodies):
        body["metadata"]["name"] = f"md{i}"
        body["status"]["sandboxNamespace"] = f"sandbox-{i}"
    rt = StartingRuntime(RecordingReconciler(), bodies)

    async def scenario() -> None:
        await handlers.decide_changed_first(rt)  # type: ignore[arg-type]
        rt.registry.stop_all()

    asyncio.run(scenario())
    # then one learning of everything comes first, and none after
    assert rt.reconciler.steps[0] == "learn all"
    assert sorted(rt.reconciler.steps[1:]) == ["decide md0", "decide md1"]


def test_a_new_object_is_decided_only_once_kopf_has_added_the_finalizer() -> None:
    """Deciding on the first body raced kopf's finalizer patch: a 409 on the status write after the actions
    had run, the decision made again and its Events posted twice (seen in the bulk benchmark)."""
    async def scenario() -> tuple[int, int]:
        rt = StartingRuntime(RecordingReconciler(), [])
        # given a new object's first event, before kopf added the finalizer
        await _event(rt, "ADDED", _md(1, None, finalizer=False, rv="1"))
        await asyncio.sleep(0.1)
        before = len(rt.reconciler.bodies)
        # when kopf's patch adds it
        await _event(rt, "MODIFIED", _md(1, None, rv="2"))
        await asyncio.sleep(0.2)
        rt.registry.stop_all()
        return before, len(rt.reconciler.bodies)

    # then nothing was decided on the first body, and the body with the finalizer was decided once
    assert asyncio.run(scenario()) == (0, 1)


def test_the_start_up_stops_waiting_when_a_changed_object_ends_its_loop_without_deciding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given one ModelDeployment changed while down that is being deleted (its loop ends at once: kopf's
    # delete handler takes over), and a start-up bound far longer than any test
    monkeypatch.setattr(handlers, "CHANGED_FIRST_WAIT", 3600.0)
    body = _md(2, 1)
    body["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"

    async def scenario() -> list[dict[str, Any]]:
        rt = StartingRuntime(RecordingReconciler(), [body])
        # when the start-up runs (the outer bound only turns a hang into a failure)
        await asyncio.wait_for(handlers.decide_changed_first(rt), 60)  # type: ignore[arg-type]
        rt.registry.stop_all()
        return rt.reconciler.bodies

    # then it returned when that loop ended, not at the bound, and nothing was decided for it
    assert asyncio.run(scenario()) == []


def test_a_newer_version_after_the_start_up_decision_wakes_the_loop() -> None:
    async def scenario() -> bool:
        rt = StartingRuntime(RecordingReconciler(), [_md(2, 1)])
        await handlers.decide_changed_first(rt)  # type: ignore[arg-type]
        st = rt.registry.objects[("ns", "md")]
        await _event(rt, "MODIFIED", _md(3, 1, rv="9"))
        woken = st.wake.is_set()
        rt.registry.stop_all()
        return woken

    assert asyncio.run(scenario())


@dataclass
class CountingReconciler:
    """Counts the decisions under way at once."""

    now: datetime = T0
    running: int = 0
    most: int = 0
    done: int = 0

    def clock(self) -> datetime:
        return self.now

    async def reconcile(self, st: ObjectState) -> datetime | None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        self.done += 1
        return None


def test_a_burst_of_new_objects_decides_at_most_the_slots_at_once() -> None:
    """10,000 ModelDeployments created at once all started deciding together, each holding its parsed
    body and desired objects while it queued for the I/O threads (the RSS passed 1 GB)."""
    async def scenario() -> CountingReconciler:
        rec = CountingReconciler()
        rt = StartingRuntime(rec, [], decision_slots=DecisionSlots(8))  # type: ignore[arg-type]
        # given 200 objects whose loops all wake at once
        states = []
        for i in range(200):
            st = rt.registry.state("ns", f"md{i}")
            st.body = _md(1, 0)
            handlers.ensure_loop(rt, st)  # type: ignore[arg-type]
            st.kick()
            states.append(st)
        while rec.done < 200:
            await asyncio.sleep(0.01)
        rt.registry.stop_all()
        return rec

    rec = asyncio.run(scenario())
    # then every one was decided, never more than 8 at a time
    assert rec.done == 200
    assert rec.most == 8


@dataclass
class OrderReconciler(CountingReconciler):
    """Records which objects were decided, in order, and counts their decisions as the real one does."""

    order: list[str] = field(default_factory=list)

    async def reconcile(self, st: ObjectState) -> datetime | None:
        self.order.append(st.key[1])
        st.decisions += 1
        return await super().reconcile(st)


def test_an_object_decided_before_goes_ahead_of_new_objects_waiting_for_a_slot() -> None:
    """A bulk create queued every first decision ahead of the cheap second ones that turn objects Ready,
    so nothing turned Ready until all were started (runtime.decision_slots)."""
    async def scenario() -> list[str]:
        rec = OrderReconciler()
        slots = DecisionSlots(1)
        rt = StartingRuntime(rec, [], decision_slots=slots)  # type: ignore[arg-type]
        await slots.acquire()  # given every slot taken
        # and an object decided before, and three new ones whose loops queued for a slot before it did
        started = rt.registry.state("ns", "started")
        started.body, started.decisions = _md(1, 1), 1
        for name in ("new-1", "new-2", "new-3"):
            st = rt.registry.state("ns", name)
            st.body = _md(1, None)
            handlers.ensure_loop(rt, st)  # type: ignore[arg-type]
            st.kick()
            await asyncio.sleep(0.01)
        handlers.ensure_loop(rt, started)  # type: ignore[arg-type]
        started.kick()  # (its pods became Ready)
        await asyncio.sleep(0.01)
        # when the slot frees up
        slots.release()
        while rec.done < 4:
            await asyncio.sleep(0.01)
        rt.registry.stop_all()
        return rec.order

    # then the one decided before goes first, the new ones in the order they came
    assert asyncio.run(scenario()) == ["started", "new-1", "new-2", "new-3"]


def test_a_decision_waiting_for_its_analysis_batch_gives_its_slot_back() -> None:
    """Canaries due at one grid point must reach the scheduler together (one query per template per
    batch); holding slots while waiting for the batch would split it."""
    from types import SimpleNamespace

    from tollgate.runtime.reconciler import Reconciler

    async def scenario() -> bool:
        slots = DecisionSlots(1)
        batch = asyncio.Event()
        rec = SimpleNamespace(slots=slots)
        # given the only slot held by a decision that waits for the analysis batch
        await slots.acquire()
        waiting = asyncio.create_task(Reconciler._outside_slot(rec, batch.wait()))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        # then another decision can take the slot meanwhile
        await asyncio.wait_for(slots.acquire(), timeout=5)
        slots.release()
        batch.set()
        await waiting
        # and the waiting decision holds its slot again afterwards
        return slots.free == 0

    assert asyncio.run(scenario()) is True


def test_a_loop_dropped_while_it_waited_for_a_slot_does_not_decide_on_its_stale_body() -> None:
    """Its shard went to another replica while it queued; deciding now would act on an old body."""
    async def scenario() -> CountingReconciler:
        rec = CountingReconciler()
        slots = DecisionSlots(1)
        rt = StartingRuntime(rec, [], decision_slots=slots)  # type: ignore[arg-type]
        await slots.acquire()  # given every slot taken
        st = rt.registry.state("ns", "md")
        st.body = _md(1, 0)
        handlers.ensure_loop(rt, st)  # type: ignore[arg-type]
        st.kick()
        await asyncio.sleep(0.05)  # the loop now waits for a slot
        # when the object is dropped meanwhile, then a slot frees up
        rt.registry.forget("ns", "md")
        slots.release()
        await asyncio.sleep(0.05)
        return rec

    # then it never decided
    assert asyncio.run(scenario()).done == 0


def test_a_kill_switch_just_turned_on_decides_without_waiting_for_a_slot() -> None:
    """The kill switch promises all traffic on the fallback in seconds, even during a burst of new objects."""
    async def scenario() -> tuple[int, int, bool]:
        rec = CountingReconciler()
        slots = DecisionSlots(1)
        rt = StartingRuntime(rec, [], decision_slots=slots)  # type: ignore[arg-type]
        await slots.acquire()  # given every slot taken by the burst
        ordinary, killed = rt.registry.state("ns", "ordinary"), rt.registry.state("ns", "killed")
        ordinary.body = _md(2, 1)
        switched = _md(2, 1)
        switched["spec"]["killSwitch"] = True  # when one has its kill switch turned on
        killed.body = switched
        for st in (ordinary, killed):
            handlers.ensure_loop(rt, st)  # type: ignore[arg-type]
            st.kick()
        await asyncio.sleep(0.2)
        # then it was decided at once, the ordinary one still waits, and no slot was given back that was not taken
        decided = rec.done
        slots.release()
        await asyncio.sleep(0.2)
        rt.registry.stop_all()
        return decided, rec.done, slots.free == 0

    assert asyncio.run(scenario()) == (1, 2, False)


def test_kill_switch_pending_until_status_says_traffic_is_on_the_fallback() -> None:
    from tollgate.runtime.intent import kill_switch_pending

    on = _md(2, 1)
    on["spec"]["killSwitch"] = True
    assert kill_switch_pending(on)
    on["status"]["killSwitchActive"] = True
    assert not kill_switch_pending(on)  # done: back in the queue like any other decision
    assert not kill_switch_pending(_md(2, 1)) and not kill_switch_pending(None)


def test_a_decision_without_a_slot_gives_none_back_around_its_analysis_batch() -> None:
    from types import SimpleNamespace

    from tollgate.runtime.reconciler import IN_SLOT, Reconciler

    async def scenario() -> bool:
        slots = DecisionSlots(1)
        await slots.acquire()  # given the only slot held by another decision
        IN_SLOT.set(False)  # and a decision let through without one (this task's context only)
        batch = asyncio.Event()
        batch.set()
        await Reconciler._outside_slot(SimpleNamespace(slots=slots), batch.wait())  # type: ignore[arg-type]
        # then the slot is still the other decision's: none released, none taken
        return slots.free == 0

    assert asyncio.run(scenario()) is True


def test_a_listed_body_older_than_the_one_held_is_not_taken() -> None:
    """A gained shard's LIST can answer after a newer watch event of the same object."""
    async def scenario() -> tuple[bool, str | None]:
        rt = StartingRuntime(RecordingReconciler(), [])
        newer, older = _md(2, 1), _md(1, 1)
        newer["metadata"]["resourceVersion"], older["metadata"]["resourceVersion"] = "200", "150"
        handlers.take(rt, "ns", "md", newer)  # type: ignore[arg-type]
        taken = handlers.take(rt, "ns", "md", older)  # type: ignore[arg-type]
        st = rt.registry.objects[("ns", "md")]
        rt.registry.stop_all()
        return taken, st.adopted_resource_version

    assert asyncio.run(scenario()) == (False, "200")


def test_kopf_gets_no_essence_to_diff_so_a_deleting_object_still_reaches_the_delete_handler() -> None:
    import kopf
    from kopf._core.intents import causes

    # given a ModelDeployment being deleted, with our finalizer, as the watch delivers it
    raw = {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "m", "namespace": "ns", "uid": "u1", "finalizers": [handlers.FINALIZER],
                        "deletionTimestamp": "2026-12-06T00:00:00Z", "labels": {"a": "b"}},
           "spec": {"replicas": 2, "model": {"name": "m"}}, "status": {"phase": "Stable"}}
    storage = handlers.NoDiffBase()
    body = kopf.Body(raw)
    # when kopf asks the diff base for the old and the new essence
    old, new = storage.fetch(body=body), storage.build(body=body)
    # then it gets nothing to copy or diff, and the deletion is still a DELETE cause
    assert old is None and new == {}
    cause = causes.detect_changing_cause(
        finalizer=handlers.FINALIZER, raw_event={"type": "MODIFIED", "object": raw}, resource=None,
        indices=None, logger=None, patch=kopf.Patch(), body=body, old=old, new=new, diff=kopf.Diff([]),
        memo=None, initial=False)
    assert cause.reason == causes.Reason.DELETE


def test_the_echo_of_our_own_status_write_is_neither_stored_again_nor_woken_on() -> None:
    async def scenario() -> tuple[bool, int, bool, int]:
        rt = StartingRuntime(RecordingReconciler(), [_md(2, 1)])
        await handlers.decide_changed_first(rt)  # type: ignore[arg-type]
        st = rt.registry.objects[("ns", "md")]
        # given our status write answered with resourceVersion 9, its response stored (as _write_status does)
        st.written_resource_version = "9"
        st.body = _md(2, 2, rv="9")
        st.wake.clear()
        revision = st.revision
        # when its watch event arrives
        echo = await _take(rt, _md(2, 2, rv="9"))
        echoed = (echo, st.revision, st.wake.is_set())
        # and then a newer one (someone else's change)
        newer = await _take(rt, _md(3, 2, rv="10"))
        rt.registry.stop_all()
        return echoed == (False, revision, False), revision, newer, st.revision

    same, revision, newer, after = asyncio.run(scenario())
    # then the echo changes nothing, and the newer body is taken
    assert same and newer and after == revision + 1


async def _take(rt: StartingRuntime, body: dict[str, Any]) -> bool:
    return handlers.take(rt, "ns", "md", body)  # type: ignore[arg-type]


def test_every_kopf_handler_of_a_directly_routed_kind_is_one_the_route_calls() -> None:
    # given the kinds whose watch events bypass kopf's processing (runtime.kopf_fixes), as kopf resolves them
    import kopf
    from kopf._cogs.structs import references

    routes = handlers.direct_routes(None)  # type: ignore[arg-type]  # the runtime is only captured
    versions = {(g, p): v for g, v, p in (*handlers.CHILD_KINDS, ("apps", "v1", "deployments"), ("", "v1", "pods"),
                                          ("batch", "v1", "jobs"),
                                          *(k for ks in handlers.DIALECT_CHILD_KINDS.values() for k in ks))}
    resources = [references.Resource(g, versions[(g, p)], p, kind=p[:-1].capitalize(), singular=p[:-1])
                 for g, p in routes]
    wrappers = {handlers.deployment_event, handlers.pod_event, handlers.job_event, handlers.child_event,
                handlers.route_event}
    # when kopf's registries (event, change, daemon/timer, index handlers) are asked which select those kinds
    registry = kopf.get_default_registry()
    registered = [h for reg in (registry._watching, registry._changing, registry._spawning, registry._indexing)
                  for h in reg.get_all_handlers()
                  if h.selector is not None and any(h.selector.check(r) for r in resources)]
    # then each is a thin event wrapper of a function the route calls: a handler of any other kind added later
    # to such a kind (which the direct route would silently skip) fails here
    assert registered and {h.fn for h in registered} <= wrappers
    assert ("", "namespaces") not in routes  # kopf's namespace observer reads that stream too
    assert {("apps", "deployments"), ("", "pods"), ("batch", "jobs"), ("", "resourcequotas"),
            ("networking.k8s.io", "networkpolicies"), ("gateway.networking.k8s.io", "httproutes")} <= set(routes)


def test_a_route_calls_its_kinds_functions_in_kopfs_order_with_the_event_and_its_body(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given the HTTPRoute's two handlers' functions replaced by recorders
    calls: list[tuple[str, Any, str, dict[str, Any]]] = []
    monkeypatch.setattr(handlers, "child_seen", lambda rt, e, b: calls.append(("child", rt, e["type"], dict(b))))
    monkeypatch.setattr(handlers, "route_seen", lambda rt, e, b: calls.append(("route", rt, e["type"], dict(b))))
    rt = object()
    route = handlers.direct_routes(rt)[("gateway.networking.k8s.io", "httproutes")]  # type: ignore[arg-type]
    obj = {"kind": "HTTPRoute", "metadata": {"namespace": "sb", "name": "r"}}
    # when an event of an HTTPRoute arrives
    route({"type": "MODIFIED", "object": obj})
    # then both run, the child handler first (kopf's registration order), with the runtime, event and body
    assert calls == [("child", rt, "MODIFIED", obj), ("route", rt, "MODIFIED", obj)]


def test_a_failing_function_of_a_route_does_not_skip_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the HTTPRoute's child handler failing on an event
    calls: list[str] = []

    def broken(rt: Any, e: Any, b: Any) -> None:
        raise KeyError("metadata")

    monkeypatch.setattr(handlers, "child_seen", broken)
    monkeypatch.setattr(handlers, "route_seen", lambda rt, e, b: calls.append("route"))
    route = handlers.direct_routes(object())[("gateway.networking.k8s.io", "httproutes")]  # type: ignore[arg-type]
    # when the event arrives, then the route handler still runs (its Ready) and the failure is raised after it
    with pytest.raises(KeyError):
        route({"type": "MODIFIED", "object": {"kind": "HTTPRoute", "metadata": {"name": "r"}}})
    assert calls == ["route"]
