"""Real MLServer processes serving small real scikit-learn models, and real requests to them (tests).

A test tool. MLServer and scikit-learn live in their own virtualenv (examples/mlserver/requirements.txt,
created on demand under ~/.cache/tollgate/mlserver-venv/<hash of the requirements>), never in the
operator's: the operator image does not carry a model server. Models are trained at test time by
examples/mlserver/train.py (synthetic data, nothing downloaded) and served with the quality export
runtime beside it, exactly as a user would run them.

`Traffic` sends real inference requests (POST /v2/models/<name>/infer over HTTP) to the server of the
version each track runs, following the live split the simulator's split source computes from the
cluster (the Service's pods, or the HTTPRoute), so the rollout is judged on what the servers
themselves count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tollgate_testkit.simulator import SplitSource

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "mlserver"
REQUIREMENTS = EXAMPLE / "requirements.txt"
CACHE = Path(os.environ.get("TOLLGATE_CACHE", Path.home() / ".cache" / "tollgate"))


def venv() -> Path:
    """The virtualenv with MLServer, created once per version of the requirements (pip's cache helps).

    Created in place (a venv's entry points name its own path) and marked complete last, so an
    interrupted install is started over, never used half-done."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    root = CACHE / "mlserver-venv" / digest
    if (root / ".installed").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                   check=True, timeout=1800)
    (root / ".installed").touch()
    return root


def train(out: Path, *, name: str, version: str, seed: int, flip_labels: bool = False) -> Path:
    """A real model folder for MLServer (examples/mlserver/train.py, in MLServer's virtualenv)."""
    args = [str(venv() / "bin" / "python"), str(EXAMPLE / "train.py"), str(out), "--name", name,
            "--version", version, "--seed", str(seed)]
    subprocess.run([*args, *(["--flip-labels"] if flip_labels else [])], check=True, timeout=300)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ModelServer:
    """`mlserver start` on loopback for one model folder, with its own ports and metrics directory."""

    folder: Path
    http_port: int = field(default_factory=_free_port)
    grpc_port: int = field(default_factory=_free_port)
    metrics_port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def name(self) -> str:
        name: str = json.loads((self.folder / "model-settings.json").read_text())["name"]
        return name

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self) -> ModelServer:
        settings = {"host": "127.0.0.1", "http_port": self.http_port, "grpc_port": self.grpc_port,
                    "metrics_port": self.metrics_port, "metrics_dir": str(self.folder / ".metrics"),
                    "debug": False}
        (self.folder / "settings.json").write_text(json.dumps(settings))
        self.log_path = self.folder / "mlserver.log"
        out = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen([str(venv() / "bin" / "mlserver"), "start", str(self.folder)],
                                         cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            out.close()
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{self.name}/ready"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mlserver exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"mlserver {self.folder} not ready in {timeout}s:\n{self.log_tail()}")

    def infer(self, rows: list[list[float]], timeout: float = 10) -> int:
        """One real V2 inference request; returns the HTTP status."""
        body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])],
                                       "datatype": "FP64", "data": [v for r in rows for v in r]}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/v2/models/{self.name}/infer",
                                     data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def serving(versions: Mapping[str, dict[str, Any]], *, name: str) -> Iterator[dict[str, ModelServer]]:
    """Train and serve one real model per version ({version: train kwargs}); stop them all on exit."""
    root = Path(tempfile.mkdtemp(prefix="tollgate-mlserver-"))
    servers: dict[str, ModelServer] = {}
    try:
        for version, kwargs in versions.items():
            folder = train(root / version, name=name, version=version, **kwargs)
            servers[version] = ModelServer(folder).start()
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


class Traffic:
    """Real requests at `rate` per second for one ModelDeployment, sent to the server of the version each
    track runs, in the shares of the live split (a request picks its track with the track's share)."""

    def __init__(self, splits: SplitSource, key: tuple[str, str], servers: Mapping[str, ModelServer], *,
                 rate: float = 20.0, seed: int = 5, batch: int = 1) -> None:
        self._splits, self._key, self._servers = splits, key, servers
        self._rate, self._batch = rate, batch
        self._rng = random.Random(seed)
        self._inputs: list[list[float]] = json.loads(
            (next(iter(servers.values())).folder / "inputs.json").read_text())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent: dict[tuple[str, str, int], int] = {}
        """(track, version, HTTP status) -> requests."""

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="mlserver-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        period = 1.0 / self._rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            split = self._splits.splits().get(self._key)
            if split is not None and split.tracks:
                share = self._rng.choices(split.tracks, [t.share for t in split.tracks])[0]
                server = self._servers.get(share.version)
                if server is not None:
                    rows = self._rng.sample(self._inputs, self._batch)
                    status = server.infer(rows)
                    key = (share.track, share.version, status)
                    self.sent[key] = self.sent.get(key, 0) + 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
