"""PromQL of the built-in SLO templates, batched over every ModelDeployment analysed in one tick.

Why batched: one query per template per tick, grouped by the identity labels (sandbox namespace,
ModelDeployment namespace and name, track, version), costs Prometheus the same whether one canary or
two hundred are in analysis; Flagger and Argo Rollouts send one query per metric per canary per tick.
The adapter splits the returned vector per ModelDeployment and track.

What series a template reads depends on the metric profile (`tollgate.adapters.metric_profiles`): the
dialect of the model server, mesh or instrumentation that exports them. Every built-in is a ratio or a
rate over `[window]`, evaluated at one instant for the whole tick, so canary and stable are compared
over the same window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tollgate.adapters.metric_profiles import DEFAULT_PROFILE, IDENTITY, PROFILES, Identity, MetricProfile
from tollgate.engine.observations import TemplateQuery

TRACKS = ("stable", "canary")


Build = Callable[[MetricProfile, str, str], str]
"""(profile, label matchers without braces, window) -> PromQL."""


@dataclass(frozen=True)
class Template:
    """A built-in SLO: PromQL built from a profile, a label selector and a window, one value per track (how
    the values are judged, e.g. score-shift as a distance, is the engine's: engine.analysis)."""

    name: str
    build: Build
    description: str = ""

    def render(self, selector: str, window: str, profile: MetricProfile | None = None) -> str:
        return self.build(profile or PROFILES[DEFAULT_PROFILE], selector, window)


def _sum_rate(p: MetricProfile, series: str, window: str, by: str = "") -> str:
    return f"sum by ({p.identity.group}{by}) (rate({series}[{window}]))"


def _error_rate(p: MetricProfile, sel: str, win: str) -> str:
    # `or 0 * total` keeps tracks that served requests but never a single error (whose error series
    # does not exist yet) at 0 instead of dropping them from the result as "no data".
    total = _sum_rate(p, p.series(p.requests, sel), win)
    errors = _sum_rate(p, p.series(p.requests, sel, p.error_matcher), win)
    return f"({errors} or 0 * {total}) / {total}"


def _quantile(q: str) -> Build:
    def build(p: MetricProfile, sel: str, win: str) -> str:
        expr = f"histogram_quantile({q}, {_sum_rate(p, p.series(p.duration_bucket, sel), win, ', le')})"
        return expr if p.duration_unit == 1.0 else f"{expr} * {p.duration_unit:g}"

    return build


def _request_rate(p: MetricProfile, sel: str, win: str) -> str:
    return _sum_rate(p, p.series(p.requests, sel), win)


def _mean(metric: str) -> Build:
    """Mean of a quality histogram (`_sum / _count`); quality series carry no request matchers."""

    def build(p: MetricProfile, sel: str, win: str) -> str:
        name = getattr(p, metric)
        return (f"{_sum_rate(p, p.series(f'{name}_sum', sel, fixed=False), win)}"
                f" / {_sum_rate(p, p.series(f'{name}_count', sel, fixed=False), win)}")

    return build


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("error-rate", _error_rate,
                 description="Share of requests answered with a 5xx status over the window (0..1)."),
        Template("latency-p50", _quantile("0.5"), description="Median request latency in seconds."),
        Template("latency-p95", _quantile("0.95"), description="95th percentile latency in seconds."),
        Template("latency-p99", _quantile("0.99"), description="99th percentile latency in seconds."),
        Template("request-rate", _request_rate, description="Requests per second served by the track."),
        Template(
            "score-shift",
            _mean("score"),
            description=(
                "Absolute difference of the mean predicted score, canary vs stable. The query returns the "
                "mean per track; the engine judges canary=|mean_canary - mean_stable| against baseline 0, "
                "so both `max` and `maxIncreaseOverBaseline` read as the largest tolerated shift."
            ),
        ),
        Template(
            "invalid-output-rate",
            _mean("invalid"),
            description="Share of outputs that failed validation (0..1).",
        ),
    )
}


RATIO_STREAMS = frozenset({"error-rate", "invalid-output-rate"})
"""Ratio templates: their stream is the counted events and the population they are counted in."""
BUCKET_STREAMS = frozenset({"latency-p50", "latency-p95", "latency-p99"})
"""Quantile templates: their histogram's buckets are the stream."""


def stream_parts(name: str, sel: str, age: str, profile: MetricProfile) -> dict[str, str]:
    """PromQL of a template's stream over `age` (the time since the canary started, e.g. 95s), in the
    profile's dialect: the population ("samples") and, for ratios, the counted events ("events"), for
    quantiles, the latency histogram's buckets ("buckets", `le` in the profile's unit); empty for
    templates the engine does not compare by a test.

    The population is what the window's value divides by: requests for error-rate and the latencies,
    outputs (the quality histogram's `_count`) for invalid-output-rate.

    Counts since the canary started (not a sliding window) are what the engine's sequential test needs:
    every look sees all the data so far (engine.comparison).
    """
    if name not in RATIO_STREAMS and name not in BUCKET_STREAMS:
        return {}
    by = profile.identity.group

    def increase(series: str, extra_by: str = "") -> str:
        return f"sum by ({by}{extra_by}) (increase({series}[{age}]))"

    if name == "invalid-output-rate":
        return {"samples": increase(profile.series(f"{profile.invalid}_count", sel, fixed=False)),
                "events": increase(profile.series(f"{profile.invalid}_sum", sel, fixed=False))}
    parts = {"samples": increase(profile.series(profile.requests, sel))}
    if name == "error-rate":
        parts["events"] = increase(profile.series(profile.requests, sel, profile.error_matcher))
    else:
        parts["buckets"] = buckets_query(sel, age, profile)
    return parts


