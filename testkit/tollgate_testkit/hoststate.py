"""The host-wide state a real node changes, as a snapshot that can be compared and restored.

A real node (kubelet, containerd, runc, CNI, kube-proxy, kube-router) writes to state that belongs to
the whole machine, not to a directory: network interfaces, iptables chains and rules, ipsets, mounts,
cgroups, sysctls and a few hard-coded paths (/var/lib/kubelet, /var/log/pods). `snapshot()` records
what is there before the node starts; `restore(before)` removes what the node added and writes back
what it changed; `diff(before, after)` names every difference, so a test can assert that teardown left
the host as it found it. Processes are not part of the snapshot: they are stopped by recorded PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

OWNED_CHAIN = re.compile(r"^(KUBE-|CNI-)")
"""iptables chains created by kube-proxy, kubelet (canaries), kube-router and the CNI plugins."""
OWNED_INTERFACE = re.compile(r"^(tollgate0|veth.*|kube-.*|cni.*)$")
TABLES = ("raw", "mangle", "nat", "filter", "security")
PATHS = (
    "/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/containerd", "/run/containerd",
    "/opt/containerd", "/etc/cni", "/var/lib/cni", "/run/netns", "/var/lib/kube-router", "/run/nri",
    "/etc/kubernetes", "/var/lib/tollgate-node", "/run/tollgate-node",
)
"""Paths the parts create when they do not exist (several are hard-coded in the kubelet)."""
SYSCTLS = (
    "net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
    "net/ipv6/conf/all/forwarding", "net/ipv6/conf/default/forwarding",
    "net/ipv4/conf/all/route_localnet", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce",
    "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
    "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait", "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/netfilter/nf_conntrack_udp_timeout", "net/netfilter/nf_conntrack_udp_timeout_stream",
    # the kubelet's kernel tunables (setupKernelTunables, protectKernelDefaults=false)
    "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
)


@dataclass(frozen=True)
class HostState:
    interfaces: list[str] = field(default_factory=list)
    iptables: dict[str, list[str]] = field(default_factory=dict)
    """Per family and table: chain declarations and rules, counters and built-in policies left out."""
    ipsets: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostState:
        return cls(**json.loads(text))


def _run(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    return res.stdout if res.returncode == 0 else ""


def _iptables_lines(family: str) -> dict[str, list[str]]:
    tool = "iptables-save" if family == "ipv4" else "ip6tables-save"
    if not shutil.which(tool):
        return {}
    out: dict[str, list[str]] = {}
    table = ""
    for raw in _run(tool).splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.isupper() and chain in {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}:
                continue  # built-in chains exist (empty) once the table is touched at all
            line = f":{chain}"
        out.setdefault(f"{family}/{table}", []).append(line)
    return out


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def _cgroups() -> list[str]:
    root = Path("/sys/fs/cgroup")
    found: list[str] = []
    if not root.is_dir():
        return found
    for ctrl in sorted(root.iterdir()):
        if not ctrl.is_dir() or ctrl.is_symlink():
            continue
        with contextlib.suppress(OSError):
            found.extend(f"{ctrl.name}/{d.name}" for d in ctrl.iterdir() if d.is_dir())
    return sorted(found)


def snapshot() -> HostState:
    """What is on the host now (read-only)."""
    interfaces = sorted(line.split(":")[1].strip().split("@")[0]
                        for line in _run("ip", "-o", "link", "show").splitlines() if ":" in line)
    iptables = {**_iptables_lines("ipv4"), **_iptables_lines("ipv6")}
    ipsets = sorted(_run("ipset", "list", "-n").split()) if shutil.which("ipset") else []
    # only mounts where the node's parts mount (other work on the machine mounts and unmounts too)
    mounts = sorted({m for m in (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
                     if any(m == p or m.startswith(p + "/") for p in PATHS)})
    sysctls: dict[str, str] = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            sysctls[key] = _sysctl_path(key).read_text().strip()
    paths = sorted(p for p in PATHS if os.path.lexists(p))
    return HostState(interfaces=interfaces, iptables=iptables, ipsets=ipsets, mounts=mounts,
                     cgroups=_cgroups(), sysctls=sysctls, paths=paths)


def diff(before: HostState, after: HostState) -> list[str]:
    """Every difference, one line each: `added interface veth1`, `sysctl vm/panic_on_oom 0 -> 1`..."""
    out: list[str] = []

    def sets(kind: str, a: list[str], b: list[str]) -> None:
        out.extend(f"added {kind} {x}" for x in sorted(set(b) - set(a)))
        out.extend(f"removed {kind} {x}" for x in sorted(set(a) - set(b)))

    sets("interface", before.interfaces, after.interfaces)
    for table in sorted(set(before.iptables) | set(after.iptables)):
        sets(f"iptables {table}", before.iptables.get(table, []), after.iptables.get(table, []))
    sets("ipset", before.ipsets, after.ipsets)
    sets("mount", before.mounts, after.mounts)
    sets("cgroup", before.cgroups, after.cgroups)
    sets("path", before.paths, after.paths)
    for key in sorted(set(before.sysctls) | set(after.sysctls)):
        if before.sysctls.get(key) != after.sysctls.get(key):
            out.append(f"sysctl {key} {before.sysctls.get(key)} -> {after.sysctls.get(key)}")
    return out


# --- restore --------------------------------------------------------------------------------------


def unmount_under(roots: list[str]) -> None:
    """Unmount every mount at or below these roots, deepest first (lazily when busy)."""
    prefixes = [r.rstrip("/") for r in roots]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    ours = [m for m in mounts if any(m == p or m.startswith(p + "/") for p in prefixes)]
    for mount in sorted(set(ours), key=lambda m: m.count("/"), reverse=True):
        if subprocess.run(["umount", mount], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _restore_iptables(before: HostState) -> None:
    for family, save, restore in (("ipv4", "iptables-save", "iptables-restore"),
                                  ("ipv6", "ip6tables-save", "ip6tables-restore")):
        if not shutil.which(save):
            continue
        for table in TABLES:
            dump = _run(save, "-t", table)
            if not dump:
                continue
            kept_before = set(before.iptables.get(f"{family}/{table}", []))
            lines, changed = [], False
            for line in dump.splitlines():
                s = line.strip()
                owned = False
                if s.startswith(":"):
                    owned = bool(OWNED_CHAIN.match(s[1:].split()[0])) and f":{s[1:].split()[0]}" not in kept_before
                elif s.startswith("-A "):
                    parts = s.split()
                    chain = parts[1]
                    target = parts[parts.index("-j") + 1] if "-j" in parts else ""
                    owned = s not in kept_before and (bool(OWNED_CHAIN.match(chain)) or bool(OWNED_CHAIN.match(target))
                                                      or "tollgate0" in s)
                if owned:
                    changed = True
                    continue
                lines.append(line)
            if changed:
                subprocess.run([restore, "-w"], input="\n".join(lines) + "\n", text=True,
                               capture_output=True, check=False)


def _remove_cgroups(before: HostState) -> None:
    root = Path("/sys/fs/cgroup")
    for entry in sorted(set(_cgroups()) - set(before.cgroups)):
        top = root / entry
        # bottom-up: a cgroup directory can only be removed once it has no children
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def restore(before: HostState) -> list[str]:
    """Undo what was added since `before` (mounts, cgroups, iptables, ipsets, interfaces, paths,
    sysctls), then return what still differs. Processes must be stopped first."""
    unmount_under([p for p in PATHS if p not in before.paths])
    _remove_cgroups(before)
    _restore_iptables(before)
    if shutil.which("ipset"):
        for name in sorted(set(_run("ipset", "list", "-n").split()) - set(before.ipsets)):
            subprocess.run(["ipset", "destroy", name], capture_output=True, check=False)
    now = snapshot()
    for iface in sorted(set(now.interfaces) - set(before.interfaces)):
        if OWNED_INTERFACE.match(iface):
            subprocess.run(["ip", "link", "delete", iface], capture_output=True, check=False)
    for path in PATHS:
        if path not in before.paths and os.path.lexists(path):
            subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True, check=False)
    for key, value in before.sysctls.items():
        with contextlib.suppress(OSError):
            current = _sysctl_path(key).read_text().strip()
            if current != value:
                _sysctl_path(key).write_text(value + "\n")
    return diff(before, snapshot())
