"""Where the operator may connect for a URL a tenant chose (the confirmRollout gate's Secret key `url`).

The operator runs with the network position of the platform: loopback, the node's link-local addresses
and the cloud metadata endpoint (169.254.169.254, which hands out the node's credentials), the cluster's
pods and Services, its own namespace. A tenant's URL must not turn it into a proxy or a port scanner for
those, so every address the URL's host resolves to is checked at connect time, and the connection goes to
that checked address (no second lookup between the check and the connect: a name re-pointed in between,
DNS rebinding, reaches nothing new). For https the certificate is still verified against the URL's host
name, which is also the SNI and the Host header.

The policy (platform settings, runtime.config; chart values hooks.webhookAllowedDestinations and
hooks.webhookDeniedCIDRs):
- deny: CIDRs never connected to (e.g. the cluster's pod and Service ranges); wins over everything.
- built in: loopback, link-local (169.254.0.0/16, fe80::/10), unspecified, multicast and reserved
  addresses and the cloud metadata addresses are refused unless an allowed CIDR contains the address (an
  allowed host name does not lift them: a name can be re-pointed, a range is the platform's explicit word).
- private: the ranges clusters put their pods and Services in (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
  100.64.0.0/10, fc00::/7) are refused unless an allowed CIDR contains the address or the URL's host name
  is on the allow-list. Secure by default: with nothing set, a tenant cannot reach (or tell open ports from
  closed ones on) another team's in-cluster services or the operator's namespace through the gate. An
  in-cluster gate endpoint is the common case, so the platform naming it (its Service's host name) lifts
  this: the name is the platform's, not the tenant's. A cluster whose pod or Service range is outside
  these (some clouds use public ranges) lists it in deny.
- allow: host names (`gate.example.com`, or `*.example.com` for its subdomains) and CIDRs; when set, a
  destination is allowed only when its host name is listed or its address is in a listed CIDR.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle ...
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # shared address space (RFC 6598), Service ranges of some managed clusters
    "fc00::/7",  # IPv6 unique local addresses
))
"""Private ranges: refused unless the platform names the host or the range (see the module docstring)."""
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")

ALLOW_SETTING = "hooks.webhookAllowedDestinations"
DENY_SETTING = "hooks.webhookDeniedCIDRs"


class DestinationRefusedError(OSError):
    """The policy refuses every address the host resolves to; nothing was connected."""

    def __init__(self, host: str, address: str, reason: str, denied: bool) -> None:
        super().__init__(f"{host} -> {address}: {reason}")
        self.host = host
        self.address = address
        self.reason = reason
        self.denied = denied
        """True when a deny CIDR refused it (allowing it would not help), else built in or off the allow-list."""


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def builtin_refusal(ip: IPAddress) -> str | None:
    """Why the address is refused by default, or None."""
    ip = _unwrap(ip)
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip.is_reserved:
        return "reserved"
    return None


def _host_key(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass(frozen=True)
class DestinationPolicy:
    """The platform's word on where a tenant's URL may lead; the default refuses the built-in set and the
    private ranges."""

    allow_names: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    deny_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> DestinationPolicy:
        """From the settings' entries; ValueError naming a malformed entry."""
        names: set[str] = set()
        allowed: list[IPNetwork] = []
        for entry in (e.strip() for e in allow if e.strip()):
            network = _network(entry)
            if network is not None:
                allowed.append(network)
            elif _HOST_NAME.match(_host_key(entry)) and not _host_key(entry).rsplit(".", 1)[-1].isdigit():
                names.add(_host_key(entry))
            else:
                raise ValueError(f"allowed destination {entry!r} must be a host name or a CIDR "
                                 f"(gate.example.com, *.example.com, 10.20.0.0/16, 192.0.2.7)")
        denied = []
        for entry in (e.strip() for e in deny if e.strip()):
            network = _network(entry)
            if network is None:
                raise ValueError(f"denied destination {entry!r} must be a CIDR or an address (10.96.0.0/12)")
            denied.append(network)
        return cls(frozenset(names), tuple(allowed), tuple(denied))

    @property
    def restricted(self) -> bool:
        """True when an allow-list is set: only what it lists is allowed."""
        return bool(self.allow_names or self.allow_networks)

    def _name_allowed(self, host: str) -> bool:
        key = _host_key(host)
        return key in self.allow_names or any(
            name.startswith("*.") and key.endswith(name[1:]) for name in self.allow_names)

    def refusal(self, host: str, ip: IPAddress) -> tuple[str, bool] | None:
        """(why, denied) when `host` resolved to `ip` may not be connected to, else None."""
        candidates = {ip, _unwrap(ip)}
        if _within(candidates, self.deny_networks):
            return "in a range the platform denies", True
        if _within(candidates, self.allow_networks):
            return None
        builtin = builtin_refusal(ip)
        if builtin is not None:
            return builtin, False
        named = self._name_allowed(host)
        if not named and _within(candidates, PRIVATE):
            return "a private address, where in-cluster pods and Services live", False
        if self.restricted and not named:
            return "not on the platform's allow-list", False
        return None


def _within(addresses: Iterable[IPAddress], networks: Iterable[IPNetwork]) -> bool:
    """Any of the addresses (an address and the IPv4 one it carries) is in any of the networks."""
    return any(a in n for a in addresses for n in networks if a.version == n.version)


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def connect(policy: DestinationPolicy, host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to an address of `host` the policy allows: one lookup, each address checked, the
    allowed ones tried in order (like socket.create_connection). DestinationRefusedError when the policy
    allows none of them; OSError as socket.create_connection when none answers."""
    refused: DestinationRefusedError | None = None
    last: OSError | None = None
    for family, kind, proto, _canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = policy.refusal(host, ip)
        if why is not None:
            refused = refused or DestinationRefusedError(host, str(_unwrap(ip)), *why)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(sockaddr)  # the checked address itself: no second lookup
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if last is not None:
        raise last
    if refused is not None:
        raise refused
    raise OSError(f"getaddrinfo returned no address for {host}")