def buckets_query(sel: str, window: str, profile: MetricProfile, *, score: bool = False) -> str:
    """A histogram's cumulative buckets over `window` per track and version: the latency histogram's (`le`
    in the profile's unit), a quantile's counts, which its stream and a limit's test read, or with `score`
    the quality export's score histogram, whose spread the test of a score-shift's limit reads
    (engine.limits; quality series carry no request matchers)."""
    if score:
        series = profile.series(f"{profile.score}_bucket", sel, fixed=False)
    else:
        series = profile.series(profile.duration_bucket, sel)
    return f"sum by ({profile.identity.group}, le) (increase({series}[{window}]))"


def _alternation(values: Iterable[str]) -> str:
    # re.escape for the regex, then doubled backslashes: PromQL "..." strings use Go escapes, where `\.`
    # alone is an error.
    return "|".join(re.escape(v).replace("\\", "\\\\") for v in sorted(set(values)))


def selector(keys: Iterable[tuple[str, str, str]], identity: Identity = IDENTITY) -> str:
    """Label matchers (without braces) selecting these (sandbox, namespace, name) ModelDeployments'
    tracks.

    The regexes may match extra combinations (sandbox-a with name-b): the adapter keeps only the
    requested keys, and such series only exist if pods of that name run in that sandbox, which costs a
    few extra series at most.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("selector needs at least one ModelDeployment")
    return (
        f'{identity.sandbox}=~"{_alternation(k[0] for k in keys)}", '
        f'{identity.md_namespace}=~"{_alternation(k[1] for k in keys)}", '
        f'{identity.md_name}=~"{_alternation(k[2] for k in keys)}", '
        f'{identity.track}=~"{_alternation(TRACKS)}"'
    )


def samples_query(sel: str, window: str, profile: MetricProfile) -> str:
    """Requests per ModelDeployment and track over the window: the sample count behind every value."""
    return f"sum by ({profile.identity.group}) (increase({profile.series(profile.requests, sel)}[{window}]))"


_BY = re.compile(r"\{\{\s*by\s*\}\}")
_BATCH_VARIABLE = re.compile(r"\{\{\s*(by|selector|window)\s*\}\}")
CLUSTER_TEMPLATE = "ClusterSLOTemplate"


def batched(template: TemplateQuery) -> bool:
    """A ClusterSLOTemplate (trusted, platform-written) that uses {{by}}: one query per tick covers every
    ModelDeployment, split by the identity labels like a built-in. A tenant's SLOTemplate never is."""
    return template.kind == CLUSTER_TEMPLATE and _BY.search(template.query) is not None


def render_batched(template: TemplateQuery, selector: str, window: str, identity: Identity = IDENTITY) -> str:
    """The batched form: {{by}} (grouping labels), {{selector}} (every ModelDeployment of the tick), {{window}}."""
    values = {"by": identity.group, "selector": selector, "window": window}
    return _BATCH_VARIABLE.sub(lambda m: values[m.group(1)], template.query)


def track_selector(key: tuple[str, str, str], track: str, identity: Identity = IDENTITY) -> str:
    """Exact label matchers (without braces) of one ModelDeployment's track: `{{selector}}` of a query
    that runs per ModelDeployment and track. `key`: (sandbox, namespace, name) as the labels carry it."""
    sandbox, namespace, name = key
    return (f'{identity.sandbox}="{_quote(sandbox)}", {identity.md_namespace}="{_quote(namespace)}", '
            f'{identity.md_name}="{_quote(name)}", {identity.track}="{_quote(track)}"')


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_VARIABLE = re.compile(r"\{\{\s*(namespace|name|track|window|sandbox|selector)\s*\}\}")


def render_custom(query: str, *, namespace: str, name: str, track: str, window: str, sandbox: str = "",
                  selector: str = "") -> str:
    """Substitute {{namespace}} (the ModelDeployment's), {{name}}, {{track}}, {{window}}, {{sandbox}} (the
    namespace its pods run in) and {{selector}} (exact matchers of the track); spaces inside the braces
    allowed.

    Custom queries run once per ModelDeployment and track: an arbitrary expression cannot be grouped
    safely by labels it may not carry, so they are not batched.
    """
    values = {"namespace": namespace, "name": name, "track": track, "window": window, "sandbox": sandbox,
              "selector": selector}
    return _VARIABLE.sub(lambda m: values[m.group(1)], query)
