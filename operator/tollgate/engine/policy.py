"""The effective rollout policy: the spec's explicit settings over its risk tier's presets.

Everything the rollout rules need is resolved once here into plain numbers (seconds, counts), so the
rules never look at the tier table or parse a duration themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from datetime import datetime

from tollgate.api.invalid import InvalidSpecError
from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect
from tollgate.api.spec import SLO, ModelDeploymentSpec, NoDataPolicy, Step
from tollgate.api.tiers import TIERS
from tollgate.engine.model_delivery import DEFAULT_INITIALIZER_IMAGE
from tollgate.engine.timeutil import parse_duration

DEFAULT_MAX_NO_DATA = "5m"
DEFAULT_CONFIDENCE = 0.99


@dataclass(frozen=True)
class ResolvedSLO:
    """One SLO with its effective sample minimum and no-data bound."""

    slo: SLO
    min_samples: int
    max_no_data_seconds: float

    @property
    def name(self) -> str:
        return self.slo.name

    @property
    def on_no_data(self) -> NoDataPolicy:
        return self.slo.onNoData

    def threshold_text(self) -> str:
        """The limits in words, for status and evidence, e.g. "max 0.01, +0.005 over baseline"."""
        parts: list[str] = []
        if self.slo.min is not None:
            parts.append(f"min {self.slo.min:g}")
        if self.slo.max is not None:
            parts.append(f"max {self.slo.max:g}")
        if self.slo.maxIncreaseOverBaseline is not None:
            parts.append(f"+{self.slo.maxIncreaseOverBaseline:g} over baseline")
        parts.append(f"minSamples {self.min_samples}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Policy:
    """The rollout a ModelDeployment gets: spec settings, tier presets where omitted."""

    steps: tuple[Step, ...]
    interval_seconds: float
    window: str
    failure_limit: int
    consecutive_error_limit: int
    progress_deadline_seconds: float
    slos: tuple[ResolvedSLO, ...]
    confidence: float = DEFAULT_CONFIDENCE
    """Of canary-versus-baseline verdicts (spec.rollout.analysis.confidence)."""
    bake_seconds: float = 0.0
    """How long a promoted version stays under analysis at full traffic (0: no bake window)."""
    bake_window: str = "0s"
    """The same, as written (spec.rollout.bakeWindow or the risk tier's)."""
    look_seconds: float = 0.0
    """How often a canary under analysis is looked at: the metrics' scrape interval when it is shorter
    than the analysis interval (new data arrives that often; the sequential test keeps the false-alarm
    rate of the extra looks), else the interval. 0: the interval."""
    initializer_image: str = DEFAULT_INITIALIZER_IMAGE
    """The storage initializer's image (an operator setting, --storage-initializer-image)."""
    dialect: GatewayDialect = DEFAULT_DIALECT
    """How the gatewayAPI router renders the route (an operator setting, --gateway-dialect; api.routers)."""

    @property
    def look_gap(self) -> float:
        """The longest time between two looks that a run without a verdict counts whole (engine.analysis,
        rule 2): two analysis intervals, and at least ten seconds more than one, since a look comes late
        on a loaded operator. Longer is time nobody judged the SLO, not evidence of missing data."""
        return max(2 * self.interval_seconds, self.interval_seconds + 10)

    @property
    def look_interval(self) -> float:
        return self.look_seconds if 0 < self.look_seconds < self.interval_seconds else self.interval_seconds

    def analysis_range(self, started: datetime | None, now: datetime) -> str:
        """The PromQL range of an analysis at `now` of a canary whose current attempt started at `started`
        (status.canaryStartedAt; None: the whole window).

        Never reaches back before the attempt started: series are told apart by track and model version
        only, so a new canary of the previous attempt's model version (a superseding revision, a retry)
        shares its series, and a range reaching before its start would judge (and count towards
        minSamples) the failed attempt's requests as its own. While the canary is younger than the window
        the range is its age, floored to whole look intervals (to whole seconds, or milliseconds below one,
        while younger than one look interval): ticks fall on the look-interval grid, so the young canaries
        of one tick share a range (one batched query) when they started in the same grid interval (the
        provider evaluates at or after `now`, so the range starts no earlier than `started`). From
        the window's age on it is the window as written. A young range may hold too little data: that is
        no verdict, as for any young canary (engine.analysis)."""
        if started is None:
            return self.window
        age = (now - started).total_seconds()
        if age >= parse_duration(self.window):
            return self.window
        look = self.look_interval
        if age >= look:
            return _format_seconds(math.floor(age / look) * look)
        return _format_seconds(math.floor(age) if age >= 1 else max(age, 0.001))

    @property
    def max_weight(self) -> int:
        """The last step's weight: the canary never takes more before promotion."""
        return self.steps[-1].canary_weight if self.steps else 0

    @property
    def plan_hash(self) -> str:
        """Identifies the step plan; a change mid-rollout restarts it at step one."""
        # Without an unset shadow, so the plans written before shadow steps existed keep their hash.
        plan = json.dumps([_plan_entry(s) for s in self.steps], sort_keys=True)
        return hashlib.sha256(plan.encode()).hexdigest()[:10]


def _plan_entry(step: Step) -> dict[str, object]:
    entry = step.model_dump(mode="json")
    if step.shadow is None:
        entry.pop("shadow", None)
    return entry


def _format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


def _seconds(text: str, field: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidSpecError(field, text, "not a duration", "write it like 30s, 1m30s or 2h") from exc


def resolve_policy(spec: ModelDeploymentSpec, *, scrape_interval: float | None = None,
                   initializer_image: str = DEFAULT_INITIALIZER_IMAGE,
                   dialect: GatewayDialect = DEFAULT_DIALECT) -> Policy:
    """Resolve steps, analysis settings, deadline and SLOs. Raises InvalidSpecError on a bad duration.

    `scrape_interval`: seconds between two scrapes of the model's metrics (an operator setting): the
    look interval when shorter than the analysis interval, never under 1 s."""
    tier = TIERS[spec.riskTier]
    analysis = spec.rollout.analysis
    steps = tuple(spec.rollout.steps) if spec.rollout.steps is not None else tier.steps
    interval = _seconds(analysis.interval or tier.interval, "spec.rollout.analysis.interval")
    interval = max(interval, 1.0)
    window = analysis.window or _format_seconds(2 * interval)
    _seconds(window, "spec.rollout.analysis.window")
    bake = spec.rollout.bakeWindow or tier.bake_window
    min_samples = analysis.minSamples if analysis.minSamples is not None else tier.min_samples
    slos = tuple(spec.slos) if spec.slos else tier.default_slos
    resolved = tuple(
        ResolvedSLO(
            slo=slo,
            min_samples=slo.minSamples if slo.minSamples is not None else min_samples,
            max_no_data_seconds=_seconds(slo.maxNoDataDuration or DEFAULT_MAX_NO_DATA,
                                         f"spec.slos[{slo.name}].maxNoDataDuration"),
        )
        for slo in slos
    )
    return Policy(
        steps=steps,
        interval_seconds=interval,
        window=window,
        failure_limit=(
            analysis.failureLimit if analysis.failureLimit is not None else tier.failure_limit
        ),
        consecutive_error_limit=(
            analysis.consecutiveErrorLimit
            if analysis.consecutiveErrorLimit is not None
            else tier.consecutive_error_limit
        ),
        progress_deadline_seconds=_seconds(spec.rollout.progressDeadline or tier.progress_deadline,
                                           "spec.rollout.progressDeadline"),
        slos=resolved,
        bake_seconds=_seconds(bake, "spec.rollout.bakeWindow"),
        bake_window=bake,
        confidence=analysis.confidence if analysis.confidence is not None else DEFAULT_CONFIDENCE,
        look_seconds=max(scrape_interval, 1.0) if scrape_interval else 0.0,
        initializer_image=initializer_image,
        dialect=dialect,
    )


def plan_problem(policy: Policy) -> str | None:
    """Why the step plan cannot be followed, or None (the CRD refuses most of these at admission)."""
    if not policy.steps:
        return "spec.rollout.steps is empty: give at least one step or omit steps to use the risk tier's"
    if any((s.weight is None) == (s.shadow is None) for s in policy.steps):
        return "spec.rollout.steps[] each need a weight or a shadow, not both"
    shadows = [s.mirror for s in policy.steps if s.shadow is not None]
    if [s.shadow is not None for s in policy.steps[:len(shadows)]] != [True] * len(shadows):
        return "spec.rollout.steps: shadow steps must come before the first weighted step"
    if any(b <= a for a, b in itertools.pairwise(shadows)):
        return f"spec.rollout.steps shadow percents must be strictly increasing, got {shadows}"
    weights = [s.canary_weight for s in policy.steps if s.shadow is None]
    if not weights:
        return "spec.rollout.steps has only shadow steps: add weighted steps ending with weight 100"
    if any(b <= a for a, b in itertools.pairwise(weights)):
        return f"spec.rollout.steps weights must be strictly increasing, got {weights}"
    if any(not 1 <= w <= 100 for w in weights):
        return f"spec.rollout.steps weights must be within 1..100, got {weights}"
    return None
