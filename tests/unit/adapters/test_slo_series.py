"""SLO series for charts: the operator's template queries narrowed to one ModelDeployment, asked as
range queries, split by the same rule as a tick's observation (the version under analysis only),
each track's own values, and errors reported, never raised."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from tollgate.adapters.slo_series import MAX_POINTS, pick_points, points, split_matrix, step_for
from tollgate.adapters.slo_templates import selector
from tollgate.api.spec import SLO
from tollgate.engine.observations import AnalysisRequest
from unit.adapters.test_prometheus_adapter import ERROR_RATE, SHIFT, Response, provider


def matrix(*series: tuple[Mapping[str, str], list[tuple[float, str]]]) -> Response:
    """A success body of resultType matrix, as Prometheus' /api/v1/query_range sends it."""
    return Response(200, {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": dict(m), "values": [[t, v] for t, v in points]} for m, points in series]}})


def md(track: str, version: str, part: str = "value") -> dict[str, str]:
    return {"namespace": "ml-fraud", "modeldeployment_namespace": "ml", "modeldeployment": "fraud", "track": track,
            "version": version, "tollgate_part": part}


REQ = AnalysisRequest("ml", "fraud", (ERROR_RATE,), "5s", (("stable", "1.0"), ("canary", "1.1")), sandbox="ml-fraud")


def test_series_is_the_template_query_of_this_modeldeployment_for_the_versions_under_analysis() -> None:
    # given Prometheus with the canary's new version, an older canary version and stable
    def answer(promql: str) -> Response:
        return matrix((md("canary", "1.1"), [(100, "0.01"), (101, "0.2")]),
                      (md("canary", "1.0.9"), [(100, "0.5")]),
                      (md("stable", "1.0"), [(100, "0.001"), (101, "NaN")]),
                      (md("canary", "1.1", "samples"), [(100, "30"), (101, "60")]))

    p, transport = provider(answer)
    # when the chart series are asked for
    (s,) = p.series(REQ, 100, 101)
    # then one range query was sent, scoped to this ModelDeployment, the operator's query text
    (query,) = transport.queries
    assert selector([("ml-fraud", "ml", "fraud")]) in query and "tollgate_part" in query
    assert s.query == query and s.error is None
    # and only the versions under analysis count; NaN is a gap
    assert s.canary == ((100.0, 0.01), (101.0, 0.2))
    assert s.stable == ((100.0, 0.001), (101.0, None))
    assert s.canary_samples == ((100.0, 30.0), (101.0, 60.0))


def test_a_series_holds_each_tracks_own_values_judging_is_the_engines() -> None:
    # score shift: the adapter reports each track's mean; |canary - stable| is engine.analysis.compared
    def answer(promql: str) -> Response:
        return matrix((md("canary", "1.1"), [(100, "0.7"), (101, "0.5")]),
                      (md("stable", "1.0"), [(100, "0.6"), (101, "0.6")]))

    p, _ = provider(answer)
    r = AnalysisRequest("ml", "fraud", (SHIFT,), "5s", (("stable", "1.0"), ("canary", "1.1")), sandbox="ml-fraud")
    (s,) = p.series(r, 100, 101)
    assert s.canary == ((100.0, 0.7), (101.0, 0.5)) and s.stable == ((100.0, 0.6), (101.0, 0.6))


def test_custom_query_series_run_per_track() -> None:
    def answer(promql: str) -> Response:
        value = "1" if 'track="canary"' in promql else "2"
        return matrix(({}, [(100, value)]))

    p, transport = provider(answer)
    slo = SLO(name="custom", query='sum(rate(x{ {{selector}} }[{{window}}]))', max=5)
    (s,) = p.series(AnalysisRequest("ml", "fraud", (slo,), "5s"), 100, 101)
    assert len(transport.queries) == 2 and s.canary == ((100.0, 1.0),) and s.stable == ((100.0, 2.0),)


def test_an_unreachable_prometheus_is_an_error_on_each_series_not_an_exception() -> None:
    def answer(promql: str) -> Response:
        raise requests.ConnectionError("connection refused")

    p, _ = provider(answer, attempts=2, max_retry_time=1.0)
    (s,) = p.series(REQ, 100, 101)
    assert s.canary == () and s.error is not None and "connection refused" in s.error


def test_pure_helpers() -> None:
    # a range never asks for more than MAX_POINTS points, nor a step under a second
    assert step_for(0, 60) == 1 and (3600 / step_for(0, 3600)) <= MAX_POINTS
    # several versions and none named: no guess, unless additive (sample counts)
    two = {"a": {1.0: 1.0}, "b": {1.0: 2.0}}
    assert pick_points(two, None) == {} and pick_points(two, None, additive=True) == {1.0: 3.0}
    assert split_matrix([{"metric": {"track": "canary"}, "values": [[1, "1"]]}]) == {}  # no grouping labels
    assert points({2.0: 1.0, 1.0: None}) == ((1.0, None), (2.0, 1.0))
