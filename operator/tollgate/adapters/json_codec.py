"""The JSON codec of the operator's busy paths: kopf's watch streams, the API server's answers to our
requests, and the ModelDeployment bodies the registry keeps.

Why not the standard library there: in a bulk create of 1,000 ModelDeployments, parsing the watch
streams' events was a sixth of the operator's CPU (py-spy, issue 22), and that CPU comes out of the
same cores the API server needs on a small machine. orjson parses a 3.4 KB Pod event 2.6x faster
(11.6 against 30.2 microseconds here) and writes several times faster.

What stays the standard library's:
- the results: the same dicts, lists, strings and numbers for any JSON the API server sends;
- every integer of the 64-bit range, exactly. Beyond it orjson reads a float (the standard library an exact
  int); the API server never sends such a number as an integer (it keeps integers as int64 and anything
  larger as a float64, so it already sends 1.18e+21). Writing one, which orjson refuses, goes through
  `json`;
- errors: malformed input raises `json.JSONDecodeError` (orjson's error is a subclass of it);
- anything hashed into an object we write (adapters.kube.manifest_hash keeps `json.dumps`: its digest is
  stored on the objects, and a new serialiser would make every object look changed after an upgrade).
Not byte-for-byte: `dumps` writes compact UTF-8 (no spaces, non-ASCII as is), which is only ever read
back by `loads` or sent as a request body.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse a JSON document (orjson; the standard library reports what orjson refuses)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, memoryview):
            data = data.tobytes()
        return json.loads(data)  # the standard library's error, with its message, for malformed input


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (orjson; the standard library for what orjson refuses, e.g. huge integers or
    non-string keys)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(obj: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys, for digests compared only within this process (a child's
    drift fingerprint, adapters.kube.live_fingerprint): equal content, equal bytes. Not for a digest
    stored on an object (manifest_hash keeps `json.dumps`, see above)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # ASCII-escaped: a lone surrogate (which orjson refuses) cannot be encoded as UTF-8
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def copy(obj: Any) -> Any:
    """A deep copy of a JSON-shaped object (a manifest about to be annotated), by a round trip."""
    return loads(dumps(obj))
