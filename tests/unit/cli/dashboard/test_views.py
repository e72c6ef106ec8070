"""What the dashboard shows, as data: kstatus health, the list row, the step timeline, verdict moments,
and the evidence record grouped for reading."""

from __future__ import annotations

from tollgate.cli.dashboard import views
from unit.cli.samples import NOW, ROLLED_BACK_TIMELINE, md, rolled_back


def test_health_follows_kstatus() -> None:
    # a status older than the spec is in progress, whatever it says
    assert views.health(md(observedGeneration=1)).status == "InProgress"
    # Stalled=True is Failed, with its message
    stalled = md(conditions=[{"type": "Stalled", "status": "True", "message": "spec.replicas: bad"}])
    assert views.health(stalled) == views.Health("Failed", "spec.replicas: bad")
    # Reconciling=True, or Ready not True, is in progress; Ready=True is current; no conditions is current
    assert views.health(md(conditions=[{"type": "Reconciling", "status": "True", "reason": "Progressing"}])).status \
        == "InProgress"
    assert views.health(md()).status == "InProgress"
    assert views.health(md(conditions=[{"type": "Ready", "status": "True"}])).status == "Current"
    assert views.health(md(conditions=[])).status == "Current"


def test_list_row_adds_tier_health_and_the_last_incident_to_the_plugin_row() -> None:
    row = views.list_row(rolled_back(), NOW)
    assert row["phase"] == "RolledBack" and row["tier"] == "medium" and row["health"] == "Current"
    assert row["incident"] == {"name": "fraud-incident-1", "result": "RolledBack", "version": "2.0.0",
                               "reason": "AnalysisFailed", "at": "2026-03-01T11:53:00Z"}
    assert views.list_row(md(), NOW)["incident"] is None


def test_step_timeline_says_when_each_step_began_and_who_approved_the_gate() -> None:
    obj = md("Progressing", step=1, weight=50, timeline=ROLLED_BACK_TIMELINE[1:-1])
    steps = views.step_timeline(obj)
    assert [s["began"] for s in steps] == ["2026-03-01T11:50:01Z", "2026-03-01T11:52:00Z", None]
    assert [s["approvedBy"] for s in steps] == [None, "alice@2026-03-01T11:52:00.000000Z", None]
    assert [s["state"] for s in steps] == ["done", "running", "pending"]


def test_rollout_timeline_starts_at_the_latest_canary() -> None:
    reasons = [t["reason"] for t in views.rollout_timeline(rolled_back())]
    assert reasons[0] == "CanaryStarted" and "Promoted" not in reasons


def test_verdict_moments_are_the_judgements_of_the_latest_rollout() -> None:
    moments = views.verdict_moments(rolled_back())
    assert [(m["reason"], m["step"]) for m in moments] == [("AnalysisPassed", 1), ("RolledBack", 2)]
    # an evidence record adds its decision when the timeline lacks it (e.g. an abort)
    evidence = {"result": "Aborted", "reason": "Aborted", "at": "2026-03-01T11:54:00Z", "step": 1, "weight": 50}
    assert views.verdict_moments(rolled_back(), evidence)[-1]["reason"] == "Aborted"


def test_evidence_view_puts_each_slo_next_to_its_query() -> None:
    record = {
        "incident": "fraud-incident-1", "result": "RolledBack", "reason": "AnalysisFailed",
        "message": "error-rate 0.12 > max 0.01", "at": "2026-03-01T11:53:00Z", "step": 1, "weight": 50,
        "modelDeployment": {"namespace": "ml", "name": "fraud", "generation": 2},
        "canary": {"version": "2.0.0", "revision": "bbb222"}, "stable": {"version": "1.0.0", "revision": "aaa111"},
        "limits": {"failureLimit": 0, "window": "5s"},
        "slos": [{"name": "error-rate", "verdict": "Fail", "value": 0.12, "baseline": 0.001,
                  "threshold": "max 0.01", "samples": 300}],
        "observations": [{"name": "error-rate", "query": "sum(rate(x[5s]))", "window": "5s", "error": None,
                          "canary": {"value": 0.12, "samples": 300}, "stable": {"value": 0.001, "samples": 900}}],
        "timeline": [],
    }
    v = views.evidence_view(record)
    assert v["step"] == 2 and v["canary"] == "2.0.0 (bbb222)" and v["object"] == "ml/fraud"
    (slo,) = v["slos"]
    assert slo["verdict"] == "Fail" and slo["value"] == "0.12" and slo["threshold"] == "max 0.01"
    assert slo["query"] == "sum(rate(x[5s]))" and slo["canary"] == "0.12 (300 samples)"
    assert '"incident": "fraud-incident-1"' in v["raw"]
