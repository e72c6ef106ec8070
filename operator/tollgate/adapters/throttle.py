"""How many of the operator's requests may be in progress at once: an AIMD window.

Why: an API server that sheds load answers 429 with Retry-After. Honouring Retry-After per request is
not enough on its own: with 32 I/O threads each waiting its second and coming back, the operator keeps
32 requests knocking every second for as long as the server is saturated, and most of them are answered
429 again (the throttled burst in tests/integration/runtime/test_backpressure.py: about 6,000 of the
operator's 9,000 requests for 200 ModelDeployments). The window is TCP's congestion rule applied to
concurrency, so the operator finds the share the server admits instead of probing it 32 times a second.

A request holds its place across its retries, waiting out its Retry-After in it: a 429 comes back in a
millisecond, so a window over attempts alone would bound nothing (a window of 1 can still be refused
hundreds of times a second); over requests in progress, the 429s are at most window / Retry-After a second.

The rule:
- it starts at the ceiling (the connection pool's size): an unloaded server never sees a difference;
- an attempt answered 429 halves it (never below its floor), at most once per round: the 429s of attempts
  already sent when it was halved say nothing new, like the losses of one TCP window;
- every other answer grows it by 1/window, about one request more per window's worth of answers, back
  up to the ceiling.

The floor (the Kubernetes adapter's is an eighth of the ceiling, 4) keeps the operator from yielding
the whole server to the other clients of its identity: kopf's watches and listings share the user and
are not windowed. Measured in test_backpressure.py (a server admitting 4 requests in flight, 200
ModelDeployments, one run each on a quiet machine): without the window 4,454 requests, 1,791 of them
answered 429, all Ready after 72 s; a window over attempts only, 3,819 / 1,210 / 83 s; over requests
in progress with floor 1, 3,080 / 552 / 233 s; with floor 4, 3,118 / 576 / 143 s. A throttled server
gets a third of the 429s, and the operator is slower through it: that is the point.

Only 429 counts: it is the server's own word that it is over its limit (API Priority and Fairness, or
--max-requests-inflight). A 5xx or a timeout may be one bad request or a restart, and Retry-After
already paces those. The Lease requests do not pass here (they go through CoordinationV1Api on a thread
of their own, runtime.leader), so a throttled operator still renews its Lease on time.

Urgent requests do not wait for room: those of a decision that takes traffic off a canary (a rollback, an
abort, the kill switch; runtime.intent.leaves_canary), marked by the `URGENT` context variable. They are
few (a status write and a route or two) and they are what keeps traffic off a failed version, so they must
not queue behind a burst of ordinary decisions waiting out their Retry-After. They still count as in
progress, still honour Retry-After, and their 429s still halve the window.

No clock: rounds are counted in requests, so the rule is deterministic and tested without time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

URGENT: ContextVar[bool] = ContextVar("tollgate_urgent_requests", default=False)
"""True while the requests sent from this context take traffic off a canary: they skip the window's wait.
asyncio.to_thread copies the context, so a flag set around a decision's actions reaches its I/O threads."""


@dataclass
class Ticket:
    """One request's place in the window, held across its retries."""

    round: int
    """The round its latest attempt was sent in (see Throttle.sent)."""


class Throttle:
    """An AIMD window over the requests in progress of one client (thread-safe)."""

    def __init__(self, ceiling: int, floor: int = 1):
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor ({floor}) <= ceiling ({ceiling})")
        self.ceiling = ceiling
        self.floor = floor
        self._window = float(ceiling)
        self._inflight = 0
        self._round = 0
        """Bumped at each decrease: a 429 for an attempt sent before it does not decrease again."""
        self.decreases = 0
        self.throttled = 0
        """Attempts answered 429 (the operator's metric tollgate_api_throttled_total)."""
        self._cond = threading.Condition()

    @property
    def window(self) -> int:
        """Requests that may be in progress now."""
        return max(self.floor, int(self._window))

    @property
    def inflight(self) -> int:
        return self._inflight

    @contextmanager
    def slot(self) -> Iterator[Ticket]:
        """Wait for room in the window and hold it for one request and its retries."""
        ticket = self.acquire()
        try:
            yield ticket
        finally:
            self.release(ticket)

    def acquire(self) -> Ticket:
        """Wait for room in the window (not when URGENT is set), then take a place in it."""
        with self._cond:
            while self._inflight >= self.window and not URGENT.get():
                self._cond.wait()
            self._inflight += 1
            return Ticket(self._round)

    def sent(self, ticket: Ticket) -> None:
        """An attempt of the ticket's request leaves now."""
        with self._cond:
            ticket.round = self._round

    def answered(self, ticket: Ticket, *, throttled: bool) -> None:
        """The server answered the ticket's latest attempt: 429 (`throttled`) or anything else."""
        with self._cond:
            before = self.window
            self.throttled += throttled
            if not throttled:
                self._window = min(float(self.ceiling), self._window + 1 / self._window)
            elif ticket.round == self._round:  # the first 429 of this round: halve once
                self._window = max(float(self.floor), self._window / 2)
                self._round += 1
                self.decreases += 1
            if self.window > before:
                self._cond.notify(self.window - before)

    def release(self, ticket: Ticket) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify()
