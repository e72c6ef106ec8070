"""One real node beside the local control plane: real containers, real Services, real NetworkPolicy.

`REAL_NODE=1 make testenv-up` (controlplane.up(..., real_node=True)) adds it next to the KWOK nodes:

- containerd v2 (CRI) with runc and the bridge/host-local CNI plugins from Debian, pods on
  POD_CIDR behind the bridge BRIDGE; the pod sandbox (pause) and CoreDNS images are single static
  binaries written as OCI archives (ociimage.py) and imported, so no registry is needed;
- kubelet (cgroup v1, cgroupfs) registered as NODE_NAME with the NoSchedule taint TAINT_KEY, so
  workloads meant for KWOK nodes never land on it; real workloads opt in: pods created in
  namespaces labelled `tollgate.dev/real-node=true` or managed by Tollgate get the toleration and
  node selector from a MutatingAdmissionPolicy (Tollgate's own pod templates carry neither);
- kube-proxy (iptables), kube-router in firewall-only mode as the NetworkPolicy agent, and CoreDNS
  as a pod in kube-system behind the kube-dns Service (DNS_IP);
- the API server listens on the bridge address and publishes itself as the `kubernetes` Service, so
  pods reach it with in-cluster config.

The host is shared state: one real node per machine, taken with a lock (NodeBusyError names the holder);
the host is snapshotted before anything changes and restored by `stop` (hoststate.py). Where the host
cannot run a node, NodeUnavailableError names what is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tollgate_testkit import hoststate, ociimage, procs

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "node" / "build.sh"
NODE_NAME = "tollgate-real-node"
BRIDGE = "tollgate0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.0.0.0/16"
DNS_IP = "10.0.0.10"
TAINT_KEY = "tollgate.dev/real-node"
NODE_LABEL = "tollgate.dev/real-node"
STATE_ROOT = Path("/run/tollgate-node")
DATA_ROOT = Path("/var/lib/tollgate-node")
LOCK_FILE = Path("/run/tollgate-node.lock")
OWNER_FILE = Path("/run/tollgate-node.owner.json")
CONTAINERD_SOCK = STATE_ROOT / "containerd" / "containerd.sock"
RUNC_ROOT = STATE_ROOT / "runc"
PAUSE_IMAGE = "tollgate.local/pause:v1"
COREDNS_IMAGE = "tollgate.local/coredns:v1"
CNI_BIN = Path("/usr/lib/cni")
DEBIAN_PACKAGES = {
    "runc": "runc", "iptables": "iptables", "ip6tables": "iptables", "iptables-save": "iptables",
    "ipset": "ipset", "conntrack": "conntrack", "ip": "iproute2", "mount": "mount",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
STARTUP_TIMEOUT = 180.0


class NodeUnavailableError(RuntimeError):
    """The host cannot run a real node; the message names what is missing and how to get it."""


class NodeBusyError(RuntimeError):
    """Another real node holds this machine."""


def log(msg: str) -> None:
    print(f"node: {msg}", file=sys.stderr, flush=True)


def build() -> Path:
    """Build or reuse kubelet, kube-proxy, containerd, kube-router, CoreDNS, pause; returns bin/."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "bin"


# --- preflight ----------------------------------------------------------------------------------------


def missing(bin_dir: Path | None = None) -> list[str]:
    """What this host lacks to run a real node, one line each, with the fix."""
    out: list[str] = []
    if os.geteuid() != 0:
        out.append("root: the kubelet, containerd and the CNI plugins need root (run as root)")
    for cmd, pkg in DEBIAN_PACKAGES.items():
        if not shutil.which(cmd):
            out.append(f"command {cmd}: apt-get install {pkg}")
    for plugin in CNI_PLUGINS:
        if not (CNI_BIN / plugin).exists():
            out.append(f"CNI plugin {CNI_BIN / plugin}: apt-get install containernetworking-plugins")
            break
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        out.append("kernel: br_netfilter (net.bridge.bridge-nf-call-iptables), needed for NetworkPolicy "
                   "between pods on the bridge: load the module or use a kernel with it")
    if "overlay" not in Path("/proc/filesystems").read_text():
        out.append("kernel: overlay filesystem (containerd's overlayfs snapshotter)")
    ipset_ok = shutil.which("ipset") and subprocess.run(["ipset", "list", "-n"], capture_output=True,
                                                          check=False).returncode == 0
    if shutil.which("ipset") and not ipset_ok:
        out.append("kernel: ip_set (ipset list failed), needed by kube-router for NetworkPolicy")
    for ctrl in ("cpu", "memory", "pids"):
        if not Path(f"/sys/fs/cgroup/{ctrl}").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
            out.append(f"cgroup controller {ctrl} is not mounted under /sys/fs/cgroup")
    if bin_dir is not None:
        for b in ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "kube-router",
                  "coredns", "pause"):
            if not (bin_dir / b).exists():
                out.append(f"binary {bin_dir / b}: run bash hack/node/build.sh")
    return out


