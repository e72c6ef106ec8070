"""The CRD bounds every list, map and string, so no ModelDeployment can grow without limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tollgate.api.crdgen import openapi_schema
from tollgate.api.spec import ARG_MAX_LENGTH, ARGS_MAX_ITEMS, ENV_MAX_ITEMS, ENV_VALUE_MAX_LENGTH
from tollgate.api.status import STATUS_STRING_MAX_LENGTH, bounded


def unbounded(node: dict[str, Any], path: str) -> Iterator[str]:
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        yield path
    if kind == "array":
        if "maxItems" not in node:
            yield path
        yield from unbounded(node["items"], f"{path}[]")
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in node:
                yield path
            yield from unbounded(extra, f"{path}{{}}")
        for name, child in node.get("properties", {}).items():
            yield from unbounded(child, f"{path}.{name}")


def test_every_list_map_and_string_of_spec_and_status_has_a_bound() -> None:
    assert list(unbounded(openapi_schema(), "")) == []


def test_a_maximal_runtime_is_a_few_tens_of_kilobytes() -> None:
    # given the caps of args and env (names up to 128 characters)
    args = ARGS_MAX_ITEMS * (ARG_MAX_LENGTH + 3)
    env = ENV_MAX_ITEMS * (128 + ENV_VALUE_MAX_LENGTH + 20)
    # then a runtime, even kept twice (spec and the stable revision in status), stays far below 256 KiB
    assert 2 * (args + env) < 160 * 1024


def test_status_strings_are_cut_to_the_schema_bound_and_say_so() -> None:
    # given a status with a very long provider error
    status = {"message": "x" * 10_000, "analysis": [{"name": "e", "threshold": "ok"}], "n": 3}
    # when it is bounded for writing
    out = bounded(status)
    # then it fits the CRD's cap, is marked as cut, and nothing else changed
    assert isinstance(out, dict)
    assert len(out["message"]) == STATUS_STRING_MAX_LENGTH and out["message"].endswith("\u2026")
    assert out["analysis"] == status["analysis"] and out["n"] == 3
