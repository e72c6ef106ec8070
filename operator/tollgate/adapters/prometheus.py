"""The Prometheus metrics provider: SLO observations for every ModelDeployment in analysis, batched.

One `observe()` call is one analysis tick. It sends one grouped query per built-in template per analysis
window and metric profile, covering every ModelDeployment in the tick (a canary younger than its window
asks for a shorter range, its age in whole look intervals: AnalysisRequest.window; young canaries that
started in the same look interval share one), and splits each returned vector
per ModelDeployment and track (by the identity labels of `tollgate.adapters.metric_profiles`). All
queries of a tick are evaluated at the same instant, so canary, stable and sample counts describe the
same window.

Custom `query:` SLOs cannot be batched (an arbitrary expression need not carry the grouping labels),
so each runs once per ModelDeployment and track with its variables substituted (`render_custom`); its
evidence string holds both executed queries. A tenant's query (an inline `query:` or an SLOTemplate) runs
only when every selector in it is pinned to the ModelDeployment's sandbox, `namespace="<sandbox>"`, the
label Prometheus sets from discovery and a pod cannot forge (promql_scope); otherwise the SLO reports an
error naming the selector, and nothing is sent. `{{selector}}` pins a selector exactly. The evidence of
a batched query shows it for that ModelDeployment alone, not the batch's text (which names every
ModelDeployment of the tick).

Failure never raises into the caller: an unreachable Prometheus, a timeout or a bad query becomes
`SLOObservation.error`, which the engine counts apart from failed checks. Transient failures
(connection, timeout, HTTP 408/429/5xx) are retried with tenacity, bounded in attempts and in total
time, so a tick cannot hang. Credentials (bearer token or basic auth) are held out of repr and logs.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential
from urllib3.util.retry import Retry

from tollgate.adapters.metric_profiles import DEFAULT_PROFILE, IDENTITY, PROFILES, Identity, MetricProfile
from tollgate.adapters.promql_scope import Scope, ScopeError, check_scoped
from tollgate.adapters.slo_series import SLOSeries, pick_points, points, single_series, split_matrix, step_for
from tollgate.adapters.slo_templates import (
    BUCKET_STREAMS,
    CLUSTER_TEMPLATE,
    RATIO_STREAMS,
    TEMPLATES,
    TRACKS,
    batched,
    buckets_query,
    render_batched,
    render_custom,
    samples_query,
    selector,
    stream_parts,
    track_selector,
)
from tollgate.api.spec import SLO
from tollgate.engine.comparison import SHIFT_SLOS
from tollgate.engine.naming import fit, label_value
from tollgate.engine.observations import AnalysisRequest, MDKey, MetricValue, SLOObservation, StreamData

log = logging.getLogger(__name__)

AGE_LABEL = "tollgate_age"
"""Label that tells a stream part's age (its range) apart within one query's answer."""
PART_LABEL = "tollgate_part"
"""Label that separates a template's values from its sample counts within one query's answer."""


@dataclass(frozen=True)
class Credentials:
    """Prometheus credentials, read by the runtime from a Secret. Secret values never appear in repr."""

    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        if self.bearer_token:
            return "bearer"
        if self.username is not None:
            return "basic"
        return "none"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.bearer_token, self.password) if s)


class QueryError(Exception):
    """A query answered, but not with something usable as one value per track."""


_STATUS = re.compile(r"HTTP Status Code (\d{3})")


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the network or an overloaded server, not a query Prometheus refused."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(exc, PrometheusApiClientException):
        m = _STATUS.search(str(exc))
        return m is not None and (m.group(1) in ("408", "429") or m.group(1).startswith("5"))
    return False


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _sample_value(sample: Any) -> float:
    """The float of a [timestamp, "value"] pair; "NaN", "+Inf" and "-Inf" parse as such."""
    return float(sample[1])


SeriesKey = tuple[str, str, str, str]
"""(sandbox, namespace, name, track) as the identity labels of a series carry them."""


def split_versions(
    result: Sequence[Mapping[str, Any]], identity: Identity = IDENTITY
) -> dict[SeriesKey, dict[str, float]]:
    """{(sandbox, namespace, name, track): {version: value}} from a grouped instant-vector result."""
    out: dict[SeriesKey, dict[str, float]] = {}
    for series in result:
        labels = series.get("metric", {})
        try:
            key = (labels[identity.sandbox], labels[identity.md_namespace], labels[identity.md_name],
                   labels[identity.track])
        except KeyError:
            continue  # a series without the grouping labels belongs to nobody
        out.setdefault(key, {})[labels.get(identity.version, "")] = _sample_value(series["value"])
    return out


def pick(per_version: Mapping[str, float] | None, version: str | None, *, additive: bool = False) -> float | None:
    """The value of the version under analysis; without one, the only value (or the sum, if additive)."""
    if not per_version:
        return None
    if version is not None:
        return per_version.get(version)
    if len(per_version) == 1 or additive:
        return sum(per_version.values()) if additive else next(iter(per_version.values()))
    return None  # several versions and no way to tell which one is meant: no data, not a wrong value


def split_vector(result: Sequence[Mapping[str, Any]], identity: Identity = IDENTITY) -> dict[SeriesKey, float]:
    """{(sandbox, namespace, name, track): value} from a grouped result, versions summed (sample counts)."""
    return {k: sum(v.values()) for k, v in split_versions(result, identity).items()}


def single_value(result: Any) -> float | None:
    """The one value of a custom query: None when empty; a scalar result counts as one value."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _sample_value(result)  # resultType scalar: [t, "v"]
    if not result:
        return None
    if len(result) > 1:
        raise QueryError(f"returned {len(result)} series; aggregate it to one value per track")
    series = result[0]
    if "value" not in series:
        raise QueryError("returned a range vector; use an instant expression (e.g. rate(x[{{window}}]))")
    return _sample_value(series["value"])


