"""False rollbacks and detection: Tollgate's statistical verdicts against today's raw-difference rule.

Both rules judge the very same traffic in the same run. The traffic is the traffic simulator's own
(`tollgate_testkit.simulator.Simulator`: its random number generator, its error draws, its log-normal
latency), ticked second by second without a cluster, and the counters are read back from each pod's
metrics (MLServer's dialect) exactly as Prometheus would scrape them (counts, not extrapolated
rates). Each canary follows a fixed schedule: 10% for 2 minutes, 50% for 2 minutes, then 100% for a
6-minute bake window, with a 1% error rate on both versions (healthy noise)
and a fault on the canary from its first request.

- **raw-wide**: the raw rule with margins of 2 pp and 30 ms, wide enough to quiet most of its noise.
- **raw** (the rule before this change): every analysis interval (30 s) the canary's value over the
  window (60 s) minus stable's, failed when above `maxIncreaseOverBaseline`, no verdict under
  minSamples, no data bounded by maxNoDataDuration (5 m); rolled back when failures exceed
  failureLimit (1). This is engine/analysis.py judging without a stream.
- **tollgate**: a look every scrape interval (5 s) on the canary's stream (counts since it started):
  the two-proportion test for error-rate, Mann-Whitney on the latency buckets for latency-p99, an
  always-valid p-value over the looks at confidence 0.99, the baseline carried into the 100% step; the
  same failureLimit. This is engine/analysis.py judging with the stream.

- **tier**: the same statistical rule with the medium tier's default SLOs: error-rate (max 0.02, +0.01 over
  baseline), an absolute limit twice the healthy 1 % error, and latency-p99 (max 0.5 s, no baseline margin:
  judged on the window), both judged as engine.limits judges them (an exact binomial test, on the stream's
  errors and on the window's requests slower than 0.5 s). On the point estimate such limits rolled back
  about one healthy canary in five (errors), and 13 of 25 (thin) and 7 of 25 (heavy) whose p99 sat just
  under the limit (the scenario `healthy-slow`; 0 and 0 with the test, the same detection of
  `p99-over-limit`).

SLOs: error-rate (max 0.5, +0.005 over baseline) and latency-p99 (max 5 s, +0.01 s over baseline);
minSamples 100. Traffic: thin (10 requests/s per ModelDeployment) and heavy (100/s). Scenarios: the fault
on the canary, over a stable with a 1 % error; `healthy-slow` and `p99-over-limit` slow both versions down
so that 0.5 % of stable's requests are slower than the tier's 0.5 s (its p99 0.49 s), the canary identical
to it or 50 ms slower still.

    python bench/verdicts.py            # full: 50 healthy canaries (25 thin, 25 heavy), 10 per regression
                                        # and traffic level (80 regressed)
    python bench/verdicts.py --quick    # 10 healthy (5 + 5), 3 per regression and traffic level
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, log, machine, percentile

from tollgate.api.spec import SLO
from tollgate.api.status import BaselineRecord, SLOStatus
from tollgate.engine.analysis import judge
from tollgate.engine.comparison import carry_forward
from tollgate.engine.observations import MetricValue, SLOObservation, StreamData
from tollgate.engine.policy import ResolvedSLO
from tollgate.engine.stats import quantile
from tollgate.engine.timeutil import format_time
from tollgate_testkit.simulator import (
    BASE_LATENCY,
    Fault,
    Simulator,
    StaticSplits,
    TrackShare,
    TrafficSplit,
)

SCHEDULE = ((10, 120), (50, 120), (100, 360))
"""(canary weight, seconds): the steps every canary goes through."""
LOOK_S = 5
INTERVAL_S = 30
WINDOW_S = 60
MIN_SAMPLES = 100
FAILURE_LIMIT = 1
CONFIDENCE = 0.99
BASE_ERROR = 0.01
P99 = BASE_LATENCY * math.exp(0.3 * 2.3263)
"""p99 of a healthy simulated request (log-normal, sigma 0.3)."""
SLOS = (
    ResolvedSLO(SLO(name="error-rate", max=0.5, maxIncreaseOverBaseline=0.005), MIN_SAMPLES, 300.0),
    ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.01), MIN_SAMPLES, 300.0),
)
WIDE_SLOS = (
    ResolvedSLO(SLO(name="error-rate", max=0.5, maxIncreaseOverBaseline=0.02), MIN_SAMPLES, 300.0),
    ResolvedSLO(SLO(name="latency-p99", max=5.0, maxIncreaseOverBaseline=0.03), MIN_SAMPLES, 300.0),
)
"""The raw rule with margins wide enough to quiet its noise (2 pp, 30 ms): what a team tunes it to after
false rollbacks, at the price of what it can still see."""
TIER_SLOS = (
    ResolvedSLO(SLO(name="error-rate", max=0.02, maxIncreaseOverBaseline=0.01), MIN_SAMPLES, 300.0),
    ResolvedSLO(SLO(name="latency-p99", max=0.5), MIN_SAMPLES, 300.0),
)
"""The medium tier's default SLOs (api.tiers): its error-rate max is twice the simulated 1 % base error, its
p99 max is where `healthy-slow` puts 0.5 % of the requests: limits a point estimate crossed on noise."""
NEAR_LIMIT = 0.5 - BASE_LATENCY * math.exp(0.3 * 2.5758)
"""Added latency that puts 0.5 % of the simulated requests past the tier's p99 max of 0.5 s (half what a p99
allows there): the log-normal's 99.5th percentile is BASE_LATENCY * e^(0.3 z), z 2.5758."""
RULES = ("raw", "raw-wide", "tollgate", "tier")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REQUESTS = "rest_server_requests_total"
DURATION_BUCKET = "rest_server_request_duration_seconds_bucket"
"""MLServer's series (the simulator's default dialect; metric_profiles.PROFILES["mlserver"])."""


