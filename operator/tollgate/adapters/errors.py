"""What can go wrong talking to the API server, as types (the way kopf and httpx type their errors).

The Kubernetes adapter (and the runtime's few direct client calls, through `kube_errors`) turns the
client's ApiException, urllib3 and socket errors into this small hierarchy, so the runtime handles
meanings, not HTTP status codes:

- TemporaryError: worth trying again after `delay` seconds (throttled, a 5xx, a timeout, the network);
  the adapter has already retried it a few times.
- ConflictError: 409, somebody else changed or created the object first (or a write conditioned
  on a resourceVersion found the object changed since); decide again from the newest state.
- FencedError: the write was not even sent, because this replica does not hold the leader Lease.
- PermanentError: the request itself is wrong or not allowed (403, 422, ...); trying again as is
  will not help. NotFoundError (404) is one, for callers to whom an absent object is news.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import urllib3
from kubernetes.client.exceptions import ApiException

DEFAULT_DELAY = 5.0
"""Seconds before trying again after a temporary error that names no Retry-After."""


class KubeError(Exception):
    """A request to the API server failed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TemporaryError(KubeError):
    def __init__(self, message: str, status: int | None = None, delay: float = DEFAULT_DELAY):
        super().__init__(message, status)
        self.delay = delay


class ConflictError(KubeError):
    pass


class PermanentError(KubeError):
    pass


class NotFoundError(PermanentError):
    pass


class FencedError(KubeError):
    """A write refused before it was sent: this replica does not hold the leader Lease (any more).
    Nothing reached the API server; the runtime waits to lead, then decides again."""


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (ValueError, TypeError):
        body = {}
    text = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {exc.status}: {text or exc.reason or 'no message'}"


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    try:
        return max(1.0, float(headers.get("Retry-After", DEFAULT_DELAY)))
    except (TypeError, ValueError):
        return DEFAULT_DELAY


def translate(exc: BaseException) -> KubeError:
    """The typed error for a client exception (anything else is not a client error: re-raise it)."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 404:
            return NotFoundError(_message(exc), status)
        if status == 409:
            return ConflictError(_message(exc), status)
        if status == 429 or status >= 500 or status == 0:
            return TemporaryError(_message(exc), status or None, _retry_after(exc))
        return PermanentError(_message(exc), status)
    return TemporaryError(f"{type(exc).__name__}: {exc}")


CLIENT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)
"""What the Kubernetes client raises for a request that failed (OSError covers timeouts and sockets)."""


@contextlib.contextmanager
def kube_errors() -> Iterator[None]:
    """Raise the typed error instead of the client's (for direct client calls outside Kube)."""
    try:
        yield
    except CLIENT_ERRORS as exc:
        raise translate(exc) from exc
