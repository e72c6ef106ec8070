"""The confirmRollout gate's HTTP call (adapters/webhook.py) against real HTTP servers on loopback, and its
destination policy (adapters/destinations.py): a tenant's URL must not make the operator reach what the
platform does not allow (loopback, link-local, cloud metadata, denied ranges, anything off an allow-list),
redirects are never followed, and no secret reaches status, Events or logs.

Loopback is refused by default, so the tests that need to reach their server allow 127.0.0.1 explicitly."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tollgate.adapters.destinations import DestinationPolicy
from tollgate.adapters.webhook import confirm
from tollgate.engine.actions import ObjectRef
from tollgate.engine.hook_observations import WebhookAnswer, WebhookCall

TOKEN = "s3cr3t-gate-token"
PAYLOAD = {"name": "fraud", "namespace": "ml", "type": "confirm-rollout"}
LOOPBACK = DestinationPolicy.of(allow=["127.0.0.1/32"])
"""The platform setting a test needs to reach its own server on 127.0.0.1."""


@dataclass
class Server:
    """An HTTP endpoint on 127.0.0.1: records every request, answers `code` with `headers`."""

    code: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    sni: list[str | None] = field(default_factory=list)

    def url(self, path: str = "/confirm", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[ThreadingHTTPServer] = []

    def start(code: int = 200, headers: dict[str, str] | None = None,
              tls: ssl.SSLContext | None = None) -> Server:
        rec = Server(code, dict(headers or {}))

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": json.loads(body) if body else None})
                self.send_response(rec.code)
                for name, value in rec.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = _record

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: rec.sni.append(name)  # type: ignore[assignment]
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        rec.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return rec

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class SecretKube:
    """The one Kube call the adapter makes: GET the gate's Secret."""

    url: str
    token: str | None = TOKEN

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        data = {"url": base64.b64encode(self.url.encode()).decode()}
        if self.token:
            data["token"] = base64.b64encode(self.token.encode()).decode()
        return {"data": data}


