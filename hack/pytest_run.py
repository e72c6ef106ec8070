"""Run pytest on a directory, refuse an empty run, and tear down on SIGTERM.

pytest exits 5 when it collects no test. In CI that would look like success for a suite that
silently vanished, so an empty collection is an error here (and every other exit code passes through).

SIGTERM (what `timeout`, CI runners and `kill` send) would end pytest without running fixture
teardown, leaving the session's control plane, Prometheus and operators running as orphans. It is
turned into the KeyboardInterrupt that Ctrl-C raises, for which pytest does run every finaliser.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import pytest

NO_TESTS_COLLECTED = 5


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the run at once
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}: tearing down the test session")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    code = pytest.main(sys.argv[1:])
    if code == NO_TESTS_COLLECTED:
        print(f"pytest collected no tests from {sys.argv[1:]}: failing instead of passing silently",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(int(code))
