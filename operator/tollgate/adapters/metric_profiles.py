"""Metric profiles: the built-in SLO templates mapped onto the metric and label names of real sources.

Why profiles: a platform team does not choose its metric names; its model server, mesh or
instrumentation library does. A profile says where each built-in template finds its numbers in one
such dialect, so `error-rate` means "5xx share of requests" whether the requests are counted by
MLServer, by an Istio sidecar or by OpenTelemetry's HTTP server instrumentation.

Where the labels come from (the same for every profile): the pods Tollgate creates carry the labels
`tollgate.dev/modeldeployment`, `tollgate.dev/modeldeployment-namespace`, `tollgate.dev/track` and
`tollgate.dev/version`; the scrape configuration Tollgate ships (the chart's PodMonitor, or the plain
`scrape_configs` in deploy/prometheus/scrape-config.yaml) turns them into the series labels in
`Identity`. `namespace` keeps its meaning everywhere else in Prometheus: the namespace of the pod,
which is the ModelDeployment's sandbox, set by Prometheus from discovery (a pod cannot forge it).
The ModelDeployment's own namespace travels in `modeldeployment_namespace`. Queries select and group
by both, so a series counts for a ModelDeployment only when it comes from a pod in that
ModelDeployment's own sandbox: exact, and immune to pods elsewhere that copy the labels.

Model quality (score shift, invalid outputs) is seen by no data plane and by no server's standard
metrics, so every profile reads it from the same small export the model server adds (documented in
docs/operations.md, "Model quality export"; examples/mlserver/ adds it to MLServer):
- `tollgate_model_score` histogram: the predicted score (0..1) of each valid output;
- `tollgate_model_output_invalid` histogram: one observation per output, 1 when the output failed
  validation, else 0, so `_sum / _count` is the share of invalid outputs.
Both are histograms because that is the one metric type MLServer's custom-metrics API
(`mlserver.register` / `mlserver.log`) creates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SYNTHETIC_VALUES = "preTraffic|duringAnalysis|prePromotion"
"""The values of X-Tollgate-Synthetic (the hook names, api.hooks.HOOK_NAMES) as one regex alternation."""
SCORE_METRIC = "tollgate_model_score"
INVALID_METRIC = "tollgate_model_output_invalid"


@dataclass(frozen=True)
class Identity:
    """Series labels that say whose a series is; set by the shipped relabelling from pod labels."""

    sandbox: str = "namespace"
    """The pod's namespace (Prometheus' own `namespace` target label): the ModelDeployment's sandbox."""
    md_namespace: str = "modeldeployment_namespace"
    """The ModelDeployment's namespace (pod label tollgate.dev/modeldeployment-namespace)."""
    md_name: str = "modeldeployment"
    """The ModelDeployment's name (pod label tollgate.dev/modeldeployment)."""
    track: str = "track"
    """stable | canary | fallback (pod label tollgate.dev/track)."""
    version: str = "version"
    """The model version, as a label value (pod label tollgate.dev/version)."""

    @property
    def group(self) -> str:
        """`by (...)` of every batched query. Grouped by version too: right after a promotion or a
        rollback the canary track still has the previous canary's series inside the window. A previous
        attempt of the same version has the same labels: the engine keeps it out by the range, which never
        reaches back before the current attempt started (AnalysisRequest.window)."""
        return f"{self.sandbox}, {self.md_namespace}, {self.md_name}, {self.track}, {self.version}"


IDENTITY = Identity()


@dataclass(frozen=True)
class MetricProfile:
    """One source's dialect: which series count requests, errors and latency, and how."""

    name: str
    description: str
    requests: str
    """Counter of served requests (for a histogram-only source, its `_count`)."""
    request_matchers: str
    """Fixed label matchers on every request and latency series (e.g. only inbound, only inference)."""
    error_matcher: str
    """Label matcher that selects the requests counted as errors."""
    duration_bucket: str
    """`_bucket` series of the request latency histogram."""
    duration_unit: float
    """Seconds per unit of the latency histogram's `le` (0.001 for milliseconds)."""
    scrape_port: str
    """Where the series are scraped from, for people (docs, errors)."""
    score: str = SCORE_METRIC
    invalid: str = INVALID_METRIC
    identity: Identity = IDENTITY
    synthetic_label: str | None = None
    """The series label that carries a request's X-Tollgate-Synthetic header (the hook that sent it), when
    the source can be told to record it; None: it cannot, and spec.hooks.syntheticTraffic: exclude is refused
    for this profile (api.hooks.SYNTHETIC_PROFILES lists the profiles that have one)."""
    exclude_synthetic: bool = False
    """This variant leaves synthetic requests out (`excluding_synthetic`)."""

    def excluding_synthetic(self) -> MetricProfile:
        """The same dialect, leaving out requests a hook Job sent: its selectors get `synthetic_matcher`. A
        distinct name, so batched queries never mix ModelDeployments that include and exclude them."""
        if self.synthetic_label is None:
            raise ValueError(f"metric profile {self.name} has no synthetic-traffic label")
        return replace(self, name=f"{self.name}+exclude-synthetic", exclude_synthetic=True)

    @property
    def synthetic_matcher(self) -> str:
        """The matcher that keeps only requests no hook tagged (an absent label matches too, so series of
        the quality export and of requests without the header stay selected); empty when including them."""
        if not self.exclude_synthetic or self.synthetic_label is None:
            return ""
        return f'{self.synthetic_label}!~"{SYNTHETIC_VALUES}"'

    def series(self, metric: str, selector: str, *extra: str, fixed: bool = True) -> str:
        """`metric{selector, fixed matchers, extra}`: the one way every template writes a selector."""
        matchers = [selector, *((self.request_matchers,) if fixed and self.request_matchers else ()), *extra]
        return f"{metric}{{{', '.join(m for m in matchers if m)}}}"


PROFILES: dict[str, MetricProfile] = {
    p.name: p
    for p in (
        MetricProfile(
            name="mlserver",
            description=(
                "MLServer (PyPI `mlserver`): its REST server's request counter and latency histogram "
                "(starlette_exporter, prefix rest_server), inference routes only, served on MLServer's "
                "metrics port (default 8082)."
            ),
            requests="rest_server_requests_total",
            request_matchers='path=~".+/infer"',
            error_matcher='status_code=~"5.."',
            duration_bucket="rest_server_request_duration_seconds_bucket",
            duration_unit=1.0,
            scrape_port="MLServer's metrics_port (default 8082), path /metrics",
        ),
        MetricProfile(
            name="istio",
            description=(
                "Istio's standard metrics as the serving pod's sidecar reports them "
                '(reporter="destination"): istio_requests_total and istio_request_duration_milliseconds.'
            ),
            requests="istio_requests_total",
            request_matchers='reporter="destination"',
            error_matcher='response_code=~"5.."',
            duration_bucket="istio_request_duration_milliseconds_bucket",
            duration_unit=0.001,
            scrape_port="the sidecar's merged metrics, port 15020, path /stats/prometheus",
            synthetic_label="tollgate_synthetic",
        ),
        MetricProfile(
            name="otel",
            description=(
                "OpenTelemetry HTTP server semantic conventions: the http.server.request.duration "
                "histogram (seconds) as the Prometheus exporter names it; its _count counts requests."
            ),
            requests="http_server_request_duration_seconds_count",
            request_matchers="",
            error_matcher='http_response_status_code=~"5.."',
            duration_bucket="http_server_request_duration_seconds_bucket",
            duration_unit=1.0,
            scrape_port="the application's Prometheus exporter endpoint",
        ),
    )
}
DEFAULT_PROFILE = "mlserver"
