"""Reading the API server's audit log: how many requests did the operator really make?

The operator's own counters could lie by omission (kopf writes finalizers and events on its own);
the audit log is the server's record of every request, with the client's user agent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPERATOR_AGENTS = ("tollgate-operator/", "kopf/")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    verb: str
    user_agent: str
    resource: str
    namespace: str
    name: str
    subresource: str
    at: str
    code: int
    user: str = ""


def events(path: Path, since: str = "") -> Iterator[dict[str, Any]]:
    """Raw audit events logged at or after `since` (an RFC 3339 timestamp; the log's own format)."""
    if not path.exists():
        return
    with path.open() as fh:
        for line in fh:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line still being written
            if ev.get("requestReceivedTimestamp", "") >= since:
                yield ev


def read(path: Path, since: str = "") -> Iterator[Request]:
    """Requests logged at or after `since`."""
    for ev in events(path, since):
        ref = ev.get("objectRef") or {}
        yield Request(
            verb=ev.get("verb", ""), user_agent=ev.get("userAgent", ""),
            resource=ref.get("resource", ""), namespace=ref.get("namespace", ""),
            name=ref.get("name", ""), subresource=ref.get("subresource", ""),
            at=ev.get("requestReceivedTimestamp", ""),
            code=int((ev.get("responseStatus") or {}).get("code") or 0),
            user=(ev.get("user") or {}).get("username", ""),
        )


def by_operator(requests: Iterable[Request]) -> list[Request]:
    return [r for r in requests if r.user_agent.startswith(OPERATOR_AGENTS)]


def writes(requests: Iterable[Request]) -> list[Request]:
    return [r for r in requests if r.verb in WRITE_VERBS]


def now_marker(at: float | None = None) -> str:
    """An RFC 3339 timestamp comparable with the log's (microseconds, UTC): now, or the epoch time `at`."""
    from datetime import UTC, datetime

    when = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
