"""Running `kubectl-tollgate` as a user would: a separate process, its console script from .venv/bin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-tollgate"


def env() -> dict[str, str]:
    """The caller's environment without KUBECONFIG (every call names its kubeconfig) and without color."""
    e = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    e["NO_COLOR"] = "1"
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def tollgate(kubeconfig: str | Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`kubectl-tollgate --kubeconfig K ARGS...`; never raises on a non-zero exit (tests assert codes)."""
    return subprocess.run([str(PLUGIN), "--kubeconfig", str(kubeconfig), *args], text=True, capture_output=True,
                          timeout=timeout, env=env(), check=False)


def ok(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res


def data(res: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(res).stdout)
