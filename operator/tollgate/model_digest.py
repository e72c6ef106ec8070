"""The digest of a fetched model, and the termination message that reports a mismatch (stdlib only).

The contract between the storage initializer (tollgate.initializer, which writes the message when the bytes
it fetched are not spec.model.digest) and the operator (runtime.pods, which reads it from the pod's status
and fails the version). One module for both ends, so the format cannot drift; stdlib only, because the
initializer runs apart from the operator's dependencies (pyproject.toml says why).

The digest of a fetched model is the sha256 of its bytes when it is one file (what `sha256sum FILE`
prints), else the sha256 of the `sha256sum` lines of every file sorted by path, i.e.
`cd DIR && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

MISMATCH_REASON = "ModelDigestMismatch"
TERMINATION_LIMIT = 4096
"""The kubelet keeps at most 4096 bytes of a termination message."""


@dataclass(frozen=True)
class DigestMismatch:
    """The storage initializer fetched bytes whose digest is not spec.model.digest."""

    expected: str
    actual: str


def file_digest_line(relpath: str, sha256_hex: str) -> str:
    """One `sha256sum` output line."""
    return f"{sha256_hex}  {relpath}\n"


def tree_digest(files: Iterable[tuple[str, str]]) -> str:
    """sha256:<hex> of a fetched model from (path relative to its directory, sha256 hex of the file)."""
    entries = sorted(files)
    if not entries:
        raise ValueError("no files were fetched: nothing to digest")
    if len(entries) == 1:
        return f"sha256:{entries[0][1]}"
    listing = "".join(file_digest_line(path, digest) for path, digest in entries)
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def mismatch_message(expected: str, actual: str, uri: str) -> str:
    """The initializer's termination message for a digest mismatch (JSON, under the kubelet's limit)."""
    text = json.dumps({"reason": MISMATCH_REASON, "expected": expected, "actual": actual, "uri": uri[:1024]},
                      sort_keys=True)
    return text[:TERMINATION_LIMIT]


def parse_mismatch(message: str | None) -> DigestMismatch | None:
    """The digest mismatch a termination message reports, or None (another failure, or not ours)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("reason") != MISMATCH_REASON:
        return None
    expected, actual = data.get("expected"), data.get("actual")
    if not isinstance(expected, str) or not isinstance(actual, str):
        return None
    return DigestMismatch(expected=expected, actual=actual)