def _series_key(req: AnalysisRequest) -> tuple[str, str, str]:
    """(sandbox, namespace, name) as the identity labels carry them (names fitted to label size)."""
    return (fit(req.sandbox), fit(req.namespace), fit(req.name))


def _label(version: str | None) -> str | None:
    """A model version as the pod label (and so the `version` series label) carries it."""
    return None if version is None else label_value(version)


def stream_age(req: AnalysisRequest, at: float) -> str | None:
    """The PromQL range from the request's stream start to `at`, in whole seconds (None: no stream, or
    not one second old yet)."""
    if req.stream_since is None:
        return None
    try:
        since = datetime.fromisoformat(req.stream_since.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    seconds = math.ceil(at - since)
    return f"{seconds}s" if seconds >= 1 else None


def _streamed(slo: SLO) -> bool:
    """The SLO is measured as a stream too: compared with its baseline (engine.comparison), on a built-in
    template that has one."""
    has_stream = slo.name in RATIO_STREAMS or slo.name in BUCKET_STREAMS
    return (slo.query is None and slo.templateRef is None and slo.maxIncreaseOverBaseline is not None
            and has_stream)


def _limited(slo: SLO) -> bool:
    """The SLO's window buckets travel with its value, so its limit is tested on counts (engine.limits), not
    on the estimate alone: a built-in quantile with a min or max, or score-shift with a max or a
    maxIncreaseOverBaseline (the same limit for a shift: engine.limits.ceiling)."""
    if slo.query is not None or slo.templateRef is not None:
        return False
    if slo.name in SHIFT_SLOS:
        return slo.max is not None or slo.maxIncreaseOverBaseline is not None
    return slo.name in BUCKET_STREAMS and (slo.min is not None or slo.max is not None)


def _samples(value: float | None) -> int:
    if value is None or not math.isfinite(value) or value < 0:
        return 0
    return round(value)


class PrometheusProvider:
    """The MetricsProvider port (tollgate.ports.metrics) on prometheus-api-client, with bounded retries
    and timeouts."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        max_retry_time: float = 10.0,
        profile: str = DEFAULT_PROFILE,
        verify_tls: bool = True,
        max_workers: int = 4,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`session`: the HTTP seam; tests mount a transport adapter on it, production leaves it None.
        `clock`: epoch seconds at which queries are evaluated (the runtime passes the API server's
        time, so a node with a skewed clock does not query the wrong window)."""
        self._clock = clock
        self._url = url.rstrip("/")
        self._credentials = credentials or Credentials()
        self._timeout = timeout
        self._attempts = attempts
        self._max_retry_time = max_retry_time
        if profile not in PROFILES:
            raise ValueError(f"unknown metric profile {profile!r}; choose one of {sorted(PROFILES)}")
        self.profile = PROFILES[profile]
        """The profile of requests that name none (the operator's --metrics-profile)."""
        self._max_workers = max_workers
        headers: dict[str, str] = {}
        if self._credentials.bearer_token:
            headers["Authorization"] = f"Bearer {self._credentials.bearer_token}"
        auth = None
        if self._credentials.username is not None:
            auth = (self._credentials.username, self._credentials.password or "")
        self._session = session or requests.Session()
        self._session.verify = verify_tls
        # Retries belong to tenacity (bounded in time as well as attempts); the library's own urllib3
        # retry, with its 1s backoff, is switched off so the two do not multiply.
        self._client = PrometheusConnect(
            url=self._url,
            headers=headers or None,
            auth=auth,
            session=self._session,
            retry=Retry(total=0, raise_on_status=False),
            timeout=timeout,
        )
        self._headers = headers
        self._auth = auth

    def __repr__(self) -> str:
        return f"PrometheusProvider(url={_redact_url(self._url)!r}, auth={self._credentials.kind})"

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

    # --- MetricsProvider ------------------------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            resp = self._session.get(
                self._url + "/-/ready", headers=self._headers, auth=self._auth, timeout=self._timeout
            )
        except requests.RequestException as e:
            log.debug("prometheus %s not ready: %s", self, self._describe(e))
            return False
        return resp.status_code == 200

    def observe(
        self, requests: Sequence[AnalysisRequest], *, at: float | None = None
    ) -> dict[MDKey, tuple[SLOObservation, ...]]:
        """Observe every requested SLO at instant `at` (default: now), batched; never raises."""
        at = self._clock() if at is None else at
        groups = self._windows(r for r in requests if self._cannot_exclude(r, self._profile(r)) is None)
        results = self._run(self._plan(groups, at), at)
        out: dict[MDKey, tuple[SLOObservation, ...]] = {}
        for req in requests:
            refused = self._cannot_exclude(req, self._profile(req))
            if refused is not None:
                out[req.key] = tuple(SLOObservation(name=s.name, error=refused, window=req.window) for s in req.slos)
                continue
            try:
                same = groups[(req.window, self._profile(req).name)]
                out[req.key] = tuple(self._assemble(req, slo, results, same, at) for slo in req.slos)
            except Exception as e:  # a bug here must not take the tick down; report it as an error
                log.exception("assembling observations for %s/%s failed", *req.key)
                out[req.key] = tuple(
                    SLOObservation(
                        name=s.name, error=f"internal error: {self._describe(e)}", window=req.window
                    )
                    for s in req.slos
                )
        return out

    def series(
        self, req: AnalysisRequest, start: float, end: float, step: float | None = None
    ) -> tuple[SLOSeries, ...]:
        """Each SLO of one ModelDeployment from `start` to `end` (seconds since the epoch): the queries
        `observe` sends, narrowed to this ModelDeployment and asked as range queries. For charts (the
        dashboard); never raises: a failed query is the series' `error`."""
        resolution = step or step_for(start, end)
        out: list[SLOSeries] = []
        for slo in req.slos:
            try:
                out.append(self._series(req, slo, start, end, resolution))
            except Exception as e:  # one SLO's bad answer must not hide the others
                out.append(SLOSeries(name=slo.name, error=self._describe(e)))
        return tuple(out)

    def _series(self, req: AnalysisRequest, slo: SLO, start: float, end: float, step: float) -> SLOSeries:
        per_track_text = self._per_track(req, slo)
        if per_track_text is not None:
            per_track: dict[str, dict[float, float | None]] = {}
            executed = []
            for track in TRACKS:
                q = self._custom(req, per_track_text, track)
                executed.append(f"# track={track}\n{q}")
                refusal = self._refusal(q, req, slo)  # the dashboard runs only what analysis would
                if refusal is not None:
                    return SLOSeries(slo.name, query=q, error=refusal)
                answer = self._query_range(q, start, end, step)
                if isinstance(answer, Exception):
                    return SLOSeries(slo.name, query="\n".join(executed), error=self._describe(answer))
                per_track[track] = single_series(answer)
            return SLOSeries(slo.name, points(per_track["canary"]), points(per_track["stable"]),
                             query="\n".join(executed))
        promql = self._grouped(slo, req, req.window, [req])
        if promql is None:
            return SLOSeries(slo.name, error=f"unknown SLO template: {self._unknown(slo)}")
        answer = self._query_range(promql, start, end, step)
        if isinstance(answer, Exception):
            return SLOSeries(slo.name, query=promql, error=self._describe(answer))
        identity = self._profile(req).identity
        values = split_matrix([x for x in answer if x.get("metric", {}).get(PART_LABEL) == "value"], identity)
        counts = split_matrix([x for x in answer if x.get("metric", {}).get(PART_LABEL) == "samples"], identity)
        key = _series_key(req)
        on = {t: pick_points(values.get((*key, t)), _label(req.version_of(t))) for t in TRACKS}
        samples = pick_points(counts.get((*key, "canary")), _label(req.version_of("canary")), additive=True)
        return SLOSeries(slo.name, points(on["canary"]), points(on["stable"]), points(samples), query=promql)

    def _query_range(self, promql: str, start: float, end: float, step: float) -> Any:
        """One range query with the same bounded retries as `_query`; the result or the exception."""
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._max_retry_time),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        params = {"timeout": f"{max(1, round(self._timeout * 1000))}ms"}
        try:
            return retrying(
                self._client.custom_query_range, query=promql, start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC), step=f"{step:g}s", params=params,
            )
        except Exception as e:
            log.warning("prometheus range query failed: %s", self._describe(e))
            return e

    # --- planning -------------------------------------------------------------------------------------
    Group = tuple[str, str]
    """(window, profile name): the requests one batched query covers."""

    def _profile(self, req: AnalysisRequest) -> MetricProfile:
        """The request's dialect; its variant without hook traffic when the spec excludes it and the dialect
        can (one that cannot is reported per SLO in `observe`, never measured as if it had)."""
        profile = PROFILES.get(req.profile or "", self.profile)
        if req.exclude_synthetic and profile.synthetic_label is not None:
            return profile.excluding_synthetic()
        return profile

    @staticmethod
    def _cannot_exclude(req: AnalysisRequest, profile: MetricProfile) -> str | None:
        if not req.exclude_synthetic or profile.exclude_synthetic:
            return None
        return (f"spec.hooks.syntheticTraffic is exclude, but metric profile {profile.name} does not label synthetic "
                f"requests: set spec.metrics.profile: istio (with the Telemetry tag override in docs/operations.md), "
                f"or syntheticTraffic: include")

    def _windows(self, requests: Iterable[AnalysisRequest]) -> dict[Group, list[AnalysisRequest]]:
        by_group: dict[PrometheusProvider.Group, list[AnalysisRequest]] = {}
        for r in requests:
            by_group.setdefault((r.window, self._profile(r).name), []).append(r)
        return by_group

    def _selector(self, reqs: Sequence[AnalysisRequest], profile: MetricProfile) -> str:
        base = selector((_series_key(r) for r in reqs), profile.identity)
        return f"{base}, {profile.synthetic_matcher}" if profile.synthetic_matcher else base

    def _grouped(
        self, slo: SLO, req: AnalysisRequest, window: str, reqs: Sequence[AnalysisRequest], at: float | None = None
    ) -> str | None:
        """The batched query of a built-in or of a batched ClusterSLOTemplate: its values and the sample
        counts behind them, in one query; None for an SLO that runs per track.

        Both vectors travel in one answer, told apart by a `tollgate_part` label, so a tick costs one
        query per template (not one more for the counts), and each template still fails on its own.
        A latency quantile with a min or max brings its window's buckets along (`buckets`), for the limit's
        test (engine.limits). The streams of the canaries compared with their baseline by a test (counts
        since each canary started, engine.comparison; built-ins only) travel in the same answer: one part per age (its
        range), told apart by `tollgate_age`, so canaries of different ages still cost no extra query.
        `at` None (a range query, for charts) carries no streams.
        """
        template = req.template_of(slo.name)
        if template is None and (slo.query is not None or slo.name not in TEMPLATES):
            return None
        if template is not None and not batched(template):
            return None
        profile = self._profile(reqs[0])
        sel = self._selector(reqs, profile)
        if template is not None:
            value = render_batched(template, sel, window, profile.identity)
        else:
            value = TEMPLATES[slo.name].render(sel, window, profile)
        samples = samples_query(sel, window, profile)
        parts = [f'label_replace({value}, "{PART_LABEL}", "value", "", "")',
                 f'label_replace({samples}, "{PART_LABEL}", "samples", "", "")']
        # A limit judged on the canary's stream (compared with its baseline) counts the stream's buckets.
        limited = [r for r in reqs if any(s.name == slo.name and _limited(s)
                                          and not (_streamed(s) and r.stream_since is not None) for s in r.slos)]
        if template is None and at is not None and limited:
            buckets = buckets_query(self._selector(limited, profile), window, profile,
                                    score=slo.name in SHIFT_SLOS)
            parts.append(f'label_replace({buckets}, "{PART_LABEL}", "buckets", "", "")')
        if template is None and at is not None:
            by_age: dict[str, list[AnalysisRequest]] = {}
            for r in reqs:
                age = stream_age(r, at)
                if age is not None and any(s.name == slo.name and _streamed(s) for s in r.slos):
                    by_age.setdefault(age, []).append(r)
            for age in sorted(by_age):
                for part, promql in stream_parts(slo.name, self._selector(by_age[age], profile), age, profile).items():
                    parts.append(f'label_replace(label_replace({promql}, "{PART_LABEL}", "stream-{part}", "", ""), '
                                 f'"{AGE_LABEL}", "{age}", "", "")')
        return " or ".join(parts)

    @staticmethod
    def _unknown(slo: SLO) -> str:
        return f"template {slo.templateRef.name!r} not resolved" if slo.templateRef else f"{slo.name!r}"

    @staticmethod
    def _per_track(req: AnalysisRequest, slo: SLO) -> str | None:
        """The PromQL of an SLO that runs once per track: an inline query, or a template's that is not
        batched (every SLOTemplate: a tenant's query is scoped per ModelDeployment)."""
        template = req.template_of(slo.name)
        if template is not None:
            return None if batched(template) else template.query
        return slo.query

    def _samples_query(self, window: str, reqs: Sequence[AnalysisRequest]) -> str:
        profile = self._profile(reqs[0])
        return samples_query(self._selector(reqs, profile), window, profile)

    def _custom(self, req: AnalysisRequest, query: str, track: str) -> str:
        profile = self._profile(req)
        sel = track_selector(_series_key(req), track, profile.identity)
        if profile.synthetic_matcher:
            sel = f"{sel}, {profile.synthetic_matcher}"  # {{selector}} carries the exclusion (spec.hooks)
        return render_custom(query, namespace=req.namespace, name=req.name, track=track, window=req.window,
                             sandbox=req.sandbox, selector=sel)

    def _plan(self, groups: Mapping[Group, Sequence[AnalysisRequest]], at: float) -> list[str]:
        """Every distinct PromQL this tick needs: per group, each template used (with its counts), the
        sample counts of custom queries, and the custom queries themselves."""
        queries: dict[str, None] = {}
        for (window, _), reqs in groups.items():
            if any(self._per_track(r, s) is not None for r in reqs for s in r.slos):
                queries[self._samples_query(window, reqs)] = None  # per-track queries carry no counts
            grouped = {q for r in reqs for s in r.slos if (q := self._grouped(s, r, window, reqs, at)) is not None}
            for q in sorted(grouped):
                queries[q] = None
            for r in reqs:
                for s in r.slos:
                    if (text := self._per_track(r, s)) is not None:
                        for track in TRACKS:
                            q = self._custom(r, text, track)
                            if self._refusal(q, r, s) is None:
                                queries[q] = None  # a tenant's query that is not scoped is never sent
        return list(queries)

    def _refusal(self, promql: str, req: AnalysisRequest, slo: SLO) -> str | None:
        """Why a tenant's query may not run for this ModelDeployment (promql_scope), or None.

        Tenant-written: an inline `query:` and an SLOTemplate's. The scope is the sandbox, as the series'
        `namespace` label (Prometheus sets it from the pod's namespace; docs/operations.md). A
        ClusterSLOTemplate is the platform team's and trusted, like the built-ins."""
        template = req.template_of(slo.name)
        if template is not None and template.kind == CLUSTER_TEMPLATE:
            return None
        what = f"SLOTemplate {template.name!r}" if template is not None else "custom query"
        try:
            check_scoped(promql, Scope(self._profile(req).identity.sandbox, _series_key(req)[0]))
        except ScopeError as exc:
            return f"{what} refused: {exc}"
        return None

    # --- execution ------------------------------------------------------------------------------------
    def _run(self, queries: Sequence[str], at: float) -> dict[str, Any]:
        """{promql: result or the exception it ended with}, queries run concurrently (bounded)."""
        if not queries:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(queries))) as pool:
            futures = {q: pool.submit(self._query, q, at) for q in queries}
            return {q: f.result() for q, f in futures.items()}

    def _query(self, promql: str, at: float) -> Any:
        """One query with bounded retries; returns `data.result` or the final exception (as a value)."""
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._max_retry_time),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        params = {"time": f"{at:.3f}", "timeout": f"{max(1, round(self._timeout * 1000))}ms"}
        try:
            result = retrying(self._client.custom_query, query=promql, params=params)
        except Exception as e:
            log.warning(
                "prometheus query failed after %.2fs: %s", time.monotonic() - started, self._describe(e)
            )
            return e
        log.debug("prometheus query took %.3fs: %s", time.monotonic() - started, promql)
        return result

    def _describe(self, exc: BaseException) -> str:
        """A one-line error for status and evidence, with any credential scrubbed defensively."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._credentials.secrets():
            text = text.replace(secret, "***")
        text = text.replace(self._url, _redact_url(self._url))
        return text[:500]

    # --- assembly -------------------------------------------------------------------------------------
    def _assemble(
        self,
        req: AnalysisRequest,
        slo: SLO,
        results: Mapping[str, Any],
        same_window: Sequence[AnalysisRequest],
        at: float,
    ) -> SLOObservation:
        """`same_window`: the requests batched with `req` (their grouped queries are the same text)."""
        per_track = self._per_track(req, slo)
        if per_track is not None:
            samples_q = self._samples_query(req.window, same_window)
            samples_result = results[samples_q]
            if isinstance(samples_result, Exception):
                return SLOObservation(
                    name=slo.name,
                    error=f"sample count query failed: {self._describe(samples_result)}",
                    query=self._samples_query(req.window, [req]),
                    window=req.window,
                )
            return self._assemble_custom(req, slo, per_track, results, self._counts(req, samples_result))
        promql = self._grouped(slo, req, req.window, same_window, at)
        if promql is None:
            return SLOObservation(name=slo.name, error=f"unknown SLO template: {self._unknown(slo)}",
                                  window=req.window)

        answer = results[promql]
        # What the evidence shows: the same query for this ModelDeployment alone. The batch's text names
        # every ModelDeployment of the tick, and one tenant's evidence must not list another's.
        promql = self._grouped(slo, req, req.window, [req], at) or promql
        if isinstance(answer, Exception):
            return SLOObservation(
                name=slo.name, error=self._describe(answer), query=promql, window=req.window
            )
        result = [x for x in answer if x.get("metric", {}).get(PART_LABEL) == "value"]
        n = self._counts(req, [x for x in answer if x.get("metric", {}).get(PART_LABEL) == "samples"])
        values = split_versions(result, self._profile(req).identity)
        canary = pick(values.get((*_series_key(req), "canary")), _label(req.version_of("canary")))
        stable = pick(values.get((*_series_key(req), "stable")), _label(req.version_of("stable")))
        # A stream asked for keeps its start even when the answer left it out (younger than two scrapes,
        # a late scrape): the engine then gives no verdict instead of judging one window's raw difference.
        asked = req.stream_since is not None and _streamed(slo)
        streams = self._streams(req, slo.name, answer, at) if asked else None
        unit = 1.0 if slo.name in SHIFT_SLOS else None  # scores are scores; latency in the profile's unit
        hist = self._histograms(req, [x for x in answer if x.get("metric", {}).get(PART_LABEL) == "buckets"], unit)
        return SLOObservation(
            name=slo.name,
            canary=MetricValue(canary, n["canary"], buckets=hist.get("canary")),
            stable=MetricValue(stable, n["stable"], buckets=hist.get("stable")),
            query=promql,
            window=req.window,
            stream_since=req.stream_since if asked else None,
            canary_stream=streams["canary"] if streams is not None else None,
            stable_stream=streams["stable"] if streams is not None else None,
        )

    def _streams(self, req: AnalysisRequest, name: str, answer: Any, at: float) -> dict[str, StreamData] | None:
        """Each track's stream (counts since the canary started) from the template query's answer, for
        the version under analysis on each track; None when this request has no stream in it. A ratio's
        track without a series of counted events (no error ever) counts 0 of them. Bucket bounds are
        turned into seconds (the profile's duration_unit), as the window's quantiles are."""
        age = stream_age(req, at)
        if age is None:
            return None
        profile = self._profile(req)
        ident = profile.identity
        parts: dict[str, list[Mapping[str, Any]]] = {}
        for x in answer:
            labels = x.get("metric", {})
            part = str(labels.get(PART_LABEL, ""))
            if part.startswith("stream-") and labels.get(AGE_LABEL) == age:
                parts.setdefault(part.removeprefix("stream-"), []).append(x)
        if "samples" not in parts:
            return None
        samples = split_versions(parts["samples"], ident)
        events = split_versions(parts.get("events", []), ident)
        hist = self._histograms(req, parts["buckets"]) if "buckets" in parts else {}
        ratio = name in RATIO_STREAMS
        out: dict[str, StreamData] = {}
        for track in TRACKS:
            key = (*_series_key(req), track)
            version = _label(req.version_of(track))
            n = _samples(pick(samples.get(key), version, additive=True))
            ev = pick(events.get(key), version, additive=True) if ratio else None
            events_value = ev if ev is not None and math.isfinite(ev) else (0.0 if ratio else None)
            out[track] = StreamData(samples=n, events=events_value, buckets=hist.get(track))
        return out

    def _histograms(
        self, req: AnalysisRequest, series: Sequence[Mapping[str, Any]], unit: float | None = None
    ) -> dict[str, tuple[tuple[float, float], ...]]:
        """Each track's cumulative buckets from a `sum by (..., le)` answer, `le` times `unit` (default the
        profile's duration_unit: latency in seconds), for the version under analysis on each track (summed
        over versions when none is named); a track without finite buckets is left out."""
        profile = self._profile(req)
        scale = profile.duration_unit if unit is None else unit
        ident = profile.identity
        key = _series_key(req)
        versions = {t: _label(req.version_of(t)) for t in TRACKS}
        by_track: dict[str, dict[float, float]] = {}
        for x in series:
            labels = x.get("metric", {})
            track = labels.get(ident.track, "")
            if track not in versions or (labels.get(ident.sandbox, ""), labels.get(ident.md_namespace, ""),
                                         labels.get(ident.md_name, "")) != key:
                continue
            version = versions[track]
            if version is not None and labels.get(ident.version, "") != version:
                continue
            le = float(labels.get("le", "nan")) * scale
            count = _sample_value(x["value"])
            if math.isnan(le) or not math.isfinite(count):
                continue
            per_le = by_track.setdefault(track, {})
            per_le[le] = per_le.get(le, 0.0) + count
        return {track: tuple(sorted(per_le.items())) for track, per_le in by_track.items() if per_le}

    def _counts(self, req: AnalysisRequest, samples_result: Any) -> dict[str, int]:
        """Requests per track behind the values, for the version under analysis on each track."""
        samples = split_versions(samples_result, self._profile(req).identity)
        return {
            t: _samples(pick(samples.get((*_series_key(req), t)), _label(req.version_of(t)), additive=True))
            for t in TRACKS
        }

    def _assemble_custom(
        self, req: AnalysisRequest, slo: SLO, text: str, results: Mapping[str, Any], n: Mapping[str, int]
    ) -> SLOObservation:
        name = slo.name
        executed: list[str] = []
        values: dict[str, float | None] = {}
        errors: list[str] = []
        for track in TRACKS:
            q = self._custom(req, text, track)
            executed.append(f"# track={track}\n{q}")
            refusal = self._refusal(q, req, slo)
            if refusal is not None:
                return SLOObservation(name=name, error=refusal, query=q, window=req.window)
            result = results[q]
            if isinstance(result, Exception):
                errors.append(f"{track}: {self._describe(result)}")
                continue
            try:
                values[track] = single_value(result)
            except QueryError as e:
                errors.append(f"{track}: {e}")
        query = "\n".join(executed)
        if errors:
            return SLOObservation(name=name, error="; ".join(errors), query=query, window=req.window)
        return SLOObservation(
            name=name,
            canary=MetricValue(values.get("canary"), n["canary"]),
            stable=MetricValue(values.get("stable"), n["stable"]),
            query=query,
            window=req.window,
        )
