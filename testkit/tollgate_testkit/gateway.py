"""The test environment's Gateway API data plane: Traefik, built from its Go module (hack/gateway/build.sh).

Traefik's Kubernetes Gateway provider turns Gateways and HTTPRoutes into its own routers and weighted
services; its Kubernetes CRD provider adds the traefik.io objects an HTTPRoute can name: Middlewares
through an ExtensionRef filter (rate limits) and TraefikServices as backendRefs (mirroring, failover).
What it honours, with references to its source, is in docs/gateway.md.

Two ways to run it:
- on the real node (`install`): a pod in NAMESPACE from a single-binary image (ociimage.py, like the pod
  sandbox and CoreDNS), with its ServiceAccount and the least RBAC its two providers need, behind the
  Service SERVICE at the fixed ClusterIP SERVICE_IP (port 80), with the GatewayClass GATEWAY_CLASS and
  the Gateway GATEWAY_NAME. Clients in pods send requests to http://SERVICE_IP/ (or the Service's DNS
  name); model pods must admit NAMESPACE in spec.sandbox.ingressFrom, since Traefik sends each request
  straight to a pod IP taken from the backend Service's EndpointSlices;
- as a host process (`HostTraefik`) against a plain control plane, for checks without a real node.

The Gateway admits HTTPRoutes from namespaces Tollgate manages (its sandboxes) only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tollgate_testkit import controlplane, ociimage, procs

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "gateway" / "build.sh"
NAMESPACE = "tollgate-gateway"
SERVICE = "traefik"
SERVICE_IP = "10.0.80.80"
"""A fixed ClusterIP (in the test environment's 10.0.0.0/16), so the Gateway's status can name it."""
GATEWAY_CLASS = "tollgate-traefik"
GATEWAY_NAME = "inference"
LISTENER = "http"
CONTROLLER_NAME = "traefik.io/gateway-controller"
WEB_PORT = 8000
"""Traefik's entrypoint `web`; the Gateway's listener has the same port (that is how Traefik maps them)."""
ADMIN_PORT = 8080
"""Traefik's entrypoint `traefik`: /ping, /metrics and /api (the runtime configuration)."""
SANDBOX_SELECTOR = {"app.kubernetes.io/managed-by": "tollgate"}
"""The Gateway admits routes from these namespaces (every sandbox Tollgate creates carries the label)."""


def log(msg: str) -> None:
    print(f"gateway: {msg}", file=sys.stderr, flush=True)


def build() -> Path:
    """Build or reuse Traefik; returns the cache directory (bin/traefik, crds/traefik.io.yaml)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def version(cache: Path) -> str:
    """The Traefik version of a build (the cache key's first part, e.g. v3.7.12)."""
    return cache.name.split("_")[0].removeprefix("traefik-")


def image_name(cache: Path) -> str:
    return f"tollgate.local/traefik:{version(cache)}"


def static_config(*, web: str = f":{WEB_PORT}", admin: str = f":{ADMIN_PORT}",
                  status_ip: str = SERVICE_IP) -> dict[str, Any]:
    """Traefik's static configuration: two entrypoints, the Gateway and CRD providers, Prometheus metrics."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {"web": {"address": web}, "traefik": {"address": admin}},
        "ping": {"entryPoint": "traefik"},
        # the runtime configuration (/api/http/services) on the admin entrypoint, test environment only:
        # tests read the weights in force before they count requests
        "api": {"insecure": True, "dashboard": False},  # no web UI is built into the binary
        # traefik_service_requests_total{service=...,code=...}: requests counted at the gateway, per backend
        "metrics": {"prometheus": {"entryPoint": "traefik", "addServicesLabels": True,
                                   "addRoutersLabels": True}},
        "log": {"level": "INFO"},
        # one JSON line per request a client sent, naming the leaf service that answered it (ServiceName,
        # ServiceURL) and the status the client got: the count at the gateway (access_log)
        "accessLog": {"format": "json"},
        "providers": {
            "kubernetesGateway": {"statusAddress": {"ip": status_ip}, "throttleDuration": "0s"},
            # Middlewares (ExtensionRef filters) and TraefikServices (backendRefs); no cluster-scoped
            # informer (Nodes), so no cluster-wide Node permission
            "kubernetesCRD": {"disableClusterScopeResources": True, "throttleDuration": "0s"},
        },
    }


def rbac_rules() -> list[dict[str, Any]]:
    """What the two providers read and write, and nothing else (see docs/gateway.md).

    Traefik's informers list and watch these cluster-wide, since sandboxes come and go: a provider whose
    informer is refused never syncs, so each rule here is needed for it to start at all. Secrets are
    among them: the Gateway provider watches them for listener certificates (our listener is plain HTTP).
    """
    read = ["get", "list", "watch"]
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "referencegrants",
                       "backendtlspolicies"], "verbs": read},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status",
                       "tlsroutes/status", "backendtlspolicies/status"], "verbs": ["update"]},
        {"apiGroups": ["traefik.io"],
         "resources": ["middlewares", "middlewaretcps", "ingressroutes", "traefikservices", "ingressroutetcps",
                       "ingressrouteudps", "tlsoptions", "tlsstores", "serverstransports",
                       "serverstransporttcps"], "verbs": read},
    ]


def gateway_manifests(port: int = WEB_PORT, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The GatewayClass handled by Traefik and the Gateway with one HTTP listener."""
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY_NAME, "namespace": namespace},
         "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [{
             "name": LISTENER, "protocol": "HTTP", "port": port,
             "allowedRoutes": {"namespaces": {"from": "Selector",
                                              "selector": {"matchLabels": SANDBOX_SELECTOR}}}}]}},
    ]


