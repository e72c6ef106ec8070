"""CEL rules attached to models, carried into the CRD as `x-kubernetes-validations`.

Why a decorator: the rule sits next to the fields it constrains, so a reviewer sees the model and its
cross-field rules together, and the CRD generator needs no second list to keep in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

CEL_ATTR = "__tollgate_cel__"


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str = "FieldValueInvalid"
    message_expression: str | None = None
    """A CEL string expression for the message, to name the refused value (the API server falls back to
    `message` when it cannot evaluate it); only for cheap rules on one field."""

    def to_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def cel(rule: str, message: str, *, field_path: str | None = None,
        message_expression: str | None = None) -> Callable[[T], T]:
    """Attach a CEL rule to a model class; decorators apply bottom-up, so rules keep source order."""

    def wrap(cls: T) -> T:
        existing: tuple[CelRule, ...] = tuple(cls.__dict__.get(CEL_ATTR, ()))
        rule_ = CelRule(rule, message, field_path, message_expression=message_expression)
        setattr(cls, CEL_ATTR, (rule_, *existing))
        return cls

    return wrap


def rules_of(cls: type) -> tuple[CelRule, ...]:
    """The CEL rules declared on exactly this class (not inherited)."""
    rules: tuple[CelRule, ...] = tuple(cls.__dict__.get(CEL_ATTR, ()))
    return rules