def preflight(bin_dir: Path | None = None) -> None:
    lacking = missing(bin_dir)
    if lacking:
        raise NodeUnavailableError("this host cannot run a real node; missing:\n  - " + "\n  - ".join(lacking))


# --- the machine-wide lock ----------------------------------------------------------------------------


@dataclass
class NodeState:
    """What `start` launched (by PID) and the host as it was before anything changed."""

    dir: str
    claimer: int = 0
    """PID of the process that took the node (alive while it starts the control plane)."""
    pids: dict[str, int] = field(default_factory=dict)
    before: str = ""
    """hoststate.HostState as JSON."""

    @classmethod
    def load(cls) -> NodeState | None:
        if not OWNER_FILE.exists():
            return None
        return cls(**json.loads(OWNER_FILE.read_text()))

    def save(self) -> None:
        OWNER_FILE.write_text(json.dumps(asdict(self), indent=1))


@contextlib.contextmanager
def _locked() -> Any:
    with LOCK_FILE.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_alive = procs.alive


def claim(directory: Path) -> NodeState:
    """Take the machine's real node for `directory`, after cleaning up after a dead holder.

    The record (OWNER_FILE) outlives the `up` process, since the node keeps running after it; a record
    whose processes are all gone is stale and its leftovers are removed first.
    """
    with _locked():
        held = NodeState.load()
        if held is not None:
            live = {n: p for n, p in held.pids.items() if _alive(p)}
            if held.claimer and held.claimer != os.getpid() and _alive(held.claimer):
                live["claimer"] = held.claimer
            if live:
                raise NodeBusyError(
                    f"a real node already runs on this machine, started from {held.dir} (processes "
                    f"{', '.join(f'{n}={p}' for n, p in live.items()) or 'starting'}); stop it there with "
                    f"`make testenv-down`, or stop its processes; the record is {OWNER_FILE}")
            log(f"removing what a stopped real node (from {held.dir}) left behind")
            _teardown(held)
        state = NodeState(dir=str(directory), claimer=os.getpid(), before=hoststate.snapshot().to_json())
        state.save()
        return state


# --- configuration ------------------------------------------------------------------------------------


def apiserver_flags(pki: Path) -> list[str]:
    """Flags that make the API server reachable from pods and let it reach the kubelet."""
    return [
        f"--bind-address={GATEWAY}", f"--advertise-address={GATEWAY}", "--endpoint-reconciler-type=lease",
        f"--kubelet-client-certificate={pki / 'admin.crt'}", f"--kubelet-client-key={pki / 'admin.key'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
    ]


def prepare_network() -> None:
    """The bridge with the gateway address, before the API server binds to it (CNI reuses it)."""
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode != 0:
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    addrs = subprocess.run(["ip", "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True,
                           check=False).stdout
    if f"{GATEWAY}/" not in addrs:
        subprocess.run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"):
        Path("/proc/sys", key).write_text("1\n")


def _client_cert(pki: Path, name: str, subject: str) -> None:
    from tollgate_testkit.controlplane import _openssl

    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=pki)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "30", "-extfile", "client.ext", cwd=pki)


