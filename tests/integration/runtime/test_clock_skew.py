"""Durations that gate a rollout survive a leader whose wall clock differs from the API server's.

A first operator (right clock) starts the canary; a second one takes over whose whole process runs on a
skewed wall clock (libfaketime, monotonic time left alone): an hour behind, it must not hold a short
pause for an hour (nor query Prometheus an hour in the past); six minutes ahead, it must not roll a
pending canary back at once as if its 5-minute deadline had passed.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
import yaml

from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)
pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (apt-get install libfaketime)")


def _skewed_operator(stack: Stack, namespace: str, skew: str, tmp_path: Path) -> OperatorProcess:
    """An operator whose wall clock is off by `skew` (libfaketime syntax, e.g. -1h, +6m).

    Its kubeconfig skips verifying the server certificate: this test PKI's certificates start now, and
    a clock an hour behind would see them as not yet valid (a real node's would be older than that).
    The API server still authenticates the operator by its client certificate.
    """
    config = yaml.safe_load(Path(stack.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster.pop("certificate-authority", None)
    cluster["insecure-skip-tls-verify"] = True
    path = tmp_path / "skewed.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert LIBFAKETIME is not None
    op = OperatorProcess(str(path), prometheus_url=stack.prometheus.url, namespaces=[namespace, f"{namespace}-*"],
                         env={"LD_PRELOAD": LIBFAKETIME, "FAKETIME": skew, "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    stack.operators.append(op)
    return op.start()


def _reconciles(op: OperatorProcess) -> float:
    for line in op.metrics().splitlines():
        if line.startswith("tollgate_reconcile_duration_seconds_count"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_leader_an_hour_behind_ends_a_pause_on_time(stack: Stack, namespace: str, tmp_path: Path) -> None:
    # given a canary that entered a 20 s pause under an operator with the right clock
    first = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    try:
        apply(stack, namespace, md_manifest("skew", "1.0.0"))
        wait_phase(stack, namespace, "skew", "Stable")
        patch_spec(stack, namespace, "skew", {
            "model": {"version": "1.1.0", "uri": "s3://models/skew/1.1.0"},
            "rollout": {"steps": [{"weight": 25, "pause": "20s"}, {"weight": 100}],
                        "analysis": {"interval": "1s", "window": "5s", "minSamples": 10},
                        "progressDeadline": "60s"}})
        wait_for("the canary in its pause", lambda: (status(stack, namespace, "skew").get("canaryWeight") == 25
                                                     and status(stack, namespace, "skew").get("stepStartedAt")),
                 timeout=60)
    finally:
        first.stop()
    # when an operator whose clock is an hour behind takes over
    skewed = _skewed_operator(stack, namespace, "-1h", tmp_path)
    try:
        # then the pause ends when it should, analysis finds its data, and the canary is promoted
        st = wait_phase(stack, namespace, "skew", "Succeeded", timeout=120)
    finally:
        skewed.stop()
    assert st["stable"]["version"] == "1.1.0"
    reasons = [t["reason"] for t in st["timeline"]]
    assert "RolledBack" not in reasons and "ProgressDeadlineExceeded" not in reasons, reasons


def test_a_leader_six_minutes_ahead_does_not_roll_a_pending_canary_back_at_once(
        stack: Stack, namespace: str, tmp_path: Path) -> None:
    # given a canary whose pods are not Ready yet, with a 5-minute deadline started by a right clock
    first = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    try:
        apply(stack, namespace, md_manifest("pend", "1.0.0"))
        wait_phase(stack, namespace, "pend", "Stable")
        patch_spec(stack, namespace, "pend", {"model": {"version": "2.0.0"}, "runtime": {"image": NEVER_READY_IMAGE},
                                              "rollout": {"steps": [{"weight": 25}, {"weight": 100}],
                                                          "progressDeadline": "5m"}})
        wait_for("the canary pending", lambda: status(stack, namespace, "pend").get("notReadySince"), timeout=60)
    finally:
        first.stop()
    # when an operator whose clock is six minutes ahead takes over and has decided
    skewed = _skewed_operator(stack, namespace, "+6m", tmp_path)
    try:
        wait_for("the skewed operator to decide", lambda: _reconciles(skewed) >= 1, timeout=60)
        st = status(stack, namespace, "pend")
    finally:
        skewed.stop()
    # then the canary is still within its deadline: nothing rolled back
    assert st["phase"] == "Progressing", json.dumps(st, indent=1)
    assert st.get("rolledBackRevision") is None and st.get("lastIncident") is None
