"""Notifications on the real control plane (issue 20): the operator as its own process, configured with
--notify-secret, sends each kind to a real HTTP receiver on loopback; a receiver that never answers
delays no rollout."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

GATED = {"steps": [{"weight": 25, "approval": "required"}, {"weight": 100}],
         "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "10s"}


class Receiver:
    """A webhook receiver on loopback: keeps every request; holds each one open while `hold` is clear."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hold = threading.Event()
        self.hold.set()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                rec.requests.append({"headers": dict(self.headers), "body": json.loads(self.rfile.read(length))})
                rec.hold.wait(120)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tollgate"

    def of(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests
                if r["body"]["type"] == f"dev.tollgate.modeldeployment.{kind}" and r["body"]["data"]["name"] == name]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def notifying_operator(stack: Stack, namespace: str, receiver: Receiver) -> OperatorProcess:
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="notify"), type="Opaque", data={
        "url": base64.b64encode(receiver.url.encode()).decode(),
        "token": base64.b64encode(b"hook-token").decode()})
    client.CoreV1Api(stack.api).create_namespaced_secret(namespace, secret)
    return stack.start_operator(namespaces=[namespace, f"{namespace}-*"],
                                extra_args=["--notify-secret", f"{namespace}/notify"])


def test_each_notification_kind_arrives_at_a_loopback_receiver(stack: Stack, namespace: str,
                                                                receiver: Receiver) -> None:
    op = notifying_operator(stack, namespace, receiver)
    try:
        # given a stable 1.0.0 whose canaries wait for approval at 25%
        apply(stack, namespace, md_manifest("fraud", "1.0.0", rollout=GATED))
        wait_phase(stack, namespace, "fraud", "Stable")
        # when 2.0.0 waits at the gate, then an approval notification arrives
        patch_spec(stack, namespace, "fraud", {"model": {"version": "2.0.0"}})
        wait_for("approval", lambda: receiver.of("approval", "fraud"), timeout=30)
        # when it is aborted, then a rollback notification links to the evidence status names
        stack.kubectl("annotate", "md", "fraud", "-n", namespace, "tollgate.dev/abort=alice")
        st = wait_phase(stack, namespace, "fraud", "RolledBack")
        wait_for("rollback", lambda: receiver.of("rollback", "fraud"), timeout=30)
        (rollback,) = receiver.of("rollback", "fraud")
        assert rollback["data"]["reason"] == "Aborted" and rollback["data"]["severity"] == "warning"
        assert rollback["data"]["evidence"]["configMap"] == f"{namespace}/{st['lastIncident']}"
        # when 3.0.0 is promoted fully, then a promotion notification
        patch_spec(stack, namespace, "fraud", {"model": {"version": "3.0.0"}})
        wait_phase(stack, namespace, "fraud", "AwaitingApproval")
        stack.kubectl("annotate", "md", "fraud", "-n", namespace, "tollgate.dev/promote=bob")
        wait_phase(stack, namespace, "fraud", "Succeeded")
        wait_for("promotion", lambda: receiver.of("promotion", "fraud"), timeout=30)
        # when the kill switch goes on, then a kill-switch notification
        patch_spec(stack, namespace, "fraud", {"killSwitch": True})
        wait_for("killswitch", lambda: receiver.of("killswitch", "fraud"), timeout=30)
        # when a first version never becomes Ready, then a stall notification
        apply(stack, namespace, md_manifest("late", "1.0.0", runtime={"image": NEVER_READY_IMAGE},
                                            rollout={**GATED, "progressDeadline": "10s"}))
        wait_for("stall", lambda: receiver.of("stall", "late"), timeout=60)
        # and every one is a CloudEvent with the token from the Secret
        for r in receiver.requests:
            assert r["headers"]["Content-Type"] == "application/cloudevents+json"
            assert r["headers"]["Authorization"] == "Bearer hook-token"
            assert r["body"]["specversion"] == "1.0"
            assert r["body"]["source"].startswith(f"/apis/tollgate.dev/v1alpha1/namespaces/{namespace}/")
            # with the documented data (docs/operations.md, Notifications), naming its kind and object
            data = r["body"]["data"]
            assert set(data) == {"kind", "namespace", "name", "reason", "message", "severity", "stableVersion",
                                 "canaryVersion", "evidence"}, data
            assert r["body"]["type"] == f"dev.tollgate.modeldeployment.{data['kind']}"
            assert data["namespace"] == namespace and r["body"]["subject"] == f"{namespace}/{data['name']}"
            assert data["severity"] in ("warning", "info") and data["message"]
        # and the operator logged no URL
        assert receiver.url not in op.log_tail()
    finally:
        op.stop()


