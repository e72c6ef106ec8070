"""Rendering: what `get`, `status`, `history` and `evidence` show, given a ModelDeployment dict."""

from __future__ import annotations

from tollgate.cli import view
from tollgate.cli.errors import Exit
from unit.cli.samples import NOW, md


def test_get_row_shows_phase_versions_weight_step_and_slo_health() -> None:
    # given a canary at step 1 of 3 with every SLO passing
    obj = md()
    # when it is summarised
    row = view.summary(obj, NOW)
    # then the row carries what a platform team scans for
    assert row == {"namespace": "ml", "name": "fraud", "phase": "Progressing", "stable": "1.0.0",
                   "canary": "2.0.0", "weight": 10, "step": "1/3", "slos": "Pass 2/2", "age": "3h"}


def test_get_table_has_kubectl_columns_and_a_namespace_column_with_all_namespaces() -> None:
    rows = [view.summary(md(), NOW), view.summary(md("Stable", canary=False), NOW)]
    text = view.render_get(rows, all_namespaces=True)
    header, first, second = text.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "SLOS", "AGE"]
    assert first.split() == ["ml", "fraud", "Progressing", "1.0.0", "2.0.0", "10%", "1/3", "Pass", "2/2", "3h"]
    assert second.split() == ["ml", "fraud", "Stable", "1.0.0", "-", "-", "-", "-", "3h"]
    assert "NAMESPACE" not in view.render_get(rows, all_namespaces=False)


def test_slo_health_names_the_worst_verdict_and_its_slos() -> None:
    assert view.slo_health([]) == "-"
    assert view.slo_health([{"name": "a", "verdict": "Pass"}, {"name": "b", "verdict": "NoData"}]) == "NoData(b)"
    assert view.slo_health([{"name": "a", "verdict": "Fail"}, {"name": "b", "verdict": "Error"},
                            {"name": "c", "verdict": "Fail"}]) == "Fail(a,c)"
    assert view.slo_health([{"name": "a", "verdict": "Pass"}, {"name": "b"}]) == "Pending 1/2"


def test_steps_mark_done_current_and_pending_and_an_approval_gate() -> None:
    # given a canary that finished step 1 and waits at the gate of step 2
    obj = md("AwaitingApproval", step=1, weight=10)
    rows = view.step_rows(obj)
    assert [r["state"] for r in rows] == ["done", "awaiting approval", "pending"]
    assert [r["current"] for r in rows] == [False, True, False]
    # and status tells the person what to run
    assert "Next:          kubectl tollgate approve fraud -n ml" in view.render_status(view.status_view(obj, NOW), NOW)
    # when the gate opened, then step 2 runs
    assert view.step_rows(md(step=1, weight=50))[1]["state"] == "running"
    # and while promoting every step is done and none is current
    promoting = view.step_rows(md("Promoting", step=2, weight=100, promotingSince="2026-03-01T11:59:00Z"))
    assert {r["state"] for r in promoting} == {"done"} and not any(r["current"] for r in promoting)


def test_steps_come_from_the_risk_tier_when_the_spec_omits_them() -> None:
    obj = md()
    del obj["spec"]["rollout"]["steps"]
    obj["spec"]["riskTier"] = "critical"
    rows = view.step_rows(obj)
    assert rows and rows[-1]["weight"] == 100
    assert any(r["approval"] for r in rows)


def test_status_view_shows_slo_values_against_thresholds_with_verdicts() -> None:
    # given a canary mid-rollout, one SLO without a threshold text in status
    text = view.render_status(view.status_view(md(), NOW), NOW)
    # then the header, the step plan with the current step marked, and the SLO table are there
    assert "Phase:         Progressing" in text
    assert "Canary:        2.0.0 (bbb222)   weight 10%" in text
    step_line = next(line for line in text.splitlines() if line.strip().startswith("=>"))
    assert step_line.split() == ["=>", "1", "10%", "-", "1m", "yes", "-", "running"]
    err = next(line for line in text.splitlines() if line.strip().startswith("error-rate"))
    assert "0.0021" in err and "0.0019" in err and "max 0.01" in err and "Pass" in err and "2s" in err
    p99 = next(line for line in text.splitlines() if line.strip().startswith("latency-p99"))
    assert "max 0.25" in p99  # the threshold falls back to the spec
    assert "Conditions:" in text and "NotReady" in text
    assert "StepAdvanced" in text and "Timeline:" in text
    assert "\x1b[" not in text  # no color unless asked


