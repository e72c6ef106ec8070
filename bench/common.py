"""Shared pieces of the benchmarks: sizes, manifests, clients, audit-log helpers, result files.

Everything runs on loopback (127.0.0.1) against the local control plane of tollgate_testkit.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config

from tollgate_testkit import audit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or BENCH_DIR / "results")
"""BENCH_RESULTS=DIR writes elsewhere (development and traced runs, which must not replace the figures)."""
REPO = BENCH_DIR.parent


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is. `full` is what `make bench` runs; `quick` is for developing."""

    name: str
    rollback_runs: int
    rollback_lanes: int
    canaries: int
    bulk: int
    bulk_first: int
    idle_window: float
    prom_window: float
    scrape_interval: float = 1.0
    analysis_interval: float = 1.0
    never_ready_runs: int = 3
    never_ready_deadline: float = 10.0
    peer_runs: int = 20
    """flagger_peer: fault runs per side (median and p95 of apply -> canary weight 0)."""
    peer_healthy: int = 5
    """flagger_peer: healthy objects per side and traffic level (false rollbacks at thin and heavy traffic)."""
    peer_idle_window: float = 120.0


FULL = Sizes("full", rollback_runs=20, rollback_lanes=4, canaries=50, bulk=1000, bulk_first=100,
             idle_window=120.0, prom_window=30.0)
QUICK = Sizes("quick", rollback_runs=5, rollback_lanes=2, canaries=10, bulk=20, bulk_first=5,
              idle_window=30.0, prom_window=10.0, never_ready_runs=2, peer_runs=2, peer_healthy=1,
              peer_idle_window=30.0)


def scaled(base: Sizes, scale: float) -> Sizes:
    """BENCH_SCALE=0.1 shrinks the counts of `full` (at least the quick sizes)."""
    from dataclasses import replace

    def s(full: int, low: int) -> int:
        return max(low, round(full * scale))

    return replace(base, name=f"scale-{scale:g}", rollback_runs=s(base.rollback_runs, QUICK.rollback_runs),
                   canaries=s(base.canaries, QUICK.canaries), bulk=s(base.bulk, QUICK.bulk),
                   bulk_first=s(base.bulk_first, QUICK.bulk_first))


# --- machine facts -----------------------------------------------------------------------------------
def _version(*argv: str) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import kopf
    import kubernetes

    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "loadavg_at_start": [round(x, 2) for x in load],
        "python": sys.version.split()[0], "platform": platform.platform(),
        "kopf": kopf.__version__ if hasattr(kopf, "__version__") else _pkg_version("kopf"),
        "kubernetes_client": kubernetes.__version__,
        "kubectl": _version("kubectl", "version", "--client"),
        "prometheus": _version("prometheus", "--version"),
        "git_commit": _version("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
    }


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return "unknown"


@dataclass
class Result:
    """One benchmark's result file: figures, targets, parameters and the machine it ran on."""

    name: str
    sizes: str
    params: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    met: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_s: float = 0.0

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=False) + "\n")
        print(f"[bench] wrote {path}: {json.dumps(self.figures)}", flush=True)
        return path


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): p95 of 20 runs is the 19th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    import math

    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "min": round(min(values), 3) if values else float("nan"),
            "max": round(max(values), 3) if values else float("nan"),
            "mean": round(statistics.fmean(values), 3) if values else float("nan")}


# --- clients and manifests ---------------------------------------------------------------------------
def api_client(kubeconfig: str, pool: int = 16) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool
    api = client.ApiClient(cfg)
    api.user_agent = "tollgate-bench/1"
    return api


def md_manifest(name: str, version: str, *, replicas: int = 1, interval: float = 1.0, steps: Any = None,
                deadline: str = "30s", image: str = "registry.example/model-server:1.0",
                window: str = "5s") -> dict[str, Any]:
    return {
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"s3://models/{name}/{version}"},
            "runtime": {"image": image},
            "replicas": replicas,
            "rollout": {
                "steps": steps or [{"weight": 50, "pause": "1h"}, {"weight": 100}],
                "analysis": {"interval": f"{interval:g}s", "window": window, "minSamples": 10,
                             "failureLimit": 0, "consecutiveErrorLimit": 3},
                "progressDeadline": deadline,
            },
            "slos": [{"name": "error-rate", "max": 0.05, "onNoData": "hold", "maxNoDataDuration": "60s"}],
        },
    }


