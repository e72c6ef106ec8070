"""The sandbox's copy of a ModelDeployment's model-delivery credentials (spec.modelDelivery.credentials).

Pods can only read Secrets of their own namespace, and a model's pods run in its sandbox, so the Secret
the ModelDeployment names in its own namespace is copied there (engine.model_delivery.credentials_copy
renders the copy without data; this module fills it). Why this cannot be abused across tenants:
- the spec has no namespace field: the source is always in the ModelDeployment's own namespace, which
  its author can already use Secrets of (as anyone who can create a Pod there can);
- the copy goes only into that ModelDeployment's sandbox (the owner-UID check of runtime.ownership and
  the chart's confine-operator admission policy), under one fixed name;
- the operator may `get` only Secrets of the names the platform team lists in the chart
  (modelDelivery.credentialSecretNames), never list or watch them, so it cannot find or read others;
- only keys that are environment variable names are copied (they become the initializer's environment),
  and no value is logged, put in status, events or evidence.
The source is read again at most every REFRESH_SECONDS, so a rotated Secret reaches new pods then; and
no secret value stays in the operator's memory longer than that after its last use (a deleted
ModelDeployment's credentials are dropped at the next read of any Secret).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tollgate.adapters.errors import PermanentError
from tollgate.adapters.kube import Kube
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.model_delivery import ANNOTATION_COPY_OF

REFRESH_SECONDS = 300.0
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CHART_VALUE = "modelDelivery.credentialSecretNames"


class CredentialsUnavailableError(Exception):
    """The named Secret cannot be used; the message names the Secret and the fix (never a value)."""


@dataclass
class CredentialsCopier:
    kube: Kube
    clock: Callable[[], float] = time.monotonic
    _read: dict[tuple[str, str], tuple[float, dict[str, str]]] = field(default_factory=dict)

    def prepare(self, spec: ModelDeploymentSpec, ctx: Context) -> None:
        """Read the source now (or from a fresh cache), so a decision is refused before anything is written
        when it cannot be copied. Raises CredentialsUnavailableError."""
        credentials = spec.modelDelivery.credentials
        if credentials is None or not spec.modelDelivery.enabled:
            return
        self._data(ctx.namespace, credentials.secretName)

    def fill(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The copy with the source's data, when `obj` is a copy (ANNOTATION_COPY_OF); else `obj` unchanged."""
        source = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_COPY_OF)
        if obj.get("kind") != "Secret" or not source:
            return dict(obj)
        namespace, _, name = source.partition("/")
        return {**obj, "data": dict(self._data(namespace, name))}

    def _data(self, namespace: str, name: str) -> dict[str, str]:
        key = (namespace, name)
        now = self.clock()
        for stale in [k for k, (at, _) in self._read.items() if now - at >= REFRESH_SECONDS]:
            del self._read[stale]  # few entries (one per Secret in use): a sweep per read is cheap
        cached = self._read.get(key)
        if cached is not None:  # the sweep above left only fresh entries
            return cached[1]
        where = f"Secret {namespace}/{name} (spec.modelDelivery.credentials.secretName)"
        try:
            secret = self.kube.get(ObjectRef("v1", "Secret", name, namespace))
        except PermanentError as exc:
            if exc.status == 403:
                raise CredentialsUnavailableError(
                    f"Tollgate may not read {where}: the platform team lists the Secret names model "
                    f"credentials may have in the chart's {CHART_VALUE}; use one of those names or ask "
                    "for this one to be added") from None
            raise
        if secret is None:
            raise CredentialsUnavailableError(f"{where} does not exist: create it in namespace {namespace} "
                                              "(keys such as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                                              "AWS_ENDPOINT_URL) or remove spec.modelDelivery.credentials")
        data = {k: v for k, v in (secret.get("data") or {}).items() if ENV_NAME.match(k) and isinstance(v, str)}
        if not data:
            raise CredentialsUnavailableError(
                f"{where} has no key that is an environment variable name (e.g. AWS_ACCESS_KEY_ID): its keys "
                "become the storage initializer's environment; rename them")
        self._read[key] = (now, data)
        return data
