"""Stopping the test environment's processes by the PIDs they were recorded under (never by name).

Shared by the control-plane and real-node launchers, which stop their process groups the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace: float) -> None:
    """SIGTERM the process group led by `pid`, reap it, and SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def cmdlines() -> dict[int, bytes]:
    """This machine's processes and their raw command lines (arguments separated by NUL bytes).

    For finding what a killed run left behind (an etcd data directory, a containerd shim) by what the
    process was started with; stopping still goes by PID, never by name."""
    out: dict[int, bytes] = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            out[int(cmdline.parent.name)] = cmdline.read_bytes()
    return out
