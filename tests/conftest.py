"""Shared pytest setup: the source root `operator/` is on sys.path (never as a package)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "operator"
for path in (SRC, TESTS):  # tests import shared helpers as `integration.cluster` (importlib mode)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
