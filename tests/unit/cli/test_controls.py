"""Control rules: which control makes sense in which phase, tokens, and what gets written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tollgate.cli import controls as ctl
from tollgate.cli.errors import CliError, Exit
from unit.cli.samples import NOW, md


def _refused(control: ctl.AnnotationControl, obj: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(CliError) as info:
        ctl.check_annotation(control, obj)
    assert info.value.code is Exit.NOT_APPLICABLE
    return info.value.message


def test_approve_only_while_a_gate_waits() -> None:
    # given the canary waits at the gate of step 2 (weight still 10)
    assert ctl.check_annotation(
        ctl.APPROVE, md("AwaitingApproval", step=1, weight=10)) == "approves step 2/3 (50%) of canary 2.0.0"
    # when paused at the gate, then the approval is accepted for later
    assert "takes effect on resume" in ctl.check_annotation(ctl.APPROVE, md("Paused", step=1, weight=10))
    # when nothing waits, then it is refused with the phase in the message
    assert "nothing awaits approval: fraud is Progressing" in _refused(ctl.APPROVE, md())
    _refused(ctl.APPROVE, md("Stable", canary=False))
    _refused(ctl.APPROVE, md("Progressing", step=1, weight=50))  # the gate already opened


def test_approve_is_refused_when_the_step_plan_changed_under_the_canary() -> None:
    # given a canary at a gate whose status records another step plan than the spec's now (the operator
    # restarts such a canary at step 1 at its next decision, so this gate is not what waits)
    stale = md("AwaitingApproval", step=1, weight=10, planHash="0123456789")
    # when approving, then it is refused: the engine's rule, plan-hash check included
    assert "nothing awaits approval" in _refused(ctl.APPROVE, stale)


def test_promote_needs_a_canary_not_yet_promoting() -> None:
    assert "skipping its remaining steps" in ctl.check_annotation(ctl.PROMOTE, md())
    assert "no canary to promote" in _refused(ctl.PROMOTE, md("Stable", canary=False))
    assert "already promoting" in _refused(ctl.PROMOTE, md("Promoting", promotingSince="2026-03-01T11:00:00Z"))
    _refused(ctl.PROMOTE, md("Fallback", killSwitchActive=True))


def test_abort_needs_a_rollout_and_retry_needs_a_rollback() -> None:
    assert "aborts canary 2.0.0" in ctl.check_annotation(ctl.ABORT, md("Paused"))
    assert "no rollout to abort" in _refused(ctl.ABORT, md("Succeeded", canary=False))
    rolled = md("RolledBack", canary=False, rolledBackRevision="bbb222")
    assert "retries rolled-back revision bbb222" in ctl.check_annotation(ctl.RETRY, rolled)
    assert "nothing was rolled back" in _refused(ctl.RETRY, md())


def test_tokens_name_the_user_and_differ_per_invocation() -> None:
    first = ctl.token("alice", NOW)
    assert first == "alice@2026-03-01T12:00:00.000000Z"
    assert ctl.token("alice", NOW + timedelta(microseconds=1)) != first
    # the same instant as the token already on the object still gives a new value
    assert ctl.fresh_token("alice", NOW, current=first) != first
    assert ctl.who("system:serviceaccount:ci:deployer", "admin") == "system:serviceaccount:ci:deployer"
    assert ctl.who(None, "admin") == "admin"
    assert ctl.who(None, None) == "unknown"


def test_patches_touch_annotations_or_spec_never_status() -> None:
    assert ctl.annotation_patch(ctl.APPROVE, "t") == {"metadata": {"annotations": {"tollgate.dev/approve": "t"}}}
    assert ctl.toggle_patch(ctl.PAUSE) == {"spec": {"paused": True}}
    assert ctl.toggle_patch(ctl.UNKILL) == {"spec": {"killSwitch": False}}


def test_toggles_write_only_when_needed_and_warn_about_consequences() -> None:
    obj = md()
    assert ctl.toggle_needed(ctl.PAUSE, obj) and not ctl.toggle_needed(ctl.RESUME, obj)
    obj["spec"]["paused"] = True
    assert not ctl.toggle_needed(ctl.PAUSE, obj) and ctl.toggle_needed(ctl.RESUME, obj)
    # a kill switch with no fallback at all will stall
    bare = md("Pending", canary=False, lastKnownGood=None)
    assert "no fallback" in ctl.toggle_notes(ctl.KILL, bare)[0]
    assert ctl.toggle_notes(ctl.KILL, md()) == []
    assert "next rollout" in ctl.toggle_notes(ctl.PAUSE, md("Stable", canary=False))[0]


BAKE = {"revision": "bbb222", "version": "2.0.0", "window": "30m", "since": "2026-03-01T11:30:00Z",
        "until": "2026-03-01T12:00:00Z", "rollbackTo": "1.0.0"}


def test_in_a_bake_window_abort_rolls_back_and_promote_ends_the_window() -> None:
    # given 2.0.0 promoted and baking until noon, 1.0.0 the last known good
    baking = md("Baking", canary=False, bake=BAKE, stable={"revision": "bbb222", "version": "2.0.0"})
    # then abort rolls it back to 1.0.0, and promote ends the window now
    assert "rolls 2.0.0 back in its bake window: all traffic back on 1.0.0" in ctl.check_annotation(ctl.ABORT, baking)
    assert "ends the bake window of 2.0.0 now" in ctl.check_annotation(ctl.PROMOTE, baking)
    # and once the window passed, neither applies
    _refused(ctl.ABORT, md("Succeeded", canary=False))
    _refused(ctl.PROMOTE, md("Succeeded", canary=False))


def test_step_needs_an_entered_step_of_a_progressing_canary() -> None:
    assert "completes step 1/3 (10%) of canary 2.0.0 now" in ctl.check_annotation(ctl.STEP, md(step=0, weight=10))
    assert "the promotion starts" in ctl.check_annotation(ctl.STEP, md(step=2, weight=100))
    # not yet at the step's weight (waiting for pods), at a gate, paused, promoting, or no canary: refused
    assert "has not taken its weight yet" in _refused(ctl.STEP, md(step=1, weight=10))
    _refused(ctl.STEP, md("AwaitingApproval", step=1, weight=10))
    _refused(ctl.STEP, md("Paused"))
    _refused(ctl.STEP, md("Promoting", promotingSince="2026-03-01T11:00:00Z"))
    _refused(ctl.STEP, md("Stable", canary=False))
