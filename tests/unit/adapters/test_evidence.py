"""Evidence records stay far below a ConfigMap's 1 MiB, and say what was cut."""

from __future__ import annotations

import json
from typing import Any

from tollgate.adapters.evidence import RECORD_MAX_BYTES, EvidenceStore, bounded_payload, evidence_configmap


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


class Recorder:
    """The Kube adapter's create/apply/delete, recorded; `taken` names exist already (create answers None)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.calls: list[tuple[str, str]] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append(("create", obj["metadata"]["name"]))
        return None if obj["metadata"]["name"] in self.taken else obj

    def apply(self, obj: dict[str, Any], **_: Any) -> bool:
        self.calls.append(("apply", obj["metadata"]["name"]))
        return True

    def delete(self, ref: Any) -> bool:
        self.calls.append(("delete", ref.name))
        return True

    def get(self, ref: Any) -> None:
        raise AssertionError("the evidence store reads no ConfigMap")


OWNER = {"metadata": {"name": "fraud", "namespace": "ml", "uid": "u"}}


def test_a_record_rebuilt_after_a_restart_never_overwrites_the_original_and_reads_nothing() -> None:
    # given the original record fraud-incident-1 exists, fraud-incident-2 does not
    kube = Recorder(taken={"fraud-incident-1"})
    store = EvidenceStore(kube)  # type: ignore[arg-type]
    # when both are rebuilt from status
    first = store.create("fraud-incident-1", OWNER, payload(timeline=1, query_chars=10))
    second = store.create("fraud-incident-2", OWNER, payload(timeline=1, query_chars=10))
    # then only the missing one is written, by create (no apply over the original, no read)
    assert (first, second) == (False, True)
    assert kube.calls == [("create", "fraud-incident-1"), ("create", "fraud-incident-2")]


def test_records_that_left_the_history_are_pruned_by_name_never_the_new_one() -> None:
    kube = Recorder(taken=set())
    store = EvidenceStore(kube)  # type: ignore[arg-type]
    store.record("fraud-incident-9", OWNER, payload(timeline=1, query_chars=10),
                 dropped={"fraud-incident-1", "fraud-incident-9"})
    assert kube.calls == [("apply", "fraud-incident-9"), ("delete", "fraud-incident-1")]
