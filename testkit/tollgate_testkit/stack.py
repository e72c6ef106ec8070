"""The whole system on one machine: control plane, CRDs, Prometheus, traffic simulator, operator.

Integration tests, e2e scenarios, the demo and the benchmarks all run Tollgate the same way through
this module, so what they prove is the real wiring: the operator is a separate process
(`python -m tollgate`), Prometheus is Debian's binary discovering the model pods from the API server
with the scrape configuration Tollgate ships (deploy/prometheus/scrape-config.yaml), and the simulator
serves each pod's metrics in a real source's dialect, following the split the operator sets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tollgate_testkit import controlplane
from tollgate_testkit.prometheus import PodDiscovery, Prometheus, PrometheusError, Redirect, ScrapeTarget
from tollgate_testkit.simulator import Fault, KubeSplits, Simulator, StaticFaults

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


def kubectl(kubeconfig: str | Path, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, text=True,
                         capture_output=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res


def install_crds(kubeconfig: str | Path) -> None:
    for f in sorted(CRD_DIR.glob("*.yaml")):
        out = kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(f), "-o", "name")
        controlplane.wait_established(kubeconfig, out.stdout.split())


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; raise with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    return controlplane.free_port()


@dataclass
class OperatorProcess:
    """`python -m tollgate` as a child process, with the flags a test chooses."""

    kubeconfig: str
    prometheus_url: str | None = None
    metrics_profile: str | None = None
    namespaces: Sequence[str] = ()
    leader_election: bool = False
    lease_namespace: str = "default"
    extra_args: Sequence[str] = ()
    confirm_rollout_allow: Sequence[str] = ("127.0.0.1/32",)
    """--confirm-rollout-allow: the tests' confirmRollout endpoints listen on loopback, which the operator
    refuses by default (adapters.destinations); empty: the operator's default policy."""
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="tollgate-op-", suffix=".log")[1]))
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "tollgate", "--metrics-port", str(self.metrics_port),
                "--health-port", str(self.health_port), "--log-format", "json"]
        if self.prometheus_url:
            args += ["--prometheus-url", self.prometheus_url]
        if self.metrics_profile:
            args += ["--metrics-profile", self.metrics_profile]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        if self.confirm_rollout_allow:
            args += ["--confirm-rollout-allow", ",".join(self.confirm_rollout_allow)]
        if self.leader_election:
            args += ["--lease-namespace", self.lease_namespace]
        else:
            args += ["--no-leader-election"]
        return [*args, *self.extra_args]

    def start(self, wait: bool = True) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig,
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT / "testkit"),
                                              os.environ.get("PYTHONPATH", "")]),
               **self.env}
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        if wait:
            try:
                wait_for("operator health endpoint", self.healthy, timeout=30)
            except BaseException:
                self.stop()  # nobody else holds this process yet: never leave it running
                raise
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"operator exited ({self.proc and self.proc.returncode}); log:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self, *names: str) -> str:
        """The operator's /metrics; with `names`, only those metrics (prometheus_client's `name[]` filter),
        which a poll at scale needs: the whole page holds ~10 series per ModelDeployment."""
        query = "?" + "&".join(f"name[]={n}" for n in names) if names else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics{query}", timeout=2) as r:
            text: str = r.read().decode()
            return text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """A running control plane with Prometheus, the simulator and (optionally) the operator."""

    kubeconfig: str
    prometheus: Prometheus
    simulator: Simulator
    faults: StaticFaults
    scrape_interval: float
    operator: OperatorProcess | None = None
    _api: client.ApiClient | None = None
    operators: list[OperatorProcess] = field(default_factory=list)

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        return self._api

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def set_fault(self, version: str, **fault: Any) -> None:
        """Inject a fault for every track running `version` (error_rate, added_latency, score_shift, ...)."""
        self.faults.current[version] = Fault(**fault)

    def clear_faults(self) -> None:
        self.faults.current.clear()

    def start_operator(self, **kwargs: Any) -> OperatorProcess:
        """Start an operator process; Prometheus scrapes its /metrics as job "tollgate-operator".

        A Prometheus that died since the stack started fails here, with its log, rather than as
        connection errors in the operator's analyses (reload() of a stopped server only writes its config)."""
        if not self.prometheus.running:
            raise PrometheusError(f"the stack's Prometheus is not running:\n{self.prometheus.log_tail()}")
        kwargs.setdefault("metrics_profile", self.simulator.dialect)
        op = OperatorProcess(self.kubeconfig, prometheus_url=self.prometheus.url, **kwargs)
        op.start()
        self.operators.append(op)
        self.prometheus.reload(self.operator_targets())
        return op

    def operator_targets(self) -> list[ScrapeTarget]:
        """The static scrape targets: the running operators' /metrics (model pods are discovered); the
        stopped ones of earlier tests are dropped, not scraped for the rest of the session."""
        self.operators = [o for o in self.operators if o.running or o.proc is None]
        return [ScrapeTarget("tollgate-operator", f"127.0.0.1:{o.metrics_port}") for o in self.operators]

    def md(self, namespace: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            self.kubectl("get", "modeldeployment", name, "-n", namespace, "-o", "json").stdout)
        return out


def simulator_discovery(kubeconfig: str, simulator: Simulator) -> PodDiscovery:
    """The shipped pod discovery, each pod's scrape redirected to the simulator's page for that pod."""
    return PodDiscovery(kubeconfig, redirects=(
        Redirect(simulator.address, path=Simulator.metrics_path("$1", "$2")),))


@contextlib.contextmanager
def running_stack(*, kubeconfig: str | None = None, scrape_interval: float = 1.0, rate: float = 100.0,
                  with_operator: bool = True, operator_args: Sequence[str] = (),
                  profile: str = "mlserver") -> Iterator[Stack]:
    """Start (or reuse, when `kubeconfig` is given) everything; stop what was started on exit.

    `profile`: the dialect the simulator speaks and the operator's --metrics-profile."""
    with contextlib.ExitStack() as stack:
        if kubeconfig is None:
            directory = Path(tempfile.mkdtemp(prefix="tollgate-stack-"))
            state = stack.enter_context(controlplane.running(directory))
            kubeconfig = state.kubeconfig
        else:
            controlplane.build()  # the matching kubectl on PATH
        install_crds(kubeconfig)
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        faults = StaticFaults()
        # warm-up: a new series is scraped at zero before it serves (exact rates from its first window)
        sim = Simulator(KubeSplits(api, resync=0.5), faults, rate=rate, port=0, warmup=1.5 * scrape_interval,
                        dialect=profile)
        sim.start()
        stack.callback(sim.stop)
        prom = Prometheus([], scrape_interval=f"{scrape_interval:g}s",
                          pods=simulator_discovery(kubeconfig, sim))
        prom.start()
        stack.callback(prom.close)
        s = Stack(kubeconfig=kubeconfig, prometheus=prom, simulator=sim, faults=faults,
                  scrape_interval=scrape_interval)
        if with_operator:
            s.operator = s.start_operator(extra_args=operator_args)
            stack.callback(s.operator.stop)
        yield s
