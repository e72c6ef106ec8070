"""The API server's clock: learnt from Date headers, carried on the monotonic clock, whatever the local
wall clock says."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from tollgate.adapters.server_clock import ServerClock

SERVER_EPOCH = 1_800_000_000.0  # the API server's time when our monotonic clock reads 0


def _date(epoch: float) -> str:
    # what the server sends: whole seconds, truncated
    return format_datetime(datetime.fromtimestamp(int(epoch), UTC), usegmt=True)


class Fake:
    def __init__(self, wall_skew: float) -> None:
        self.mono = 0.0
        self.wall_skew = wall_skew

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return SERVER_EPOCH + self.mono + self.wall_skew


def _respond(clock: ServerClock, t: Fake, rtt: float = 0.004) -> None:
    sent = t.mono
    t.mono += rtt / 2
    stamped = SERVER_EPOCH + t.mono
    t.mono += rtt / 2
    clock.sample(sent, t.mono, _date(stamped))


def test_a_node_an_hour_behind_reads_the_servers_time_after_a_few_responses() -> None:
    # given a node whose wall clock is an hour behind the API server's
    t = Fake(wall_skew=-3600)
    clock = ServerClock(t.monotonic, t.wall)
    assert abs(clock.epoch() - (SERVER_EPOCH - 3600)) < 1e-6  # no response yet: its own clock
    # when it has talked to the API server for a few seconds
    for _ in range(40):
        _respond(clock, t)
        t.mono += 0.137
    # then "now" is the server's time, to well under a second, and stays so between responses
    assert abs(clock.epoch() - (SERVER_EPOCH + t.mono)) < 0.3
    t.mono += 120
    assert abs(clock.epoch() - (SERVER_EPOCH + t.mono)) < 0.3


def test_a_node_ahead_agrees_with_one_behind() -> None:
    ahead, behind = Fake(wall_skew=360), Fake(wall_skew=-3600)
    clocks = [ServerClock(f.monotonic, f.wall) for f in (ahead, behind)]
    for _ in range(40):
        for c, f in zip(clocks, (ahead, behind), strict=True):
            _respond(c, f)
            f.mono += 0.11
    assert abs(clocks[0].epoch() - clocks[1].epoch()) < 0.5


def test_a_stepped_server_clock_starts_the_estimate_over() -> None:
    t = Fake(wall_skew=0)
    clock = ServerClock(t.monotonic, t.wall)
    for _ in range(20):
        _respond(clock, t)
        t.mono += 0.2
    # when the server's clock is stepped forward by 30 s
    global SERVER_EPOCH
    saved, SERVER_EPOCH = SERVER_EPOCH, SERVER_EPOCH + 30
    try:
        _respond(clock, t)
        # then the next response moves the estimate there at once
        assert abs(clock.epoch() - (SERVER_EPOCH + t.mono)) < 1.0
    finally:
        SERVER_EPOCH = saved


def test_a_header_that_is_not_a_date_teaches_nothing_even_when_seen_again() -> None:
    # given a clock that has learnt nothing yet
    t = Fake(wall_skew=0.0)
    clock = ServerClock(monotonic=t.monotonic, wall=t.wall)
    # when responses carry a Date header that is not a date (twice: the parse is cached)
    for _ in range(2):
        clock.sample(0.0, 0.004, "not a date")
    # then the estimate is still unknown, and a real header afterwards is learnt
    assert not clock.known()
    _respond(clock, t)
    assert clock.known()
