"""Names and label values that always fit Kubernetes' limits, stable for the same input."""

from __future__ import annotations

import hashlib

DNS_LABEL_MAX = 63


def short_hash(*parts: str, length: int = 10) -> str:
    """A stable hex digest of the parts (joined unambiguously)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:length]


def fit(name: str, limit: int = DNS_LABEL_MAX) -> str:
    """`name` when it fits in `limit` characters; else a prefix plus a hash of the whole name.

    The result is a valid DNS label when `name` is made of DNS label characters: no leading or trailing
    '-' and at most `limit` characters.
    """
    if len(name) <= limit:
        return name
    suffix = short_hash(name)
    head = name[: limit - len(suffix) - 1].rstrip("-.")
    return f"{head}-{suffix}"


_LABEL_VALUE_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def label_value(text: str) -> str:
    """A valid label value for `text`: other characters become '_', at most 63 characters, starting
    and ending alphanumeric (a hash keeps distinct long values distinct)."""
    cleaned = "".join(ch if ch in _LABEL_VALUE_OK else "_" for ch in text)
    if cleaned != text or len(cleaned) > DNS_LABEL_MAX:
        cleaned = fit(cleaned, DNS_LABEL_MAX) if len(cleaned) > DNS_LABEL_MAX else cleaned
    return cleaned.strip("-_.")
