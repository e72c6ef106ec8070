"""SLO values over time for one ModelDeployment: the series behind each verdict, for charts.

The operator judges one instant per tick; a person wants the curve. These are the same template
queries the operator sends (tollgate.adapters.slo_templates, with its selector narrowed to one
ModelDeployment), asked as range queries, and split by the same rule: only the version under
analysis counts on each track. Like an observation, a series holds each track's own values; how they
are judged (a score shift as |canary - stable|) is the engine's (engine.analysis.compared), applied
by whoever draws them. Pure functions here; the query itself is `PrometheusProvider.series`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tollgate.adapters.metric_profiles import IDENTITY, Identity

Point = tuple[float, float | None]
"""(seconds since the epoch, value or None where the track had no value)."""

MAX_POINTS = 600
"""Points per series a chart needs at most (Prometheus itself refuses more than 11,000)."""


@dataclass(frozen=True)
class SLOSeries:
    """One SLO's canary and stable values over a time range, each track's own (not yet compared)."""

    name: str
    canary: tuple[Point, ...] = ()
    stable: tuple[Point, ...] = ()
    canary_samples: tuple[Point, ...] = ()
    """Requests behind each canary value (what minSamples is checked against)."""
    query: str = ""
    error: str | None = None
    """Why there is no series (Prometheus unreachable, a query refused); never raised."""


def step_for(start: float, end: float, min_step: float = 1.0) -> float:
    """A query resolution that keeps a range within MAX_POINTS points and no finer than `min_step`."""
    return max(min_step, math.ceil((end - start) / MAX_POINTS))


def _value(raw: Any) -> float | None:
    v = float(raw)
    return v if math.isfinite(v) else None


def split_matrix(
    result: Sequence[Mapping[str, Any]], identity: Identity = IDENTITY
) -> dict[tuple[str, str, str, str], dict[str, dict[float, float | None]]]:
    """{(sandbox, namespace, name, track): {version: {t: value}}} from a grouped range-vector result."""
    out: dict[tuple[str, str, str, str], dict[str, dict[float, float | None]]] = {}
    for series in result:
        labels = series.get("metric", {})
        try:
            key = (labels[identity.sandbox], labels[identity.md_namespace], labels[identity.md_name],
                   labels[identity.track])
        except KeyError:
            continue
        points = {float(t): _value(v) for t, v in series.get("values") or []}
        out.setdefault(key, {})[labels.get(identity.version, "")] = points
    return out


def pick_points(per_version: Mapping[str, Mapping[float, float | None]] | None, version: str | None,
                *, additive: bool = False) -> dict[float, float | None]:
    """The points of the version under analysis (as `prometheus.pick` does for one instant)."""
    if not per_version:
        return {}
    if version is not None:
        return dict(per_version.get(version) or {})
    if len(per_version) == 1:
        return dict(next(iter(per_version.values())))
    if not additive:
        return {}
    summed: dict[float, float | None] = {}
    for points in per_version.values():
        for t, v in points.items():
            if v is not None:
                summed[t] = (summed.get(t) or 0.0) + v
    return summed


def points(values: Mapping[float, float | None]) -> tuple[Point, ...]:
    return tuple(sorted(values.items()))


def single_series(result: Sequence[Mapping[str, Any]]) -> dict[float, float | None]:
    """The one series of a custom query's range result (empty when absent)."""
    if not result:
        return {}
    if len(result) > 1:
        raise ValueError(f"returned {len(result)} series; aggregate it to one value per track")
    return {float(t): _value(v) for t, v in result[0].get("values") or []}