def test_a_receiver_that_never_answers_delays_no_rollout(stack: Stack, namespace: str, receiver: Receiver) -> None:
    # given a receiver that holds every request open
    receiver.hold.clear()
    op = notifying_operator(stack, namespace, receiver)
    try:
        apply(stack, namespace, md_manifest("vision", "1.0.0", rollout=GATED))
        wait_phase(stack, namespace, "vision", "Stable")
        patch_spec(stack, namespace, "vision", {"model": {"version": "2.0.0"}})
        wait_for("the approval notification held", lambda: len(receiver.requests) == 1, timeout=30)
        # when the canary is aborted while the receiver still holds that first request
        stack.kubectl("annotate", "md", "vision", "-n", namespace, "tollgate.dev/abort=alice")
        st = wait_phase(stack, namespace, "vision", "RolledBack")
        # then the rollback went through regardless: traffic back on stable, the canary removed
        assert st["canaryWeight"] == 0 and st["stable"]["version"] == "1.0.0" and st.get("canary") is None
        assert len(receiver.requests) == 1, "the receiver answered nothing, so nothing else was sent yet"
        # and once it answers, the rollback notification follows
        receiver.hold.set()
        wait_for("rollback after release", lambda: receiver.of("rollback", "vision"), timeout=30)
        assert status(stack, namespace, "vision")["phase"] == "RolledBack"
    finally:
        op.stop()


def test_a_rollback_drill_arrives_as_a_rollback_notification_naming_the_drill(
        stack: Stack, namespace: str, receiver: Receiver) -> None:
    op = notifying_operator(stack, namespace, receiver)
    try:
        # given a canary 2.0.0 taking 25% and waiting at the approval gate of its next step (a rollback drill
        # needs a canary that takes traffic)
        rollout = {**GATED, "steps": [{"weight": 25}, {"weight": 100, "approval": "required"}]}
        apply(stack, namespace, md_manifest("drilled", "1.0.0", rollout=rollout))
        wait_phase(stack, namespace, "drilled", "Stable")
        patch_spec(stack, namespace, "drilled", {"model": {"version": "2.0.0"}})
        st = wait_phase(stack, namespace, "drilled", "AwaitingApproval")
        assert st["canaryWeight"] == 25, st
        # when a rollback drill is asked for (the plugin's annotation)
        stack.kubectl("annotate", "md", "drilled", "-n", namespace, "tollgate.dev/drill-rollback=carol-1")
        st = wait_phase(stack, namespace, "drilled", "RolledBack")
        # then a rollback notification arrives that says it was a drill, linking the drill's evidence
        wait_for("drill rollback", lambda: receiver.of("rollback", "drilled"), timeout=30)
        (note,) = receiver.of("rollback", "drilled")
        assert note["data"]["reason"] == "DrillRolledBack" and "rehearsal" in note["data"]["message"], note
        assert note["data"]["canaryVersion"] in (None, "2.0.0") and note["data"]["stableVersion"] == "1.0.0"
        assert note["data"]["evidence"]["configMap"] == f"{namespace}/{st['lastIncident']}"
    finally:
        op.stop()
