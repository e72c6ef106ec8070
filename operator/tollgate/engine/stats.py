"""Statistics of canary-versus-baseline verdicts: pure functions on counts.

Why a test and not a raw difference: a canary that served 200 requests with 3 errors and a stable
that served 1,800 with 18 differ by 0.5 percentage points, which the raw rule `canary - stable >
maxIncreaseOverBaseline` reads as a regression at a 0.5 pp margin; that difference is noise (the 95%
interval is about -1.3..+2.3 pp). Kayenta judges canary against baseline with Mann-Whitney U; Argo
Rollouts and Flagger compare raw values. Here:

- **Ratio SLOs** (error rate, invalid outputs): events `x` of `n` requests per track. The effect is
  `p_canary - p_baseline`; the question is whether it exceeds the tolerated margin `delta`
  (maxIncreaseOverBaseline, 0 when unset). Estimates are Agresti-Caffo adjusted (one event and one
  non-event added per group), so zero errors on both sides still has a variance and the normal
  approximation keeps its coverage at small rates (Agresti & Caffo 2000).
- **Distribution SLOs** (latency, predicted score): the histogram buckets of each track. Mann-Whitney U
  on binned data: every bucket is one group of ties with mid-ranks and the tie-corrected variance,
  exactly what `scipy.stats.mannwhitneyu(method="asymptotic")` computes on the expanded samples (a unit
  test checks that). The effect is the probability of superiority minus one half: `P(C > B) +
  P(C = B)/2 - 0.5` (0 = same distribution, +0.5 = every canary request slower). A bucket test needs
  no quantile estimate; the quantile (Prometheus' linear interpolation) is reported beside it and the
  margin on it is checked as an effect size.
- **Sequential looks** (every scrape interval, same data stream growing): a fixed-level test repeated
  at every look would raise false alarms far above its level (ten looks at 1% give about 5%). The
  mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al. 2017, "Always valid
  inference") turns the normal approximation of each look into a likelihood ratio `L` against the null
  effect `theta0`; `1/min over looks of L` is an always-valid p-value, so rejecting when it falls below
  `alpha` keeps the false-alarm probability at most `alpha` however many looks are taken (Ville's
  inequality). Only looks whose estimate lies above `theta0` count (a one-sided test of a regression).

Why no SciPy here: everything needs only the normal distribution (`statistics.NormalDist`); SciPy
and NumPy would add about 70 MB to the operator image for two functions. SciPy is the reference the
unit tests check these formulas against (a dev dependency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()

PROPORTION_MIXTURE = 0.01
"""mSPRT mixing scale for rate differences beyond the margin (absolute): tuned to regressions of about
one percentage point beyond it (the benchmark's 1, 2 and 5 pp against a 0.5 pp margin)."""
RANK_MIXTURE = 0.1
"""mSPRT mixing scale for the probability of superiority minus 0.5: tuned to clear distribution shifts
(0.1 = a random canary request is slower than a random baseline request 60% of the time)."""

Buckets = Sequence[tuple[float, float]]
"""Cumulative histogram buckets as Prometheus exposes them: (upper bound `le`, count), ascending, the
last bound +Inf."""


@dataclass(frozen=True)
class Comparison:
    """Canary against baseline at one look."""

    test: str
    """two-proportion or mann-whitney."""
    effect: float
    """Canary minus baseline: rate difference, or probability of superiority minus 0.5."""
    lower: float
    """Lower end of the two-sided interval of the effect at the configured confidence."""
    upper: float
    """Upper end of the same interval."""
    p_value: float
    """Fixed-horizon one-sided p-value of `effect <= null` (this look alone)."""
    likelihood_ratio: float
    """mSPRT likelihood ratio of this look (1/ratio is this look's always-valid p-value bound)."""
    canary_n: int
    baseline_n: int
    null: float = 0.0
    """The effect the null hypothesis allows (the margin for rates, 0 for distributions)."""

    @property
    def above_null(self) -> bool:
        return self.effect > self.null


def _z(confidence: float) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def mixture_likelihood_ratio(estimate: float, variance: float, null: float, tau: float) -> float:
    """Normal-mixture SPRT ratio of the hypothesis `estimate ~ N(theta, variance)`, theta drawn from
    N(null, tau^2), against theta = null. Capped at 1e300 (a ratio that large rejects at any alpha)."""
    if variance <= 0 or not math.isfinite(variance):
        return 1.0
    t2 = tau * tau
    log_ratio = 0.5 * math.log(variance / (variance + t2)) + (estimate - null) ** 2 * t2 / (
        2.0 * variance * (variance + t2))
    return math.exp(min(log_ratio, 690.0))


def always_valid_p(previous: float | None, comparison: Comparison) -> float:
    """The running always-valid p-value of a regression after this look: the smaller of the previous one
    and 1/L of this look when its estimate is above the null (looks below it give no evidence)."""
    current = 1.0 if previous is None else previous
    if not comparison.above_null:
        return current
    return min(current, 1.0 / comparison.likelihood_ratio)


def compare_proportions(
    canary_events: float, canary_n: int, baseline_events: float, baseline_n: int, *,
    margin: float = 0.0, confidence: float = 0.99,
) -> Comparison:
    """Two-proportion comparison of a canary rate with a baseline rate, null `effect <= margin`.

    Events are rounded and clipped into 0..n (a rate times a request count, as Prometheus gives them).
    """
    if canary_n <= 0 or baseline_n <= 0:
        raise ValueError("both groups need at least one request")
    xc = min(max(round(canary_events), 0), canary_n)
    xb = min(max(round(baseline_events), 0), baseline_n)
    pc, pb = (xc + 1) / (canary_n + 2), (xb + 1) / (baseline_n + 2)
    variance = pc * (1 - pc) / (canary_n + 2) + pb * (1 - pb) / (baseline_n + 2)
    adjusted = pc - pb
    se = math.sqrt(variance)
    z = (adjusted - margin) / se
    half = _z(confidence) * se
    return Comparison(
        test="two-proportion",
        effect=xc / canary_n - xb / baseline_n,
        lower=adjusted - half,
        upper=adjusted + half,
        p_value=1.0 - _NORMAL.cdf(z),
        likelihood_ratio=mixture_likelihood_ratio(adjusted, variance, margin, PROPORTION_MIXTURE),
        canary_n=canary_n,
        baseline_n=baseline_n,
        null=margin,
    )


def monotone(buckets: Buckets) -> tuple[tuple[float, float], ...]:
    """Cumulative counts made non-decreasing, as histogram_quantile makes them before it reads a rank: a
    counter reset or the range's extrapolation can leave a bucket below the one before it."""
    out: list[tuple[float, float]] = []
    highest = 0.0
    for le, cumulative in buckets:
        highest = max(highest, cumulative)
        out.append((le, highest))
    return tuple(out)


def bucket_counts(buckets: Buckets) -> list[float]:
    """Per-bucket counts from cumulative buckets made non-decreasing first (`monotone`: a decreasing
    cumulative count, from counter resets or extrapolation, adds 0), as `quantile` reads them."""
    out: list[float] = []
    previous = 0.0
    for _, cumulative in monotone(buckets):
        out.append(cumulative - previous)
        previous = cumulative
    return out


def _aligned(canary: Buckets, baseline: Buckets) -> tuple[list[float], list[float]]:
    if [le for le, _ in canary] != [le for le, _ in baseline]:
        raise ValueError("canary and baseline histograms have different bucket bounds")
    return bucket_counts(canary), bucket_counts(baseline)


def compare_distributions(canary: Buckets, baseline: Buckets, *, confidence: float = 0.99) -> Comparison:
    """Mann-Whitney U on binned samples: is the canary stochastically larger than the baseline?"""
    c, b = _aligned(canary, baseline)
    nc, nb = sum(c), sum(b)
    if nc <= 0 or nb <= 0:
        raise ValueError("both histograms need at least one observation")
    total = nc + nb
    below = 0.0
    rank_sum = 0.0
    ties = 0.0
    for ci, bi in zip(c, b, strict=True):
        t = ci + bi
        rank_sum += ci * (below + (t + 1) / 2.0)
        ties += t ** 3 - t
        below += t
    u = rank_sum - nc * (nc + 1) / 2.0
    pairs = nc * nb
    variance_u = pairs / 12.0 * ((total + 1) - ties / (total * (total - 1))) if total > 1 else 0.0
    effect = u / pairs - 0.5
    variance = variance_u / (pairs * pairs)
    if variance <= 0:  # every observation in one bucket: no evidence either way
        return Comparison("mann-whitney", effect, effect, effect, 0.5, 1.0, round(nc), round(nb))
    se = math.sqrt(variance)
    half = _z(confidence) * se
    return Comparison(
        test="mann-whitney",
        effect=effect,
        lower=effect - half,
        upper=effect + half,
        p_value=1.0 - _NORMAL.cdf(effect / se),
        likelihood_ratio=mixture_likelihood_ratio(effect, variance, 0.0, RANK_MIXTURE),
        canary_n=round(nc),
        baseline_n=round(nb),
    )


def quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of cumulative buckets by linear interpolation within the bucket, as Prometheus'
    histogram_quantile does (counts made non-decreasing first; the lowest bucket starts at 0; a quantile
    in +Inf returns the largest finite bound). None without observations. Read as they came, a +Inf count
    below a finite bucket's (a window's extrapolation) shrank the rank and the quantile with it, so the
    comparison's canary-versus-baseline quantile and Prometheus' own disagreed on the same buckets."""
    if not buckets:
        return None
    buckets = monotone(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(le):
                return lower_bound
            if cumulative == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (cumulative - lower_count)
        lower_bound, lower_count = le, cumulative
    return lower_bound

