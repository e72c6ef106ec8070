"""A real Prometheus on loopback, for tests, the demo and benchmarks.

The binary comes from Debian's `prometheus` package, unpacked (not installed) into ~/.cache/tollgate by
`hack/prometheus/install.sh`, so no system service runs and each test owns its Prometheus: its scrape
config, its port and its TSDB directory. Debian builds it without Kubernetes service discovery, so a
Prometheus that discovers model pods from the API server (`pods=PodDiscovery(...)`) is Prometheus 3
built from its Go module with that discovery only (`hack/prometheus/build.sh`, cached the same way).
Tests that simulate an outage `stop()` it mid-analysis and `start()` it again on the same port with
the same data, as a restarted server would come back.

Why a real Prometheus rather than a stub: the adapter's grouped PromQL (rate, increase,
histogram_quantile, regex label matchers) is the thing under test, and only Prometheus evaluates it
faithfully.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "hack" / "prometheus" / "install.sh"
BUILD_SCRIPT = REPO_ROOT / "hack" / "prometheus" / "build.sh"
SHIPPED_SCRAPE_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "scrape-config.yaml"
"""The scrape configuration Tollgate documents for model pods (kubernetes_sd, role pod)."""
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class ScrapeTarget:
    """One static scrape target: a job name and the host:port serving /metrics."""

    job: str
    address: str
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra target labels Prometheus attaches to every scraped series."""


@dataclass(frozen=True)
class Redirect:
    """Where the scrape of matching pods really goes, on this machine.

    The pods run on KWOK nodes (their IPs serve nothing) or stand for a local process, so after the
    shipped relabelling has set every label from the pod, this rule (appended, test-only) points the
    target's address, and optionally its path, at a loopback server. `path` may use $1, $2... of `regex`
    over `source_labels`.
    """

    address: str
    source_labels: tuple[str, ...] = ("__meta_kubernetes_namespace", "__meta_kubernetes_pod_name")
    regex: str = "(.+);(.+)"
    path: str | None = None

    def rules(self) -> list[dict[str, Any]]:
        match = {"source_labels": list(self.source_labels), "regex": self.regex}
        out: list[dict[str, Any]] = [{**match, "target_label": "__address__", "replacement": self.address}]
        if self.path is not None:
            out.append({**match, "target_label": "__metrics_path__", "replacement": self.path})
        return out


@dataclass(frozen=True)
class PodDiscovery:
    """Model pods found through the API server with the shipped scrape configuration, unchanged, plus
    `kubeconfig_file` (where the API server is) and the redirects (where the scrape goes)."""

    kubeconfig: str | None
    """None: in-cluster (Prometheus running in a pod with its ServiceAccount)."""
    redirects: tuple[Redirect, ...] = ()
    snippet: Path = SHIPPED_SCRAPE_CONFIG

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = yaml.safe_load(self.snippet.read_text())
        for job in jobs:
            for sd in job.get("kubernetes_sd_configs", []):
                if self.kubeconfig is not None:
                    sd["kubeconfig_file"] = str(self.kubeconfig)
            job["relabel_configs"] = [*job.get("relabel_configs", []),
                                      *(rule for r in self.redirects for rule in r.rules())]
        return jobs


class PrometheusError(RuntimeError):
    """Prometheus could not be started, or answered a query with an error."""


@functools.cache
def find_binary() -> Path:
    """The prometheus binary: $TOLLGATE_PROMETHEUS, else the cached Debian package (installed on demand).

    PATH is deliberately not consulted: a system Prometheus of another version would make test results
    depend on the machine. Cached per process: the install script is a no-op after the first run.
    """
    override = os.environ.get("TOLLGATE_PROMETHEUS")
    if override:
        return Path(override)
    if not INSTALL_SCRIPT.exists():
        raise PrometheusError(f"{INSTALL_SCRIPT} not found; set TOLLGATE_PROMETHEUS to a prometheus binary")
    out = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "prometheus"


