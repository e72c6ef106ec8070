"""The crash matrix: kill -9 the operator right after each write of a rollback and of a promotion.

For every write the runtime makes while carrying out a rollback (status, weight, Deployment apply,
canary delete, evidence) and a promotion (status, Deployment apply, weight, canary delete, status),
the operator process is started with the fault-injection hook (tollgate.runtime.faults), armed just
before the rollout reaches that point, and SIGKILLs itself the instant the API server accepted that
write. A fresh operator (no hook) then takes over. Each time:
- the rollout reaches the same end state as without a crash;
- the failed version never gets traffic again: once the rollback began, no operator request ever
  applies the canary's Deployment again (the API server's audit log is the record);
- no step is skipped or repeated: one history entry, one timeline entry, one evidence record;
- nothing is lost from status: the incident, the rolled-back revision and the failing verdict stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit import audit
from tollgate_testkit.controlplane import audit_log
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

# what the fault-injection hook matches: a kind of write, and text its request must contain
ROLLBACK_WRITES = {
    "status": {"after": "status", "contains": '"rolledBackRevision": "'},
    "weight": {"after": "weight", "contains": "crash-canary"},
    "deployment": {"after": "deployment", "contains": "crash-stable"},
    "delete": {"after": "delete", "contains": "crash-canary"},
    "evidence": {"after": "evidence"},
}
PROMOTION_WRITES = {
    "status-promoting": {"after": "status", "contains": '"phase": "Promoting"'},
    "deployment": {"after": "deployment", "contains": ["crash-stable", "1.1.0"]},
    "weight": {"after": "weight", "contains": "crash-canary"},
    "delete": {"after": "delete", "contains": "crash-canary"},
    "status-succeeded": {"after": "status", "contains": '"phase": "Succeeded"'},
}


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "crash.json"
    yield path


def _crashing_operator(stack: Stack, namespace: str, control: Path) -> OperatorProcess:
    stack.clear_faults()
    return stack.start_operator(namespaces=[namespace, f"{namespace}-*"],
                                env={"TOLLGATE_TEST_CRASH_FILE": str(control)})


def _crash(op: OperatorProcess, control: Path) -> None:
    """Wait until the armed write happened and the process killed itself there."""
    def dead() -> bool:
        return op.proc is not None and op.proc.poll() is not None

    try:
        wait_for("the operator to crash right after the armed write", dead, timeout=120, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"never crashed after {control.read_text()}\n{op.log_tail()}") from None
    fired = Path(f"{control}.fired")
    assert fired.exists(), f"the operator died, but not at the armed write:\n{op.log_tail()}"
    assert op.proc is not None and op.proc.returncode == -9


def _at_first_step(st: dict[str, Any]) -> bool:
    return bool(st.get("canaryWeight") == 25 and st.get("canaryReadyAt") and st.get("lastAnalysisAt"))


def _deployments(stack: Stack, ns: str) -> dict[str, dict[str, Any]]:
    out = json.loads(stack.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)
    return {d["metadata"]["name"]: d for d in out["items"]}


def _evidence(stack: Stack, namespace: str) -> list[str]:
    out = json.loads(stack.kubectl("get", "configmaps", "-n", namespace, "-l", "tollgate.dev/evidence=true",
                                   "-o", "json").stdout)
    return [c["metadata"]["name"] for c in out["items"]]


def _events(stack: Stack, namespace: str, reason: str) -> int:
    out = json.loads(stack.kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                   f"involvedObject.name=crash,reason={reason}").stdout)
    return sum(int(e.get("count") or 1) for e in out["items"])


@pytest.mark.parametrize("write", list(ROLLBACK_WRITES))
def test_a_crash_right_after_any_write_of_a_rollback_never_returns_traffic_to_the_failed_version(
        write: str, stack: Stack, namespace: str, control: Path) -> None:
    op = _crashing_operator(stack, namespace, control)
    try:
        # given a canary of 1.1.0 holding at 25% (a long pause), analysed every second
        apply(stack, namespace, md_manifest("crash", "1.0.0"))
        sandbox = wait_phase(stack, namespace, "crash", "Stable")["sandboxNamespace"]
        patch_spec(stack, namespace, "crash", {
            "model": {"version": "1.1.0", "uri": "s3://models/crash/1.1.0"},
            "rollout": {"steps": [{"weight": 25, "pause": "10m"}, {"weight": 100}],
                        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10, "failureLimit": 0},
                        "progressDeadline": "5m"}})
        wait_for("the canary at 25% and analysed", lambda: _at_first_step(status(stack, namespace, "crash")),
                 timeout=90)
        canary_revision = status(stack, namespace, "crash")["canary"]["revision"]
        # when 1.1.0 starts failing, with the operator set to die right after one write of the rollback
        control.write_text(json.dumps(ROLLBACK_WRITES[write]))
        since = audit.now_marker()
        stack.set_fault("1.1.0", error_rate=0.5)
        _crash(op, control)
        # and a fresh operator takes over
        op2 = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
        try:
            st = wait_phase(stack, namespace, "crash", "RolledBack", timeout=90)
            wait_for("the canary Deployment removed", lambda: "crash-canary" not in _deployments(stack, sandbox),
                     timeout=60)
        finally:
            op2.stop()
    finally:
        op.stop()
        stack.clear_faults()
    # then the end state is the rollback's: all traffic on 1.0.0, 1.1.0 marked rolled back
    assert st["stable"]["version"] == "1.0.0" and st.get("canary") is None
    assert st["canaryWeight"] == 0 and st["rolledBackRevision"] == canary_revision
    stable = _deployments(stack, sandbox)["crash-stable"]
    assert stable["spec"]["replicas"] == 4
    assert stable["spec"]["template"]["metadata"]["labels"]["tollgate.dev/version"] == "1.0.0"
    # and the failed version never got traffic again: nothing applied its Deployment after the failure
    reapplied = [r for r in audit.by_operator(audit.read(audit_log(stack.kubeconfig), since))
                 if r.resource == "deployments" and r.name == "crash-canary" and r.verb in ("patch", "create")
                 and r.subresource == "" and r.code < 300]
    assert reapplied == [], f"the failed canary was applied again after the crash at {write}: {reapplied}"
    # and no step was skipped or repeated: one rollback in history and timeline, one evidence record
    rolled = [h for h in st["history"] if h["revision"] == canary_revision]
    assert [h["result"] for h in rolled] == ["RolledBack"], st["history"]
    assert [t["reason"] for t in st["timeline"]].count("RolledBack") == 1, st["timeline"]
    assert _evidence(stack, namespace) == [st["lastIncident"]]
    assert _events(stack, namespace, "RolledBack") <= 1
    # and nothing was lost from status: the incident and the failing verdict that caused it
    assert rolled[0]["incident"] == st["lastIncident"]
    assert any(s.get("verdict") == "Fail" for s in st["analysis"]), st["analysis"]


@pytest.mark.parametrize("write", list(PROMOTION_WRITES))
def test_a_crash_right_after_any_write_of_a_promotion_promotes_exactly_once(
        write: str, stack: Stack, namespace: str, control: Path) -> None:
    op = _crashing_operator(stack, namespace, control)
    try:
        # given a healthy canary of 1.1.0 at its first step
        apply(stack, namespace, md_manifest("crash", "1.0.0"))
        sandbox = wait_phase(stack, namespace, "crash", "Stable")["sandboxNamespace"]
        control.write_text(json.dumps(PROMOTION_WRITES[write]))
        patch_spec(stack, namespace, "crash", {
            "model": {"version": "1.1.0", "uri": "s3://models/crash/1.1.0"},
            "rollout": {"steps": [{"weight": 50}, {"weight": 100}],
                        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10},
                        "progressDeadline": "60s"}})
        # when the operator dies right after one write of the promotion, and a fresh one takes over
        _crash(op, control)
        op2 = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
        try:
            st = wait_phase(stack, namespace, "crash", "Succeeded", timeout=120)
            wait_for("the canary Deployment removed", lambda: "crash-canary" not in _deployments(stack, sandbox),
                     timeout=60)
        finally:
            op2.stop()
    finally:
        op.stop()
    # then 1.1.0 is stable and last known good, on every pod of the stable track
    assert st["stable"]["version"] == "1.1.0" and st["lastKnownGood"]["version"] == "1.1.0"
    assert st.get("canary") is None and st["canaryWeight"] == 0 and st.get("rolledBackRevision") is None
    stable = _deployments(stack, sandbox)["crash-stable"]
    assert stable["spec"]["replicas"] == 4
    assert stable["spec"]["template"]["metadata"]["labels"]["tollgate.dev/version"] == "1.1.0"
    # and it was promoted exactly once, with every step in the timeline once
    assert [h["result"] for h in st["history"] if h["version"] == "1.1.0"] == ["Promoted"], st["history"]
    reasons = [t["reason"] for t in st["timeline"]]
    assert reasons.count("Promoted") == 1 and reasons.count("Promoting") == 1, reasons
    assert reasons.count("StepAdvanced") == 2, reasons
