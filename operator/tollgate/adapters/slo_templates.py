"""PromQL of the built-in SLO templates, batched over every ModelDeployment analysed in one tick.

Why batched: one query per template per tick, grouped `by (namespace, modeldeployment, track)`, costs
Prometheus the same whether one canary or two hundred are in analysis; Flagger and Argo Rollouts send
one query per metric per canary per tick. The adapter splits the returned vector per ModelDeployment
and track.

The series contract (what a model server, or the traffic simulator, must expose), with the label names
in `MetricNames`:

- `<requests>{namespace, modeldeployment, model, version, track, code}` counter of requests by status;
- `<duration>_bucket{..., le}` latency histogram in seconds (no `code` label);
- `<score>_sum` / `<score>_count` histogram of the predicted score (0..1);
- `<invalid>{...}` counter of outputs that failed validation.

Every built-in is a ratio or a rate over `[window]`, evaluated at one instant for the whole tick, so
canary and stable are compared over the same window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricNames:
    """Metric and label names the templates query. Defaults: the traffic simulator's series."""

    requests: str = "tollgate_sim_requests_total"
    duration: str = "tollgate_sim_request_duration_seconds"
    score: str = "tollgate_sim_predicted_score"
    invalid: str = "tollgate_sim_invalid_outputs_total"
    namespace_label: str = "namespace"
    name_label: str = "modeldeployment"
    track_label: str = "track"
    version_label: str = "version"
    code_label: str = "code"
    error_codes: str = "5.."
    """Regex of the status codes counted as errors."""

    @property
    def group(self) -> str:
        # Grouped by version too: right after a promotion or rollback the canary track still has the
        # previous canary's series inside the window; the adapter keeps only the version under analysis.
        return f"{self.namespace_label}, {self.name_label}, {self.track_label}, {self.version_label}"


DEFAULT_METRICS = MetricNames()
TRACKS = ("stable", "canary")


@dataclass(frozen=True)
class Template:
    """A built-in SLO: PromQL over a label selector and a window, one value per track (how the values
    are judged, e.g. score-shift as a distance, is the engine's: engine.analysis)."""

    name: str
    promql: str
    """PromQL with `{sel}` (label matchers, no braces), `{win}` and `{by}` placeholders."""
    description: str = ""

    def render(self, selector: str, window: str, metrics: MetricNames = DEFAULT_METRICS) -> str:
        return self.promql.format(
            sel=selector,
            win=window,
            by=metrics.group,
            req=metrics.requests,
            dur=metrics.duration,
            score=metrics.score,
            inv=metrics.invalid,
            code=metrics.code_label,
            errors=metrics.error_codes,
        )


def _ratio(numerator: str) -> str:
    # `or 0 * total` keeps tracks that served requests but never a single error (whose error series
    # does not exist yet) at 0 instead of dropping them from the result as "no data".
    total = "sum by ({by}) (rate({req}{{{sel}}}[{win}]))"
    return f"(sum by ({{by}}) (rate({numerator}[{{win}}])) or 0 * {total}) / {total}"


def _quantile(q: str) -> str:
    return f"histogram_quantile({q}, sum by ({{by}}, le) (rate({{dur}}_bucket{{{{{{sel}}}}}}[{{win}}])))"


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "error-rate",
            _ratio('{req}{{{sel}, {code}=~"{errors}"}}'),
            description="Share of requests answered with a 5xx status over the window (0..1).",
        ),
        Template("latency-p50", _quantile("0.5"), description="Median request latency in seconds."),
        Template("latency-p95", _quantile("0.95"), description="95th percentile latency in seconds."),
        Template("latency-p99", _quantile("0.99"), description="99th percentile latency in seconds."),
        Template(
            "request-rate",
            "sum by ({by}) (rate({req}{{{sel}}}[{win}]))",
            description="Requests per second served by the track.",
        ),
        Template(
            "score-shift",
            "sum by ({by}) (rate({score}_sum{{{sel}}}[{win}]))"
            " / sum by ({by}) (rate({score}_count{{{sel}}}[{win}]))",
            description=(
                "Absolute difference of the mean predicted score, canary vs stable. The query returns the "
                "mean per track; the engine judges canary=|mean_canary - mean_stable| against baseline 0, "
                "so both `max` and `maxIncreaseOverBaseline` read as the largest tolerated shift."
            ),
        ),
        Template(
            "invalid-output-rate",
            _ratio("{inv}{{{sel}}}"),
            description="Share of requests whose output failed validation (0..1).",
        ),
    )
}


