"""The liveness probe's rule: failures within the grace period are reported, past it the probe fails."""

from __future__ import annotations

import pytest

from tollgate.runtime.health import ApiHealth, UnhealthyError


class FakeHealth(ApiHealth):
    reachable = True

    def ping(self) -> None:
        if not self.reachable:
            raise ConnectionRefusedError("connection refused")


def test_probe_tolerates_a_blip_then_fails_then_recovers() -> None:
    now = [100.0]
    h = FakeHealth(api=None, grace=30, clock=lambda: now[0])  # type: ignore[arg-type]
    # given a reachable API server, then the probe says ok
    assert h.check() == "ok"
    # when it becomes unreachable, then within the grace the probe reports but passes
    h.reachable = False
    now[0] += 20
    assert h.check() == "unreachable for 20s (grace 30s)"
    # and past the grace it fails, naming the error
    now[0] += 15
    with pytest.raises(UnhealthyError, match=r"unreachable for 35s.*ConnectionRefusedError"):
        h.check()
    # when it is reachable again, then the probe passes at once
    h.reachable = True
    assert h.check() == "ok"
