"""Decision slots (runtime.decision_slots): at most `size` decisions at once, resuming work before new work.

Driven on a real event loop; the order is observed from which waiter gets each released slot.
"""

from __future__ import annotations

import asyncio

import pytest

from tollgate.runtime.decision_slots import DecisionSlots


async def _queue(slots: DecisionSlots, order: list[str], name: str, *, first: bool) -> None:
    await slots.acquire(first=first)
    order.append(name)


def test_a_resuming_decision_goes_before_first_decisions_that_waited_longer() -> None:
    async def scenario() -> list[str]:
        slots, order = DecisionSlots(1), []
        await slots.acquire()  # given the only slot taken
        # when two first decisions queue, then a resuming one
        tasks = [asyncio.create_task(_queue(slots, order, n, first=True)) for n in ("new-1", "new-2")]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(_queue(slots, order, "resumed", first=False)))
        await asyncio.sleep(0)
        assert slots.waiting == (1, 2)
        # then each released slot goes to the resuming one first, then the first ones in their order
        for _ in range(3):
            slots.release()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["resumed", "new-1", "new-2"]


def test_no_more_than_size_hold_a_slot_and_a_newcomer_does_not_jump_the_queue() -> None:
    async def scenario() -> tuple[int, list[str]]:
        slots, order = DecisionSlots(2), []
        await slots.acquire()
        await slots.acquire()
        waiting = asyncio.create_task(_queue(slots, order, "waited", first=True))
        await asyncio.sleep(0)
        # given a slot released to the waiter, when a newcomer asks before the waiter has run
        slots.release()
        newcomer = asyncio.create_task(_queue(slots, order, "newcomer", first=True))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # then the waiter has it, the newcomer waits, and no more than 2 are held
        held = slots.size - slots.free
        slots.release()
        await asyncio.gather(waiting, newcomer)
        return held, order

    assert asyncio.run(scenario()) == (2, ["waited", "newcomer"])


def test_a_waiter_cancelled_after_it_was_granted_hands_the_slot_on() -> None:
    async def scenario() -> tuple[list[str], int]:
        slots, order = DecisionSlots(1), []
        await slots.acquire()
        doomed = asyncio.create_task(_queue(slots, order, "doomed", first=False))
        nxt = asyncio.create_task(_queue(slots, order, "next", first=True))
        await asyncio.sleep(0)
        # given the slot granted to a waiter, when that waiter is cancelled before it ran
        slots.release()
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await nxt
        # then the next waiter got the slot, and the count is whole
        slots.release()
        return order, slots.free

    assert asyncio.run(scenario()) == (["next"], 1)


def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    async def scenario() -> tuple[tuple[int, int], int]:
        slots = DecisionSlots(1)
        await slots.acquire()
        doomed = asyncio.create_task(slots.acquire(first=True))
        await asyncio.sleep(0)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        slots.release()
        return slots.waiting, slots.free

    assert asyncio.run(scenario()) == ((0, 0), 1)


def test_hold_releases_on_error() -> None:
    async def scenario() -> int:
        slots = DecisionSlots(1)
        with pytest.raises(RuntimeError):
            async with slots.hold(first=True):
                raise RuntimeError("decision failed")
        return slots.free

    assert asyncio.run(scenario()) == 1


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DecisionSlots(0)