STREAM_EVENTS = {"error-rate": '{req}{{{sel}, {code}=~"{errors}"}}', "invalid-output-rate": "{inv}{{{sel}}}"}
"""Ratio templates: the counter of the requests the ratio counts, for the canary-versus-baseline stream."""
STREAM_BUCKETS = frozenset({"latency-p50", "latency-p95", "latency-p99"})
"""Quantile templates: their histogram's buckets are the stream."""


def stream_parts(name: str, sel: str, age: str, metrics: MetricNames = DEFAULT_METRICS) -> dict[str, str]:
    """PromQL of a template's stream over `age` (the time since the canary started, e.g. 95s): the
    request count ("samples") and, for ratios, the counted requests ("events"), for quantiles, the
    histogram buckets ("buckets"); empty for templates the engine does not compare by a test.

    Counts since the canary started (not a sliding window) are what the engine's sequential test needs:
    every look sees all the data so far (engine.comparison).
    """
    if name not in STREAM_EVENTS and name not in STREAM_BUCKETS:
        return {}
    fields = {"sel": sel, "req": metrics.requests, "inv": metrics.invalid, "dur": metrics.duration,
              "code": metrics.code_label, "errors": metrics.error_codes}
    by = metrics.group
    parts = {"samples": f"sum by ({by}) (increase({metrics.requests}{{{sel}}}[{age}]))"}
    if name in STREAM_EVENTS:
        parts["events"] = f"sum by ({by}) (increase({STREAM_EVENTS[name].format(**fields)}[{age}]))"
    else:
        parts["buckets"] = f"sum by ({by}, le) (increase({metrics.duration}_bucket{{{sel}}}[{age}]))"
    return parts


def _alternation(values: Iterable[str]) -> str:
    # re.escape for the regex, then doubled backslashes: PromQL "..." strings use Go escapes, where `\.`
    # alone is an error.
    return "|".join(re.escape(v).replace("\\", "\\\\") for v in sorted(set(values)))


def selector(keys: Iterable[tuple[str, str]], metrics: MetricNames = DEFAULT_METRICS) -> str:
    """Label matchers (without braces) selecting these (namespace, name) ModelDeployments' tracks.

    Two regexes may match extra pairs (ns-a/name-b): the adapter keeps only requested keys, and such
    pairs only exist if that ModelDeployment is also serving, which costs a few extra series at most.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("selector needs at least one ModelDeployment")
    return (
        f'{metrics.namespace_label}=~"{_alternation(k[0] for k in keys)}", '
        f'{metrics.name_label}=~"{_alternation(k[1] for k in keys)}", '
        f'{metrics.track_label}=~"{_alternation(TRACKS)}"'
    )


def samples_query(sel: str, window: str, metrics: MetricNames = DEFAULT_METRICS) -> str:
    """Requests per ModelDeployment and track over the window: the sample count behind every value."""
    return f"sum by ({metrics.group}) (increase({metrics.requests}{{{sel}}}[{window}]))"


_VARIABLE = re.compile(r"\{\{\s*(namespace|name|track|window)\s*\}\}")


def render_custom(query: str, *, namespace: str, name: str, track: str, window: str) -> str:
    """Substitute {{namespace}} {{name}} {{track}} {{window}} (spaces inside the braces allowed).

    Custom queries run once per ModelDeployment and track: an arbitrary expression cannot be grouped
    safely by labels it may not carry, so they are not batched.
    """
    values = {"namespace": namespace, "name": name, "track": track, "window": window}
    return _VARIABLE.sub(lambda m: values[m.group(1)], query)
