"""Notifications against a real HTTP receiver on loopback: each kind's payload as documented, bounded
retries, and a receiver that hangs or is dead delays nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tollgate.adapters.notification_payloads import Format
from tollgate.adapters.notifier import Notifier, Webhook

BODY = {"metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1"},
        "status": {"stable": {"version": "1.0.0"}, "canary": {"version": "2.0.0"}}}


@dataclass
class Receiver:
    """A webhook receiver: records every request; answers with the next of `codes` (then 200); holds a
    request while `hold` is clear."""

    codes: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __post_init__(self) -> None:
        self.hold.set()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            rec.requests.append({"path": self.path, "headers": dict(self.headers),
                                 "body": json.loads(self.rfile.read(length))})
            rec.hold.wait(30)
            code = rec.codes.pop(0) if rec.codes else 200
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield rec
    rec.hold.set()
    server.shutdown()
    server.server_close()


def until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


EVENTS = [
    ("Warning", "RolledBack", "2.0.0 (bbb): failures over failureLimit 0: error-rate; evidence fraud-incident-1a2b"),
    ("Warning", "ProgressDeadlineExceeded", "canary 2.0.0 not Ready within 120s (0/2 pods Ready)"),
    ("Normal", "AwaitingApproval", "step 3/4 (50%) waits for approval: annotate tollgate.dev/approve=<who>"),
    ("Normal", "Promoted", "2.0.0 (bbb) is stable"),
    ("Warning", "KillSwitchOn", "kill switch on: canary weight 0, traffic to the fallback"),
]


def test_each_kind_arrives_as_a_cloudevent_with_the_documented_fields(receiver: Receiver) -> None:
    notifier = Notifier(Webhook(receiver.url, token="s3cret"))
    # when the operator posts one Event of each notified kind, and one it does not notify
    for type_, reason, message in EVENTS:
        notifier.on_event(BODY, type_, reason, message)
    notifier.on_event(BODY, "Normal", "StepAdvanced", "step 1/3: canary weight 0% -> 10%")
    until("five notifications", lambda: len(receiver.requests) == 5)
    # then each is a CloudEvent in structured mode, in order, with its kind, the message and the versions
    kinds = [r["body"]["type"] for r in receiver.requests]
    assert kinds == [f"dev.tollgate.modeldeployment.{k}"
                     for k in ("rollback", "stall", "approval", "promotion", "killswitch")]
    for req, (type_, reason, message) in zip(receiver.requests, EVENTS, strict=True):
        event = req["body"]
        assert req["headers"]["Content-Type"] == "application/cloudevents+json"
        assert req["headers"]["Authorization"] == "Bearer s3cret"
        assert event["specversion"] == "1.0" and len(event["id"]) == 32 and event["time"].endswith("Z")
        assert event["source"] == "/apis/tollgate.dev/v1alpha1/namespaces/ml/modeldeployments/fraud"
        assert event["subject"] == "ml/fraud" and event["datacontenttype"] == "application/json"
        data = event["data"]
        assert (data["reason"], data["message"]) == (reason, message)
        assert data["severity"] == ("warning" if type_ == "Warning" else "info")
        assert data["stableVersion"] == "1.0.0" and data["canaryVersion"] == "2.0.0"
    # and the rollback links to its evidence
    assert receiver.requests[0]["body"]["data"]["evidence"] == {
        "configMap": "ml/fraud-incident-1a2b", "key": "evidence.json",
        "command": "kubectl tollgate evidence fraud -n ml"}
    assert receiver.requests[1]["body"]["data"]["evidence"] is None
    notifier.close(5)


def test_slack_and_teams_payload_shapes(receiver: Receiver) -> None:
    for fmt in (Format.SLACK, Format.TEAMS):
        notifier = Notifier(Webhook(receiver.url, format=fmt))
        notifier.on_event(BODY, *EVENTS[0])
        notifier.close(5)
    until("two messages", lambda: len(receiver.requests) == 2)
    slack, teams = (r["body"] for r in receiver.requests)
    assert slack["text"].startswith("[rollback] ml/fraud RolledBack: 2.0.0 (bbb)")
    assert "Evidence: ml/fraud-incident-1a2b" in slack["text"]
    assert slack["blocks"][0]["text"] == {"type": "mrkdwn", "text": slack["text"]}
    assert teams["@type"] == "MessageCard" and teams["title"] == "Tollgate rollback: ml/fraud"
    assert {"name": "Evidence", "value": "ml/fraud-incident-1a2b (kubectl tollgate evidence fraud -n ml)"} in \
        teams["sections"][0]["facts"]
    assert "Authorization" not in receiver.requests[0]["headers"]


def test_retries_are_bounded(receiver: Receiver) -> None:
    # given a receiver that fails twice, then answers
    receiver.codes = [503, 500]
    notifier = Notifier(Webhook(receiver.url), attempts=3, backoff=0.01)
    notifier.on_event(BODY, *EVENTS[3])
    until("delivered", lambda: notifier.sent == 1)
    # then it took three attempts, all the same event
    assert len(receiver.requests) == 3 and len({r["body"]["id"] for r in receiver.requests}) == 1
    # given a receiver that always fails: three attempts, then dropped
    receiver.codes = [500] * 10
    notifier.on_event(BODY, *EVENTS[4])
    until("dropped", lambda: notifier.dropped == 1)
    assert len(receiver.requests) == 6
    # and a refusal (4xx) is not retried
    receiver.codes = [400]
    notifier.on_event(BODY, *EVENTS[2])
    until("refused", lambda: notifier.dropped == 2)
    assert len(receiver.requests) == 7
    notifier.close(5)


def test_a_hanging_receiver_delays_nothing(receiver: Receiver) -> None:
    # given a receiver that holds every request open
    receiver.hold.clear()
    notifier = Notifier(Webhook(receiver.url), timeout=30)
    notifier.on_event(BODY, *EVENTS[0])
    until("the first request held", lambda: len(receiver.requests) == 1)
    # when more Events are posted while it holds the first one, then each call returns at once: all of
    # them returned while the receiver still holds the first and has seen no other
    for _ in range(50):
        notifier.on_event(BODY, *EVENTS[3])
    assert len(receiver.requests) == 1
    # and once it answers, the queued ones follow
    receiver.hold.set()
    until("all delivered", lambda: notifier.sent == 51, timeout=30)


def test_a_dead_receiver_and_a_full_queue_drop_with_a_bound() -> None:
    # given nothing listens at the URL (a closed port)
    notifier = Notifier(Webhook("http://127.0.0.1:9/hook"), attempts=2, backoff=0.01, capacity=3)
    for _ in range(10):
        notifier.on_event(BODY, *EVENTS[0])  # returns at once, whatever the receiver does
    until("every notification given up", lambda: notifier.dropped == 10)
    assert notifier.sent == 0


def test_the_secret_is_validated_and_never_shown() -> None:
    hook = Webhook.from_secret({"url": "https://hooks.slack.com/services/T0/B0/xyz", "format": "slack",
                                "token": "t0k"}, "tollgate/notify")
    assert hook.format is Format.SLACK and hook.host == "hooks.slack.com"
    assert "xyz" not in repr(hook) and "t0k" not in repr(hook) and "xyz" not in repr(Notifier(hook))
    with pytest.raises(ValueError, match="Secret tollgate/notify needs key url"):
        Webhook.from_secret({}, "tollgate/notify")
    with pytest.raises(ValueError, match="key format is 'email': use one of cloudevents, slack, teams"):
        Webhook.from_secret({"url": "http://x", "format": "email"}, "tollgate/notify")


def test_a_rollback_drill_is_notified_as_a_rollback_that_says_it_is_a_drill(receiver: Receiver) -> None:
    notifier = Notifier(Webhook(receiver.url))
    notifier.on_event(BODY, "Warning", "DrillRolledBack",
                      "2.0.0 (bbb): rollback drill requested by alice: a rehearsal, not a regression; "
                      "evidence fraud-incident-9f8e")
    until("one notification", lambda: len(receiver.requests) == 1)
    event = receiver.requests[0]["body"]
    assert event["type"] == "dev.tollgate.modeldeployment.rollback"
    assert event["data"]["reason"] == "DrillRolledBack" and "rehearsal" in event["data"]["message"]
    assert event["data"]["evidence"]["configMap"] == "ml/fraud-incident-9f8e"
    notifier.close(5)
