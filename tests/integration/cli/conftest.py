"""The plugin against the real control plane, with the same `stack` and `operator` fixtures as the
operator tests (tests/integration/runtime): the shared module when it exists, else the runtime conftest."""

from __future__ import annotations

try:
    from integration.fixtures import operator, stack
except ImportError:  # before the fixtures moved to the shared module
    from integration.runtime.conftest import operator, stack  # type: ignore[attr-defined,no-redef]

__all__ = ["operator", "stack"]
