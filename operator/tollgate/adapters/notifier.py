"""Sends notifications to one webhook, off the rollout's path.

`Notifier.notify` only puts the notification on a bounded queue and returns: one worker thread posts
it, so a slow, hanging or dead receiver delays no decision and no traffic action. Each notification is
retried with a bound (attempts, backoff, a timeout per attempt), then dropped with a log line; when the
queue is full (a receiver down for long), new notifications are dropped the same way. The webhook URL
and token come from a Secret; the URL (a Slack or Teams webhook URL is itself a secret) and the token
never appear in logs or repr, only the host.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from tollgate.adapters.notification_payloads import CONTENT_TYPES, Format, Notice, notice_of, payload

log = logging.getLogger("tollgate.notify")


@dataclass(frozen=True)
class Webhook:
    """Where notifications go. From a Secret: keys `url` (required), `format` (cloudevents, slack or teams;
    default cloudevents) and `token` (optional, sent as a bearer token)."""

    url: str = field(repr=False)
    format: Format = Format.CLOUDEVENTS
    token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.rsplit("@", 1)[-1]

    @classmethod
    def from_secret(cls, data: Mapping[str, str], where: str) -> Webhook:
        """From a Secret's decoded data; ValueError names the Secret, the key and the fix."""
        url = (data.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Secret {where} needs key url with an http(s) URL of the receiver: add it")
        raw = (data.get("format") or Format.CLOUDEVENTS.value).strip()
        try:
            fmt = Format(raw)
        except ValueError:
            raise ValueError(f"Secret {where} key format is {raw!r}: use one of "
                             f"{', '.join(f.value for f in Format)}") from None
        return cls(url=url, format=fmt, token=(data.get("token") or "").strip() or None)


class Notifier:
    """A bounded queue and one sender thread for one webhook."""

    def __init__(self, hook: Webhook, *, attempts: int = 3, timeout: float = 5.0, backoff: float = 0.5,
                 capacity: int = 200, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.hook = hook
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff
        self.clock = clock
        self._queue: queue.Queue[Notice | None] = queue.Queue(maxsize=capacity)
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="tollgate-notifier", daemon=True)
        self._thread.start()
        self.sent = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"Notifier(host={self.hook.host!r}, format={self.hook.format.value})"

    def on_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """An Event the operator posted: notify when its reason is one of the notified kinds. Never raises,
        never blocks."""
        at = self.clock().astimezone(UTC).isoformat().replace("+00:00", "Z")
        notice = notice_of(body, reason, message, type_ == "Warning", at)
        if notice is not None:
            self.notify(notice)

    def notify(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self.dropped += 1
            log.warning("notification dropped: queue full (receiver down?)", extra={
                "host": self.hook.host, "kind": notice.kind.value, "md": f"{notice.namespace}/{notice.name}"})

    def close(self, wait: float = 0.0) -> None:
        """Stop the sender (after what is queued, within `wait` seconds)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if wait > 0:
            self._thread.join(wait)

    def _run(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            self._send(notice)

    def _send(self, notice: Notice) -> None:
        body = payload(self.hook.format, notice)
        headers = {"Content-Type": CONTENT_TYPES[self.hook.format], "User-Agent": "tollgate-operator"}
        if self.hook.token:
            headers["Authorization"] = f"Bearer {self.hook.token}"
        where = {"host": self.hook.host, "kind": notice.kind.value, "md": f"{notice.namespace}/{notice.name}"}
        for attempt in range(1, self.attempts + 1):
            try:
                r = self._session.post(self.hook.url, json=body, headers=headers, timeout=self.timeout)
                if r.status_code < 300:
                    self.sent += 1
                    log.info("notification sent", extra={**where, "attempt": attempt})
                    return
                error = f"HTTP {r.status_code}"
                if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    self.dropped += 1
                    log.warning("notification refused by the receiver", extra={**where, "error": error})
                    return
            except requests.RequestException as exc:
                error = type(exc).__name__
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        self.dropped += 1
        log.warning("notification dropped after retries", extra={**where, "attempts": self.attempts, "error": error})
