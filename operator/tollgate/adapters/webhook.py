"""The confirmation gate's HTTP call (spec.hooks.confirmRollout), after Flagger's confirm-rollout webhook.

The URL and the optional token come from a Secret in the ModelDeployment's namespace (keys `url`,
`token`), read at each call (so a rotated token is used at once) and never logged, put in status or in an
Event. One POST with the JSON payload the engine built (engine.rules.hooks.webhook_due), the token as
`Authorization: Bearer`, a timeout; 200 is go, anything else or no answer holds the gate. No retries
here: a holding gate is asked again at its interval.

Why the standard library: one POST with a timeout needs no dependency (urllib.request).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request

from tollgate.adapters.errors import KubeError, NotFoundError
from tollgate.adapters.kube import Kube
from tollgate.engine.actions import ObjectRef
from tollgate.engine.hook_observations import WebhookAnswer, WebhookCall

log = logging.getLogger("tollgate.webhook")


def _secret_values(kube: Kube, call: WebhookCall) -> tuple[str | None, str | None, str]:
    """(url, token, problem): the Secret's url and token, or a problem in words (no values in it)."""
    where = f"Secret {call.secret_namespace}/{call.secret_name}"
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


def confirm(kube: Kube, call: WebhookCall) -> WebhookAnswer:
    """Ask the gate once; never raises (an unreadable Secret or a dead endpoint holds the gate)."""
    url, token, problem = _secret_values(kube, call)
    if url is None:
        return WebhookAnswer(None, problem)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(dict(call.payload)).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=call.timeout) as response:
            return WebhookAnswer(int(response.status))
    except urllib.error.HTTPError as exc:
        return WebhookAnswer(int(exc.code))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        log.info("confirmRollout endpoint did not answer", extra={"secret": call.secret_name,
                                                                  "error": type(reason).__name__})
        return WebhookAnswer(None, f"no answer: {type(reason).__name__}")