def _kubeconfig(path: Path, server: str, pki: Path, user: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(pki / f"{user}.crt"),
                                          "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }))
    return path


def containerd_config(conf_dir: Path) -> str:
    return f"""version = 3
root = "{DATA_ROOT / 'containerd'}"
state = "{STATE_ROOT / 'containerd'}"
[grpc]
  address = "{CONTAINERD_SOCK}"
[ttrpc]
  address = "{STATE_ROOT / 'containerd' / 'containerd.sock.ttrpc'}"
[plugins.'io.containerd.internal.v1.opt']
  path = "{DATA_ROOT / 'opt'}"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE: writing a lower oom_score_adj fails every sandbox without this
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{conf_dir}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{shutil.which('runc') or '/usr/sbin/runc'}"
        Root = "{RUNC_ROOT}"
        SystemdCgroup = false
"""


def cni_config() -> dict[str, Any]:
    # No ipMasq: pods have no way off this machine; they reach each other, Services and the API server.
    return {"cniVersion": "1.0.0", "name": "tollgate", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(DATA_ROOT / "cni" / "ipam")}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}


def kubelet_config(pki: Path, healthz_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": GATEWAY, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1", "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        # only clients with a certificate from the test CA get here (the API server, the tests)
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        # kubelet 1.35+ refuses cgroup v1 unless told; these machines have v1 only
        "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "clusterDNS": [DNS_IP], "clusterDomain": "cluster.local", "resolvConf": "/etc/resolv.conf",
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 99, "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False, "maxPods": 60, "podPidsLimit": -1,
        "shutdownGracePeriod": "0s", "nodeStatusUpdateFrequency": "5s",
    }


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables", "hostnameOverride": NODE_NAME, "clusterCIDR": POD_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}", "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{GATEWAY}/32"],
        # 0 = leave the host's conntrack limits and timeouts alone; no route_localnet
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "1s", "syncPeriod": "30s"},
    }


def cluster_manifests() -> list[dict[str, Any]]:
    """CoreDNS (its RBAC, Corefile, Deployment, kube-dns Service) and the real-node admission policy."""
    sel = {"k8s-app": "kube-dns"}
    corefile = (".:53 {\n    errors\n    health :8080\n    ready :8181\n"
                "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n"
                "        fallthrough in-addr.arpa ip6.arpa\n    }\n    cache 30\n}\n")
    toleration = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    patch = (
        f"(object.spec.?tolerations.orValue([]).exists(t, t.?key.orValue('') == '{TAINT_KEY}') ? [] : "
        f"(has(object.spec.tolerations) ? [JSONPatch{{op: 'add', path: '/spec/tolerations/-', value: "
        f"Object.spec.tolerations{{key: '{TAINT_KEY}', operator: 'Exists', effect: 'NoSchedule'}}}}] : "
        f"[JSONPatch{{op: 'add', path: '/spec/tolerations', value: [Object.spec.tolerations{{key: "
        f"'{TAINT_KEY}', operator: 'Exists', effect: 'NoSchedule'}}]}}])) + "
        f"(has(object.spec.nodeSelector) ? [JSONPatch{{op: 'add', path: '/spec/nodeSelector/' + "
        f"jsonpatch.escapeKey('{NODE_LABEL}'), value: 'true'}}] : [JSONPatch{{op: 'add', path: "
        f"'/spec/nodeSelector', value: {{'{NODE_LABEL}': 'true'}}}}])"
    )
    policy = "tollgate-real-node"
    bindings = [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
         "metadata": {"name": f"{policy}-{suffix}"},
         "spec": {"policyName": policy, "matchResources": {"namespaceSelector": {"matchLabels": labels}}}}
        for suffix, labels in (("opt-in", {NODE_LABEL: "true"}),
                               ("tollgate-sandboxes", {"app.kubernetes.io/managed-by": "tollgate"}))
    ]
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
         "metadata": {"name": policy},
         "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods"]}]},
                  "failurePolicy": "Fail", "reinvocationPolicy": "Never",
                  "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": patch}}]}},
        *bindings,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
         "data": {"Corefile": corefile}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": sel},
         "spec": {"replicas": 1, "selector": {"matchLabels": sel}, "template": {
             "metadata": {"labels": sel},
             "spec": {
                 "serviceAccountName": "coredns", "dnsPolicy": "Default", "tolerations": [toleration],
                 "nodeSelector": {NODE_LABEL: "true"},
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                     "seccompProfile": {"type": "RuntimeDefault"},
                                     # port 53 without root or capabilities (a namespaced, safe sysctl)
                                     "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}]},
                 "containers": [{
                     "name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "Never",
                     "args": ["-conf", "/etc/coredns/Corefile"],
                     "ports": [{"containerPort": 53, "protocol": "UDP", "name": "dns"},
                               {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}],
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                     "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                     "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}},
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                 }],
                 "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
             }}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": sel},
         "spec": {"selector": sel, "clusterIP": DNS_IP, "ports": [
             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}},
    ]