def create_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": name}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def apply_md(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    """Server-side apply of a ModelDeployment, as `kubectl apply --server-side` would."""
    name = manifest["metadata"]["name"]
    ssa(api, f"/apis/tollgate.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}",
        {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}, manager="bench-user")


ATTEMPTS = 8
"""Tries of one server-side apply (`ssa`) that times out: on the shared 2-core machine, with a CI run at
normal priority, the benchmark's control plane at nice 19 answered some applies after more than 30 s."""


def ssa(api: client.ApiClient, path: str, body: dict[str, Any], manager: str) -> None:
    method, url, headers, body_, post = api.param_serialize(
        method="PATCH", resource_path=path,
        query_params=[("fieldManager", manager), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=json.dumps(body), auth_settings=["BearerToken"])
    for attempt in range(ATTEMPTS):  # an apply is idempotent: a loaded shared machine can time one out
        try:
            resp = api.call_api(method, url, headers, body_, post, _request_timeout=30)
            break
        except urllib3.exceptions.TimeoutError:
            if attempt == ATTEMPTS - 1:
                raise
            log(f"apply of {path} timed out; again")
    resp.read()  # type: ignore[no-untyped-call]
    if not 200 <= resp.status < 300:
        raise client.ApiException(http_resp=resp)


def parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 16) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def table_column(api: client.ApiClient, path: str, column: str, label_selector: str | None = None) -> list[str]:
    """One printer column of every object at `path`, as the server renders `kubectl get` (a Table: a few
    bytes a row). Counting Ready by LISTing whole objects cost the API server and the bench more than
    the operator under test at 10,000 ModelDeployments (~40 MB of JSON a second)."""
    query = [("includeObject", "None")] + ([("labelSelector", label_selector)] if label_selector else [])
    method, url, headers, body_, post = api.param_serialize(
        method="GET", resource_path=path, query_params=query, header_params={"Accept": TABLE},
        auth_settings=["BearerToken"])
    resp = api.call_api(method, url, headers, body_, post, _request_timeout=60)
    data = json.loads(resp.read())  # type: ignore[no-untyped-call]
    if not 200 <= resp.status < 300:
        raise client.ApiException(http_resp=resp)
    names = [c["name"] for c in data.get("columnDefinitions", [])]
    at = names.index(column)
    return [str(row["cells"][at]) for row in data.get("rows", [])]


# --- time and the audit log ----------------------------------------------------------------------------
def parse_ts(text: str) -> float:
    """An audit-log RFC 3339 timestamp as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def marker(at: float | None = None) -> str:
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operator_requests(kubeconfig: str, since: float, until: float | None = None) -> list[audit.Request]:
    from tollgate_testkit.controlplane import audit_log

    reqs = audit.by_operator(audit.read(audit_log(kubeconfig), since=marker(since)))
    if until is not None:
        end = marker(until)
        reqs = [r for r in reqs if r.at <= end]
    return reqs


def flush_audit() -> None:
    """The API server writes its audit log in batches of at most one second."""
    time.sleep(2.5)


def cpu_s(pid: int) -> float:
    """The process's user and system CPU seconds so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_command(named: dict[int, str] | None = None) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by command name (/proc/*/stat), with the
    pids in `named` (the bench itself, the operator) under their own names. Differences of two readings
    say where a phase's CPU went: the API server, etcd, the controllers, KWOK, the client, the operator.
    A process that exits between two readings takes its seconds with it (its group's delta shrinks, even
    below zero); the bench's long-lived processes do not, short-lived ones (kubectl) are small."""
    named = {os.getpid(): "bench client", **(named or {})}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
        except OSError:  # gone since the listing
            continue
        comm, _, rest = raw.partition("(")[2].rpartition(")")
        fields = rest.split()
        key = named.get(int(entry), comm)
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float], least: float = 0.5) -> dict[str, float]:
    """Per command, the CPU seconds between two cpu_by_command readings, busiest first; those under `least`
    left out (a negative one, a group whose process exited meanwhile, too)."""
    spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: round(v, 1) for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= least}


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