def ask(url: str, policy: DestinationPolicy | None = None) -> WebhookAnswer:
    call = WebhookCall("ml", "tollgate-confirm-rollout", 3.0, PAYLOAD)
    kube: Any = SecretKube(url)
    return confirm(kube, call) if policy is None else confirm(kube, call, policy)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Fake names: each lookup of a name in the dict answers with its next address (the last one stays);
    `dns["lookups"]` counts the lookups of fake names. Other names resolve as usual."""
    answers: dict[str, list[str]] = {"lookups": []}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if host in answers and host != "lookups":
            answers["lookups"].append(host)
            addresses = answers[host]
            address = addresses.pop(0) if len(addresses) > 1 else addresses[0]
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outgoing TCP connect from this process is recorded and refused (for addresses no test can
    serve: proves the operator did not even try them)."""
    seen: list[Any] = []

    def connect(self: socket.socket, address: Any) -> None:
        seen.append(address)
        raise ConnectionRefusedError(111, "refused by the test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


# --- what works: an allowed endpoint is asked, its status kept -------------------------------------------


def test_an_allowed_endpoint_gets_the_payload_with_the_token_and_its_200_lets_the_gate_go(
        serve: Callable[..., Server]) -> None:
    # given an endpoint on 127.0.0.1, which the platform allows explicitly
    server = serve(200)
    # when the gate asks it
    answer = ask(server.url(), LOOPBACK)
    # then one POST with the payload and the bearer token, and the gate goes
    assert answer == WebhookAnswer(200)
    (request,) = server.requests
    assert request["method"] == "POST" and request["path"] == "/confirm"
    assert request["body"] == PAYLOAD and request["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_a_non_200_from_an_allowed_endpoint_keeps_its_status_for_the_tenant_to_debug(
        serve: Callable[..., Server]) -> None:
    # given an allowed endpoint answering 503
    server = serve(503)
    # when the gate asks it
    answer = ask(server.url(), LOOPBACK)
    # then the answer says 503 and the gate holds
    assert answer.status == 503 and not answer.go
    assert len(server.requests) == 1


# --- redirects ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(serve: Callable[..., Server], code: int) -> None:
    # given an allowed endpoint that redirects to another server (with a token in the Location)
    target = serve(200)
    server = serve(code, {"Location": target.url("/internal/admin?key=hidden-location-token")})
    # when the gate asks it
    answer = ask(server.url(), LOOPBACK)
    # then the redirect target received nothing (no GET, no token forwarded), and the gate holds with the fix
    assert target.requests == []
    assert len(server.requests) == 1
    assert answer.status == code and not answer.go
    assert "the confirmRollout endpoint answered with a redirect; give its final URL" in answer.detail
    assert "hidden-location-token" not in answer.detail and str(target.port) not in answer.detail


# --- the default policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_by_default(serve: Callable[..., Server], host: str) -> None:
    # given an endpoint on loopback, and no platform setting
    server = serve(200)
    # when a tenant's Secret points the gate at it, by address or by a name that resolves there
    answer = ask(server.url(host=host))
    # then no request reaches it; the gate holds, naming the field, the address and the fix
    assert server.requests == []
    assert answer.status is None and not answer.go
    assert "Secret ml/tollgate-confirm-rollout key url" in answer.detail
    assert "127.0.0.1" in answer.detail or "::1" in answer.detail
    assert "which the platform does not allow for confirmRollout webhooks" in answer.detail
    assert "hooks.webhookAllowedDestinations" in answer.detail


@pytest.mark.parametrize("url, address", [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "169.254.169.254"),
    ("http://169.254.10.1:8080/x", "169.254.10.1"),
    ("http://[fe80::1]:80/x", "fe80::1"),
    ("http://[::1]:80/x", "::1"),
    ("http://[::ffff:169.254.169.254]/x", "169.254.169.254"),
    ("http://0.0.0.0:80/x", "0.0.0.0"),
    ("http://224.0.0.1/x", "224.0.0.1"),
    ("http://100.100.100.200/latest/meta-data/", "100.100.100.200"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254"),
])
def test_link_local_metadata_unspecified_and_multicast_are_refused_by_default(
        connects: list[Any], url: str, address: str) -> None:
    # given a Secret pointing the gate at an address the platform never allows by default
    # when the gate asks
    answer = ask(url, DestinationPolicy())
    # then the operator does not even connect; the gate holds, naming the address
    assert connects == []
    assert answer.status is None and address in answer.detail
    assert "which the platform does not allow for confirmRollout webhooks" in answer.detail


@pytest.mark.parametrize("url, address", [
    ("http://10.96.0.10:9090/api/v1/query", "10.96.0.10"),
    ("http://172.20.4.5/x", "172.20.4.5"),
    ("http://192.168.1.5/x", "192.168.1.5"),
    ("http://100.64.0.1/x", "100.64.0.1"),
    ("http://[fd12:3456::1]/x", "fd12:3456::1"),
    ("http://[::ffff:10.0.0.1]/x", "10.0.0.1"),
])
def test_private_addresses_where_cluster_services_live_are_refused_by_default(
        connects: list[Any], url: str, address: str) -> None:
    # given no platform setting, and a tenant pointing the gate at an address in a private range (another
    # team's in-cluster Service, the operator's own namespace, a port to probe)
    # when the gate asks
    answer = ask(url, DestinationPolicy())
    # then nothing is connected; the gate holds, naming the address, why, and the setting that would allow it
    assert connects == []
    assert answer.status is None and address in answer.detail
    assert "a private address" in answer.detail and "hooks.webhookAllowedDestinations" in answer.detail


def test_the_platform_lifts_the_private_refusal_by_naming_the_host_or_the_range(
        dns: dict[str, list[str]], connects: list[Any]) -> None:
    # given an in-cluster gate endpoint the platform names, and one range it allows
    dns["approvals.platform.svc.cluster.local"] = ["10.96.7.7"]
    dns["other.team.svc.cluster.local"] = ["10.96.8.8"]
    policy = DestinationPolicy.of(allow=["approvals.platform.svc.cluster.local", "10.20.0.0/16"])
    # when the gate asks the named host, an address in the range, and another in-cluster name
    ask("http://approvals.platform.svc.cluster.local:8080/confirm", policy)
    ask("http://10.20.3.4:8080/confirm", policy)
    other = ask("http://other.team.svc.cluster.local/confirm", policy)
    # then the first two are connected (nothing serves them here), the unnamed one is not
    assert connects == [("10.96.7.7", 8080), ("10.20.3.4", 8080)]
    assert other.status is None and "10.96.8.8" in other.detail


def test_a_hostname_that_resolves_to_the_metadata_address_is_refused(
        dns: dict[str, list[str]], connects: list[Any]) -> None:
    # given a tenant-controlled name resolving to the cloud metadata address
    dns["metadata.tenant.test"] = ["169.254.169.254"]
    # when the gate asks it
    answer = ask("http://metadata.tenant.test/latest/meta-data/", DestinationPolicy())
    # then nothing is connected and the message names the resolved address
    assert connects == []
    assert answer.status is None
    assert "metadata.tenant.test resolves to 169.254.169.254" in answer.detail


# --- the platform's settings -------------------------------------------------------------------------------


def test_an_allow_list_refuses_every_other_destination(dns: dict[str, list[str]], connects: list[Any]) -> None:
    # given a platform allowing one host name and one range
    policy = DestinationPolicy.of(allow=["gate.platform.test", "10.20.0.0/16"])
    dns["other.tenant.test"] = ["192.0.2.10"]
    # when tenants point the gate elsewhere: an address outside the range, a name not listed
    answers = [ask("http://192.0.2.10/confirm", policy), ask("http://other.tenant.test/confirm", policy)]
    # then the operator connects to neither, and says the allow-list is why
    assert connects == []
    assert all(a.status is None and "not on the platform's allow-list" in a.detail for a in answers), answers
    # and a listed range is tried (the connection itself fails here: nothing serves it)
    ask("http://10.20.3.4:8080/confirm", policy)
    assert connects == [("10.20.3.4", 8080)]


def test_an_allowed_hostname_resolving_to_loopback_is_still_refused(
        serve: Callable[..., Server], dns: dict[str, list[str]]) -> None:
    # given a platform allowing a host name, which (re-pointed, or a DNS trick) resolves to loopback
    server = serve(200)
    dns["gate.platform.test"] = ["127.0.0.1"]
    policy = DestinationPolicy.of(allow=["gate.platform.test"])
    # when the gate asks it
    answer = ask(server.url(host="gate.platform.test"), policy)
    # then no request reaches the server: a name never lifts the built-in refusals, only a listed range does
    assert server.requests == []
    assert answer.status is None and "gate.platform.test resolves to 127.0.0.1" in answer.detail


def test_denied_ranges_are_refused_and_win_over_the_allow_list(connects: list[Any]) -> None:
    # given a platform denying the cluster's pod and service ranges
    policy = DestinationPolicy.of(deny=["10.96.0.0/12", "192.168.0.0/16"])
    # when a tenant points the gate at a Service address
    answer = ask("http://10.96.0.10:9090/api/v1/query", policy)
    # then it is not connected, and the message names the setting that denies it
    assert connects == [] and answer.status is None
    assert "10.96.0.10" in answer.detail and "hooks.webhookDeniedCIDRs" in answer.detail
    # and an address both allowed and denied is denied
    both = DestinationPolicy.of(allow=["192.168.1.0/24"], deny=["192.168.0.0/16"])
    assert "hooks.webhookDeniedCIDRs" in ask("http://192.168.1.5/x", both).detail
    assert connects == []


def test_the_connection_goes_to_the_checked_address_with_one_lookup(
        serve: Callable[..., Server], dns: dict[str, list[str]]) -> None:
    # given a name that answers 127.0.0.1 (allowed) first and the metadata address afterwards (DNS rebinding)
    server = serve(200)
    dns["gate.platform.test"] = ["127.0.0.1", "169.254.169.254"]
    # when the gate asks it
    answer = ask(server.url(host="gate.platform.test"), LOOPBACK)
    # then the name was looked up once, and the request went to the address that was checked, under its name
    assert answer == WebhookAnswer(200)
    assert dns["lookups"] == ["gate.platform.test"]
    (request,) = server.requests
    assert request["headers"]["Host"] == f"gate.platform.test:{server.port}"


def test_a_malformed_setting_is_refused_with_the_entry() -> None:
    # given entries that are neither a host name nor a CIDR
    for bad in (["not a host"], ["10.0.0.0/33"], ["http://gate.example/"]):
        # then the policy cannot be built, and the error names the entry
        with pytest.raises(ValueError, match="host name or a CIDR"):
            DestinationPolicy.of(allow=bad)
    with pytest.raises(ValueError, match="CIDR"):
        DestinationPolicy.of(deny=["gate.example"])


# --- secrets -------------------------------------------------------------------------------------------------


def test_no_secret_reaches_the_answer_or_the_logs(serve: Callable[..., Server], dns: dict[str, list[str]],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # given URLs carrying a query token and credentials, and the bearer token in the Secret
    server = serve(503)
    caplog.set_level(logging.DEBUG)
    dns["gate.platform.test"] = ["127.0.0.1"]
    answers = [
        ask(server.url("/confirm?access_token=query-secret"), LOOPBACK),  # allowed: 503
        ask(server.url("/confirm?access_token=query-secret")),  # loopback refused
        ask(f"http://user:url-password@gate.platform.test:{server.port}/confirm", LOOPBACK),
        ask(f"http://127.0.0.1:{server.port}:bad/confirm?access_token=query-secret", LOOPBACK),
    ]
    # then the 503 is kept, and no answer or log line holds a secret
    assert answers[0].status == 503
    said = json.dumps([a.detail for a in answers]) + caplog.text
    for secret in ("query-secret", "url-password", TOKEN):
        assert secret not in said, said
    # and credentials in the URL are refused with the fix (the token belongs in key token)
    assert "key token" in answers[2].detail


# --- TLS ---------------------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "gate.pem", tmp_path / "gate.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=gate.platform.test", "-addext", "subjectAltName=DNS:gate.platform.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    combined = tmp_path / "gate-with-key.pem"
    combined.write_text(cert.read_text() + key.read_text())
    return combined


def test_https_to_a_pinned_address_still_verifies_the_certificate_for_the_url_host_name(
        serve: Callable[..., Server], dns: dict[str, list[str]], certificate: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given an HTTPS endpoint with a certificate for gate.platform.test, which resolves to an allowed 127.0.0.1
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate)
    server = serve(200, tls=tls)
    dns["gate.platform.test"] = ["127.0.0.1"]
    url = server.url(host="gate.platform.test", scheme="https")
    # when its issuer is not trusted, the gate holds: the certificate is verified
    untrusted = ask(url, LOOPBACK)
    assert untrusted.status is None and "SSL" in untrusted.detail, untrusted
    assert server.requests == []
    # when it is trusted, the request goes through, the TLS handshake naming the URL's host (SNI)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    assert ask(url, LOOPBACK) == WebhookAnswer(200)
    assert len(server.requests) == 1 and server.sni[-1] == "gate.platform.test"
