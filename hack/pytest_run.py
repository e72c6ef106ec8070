"""Run pytest on a directory and refuse an empty run.

pytest exits 5 when it collects no test. In CI that would look like success for a suite that
silently vanished, so an empty collection is an error here (and every other exit code passes through).
"""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5

if __name__ == "__main__":
    code = pytest.main(sys.argv[1:])
    if code == NO_TESTS_COLLECTED:
        print(f"pytest collected no tests from {sys.argv[1:]}: failing instead of passing silently",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(int(code))
