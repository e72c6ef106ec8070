"""Durations and timestamps as the API writes them, parsed without reading a clock.

Status timestamps are RFC 3339 strings (that is what the CRD stores); the engine parses them here and
writes them back in one canonical form (UTC, `Z`, microseconds only when present), so a status that
round-trips through the API server decides exactly as before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as `30s`, `1m30s`, `1.5h` or `250ms`.

    Raises ValueError on anything else (the CRD pattern already refuses it at admission).
    """
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 1m30s, 2h)")
    return total


def require_aware(now: datetime) -> datetime:
    """`now` must carry a time zone: a naive datetime would silently mean local time."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (use datetime.now(UTC) in the runtime)")
    return now.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, e.g. 2026-01-02T03:04:05Z or 2026-01-02T03:04:05.250000Z."""
    text = require_aware(at).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """The datetime of an RFC 3339 string (None stays None); naive strings are taken as UTC."""
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def seconds_between(start: datetime, end: datetime) -> float:
    """end - start in seconds (negative when end is earlier)."""
    return (end - start) / timedelta(seconds=1)
