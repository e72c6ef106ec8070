"""The analysis window of a canary never reaches back before its current attempt started.

Series are told apart by (sandbox, ModelDeployment, track, model version) only, so a new canary of the same
model version as the previous attempt (a runtime fix superseding a failing canary; tollgate.dev/retry of a
rolled-back revision) shares its series: over a window reaching back before the new attempt started, the
failed attempt's requests would be judged (and counted towards minSamples) as the new one's. While a canary
is younger than its window, its range is its age (status.canaryStartedAt to the tick), floored to whole look
intervals so that young canaries of one tick still share a batched query.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import datetime, timedelta
from typing import Any

import requests
from requests.adapters import BaseAdapter

from tollgate.adapters.prometheus import PrometheusProvider
from tollgate.api.status import Verdict
from tollgate.engine.analysis import assess
from tollgate.engine.observations import AnalysisRequest, MetricValue, SLOObservation
from tollgate.engine.policy import resolve_policy
from tollgate.engine.rollout import Case
from tollgate.engine.timeutil import format_time, parse_duration, parse_time

from .conftest import BAD, CTX, Sim, make_spec, updated

P99 = [{"name": "latency-p99", "max": 0.3, "onNoData": "hold", "maxNoDataDuration": "5m"}]


def _at_step_one(sim: Sim) -> None:
    sim.step()
    sim.step(after=5)
    assert sim.status.canaryWeight == 10, sim.status.message


def _first_tick(sim: Sim) -> tuple[datetime, AnalysisRequest]:
    at = sim.decisions[-1].wake.analysis
    assert at is not None
    request = Case.of(sim.spec, sim.status, CTX, scrape_interval=sim.scrape_interval).analysis_request(at)
    assert request is not None
    return at, request


def _age(sim: Sim, at: datetime) -> float:
    started = parse_time(sim.status.canaryStartedAt)
    assert started is not None
    return (at - started).total_seconds()


def _superseded_by_a_runtime_fix() -> Sim:
    """Canary A (2.0.0) at step one, superseded by B: a new runtime image, the same model version."""
    sim = Sim(make_spec(slos=P99))
    sim.deploy_stable()
    sim.set_version("2.0.0")
    _at_step_one(sim)
    failed = sim.status.canary
    sim.spec = updated(sim.spec, runtime={"image": "registry.example/server:2", "port": 8080})
    _at_step_one(sim)
    assert sim.status.canary is not None and failed is not None
    assert sim.status.canary.revision != failed.revision and sim.status.canary.version == failed.version
    return sim


def test_a_canary_superseding_one_of_the_same_version_is_measured_only_since_it_started() -> None:
    # given canary A superseded by B of the same model version (their series share every label)
    sim = _superseded_by_a_runtime_fix()
    # when B's first analysis tick comes, younger than the 60s window
    at, request = _first_tick(sim)
    age = _age(sim, at)
    assert age < 60
    # then its range reaches back no further than B's start: A's requests are outside it
    assert parse_duration(request.window) <= age
    # and the versions under analysis are still told apart by version, as before
    assert request.version_of("canary") == "2.0.0" and request.version_of("stable") == "1.0.0"


def test_a_retried_revision_is_measured_only_since_the_retry() -> None:
    # given a canary rolled back by failures, retried (the same revision, the same version)
    sim = Sim(make_spec())
    sim.deploy_stable()
    sim.set_version("2.0.0")
    _at_step_one(sim)
    sim.tick(BAD)
    sim.tick(BAD)
    revision = sim.status.rolledBackRevision
    assert revision is not None and sim.status.canary is None
    sim.controls = sim.controls.model_copy(update={"retry": "alice-1"})
    _at_step_one(sim)
    assert sim.status.canary is not None and sim.status.canary.revision == revision
    # when the retry's first analysis tick comes
    at, request = _first_tick(sim)
    # then the range starts after the retry started, not inside the failed attempt
    assert parse_duration(request.window) <= _age(sim, at) < 60


def test_the_promql_of_a_young_canary_reaches_no_further_back_than_its_start() -> None:
    # given B, superseding a canary of the same version, at its first tick
    sim = _superseded_by_a_runtime_fix()
    at, request = _first_tick(sim)
    sent: list[str] = []

    class Recording(BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            sent.append(urllib.parse.parse_qs(urllib.parse.urlsplit(request.url or "").query)["query"][0])
            resp = requests.Response()
            resp.status_code = 200
            resp._content = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
            return resp

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("http://prometheus.test:9090/", Recording())
    # when the provider measures it
    PrometheusProvider("http://prometheus.test:9090", session=session).observe([request], at=at.timestamp())
    # then every range of every query sent (the latency and its sample count) lies within B's age
    ranges = [parse_duration(r) for q in sent for r in re.findall(r"\[([0-9a-z.]+)\]", q)]
    assert ranges and max(ranges) <= _age(sim, at)


def test_once_older_than_its_window_a_canary_is_measured_over_the_whole_window() -> None:
    sim = _superseded_by_a_runtime_fix()
    at, _ = _first_tick(sim)
    case = Case.of(sim.spec, sim.status, CTX)
    started = parse_time(sim.status.canaryStartedAt)
    assert started is not None
    # when it is asked about at its window's age or later
    for later in (started + timedelta(seconds=60), started + timedelta(minutes=7)):
        request = case.analysis_request(max(later, at))
        # then the range is the window as written (young canaries aside, batching is as before)
        assert request is not None and request.window == "60s"


def test_young_canaries_started_within_one_look_interval_share_their_range() -> None:
    # given a canary under analysis, and the look interval 15s (the scrape interval)
    sim = Sim(make_spec(slos=P99), scrape_interval=15.0)
    sim.deploy_stable()
    sim.set_version("2.0.0")
    _at_step_one(sim)
    tick = datetime.fromtimestamp((sim.now.timestamp() // 15 + 40) * 15, tz=sim.now.tzinfo)  # a grid point
    windows = []
    # when it is asked about at one grid point as if it had started 40s, 37s and 26s before it
    for age in (40.0, 37.0, 26.0):
        status = sim.status.model_copy(update={"canaryStartedAt": format_time(tick - timedelta(seconds=age))})
        request = Case.of(sim.spec, status, CTX, scrape_interval=15.0).analysis_request(tick)
        assert request is not None
        # then each range lies within its age
        assert parse_duration(request.window) <= age
        windows.append(request.window)
    # and the two started in one look interval of the grid share a range (one batched query), whole look
    # intervals long
    assert windows == ["30s", "30s", "15s"]


def test_a_canary_younger_than_one_look_interval_gets_its_age_in_whole_seconds() -> None:
    policy = resolve_policy(make_spec(), scrape_interval=15.0)
    start = datetime.fromisoformat("2026-03-01T12:00:00.400+00:00")
    assert policy.analysis_range(start, start + timedelta(seconds=9.9)) == "9s"
    assert policy.analysis_range(start, start + timedelta(seconds=0.6)) == "600ms"
    assert policy.analysis_range(start, start + timedelta(seconds=44.9)) == "30s"
    assert policy.analysis_range(start, start + timedelta(seconds=60)) == "60s"
    assert policy.analysis_range(None, start) == "60s"


def _young(window: str, value: float | None, samples: int) -> SLOObservation:
    return SLOObservation(name="latency-p99", canary=MetricValue(value, samples), stable=MetricValue(0.1, 500),
                          window=window)


def test_missing_data_in_a_young_window_is_no_verdict_even_under_on_no_data_fail() -> None:
    # given an SLO that fails on missing data and needs no minimum of samples
    policy = resolve_policy(make_spec(slos=[{"name": "latency-p99", "max": 0.3, "onNoData": "fail",
                                            "minSamples": 0, "maxNoDataDuration": "2m"}]))
    now = datetime.fromisoformat("2026-03-01T12:00:00+00:00")

    def tick(window: str, at: datetime, prev: tuple[Any, ...] = ()) -> Any:
        return assess(policy.slos, prev, (_young(window, None, 0),), at, failure_limit=0,
                      consecutive_error_limit=2, window=policy.window)

    # when a canary younger than its window has no data yet (its range was cut to its age)
    young = tick("30s", now)
    # then it is no verdict (a hold), not a failure: the clamp alone never rolls back
    assert young.slos[0].verdict is Verdict.INCONCLUSIVE and not young.must_roll_back
    # and over the whole window, missing data fails as onNoData: fail says
    grown = tick("60s", now + timedelta(seconds=30), young.slos)
    assert grown.slos[0].verdict is Verdict.FAIL and grown.must_roll_back
    # and a young window's value over the limit fails as any value does
    bad = assess(policy.slos, (), (_young("30s", 0.9, 40),), now, failure_limit=0, consecutive_error_limit=2,
                 window=policy.window)
    assert bad.slos[0].verdict is Verdict.FAIL
