"""Status holds each revision's runtime once; expand restores what compact dropped."""

from __future__ import annotations

import json
from typing import Any

from tollgate.engine.status_size import compact, expand


def ref(revision: str, args: int = 0) -> dict[str, Any]:
    return {"revision": revision, "version": revision, "model": {"name": "m", "version": revision},
            "runtime": {"image": "img", "args": ["a" * 1000] * args}}


def test_during_a_canary_the_runtime_is_kept_once() -> None:
    # given a canary, its stable and a lastKnownGood of the stable revision, each with 32 KB of args
    status = {"phase": "Progressing", "stable": ref("r1", 32), "canary": ref("r2", 32),
              "lastKnownGood": ref("r1", 32)}
    # when compacted
    small = compact(status)
    # then only stable carries a runtime, and the size is about one runtime
    assert small["stable"]["runtime"] is not None
    assert small["canary"]["runtime"] is None and small["lastKnownGood"]["runtime"] is None
    assert len(json.dumps(small)) < 1.2 * len(json.dumps(ref("r1", 32)))
    # and expanding gives lastKnownGood its runtime back (the canary's comes from the spec)
    assert expand(small)["lastKnownGood"] == status["lastKnownGood"]


def test_a_lastknowngood_of_another_revision_keeps_its_own_runtime() -> None:
    status = {"stable": ref("r2", 1), "lastKnownGood": ref("r1", 1), "fallback": ref("r1", 1)}
    small = compact(status)
    assert small["lastKnownGood"] == status["lastKnownGood"]
    assert small["fallback"]["runtime"] is None
    assert expand(small) == status
