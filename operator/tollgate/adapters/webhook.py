"""The confirmation gate's HTTP call (spec.hooks.confirmRollout), after Flagger's confirm-rollout webhook.

The URL and the optional token come from a Secret in the ModelDeployment's namespace (keys `url`,
`token`), read at each call (so a rotated token is used at once) and never logged, put in status or in an
Event. One POST with the JSON payload the engine built (engine.rules.hooks.webhook_due), the token as
`Authorization: Bearer`, a timeout; 200 is go, anything else or no answer holds the gate. No retries
here: a holding gate is asked again at its interval.

The URL is the tenant's, the network position the operator's: the connection goes only where the
platform's destination policy allows (adapters.destinations: checked on the resolved address, connected
to that address, TLS verified against the URL's host name), a redirect is never followed (it would carry
the token to wherever the endpoint says) but holds the gate with its status, and no proxy from the
environment is used (a proxy would resolve the name itself, past the check). What the tenant reads back:
the HTTP status of an allowed endpoint, the resolved address of a refused one; never the URL's path,
query or credentials, nor the token.

Why the standard library: one POST with a timeout needs no dependency (http.client).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import ssl
import urllib.parse
from dataclasses import dataclass

from tollgate.adapters.destinations import (
    ALLOW_SETTING,
    DENY_SETTING,
    DestinationPolicy,
    DestinationRefusedError,
    connect,
)
from tollgate.adapters.errors import KubeError, NotFoundError
from tollgate.adapters.kube import Kube
from tollgate.engine.actions import ObjectRef
from tollgate.engine.hook_observations import WebhookAnswer, WebhookCall

log = logging.getLogger("tollgate.webhook")

REDIRECT = "the confirmRollout endpoint answered with a redirect; give its final URL"
USER_AGENT = "tollgate-operator"


def _where(call: WebhookCall) -> str:
    return f"Secret {call.secret_namespace}/{call.secret_name}"


def _secret_values(kube: Kube, call: WebhookCall) -> tuple[str | None, str | None, str]:
    """(url, token, problem): the Secret's url and token, or a problem in words (no values in it)."""
    where = _where(call)
    try:
        secret = kube.get(ObjectRef("v1", "Secret", call.secret_name, call.secret_namespace))
    except NotFoundError:
        secret = None
    except KubeError as exc:
        if exc.status == 403:
            return None, None, (f"the operator may not read {where}: name it in the chart's "
                                "hooks.webhookSecretNames (default tollgate-confirm-rollout)")
        return None, None, f"{where} could not be read: {type(exc).__name__}"
    if secret is None:
        return None, None, f"{where} does not exist: create it with key url (and token)"
    data = secret.get("data") or {}

    def value(key: str) -> str | None:
        raw = data.get(key)
        return base64.b64decode(raw).decode().strip() if raw else None

    url = value("url")
    if not url or not url.startswith(("http://", "https://")):
        return None, None, f"{where} has no key url with an http(s) URL"
    return url, value("token"), ""


@dataclass(frozen=True)
class _Target:
    https: bool
    host: str
    port: int
    path: str

    @property
    def literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def _target(url: str, where: str) -> tuple[_Target | None, str]:
    """The parts of the URL the request needs, or a problem in words (never the URL itself)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return None, f"{where} key url holds credentials: put the bearer token in key token, not in the url"
    try:
        port = parts.port
    except ValueError:
        return None, f"{where} key url has an invalid port"
    if not parts.hostname:
        return None, f"{where} key url has no host"
    https = parts.scheme.lower() == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(https, parts.hostname, port or (443 if https else 80), path), ""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects only to an address the policy allows, the one it checked (adapters.destinations.connect)."""

    def __init__(self, target: _Target, timeout: float, policy: DestinationPolicy) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.policy = policy

    def connect(self) -> None:
        self.sock = connect(self.policy, self.host, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is verified for the URL's host name, which is also the SNI."""

    def __init__(self, target: _Target, timeout: float, policy: DestinationPolicy) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.policy = policy

    def connect(self) -> None:
        sock = connect(self.policy, self.host, self.port, self.timeout)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _refused(where: str, target: _Target, exc: DestinationRefusedError) -> str:
    said = (f"{where} key url points to {exc.address}" if target.literal
            else f"{where} key url: {target.host} resolves to {exc.address}")
    if exc.denied:
        return (f"{said}, which the platform denies for confirmRollout webhooks ({exc.reason}: chart value "
                f"{DENY_SETTING}); use an endpoint outside it, or ask the platform team")
    return (f"{said}, which the platform does not allow for confirmRollout webhooks ({exc.reason}); ask the "
            f"platform team to allow it (chart value {ALLOW_SETTING})")


def confirm(kube: Kube, call: WebhookCall, policy: DestinationPolicy | None = None) -> WebhookAnswer:
    """Ask the gate once; never raises (an unreadable Secret, a refused destination or a dead endpoint holds
    the gate). `policy`: where the URL may lead (default: everything but the built-in refusals)."""
    url, token, problem = _secret_values(kube, call)
    if url is None:
        return WebhookAnswer(None, problem)
    where = _where(call)
    target, problem = _target(url, where)
    if target is None:
        return WebhookAnswer(None, problem)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kind = _PinnedHTTPSConnection if target.https else _PinnedHTTPConnection
    conn = kind(target, call.timeout, policy or DestinationPolicy())
    try:
        conn.request("POST", target.path, body=json.dumps(dict(call.payload)).encode(), headers=headers)
        status = int(conn.getresponse().status)
    except DestinationRefusedError as exc:
        log.warning("confirmRollout destination refused", extra={
            "secret": f"{call.secret_namespace}/{call.secret_name}", "address": exc.address, "reason": exc.reason})
        return WebhookAnswer(None, _refused(where, target, exc))
    except (http.client.HTTPException, OSError) as exc:
        log.info("confirmRollout endpoint did not answer", extra={"secret": call.secret_name,
                                                                  "error": type(exc).__name__})
        return WebhookAnswer(None, f"no answer: {type(exc).__name__}")
    finally:
        conn.close()
    if 300 <= status < 400:  # never followed: the token would go wherever Location says
        return WebhookAnswer(status, REDIRECT)
    return WebhookAnswer(status)
