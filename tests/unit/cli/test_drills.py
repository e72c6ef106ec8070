"""`kubectl tollgate drill`: what it writes, what it refuses (with the operator's own rule), --wait."""

from __future__ import annotations

from typing import Any

from tollgate.api.invalid import parse_spec
from tollgate.cli.errors import Exit
from tollgate.engine.revision import desired_revision
from unit.cli.samples import md
from unit.cli.test_main import FakeSession, run


def stable(**spec: Any) -> dict[str, Any]:
    obj = md("Stable", canary=False)
    obj["spec"].update(spec)
    return obj


class OperatorSession(FakeSession):
    """A session whose operator finishes each drill as soon as its annotation is written."""

    def __init__(self, obj: dict[str, Any], drill: dict[str, Any]):
        super().__init__(obj)
        self.drill = drill

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        super().patch(namespace, name, body)
        ((key, value),) = body["metadata"]["annotations"].items()
        control = {"tollgate.dev/drill-kill-switch": "drillKillSwitch", "tollgate.dev/drill-rollback": "drillRollback"}
        self.obj["status"]["controls"] = {control[key]: value}
        self.obj["status"]["lastDrill"] = {**self.drill, "requestedBy": value}
        return self.obj


def test_a_kill_switch_drill_writes_who_and_when_in_its_annotation() -> None:
    # given a stable version with a pinned fallback
    s = FakeSession(stable(fallback={"version": "0.9.0"}))
    # when a kill-switch drill is asked for
    code, out, _ = run(s, "drill", "kill-switch", "fraud")
    # then one merge patch of the drill's annotation, naming the reviewed user, and what will happen
    assert code == Exit.OK
    (patch,) = s.patches
    value = patch["metadata"]["annotations"]["tollgate.dev/drill-kill-switch"]
    assert value.startswith("alice@20") and value.endswith("Z")
    assert "to fallback 0.9.0" in out and "sends it back" in out


def test_a_kill_switch_drill_without_a_pinned_fallback_is_refused_naming_the_fix_and_writes_nothing() -> None:
    # given no spec.fallback: lastKnownGood is the version serving
    s = FakeSession(stable())
    code, _, err = run(s, "drill", "kill-switch", "fraud")
    assert code == Exit.NOT_APPLICABLE
    assert "kill-switch drill refused: no fallback pinned" in err and "spec.fallback.version" in err
    assert not s.patches


def test_a_rollback_drill_without_a_canary_is_refused_and_one_with_a_canary_is_written() -> None:
    s = FakeSession(stable(fallback={"version": "0.9.0"}))
    code, _, err = run(s, "drill", "rollback", "fraud")
    assert code == Exit.NOT_APPLICABLE and "no canary in progress" in err and "drill kill-switch fraud" in err
    assert not s.patches
    # given a canary of the spec's revision at 10%
    obj = md("Progressing", step=0, weight=10)
    obj["status"]["canary"]["revision"] = desired_revision(parse_spec(obj["spec"])).revision
    s = FakeSession(obj)
    code, out, _ = run(s, "drill", "rollback", "fraud")
    assert code == Exit.OK and "tollgate.dev/drill-rollback" in s.patches[0]["metadata"]["annotations"]
    assert "rolls canary 2.0.0 back to stable 1.0.0" in out


def test_wait_reports_the_measured_times_and_exits_by_outcome() -> None:
    passed = {"kind": "kill-switch", "outcome": "Passed", "secondsToFallback": 2.5, "secondsToRestore": 0.25,
              "fromVersion": "1.0.0", "toVersion": "0.9.0", "message": "back on 1.0.0"}
    code, out, _ = run(OperatorSession(stable(fallback={"version": "0.9.0"}), passed),
                       "drill", "kill-switch", "fraud", "--wait", "--timeout", "5s")
    assert code == Exit.OK
    assert "kill-switch drill Passed" in out and "time to fallback 2.50s (1.0.0 -> 0.9.0)" in out
    assert "restored in 0.25s" in out
    failed = {"kind": "kill-switch", "outcome": "Failed", "message": "traffic did not reach fallback 0.9.0"}
    code, out, _ = run(OperatorSession(stable(fallback={"version": "0.9.0"}), failed),
                       "drill", "kill-switch", "fraud", "--wait", "--timeout", "5s")
    assert code == Exit.ERROR and "did not reach fallback" in out


def test_status_shows_the_last_drill() -> None:
    obj = stable(fallback={"version": "0.9.0"})
    obj["status"]["lastDrill"] = {"kind": "rollback", "outcome": "Passed", "requestedBy": "bob@t",
                                  "startedAt": "2026-03-01T11:00:00Z", "secondsToFallback": 1.5,
                                  "fromVersion": "2.0.0", "toVersion": "1.0.0"}
    _, out, _ = run(FakeSession(obj), "status", "fraud")
    assert "Last drill:    rollback Passed by bob@t at 2026-03-01T11:00:00Z: time to fallback 1.50s" in out


def test_status_watch_keeps_watching_through_a_kill_switch_drills_fallback() -> None:
    from tollgate.cli import view

    # given the Fallback phase of a running kill-switch drill, then `status --watch` does not end on it
    drill = {"kind": "kill-switch", "outcome": "Running", "requestedBy": "alice@t"}
    assert view.watch_outcome(md("Fallback", canary=False, lastDrill=drill)) is None
    # and once the drill ended, a Fallback phase is the real kill switch again
    assert view.watch_outcome(md("Fallback", canary=False, lastDrill={**drill, "outcome": "Passed"})) is Exit.FALLBACK
