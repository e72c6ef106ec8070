"""A real Kubernetes control plane on loopback, for tests, the demo and benchmarks.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as plain processes built
from the official Go modules by `hack/controlplane/build.sh` (cached under ~/.cache/tollgate). kwok
keeps a few fake Nodes Ready and makes scheduled pods Running and Ready, so Deployments behave as on
a real cluster without containers. RBAC is on, so permission tests are real.

Why not envtest or kind: envtest runs no controllers or scheduler (Deployments never get pods) and
cannot download binaries here; kind needs a Docker engine these machines do not have.

With `--real-node` (REAL_NODE=1 make testenv-up) one real node joins the KWOK nodes: kubelet,
containerd, kube-proxy, kube-router and CoreDNS (see node.py). The API server then listens on the
node's bridge address instead of 127.0.0.1, so pods reach it through the `kubernetes` Service.

Usage: `python -m tollgate_testkit.controlplane up --dir .testenv [--real-node]` / `down --dir .testenv`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tollgate_testkit import kwok_faults, procs

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
NEVER_READY_IMAGE = "tollgate.test/never-ready:v1"
"""Pods of this image are scheduled and run but kwok never marks them Ready (for deadline tests)."""

NODE_COUNT = 3
STARTUP_TIMEOUT = 120.0


def log(msg: str) -> None:
    print(f"controlplane: {msg}", file=sys.stderr, flush=True)


def build() -> Path:
    """Build or reuse the binaries; returns the cache directory holding bin/ and assets/.

    Also puts that bin/ first on PATH, so `kubectl` is the 1.36 client built with the server.
    """
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    cache = Path(out.stdout.strip().splitlines()[-1])
    bin_dir = str(cache / "bin")
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return cache


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class State:
    """What `up` started, recorded so `down` stops exactly those processes."""

    dir: str
    kubeconfig: str
    server: str
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    real_node: bool = False
    node_bin: str = ""

    @classmethod
    def load(cls, directory: Path) -> State | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        Path(self.dir, "state.json").write_text(json.dumps(asdict(self), indent=2))


# --- PKI ----------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(pki: Path, extra_ips: tuple[str, ...] = ()) -> None:
    """A CA, a serving cert for 127.0.0.1 and the in-cluster names, an admin client, SA keys."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "30", "-subj", "/CN=tollgate-test-ca", cwd=pki)
    (pki / "serving.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1," + "".join(f"IP:{ip}," for ip in extra_ips)
        + "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (
        ("apiserver", "/CN=kube-apiserver", "serving.ext"),
        ("admin", "/O=system:masters/CN=tollgate-admin", "client.ext"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "30", "-extfile", ext, cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tollgate-local", "cluster": {
            "server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {
            "client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "tollgate-local", "context": {"cluster": "tollgate-local", "user": "admin"}}],
        "current-context": "tollgate-local",
    }
    path.write_text(yaml.safe_dump(config))


# --- processes ------------------------------------------------------------------------------------------


def _spawn(state: State, name: str, argv: list[str], logs: Path) -> None:
    out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child, closed by exit
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    state.pids[name] = proc.pid
    state.save()


def _wait(what: str, check: Callable[[], bool], timeout: float = STARTUP_TIMEOUT, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    hint = f" (logs in {logs})" if logs else ""
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s: {last}{hint}")


def _https_ok(url: str, pki: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
        return bool(resp.status == 200)


def wait_established(kubeconfig: str | Path, names: Iterable[str], timeout: float = 60.0) -> None:
    """Wait until every CRD of `names` (`customresourcedefinition.apiextensions.k8s.io/<name>` or `crd/<name>`)
    is Established. Polls the condition rather than `kubectl wait --for=condition=Established`: kubectl 1.32's
    wait fails at once ("status.conditions accessor error: <nil>") on a CRD the API server has not given a
    status yet, which a loaded machine shows right after the apply."""
    def established(crd: str) -> bool:
        jsonpath = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
        return _kubectl(str(kubeconfig), "get", "crd", crd, "-o", jsonpath).strip() == "True"

    for name in names:
        crd = name.split("/", 1)[-1]
        _wait(f"CRD {crd} Established", functools.partial(established, crd), timeout=timeout)


def _kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=stdin, text=True,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def _kwok_stages(assets: Path, out: Path) -> list[str]:
    """kwok's stock stages, with pod-ready skipping NEVER_READY_IMAGE pods and the fault images, plus the
    stages that make those fail as a kubelet reports it (kwok_faults)."""
    paths = []
    for src in sorted((assets / "kwok-stages").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(src.read_text()) if d]
        for doc in docs:
            if doc.get("metadata", {}).get("name") == "pod-ready":
                doc["spec"]["selector"]["matchExpressions"].append(
                    {"key": ".spec.containers.[].image", "operator": "NotIn",
                     "values": [NEVER_READY_IMAGE, *kwok_faults.FAULT_IMAGES]}
                )
            if doc.get("metadata", {}).get("name") == "pod-complete":
                doc["spec"]["selector"]["matchExpressions"].append(
                    {"key": ".spec.containers.[].image", "operator": "NotIn", "values": list(kwok_faults.HOOK_IMAGES)}
                )
        dst = out / src.name
        dst.write_text(yaml.safe_dump_all(docs))
        paths.append(str(dst))
    faults = out / "tollgate-faults.yaml"
    faults.write_text(yaml.safe_dump_all(kwok_faults.fault_stages()))
    paths.append(str(faults))
    return paths


def _audit_policy(directory: Path) -> Path:
    path = directory / "audit-policy.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [
            # kwok renews a Lease per fake node every few seconds: noise for every count we make
            {"level": "None", "namespaces": ["kube-node-lease"]},
            # HTTPRoute writes with the object as stored: the canary weight each write set, at the
            # server's receive time (bench/flagger_peer.py reads Tollgate's and Flagger's from here)
            {"level": "RequestResponse", "verbs": ["create", "update", "patch"],
             "resources": [{"group": "gateway.networking.k8s.io", "resources": ["httproutes"]}]},
            {"level": "Metadata"},
        ],
    }))
    return path