@functools.cache
def find_discovery_binary() -> Path:
    """A prometheus binary with Kubernetes service discovery: $TOLLGATE_PROMETHEUS_K8S, else the one
    hack/prometheus/build.sh builds from the Go module (built on demand, cached)."""
    override = os.environ.get("TOLLGATE_PROMETHEUS_K8S")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "prometheus"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def render_config(targets: Iterable[ScrapeTarget], scrape_interval: str,
                  pods: PodDiscovery | None = None) -> dict[str, Any]:
    """The prometheus.yml for these targets: one scrape job per job name, plus the pod discovery jobs."""
    jobs: dict[tuple[str, str], list[ScrapeTarget]] = {}
    for t in targets:
        jobs.setdefault((t.job, t.metrics_path), []).append(t)
    names = [job for job, _ in jobs]
    if len(names) != len(set(names)):
        raise ValueError("one job name must use one metrics path")
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "static_configs": [
                    {"targets": [t.address], **({"labels": dict(t.labels)} if t.labels else {})}
                    for t in group
                ],
            }
            for (job, path), group in jobs.items()
        ] + (pods.jobs() if pods is not None else []),
    }


class Prometheus:
    """A Prometheus process on 127.0.0.1 with a scrape config the caller controls.

    Use as a context manager, or call start()/stop(). The port and the TSDB directory are kept across
    stop()/start(), so a restart looks like an outage followed by recovery, not like a new server.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget] = (),
        *,
        scrape_interval: str = "1s",
        binary: Path | None = None,
        port: int | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        scrape_configs: Sequence[dict[str, Any]] = (),
        pods: PodDiscovery | None = None,
    ) -> None:
        """host: the address to listen on (the real node's pods reach the bridge address, not loopback);
        scrape_configs: jobs added as they are beside the static targets; pods: model pods discovered
        through the API server with the shipped scrape configuration (needs the discovery binary)."""
        self.host = host
        self.scrape_configs = list(scrape_configs)
        self.scrape_interval = scrape_interval
        self.pods = pods
        self._targets: tuple[ScrapeTarget, ...] = tuple(targets)
        self._binary = binary
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tollgate-prom-"))
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def targets(self) -> tuple[ScrapeTarget, ...]:
        return self._targets

    def start(self, timeout: float = STARTUP_TIMEOUT) -> Prometheus:
        """Start (or restart) on the same port and data directory; returns once /-/ready answers 200."""
        if self.running:
            return self
        discovery = self.pods is not None or any("kubernetes_sd_configs" in j for j in self.scrape_configs)
        binary = self._binary or (find_discovery_binary() if discovery else find_binary())
        self._binary = binary
        self._write_config()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        logf = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self._proc.returncode}:\n{self._log_tail()}")
            if self._get_status("/-/ready") == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready within {timeout}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the data directory and port stay for start()."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def close(self) -> None:
        """Stop and remove the working directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def reload(self, targets: Sequence[ScrapeTarget], pods: PodDiscovery | None = None) -> None:
        """Replace the scrape targets (and the pod discovery, when given): rewrite the config and POST
        /-/reload (needs a running server)."""
        self._targets = tuple(targets)
        if pods is not None:
            self.pods = pods
        self._write_config()
        if not self.running:
            return
        req = urllib.request.Request(self.url + "/-/reload", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise PrometheusError(f"reload answered {resp.status}")

    # --- queries --------------------------------------------------------------------------------------
    def query(self, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Instant query; returns `data.result` (vector samples: {"metric": {...}, "value": [t, "v"]})."""
        qs = urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            raise PrometheusError(f"query failed ({e.code}): {e.read().decode(errors='replace')}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"query failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_value(self, promql: str) -> float | None:
        """The single value of an instant query, None when empty; error when it returns several series."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll an instant query until `predicate(result)` holds; returns that result.

        Tests use this instead of sleeping for a guessed number of scrape intervals.
        """
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while True:
            last = self.query(promql)
            if predicate(last):
                return last
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{promql!r} did not satisfy the condition within {timeout}s; last={last}")
            time.sleep(interval)

    def active_targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/api/v1/targets?state=active", timeout=10) as resp:
            targets: list[dict[str, Any]] = json.load(resp)["data"]["activeTargets"]
            return targets

    # --- internals ------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        config = render_config(self._targets, self.scrape_interval, self.pods)
        config["scrape_configs"].extend(self.scrape_configs)
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        tmp.replace(self.config_path)

    def _get_status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log (why it exited, what it complained about)."""
        return self._log_tail(lines)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tollgate_testkit.prometheus ADDRESS...`: run Prometheus scraping host:port targets."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("targets", nargs="*", help="host:port to scrape (job 'target-N')")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--scrape-interval", default="1s")
    args = p.parse_args(argv)
    targets = [ScrapeTarget(job=f"target-{i}", address=a) for i, a in enumerate(args.targets)]
    with Prometheus(targets, port=args.port, scrape_interval=args.scrape_interval) as prom:
        print(prom.url, flush=True)
        try:
            while prom.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
