"""The metric dialects the traffic simulator speaks: what one model-server pod exports, per real source.

A test tool. Each dialect writes exactly the series a real source exports, with that source's own
label names and nothing else: no ModelDeployment, track or version label, because a real server does
not know them. Those come from the scrape configuration Tollgate ships (kubernetes_sd relabelling of
the pod's labels), so tests that judge the simulator's series go through that relabelling.

The names are written here from the sources themselves, independently of the operator's metric
profiles (`tollgate.adapters.metric_profiles`), so a profile that names a series wrongly fails the
tests instead of agreeing with itself:
- mlserver: MLServer 1.7's REST server metrics (starlette_exporter, app_name "mlserver", prefix
  rest_server, route templates as `path`), as seen on a running MLServer;
- istio: Istio's standard metrics as an inbound sidecar reports them (reporter="destination"), with
  Istio's default millisecond buckets, plus the `tollgate_synthetic` dimension the Telemetry tag override in
  docs/operations.md adds (request header X-Tollgate-Synthetic; "unknown" when a request has none, as
  Istio writes an attribute it cannot read);
- otel: OpenTelemetry's HTTP server semantic conventions, `http.server.request.duration` in seconds as
  the Prometheus exporter names it, with the semconv's advised buckets.
Every dialect also carries Tollgate's model-quality export (`tollgate_model_score`,
`tollgate_model_output_invalid`, labelled model_name and model_version as MLServer's custom metrics
are), which is what examples/mlserver/tollgate_quality.py adds to a real MLServer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

DIALECTS = ("mlserver", "istio", "otel")

SYNTHETIC_LABEL = "tollgate_synthetic"
"""Istio dialect: the dimension the documented Telemetry tag override adds from X-Tollgate-Synthetic."""
ISTIO_UNKNOWN = "unknown"
PROMETHEUS_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""prometheus_client's default buckets: starlette_exporter's latency and MLServer's custom metrics."""
ISTIO_MS_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                    600000, 1800000, 3600000)
OTEL_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class Served:
    """One simulated request as the server saw it."""

    status: int
    latency: float
    """Seconds."""
    score: float
    invalid: bool
    synthetic: str = ""
    """The request's X-Tollgate-Synthetic header (the hook that sent it); empty: a user request."""


class PodExport:
    """The /metrics of one model-server pod in one dialect; `record` counts a served request."""

    def __init__(self, dialect: str, *, model: str, version: str, workload: str, namespace: str) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; choose one of {DIALECTS}")
        self.dialect = dialect
        self.registry = CollectorRegistry()
        self._model, self._version = model, version
        self._workload, self._namespace = workload, namespace
        self.requests: Counter | None = None
        """None in the otel dialect: the duration histogram's _count is the request count."""
        self.score = Histogram("tollgate_model_score", "Predicted score (0..1) of each valid output.",
                               ["model_name", "model_version"], buckets=PROMETHEUS_DEFAULT_BUCKETS,
                               registry=self.registry)
        self.invalid = Histogram("tollgate_model_output_invalid", "1 per invalid output, else 0.",
                                 ["model_name", "model_version"], buckets=PROMETHEUS_DEFAULT_BUCKETS,
                                 registry=self.registry)
        if dialect == "mlserver":
            names = ["app_name", "method", "path", "status_code"]
            self.requests = Counter("rest_server_requests", "Total HTTP requests", names,
                                    registry=self.registry)
            self.duration = Histogram("rest_server_request_duration_seconds", "HTTP request duration",
                                      names, buckets=PROMETHEUS_DEFAULT_BUCKETS, registry=self.registry)
        elif dialect == "istio":
            names = ["reporter", "source_workload", "source_workload_namespace", "destination_workload",
                     "destination_workload_namespace", "destination_canonical_service",
                     "destination_canonical_revision", "destination_service", "request_protocol",
                     "response_code", "response_flags", "connection_security_policy", SYNTHETIC_LABEL]
            self.requests = Counter("istio_requests", "", names, registry=self.registry)
            self.duration = Histogram("istio_request_duration_milliseconds", "", names,
                                      buckets=ISTIO_MS_BUCKETS, registry=self.registry)
        else:
            names = ["http_request_method", "http_response_status_code", "http_route", "url_scheme",
                     "network_protocol_version"]
            self.duration = Histogram("http_server_request_duration_seconds",
                                      "Duration of HTTP server requests.", names,
                                      buckets=OTEL_SECONDS_BUCKETS, registry=self.registry)

    def _labels(self, status: int, synthetic: str = "") -> Sequence[str]:
        code = str(status)
        if self.dialect == "mlserver":
            return ("mlserver", "POST", "/v2/models/{model_name}/infer", code)
        if self.dialect == "istio":
            return ("destination", "istio-ingressgateway", "istio-system", self._workload, self._namespace,
                    self._model, self._version, f"{self._model}.{self._namespace}.svc.cluster.local",
                    "http", code, "-", "mutual_tls", synthetic or ISTIO_UNKNOWN)
        return ("POST", code, "/v1/predict", "http", "1.1")

    def warm(self) -> None:
        """Expose every series at zero before the first request counts (see Simulator._serve)."""
        tags = ("", "duringAnalysis") if self.dialect == "istio" else ("",)
        for status in (200, 500):
            for tag in tags:
                labels = self._labels(status, tag)
                if self.requests is not None:
                    self.requests.labels(*labels).inc(0)
                self.duration.labels(*labels)
        self.score.labels(self._model, self._version)
        self.invalid.labels(self._model, self._version)

    def record(self, served: Sequence[Served]) -> None:
        score = self.score.labels(self._model, self._version)
        invalid = self.invalid.labels(self._model, self._version)
        for s in served:
            labels = self._labels(s.status, s.synthetic)
            if self.requests is not None:
                self.requests.labels(*labels).inc()
            latency = s.latency * 1000.0 if self.dialect == "istio" else s.latency
            self.duration.labels(*labels).observe(latency)
            if s.status >= 500:
                continue  # no prediction came out of a failed request
            if s.invalid:
                invalid.observe(1)
            else:
                invalid.observe(0)
                score.observe(s.score)

    def sample(self, name: str, **labels: str) -> float:
        """The sum of a sample over every series of this pod matching `labels` (tests)."""
        total = 0.0
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


def requests_series(dialect: str) -> str:
    """The series that counts a pod's served requests in this dialect (for test helpers)."""
    return {"mlserver": "rest_server_requests_total", "istio": 'istio_requests_total{reporter="destination"}',
            "otel": "http_server_request_duration_seconds_count"}[dialect]


def requests_selector(dialect: str, **matchers: str) -> str:
    """`requests_series` with extra equality matchers, e.g. track="canary"."""
    series = requests_series(dialect)
    extra = ", ".join(f'{k}="{v}"' for k, v in matchers.items())
    if not extra:
        return series
    if series.endswith("}"):
        return f"{series[:-1]}, {extra}}}"
    return f"{series}{{{extra}}}"


ERROR_MATCHERS = {"mlserver": 'status_code=~"5.."', "istio": 'response_code=~"5.."',
                  "otel": 'http_response_status_code=~"5.."'}
"""The matcher that keeps a dialect's server errors (5xx), in the source's own status label."""


def errors_selector(dialect: str, **matchers: str) -> str:
    """`requests_selector` narrowed to the requests that failed with a 5xx (for test helpers)."""
    selector = requests_selector(dialect, **matchers)
    if selector.endswith("}"):
        return f"{selector[:-1]}, {ERROR_MATCHERS[dialect]}}}"
    return f"{selector}{{{ERROR_MATCHERS[dialect]}}}"
