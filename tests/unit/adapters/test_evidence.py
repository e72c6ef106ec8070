"""Evidence records stay far below a ConfigMap's 1 MiB, and say what was cut."""

from __future__ import annotations

import json

from tollgate.adapters.evidence import RECORD_MAX_BYTES, bounded_payload, evidence_configmap


def payload(timeline: int, query_chars: int) -> dict[str, object]:
    return {
        "incident": "fraud-incident-1", "result": "RolledBack", "reason": "AnalysisFailed", "message": "m",
        "slos": [{"name": "error-rate", "verdict": "Fail", "value": 0.2}],
        "observations": [{"name": f"c{i}", "query": "q" * query_chars} for i in range(32)],
        "timeline": [{"at": f"t{i}", "reason": "StepAdvanced", "message": "x" * 900} for i in range(timeline)],
    }


def test_a_small_record_is_kept_whole() -> None:
    small = payload(timeline=5, query_chars=100)
    assert bounded_payload(small) == small


def test_a_huge_record_is_cut_below_the_bound_keeping_the_verdict_and_saying_what_was_cut() -> None:
    # given a record with a long timeline and 32 custom queries of 20,000 characters each
    huge = payload(timeline=600, query_chars=40_000)
    assert len(json.dumps(huge)) > 1024 * 1024
    # when it is bounded
    out = bounded_payload(huge)
    # then it fits, with the verdict intact and the cut recorded
    text = evidence_configmap("fraud-incident-1", "ml", {"metadata": {"name": "fraud", "uid": "u"}}, out)["data"]
    assert len(text["evidence.json"].encode()) <= RECORD_MAX_BYTES
    assert out["slos"] == huge["slos"] and out["result"] == "RolledBack"
    cut = out["truncated"]
    assert cut["originalBytes"] > RECORD_MAX_BYTES and cut["queriesCutTo"] > 0 and cut["timelineEntriesDropped"] > 0
    assert out["timeline"][-1] == huge["timeline"][-1]  # the newest entries stay
