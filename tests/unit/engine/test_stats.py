"""The statistics of verdicts, checked against SciPy (the reference) and by simulation."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from tollgate.engine.stats import (
    always_valid_p,
    bucket_counts,
    compare_distributions,
    compare_proportions,
    monotone,
    quantile,
)

LE = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)


def cumulative(counts: list[int]) -> list[tuple[float, float]]:
    out, total = [], 0
    for le, c in zip(LE, counts, strict=True):
        total += c
        out.append((le, float(total)))
    return out


def expand(counts: list[int]) -> list[float]:
    """One value per observation, each at its bucket's index (ties within a bucket, like the bins)."""
    return [float(i) for i, c in enumerate(counts) for _ in range(c)]


@pytest.mark.parametrize("seed", range(6))
def test_bucket_mann_whitney_equals_scipy_on_the_expanded_samples(seed: int) -> None:
    # given two random histograms over the same bounds
    rng = random.Random(seed)
    canary = [rng.randint(0, 60) for _ in LE]
    baseline = [rng.randint(0, 300) for _ in LE]
    # when compared bucket-wise, and by SciPy on one value per observation
    ours = compare_distributions(cumulative(canary), cumulative(baseline))
    ref = scipy_stats.mannwhitneyu(expand(canary), expand(baseline), alternative="greater",
                                   method="asymptotic", use_continuity=False)
    # then the U statistic (as an effect) and the p-value are SciPy's
    assert ours.effect == pytest.approx(ref.statistic / (sum(canary) * sum(baseline)) - 0.5, abs=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert (ours.canary_n, ours.baseline_n) == (sum(canary), sum(baseline))


def test_a_slower_canary_is_a_significant_positive_effect_and_a_faster_one_is_not() -> None:
    base = [100, 400, 300, 150, 40, 10, 0]
    slower = [10, 100, 300, 350, 180, 50, 10]
    assert compare_distributions(cumulative(slower), cumulative(base)).p_value < 1e-6
    faster = compare_distributions(cumulative(base), cumulative(slower))
    assert faster.effect < 0 and faster.p_value > 0.99 and not faster.above_null


def test_identical_single_bucket_histograms_give_no_evidence() -> None:
    one = [0, 50, 0, 0, 0, 0, 0]
    result = compare_distributions(cumulative(one), cumulative(one))
    assert (result.effect, result.likelihood_ratio) == (0.0, 1.0)


def test_two_proportion_p_value_is_the_normal_tail_of_the_adjusted_difference() -> None:
    # given 30/1000 canary errors against 10/1000 on stable, margin 0.005
    result = compare_proportions(30, 1000, 10, 1000, margin=0.005, confidence=0.95)
    pc, pb = 31 / 1002, 11 / 1002
    se = math.sqrt(pc * (1 - pc) / 1002 + pb * (1 - pb) / 1002)
    # then the raw effect is reported, and the test is the Agresti-Caffo z against the margin
    assert result.effect == pytest.approx(0.02)
    assert result.p_value == pytest.approx(scipy_stats.norm.sf((pc - pb - 0.005) / se))
    assert result.lower == pytest.approx(pc - pb - scipy_stats.norm.ppf(0.975) * se)
    assert result.lower > 0.005  # significant at 95% beyond the margin


def test_zero_errors_on_both_sides_still_has_a_finite_test() -> None:
    result = compare_proportions(0, 200, 0, 1800)
    assert result.effect == 0.0 and 0.0 < result.p_value < 1.0 and math.isfinite(result.likelihood_ratio)


def test_noise_that_the_raw_rule_flags_is_not_significant() -> None:
    # given 3/200 canary errors against 18/1800 on stable: +0.5 pp, what `canary - stable > 0.004` fails
    result = compare_proportions(3, 200, 18, 1800, margin=0.004)
    assert result.effect > 0.004
    # then the interval holds zero and the evidence is nowhere near the 1% level
    assert result.lower < 0 < result.upper
    assert always_valid_p(None, result) > 0.5


def test_proportion_interval_covers_the_true_difference_at_its_confidence() -> None:
    # given 2,000 simulated comparisons of a 2% canary with a 1% baseline (thin traffic)
    rng = random.Random(7)
    covered = 0
    for _ in range(2000):
        xc = sum(rng.random() < 0.02 for _ in range(300))
        xb = sum(rng.random() < 0.01 for _ in range(900))
        r = compare_proportions(xc, 300, xb, 900, confidence=0.95)
        covered += r.lower <= 0.01 <= r.upper
    # then about 95% of the intervals hold the true +1 pp
    assert 0.93 <= covered / 2000 <= 0.975


def _looks(rng: random.Random, canary_rate: float, *, looks: int = 40, per_look: int = 25):
    xc = nc = xb = nb = 0
    for _ in range(looks):
        nc += per_look
        nb += per_look * 9
        xc += sum(rng.random() < canary_rate for _ in range(per_look))
        xb += sum(rng.random() < 0.02 for _ in range(per_look * 9))
        yield compare_proportions(xc, nc, xb, nb, margin=0.0)


def test_sequential_looks_keep_the_false_alarm_rate_under_alpha_where_repeated_tests_do_not() -> None:
    # given 400 healthy canaries (same 2% error rate as stable), each looked at 40 times as data grows
    rng = random.Random(11)
    alpha = 0.05
    sequential = naive = 0
    for _ in range(400):
        p = None
        flagged_naive = False
        for look in _looks(rng, 0.02):
            p = always_valid_p(p, look)
            flagged_naive = flagged_naive or look.p_value < alpha
        sequential += p is not None and p <= alpha
        naive += flagged_naive
    # then the always-valid p-value raises at most alpha false alarms; a 5% test at every look many more
    assert sequential / 400 <= alpha
    assert naive / 400 > 2 * alpha


def test_sequential_looks_detect_a_real_regression() -> None:
    # given 100 canaries at 5% errors against a 2% stable, looked at as data grows
    rng = random.Random(12)
    detected = 0
    for _ in range(100):
        p = None
        for look in _looks(rng, 0.05):
            p = always_valid_p(p, look)
        detected += p is not None and p <= 0.01
    assert detected >= 65  # 1,000 canary requests at +3 pp at the 1% level: 73 of 100 in this run


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = cumulative([0, 50, 40, 10, 0, 0, 0])  # 100 observations
    assert quantile(0.5, buckets) == pytest.approx(0.05)
    assert quantile(0.9, buckets) == pytest.approx(0.1)
    assert quantile(0.95, buckets) == pytest.approx(0.1 + 0.15 * 0.5)
    assert quantile(0.5, cumulative([0] * 7)) is None
    assert quantile(0.99, cumulative([0, 0, 0, 0, 0, 0, 5])) == 1.0  # in +Inf: the largest finite bound


def test_quantile_of_decreasing_counts_reads_them_as_histogram_quantile_does() -> None:
    # given a window whose +Inf count came out below a finite bucket's (increase() extrapolates each series
    # on its own), and the same buckets made non-decreasing, as Prometheus' histogram_quantile makes them
    dipping = [(0.1, 10.0), (0.25, 100.0), (0.5, 100.0), (math.inf, 98.0)]
    fixed = [(0.1, 10.0), (0.25, 100.0), (0.5, 100.0), (math.inf, 100.0)]
    # then the p99 is read from 100 requests, not 98: the rank 99 lies at 0.1 + 0.15 * 89 / 90
    assert quantile(0.99, dipping) == quantile(0.99, fixed) == pytest.approx(0.1 + 0.15 * 89 / 90)
    assert monotone(dipping) == tuple(fixed)


def test_bucket_counts_from_cumulative_clip_decreases() -> None:
    assert bucket_counts([(0.1, 5.0), (0.5, 4.0), (math.inf, 9.0)]) == [5.0, 0.0, 4.0]