def test_status_says_when_the_operator_has_not_seen_the_latest_spec() -> None:
    obj = md("Stable", canary=False)
    obj["metadata"]["generation"] = 3
    text = view.render_status(view.status_view(obj, NOW), NOW)
    assert "has not observed generation 3" in text
    assert "no rollout in progress" in text


def test_color_only_when_asked() -> None:
    colored = view.render_status(view.status_view(md(), NOW), NOW, view.Style(color=True))
    assert "\x1b[36mProgressing\x1b[0m" in colored
    # and colored cells keep the columns aligned
    assert view.table(["A", "B"], [[view.Style(True).verdict("Pass"), "x"], ["Fail-long", "y"]]).splitlines()[1] \
        .replace("\x1b[32m", "").replace("\x1b[0m", "") == "Pass        x"


def test_watch_ends_only_on_an_outcome_of_the_latest_generation() -> None:
    assert view.watch_outcome(md("Succeeded", canary=False)) is Exit.OK
    assert view.watch_outcome(md("Stable", canary=False)) is Exit.OK
    assert view.watch_outcome(md("RolledBack", canary=False)) is Exit.ROLLED_BACK
    assert view.watch_outcome(md("Stalled")) is Exit.STALLED
    assert view.watch_outcome(md("Fallback", canary=False)) is Exit.FALLBACK
    for phase in ("Progressing", "AwaitingApproval", "Paused", "Promoting", "RollingBack", "Pending"):
        assert view.watch_outcome(md(phase)) is None, phase
    # given a new version just applied: status still says Succeeded, of the previous generation
    stale = md("Succeeded", canary=False)
    stale["metadata"]["generation"] = 3
    assert view.watch_outcome(stale) is None
    # and a first version past its deadline is Stalled while Pending
    late = md("Pending", canary=False, conditions=[{"type": "Stalled", "status": "True"}])
    assert view.watch_outcome(late) is Exit.STALLED


def test_progress_line_is_one_line_per_state_for_logs() -> None:
    line = view.progress_line(view.status_view(md(), NOW))
    assert line == "Progressing 2.0.0 at 10% slos=Pass 2/2: Progressing message"


def test_gitops_manager_is_recognised_from_labels_or_annotations() -> None:
    obj = md()
    assert view.gitops_manager(obj) is None
    obj["metadata"]["labels"]["argocd.argoproj.io/instance"] = "ml-apps"
    assert view.gitops_manager(obj) == "Argo CD (argocd.argoproj.io/instance=ml-apps)"
    flux = md()
    flux["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/name"] = "apps"
    assert (view.gitops_manager(flux) or "").startswith("Flux")


def test_history_table_lists_results_with_incidents() -> None:
    obj = md(history=[{"revision": "bbb222", "version": "2.0.0", "result": "RolledBack", "reason": "error-rate",
                       "at": "2026-03-01T11:00:00Z", "incident": "fraud-incident-1"},
                      {"revision": "aaa111", "version": "1.0.0", "result": "Promoted", "at": "2026-02-01T00:00:00Z"}])
    lines = view.render_history(obj).splitlines()
    assert lines[0].split() == ["FINISHED", "VERSION", "REVISION", "RESULT", "INCIDENT", "REASON"]
    assert lines[1].split()[:5] == ["2026-03-01T11:00:00Z", "2.0.0", "bbb222", "RolledBack", "fraud-incident-1"]
    assert lines[2].split()[3:5] == ["Promoted", "-"]
    assert "no finished rollouts" in view.render_history(md())


def test_evidence_shows_why_with_values_queries_and_timeline() -> None:
    record = {
        "incident": "fraud-incident-1", "result": "RolledBack", "reason": "RolledBack",
        "message": "failures over failureLimit 0: error-rate", "at": "2026-03-01T11:00:00Z",
        "modelDeployment": {"namespace": "ml", "name": "fraud", "generation": 2},
        "canary": {"revision": "bbb222", "version": "2.0.0"}, "stable": {"revision": "aaa111", "version": "1.0.0"},
        "step": 1, "weight": 50, "limits": {"failureLimit": 0, "interval": 30.0},
        "slos": [{"name": "error-rate", "verdict": "Fail", "value": 0.2, "baseline": 0.001,
                  "threshold": "max 0.01", "samples": 500, "failures": 1}],
        "observations": [{"name": "error-rate", "window": "1m", "query": "sum(rate(x[1m]))",
                          "canary": {"value": 0.2, "samples": 500}, "stable": None, "error": None}],
        "timeline": [{"at": "2026-03-01T11:00:00Z", "reason": "AnalysisFailed", "message": "error-rate", "step": 1,
                      "weight": 50}],
    }
    text = view.render_evidence(record)
    assert "Why:           failures over failureLimit 0: error-rate" in text
    assert "step 2, weight 50%" in text
    assert "failureLimit 0" in text
    fail = next(line for line in text.splitlines() if line.strip().startswith("error-rate") and "Fail" in line)
    assert "0.2" in fail and "0.001" in fail and "max 0.01" in fail
    assert "sum(rate(x[1m]))" in text and "AnalysisFailed" in text


