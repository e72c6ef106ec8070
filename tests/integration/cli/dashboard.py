"""Running `kubectl tollgate dashboard` as a user would: its own process on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from integration.cli.plugin import PLUGIN, env


@dataclass
class Dashboard:
    url: str
    """e.g. http://127.0.0.1:41234/ as the command printed it."""
    proc: subprocess.Popen[str]
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of a page; error statuses are answers too."""
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def running_dashboard(kubeconfig: str | Path, *args: str) -> Iterator[Dashboard]:
    """Start the dashboard (port 0: a free one), wait for the URL it prints, stop it on exit."""
    log = Path(tempfile.mkstemp(prefix="tollgate-dashboard-", suffix=".log")[1])
    with log.open("w") as err:
        proc = subprocess.Popen([str(PLUGIN), "--kubeconfig", str(kubeconfig), "dashboard", "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env())
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "Tollgate dashboard: http://127.0.0.1:PORT/  (Ctrl-C to stop)"
        assert "http://" in first, f"the dashboard did not start: {first!r}\n{log.read_text()}"
        url = next(w for w in first.split() if w.startswith("http://"))
        yield Dashboard(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.unlink(missing_ok=True)