def manifests(image: str) -> list[dict[str, Any]]:
    """Traefik on the real node: namespace, ServiceAccount, RBAC, configuration, Deployment, Service,
    then the GatewayClass and Gateway."""
    from tollgate_testkit import node

    labels = {"app.kubernetes.io/name": "traefik"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
            node.NODE_LABEL: "true", "pod-security.kubernetes.io/enforce": "restricted"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "traefik", "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "tollgate-gateway-traefik"}, "rules": rbac_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "tollgate-gateway-traefik"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "tollgate-gateway-traefik"},
         "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "traefik", "namespace": NAMESPACE},
         "data": {"traefik.yaml": yaml.safe_dump(static_config())}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "traefik", "namespace": NAMESPACE, "labels": labels},
         # one replica: its weighted round robin is then one deterministic schedule (docs/gateway.md)
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "serviceAccountName": "traefik",
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": "traefik", "image": image, "imagePullPolicy": "Never",
                     "args": ["--configFile=/etc/traefik/traefik.yaml"],
                     "ports": [{"name": "web", "containerPort": WEB_PORT},
                               {"name": "admin", "containerPort": ADMIN_PORT}],
                     "readinessProbe": {"httpGet": {"path": "/ping", "port": ADMIN_PORT}, "periodSeconds": 2},
                     "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}},
                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/traefik"}],
                 }],
                 "volumes": [{"name": "config", "configMap": {"name": "traefik"}}],
             }}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"selector": labels, "clusterIP": SERVICE_IP, "ports": [
             {"name": "web", "port": 80, "targetPort": WEB_PORT},
             {"name": "admin", "port": ADMIN_PORT, "targetPort": ADMIN_PORT}]}},
        *gateway_manifests(),
    ]


def _kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    return controlplane._kubectl(kubeconfig, *args, stdin=stdin)


def install_crds(kubeconfig: str, cache: Path) -> None:
    """Traefik's CRDs (traefik.io), as its module ships them, Established."""
    crds = cache / "crds" / "traefik.io.yaml"
    out = _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crds), "-o", "name")
    controlplane.wait_established(kubeconfig, out.split())


def gateway_programmed(kubeconfig: str, namespace: str = NAMESPACE) -> bool:
    gw = json.loads(_kubectl(kubeconfig, "get", "gateway", GATEWAY_NAME, "-n", namespace, "-o", "json"))
    return any(c["type"] == "Programmed" and c["status"] == "True"
               and c.get("observedGeneration") == gw["metadata"]["generation"]
               for c in (gw.get("status") or {}).get("conditions", []))


def _wait(what: str, check: Any, timeout: float = 180.0) -> None:
    """controlplane's wait (a check that raises is not there yet: the API answers 404 until it is created)."""
    controlplane._wait(f"gateway: {what}", check, timeout)


@dataclass(frozen=True)
class Installed:
    """Where clients reach the Gateway from pods."""

    url: str
    image: str
    version: str


def install(kubeconfig: str, node_bin: Path, cache: Path | None = None) -> Installed:
    """Traefik on the real node: import its image, apply the CRDs and manifests, wait for the pod Ready
    and the Gateway Programmed."""
    from tollgate_testkit import node

    cache = cache or build()
    image = image_name(cache)
    archive = cache / "image" / "traefik.tar"
    if not archive.exists():  # the binary of a cache key never changes, so neither does its image
        ociimage.single_binary_image(archive.with_suffix(".tmp"), image, cache / "bin" / "traefik", ["/traefik"],
                                     ports=(f"{WEB_PORT}/tcp", f"{ADMIN_PORT}/tcp")).rename(archive)
    node.import_images(node_bin, [archive])
    install_crds(kubeconfig, cache)
    _kubectl(kubeconfig, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(m) for m in manifests(image)))
    _wait("Traefik pod Ready", lambda: _kubectl(kubeconfig, "-n", NAMESPACE, "get", "deploy", "traefik", "-o",
                                                "jsonpath={.status.readyReplicas}").strip() == "1")
    _wait("Gateway Programmed", lambda: gateway_programmed(kubeconfig))
    log(f"Traefik {version(cache)} Ready; Gateway {NAMESPACE}/{GATEWAY_NAME} at http://{SERVICE_IP}/")
    return Installed(url=f"http://{SERVICE_IP}", image=image, version=version(cache))


