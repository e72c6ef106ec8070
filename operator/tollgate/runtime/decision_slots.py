"""How many decisions are under way at once, and which waiting one goes next.

At most `size` decisions run at once (runtime.app.DECISION_SLOTS: without a bound, 10,000 new
ModelDeployments all parsed their bodies and desired objects together and the RSS passed 1 GB). Among
those waiting, a decision that finishes work already started goes before one that starts new work:

- **resuming**: an object decided before in this process (its pods became Ready, a step is due), or a
  decision taking its slot back after waiting for its analysis batch (runtime.reconciler._outside_slot);
- **first**: an object's first decision in this process (a new ModelDeployment, or every object after a
  restart).

Why: with one FIFO, a bulk create of N ModelDeployments queued every first decision ahead of every
second one, so the cheap decisions that turn an object Ready (one status write) waited until all N had
been started, then ran one after another on the operator's one Python thread while the API server sat
idle (bench `bulk`). Finishing started work first keeps both busy, turns objects Ready as they become
ready (what a GitOps tool waiting on status sees), and keeps fewer objects half-done in memory. Within a
class the order stays FIFO, so no first decision waits behind more than the resuming work of the objects
already started: it cannot starve while new objects keep arriving.

Asyncio only (one event loop); a granted slot is handed to the waiter directly, so a newcomer never
takes a slot from under a waiter that was already woken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DecisionSlots:
    """A counting semaphore with two FIFO classes of waiters: resuming before first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"need at least one decision slot, got {size}")
        self.size = size
        self._free = size
        self._resuming: deque[asyncio.Future[None]] = deque()
        self._first: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> tuple[int, int]:
        """(resuming, first) decisions waiting for a slot."""
        return len(self._resuming), len(self._first)

    async def acquire(self, *, first: bool = False) -> None:
        """Wait for a slot: after every waiting resuming decision, and for a first decision also after
        every waiting first one."""
        ahead = self._resuming or (first and self._first)
        if self._free > 0 and not ahead:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._first if first else self._resuming
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as it was cancelled: hand the slot on
            else:  # (a release may have dropped it already)
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def release(self) -> None:
        self._free += 1
        while self._free > 0 and (self._resuming or self._first):
            waiter = (self._resuming or self._first).popleft()
            if waiter.done():  # cancelled while waiting
                continue
            self._free -= 1
            waiter.set_result(None)

    @asynccontextmanager
    async def hold(self, *, first: bool = False) -> AsyncIterator[None]:
        await self.acquire(first=first)
        try:
            yield
        finally:
            self.release()
