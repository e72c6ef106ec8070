"""bench/common.py's machine CPU readings: where a phase's CPU went, by process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from common import cpu_by_command, cpu_delta


def test_this_process_is_named_and_its_cpu_shows_in_the_delta() -> None:
    # given a child process of this test, named "operator" in the readings
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = cpu_by_command({child.pid: "operator"})
        # when this process burns CPU
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        after = cpu_by_command({child.pid: "operator"})
    finally:
        child.kill()
        child.wait()
    delta = cpu_delta(before, after, least=0.1)
    # then the client's own seconds are there under its name, and the child is read under its given name
    assert delta["bench client"] >= 0.2
    assert "operator" in before and "operator" in after


def test_the_delta_leaves_out_what_stayed_under_the_floor() -> None:
    # given two readings
    before = {"kube-apiserver": 10.0, "etcd": 1.0}
    after = {"kube-apiserver": 30.5, "etcd": 1.2, "kwok": 0.8}
    # when the delta is taken with a 0.5 s floor
    # then the busiest comes first, and etcd's 0.2 s is dropped
    assert list(cpu_delta(before, after).items()) == [("kube-apiserver", 20.5), ("kwok", 0.8)]