def test_numbers_are_short_and_honest() -> None:
    assert [view.number(v) for v in (None, 0, 0.0021, 0.00001234, 12345.0, float("nan"), "inf")] == [
        "-", "0", "0.0021", "1.23e-05", "1.23e+04", "nan", "inf"]
    assert [view.age(t, NOW) for t in (None, "2026-03-01T11:59:30Z", "2026-03-01T11:00:00Z",
                                        "2026-02-20T12:00:00Z")] == ["-", "30s", "60m", "9d"]


def test_steps_show_the_share_each_step_really_gives() -> None:
    # given 2 replicas: the 10% step gets 1 canary pod of 2, which the canary held
    obj = md(step=0, weight=10)
    obj["status"]["steps"] = [{"weight": 10, "plannedShare": 50.0, "share": 50.0},
                              {"weight": 50, "plannedShare": 50.0}, {"weight": 100, "plannedShare": 100.0}]
    rows = view.step_rows(obj)
    assert [view.share_text(r) for r in rows] == ["50% (got 50%)", "50%", "100%"]
    assert "50% (got 50%)" in view.render_status(view.status_view(obj, NOW), NOW)


def test_status_shows_the_share_the_canary_actually_served() -> None:
    # given a canary at 50% whose analysis counted 100 canary and 900 stable requests (a rate limit biting)
    obj = md(step=0, weight=50)
    obj["status"]["served"] = {"canaryPercent": 10.0, "canaryRequests": 100, "stableRequests": 900, "weight": 50,
                               "window": "1m", "at": "2026-03-01T11:59:30Z"}
    # then status says what users got from the canary, beside the weight
    text = view.render_status(view.status_view(obj, NOW), NOW)
    assert "Served:        10.0% of users (100 canary / 900 stable requests) over 1m, at weight 50%" in text
    # and a shadow step's requests are shown as mirrored copies, never as users
    obj["status"]["served"] = {"canaryPercent": 0.0, "canaryRequests": 0, "stableRequests": 80, "weight": 0,
                               "mirror": 50, "mirroredRequests": 40, "mirroredPercent": 50.0, "window": "1m",
                               "blended": True}
    text = view.render_status(view.status_view(obj, NOW), NOW)
    assert ("Served:        0% of users (shadow); 40 mirrored copies = 50.0% of 80 live requests (mirror 50%) "
            "over 1m (the window includes the previous step)") in text


def test_status_shows_the_bake_window_and_its_end_and_keeps_watching_through_it() -> None:
    # given 2.0.0 promoted and baking until noon
    bake = {"revision": "bbb222", "version": "2.0.0", "window": "30m", "since": "2026-03-01T11:30:00Z",
            "until": "2026-03-01T12:00:00Z", "rollbackTo": "1.0.0"}
    obj = md("Baking", canary=False, bake=bake, stable={"revision": "bbb222", "version": "2.0.0"})
    # then status names the window, its end and where a failure goes
    text = view.render_status(view.status_view(obj, NOW), NOW)
    assert ("Bake window:   2.0.0 under analysis until 2026-03-01T12:00:00Z (window 30m); a failure rolls back "
            "to 1.0.0") in text
    # and `status --watch` has no outcome yet: the version can still roll back
    assert view.watch_outcome(obj) is None


def test_status_shows_a_kept_failed_canary_its_end_and_where_its_logs_are() -> None:
    # given 2.0.0 rolled back and kept for debugging until noon
    kept = {"deployment": "fraud-scorer-canary", "revision": "bbb222", "version": "2.0.0",
            "since": "2026-03-01T11:30:00Z", "until": "2026-03-01T12:00:00Z"}
    obj = md("RolledBack", canary=False)
    obj["status"]["keptCanary"] = kept
    obj["status"]["sandboxNamespace"] = "ml-team-fraud-abc123"
    # then status names it, its end and the command that shows its logs
    text = view.render_status(view.status_view(obj, NOW), NOW)
    assert ("Kept canary:   2.0.0 (bbb222) kept with zero traffic until 2026-03-01T12:00:00Z: kubectl logs -n "
            "ml-team-fraud-abc123 deploy/fraud-scorer-canary") in text