def pod_logs(kubeconfig: str, tail: int = 200) -> str:
    return _kubectl(kubeconfig, "logs", "-n", NAMESPACE, "deploy/traefik", f"--tail={tail}")


def access_log(kubeconfig: str, since: str) -> list[dict[str, Any]]:
    """The access-log entries Traefik wrote since `since` (RFC 3339): one per request a client sent, with the
    status the client got (DownstreamStatus) and the leaf service that answered it (ServiceName, ServiceURL).

    Mirrored copies never appear: Traefik sends them after the client's answer, from a context whose
    access-log table it has cleared (pkg/server/service/loadbalancer/mirror/mirror.go), so an entry's
    service is the one whose answer the client got."""
    out = _kubectl(kubeconfig, "logs", "-n", NAMESPACE, "deploy/traefik", f"--since-time={since}")
    entries = []
    for line in out.splitlines():
        if line.startswith("{") and '"DownstreamStatus"' in line:
            entries.append(json.loads(line))
    return entries


# --- as a host process, against a plain control plane ------------------------------------------------------


class HostTraefik:
    """Traefik as a process on this host, for a control plane without a real node: it runs as the
    ServiceAccount `traefik` of `namespace` with the real node's ClusterRole (a token in a kubeconfig), and
    backends are Services without selectors whose EndpointSlices name host addresses."""

    def __init__(self, kubeconfig: str, workdir: Path, web_port: int, admin_port: int,
                 namespace: str, cache: Path | None = None):
        self.kubeconfig, self.workdir, self.namespace = kubeconfig, workdir, namespace
        self.web_port, self.admin_port = web_port, admin_port
        self.cache = cache or build()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binding = ""

    def start(self) -> HostTraefik:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = static_config(web=f"127.0.0.1:{self.web_port}", admin=f"127.0.0.1:{self.admin_port}",
                               status_ip="127.0.0.1")
        (self.workdir / "traefik.yaml").write_text(yaml.safe_dump(config))
        install_crds(self.kubeconfig, self.cache)
        _kubectl(self.kubeconfig, "apply", "-f", "-", stdin="\n---\n".join(
            yaml.safe_dump(m) for m in gateway_manifests(self.web_port, self.namespace)))
        out = open(self.workdir / "traefik.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [str(self.cache / "bin" / "traefik"), f"--configFile={self.workdir / 'traefik.yaml'}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "KUBECONFIG": str(self._service_account_kubeconfig())})
        _wait("Traefik /ping", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{self.admin_port}/ping", timeout=2).status == 200)
        _wait("Gateway Programmed", lambda: gateway_programmed(self.kubeconfig, self.namespace))
        return self

    def _service_account_kubeconfig(self) -> Path:
        """A kubeconfig with a token of the ServiceAccount `traefik` in this namespace, bound to the same
        ClusterRole as on the real node (rbac_rules): the host process runs with the least RBAC too."""
        binding = f"tollgate-gateway-traefik-{self.namespace}"
        _kubectl(self.kubeconfig, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(m) for m in [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "traefik", "namespace": self.namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "tollgate-gateway-traefik"}, "rules": rbac_rules()},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "tollgate-gateway-traefik"},
             "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": self.namespace}]},
        ]))
        self.binding = binding
        token = _kubectl(self.kubeconfig, "create", "token", "traefik", "-n", self.namespace,
                         "--duration=2h").strip()
        admin = yaml.safe_load(Path(self.kubeconfig).read_text())
        cluster = admin["clusters"][0]["cluster"]
        path = self.workdir / "traefik.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": "traefik", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "traefik"}}],
            "current-context": "local"}))
        return path

    def stop(self) -> None:
        if self.binding:
            subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "delete", "clusterrolebinding",
                            self.binding, "--ignore-not-found"], capture_output=True, check=False)
        if self.proc is not None and procs.alive(self.proc.pid):
            procs.stop_group(self.proc.pid, grace=10)
        self.proc = None

    def logs(self) -> str:
        path = self.workdir / "traefik.log"
        return path.read_text(errors="replace") if path.exists() else ""