BASE = Fault(error_rate=BASE_ERROR)
"""A healthy version: the simulator's latency, a 1 % error."""


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    regression: bool
    stable: Fault = BASE


SCENARIOS = (
    Scenario("healthy", Fault(error_rate=BASE_ERROR), regression=False),
    Scenario("errors+1pp", Fault(error_rate=BASE_ERROR + 0.01), regression=True),
    Scenario("errors+2pp", Fault(error_rate=BASE_ERROR + 0.02), regression=True),
    Scenario("errors+5pp", Fault(error_rate=BASE_ERROR + 0.05), regression=True),
    Scenario("p99+20%", Fault(error_rate=BASE_ERROR, added_latency=0.2 * P99), regression=True),
    # appended, so the scenarios above keep their seeds
    Scenario("healthy-slow", Fault(error_rate=BASE_ERROR, added_latency=NEAR_LIMIT), regression=False,
             stable=Fault(error_rate=BASE_ERROR, added_latency=NEAR_LIMIT)),
    Scenario("p99-over-limit", Fault(error_rate=BASE_ERROR, added_latency=NEAR_LIMIT + 0.05), regression=True,
             stable=Fault(error_rate=BASE_ERROR, added_latency=NEAR_LIMIT)),
)
TRAFFIC = (("thin", 10.0), ("heavy", 100.0))


