"""Revision hash, tier policy, conditions and time parsing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tollgate.api.status import ConditionStatus
from tollgate.api.tiers import TIERS
from tollgate.engine import conditions as cond
from tollgate.engine.policy import plan_problem, resolve_policy
from tollgate.engine.revision import desired_revision, revision_hash
from tollgate.engine.timeutil import format_time, parse_duration, parse_time

from .conftest import T0, make_spec, updated, with_version


def test_revision_is_model_plus_runtime_only() -> None:
    spec = make_spec()
    rev = revision_hash(spec.model, spec.runtime)
    assert revision_hash(updated(spec, replicas=9, riskTier="critical").model, spec.runtime) == rev
    assert desired_revision(updated(spec, paused=True, rollout={})).revision == rev
    assert desired_revision(with_version(spec, "1.0.1")).revision != rev
    image = updated(spec, runtime={"image": "other", "port": 8080})
    assert desired_revision(image).revision != rev


def test_policy_takes_tier_presets_for_what_the_spec_omits() -> None:
    spec = make_spec(riskTier="high", rollout={"analysis": {"failureLimit": 3}}, slos=[])
    policy = resolve_policy(spec)
    tier = TIERS[spec.riskTier]
    assert policy.steps == tier.steps
    assert policy.failure_limit == 3
    assert policy.consecutive_error_limit == tier.consecutive_error_limit
    assert policy.slos[0].min_samples == tier.min_samples
    assert [s.name for s in policy.slos] == [s.name for s in tier.default_slos]
    assert policy.interval_seconds == 30 and policy.window == "60s"
    assert policy.max_weight == 100
    assert policy.progress_deadline_seconds == 300


def test_slo_min_samples_overrides_the_analysis_setting() -> None:
    spec = make_spec(slos=[{"name": "error-rate", "max": 0.1, "minSamples": 7}])
    assert resolve_policy(spec).slos[0].min_samples == 7


def test_empty_step_plan_is_a_problem() -> None:
    # the schema refuses these at admission; the engine does not trust it
    policy = resolve_policy(make_spec())
    assert plan_problem(policy) is None
    assert plan_problem(replace(policy, steps=())) is not None
    assert plan_problem(replace(policy, steps=tuple(reversed(policy.steps)))) is not None


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "30", "1d", "s30", "1m 30s"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_time_round_trips_in_canonical_form() -> None:
    assert format_time(T0) == "2026-03-01T12:00:00Z"
    later = T0 + timedelta(microseconds=250000)
    assert parse_time(format_time(later)) == later
    assert parse_time(None) is None


def test_abnormal_true_conditions_are_removed_when_false_and_transitions_only_on_flips() -> None:
    first = cond.merge([], [cond.Want("Reconciling", True, "Progressing"), cond.Want("Ready", False, "NotReady")],
                       T0, 3)
    assert cond.is_true(first, "Reconciling")
    later = T0 + timedelta(minutes=5)
    second = cond.merge(first, [cond.Want("Reconciling", False, "x"), cond.Want("Ready", False, "Other", "m")],
                        later, 4)
    assert cond.find(second, "Reconciling") is None
    ready = cond.find(second, "Ready")
    assert ready is not None and ready.lastTransitionTime == format_time(T0) and ready.reason == "Other"
    third = cond.merge(second, [cond.Want("Ready", True, "Stable")], later, 4)
    flipped = cond.find(third, "Ready")
    assert flipped is not None and flipped.status is ConditionStatus.TRUE
    assert flipped.lastTransitionTime == format_time(later) and flipped.observedGeneration == 4
