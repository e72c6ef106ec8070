"""A real Prometheus (Debian's package) scrapes a target the test started and answers PromQL about it."""

from __future__ import annotations

import pytest
from prometheus_client import Counter

from integration.prometheus_fixtures import PrometheusFactory, serve_metrics
from tollgate_testkit.prometheus import ScrapeTarget


def test_prometheus_scrapes_a_target_and_answers_a_query(prometheus: PrometheusFactory) -> None:
    with serve_metrics() as target:
        # given a counter served on loopback, incremented 42 times on one label set and 7 on another
        hits = Counter("tollgate_test_hits", "hits", ["track"], registry=target.registry)
        hits.labels(track="stable").inc(42)
        hits.labels(track="canary").inc(7)

        # when Prometheus scrapes it every second
        prom = prometheus([ScrapeTarget(job="probe", address=target.address)], scrape_interval="1s")
        prom.wait_for('up{job="probe"} == 1', timeout=30)

        # then PromQL over the scraped series gives the real values, per label and aggregated
        assert prom.query_value('tollgate_test_hits_total{job="probe", track="stable"}') == 42.0
        assert prom.query_value('sum(tollgate_test_hits_total{job="probe"})') == 49.0
        result = prom.query("tollgate_test_hits_total")
        assert {r["metric"]["track"]: float(r["value"][1]) for r in result} == {"stable": 42.0, "canary": 7.0}


def test_prometheus_restarts_on_the_same_port_and_reloads_targets(prometheus: PrometheusFactory) -> None:
    # given a running Prometheus with no targets
    prom = prometheus([], scrape_interval="1s")
    port = prom.port

    # when it is stopped, queries fail; started again, it answers on the same port
    prom.stop()
    assert not prom.running
    with pytest.raises(OSError):
        prom.query("up")
    prom.start()
    assert prom.port == port
    assert prom.query("up") == []

    # and a reload with a new target makes it scrape that target
    with serve_metrics() as target:
        Counter("tollgate_test_reloaded", "x", registry=target.registry).inc(3)
        prom.reload([ScrapeTarget(job="late", address=target.address)])
        prom.wait_for('tollgate_test_reloaded_total{job="late"}', timeout=30)
        assert prom.query_value('tollgate_test_reloaded_total{job="late"}') == 3.0
