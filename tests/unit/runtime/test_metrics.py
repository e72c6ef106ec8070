"""The operator's own metrics rendered at scrape time: the API throttle's window, requests and 429s, and
the per-object phase and weight."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tollgate.adapters.throttle import Throttle
from tollgate.runtime.metrics import ApiWindow, PerObject


def _scrape(collector: ApiWindow | PerObject) -> dict[str, float]:
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


def test_each_model_deployment_exports_its_current_phase_only() -> None:
    # given two ModelDeployments, one of which moved on from Progressing to RolledBack
    objects = PerObject()
    objects.phase[("ml", "a")] = "Progressing"
    objects.phase[("ml", "b")] = "Ready"
    objects.weight[("ml", "a")] = 10.0
    objects.phase[("ml", "a")] = "RolledBack"
    # when scraped
    registry = CollectorRegistry()
    registry.register(objects)
    text = generate_latest(registry).decode()
    phases = {(s.labels["name"], s.labels["phase"]): s.value for family in text_string_to_metric_families(text)
              for s in family.samples if s.name == "tollgate_modeldeployment_phase"}
    # then one series each, the current phase at 1: no zero for every other phase (9 of every 10 samples,
    # a second of the operator's CPU per scrape at 10,000), and nothing left of the phase it left
    assert phases == {("a", "RolledBack"): 1.0, ("b", "Ready"): 1.0}
    assert 'tollgate_canary_weight_percent{name="a",namespace="ml"} 10.0' in text
