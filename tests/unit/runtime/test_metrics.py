"""The operator's own metrics rendered at scrape time: the API throttle's window, requests and 429s."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tollgate.adapters.throttle import Throttle
from tollgate.runtime.metrics import ApiWindow


def _scrape(collector: ApiWindow) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_throttled_operator_shows_its_window_and_its_429s() -> None:
    # given the adapter's throttle, one request answered 429 and still waiting to retry
    throttle = Throttle(32, floor=4)
    ticket = throttle.acquire()
    throttle.sent(ticket)
    throttle.answered(ticket, throttled=True)
    collector = ApiWindow()
    collector.throttle = throttle
    # when scraped, then the window is halved, one request is in progress and one 429 counted
    assert _scrape(collector) == {"tollgate_api_window": 16.0, "tollgate_api_requests_in_progress": 1.0,
                                  "tollgate_api_throttled_total": 1.0}
    # and once it is answered and done, nothing is in progress and the count stays
    throttle.answered(ticket, throttled=False)
    throttle.release(ticket)
    assert _scrape(collector)["tollgate_api_requests_in_progress"] == 0.0
    assert _scrape(collector)["tollgate_api_throttled_total"] == 1.0


def test_nothing_is_rendered_before_the_runtime_sets_the_throttle() -> None:
    assert _scrape(ApiWindow()) == {}