# --- processes ----------------------------------------------------------------------------------------


def _spawn(state: NodeState, name: str, argv: list[str], logs: Path, env: dict[str, str] | None = None) -> None:
    out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child, closed by exit
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **(env or {})})
    state.pids[name] = proc.pid
    state.save()


def _wait(what: str, check: Callable[[], bool], logs: Path, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"real node: {what} not ready in {timeout:.0f}s: {last} (logs in {logs})")


def ctr(bin_dir: Path, *args: str, check: bool = True) -> str:
    res = subprocess.run([str(bin_dir / "ctr"), "--address", str(CONTAINERD_SOCK), "-n", "k8s.io", *args],
                         capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def import_images(bin_dir: Path, archives: list[Path]) -> None:
    """Load image archives (OCI or docker-archive) into the node's containerd, no registry involved."""
    for archive in archives:
        ctr(bin_dir, "images", "import", str(archive))


def start(state: NodeState, directory: Path, pki: Path, server: str, admin_kubeconfig: str, bin_dir: Path) -> None:
    """Start containerd, kubelet, kube-proxy, kube-router and CoreDNS; wait for the node and DNS Ready."""
    from tollgate_testkit.controlplane import _kubectl, free_port

    node_dir = directory / "node"
    logs = directory / "logs"
    for d in (node_dir, logs, STATE_ROOT, DATA_ROOT / "cni" / "net.d"):
        d.mkdir(parents=True, exist_ok=True)
    _client_cert(pki, "node", f"/O=system:nodes/CN=system:node:{NODE_NAME}")
    _client_cert(pki, "kube-proxy", "/CN=system:kube-proxy")
    node_kc = _kubeconfig(node_dir / "kubelet.kubeconfig", server, pki, "node")
    proxy_kc = _kubeconfig(node_dir / "kube-proxy.kubeconfig", server, pki, "kube-proxy")
    conf_dir = DATA_ROOT / "cni" / "net.d"
    (conf_dir / "10-tollgate.conflist").write_text(json.dumps(cni_config(), indent=1))
    (node_dir / "containerd.toml").write_text(containerd_config(conf_dir))
    path_env = {"PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

    _spawn(state, "containerd", [str(bin_dir / "containerd"), "--config", str(node_dir / "containerd.toml")],
           logs, path_env)
    _wait("containerd", lambda: bool(ctr(bin_dir, "version")), logs)
    images = node_dir / "images"
    import_images(bin_dir, [
        ociimage.single_binary_image(images / "pause.tar", PAUSE_IMAGE, bin_dir / "pause", ["/pause"]),
        ociimage.single_binary_image(images / "coredns.tar", COREDNS_IMAGE, bin_dir / "coredns", ["/coredns"],
                                     ports=("53/udp", "53/tcp")),
    ])

    (node_dir / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(pki, free_port())))
    _spawn(state, "kubelet", [
        str(bin_dir / "kubelet"), f"--config={node_dir / 'kubelet.yaml'}", f"--kubeconfig={node_kc}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={GATEWAY}", f"--root-dir={DATA_ROOT / 'kubelet'}",
        f"--cert-dir={DATA_ROOT / 'kubelet' / 'pki'}", f"--node-labels={NODE_LABEL}=true", "--v=1",
    ], logs, path_env)
    (node_dir / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(proxy_kc, free_port(), free_port())))
    _spawn(state, "kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={node_dir / 'kube-proxy.yaml'}", "--v=1"],
           logs, path_env)
    kc = admin_kubeconfig
    _wait("node Ready", lambda: _node_ready(kc), logs)
    # kube-router looks its Node up once at start: only after the kubelet registered it
    _spawn(state, "kube-router", [
        str(bin_dir / "kube-router"), f"--kubeconfig={admin_kubeconfig}", f"--hostname-override={NODE_NAME}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}", f"--health-port={free_port()}", "--metrics-port=0",
        "--enable-ipv6=false", "--v=1",
    ], logs, path_env)

    _kubectl(kc, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(m) for m in cluster_manifests()))
    _wait("CoreDNS Ready", lambda: _kubectl(kc, "-n", "kube-system", "get", "deploy", "coredns", "-o",
                                            "jsonpath={.status.readyReplicas}").strip() == "1", logs)
    log(f"{NODE_NAME} Ready (pods on {POD_CIDR}, DNS {DNS_IP}, API server {server})")


