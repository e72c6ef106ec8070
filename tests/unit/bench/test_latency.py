"""bench/latency.py's pure part: when the rollback-latency fault may be switched on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from latency import judged_healthy

STARTED = "2026-12-05T01:57:13.329745Z"


def status(version: str = "1.2.0", **slo: Any) -> dict[str, Any]:
    return {"canary": {"version": version, "revision": "abc"}, "canaryStartedAt": STARTED,
            "analysis": [{"name": "error-rate", "verdict": "Pass", "samples": 40,
                      "lastCheckedAt": "2026-12-05T01:57:18.080449Z", **slo}]}


def test_a_canary_passed_on_enough_requests_after_it_started_is_settled() -> None:
    assert judged_healthy(status(), "1.2.0", 10)


def test_a_canary_not_yet_scraped_is_not_settled() -> None:
    # given the step's weight is set but Prometheus has not scraped the new pods: the look holds
    assert not judged_healthy(status(verdict="NoData", samples=0), "1.2.0", 10)
    assert not judged_healthy(status(verdict="Pass", samples=9), "1.2.0", 10)


def test_the_previous_canarys_verdict_does_not_count() -> None:
    # given the status still holds a look from before this canary started, or another version's canary
    assert not judged_healthy(status(lastCheckedAt="2026-12-05T01:57:13Z"), "1.2.0", 10)  # 0.33 s before
    assert not judged_healthy(status(lastCheckedAt=None), "1.2.0", 10)
    assert not judged_healthy(status(), "1.3.0", 10)


def test_every_slo_must_have_passed_and_there_must_be_one() -> None:
    two = status()
    two["analysis"].append({"name": "latency-p99", "verdict": "Inconclusive", "samples": 40,
                        "lastCheckedAt": "2026-12-05T01:57:18Z"})
    assert not judged_healthy(two, "1.2.0", 10)
    assert not judged_healthy({**status(), "analysis": []}, "1.2.0", 10)
    assert not judged_healthy({}, "1.2.0", 10)
