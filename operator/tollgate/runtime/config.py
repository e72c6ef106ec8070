"""Operator settings from flags and environment variables (flags win).

Every setting has an environment variable so the Helm chart can set it without templating argv.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from tollgate.adapters.destinations import DestinationPolicy
from tollgate.api.routers import DEFAULT_DIALECT, GatewayDialect
from tollgate.api.spec import MetricsProfile
from tollgate.engine.model_delivery import DEFAULT_INITIALIZER_IMAGE
from tollgate.runtime.leader import LeaseSettings
from tollgate.runtime.shard_plan import MAX_SHARDS


@dataclass(frozen=True)
class SecretKeyRef:
    """Where a credential lives; only the reference is logged, never the value."""

    namespace: str
    name: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretKeyRef:
        try:
            ns_name, key = text.rsplit(":", 1)
            namespace, name = ns_name.split("/", 1)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"secret reference {text!r} must look like NAMESPACE/NAME:KEY, e.g. monitoring/prom-auth:token"
            ) from None
        return cls(namespace, name, key)


@dataclass(frozen=True)
class Settings:
    prometheus_url: str | None = None
    prometheus_token_secret: SecretKeyRef | None = None
    metrics_profile: str = MetricsProfile.MLSERVER.value
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    health_port: int = 8081
    health_grace: float = 30.0
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "tollgate-operator"
    lease_duration: float = 15.0
    lease_renew_deadline: float = 10.0
    lease_retry_period: float = 2.0
    shards: int = 1
    """ModelDeployments split by a hash of their UID into this many shards, one Lease each
    (runtime.shard_plan); 1: one leader decides them all."""
    min_analysis_interval: float = 1.0
    scrape_interval: float | None = 15.0
    """Seconds between two scrapes of the models' metrics: canaries under analysis are looked at that
    often when it is shorter than their analysis interval (engine.policy.Policy.look_interval)."""
    log_format: str = "json"
    max_replicas: int | None = None
    max_pod_resources: dict[str, str] = field(default_factory=dict)
    notify_secret: tuple[str, str] | None = None
    """(namespace, name) of the Secret with the notification webhook (url, format, token)."""
    storage_initializer_image: str = DEFAULT_INITIALIZER_IMAGE
    """Image of the init container that fetches spec.model.uri and checks its digest (engine.model_delivery)."""
    gateway_dialect: GatewayDialect = DEFAULT_DIALECT
    """How the gatewayAPI router speaks to the cluster's Gateway implementation (api.routers.GatewayDialect)."""
    confirm_rollout_destinations: DestinationPolicy = field(default_factory=DestinationPolicy)
    """Where a confirmRollout gate's URL may lead (adapters.destinations)."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _resource_map(text: str) -> dict[str, str]:
    """"cpu=8,memory=32Gi" -> {"cpu": "8", "memory": "32Gi"}; each value must be a quantity."""
    from tollgate.engine.quantity import value

    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, quantity = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"{item!r}: write <resource>=<quantity>, e.g. cpu=8")
        try:
            value(quantity.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{item!r}: {exc}") from exc
        out[name.strip()] = quantity.strip()
    return out


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="tollgate-operator",
        description="Tollgate: rolls out ML model servers as guarded, reversible canaries.",
        epilog="Every flag has an environment variable, shown in brackets; the flag wins.",
    )
    p.add_argument("--prometheus-url", default=env("TOLLGATE_PROMETHEUS_URL"),
                   help="Prometheus base URL for SLO queries, e.g. http://prometheus.monitoring:9090 "
                        "[TOLLGATE_PROMETHEUS_URL]. Without it, analysis steps report errors and fail closed.")
    p.add_argument("--prometheus-token-secret", type=SecretKeyRef.parse,
                   default=SecretKeyRef.parse(v) if (v := env("TOLLGATE_PROMETHEUS_TOKEN_SECRET")) else None,
                   help="Bearer token for Prometheus as NAMESPACE/NAME:KEY of a Secret "
                        "[TOLLGATE_PROMETHEUS_TOKEN_SECRET]")
    p.add_argument("--metrics-profile", choices=[m.value for m in MetricsProfile],
                   default=env("TOLLGATE_METRICS_PROFILE", MetricsProfile.MLSERVER.value),
                   help="Dialect of the series the built-in SLO templates read, for ModelDeployments that "
                        "set no spec.metrics.profile: mlserver, istio or otel (docs/operations.md, "
                        "'Connecting your metrics') [TOLLGATE_METRICS_PROFILE]")
    p.add_argument("--namespace", "-n", action="append", dest="namespaces",
                   default=[n for n in env("TOLLGATE_NAMESPACES", "").split(",") if n],
                   help="Watch only this namespace; repeat for more. Default: all namespaces "
                        "[TOLLGATE_NAMESPACES, comma-separated]")
    p.add_argument("--metrics-port", type=int, default=int(env("TOLLGATE_METRICS_PORT", "8080")),
                   help="Port of the operator's /metrics [TOLLGATE_METRICS_PORT] (0: off)")
    p.add_argument("--health-port", type=int, default=int(env("TOLLGATE_HEALTH_PORT", "8081")),
                   help="Port of /healthz, which fails when the watch loop is dead [TOLLGATE_HEALTH_PORT] (0: off)")
    p.add_argument("--health-grace", type=float, default=float(env("TOLLGATE_HEALTH_GRACE", "30")),
                   help="Seconds the API server may be unreachable before /healthz fails "
                        "[TOLLGATE_HEALTH_GRACE]")
    p.add_argument("--no-leader-election", dest="leader_election", action="store_false",
                   default=_env_bool("TOLLGATE_LEADER_ELECTION", True),
                   help="Act without holding the Lease (single replica only) [TOLLGATE_LEADER_ELECTION=false]")
    p.add_argument("--lease-namespace", default=env("TOLLGATE_LEASE_NAMESPACE", env("POD_NAMESPACE", "default")),
                   help="Namespace of the leader-election Lease [TOLLGATE_LEASE_NAMESPACE, POD_NAMESPACE]")
    p.add_argument("--lease-name", default=env("TOLLGATE_LEASE_NAME", "tollgate-operator"),
                   help="Name of the leader-election Lease [TOLLGATE_LEASE_NAME]")
    p.add_argument("--lease-duration", type=float, default=float(env("TOLLGATE_LEASE_DURATION", "15")),
                   help="Seconds a standby waits after it last saw the Lease change before taking it over "
                        "[TOLLGATE_LEASE_DURATION]")
    p.add_argument("--lease-renew-deadline", type=float,
                   default=float(env("TOLLGATE_LEASE_RENEW_DEADLINE", "10")),
                   help="Seconds the leader keeps acting without a successful renewal; must be less than "
                        "--lease-duration [TOLLGATE_LEASE_RENEW_DEADLINE]")
    p.add_argument("--lease-retry-period", type=float, default=float(env("TOLLGATE_LEASE_RETRY_PERIOD", "2")),
                   help="Seconds between attempts to acquire or renew the Lease [TOLLGATE_LEASE_RETRY_PERIOD]")
    p.add_argument("--shards", type=int, default=int(env("TOLLGATE_SHARDS", "1")),
                   help=f"Split the ModelDeployments into this many shards by a hash of their UID, one Lease each "
                        f"(<lease-name>-shard-<k>-of-<N>), so several replicas share the work; each replica decides "
                        f"and keeps in memory only the shards it holds (1 to {MAX_SHARDS}; 1: one leader decides all) "
                        f"[TOLLGATE_SHARDS]")
    p.add_argument("--max-replicas", type=int,
                   default=int(v) if (v := env("TOLLGATE_MAX_REPLICAS")) else None,
                   help="Platform limit: most pods per track a ModelDeployment may ask for; over it, Stalled "
                        "[TOLLGATE_MAX_REPLICAS]")
    p.add_argument("--max-pod-resources", type=_resource_map,
                   default=_resource_map(env("TOLLGATE_MAX_POD_RESOURCES", "")),
                   help="Platform limit per pod, requests and limits alike, e.g. cpu=8,memory=32Gi,nvidia.com/gpu=2; "
                        "over it, Stalled [TOLLGATE_MAX_POD_RESOURCES]")
    p.add_argument("--log-format", choices=["json", "text"], default=env("TOLLGATE_LOG_FORMAT", "json"),
                   help="Log format [TOLLGATE_LOG_FORMAT]")
    p.add_argument("--scrape-interval", type=float, default=float(env("TOLLGATE_SCRAPE_INTERVAL", "15")),
                   help="Seconds between scrapes of the models' metrics: canaries under analysis are looked at "
                        "this often when it is shorter than their analysis interval; a sequential test keeps "
                        "the false-alarm rate of the extra looks [TOLLGATE_SCRAPE_INTERVAL] (0: every interval)")
    p.add_argument("--notify-secret", type=_namespaced, default=_namespaced(env("TOLLGATE_NOTIFY_SECRET") or "-"),
                   metavar="NAMESPACE/NAME",
                   help="Secret with the notification webhook: keys url, format (cloudevents, slack or teams) and "
                        "token (optional bearer token); rollbacks, stalls, approvals, promotions and the kill "
                        "switch are sent there, queued and retried, never blocking a rollout [TOLLGATE_NOTIFY_SECRET]")
    p.add_argument("--storage-initializer-image",
                   default=env("TOLLGATE_STORAGE_INITIALIZER_IMAGE", DEFAULT_INITIALIZER_IMAGE),
                   help="Image of the storage initializer, the init container that fetches spec.model.uri into "
                        "the model cache and verifies spec.model.digest [TOLLGATE_STORAGE_INITIALIZER_IMAGE]")
    p.add_argument("--gateway-dialect", choices=[d.value for d in GatewayDialect],
                   default=env("TOLLGATE_GATEWAY_DIALECT", DEFAULT_DIALECT.value),
                   help="How the gatewayAPI router writes routes for this cluster's Gateway implementation: "
                        "standard (Gateway API fields only: weights, RequestMirror) or traefik (Traefik's "
                        "mirroring TraefikService and rate-limit Middlewares; needs its Kubernetes CRD provider). "
                        "A spec asking for what the dialect cannot do is Stalled before any traffic moves "
                        "[TOLLGATE_GATEWAY_DIALECT]")
    p.add_argument("--confirm-rollout-allow", type=_entries,
                   default=_entries(env("TOLLGATE_CONFIRM_ROLLOUT_ALLOW", "")),
                   metavar="HOST_OR_CIDR,...",
                   help="Destinations a confirmRollout gate's URL (a tenant's Secret) may lead to: host names "
                        "(gate.example.com, *.example.com) and CIDRs, comma-separated; when set, only these. "
                        "Loopback, link-local, cloud metadata, unspecified, multicast and reserved addresses are "
                        "refused unless a CIDR here contains them (a host name does not lift that); private "
                        "ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) unless a CIDR here contains "
                        "them or the URL's host name is listed [TOLLGATE_CONFIRM_ROLLOUT_ALLOW]")
    p.add_argument("--confirm-rollout-deny", type=_entries,
                   default=_entries(env("TOLLGATE_CONFIRM_ROLLOUT_DENY", "")),
                   metavar="CIDR,...",
                   help="CIDRs a confirmRollout gate's URL may never lead to, comma-separated, e.g. the cluster's "
                        "pod and Service ranges when they are public addresses; wins over --confirm-rollout-allow "
                        "[TOLLGATE_CONFIRM_ROLLOUT_DENY]")
    return p


def _entries(text: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in text.split(",") if e.strip())


def _namespaced(text: str) -> tuple[str, str] | None:
    if text in ("", "-"):
        return None
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise argparse.ArgumentTypeError(f"secret {text!r} must look like NAMESPACE/NAME, e.g. tollgate/notify")
    return namespace, name


def parse(argv: list[str] | None = None) -> Settings:
    p = parser()
    a = p.parse_args(argv)
    try:
        LeaseSettings(a.lease_namespace, a.lease_name, duration=a.lease_duration,
                      renew_deadline=a.lease_renew_deadline, retry_period=a.lease_retry_period)
    except ValueError as exc:
        p.error(str(exc))
    if not 1 <= a.shards <= MAX_SHARDS:
        p.error(f"--shards ({a.shards}) must be between 1 and {MAX_SHARDS}")
    if a.shards > 1 and len(a.lease_name) > 63:
        p.error(f"--lease-name ({a.lease_name!r}) must be at most 63 characters with --shards: it labels the "
                f"shard Leases")
    try:
        destinations = DestinationPolicy.of(allow=a.confirm_rollout_allow, deny=a.confirm_rollout_deny)
    except ValueError as exc:
        p.error(f"--confirm-rollout-allow / --confirm-rollout-deny: {exc}")
    if a.shards > 1 and not a.leader_election:
        p.error(f"--shards ({a.shards}) needs leader election: each shard is a Lease; drop "
                f"--no-leader-election or use --shards 1")
    return Settings(
        prometheus_url=a.prometheus_url, prometheus_token_secret=a.prometheus_token_secret,
        metrics_profile=a.metrics_profile,
        namespaces=tuple(a.namespaces or ()), metrics_port=a.metrics_port, health_port=a.health_port,
        health_grace=a.health_grace,
        leader_election=a.leader_election, lease_namespace=a.lease_namespace, lease_name=a.lease_name,
        lease_duration=a.lease_duration, lease_renew_deadline=a.lease_renew_deadline,
        lease_retry_period=a.lease_retry_period, shards=a.shards,
        log_format=a.log_format, scrape_interval=a.scrape_interval or None,
        max_replicas=a.max_replicas, max_pod_resources=dict(a.max_pod_resources),
        notify_secret=a.notify_secret, storage_initializer_image=a.storage_initializer_image,
        gateway_dialect=GatewayDialect(a.gateway_dialect), confirm_rollout_destinations=destinations,
    )
