"""How many of the operator's requests may be in flight to the API server at once: an AIMD window.

Why: an API server that sheds load answers 429 with Retry-After. Honouring Retry-After per request is
not enough on its own: with 32 I/O threads each waiting its second and coming back, the operator keeps
32 requests knocking every second for as long as the server is saturated, and most of them are answered
429 again (the throttled burst in tests/integration/runtime/test_backpressure.py: about 6,000 of the
operator's 9,000 requests for 200 ModelDeployments). The window is TCP's congestion rule applied to
concurrency, so the operator finds the share the server admits instead of probing it 32 times a second:

- it starts at the ceiling (the connection pool's size): an unloaded server never sees a difference;
- a request answered 429 halves it (never below 1), at most once per round: the 429s of requests
  already in flight when it was halved say nothing new, like the losses of one TCP window;
- every other answer grows it by 1/window, about one request more per window's worth of answers, back
  up to the ceiling.

Only 429 counts: it is the server's own word that it is over its limit (API Priority and Fairness, or
--max-requests-inflight). A 5xx or a timeout may be one bad request or a restart, and Retry-After
already paces those. The Lease requests do not pass here (they use their own client and thread), so a
throttled operator still renews its Lease on time.

No clock: rounds are counted in requests, so the rule is deterministic and tested without time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Ticket:
    """One request's place in the window: the round it was sent in, and how the server answered."""

    round: int
    answered: bool = False
    """The server answered (any status): a request that never got an answer neither grows nor halves."""
    throttled: bool = False
    """The answer was 429."""


class Throttle:
    """An AIMD concurrency window shared by every request of one client (thread-safe)."""

    def __init__(self, ceiling: int, floor: int = 1):
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor ({floor}) <= ceiling ({ceiling})")
        self.ceiling = ceiling
        self.floor = floor
        self._window = float(ceiling)
        self._inflight = 0
        self._round = 0
        """Bumped at each decrease: a 429 for a request sent before it does not decrease again."""
        self.decreases = 0
        self._cond = threading.Condition()

    @property
    def window(self) -> int:
        """Requests that may be in flight now."""
        return max(self.floor, int(self._window))

    @property
    def inflight(self) -> int:
        return self._inflight

    @contextmanager
    def slot(self) -> Iterator[Ticket]:
        """Wait for room in the window and hold it for one request; the caller marks the ticket."""
        ticket = self.acquire()
        try:
            yield ticket
        finally:
            self.release(ticket)

    def acquire(self) -> Ticket:
        with self._cond:
            while self._inflight >= self.window:
                self._cond.wait()
            self._inflight += 1
            return Ticket(self._round)

    def release(self, ticket: Ticket) -> None:
        with self._cond:
            self._inflight -= 1
            before = self.window
            if ticket.answered and not ticket.throttled:
                self._window = min(float(self.ceiling), self._window + 1 / self._window)
            elif ticket.throttled and ticket.round == self._round:  # the first 429 of this round: halve once
                self._window = max(float(self.floor), self._window / 2)
                self._round += 1
                self.decreases += 1
            self._cond.notify(max(1, self.window - before + 1))  # this place, and any the window grew by
