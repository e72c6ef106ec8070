"""The Prometheus adapter: batched query rendering and mapping of real Prometheus JSON to observations.

The HTTP seam is a requests transport adapter answering with response bodies shaped exactly as
Prometheus' /api/v1/query returns them; the integration tests run the same code against a real server.
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from tollgate.adapters.metric_profiles import PROFILES
from tollgate.adapters.prometheus import (
    Credentials,
    PrometheusProvider,
    QueryError,
    single_value,
    split_vector,
)
from tollgate.adapters.slo_templates import TEMPLATES, render_custom, selector, track_selector
from tollgate.api.spec import SLO, MetricsProfile
from tollgate.engine.observations import AnalysisRequest, MetricValue, StreamData, TemplateQuery
from tollgate.ports.metrics import MetricsProvider

URL = "http://prometheus.test:9090"
TOKEN = "s3cr3t-t0ken-value"
PASSWORD = "hunter2-password"

Answer = Callable[[str], "Response"]


@dataclass
class Response:
    status: int
    body: Any


def vector(*series: tuple[Mapping[str, str], str]) -> Response:
    """A success body of resultType vector, as Prometheus sends it."""
    return Response(
        200,
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": dict(m), "value": [1700000000.123, v]} for m, v in series],
            },
        },
    )


def labels(ns: str, name: str, track: str, sandbox: str | None = None) -> dict[str, str]:
    """Identity labels as the shipped relabelling sets them; the sandbox defaults to `<ns>-<name>`."""
    return {"namespace": sandbox or f"{ns}-{name}", "modeldeployment_namespace": ns, "modeldeployment": name,
            "track": track}


def answer_of(values: tuple[tuple[Mapping[str, str], str], ...],
              samples: tuple[tuple[Mapping[str, str], str], ...]) -> Response:
    """A template query's answer: its values and its sample counts, told apart by `tollgate_part`."""
    return vector(*((dict(m, tollgate_part="value"), v) for m, v in values),
                  *((dict(m, tollgate_part="samples"), v) for m, v in samples))


