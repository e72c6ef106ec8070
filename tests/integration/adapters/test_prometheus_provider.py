"""The Prometheus provider against a real Prometheus scraping the traffic simulator (no cluster needed).

Two ModelDeployments share every query: ml/fraud's canary version is faulty (errors, latency, score
shift), ml/churn's canary is healthy. One tick must split the grouped vectors correctly per
ModelDeployment and track, and a stopped Prometheus must give error observations, never an exception.
It runs once per metric profile, the simulator speaking that profile's dialect. Without a cluster the
pods are the simulator's virtual ones, and static scrape targets carry the identity labels the shipped
relabelling would set from the pods (the cluster tests in tests/integration/slo go through it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from integration.prometheus_fixtures import PrometheusFactory
from tollgate.adapters.prometheus import PrometheusProvider
from tollgate.api.spec import SLO
from tollgate.engine.observations import AnalysisRequest, SLOObservation
from tollgate.engine.stats import quantile
from tollgate_testkit.dialects import requests_series
from tollgate_testkit.prometheus import ScrapeTarget
from tollgate_testkit.simulator import Fault, Simulator, StaticSplits, TrackShare, TrafficSplit

WINDOW = "10s"
SLOS = (
    SLO(name="error-rate", max=0.05),
    SLO(name="latency-p50", max=0.2),
    SLO(name="score-shift", max=0.05),
    SLO(name="invalid-output-rate", max=0.01),
    SLO(name="request-rate", min=1),
)
ERRORS_PER_SECOND = {  # a custom query per dialect: 5xx per second, written with {{selector}}
    "mlserver": 'sum(rate(rest_server_requests_total{ {{selector}}, status_code="500" }[{{window}}]))',
    "istio": 'sum(rate(istio_requests_total{ {{selector}}, response_code="500" }[{{window}}]))',
    "otel": 'sum(rate(http_server_request_duration_seconds_count{ {{selector}}, http_response_status_code="500" }'
            "[{{window}}]))",
}


def requests_for(dialect: str) -> list[AnalysisRequest]:
    slos = (*SLOS, SLO(name="errors-per-second", query=ERRORS_PER_SECOND[dialect], max=1))
    return [AnalysisRequest("ml", name, slos, WINDOW, sandbox=f"ml-{name}-sbx") for name in ("fraud", "churn")]


def split(name: str, model: str, canary_version: str) -> TrafficSplit:
    tracks = (TrackShare("stable", "1.0.0", 0.5), TrackShare("canary", canary_version, 0.5))
    return TrafficSplit("ml", name, model, tracks, source="status", sandbox=f"ml-{name}-sbx")


SPLITS = (split("fraud", "fraud-scorer", "2.0.0"), split("churn", "churn-model", "2.0.0"))


def targets(simulator: Simulator) -> list[ScrapeTarget]:
    """One static target per virtual pod, labelled as the shipped relabelling labels a real pod."""
    out = []
    for sp in SPLITS:
        for share in sp.tracks:
            (pod,) = sp.pods_of(share.track)
            out.append(ScrapeTarget(
                job=f"pod-{pod.name}", address=simulator.address,
                metrics_path=Simulator.metrics_path(pod.namespace, pod.name),
                labels={"namespace": pod.namespace, "pod": pod.name, "modeldeployment_namespace": sp.namespace,
                        "modeldeployment": sp.name, "track": share.track, "version": share.version}))
    return out


@pytest.fixture(params=["mlserver", "istio", "otel"])
def simulator(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    splits = StaticSplits()
    splits.set(*SPLITS)
    faults = {"fraud-scorer@2.0.0": Fault(error_rate=0.2, added_latency=0.2, score_shift=0.25)}
    with Simulator(splits, faults, rate=100, seed=11, tick_interval=0.2, dialect=request.param) as sim:
        yield sim


class CountingSession(requests.Session):
    """A real HTTP session that counts the queries it sends (to check the batching on the wire)."""

    queries = 0

    def request(self, method: str | bytes, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if "/api/v1/query" in str(url):
            self.queries += 1
        return super().request(method, url, *args, **kwargs)


def by_name(observations: tuple[SLOObservation, ...]) -> dict[str, SLOObservation]:
    return {o.name: o for o in observations}


def value(obs: SLOObservation, track: str) -> float:
    metric = obs.canary if track == "canary" else obs.stable
    assert metric is not None and metric.value is not None, obs
    return metric.value


def test_grouped_queries_give_per_modeldeployment_per_track_values_and_outages_give_errors(
    prometheus: PrometheusFactory, simulator: Simulator
) -> None:
    # given Prometheus scraping the simulator's pods every second, in the dialect of the profile
    prom = prometheus(targets(simulator), scrape_interval="1s")
    session = CountingSession()
    provider = PrometheusProvider(prom.url, session=session, timeout=2.0, attempts=2, max_retry_time=3.0,
                                  profile=simulator.dialect)
    reqs = requests_for(simulator.dialect)
    # and series older than the window, so every rate covers all of it (the first scrape comes a few
    # seconds after start)
    prom.wait_for(
        f"min(count_over_time({requests_series(simulator.dialect)}[30s]))",
        lambda r: bool(r) and float(r[0]["value"][1]) >= 14,
        timeout=60,
    )

    # when one analysis tick observes both ModelDeployments
    out = provider.observe(reqs)

    # then one query per built-in template plus one samples query covers both; customs run per track
    assert session.queries == 1 + 5 + 2 * 2
    fraud, churn = by_name(out[("ml", "fraud")]), by_name(out[("ml", "churn")])
    assert all(o.error is None for o in (*fraud.values(), *churn.values())), out

    # and the faulty canary's values are its own, the healthy one's are clean
    assert 0.12 < value(fraud["error-rate"], "canary") < 0.28
    assert value(fraud["error-rate"], "stable") == 0.0
    assert value(churn["error-rate"], "canary") == 0.0
    assert value(fraud["latency-p50"], "canary") - value(fraud["latency-p50"], "stable") > 0.12
    assert abs(value(churn["latency-p50"], "canary") - value(churn["latency-p50"], "stable")) < 0.03
    # (score-shift: each track's mean; the engine judges their distance)
    assert 0.15 < abs(value(fraud["score-shift"], "canary") - value(fraud["score-shift"], "stable")) < 0.3
    assert abs(value(churn["score-shift"], "canary") - value(churn["score-shift"], "stable")) < 0.05
    assert value(churn["invalid-output-rate"], "canary") == 0.0
    assert 30 < value(fraud["request-rate"], "canary") < 70  # 100 rps x 50 %
    assert value(fraud["errors-per-second"], "canary") > 3
    # and a healthy track has no 5xx series at all, as a real server: the custom query finds nothing (no
    # data, not 0), while the built-in error-rate reads it as 0 (above)
    stable_errors = fraud["errors-per-second"].stable
    assert stable_errors is not None and stable_errors.value is None
    assert ('namespace="ml-fraud-sbx", modeldeployment_namespace="ml", modeldeployment="fraud", track="canary"'
            in fraud["errors-per-second"].query)

    # and sample counts are the requests of each track over the window (about 50 rps x 10 s)
    canary = fraud["error-rate"].canary
    assert canary is not None and 300 < canary.samples < 700
    assert fraud["error-rate"].window == WINDOW
    assert "sum by (namespace, modeldeployment_namespace, modeldeployment, track, version)" in fraud[
        "error-rate"].query

    # and a latency limit's window comes with its histogram (in seconds whatever the dialect's unit), which
    # reads as Prometheus' own histogram_quantile of the same series: the test and the estimate see one
    # distribution (engine.limits)
    for obs in (fraud["latency-p50"], churn["latency-p50"]):
        for metric in (obs.canary, obs.stable):
            assert metric is not None and metric.value is not None and metric.buckets is not None, obs
            assert metric.buckets[-1][0] == math.inf and 0.1 in dict(metric.buckets)
            assert abs(metric.buckets[-1][1] - metric.samples) <= 0.1 * metric.samples + 5, metric
            assert quantile(0.5, metric.buckets) == pytest.approx(metric.value, rel=1e-6, abs=1e-9), metric

    # and a score-shift max brings each track's score histogram (in scores, every dialect), whose outputs
    # are the quality export's count behind the mean
    for obs in (fraud["score-shift"], churn["score-shift"]):
        for metric in (obs.canary, obs.stable):
            assert metric is not None and metric.buckets is not None, obs
            assert metric.buckets[-1][0] == math.inf and 0.5 in dict(metric.buckets) and metric.buckets[-1][1] > 0

    # when Prometheus goes down mid-analysis
    prom.stop()
    down = provider.observe(reqs)

    # then every SLO of every ModelDeployment is an error observation, and nothing raised
    assert provider.healthy() is False
    for key in (("ml", "fraud"), ("ml", "churn")):
        assert [o.name for o in down[key]] == [s.name for s in reqs[0].slos]
        for obs in down[key]:
            assert obs.error is not None and obs.canary is None and obs.stable is None, obs

    # when it comes back on the same port, the same provider observes again
    prom.start()
    assert provider.healthy() is True
    back = by_name(provider.observe(reqs)[("ml", "fraud")])
    assert back["error-rate"].error is None
    assert not math.isnan(value(back["error-rate"], "canary"))


def test_streams_since_each_canary_started_come_from_real_counters(
    prometheus: PrometheusFactory, simulator: Simulator
) -> None:
    # given Prometheus scraping the simulator's pods in the profile's dialect, and two canaries compared
    # with their baseline
    prom = prometheus(targets(simulator), scrape_interval="1s")
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prom.wait_for(
        f"min(count_over_time({requests_series(simulator.dialect)}[30s]))",
        lambda r: bool(r) and float(r[0]["value"][1]) >= 14,
        timeout=60,
    )
    compared = (SLO(name="error-rate", max=0.5, maxIncreaseOverBaseline=0.01),
                SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.05))
    session = CountingSession()
    provider = PrometheusProvider(prom.url, session=session, timeout=2.0, attempts=2, max_retry_time=3.0,
                                  profile=simulator.dialect)
    reqs = [AnalysisRequest("ml", name, compared, WINDOW, stream_since=started, sandbox=f"ml-{name}-sbx")
            for name in ("fraud", "churn")]
    # when one tick observes them
    at = time.time()
    out = provider.observe(reqs, at=at)
    # then still one query per template, and each canary's stream counts its requests since it started
    assert session.queries == 2
    fraud, churn = by_name(out[("ml", "fraud")]), by_name(out[("ml", "churn")])
    age = at - datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    for obs in (fraud["error-rate"], churn["error-rate"]):
        assert obs.error is None and obs.canary_stream is not None and obs.stable_stream is not None, obs
        assert 0.5 * 50 * age < obs.canary_stream.samples < 1.5 * 50 * age, (obs.canary_stream, age)
        assert obs.stream_since == started
    # and the faulty canary's counted errors are about its 20%, the healthy one's zero
    stream = fraud["error-rate"].canary_stream
    assert stream is not None and stream.events is not None
    assert 0.12 < stream.events / stream.samples < 0.28
    assert churn["error-rate"].canary_stream is not None and churn["error-rate"].canary_stream.events == 0.0
    # and latency streams are whole histograms, the slow canary's shifted up
    slow, fast = fraud["latency-p99"].canary_stream, churn["latency-p99"].canary_stream
    assert slow is not None and slow.buckets is not None and fast is not None and fast.buckets is not None
    assert slow.buckets[-1][0] == math.inf and abs(slow.buckets[-1][1] - slow.samples) <= 0.1 * slow.samples + 5
    # (bounds in seconds whatever the dialect's unit: istio counts milliseconds)
    below_100ms = dict(slow.buckets)[0.1] / slow.buckets[-1][1]
    assert below_100ms < 0.1 < dict(fast.buckets)[0.1] / fast.buckets[-1][1]
