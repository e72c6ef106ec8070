"""The world an e2e scenario runs in: a cluster with Tollgate, Prometheus and the traffic simulator.

Scenarios talk only to `World`, so the same given/when/then runs on either backend:

- `LocalWorld` (default): the local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK),
  Debian's Prometheus and the simulator as local processes, the operator as `python -m tollgate`
  child processes (tollgate_testkit.stack). Faults go straight into the simulator.
- `KindWorld` (E2E_BACKEND=kind, e2e/kind_backend.py): a kind cluster, the operator image built from the
  Dockerfile and installed with charts/tollgate, Prometheus and the simulator as Deployments; faults go
  through the simulator's ConfigMap, outages and restarts through the Deployments.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

E2E_DIALECT = "mlserver"
"""The metric dialect of e2e scenarios: the simulator speaks it, the operator's --metrics-profile reads it."""

SCRAPE_INTERVAL = "1s"


@dataclass
class Watch:
    """Weights (repeats folded) and phases seen while polling one ModelDeployment."""

    weights: list[int] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


class World(ABC):
    """Operations every backend provides; everything else is plain kubectl against its cluster."""

    kubeconfig: str
    namespace: str = ""
    """The current scenario's namespace (set by the fixture)."""
    runtime: dict[str, Any]
    """spec.runtime for model servers on this backend (KWOK fakes pods; kind runs a real server)."""

    # --- backend specific -----------------------------------------------------------------------------
    @abstractmethod
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any: ...

    @abstractmethod
    def set_fault(self, version: str, **fault: Any) -> None:
        """Every track running `version` misbehaves (error_rate, added_latency, score_shift, invalid_rate)."""

    @abstractmethod
    def clear_faults(self) -> None: ...

    @abstractmethod
    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query against the Prometheus the operator uses."""

    @abstractmethod
    def stop_prometheus(self) -> None: ...

    @abstractmethod
    def start_prometheus(self) -> None: ...

    @abstractmethod
    def kill_operator(self) -> None:
        """SIGKILL the acting operator (no cleanup, no Lease release)."""

    @abstractmethod
    def start_operator(self) -> None:
        """Bring an operator back after kill_operator."""

    @abstractmethod
    def operator_metrics(self) -> str:
        """/metrics of the acting operator."""

    # --- shared ---------------------------------------------------------------------------------------
    def apply(self, namespace: str, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "modeldeployment", name, "-n", namespace, "--type", "merge",
                     "-p", json.dumps({"spec": spec}))

    def set_version(self, namespace: str, name: str, version: str) -> None:
        self.patch_spec(namespace, name, {"model": {"version": version, "uri": f"s3://models/{name}/{version}"}})

    def annotate(self, namespace: str, name: str, key: str, value: str) -> None:
        self.kubectl("annotate", "--overwrite", "modeldeployment", name, "-n", namespace, f"{key}={value}")

    def md(self, namespace: str, name: str) -> dict[str, Any] | None:
        res = self.kubectl("get", "modeldeployment", name, "-n", namespace, "-o", "json", check=False)
        if res.returncode != 0:
            return None
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        st: dict[str, Any] = (self.md(namespace, name) or {}).get("status") or {}
        return st

    def watch(self, namespace: str, name: str, until: Sequence[str], timeout: float = 120,
              min_weight_seen: int = 0) -> Watch:
        """Poll until the phase is in `until` (after a weight >= min_weight_seen was seen, if asked)."""
        w = Watch()
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status(namespace, name)
            weight, phase = int(st.get("canaryWeight") or 0), str(st.get("phase"))
            if not w.weights or w.weights[-1] != weight:
                w.weights.append(weight)
            if not w.phases or w.phases[-1] != phase:
                w.phases.append(phase)
            if phase in until and max(w.weights) >= min_weight_seen:
                w.final = st
                return w
            time.sleep(0.1)
        raise AssertionError(f"{namespace}/{name} never reached {tuple(until)}; weights {w.weights}, phases "
                             f"{w.phases}; status {json.dumps(st, indent=1)}\n{self.diagnostics()}")

    def wait_phase(self, namespace: str, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
        return self.watch(namespace, name, phases, timeout=timeout).final

    def events(self, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name}" + (f",reason={reason}" if reason else "")
        out = self.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def evidence(self, namespace: str, st: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """The evidence record status.lastIncident names, once written. A rollback's status (lastIncident
        included) is written before its traffic actions, and the record after them (runtime/reconciler.py:
        intent first, evidence best effort), so a status just seen RolledBack may name a record not yet
        written: read on the real node at load 9, it was NotFound."""
        name = st["lastIncident"]
        wait_for(f"evidence {namespace}/{name}", lambda: self.kubectl(
            "get", "configmap", name, "-n", namespace, "-o", "name", check=False).returncode == 0,
            timeout=timeout, interval=1)
        cm = json.loads(self.kubectl("get", "configmap", name, "-n", namespace, "-o", "json").stdout)
        record: dict[str, Any] = json.loads(cm["data"]["evidence.json"])
        return record

    def requests(self, namespace: str, name: str, track: str, window: str = "3s") -> float:
        """Requests served on `track` over the last `window`, as Prometheus scraped them from the simulator."""
        series = requests_selector(E2E_DIALECT, modeldeployment_namespace=namespace, modeldeployment=name,
                                   track=track)
        result = self.query(f"sum(increase({series}[{window}]))")
        return float(result[0]["value"][1]) if result else 0.0

    def wait_traffic_only_on(self, namespace: str, name: str, track: str, timeout: float = 30) -> None:
        others = [t for t in ("stable", "canary", "fallback") if t != track]

        def only() -> bool:
            return self.requests(namespace, name, track) > 0 and all(
                self.requests(namespace, name, t) == 0 for t in others)

        wait_for(f"Prometheus: all of {name}'s traffic on {track}", only, timeout=timeout, interval=0.5)

    def diagnostics(self) -> str:
        return ""


class LocalWorld(World):
    """The local control plane with Prometheus, the simulator and operator processes (tollgate_testkit.stack)."""

    def __init__(self, stack: Stack, namespace: str) -> None:
        self.stack = stack
        self.kubeconfig = stack.kubeconfig
        self.namespace = namespace
        self.runtime = {"image": "registry.example/model-server:1.0"}
        self.operator: OperatorProcess | None = None

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        return self.stack.kubectl(*args, stdin=stdin, check=check)

    def set_fault(self, version: str, **fault: Any) -> None:
        self.stack.set_fault(version, **fault)

    def clear_faults(self) -> None:
        self.stack.clear_faults()

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.stack.prometheus.query(promql)

    def stop_prometheus(self) -> None:
        self.stack.prometheus.stop()

    def start_prometheus(self) -> None:
        self.stack.prometheus.start()

    def start_operator(self, **kwargs: Any) -> None:
        self.operator = self.stack.start_operator(namespaces=[self.namespace, f"{self.namespace}-*"], **kwargs)

    def kill_operator(self) -> None:
        assert self.operator is not None
        self.operator.kill()

    def operator_metrics(self) -> str:
        assert self.operator is not None
        return self.operator.metrics()

    def close(self) -> None:
        if self.operator is not None and self.operator.running:
            # The real delete path while the operator still runs: traffic back on stable, sandbox removed.
            self.kubectl("delete", "modeldeployments", "--all", "-n", self.namespace, "--timeout=30s", check=False)
        for op in self.stack.operators:
            op.stop()
        self.clear_faults()
        if not self.stack.prometheus.running:
            self.stack.prometheus.start()

    def diagnostics(self) -> str:
        return self.operator.log_tail() if self.operator is not None else ""

