"""bench/flagger_peer.py's pure parts: canary weights from the audit log, the moments, the figures."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import flagger_peer as fp


def tollgate_route(canary: int) -> dict[str, Any]:
    return {"kind": "HTTPRoute", "spec": {"rules": [{"backendRefs": [
        {"name": "tp-stable", "weight": 100 - canary}, {"name": "tp-canary", "weight": canary},
        {"name": "tp-fallback", "weight": 0}]}]}}


def flagger_route(canary: int) -> dict[str, Any]:
    return {"kind": "HTTPRoute", "spec": {"rules": [{"backendRefs": [
        {"name": "fp-primary", "weight": 100 - canary}, {"name": "fp-canary", "weight": canary}]}]}}


def event(at: str, weight: int | None, *, name: str = "fp", namespace: str = "peer", verb: str = "update",
          code: int = 200, resource: str = "httproutes") -> dict[str, Any]:
    obj: dict[str, Any] = flagger_route(weight) if weight is not None else {"kind": "Status"}
    return {"verb": verb, "objectRef": {"resource": resource, "namespace": namespace, "name": name},
            "responseStatus": {"code": code}, "requestReceivedTimestamp": at, "responseObject": obj}


def test_canary_weight_of_both_route_shapes() -> None:
    assert fp.route_canary_weight(tollgate_route(20)) == 20
    assert fp.route_canary_weight(flagger_route(0)) == 0
    assert fp.route_canary_weight({"spec": {"rules": [{"backendRefs": [{"name": "x-stable", "weight": 1}]}]}}) is None


def test_route_writes_keep_successful_writes_of_that_route_in_time_order() -> None:
    events = [
        event("2026-12-02T10:00:05.000000Z", 20),
        event("2026-12-02T10:00:01.000000Z", 0, verb="create"),
        event("2026-12-02T10:00:06.000000Z", 40, code=409),             # a conflict: nothing stored
        event("2026-12-02T10:00:07.000000Z", None, verb="patch"),       # no route in the answer
        event("2026-12-02T10:00:08.000000Z", 0, name="other"),
        event("2026-12-02T10:00:09.000000Z", 0, verb="get"),
        event("2026-12-02T10:00:10.000000Z", 0, resource="services"),
        event("2026-12-02T10:00:11.000000Z", 0, verb="patch"),
    ]
    writes = fp.route_writes(events, "peer", "fp")
    assert [w.weight for w in writes] == [0, 20, 0]
    assert writes[2].at - writes[0].at == pytest.approx(10.0)


def test_weight_moments_take_the_first_positive_then_the_first_zero_after_it() -> None:
    w = [fp.RouteWrite(t, x) for t, x in ((1, 0), (5, 20), (15, 40), (25, 0), (30, 0), (40, 20))]
    assert fp.weight_moments(w, since=2) == (5, 25)
    # writes before `since` (the previous run) do not count
    assert fp.weight_moments(w, since=26) == (40, None)
    assert fp.weight_moments(w[:1], since=0) == (None, None)


def test_per_object_per_minute_and_ratio() -> None:
    assert fp.per_object_per_minute(120, objects=2, seconds=120) == 30.0
    assert fp.per_object_per_minute(0, objects=3, seconds=60) == 0.0
    assert fp.per_object_per_minute(5, objects=0, seconds=60) != fp.per_object_per_minute(5, objects=0, seconds=60)
    assert fp.ratio(35.2, 13.3) == 2.65
    assert fp.ratio(35.2, 0.0) is None


def test_the_error_rate_query_selects_the_canary_pods_not_the_primary() -> None:
    pods = re.search(r'pod=~"([^"]+)"', fp.ERROR_RATE_QUERY)
    assert pods is not None
    regex = pods.group(1).replace("{{ target }}", "fp")
    assert re.fullmatch(regex, "fp-5d8f7c9b4-x2k9z")
    assert not re.fullmatch(regex, "fp-primary-5d8f7c9b4-x2k9z")
    assert "{{ namespace }}" in fp.ERROR_RATE_QUERY and "[{{ interval }}]" in fp.ERROR_RATE_QUERY


def test_manifests_carry_the_same_settings_on_both_sides() -> None:
    md = fp.tollgate_md("tp", "1.1.0", rate=1)
    canary = fp.flagger_canary("fp", rate=1)
    analysis = canary["spec"]["analysis"]
    assert md["spec"]["rollout"]["analysis"]["interval"] == analysis["interval"] == "10s"
    assert md["spec"]["rollout"]["analysis"]["failureLimit"] == 0 and analysis["threshold"] == 1
    assert [s["weight"] for s in md["spec"]["rollout"]["steps"]][:-1] == list(range(
        analysis["stepWeight"], analysis["maxWeight"] + 1, analysis["stepWeight"]))
    assert md["spec"]["slos"][0]["max"] == analysis["metrics"][0]["thresholdRange"]["max"]
    assert md["spec"]["rollout"]["analysis"]["window"] == analysis["metrics"][0]["interval"]
    assert md["spec"]["traffic"]["router"] == "gatewayAPI"
    assert md["metadata"]["annotations"] == canary["metadata"]["annotations"]


def test_the_duration_estimate_grows_with_the_runs() -> None:
    assert fp.estimate_duration_s(20, 5, 120) > fp.estimate_duration_s(2, 1, 30)


def test_durations_in_seconds() -> None:
    assert fp._seconds("60s") == 60.0 and fp._seconds("2m") == 120.0


def test_a_runs_evidence_is_the_failing_looks_requests_rate_and_p_value() -> None:
    # given a rolled-back status with a passing SLO and the failing one
    status = {"analysis": [{"name": "latency-p99", "verdict": "Pass", "samples": 90},
                           {"name": "error-rate", "verdict": "Fail", "samples": 140, "value": 0.1,
                            "limitPValue": 0.004}]}
    # then the run records the failing look's requests, value and p-value; nothing without a failure
    assert fp.failed_check(status) == {"failed_samples": 140, "failed_value": 0.1, "failed_limit_p": 0.004}
    assert fp.failed_check({"analysis": [{"verdict": "Pass"}]}) == {}