def user_kubeconfig(kubeconfig: str | Path, user: str, groups: tuple[str, ...] = ("system:masters",)) -> Path:
    """A kubeconfig for another user of this control plane (a client cert signed by its CA), so the audit
    log tells two processes apart by `user.username` (two operator replicas, say)."""
    kubeconfig = Path(kubeconfig).resolve()
    pki = kubeconfig.parent / "pki"
    out = kubeconfig.parent / f"kubeconfig-{user}"
    if out.exists():
        return out
    subj = "".join(f"/O={g}" for g in groups) + f"/CN={user}"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{user}.key", "-out", f"{user}.csr",
             "-subj", subj, cwd=pki)
    _openssl("x509", "-req", "-in", f"{user}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{user}.crt", "-days", "30", "-extfile", "client.ext", cwd=pki)
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": user, "user": {"client-certificate": str(pki / f"{user}.crt"),
                                               "client-key": str(pki / f"{user}.key")}}]
    config["contexts"][0]["context"]["user"] = user
    out.write_text(yaml.safe_dump(config))
    return out


def audit_log(kubeconfig: str | Path) -> Path:
    """The audit log of the control plane whose kubeconfig this is (same directory)."""
    return Path(kubeconfig).resolve().parent / "audit.log"


def _node_manifest(i: int) -> dict[str, object]:
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "250", "nvidia.com/gpu": "8",
                "ephemeral-storage": "500Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"kwok-node-{i}", "labels": {
            "type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}", "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": f"zone-{i % 3}"},
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def up(directory: Path, real_node: bool = False, *, max_requests_inflight: int | None = None) -> State:
    """Start every component on loopback and wait until Nodes are Ready; idempotent when already up.

    real_node: also start the machine's one real node (node.py); raises node.NodeUnavailableError naming
    what the host lacks, or node.NodeBusyError when another real node holds the machine.

    `max_requests_inflight` caps the API server's concurrent non-mutating requests (and mutating ones
    to half of it, at least 1), with API Priority and Fairness off so the cap is what throttles: the
    server then answers 429 with Retry-After, as a busy production API server does.
    """
    directory = directory.resolve()
    existing = State.load(directory)
    if existing and all(_alive(p) for p in existing.pids.values()) and existing.real_node == real_node:
        log(f"already running: {existing.kubeconfig}")
        return existing
    if existing:
        down(directory)
    if not real_node:
        return _up(directory, None, max_requests_inflight)
    from tollgate_testkit import node

    node_bin = node.build()
    node.preflight(node_bin)
    node.claim(directory)
    try:
        node.prepare_network()
        return _up(directory, node_bin, max_requests_inflight)
    except BaseException:
        down(directory)
        node.release()
        raise


