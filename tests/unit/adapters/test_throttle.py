"""The AIMD window over the operator's requests in progress: halved once per round of 429s, regrown by
answers, never below its floor nor above its ceiling, a request holding its place across its retries, and
a waiter let in as soon as there is room."""

from __future__ import annotations

import threading

import pytest

from tollgate.adapters.throttle import URGENT, Throttle


def _answer(throttle: Throttle, *, throttled: bool) -> None:
    with throttle.slot() as ticket:
        throttle.sent(ticket)
        throttle.answered(ticket, throttled=throttled)


def test_an_unloaded_server_sees_the_whole_window() -> None:
    # given a fresh window of 8, when 8 requests are in flight at once, then all 8 got in
    throttle = Throttle(8)
    tickets = [throttle.acquire() for _ in range(8)]
    assert throttle.inflight == 8 and throttle.window == 8
    for t in tickets:
        throttle.answered(t, throttled=False)
        throttle.release(t)
    # and answers do not grow it past its ceiling
    assert throttle.window == 8 and throttle.decreases == 0


def test_a_round_of_429s_halves_the_window_once_not_once_per_429() -> None:
    # given 8 requests in flight, all sent in the same round
    throttle = Throttle(8)
    tickets = [throttle.acquire() for _ in range(8)]
    for t in tickets:
        throttle.sent(t)
    # when all 8 come back 429
    for t in tickets:
        throttle.answered(t, throttled=True)
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
    with throttle.slot() as ticket:  # a connection reset: sent, never answered
        throttle.sent(ticket)
    assert throttle.window == 4 and throttle.decreases == 1


def test_a_request_holds_its_place_while_it_waits_to_retry_and_its_retry_halves_again() -> None:
    # given a window of 2 and one request throttled, waiting out its Retry-After in its place
    throttle = Throttle(4)
    with throttle.slot() as ticket:
        throttle.sent(ticket)
        throttle.answered(ticket, throttled=True)
        assert throttle.window == 2 and throttle.inflight == 1
        # when its retry is throttled again, then that is a new round: halved again
        throttle.sent(ticket)
        throttle.answered(ticket, throttled=True)
        assert throttle.window == 1 and throttle.inflight == 1
    # and its place is free once it is done
    assert throttle.inflight == 0


def test_a_full_window_holds_the_next_request_until_one_leaves() -> None:
    # given a window of 1 with its one request in flight
    throttle = Throttle(4, floor=1)
    for _ in range(2):
        _answer(throttle, throttled=True)
    assert throttle.window == 1
    first = throttle.acquire()
    throttle.sent(first)
    entered = threading.Event()

    def second() -> None:
        throttle.release(throttle.acquire())
        entered.set()

    worker = threading.Thread(target=second)
    worker.start()
    # when another request asks for room, then it waits
    assert not entered.wait(0.2)
    # and gets in once the first one leaves
    throttle.answered(first, throttled=False)
    throttle.release(first)
    assert entered.wait(5)
    worker.join()


def test_a_floor_above_the_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        Throttle(2, floor=3)


def test_an_urgent_request_does_not_wait_for_room_but_still_counts() -> None:
    # given a window of 1, full
    throttle = Throttle(4, floor=1)
    for _ in range(2):
        _answer(throttle, throttled=True)
    waiting = throttle.acquire()
    # when a request that takes traffic off a canary asks for room (URGENT set by the reconciler)
    token = URGENT.set(True)
    try:
        urgent = throttle.acquire()  # would block forever without URGENT: nothing else releases
    finally:
        URGENT.reset(token)
    # then it got in at once, counted as in progress beyond the window
    assert throttle.inflight == 2 and throttle.window == 1
    # and its answer regrows the window like any other
    throttle.sent(urgent)
    throttle.answered(urgent, throttled=False)
    throttle.release(urgent)
    throttle.release(waiting)
    assert throttle.inflight == 0 and throttle.window == 2