@dataclass
class Transport(BaseAdapter):
    """Answers /api/v1/query from a function of the PromQL; records what was sent."""

    answer: Answer
    queries: list[str] = field(default_factory=list)
    headers: list[Mapping[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urllib.parse.urlsplit(request.url or "")
        self.headers.append(dict(request.headers))
        resp = requests.Response()
        resp.request = request
        resp.url = request.url or ""
        if url.path == "/-/ready":
            resp.status_code, resp._content = 200, b"Prometheus Server is Ready.\n"
            return resp
        promql = urllib.parse.parse_qs(url.query)["query"][0]
        self.queries.append(promql)
        answer = self.answer(promql)
        resp.status_code = answer.status
        resp._content = json.dumps(answer.body).encode()
        return resp

    def close(self) -> None:
        pass


def provider(answer: Answer, **kwargs: Any) -> tuple[PrometheusProvider, Transport]:
    transport = Transport(answer)
    session = requests.Session()
    session.mount(URL + "/", transport)  # longer prefix than the library's own mount: wins
    return PrometheusProvider(URL, session=session, **kwargs), transport


def req(ns: str, name: str, *slos: SLO, window: str = "1m", profile: str | None = None) -> AnalysisRequest:
    return AnalysisRequest(namespace=ns, name=name, slos=slos, window=window, sandbox=f"{ns}-{name}",
                           profile=profile)


ERROR_RATE = SLO(name="error-rate", max=0.01)
P99 = SLO(name="latency-p99", max=0.25)
SHIFT = SLO(name="score-shift", max=0.05)


# --- rendering ---------------------------------------------------------------------------------------
def test_selector_covers_every_modeldeployment_and_only_the_two_tracks() -> None:
    # given ModelDeployments in two namespaces, one with a dot in its name
    sel = selector([("ml-team-fraud", "ml-team", "fraud"), ("risk-credit", "risk", "credit.v2"),
                    ("ml-team-churn", "ml-team", "churn")])

    # then one regex per label lists each value once, dots escaped for both RE2 and PromQL strings
    assert sel == (
        'namespace=~"ml\\\\-team\\\\-churn|ml\\\\-team\\\\-fraud|risk\\\\-credit", '
        'modeldeployment_namespace=~"ml\\\\-team|risk", modeldeployment=~"churn|credit\\\\.v2|fraud", '
        'track=~"canary|stable"'
    )


BY = "namespace, modeldeployment_namespace, modeldeployment, track, version"


def test_error_rate_is_grouped_and_keeps_tracks_without_errors() -> None:
    # when the error-rate template is rendered for MLServer
    q = TEMPLATES["error-rate"].render('namespace=~"a"', "2m", PROFILES["mlserver"])

    # then it is one grouped ratio of inference requests whose numerator falls back to 0 for tracks
    # with no 5xx series
    total = f'sum by ({BY}) (rate(rest_server_requests_total{{namespace=~"a", path=~".+/infer"}}[2m]))'
    errors = (f'sum by ({BY}) (rate(rest_server_requests_total{{namespace=~"a", path=~".+/infer", '
              f'status_code=~"5.."}}[2m]))')
    assert q == f"({errors} or 0 * {total}) / {total}"


def test_istio_reads_inbound_requests_and_converts_milliseconds() -> None:
    p = PROFILES["istio"]
    err = TEMPLATES["error-rate"].render('namespace=~"a"', "1m", p)
    assert 'istio_requests_total{namespace=~"a", reporter="destination", response_code=~"5.."}' in err
    p99 = TEMPLATES["latency-p99"].render('namespace=~"a"', "1m", p)
    assert p99 == (f"histogram_quantile(0.99, sum by ({BY}, le) (rate(istio_request_duration_milliseconds_bucket"
                   '{namespace=~"a", reporter="destination"}[1m]))) * 0.001')


def test_otel_counts_requests_with_the_duration_histogram() -> None:
    p = PROFILES["otel"]
    assert TEMPLATES["request-rate"].render('namespace=~"a"', "1m", p) == (
        f'sum by ({BY}) (rate(http_server_request_duration_seconds_count{{namespace=~"a"}}[1m]))')
    err = TEMPLATES["error-rate"].render('namespace=~"a"', "1m", p)
    assert 'http_response_status_code=~"5.."' in err
    assert TEMPLATES["latency-p95"].render('namespace=~"a"', "1m", p) == (
        f"histogram_quantile(0.95, sum by ({BY}, le) "
        '(rate(http_server_request_duration_seconds_bucket{namespace=~"a"}[1m])))')


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_quality_templates_read_the_quality_export_in_every_profile(profile: str) -> None:
    p = PROFILES[profile]
    shift = TEMPLATES["score-shift"].render('namespace=~"a"', "1m", p)
    assert shift == (f'sum by ({BY}) (rate(tollgate_model_score_sum{{namespace=~"a"}}[1m])) / '
                     f'sum by ({BY}) (rate(tollgate_model_score_count{{namespace=~"a"}}[1m]))')
    invalid = TEMPLATES["invalid-output-rate"].render('namespace=~"a"', "1m", p)
    assert "tollgate_model_output_invalid_sum" in invalid and "tollgate_model_output_invalid_count" in invalid


def test_every_profile_the_api_accepts_exists_and_no_simulator_name_is_left() -> None:
    assert {m.value for m in MetricsProfile} == set(PROFILES)
    for p in PROFILES.values():
        for name in TEMPLATES:
            assert "sim" not in TEMPLATES[name].render("x", "1m", p)


def test_custom_query_variables_are_substituted_with_or_without_spaces() -> None:
    q = render_custom(
        'sum(rate(x{ns="{{namespace}}", md="{{ name }}", t="{{track}}", namespace="{{sandbox}}"}[{{window}}]))'
        " / sum(y{ {{selector}} }) / {{unknown}}",
        namespace="ml",
        name="fraud",
        track="canary",
        window="30s",
        sandbox="ml-fraud",
        selector=track_selector(("ml-fraud", "ml", "fraud"), "canary"),
    )
    assert q == ('sum(rate(x{ns="ml", md="fraud", t="canary", namespace="ml-fraud"}[30s])) / sum(y{ '
                 'namespace="ml-fraud", modeldeployment_namespace="ml", modeldeployment="fraud", track="canary" }) '
                 "/ {{unknown}}")


# --- result parsing ----------------------------------------------------------------------------------
def test_split_vector_reads_nan_and_inf_and_ignores_series_without_grouping_labels() -> None:
    body = vector(
        (labels("a", "m", "canary"), "NaN"),
        (labels("a", "m", "stable"), "+Inf"),
        ({"namespace": "a"}, "1"),
    ).body
    out = split_vector(body["data"]["result"])
    assert set(out) == {("a-m", "a", "m", "canary"), ("a-m", "a", "m", "stable")}
    assert math.isnan(out[("a-m", "a", "m", "canary")])
    assert out[("a-m", "a", "m", "stable")] == math.inf


def test_single_value_of_scalar_empty_one_and_many_series() -> None:
    assert single_value([1700000000.1, "0.5"]) == 0.5  # resultType scalar
    assert single_value([]) is None
    assert single_value([{"metric": {}, "value": [1.0, "2"]}]) == 2.0
    two = [{"metric": {"a": "1"}, "value": [1.0, "2"]}, {"metric": {"a": "2"}, "value": [1.0, "3"]}]
    with pytest.raises(QueryError, match="2 series"):
        single_value(two)


# --- observe: batching and mapping -------------------------------------------------------------------
def test_one_query_per_template_covers_every_modeldeployment_and_values_are_split_per_track() -> None:
    # given two ModelDeployments in analysis, each with error-rate and latency-p99
    samples = (
        (labels("ml", "fraud", "canary"), "212.4"),
        (labels("ml", "fraud", "stable"), "1890"),
        (labels("ml", "churn", "canary"), "40"),
        (labels("ml", "churn", "stable"), "400"),
        (labels("ml", "other", "canary"), "9"),  # not requested: ignored
    )

    def answer(promql: str) -> Response:
        assert "increase(" in promql, "each template query carries its own sample counts"
        if "histogram_quantile" in promql:
            return answer_of(((labels("ml", "fraud", "canary"), "0.31"),
                              (labels("ml", "fraud", "stable"), "0.12")), samples)
        return answer_of((
            (labels("ml", "fraud", "canary"), "0.1"),
            (labels("ml", "fraud", "stable"), "0"),
            (labels("ml", "churn", "canary"), "NaN"),
            (labels("ml", "churn", "stable"), "0.002"),
        ), samples)

    prom, transport = provider(answer)

    # when one tick observes both
    out = prom.observe([req("ml", "fraud", ERROR_RATE, P99), req("ml", "churn", ERROR_RATE, P99)], at=1.7e9)

    # then two queries were sent in all (error-rate, latency-p99): one per template, not one per canary,
    # and no separate one for the sample counts
    assert len(transport.queries) == 2
    assert all('modeldeployment=~"churn|fraud"' in q for q in transport.queries)

    # and each ModelDeployment gets its own per-track values with sample counts, in spec order
    fraud_err, fraud_p99 = out[("ml", "fraud")]
    assert (fraud_err.name, fraud_p99.name) == ("error-rate", "latency-p99")
    assert fraud_err.canary == MetricValue(0.1, 212)
    assert fraud_err.stable == MetricValue(0.0, 1890)
    assert fraud_err.error is None
    assert fraud_err.window == "1m"
    # and its evidence shows the same query for fraud alone: no other ModelDeployment of the batch
    assert 'modeldeployment=~"fraud"' in fraud_err.query and "churn" not in fraud_err.query
    assert fraud_p99.canary == MetricValue(0.31, 212)

    churn_err, churn_p99 = out[("ml", "churn")]
    assert churn_err.canary is not None and churn_err.canary.value is not None
    assert math.isnan(churn_err.canary.value)  # NaN passed through: the engine calls it no data
    assert churn_err.canary.samples == 40
    assert churn_err.stable == MetricValue(0.002, 400)
    # and an empty result for a track is None, not 0
    assert churn_p99.canary == MetricValue(None, 40)
    assert churn_p99.stable == MetricValue(None, 400)


def test_different_windows_are_batched_separately() -> None:
    prom, transport = provider(lambda q: vector())
    prom.observe([req("a", "x", ERROR_RATE, window="1m"), req("a", "y", ERROR_RATE, window="2m")])
    assert len(transport.queries) == 2  # error-rate (with its counts) x two windows
    assert sum("[2m]" in q for q in transport.queries) == 1


def test_score_shift_reports_each_tracks_mean_score() -> None:
    # given mean scores 0.62 (canary) and 0.70 (stable)
    def answer(promql: str) -> Response:
        return answer_of(((labels("a", "m", "canary"), "0.62"), (labels("a", "m", "stable"), "0.70")),
                         ((labels("a", "m", "canary"), "100"), (labels("a", "m", "stable"), "900")))

    prom, _ = provider(answer)
    (obs,) = prom.observe([req("a", "m", SHIFT)])[("a", "m")]

    # then each track carries its own mean and samples (the shift is judged by the engine:
    # unit/engine/test_analysis.py)
    assert obs.canary == MetricValue(pytest.approx(0.62), 100)  # type: ignore[arg-type]
    assert obs.stable == MetricValue(pytest.approx(0.70), 900)  # type: ignore[arg-type]


def test_score_shift_without_a_stable_mean_has_no_stable_value() -> None:
    prom, _ = provider(lambda q: answer_of(((labels("a", "m", "canary"), "0.62"),), ()))
    (obs,) = prom.observe([req("a", "m", SHIFT)])[("a", "m")]
    assert obs.canary is not None and obs.canary.value == pytest.approx(0.62)
    assert obs.stable is not None and obs.stable.value is None


def test_custom_queries_run_per_modeldeployment_and_track_with_variables() -> None:
    custom = SLO(name="gpu-util", query='avg(gpu{namespace="{{sandbox}}", md="{{namespace}}/{{name}}", t="{{track}}"})',
                 max=0.9)

    def answer(promql: str) -> Response:
        if "increase(" in promql:
            return vector((labels("a", "m", "canary"), "10"), (labels("a", "m", "stable"), "20"))
        value = "0.8" if 't="canary"' in promql else "0.4"
        return vector(({}, value))

    prom, transport = provider(answer)
    (obs,) = prom.observe([req("a", "m", custom)])[("a", "m")]

    assert 'avg(gpu{namespace="a-m", md="a/m", t="canary"})' in transport.queries
    assert 'avg(gpu{namespace="a-m", md="a/m", t="stable"})' in transport.queries
    assert obs.canary == MetricValue(0.8, 10)
    assert obs.stable == MetricValue(0.4, 20)
    assert 'avg(gpu{namespace="a-m", md="a/m", t="canary"})' in obs.query
    assert 'avg(gpu{namespace="a-m", md="a/m", t="stable"})' in obs.query


def test_a_custom_query_returning_several_series_is_an_error_not_a_guess() -> None:
    custom = SLO(name="c", query="up{ {{selector}} }", max=1)

    def answer(promql: str) -> Response:
        if "increase(" in promql:
            return vector()
        return vector(({"job": "a"}, "1"), ({"job": "b"}, "1"))

    prom, _ = provider(answer)
    (obs,) = prom.observe([req("a", "m", custom)])[("a", "m")]
    assert obs.error is not None and "2 series" in obs.error
    assert obs.canary is None


def test_a_custom_query_reading_another_namespace_is_refused_and_never_sent() -> None:
    # given a tenant whose sandbox is a-m and whose queries read b's series, no namespace at all, and the
    # ModelDeployment's own namespace instead of its sandbox (series of pods in namespace a need not be its)
    spying = SLO(name="spy", query='sum(rate(rest_server_requests_total{namespace="b"}[{{window}}]))', max=1)
    bare = SLO(name="bare", query="sum(rate(rest_server_requests_total[{{window}}]))", max=1)
    wrong = SLO(name="wrong", query='sum(rate(rest_server_requests_total{namespace="{{namespace}}", '
                                    'modeldeployment="{{name}}"}[{{window}}]))', max=1)
    prom, transport = provider(lambda q: vector(({}, "1")))
    # when the tick runs
    observed = prom.observe([req("a", "m", spying, bare, wrong)])[("a", "m")]
    # then none reached Prometheus, and each SLO reports why and how to fix it
    assert not [q for q in transport.queries if "increase(" not in q]
    for obs in observed:
        assert obs.error is not None and obs.error.startswith("custom query refused"), obs
        assert 'namespace="a-m"' in obs.error and "{{selector}}" in obs.error
        assert obs.canary is None and obs.stable is None


def test_an_slotemplate_is_scoped_like_a_custom_query_a_clusterslotemplate_is_trusted() -> None:
    # given a tenant's SLOTemplate reading every namespace, and the platform's ClusterSLOTemplate doing the same
    unscoped = "sum(rate(rest_server_requests_total[{{window}}]))"
    tenant = SLO.model_validate({"name": "t", "max": 1, "templateRef": {"kind": "SLOTemplate", "name": "x"}})
    platform = SLO.model_validate({"name": "p", "max": 1, "templateRef": {"name": "y"}})
    r = AnalysisRequest("a", "m", (tenant, platform), "1m", sandbox="a-m", templates=(
        ("t", TemplateQuery("SLOTemplate", "x", unscoped)), ("p", TemplateQuery("ClusterSLOTemplate", "y", unscoped))))
    prom, transport = provider(lambda q: vector(({}, "1")))
    t, p = prom.observe([r])[("a", "m")]
    # then the tenant's is refused and never sent; the platform's runs
    assert t.error is not None and t.error.startswith("SLOTemplate 'x' refused") and 'namespace="a-m"' in t.error
    assert p.error is None and transport.queries.count(unscoped.replace("{{window}}", "1m")) == 1


def test_a_custom_query_with_the_selector_variable_runs() -> None:
    scoped = SLO(name="own", query="sum(rate(rest_server_requests_total{ {{selector}} }[{{window}}]))", max=1)
    prom, transport = provider(lambda q: vector(({}, "1")))
    (obs,) = prom.observe([req("a", "m", scoped)])[("a", "m")]
    assert obs.error is None
    exact = 'namespace="a-m", modeldeployment_namespace="a", modeldeployment="m"'
    assert sum(exact in q for q in transport.queries) == 2


# --- failures ----------------------------------------------------------------------------------------
def test_unreachable_prometheus_yields_error_observations_after_bounded_retries() -> None:
    # given a Prometheus on a port nothing listens on
    prom = PrometheusProvider("http://127.0.0.1:9", timeout=1.0, attempts=3, max_retry_time=5.0)

    # when a tick observes
    out = prom.observe([req("a", "m", ERROR_RATE, P99)])

    # then every SLO carries an error string and no value; nothing raised
    assert [o.name for o in out[("a", "m")]] == ["error-rate", "latency-p99"]
    for obs in out[("a", "m")]:
        assert obs.error is not None and "ConnectionError" in obs.error
        assert obs.canary is None and obs.stable is None
    assert prom.healthy() is False


def test_a_refused_query_is_not_retried_and_other_templates_still_answer() -> None:
    def answer(promql: str) -> Response:
        if "histogram_quantile" in promql:
            return Response(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
        return answer_of(((labels("a", "m", "canary"), "3"),), ((labels("a", "m", "canary"), "3"),))

    prom, transport = provider(answer, attempts=3)
    err, p99 = prom.observe([req("a", "m", ERROR_RATE, P99)])[("a", "m")]

    assert sum("histogram_quantile" in q for q in transport.queries) == 1  # 400: no retry
    assert p99.error is not None and "400" in p99.error and "parse error" in p99.error
    assert "histogram_quantile(0.99" in p99.query
    assert err.error is None and err.canary == MetricValue(3.0, 3)


def test_server_errors_are_retried_up_to_the_attempt_bound() -> None:
    prom, transport = provider(lambda q: Response(503, {"status": "error"}), attempts=3)
    (obs,) = prom.observe([req("a", "m", ERROR_RATE)])[("a", "m")]
    assert obs.error is not None and "503" in obs.error
    assert len(transport.queries) == 3  # error-rate (with its counts), three attempts


# --- credentials -------------------------------------------------------------------------------------
def test_bearer_token_is_sent_but_never_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    # given a provider with a bearer token, and one query that fails
    def answer(promql: str) -> Response:
        if "histogram_quantile" in promql:
            return Response(500, {"status": "error", "error": "boom"})
        return vector()

    prom, transport = provider(answer, credentials=Credentials(bearer_token=TOKEN), attempts=1)

    # when it observes and reports its health
    out = prom.observe([req("a", "m", ERROR_RATE, P99)])
    assert prom.healthy()

    # then the token reached Prometheus in the Authorization header
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for h in transport.headers)
    # and appears nowhere a person or a log shipper could read it
    assert TOKEN not in repr(prom) and TOKEN not in str(prom)
    assert TOKEN not in repr(Credentials(bearer_token=TOKEN))
    assert TOKEN not in caplog.text
    assert all(TOKEN not in repr(o) for o in out[("a", "m")])
    assert "auth=bearer" in repr(prom)


def test_basic_auth_password_is_never_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    prom = PrometheusProvider(
        f"http://alice:{PASSWORD}@127.0.0.1:9",
        credentials=Credentials(username="alice", password=PASSWORD),
        timeout=0.5,
        attempts=1,
    )
    out = prom.observe([req("a", "m", ERROR_RATE)])
    assert PASSWORD not in repr(prom)
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in repr(o) for o in out[("a", "m")])


def test_the_provider_satisfies_the_metrics_provider_protocol() -> None:
    prom: MetricsProvider = PrometheusProvider(URL)
    assert isinstance(prom, MetricsProvider)


def test_only_the_version_under_analysis_counts_on_a_track() -> None:
    # given a canary track that still holds the previous canary's series inside the window
    from tollgate.adapters.prometheus import pick, split_versions

    result = [
        {"metric": {**labels("ml", "m", "canary"), "version": "1.1.0"}, "value": [0, "0.0"]},
        {"metric": {**labels("ml", "m", "canary"), "version": "1.2.0"}, "value": [0, "0.15"]},
    ]
    values = split_versions(result)[("ml-m", "ml", "m", "canary")]
    # when the value of the version under analysis is picked
    # then the old canary's healthy series does not dilute the faulty one
    assert pick(values, "1.2.0") == 0.15
    assert pick(values, "9.9.9") is None
    # and without a version, several series are ambiguous (no data), while counts add up
    assert pick(values, None) is None
    assert pick(values, None, additive=True) == 0.15


def test_series_from_another_sandbox_never_count_for_a_modeldeployment() -> None:
    # given pods elsewhere that copy fraud's labels (same modeldeployment_namespace and name), in a
    # namespace that is not fraud's sandbox
    forged = "attacker-ns"

    def answer(promql: str) -> Response:
        return answer_of(((labels("ml", "fraud", "canary"), "0.0"), (labels("ml", "fraud", "canary", forged), "1.0"),
                          (labels("ml", "fraud", "stable"), "0.0")),
                         ((labels("ml", "fraud", "canary"), "100"), (labels("ml", "fraud", "canary", forged), "900"),
                          (labels("ml", "fraud", "stable"), "300")))

    prom, transport = provider(answer)
    (obs,) = prom.observe([req("ml", "fraud", ERROR_RATE)])[("ml", "fraud")]

    # then the query is pinned to fraud's sandbox, and only its own series are counted
    assert all('namespace=~"ml\\\\-fraud"' in q for q in transport.queries)
    assert obs.canary == MetricValue(0.0, 100)


def test_each_profile_is_one_batch_and_the_request_names_its_profile() -> None:
    prom, transport = provider(lambda q: vector(), profile="otel")
    prom.observe([req("a", "x", ERROR_RATE), req("a", "y", ERROR_RATE, profile="istio"),
                  req("a", "z", ERROR_RATE, profile="otel")])
    assert len(transport.queries) == 2  # one per profile
    assert sum("istio_requests_total" in q for q in transport.queries) == 1
    (otel,) = [q for q in transport.queries if "http_server_request_duration_seconds_count" in q]
    assert 'modeldeployment=~"x|z"' in otel


def test_versions_are_matched_as_pod_labels_carry_them() -> None:
    # given a version the pod label had to sanitise (label values allow no '+')
    def answer(promql: str) -> Response:
        return answer_of(((dict(labels("a", "m", "canary"), version="1.0.0_build.2"), "0.5"),
                          (dict(labels("a", "m", "stable"), version="0.9"), "0.0")),
                         ((dict(labels("a", "m", "canary"), version="1.0.0_build.2"), "50"),
                          (dict(labels("a", "m", "stable"), version="0.9"), "50")))

    prom, _ = provider(answer)
    r = AnalysisRequest("a", "m", (ERROR_RATE,), "1m", (("canary", "1.0.0+build.2"), ("stable", "0.9")),
                        sandbox="a-m")
    (obs,) = prom.observe([r])[("a", "m")]
    assert obs.canary == MetricValue(0.5, 50)


# --- streams: counts since the canary started, for the engine's sequential test -----------------------
def test_streams_of_canaries_of_different_ages_travel_in_the_template_query() -> None:
    # given two canaries compared with their baseline, started 95 s and 40 s before the tick
    at = 1_700_000_095.0
    compared = SLO(name="error-rate", max=0.2, maxIncreaseOverBaseline=0.01)
    old = AnalysisRequest("ml", "fraud", (compared,), "1m", (("canary", "2.0"), ("stable", "1.0")),
                          stream_since="2023-11-14T22:13:20Z", sandbox="ml-fraud")  # at - 95 s
    young = AnalysisRequest("ml", "churn", (compared,), "1m", stream_since="2023-11-14T22:14:15Z",
                            sandbox="ml-churn")

    def stream(part: str, age: str, series: tuple[tuple[Mapping[str, str], str], ...]) -> list[Any]:
        return [({**m, "tollgate_part": f"stream-{part}", "tollgate_age": age}, v) for m, v in series]

    def answer(promql: str) -> Response:
        return vector(
            (dict(labels("ml", "fraud", "canary"), version="2.0", tollgate_part="value"), "0.02"),
            (dict(labels("ml", "fraud", "canary"), version="2.0", tollgate_part="samples"), "120"),
            *stream("samples", "95s", ((dict(labels("ml", "fraud", "canary"), version="2.0"), "950"),
                                       (dict(labels("ml", "fraud", "canary"), version="1.9"), "70"),
                                       (dict(labels("ml", "fraud", "stable"), version="1.0"), "8500.4"))),
            *stream("events", "95s", ((dict(labels("ml", "fraud", "canary"), version="2.0"), "19"),
                                      (dict(labels("ml", "fraud", "stable"), version="1.0"), "85"))),
            *stream("samples", "40s", ((dict(labels("ml", "churn", "canary"), version="3"), "300"),)),
            # the same key under another age (a regex selector matching a pair it was not asked for)
            *stream("samples", "40s", ((dict(labels("ml", "fraud", "canary"), version="2.0"), "1"),)),
        )

    prov, transport = provider(answer)
    out = prov.observe([old, young], at=at)
    # then one query carried both ages, each part marked with its age
    assert len(transport.queries) == 1
    q = transport.queries[0]
    assert "[95s]" in q and "[40s]" in q and '"tollgate_age", "95s"' in q and '"stream-events"' in q
    # and each canary's stream is its own age's counts, for the version under analysis
    (fraud,), (churn,) = out[("ml", "fraud")], out[("ml", "churn")]
    assert fraud.stream_since == "2023-11-14T22:13:20Z"
    assert fraud.canary_stream == StreamData(samples=950, events=19.0)
    assert fraud.stable_stream == StreamData(samples=8500, events=85.0)
    assert churn.canary_stream == StreamData(samples=300, events=0.0)


def test_latency_streams_are_the_histogram_buckets() -> None:
    at = 1_700_000_100.0
    p99 = SLO(name="latency-p99", max=1.0, maxIncreaseOverBaseline=0.05)
    r = AnalysisRequest("ml", "fraud", (p99,), "1m", stream_since="2023-11-14T22:13:00Z", sandbox="ml-fraud")

    def answer(promql: str) -> Response:
        assert 'increase(rest_server_request_duration_seconds_bucket{' in promql
        part = {"tollgate_part": "stream-buckets", "tollgate_age": "120s"}
        return vector(
            (dict(labels("ml", "fraud", "canary"), tollgate_part="stream-samples", tollgate_age="120s"), "10"),
            (dict(labels("ml", "fraud", "canary"), le="0.1", **part), "4"),
            (dict(labels("ml", "fraud", "canary"), le="+Inf", **part), "10"),
            (dict(labels("ml", "fraud", "canary"), le="0.05", **part), "1"),
        )

    prov, _ = provider(answer)
    (obs,) = prov.observe([r], at=at)[("ml", "fraud")]
    assert obs.canary_stream is not None
    assert obs.canary_stream.buckets == ((0.05, 1.0), (0.1, 4.0), (math.inf, 10.0))
    assert obs.stable_stream == StreamData(samples=0, buckets=None)


def test_a_latency_stream_in_milliseconds_is_judged_in_seconds() -> None:
    # given the istio profile, whose latency histogram counts milliseconds
    p99 = SLO(name="latency-p99", max=1.0, maxIncreaseOverBaseline=0.05)
    r = AnalysisRequest("ml", "fraud", (p99,), "1m", stream_since="2023-11-14T22:13:00Z", sandbox="ml-fraud",
                        profile="istio")

    def answer(promql: str) -> Response:
        # then the stream reads the sidecar's own series, inbound only
        assert 'increase(istio_request_duration_milliseconds_bucket{' in promql and 'reporter="destination"' in promql
        part = {"tollgate_part": "stream-buckets", "tollgate_age": "120s"}
        return vector(
            (dict(labels("ml", "fraud", "canary"), tollgate_part="stream-samples", tollgate_age="120s"), "10"),
            (dict(labels("ml", "fraud", "canary"), le="100", **part), "4"),
            (dict(labels("ml", "fraud", "canary"), le="+Inf", **part), "10"),
        )

    prov, _ = provider(answer)
    (obs,) = prov.observe([r], at=1_700_000_100.0)[("ml", "fraud")]
    # and its bucket bounds are seconds, as the window's quantiles are
    assert obs.canary_stream is not None and obs.canary_stream.buckets == ((0.1, 4.0), (math.inf, 10.0))


def test_a_latency_limit_brings_its_windows_buckets_for_the_version_under_analysis() -> None:
    # given a p99 limit in the istio profile (milliseconds), a stable p99 without a limit in the same tick,
    # and a canary track that still has the previous canary's series inside the window
    limited = AnalysisRequest("ml", "fraud", (P99,), "1m", (("canary", "2.0"),), sandbox="ml-fraud", profile="istio")
    unlimited = AnalysisRequest("ml", "churn", (SLO(name="latency-p99", maxIncreaseOverBaseline=0.05),), "1m",
                                sandbox="ml-churn", profile="istio")
    part = {"tollgate_part": "buckets"}

    def answer(promql: str) -> Response:
        return vector(
            (dict(labels("ml", "fraud", "canary"), version="2.0", tollgate_part="value"), "0.3"),
            (dict(labels("ml", "fraud", "canary"), version="2.0", le="250", **part), "190"),
            (dict(labels("ml", "fraud", "canary"), version="2.0", le="+Inf", **part), "200"),
            (dict(labels("ml", "fraud", "canary"), version="1.9", le="250", **part), "5"),
            (dict(labels("ml", "fraud", "canary"), version="1.9", le="+Inf", **part), "500"),
            (dict(labels("ml", "fraud", "stable"), version="1.0", le="+Inf", **part), "90"),
        )

    prov, transport = provider(answer)
    # when the tick is observed
    out = prov.observe([limited, unlimited], at=1_700_000_100.0)
    # then one query carried the buckets, over the window, for the limited ModelDeployment only
    (q,) = transport.queries
    (buckets_part,) = [p for p in q.split(" or ") if '"buckets"' in p]
    assert "increase(istio_request_duration_milliseconds_bucket{" in buckets_part and "[1m]" in buckets_part
    assert "fraud" in buckets_part and "churn" not in buckets_part
    # and the canary's value comes with its version's buckets, in seconds; stable's with all of its own
    (fraud,) = out[("ml", "fraud")]
    assert fraud.canary is not None and fraud.canary.buckets == ((0.25, 190.0), (math.inf, 200.0))
    assert fraud.stable is not None and fraud.stable.buckets == ((math.inf, 90.0),)
    (churn,) = out[("ml", "churn")]
    assert churn.canary is not None and churn.canary.buckets is None


def test_a_latency_limit_judged_on_the_stream_brings_no_window_buckets() -> None:
    # given a p99 with a limit and a baseline margin: with a stream it is judged on the stream's buckets,
    # without one (no canary start known) on the window's
    compared = SLO(name="latency-p99", max=0.25, maxIncreaseOverBaseline=0.05)
    streamed = AnalysisRequest("ml", "fraud", (compared,), "1m", stream_since="2023-11-14T22:13:00Z",
                               sandbox="ml-fraud")
    windowed = AnalysisRequest("ml", "churn", (compared,), "1m", sandbox="ml-churn")
    prov, transport = provider(lambda q: vector())
    prov.observe([streamed, windowed], at=1_700_000_100.0)
    # then the window's buckets are asked for the one judged on its window only
    (q,) = transport.queries
    (buckets_part,) = [p for p in q.split(" or ") if '"buckets"' in p]
    assert "churn" in buckets_part and "fraud" not in buckets_part


@pytest.mark.parametrize("shift", [SHIFT, SLO(name="score-shift", maxIncreaseOverBaseline=0.05)],
                         ids=["max", "maxIncreaseOverBaseline"])
def test_a_score_shift_limit_brings_both_tracks_score_histograms_unscaled(shift: SLO) -> None:
    # given score-shift with a max (or its other spelling, maxIncreaseOverBaseline: engine.limits.ceiling) in
    # the istio profile (whose latency is in milliseconds)
    r = AnalysisRequest("ml", "fraud", (shift,), "1m", sandbox="ml-fraud", profile="istio")
    part = {"tollgate_part": "buckets"}
    prov, transport = provider(lambda q: vector(
        (dict(labels("ml", "fraud", "canary"), tollgate_part="value"), "0.7"),
        (dict(labels("ml", "fraud", "canary"), le="0.5", **part), "30"),
        (dict(labels("ml", "fraud", "canary"), le="+Inf", **part), "100"),
        (dict(labels("ml", "fraud", "stable"), le="0.5", **part), "400"),
        (dict(labels("ml", "fraud", "stable"), le="+Inf", **part), "900")))
    (obs,) = prov.observe([r], at=1_700_000_100.0)[("ml", "fraud")]
    # then the query's buckets part reads the quality export's score histogram, without request matchers
    (q,) = transport.queries
    (buckets_part,) = [p for p in q.split(" or ") if '"buckets"' in p]
    assert "increase(tollgate_model_score_bucket{" in buckets_part and 'reporter="destination"' not in buckets_part
    # and each track's histogram is in scores, not scaled as milliseconds
    assert obs.canary is not None and obs.canary.buckets == ((0.5, 30.0), (math.inf, 100.0))
    assert obs.stable is not None and obs.stable.buckets == ((0.5, 400.0), (math.inf, 900.0))


def test_the_dashboards_range_query_carries_no_buckets() -> None:
    prov, transport = provider(lambda q: Response(200, {"status": "success", "data": {"resultType": "matrix",
                                                                                       "result": []}}))
    prov.series(req("ml", "fraud", P99), 1_700_000_000.0, 1_700_000_600.0)
    assert transport.queries and all('"buckets"' not in q for q in transport.queries)


def test_the_invalid_output_stream_counts_outputs_of_the_quality_export() -> None:
    compared = SLO(name="invalid-output-rate", max=0.2, maxIncreaseOverBaseline=0.01)
    r = AnalysisRequest("ml", "fraud", (compared,), "1m", stream_since="2023-11-14T22:13:00Z", sandbox="ml-fraud")
    prov, transport = provider(lambda q: vector())
    prov.observe([r], at=1_700_000_100.0)
    (q,) = transport.queries
    assert "increase(tollgate_model_output_invalid_count{" in q and "increase(tollgate_model_output_invalid_sum{" in q


def test_slo_templates_carry_no_stream() -> None:
    # given an SLO named like a built-in but measured by a ClusterSLOTemplate
    slo = SLO.model_validate({"name": "error-rate", "max": 0.2, "maxIncreaseOverBaseline": 0.01,
                              "templateRef": {"name": "errors"}})
    tq = TemplateQuery("ClusterSLOTemplate", "errors", "sum by ({{by}}) (rate(x{ {{selector}} }[{{window}}]))")
    r = AnalysisRequest("ml", "fraud", (slo,), "1m", stream_since="2023-11-14T22:13:00Z", sandbox="ml-fraud",
                        templates=(("error-rate", tq),))
    prov, transport = provider(lambda q: vector())
    (obs,) = prov.observe([r], at=1_700_000_100.0)[("ml", "fraud")]
    assert "tollgate_age" not in transport.queries[0] and obs.canary_stream is None


def test_slos_not_compared_by_a_test_carry_no_stream() -> None:
    r = AnalysisRequest("ml", "fraud", (ERROR_RATE,), "1m", stream_since="2023-11-14T22:13:00Z", sandbox="ml-fraud")
    prov, transport = provider(lambda q: answer_of((), ()))
    (obs,) = prov.observe([r], at=1_700_000_100.0)[("ml", "fraud")]
    assert "tollgate_age" not in transport.queries[0] and obs.canary_stream is None


def test_a_stream_left_out_of_the_answer_is_still_a_stream_asked_for() -> None:
    # given a canary compared with its baseline whose stream (counts since it started, 2 s ago) Prometheus
    # cannot answer yet: fewer than two scrapes in the range, or a scrape late under load
    at = 1_700_000_002.0
    compared = SLO(name="error-rate", max=0.9, maxIncreaseOverBaseline=0.02)
    r = AnalysisRequest("ml", "fraud", (compared,), "5s", (("canary", "2.0"), ("stable", "1.0")),
                        stream_since="2023-11-14T22:13:20Z", sandbox="ml-fraud")  # at - 2 s
    # and an answer with the window's values and counts only: 30% errors against 1%, 200 requests each
    prov, transport = provider(lambda q: answer_of(
        ((dict(labels("ml", "fraud", "canary"), version="2.0"), "0.3"),
         (dict(labels("ml", "fraud", "stable"), version="1.0"), "0.01")),
        ((dict(labels("ml", "fraud", "canary"), version="2.0"), "200"),
         (dict(labels("ml", "fraud", "stable"), version="1.0"), "200"))))
    # when the tick is observed
    (obs,) = prov.observe([r], at=at)[("ml", "fraud")]
    # then the stream was asked for, and the observation says so with no stream data (not "no stream
    # wanted", which would hand the look to the window's raw difference)
    assert '"tollgate_age", "2s"' in transport.queries[0]
    assert obs.stream_since == "2023-11-14T22:13:20Z"
    assert obs.canary_stream is None and obs.stable_stream is None
    # (engine.comparison: a look asked for a stream and holding none gets no verdict)


# --- synthetic traffic (spec.hooks.syntheticTraffic) ------------------------------------------------------


def test_excluding_synthetic_traffic_adds_the_matcher_to_every_series_and_batches_apart() -> None:
    # given two istio ModelDeployments, one leaving hook traffic out, one counting it
    prom, transport = provider(lambda q: vector())
    excluding = AnalysisRequest(namespace="a", name="x", slos=(ERROR_RATE, P99), window="1m", sandbox="a-x",
                                profile="istio", exclude_synthetic=True)
    # when both are observed in one tick
    prom.observe([excluding, req("a", "y", ERROR_RATE, profile="istio")])
    # then the excluding one is batched apart, with the matcher on every series of its queries
    matcher = 'tollgate_synthetic!~"preTraffic|duringAnalysis|prePromotion"'
    mine = [q for q in transport.queries if 'modeldeployment=~"x"' in q]
    theirs = [q for q in transport.queries if 'modeldeployment=~"y"' in q]
    assert mine and theirs and not set(mine) & set(theirs)
    selectors = [sel for q in mine for sel in re.findall(r"\{[^{}]*\}", q) if 'modeldeployment=~"x"' in sel]
    assert len(selectors) >= 4 and all(matcher in sel for sel in selectors), selectors
    assert not any("tollgate_synthetic" in q for q in theirs)


def test_excluding_synthetic_traffic_reaches_custom_queries_through_the_selector_variable() -> None:
    custom = SLO(name="mine", query="sum(rate(istio_requests_total{ {{selector}} }[{{window}}]))", max=1.0)
    prom, transport = provider(lambda q: vector())
    prom.observe([AnalysisRequest(namespace="a", name="m", slos=(custom,), window="1m", sandbox="a-m",
                                  profile="istio", exclude_synthetic=True)])
    runs = [q for q in transport.queries if q.startswith("sum(rate(")]
    assert runs and all('tollgate_synthetic!~"preTraffic|duringAnalysis|prePromotion"' in q for q in runs)


def test_excluding_synthetic_traffic_with_a_profile_that_cannot_tag_it_is_an_error_never_a_silent_include() -> None:
    # given a request that excludes hook traffic in the mlserver dialect (admission refuses this spec; one
    # admitted before the rule must still not be measured as if it had been honoured)
    prom, transport = provider(lambda q: vector())
    request = AnalysisRequest(namespace="a", name="m", slos=(ERROR_RATE,), window="1m", sandbox="a-m",
                              profile="mlserver", exclude_synthetic=True)
    (obs,) = prom.observe([request])[("a", "m")]
    # then each SLO is an error naming the field and the fix, and nothing is queried for it
    assert obs.error is not None and "spec.hooks.syntheticTraffic" in obs.error and "istio" in obs.error
    assert not transport.queries


def test_the_profiles_that_tag_synthetic_traffic_are_the_ones_the_api_admits() -> None:
    from tollgate.adapters.metric_profiles import SYNTHETIC_VALUES
    from tollgate.api.hooks import HOOK_NAMES, SYNTHETIC_PROFILES

    assert {p.name for p in PROFILES.values() if p.synthetic_label} == set(SYNTHETIC_PROFILES)
    assert SYNTHETIC_VALUES.split("|") == list(HOOK_NAMES)
