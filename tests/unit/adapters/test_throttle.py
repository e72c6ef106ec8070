"""The AIMD window over the operator's requests: halved once per round of 429s, regrown by answers,
never below its floor nor above its ceiling, and a waiter let in as soon as there is room."""

from __future__ import annotations

import threading

import pytest

from tollgate.adapters.throttle import Throttle


def _answer(throttle: Throttle, *, throttled: bool) -> None:
    ticket = throttle.acquire()
    ticket.answered, ticket.throttled = True, throttled
    throttle.release(ticket)


def test_an_unloaded_server_sees_the_whole_window() -> None:
    # given a fresh window of 8, when 8 requests are in flight at once, then all 8 got in
    throttle = Throttle(8)
    tickets = [throttle.acquire() for _ in range(8)]
    assert throttle.inflight == 8 and throttle.window == 8
    for t in tickets:
        t.answered = True
        throttle.release(t)
    # and answers do not grow it past its ceiling
    assert throttle.window == 8 and throttle.decreases == 0


def test_a_round_of_429s_halves_the_window_once_not_once_per_429() -> None:
    # given 8 requests in flight, all sent in the same round
    throttle = Throttle(8)
    tickets = [throttle.acquire() for _ in range(8)]
    # when all 8 come back 429
    for t in tickets:
        t.answered = t.throttled = True
        throttle.release(t)
    # then the window halved once (8 -> 4), since the other 7 were sent before the first halving
    assert throttle.window == 4 and throttle.decreases == 1


def test_throttling_in_successive_rounds_halves_down_to_the_floor_and_no_further() -> None:
    throttle = Throttle(32, floor=2)
    # given a server that answers every request 429, one request per round
    for _ in range(10):
        _answer(throttle, throttled=True)
    # then the window went 32 -> 16 -> 8 -> 4 -> 2 and stayed at the floor
    assert throttle.window == 2 and throttle.decreases == 10


def test_answers_regrow_the_window_by_about_one_per_windowful() -> None:
    # given a window halved to 4
    throttle = Throttle(8)
    _answer(throttle, throttled=True)
    assert throttle.window == 4
    # when a window's worth of answers and one more come back, then it is 5; after many more, the ceiling
    for _ in range(5):
        _answer(throttle, throttled=False)
    assert throttle.window == 5
    for _ in range(100):
        _answer(throttle, throttled=False)
    assert throttle.window == 8


def test_a_request_that_got_no_answer_neither_grows_nor_halves_the_window() -> None:
    throttle = Throttle(8)
    _answer(throttle, throttled=True)
    ticket = throttle.acquire()  # a connection reset: no answer, not marked
    throttle.release(ticket)
    assert throttle.window == 4 and throttle.decreases == 1


def test_a_full_window_holds_the_next_request_until_one_leaves() -> None:
    # given a window of 1 with its one request in flight
    throttle = Throttle(4, floor=1)
    for _ in range(2):
        _answer(throttle, throttled=True)
    assert throttle.window == 1
    first = throttle.acquire()
    entered = threading.Event()

    def second() -> None:
        throttle.release(throttle.acquire())
        entered.set()

    worker = threading.Thread(target=second)
    worker.start()
    # when another request asks for room, then it waits
    assert not entered.wait(0.2)
    # and gets in once the first one leaves
    first.answered = True
    throttle.release(first)
    assert entered.wait(5)
    worker.join()


def test_a_floor_above_the_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        Throttle(2, floor=3)
