"""The API server's clock, as this process can know it: the `Date` header of its responses, carried
forward on the local monotonic clock.

Why: every duration that gates a rollout (a pause, the progress deadline, an analysis window) is the
difference between a timestamp in status, written by whichever replica led at the time, and "now" as
the current leader sees it. With the leader's own wall clock, a leader an hour behind held a 2-minute
pause for an hour and one 6 minutes ahead rolled a pending canary back at once. Every replica that
reads the API server's time instead agrees, whatever its own clock says; between responses the
monotonic clock (which no NTP step or skew moves) carries it forward.

`Date` has a resolution of one second, but each response bounds the offset between the server's
clock and ours from both sides (the server stamped it between our send and our receipt), and the
intersection of those bounds over many responses narrows to well under a second. A bound that no
longer intersects (the server's clock was stepped) starts the estimate afresh.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

log = logging.getLogger("tollgate.clock")

SKEW_WARNING = 2.0
"""Seconds of difference between the local wall clock and the API server's worth a log line."""


@lru_cache(maxsize=4)
def _stamped(date: str) -> float | None:
    """A Date header as epoch seconds (None: not a date). Cached: every response of the same second
    carries the same string, and the email module's parser was ~1 % of the operator's CPU in a bulk create."""
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


class ServerClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self._mono = monotonic
        self._wall = wall
        self._lo = -math.inf
        self._hi = math.inf
        self._lock = threading.Lock()
        self._warned = False

    def sample(self, sent: float, received: float, date: str | None) -> None:
        """One response: sent and received on our monotonic clock, and its Date header."""
        if not date:
            return
        stamped = _stamped(date)
        if stamped is None:
            return
        # The server stamped the header at some instant g with sent <= g <= received (monotonic), and
        # its clock then read a time in [stamped, stamped + 1). offset = server time - monotonic time.
        lo, hi = stamped - received, stamped + 1.0 - sent
        with self._lock:
            if lo > self._hi or hi < self._lo:
                self._lo, self._hi = lo, hi  # the server's clock moved: start over
            else:
                self._lo, self._hi = max(self._lo, lo), min(self._hi, hi)
        self._check_skew()

    def known(self) -> bool:
        return math.isfinite(self._lo) and math.isfinite(self._hi)

    def offset(self) -> float:
        """server epoch seconds - local monotonic seconds (the local wall clock until a response came)."""
        with self._lock:
            if math.isfinite(self._lo) and math.isfinite(self._hi):
                return (self._lo + self._hi) / 2
        return self._wall() - self._mono()

    def epoch(self) -> float:
        return self._mono() + self.offset()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), UTC)

    def _check_skew(self) -> None:
        if self._warned or not self.known():
            return
        skew = self._wall() - self.epoch()
        if abs(skew) > SKEW_WARNING:
            self._warned = True
            log.warning("the local wall clock differs from the API server's; Tollgate times rollouts by the "
                        "API server's clock", extra={"skew_seconds": round(skew, 1)})
