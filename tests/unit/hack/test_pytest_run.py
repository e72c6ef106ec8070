"""hack/pytest_run.py: the runner every make target uses. A SIGTERM (from `timeout` or a CI runner)
must still tear the session down, or its control plane and Prometheus outlive the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[3] / "hack" / "pytest_run.py"

SESSION = '''
import pathlib, time, pytest

@pytest.fixture(scope="session")
def control_plane():
    yield
    pathlib.Path("{torn_down}").write_text("down")

def test_runs_long(control_plane):
    pathlib.Path("{started}").write_text("up")  # the fixture is up (a signal inside its setup has no teardown)
    time.sleep(120)
'''


def run_and_terminate(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    started, torn_down = tmp_path / "started", tmp_path / "torn_down"
    (tmp_path / "test_session.py").write_text(SESSION.format(started=started, torn_down=torn_down))
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(tmp_path), "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not started.exists() and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), torn_down


def test_a_sigterm_runs_the_session_teardown(tmp_path: Path) -> None:
    # given a test session whose session fixture is up, when the runner gets SIGTERM
    result, torn_down = run_and_terminate(tmp_path)
    # then the fixture's teardown ran and the run did not pass
    assert torn_down.exists(), result.stdout
    assert result.returncode != 0


def test_an_empty_collection_fails(tmp_path: Path) -> None:
    # given a directory without tests, when the runner collects it, then it fails (pytest alone says 5)
    result = subprocess.run([sys.executable, str(RUNNER), str(tmp_path), "-q", "-p", "no:cacheprovider"],
                            check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