def _up(directory: Path, node_bin: Path | None, max_requests_inflight: int | None = None) -> State:
    from tollgate_testkit import node

    cache = build()
    bin_dir, assets = cache / "bin", cache / "assets"
    directory.mkdir(parents=True, exist_ok=True)
    pki, logs, data = directory / "pki", directory / "logs", directory / "data"
    for d in (logs, data):
        d.mkdir(parents=True, exist_ok=True)
    make_pki(pki, (node.GATEWAY,) if node_bin else ())
    ports = {k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "kcm", "scheduler", "kwok")}
    host = node.GATEWAY if node_bin else "127.0.0.1"
    server = f"https://{host}:{ports['apiserver']}"
    kubeconfig = directory / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki)
    state = State(dir=str(directory), kubeconfig=str(kubeconfig), server=server, ports=ports,
                  real_node=node_bin is not None, node_bin=str(node_bin or ""))
    state.save()
    t0 = time.monotonic()

    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    etcd_data = Path("/dev/shm") if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else data
    for stale in stale_etcd_dirs(etcd_data, _joined_cmdlines()):
        shutil.rmtree(stale, ignore_errors=True)
        log(f"removed {stale}: etcd data of an earlier run that ended without `down`")
    etcd_dir = etcd_data / f"tollgate-etcd-{ports['etcd']}"
    (directory / "etcd-data-dir").write_text(str(etcd_dir))
    _spawn(state, "etcd", [
        str(bin_dir / "etcd"), "--name=default", f"--data-dir={etcd_dir}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        "--quota-backend-bytes=4294967296",
    ], logs)
    _wait("etcd", lambda: urllib.request.urlopen(f"{etcd_url}/health", timeout=2).status == 200, logs=logs)

    _spawn(state, "kube-apiserver", [
        str(bin_dir / "kube-apiserver"), f"--etcd-servers={etcd_url}",
        *(node.apiserver_flags(pki) if node_bin else [
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]),
        f"--secure-port={ports['apiserver']}",
        f"--cert-dir={pki}", f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}", f"--client-ca-file={pki / 'ca.crt'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/16", "--authorization-mode=Node,RBAC",
        "--allow-privileged=true", "--profiling=false",
        "--watch-cache=true", "--v=1",
        *([f"--max-requests-inflight={max_requests_inflight}",
           f"--max-mutating-requests-inflight={max(1, max_requests_inflight // 2)}",
           "--enable-priority-and-fairness=false"] if max_requests_inflight else []),
        # no node-lifecycle controller runs, so nothing would lift the not-ready taint this plugin adds
        "--disable-admission-plugins=TaintNodesByCondition",
        # Every request, with its user agent, verb and resource: tests and benchmarks count the
        # operator's requests from the server's own record, not from the operator's word.
        f"--audit-policy-file={_audit_policy(directory)}", f"--audit-log-path={directory / 'audit.log'}",
        "--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s",
        "--audit-log-batch-max-size=500", "--audit-log-maxsize=1024",
    ], logs)
    _wait("kube-apiserver", lambda: _https_ok(f"{server}/readyz", pki), logs=logs)

    kc = str(kubeconfig)
    _spawn(state, "kube-controller-manager", [
        str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kc}", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={ports['kcm']}",
        "--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,"
        "namespace-controller,serviceaccount-controller,serviceaccount-token-controller,"
        "endpointslice-controller,resourcequota-controller,root-ca-certificate-publisher-controller,"
        "job-controller,horizontal-pod-autoscaler-controller",
        # spec.autoscaling's HPAs: no metrics server runs here, so the HPA controller computes no metric,
        # but it still holds the target within [minReplicas, maxReplicas] before it asks for any
        # (pkg/controller/podautoscaler/horizontal.go, reconcileAutoscaler): the tests scale by minReplicas.
        "--horizontal-pod-autoscaler-sync-period=3s",
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--kube-api-qps=200", "--kube-api-burst=400", "--v=1",
    ], logs)
    _spawn(state, "kube-scheduler", [
        str(bin_dir / "kube-scheduler"), f"--kubeconfig={kc}", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}", "--v=1",
        "--kube-api-qps=200", "--kube-api-burst=400",
    ], logs)
    stages = _kwok_stages(assets, directory)
    _spawn(state, "kwok", [
        # fake nodes by annotation: with --manage-all-nodes kwok would take over a real node and fake
        # its pods' status
        str(bin_dir / "kwok"), f"--kubeconfig={kc}", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.1.0.0/16",
        "--node-ip=127.0.0.1", f"--server-address=127.0.0.1:{ports['kwok']}",
        *[f"--config={p}" for p in stages],
    ], logs)

    nodes = "\n---\n".join(yaml.safe_dump(_node_manifest(i)) for i in range(NODE_COUNT))
    _kubectl(kc, "apply", "-f", "-", stdin=nodes)
    gw = sorted(p for p in (assets / "gateway-api").glob("*.yaml") if "vap_" not in p.name)
    for path in gw:
        _kubectl(kc, "apply", "--server-side", "-f", str(path))
    _wait("nodes Ready", lambda: _all_nodes_ready(kc), logs=logs)
    _wait("default ServiceAccount", lambda: bool(_kubectl(kc, "get", "sa", "default", "-n", "default",
                                                           "-o", "name")), logs=logs)
    if node_bin is not None:
        held = node.NodeState.load()
        assert held is not None, "the real node's record disappeared while starting"
        node.start(held, directory, pki, server, kc, node_bin)
    log(f"up in {time.monotonic() - t0:.1f}s: export KUBECONFIG={kubeconfig}")
    return state