def _node_ready(kubeconfig: str) -> bool:
    from tollgate_testkit.controlplane import _kubectl

    node = json.loads(_kubectl(kubeconfig, "get", "node", NODE_NAME, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


# --- teardown -----------------------------------------------------------------------------------------


def drain(kubeconfig: str, bin_dir: Path | None, timeout: float = 60.0) -> None:
    """Cordon the node, delete its pods and wait until containerd runs none (the kubelet tears each
    sandbox down through CNI, so veths and IP allocations go the normal way)."""
    from tollgate_testkit.controlplane import _kubectl

    with contextlib.suppress(RuntimeError):
        _kubectl(kubeconfig, "cordon", NODE_NAME)
        _kubectl(kubeconfig, "delete", "pods", "--all-namespaces", f"--field-selector=spec.nodeName={NODE_NAME}",
                 "--grace-period=1", "--wait=false")
    if bin_dir is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not ctr(bin_dir, "tasks", "ls", "-q").split():
                return
        except RuntimeError:
            return
        time.sleep(0.5)
    log("pods still running after the drain; removing them by force")


def _stop_pid(name: str, pid: int) -> None:
    if not _alive(pid):
        return
    procs.stop_group(pid, grace=15)
    log(f"stopped {name} ({pid})")


def _our_shims() -> list[int]:
    """containerd shims of this node: started by our containerd with our socket as their address."""
    needle = str(CONTAINERD_SOCK).encode()
    return sorted(pid for pid, cmd in procs.cmdlines().items() if b"containerd-shim" in cmd and needle in cmd)


def stop_processes(state: NodeState) -> None:
    """Stop the node's daemons by recorded PID, then every container (runc) and shim left."""
    for name in ("kube-router", "kube-proxy", "kubelet", "containerd"):
        if name in state.pids:
            _stop_pid(name, state.pids[name])
    runc = shutil.which("runc")
    if runc and RUNC_ROOT.is_dir():
        for ns_root in RUNC_ROOT.iterdir():
            ids = subprocess.run([runc, "--root", str(ns_root), "list", "-q"], capture_output=True, text=True,
                                 check=False).stdout.split()
            for cid in ids:
                subprocess.run([runc, "--root", str(ns_root), "delete", "--force", cid], capture_output=True,
                               check=False)
    for pid in _our_shims():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _teardown(state: NodeState) -> list[str]:
    stop_processes(state)
    if not state.before:
        return []
    left = hoststate.restore(hoststate.HostState.from_json(state.before))
    for line in left:
        log(f"host not restored: {line}")
    return left


def stop(kubeconfig: str | None, bin_dir: Path | None) -> NodeState | None:
    """Drain (while the API server still runs) and stop the node's processes; the host is restored by
    `release` once the API server, bound to the bridge address, is gone too."""
    state = NodeState.load()
    if state is None:
        return None
    if kubeconfig:
        drain(kubeconfig, bin_dir)
        from tollgate_testkit.controlplane import _kubectl

        with contextlib.suppress(RuntimeError):
            _kubectl(kubeconfig, "delete", "node", NODE_NAME, "--wait=false")
    stop_processes(state)
    return state


def release() -> list[str]:
    """Restore the host to its snapshot and give up the machine's real node; returns what differs."""
    with _locked():
        state = NodeState.load()
        if state is None:
            return []
        left = _teardown(state)
        OWNER_FILE.unlink(missing_ok=True)
        return left
