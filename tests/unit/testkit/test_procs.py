"""The one /proc scan the launchers share to find what a killed run left (etcd data, containerd shims)."""

from __future__ import annotations

import os

from tollgate_testkit import procs


def test_this_process_is_found_under_its_pid_with_its_arguments() -> None:
    # given this test process, when the machine's command lines are read
    found = procs.cmdlines()
    # then its own PID is there, with its arguments NUL-separated as the kernel gives them
    assert b"pytest" in found[os.getpid()]
    assert b"\0" in found[os.getpid()]