def _all_nodes_ready(kubeconfig: str) -> bool:
    out = json.loads(_kubectl(kubeconfig, "get", "nodes", "-o", "json"))
    ready = [
        n for n in out["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    return len(ready) >= NODE_COUNT


_alive = procs.alive


def _joined_cmdlines() -> list[str]:
    return [c.replace(b"\0", b" ").decode(errors="replace").strip() for c in procs.cmdlines().values()]


def stale_etcd_dirs(root: Path, cmdlines: Iterable[str]) -> list[Path]:
    """etcd data directories under `root` (memory, in /dev/shm) that no running etcd uses: left by a run
    killed before `down` (etcd creates its directory when it starts, so a directory without a process
    is not one being set up). Each holds tens of megabytes of RAM until the machine reboots."""
    used = " ".join(cmdlines)
    return sorted(d for d in root.glob("tollgate-etcd-*")
                  if d.is_dir() and f"--data-dir={d} " not in used + " ")


def down(directory: Path) -> None:
    """Stop every process `up` recorded (by PID, whole process group) and remove the data."""
    directory = directory.resolve()
    state = State.load(directory)
    if state is None:
        log(f"nothing recorded in {directory}")
        return
    node_record = None
    if state.real_node:
        from tollgate_testkit import node

        held = node.NodeState.load()
        if held is not None and held.dir == str(directory):
            api_up = "kube-apiserver" in state.pids and _alive(state.pids["kube-apiserver"])
            node_record = node.stop(state.kubeconfig if api_up else None,
                                    Path(state.node_bin) if state.node_bin else None)
    # reverse start order: clients first, etcd last
    for name, pid in reversed(list(state.pids.items())):
        procs.stop_group(pid, grace=10)
        log(f"stopped {name} ({pid})")
    marker = directory / "etcd-data-dir"
    if marker.exists():
        subprocess.run(["rm", "-rf", marker.read_text().strip()], check=False)
    if node_record is not None:
        from tollgate_testkit import node

        left = node.release()
        if left:
            log("the host differs from before the real node: " + "; ".join(left))
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@contextlib.contextmanager
def running(directory: Path, real_node: bool = False, *,
            max_requests_inflight: int | None = None) -> Iterator[State]:
    """Start for the duration of a with-block (tests, demo, benchmarks)."""
    state = up(directory, real_node=real_node, max_requests_inflight=max_requests_inflight)
    try:
        yield state
    finally:
        down(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate_testkit.controlplane", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "build"])
    parser.add_argument("--dir", default=".testenv", type=Path, help="state directory (default .testenv)")
    parser.add_argument("--real-node", action="store_true", default=os.environ.get("REAL_NODE") == "1",
                        help="add the machine's one real node (default: REAL_NODE=1)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build())
    elif args.command == "up":
        from tollgate_testkit.node import NodeBusyError, NodeUnavailableError

        try:
            state = up(args.dir, real_node=args.real_node)
        except (NodeBusyError, NodeUnavailableError) as exc:
            print(f"testenv-up: {exc}", file=sys.stderr)
            return 2
        print(f"Control plane up. Point kubectl at it:\n  export KUBECONFIG={state.kubeconfig}\n"
              f"  kubectl get nodes\nStop it with: make testenv-down")
    else:
        down(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
