"""Platform limits: over any of them, the spec is refused with the field, the value and the limit."""

from __future__ import annotations

from tollgate.engine.platform import PlatformLimits, over_limits
from tollgate.engine.sandbox import quota_hard

from .conftest import make_spec

LIMITS = PlatformLimits(max_replicas=10, max_pod_resources={"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"})


def test_a_spec_within_the_limits_passes_and_its_derived_quota_stays_within_them() -> None:
    spec = make_spec(replicas=10, runtime={"image": "i", "resources": {
        "requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}}})
    assert over_limits(spec, LIMITS) is None
    # and the quota Tollgate writes for it is within what the limits allow a sandbox
    hard = quota_hard(spec)
    assert over_limits(make_spec(replicas=10, sandbox={"quota": hard}), LIMITS) is None


def test_too_many_replicas_name_the_field_the_value_and_the_limit() -> None:
    message = over_limits(make_spec(replicas=40), LIMITS)
    assert message is not None
    assert "spec.replicas 40" in message and "limit of 10" in message and "platformLimits" in message


def test_a_pod_asking_for_two_gpus_is_refused() -> None:
    spec = make_spec(runtime={"image": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}})
    message = over_limits(spec, LIMITS)
    assert message is not None and "resources.limits.nvidia.com/gpu 2" in message and "limit of 1 per pod" in message


def test_millicores_and_binary_units_compare_by_value() -> None:
    assert over_limits(make_spec(runtime={"image": "i", "resources": {"requests": {"cpu": "3500m"}}}), LIMITS) is None
    spec = make_spec(runtime={"image": "i", "resources": {"requests": {"memory": "17000Mi"}}})
    assert over_limits(spec, LIMITS) is not None


def test_an_explicit_quota_larger_than_the_limits_allow_is_refused() -> None:
    spec = make_spec(replicas=2, sandbox={"quota": {"requests.nvidia.com/gpu": "100", "pods": "10"}})
    message = over_limits(spec, LIMITS)
    assert message is not None and "spec.sandbox.quota.requests.nvidia.com/gpu 100" in message


def test_no_limits_refuse_nothing() -> None:
    assert over_limits(make_spec(replicas=1000), PlatformLimits()) is None
