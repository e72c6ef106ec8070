"""A spec the API types refuse, as a type: `InvalidSpecError`, raised by `parse_spec` and by policy resolution.

The API server's schema and CEL rules refuse almost every invalid spec at admission; what gets past
them (an object stored before a CRD upgrade, a hand-edited CRD) still must not be acted on. Callers
catch this one type, never a bare ValueError; its message names the field, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tollgate.api.spec import ModelDeploymentSpec


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; `str()` says which field, its value and the fix."""

    def __init__(self, field: str, value: object, problem: str, fix: str = "fix the field and re-apply"):
        self.field = field
        self.value = value
        super().__init__(f"{field}: {problem} (value {value!r}); {fix}")


def parse_spec(raw: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    """The typed spec of a ModelDeployment body's `spec`, or InvalidSpecError naming the first bad field."""
    try:
        return ModelDeploymentSpec.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "spec." + ".".join(str(p) for p in first["loc"])
        raise InvalidSpecError(where, first.get("input"), first["msg"]) from exc
