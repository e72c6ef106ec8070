"""adapters.json_codec: the standard library's results on the busy paths, faster."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tollgate.adapters import json_codec

POD_EVENT: dict[str, Any] = {
    "type": "MODIFIED",
    "object": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "m-stable-7d9f", "namespace": "ml-team-m", "resourceVersion": "12345",
                     "labels": {"app.kubernetes.io/managed-by": "tollgate"},
                     "annotations": {"note": "caf\u00e9 \u2713"}},
        "spec": {"containers": [{"name": "server", "resources": {"limits": {"cpu": "1"}}}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 0}],
                   "score": 0.125, "nothing": None},
    },
}


def test_a_watch_event_parses_to_what_the_standard_library_gives() -> None:
    # given a watch line as the API server sends it
    line = json.dumps(POD_EVENT).encode()
    # when the codec parses it, from bytes or from text
    # then the result is the standard library's, value for value
    assert json_codec.loads(line) == json.loads(line) == POD_EVENT
    assert json_codec.loads(line.decode()) == POD_EVENT


def test_every_integer_the_api_server_sends_is_read_exactly_and_a_huge_one_is_written() -> None:
    # given the ends of the 64-bit range (the API server keeps integers as int64) and one beyond it
    edges = {"min": -(2**63), "max": 2**63 - 1, "unsigned": 2**64 - 1}
    huge = 2**70
    # when the codec reads the edges and writes the huge one (orjson alone refuses to write it)
    with pytest.raises(TypeError):
        orjson.dumps({"n": huge})
    # then the edges are exact ints, and the huge one is written as the standard library writes it
    assert json_codec.loads(json.dumps(edges)) == edges
    assert all(type(v) is int for v in json_codec.loads(json.dumps(edges)).values())
    assert json_codec.dumps({"n": huge}) == b'{"n":%d}' % huge


def test_malformed_json_raises_the_standard_librarys_error() -> None:
    # given a truncated watch line (a connection cut mid-event)
    # when it is parsed
    # then the error is json's own, as every caller expects
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads(b'{"type": "MODIFIED", "object": {')


def test_a_round_trip_keeps_the_body_and_the_copy_is_independent() -> None:
    # given a body with non-ASCII text and non-string keys orjson would refuse to write
    body = {"metadata": {"annotations": {"a": "caf\u00e9"}}, "counts": {1: "one"}}
    # when it is written and read back, and copied
    back = json_codec.loads(json_codec.dumps(body))
    copied = json_codec.copy(POD_EVENT)
    copied["object"]["metadata"]["labels"]["x"] = "y"
    # then the text survives, keys become strings as in json, and the copy shares nothing with its source
    assert back == {"metadata": {"annotations": {"a": "caf\u00e9"}}, "counts": {"1": "one"}}
    assert "x" not in POD_EVENT["object"]["metadata"]["labels"]


def test_canonical_bytes_do_not_depend_on_key_order_and_differ_with_content() -> None:
    # given the same object built in two key orders, one with a value changed, and one with an integer
    # beyond 64 bits (which orjson refuses)
    obj = POD_EVENT["object"]
    reordered = json.loads(json.dumps(obj, sort_keys=True))
    reordered["metadata"] = dict(reversed(list(reordered["metadata"].items())))
    edited = json.loads(json.dumps(obj))
    edited["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    # when each is written canonically
    # then key order makes no difference, content does, and the fallback is sorted too
    assert json_codec.canonical(reordered) == json_codec.canonical(obj)
    assert json_codec.canonical(edited) != json_codec.canonical(obj)
    assert json_codec.canonical({"b": 2**70, "a": 1}) == b'{"a":1,"b":%d}' % 2**70
    # and a lone surrogate (orjson refuses it; the standard library's parser lets it through) is escaped
    assert json_codec.canonical({"a": "\ud800"}) == b'{"a":"\\ud800"}'