@dataclass
class Snapshot:
    """Counters of one track at one second: requests, errors, cumulative latency buckets."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    def minus(self, earlier: Snapshot) -> StreamData:
        bounds = sorted(self.buckets)
        return StreamData(
            samples=round(self.requests - earlier.requests),
            events=self.errors - earlier.errors,
            buckets=tuple((le, self.buckets[le] - earlier.buckets.get(le, 0.0)) for le in bounds),
        )


def snapshot(sim: Simulator, split: TrafficSplit) -> dict[str, Snapshot]:
    out: dict[str, Snapshot] = {"stable": Snapshot(), "canary": Snapshot()}
    for track, snap in out.items():
        for pod in split.pods_of(track):
            export = sim.export_of(pod.namespace, pod.name)
            if export is None:
                continue
            for metric in export.registry.collect():
                for s in metric.samples:
                    if s.name == REQUESTS:
                        snap.requests += s.value
                        if s.labels.get("status_code", "").startswith("5"):
                            snap.errors += s.value
                    elif s.name == DURATION_BUCKET:
                        le = float(s.labels["le"])
                        snap.buckets[le] = snap.buckets.get(le, 0.0) + s.value
    return out


def _value(slo: ResolvedSLO, data: StreamData) -> MetricValue:
    if data.samples <= 0:
        return MetricValue(None, 0)
    if slo.name == "error-rate":
        return MetricValue((data.events or 0.0) / data.samples, data.samples)
    assert data.buckets is not None
    # with its buckets, as the adapter brings them for a limit on the window (engine.limits counts them)
    return MetricValue(quantile(0.99, data.buckets), data.samples, buckets=data.buckets)


def observation(slo: ResolvedSLO, window: Mapping[str, StreamData],
                stream: Mapping[str, StreamData] | None, since: str | None) -> SLOObservation:
    obs = SLOObservation(slo.name, _value(slo, window["canary"]), _value(slo, window["stable"]))
    if stream is None:
        return obs
    return SLOObservation(obs.name, obs.canary, obs.stable, stream_since=since,
                          canary_stream=stream["canary"], stable_stream=stream["stable"])


@dataclass
class Judge:
    """One rule following one canary: its SLO statuses, carried baselines and the rollback moment."""

    streamed: bool
    every: int
    slos: tuple[ResolvedSLO, ...] = SLOS
    statuses: dict[str, SLOStatus] = field(default_factory=dict)
    carried: dict[str, BaselineRecord] = field(default_factory=dict)
    rolled_back_at: int | None = None
    cause: str = ""

    def look(self, t: int, step: int, weight: int, window: Mapping[str, StreamData],
             stream: Mapping[str, StreamData], since: str) -> None:
        if self.rolled_back_at is not None or t % self.every:
            return
        now = T0 + timedelta(seconds=t)
        for slo in self.slos:
            obs = observation(slo, window, stream if self.streamed else None, since)
            check = judge(slo, obs, self.statuses.get(slo.name), now, carried=self.carried.get(slo.name),
                          confidence=CONFIDENCE, full_traffic=weight >= 100)
            self.statuses[slo.name] = check.status
            if self.streamed:
                kept = [self.carried[slo.name]] if slo.name in self.carried else []
                for rec in carry_forward([slo], [obs], kept, at=format_time(now), step=step, weight=weight):
                    self.carried[slo.name] = rec
            if check.status.failures > FAILURE_LIMIT and self.rolled_back_at is None:
                self.rolled_back_at = t
                source = f", {check.status.baselineSource} baseline" if check.status.baselineSource else ""
                self.cause = f"{slo.name} at {weight}%: {check.status.verdict}{source}"


def run_canary(fault: Fault, rate: float, seed: int, stable: Fault = BASE) -> tuple[Judge, Judge, Judge, Judge]:
    """One canary through the schedule; the raw rules and the statistical rule judge the same traffic."""
    splits = StaticSplits()
    sim = Simulator(splits, {"1.0.0": stable, "1.1.0": fault}, rate=rate, seed=seed)
    raw, ours = Judge(streamed=False, every=INTERVAL_S), Judge(streamed=True, every=LOOK_S)
    wide = Judge(streamed=False, every=INTERVAL_S, slos=WIDE_SLOS)
    tier = Judge(streamed=True, every=LOOK_S, slos=TIER_SLOS)

    def split_at(weight: int) -> TrafficSplit:
        return TrafficSplit("bench", f"md-{seed}", "m", (
            TrackShare("stable", "1.0.0", 1 - weight / 100), TrackShare("canary", "1.1.0", weight / 100)),
            "status")

    history: list[dict[str, Snapshot]] = [snapshot(sim, split_at(0))]
    t = 0
    for step, (weight, seconds) in enumerate(SCHEDULE):
        split = split_at(weight)
        splits.set(split)
        since = format_time(T0)
        for _ in range(seconds):
            sim.tick(1.0)
            t += 1
            history.append(snapshot(sim, split))
            now = history[t]
            window = {k: now[k].minus(history[max(t - WINDOW_S, 0)][k]) for k in now}
            stream = {k: now[k].minus(history[0][k]) for k in now}
            for judge_ in (raw, wide, ours, tier):
                judge_.look(t, step, weight, window, stream, since)
    return raw, wide, ours, tier


def _summary(judges: list[Judge], regression: bool) -> dict[str, object]:
    times = [j.rolled_back_at for j in judges if j.rolled_back_at is not None]
    out: dict[str, object] = {"canaries": len(judges), "rollbacks": len(times)}
    if regression:
        out["detected_share"] = round(len(times) / len(judges), 3)
        out["time_to_detect_p50_s"] = statistics.median(times) if times else None
        out["time_to_detect_p90_s"] = percentile(times, 90) if times else None
    causes = sorted({j.cause for j in judges if j.cause})
    if causes:
        out["causes"] = causes[:6]
    return out


def iterate(healthy: int, regressed: int) -> Iterator[tuple[Scenario, str, int, float]]:
    for traffic, rate in TRAFFIC:
        for sc in SCENARIOS:
            n = healthy if not sc.regression else regressed
            for i in range(n):
                yield sc, traffic, i, rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    healthy, regressed = (5, 3) if a.quick else (25, 10)
    started = time.monotonic()
    results: dict[tuple[str, str], dict[str, list[Judge]]] = {}
    for sc, traffic, i, rate in iterate(healthy, regressed):
        name = sc.name
        seed = 1000 * (1 + SCENARIOS.index(sc)) + 100 * (traffic == "heavy") + i
        judged = dict(zip(RULES, run_canary(sc.fault, rate, seed, sc.stable), strict=True))
        log(f"{name}/{traffic} #{i}: " + ", ".join(f"{r} {j.rolled_back_at} ({j.cause})" for r, j in judged.items()))
        per_rule = results.setdefault((name, traffic), {r: [] for r in RULES})
        for rule, j in judged.items():
            per_rule[rule].append(j)
    figures: dict[str, object] = {}
    table: dict[str, object] = {}
    regressions = {sc.name: sc.regression for sc in SCENARIOS}
    for (name, traffic), per_rule in results.items():
        row = {rule: _summary(js, regressions[name]) for rule, js in per_rule.items()}
        table[f"{name}/{traffic}"] = row
        log(f"{name}/{traffic}: {row}")
    for traffic, _ in TRAFFIC:
        for rule in RULES:
            h = table[f"healthy/{traffic}"][rule]  # type: ignore[index]
            figures[f"healthy_rollbacks_{traffic}_{rule}"] = h["rollbacks"]
            slow = table[f"healthy-slow/{traffic}"][rule]  # type: ignore[index]
            figures[f"healthy_slow_rollbacks_{traffic}_{rule}"] = slow["rollbacks"]
            for sc in (s for s in SCENARIOS if s.regression):
                row = table[f"{sc.name}/{traffic}"][rule]  # type: ignore[index]
                figures[f"detected_{sc.name}_{traffic}_{rule}"] = row["detected_share"]
                figures[f"ttd_p50_{sc.name}_{traffic}_{rule}"] = row["time_to_detect_p50_s"]
    result = Result(
        name="verdicts", sizes="quick" if a.quick else "full",
        params={"healthy": 2 * healthy, "regressed": regressed, "schedule": SCHEDULE, "look_s": LOOK_S,
                "interval_s": INTERVAL_S, "window_s": WINDOW_S, "min_samples": MIN_SAMPLES,
                "failure_limit": FAILURE_LIMIT, "confidence": CONFIDENCE, "base_error": BASE_ERROR,
                "traffic_rps": dict(TRAFFIC)},
        figures=figures,
        targets={f"{kind}_{t}_{rule}": "0" for kind in ("healthy_rollbacks", "healthy_slow_rollbacks")
                 for t, _ in TRAFFIC for rule in ("tollgate", "tier")},
        met={f"{kind}_{t}_{rule}": figures[f"{kind}_{t}_{rule}"] == 0
             for kind in ("healthy_rollbacks", "healthy_slow_rollbacks") for t, _ in TRAFFIC
             for rule in ("tollgate", "tier")},
        notes=[f"{k}: {v}" for k, v in table.items()],
    )
    result.machine = machine()
    result.duration_s = round(time.monotonic() - started, 1)
    result.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
