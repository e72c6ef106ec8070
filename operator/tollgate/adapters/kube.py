"""Kubernetes adapter: server-side apply with one field manager, idempotent and retried.

Why a hash annotation: a server-side apply that changes nothing is still a PATCH request, and an
operator that PATCHes every child on every reconcile loads the API server for nothing. Each object
Tollgate applies carries `tollgate.dev/applied-hash` of its desired manifest; when the cached (or,
after a restart, the live) hash matches, nothing is sent. Reads only happen on a cache miss.

Why raw paths instead of the dynamic client: discovery costs dozens of requests per start and the
set of kinds Tollgate writes is small and fixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tollgate.adapters.errors import CLIENT_ERRORS, NotFoundError, translate
from tollgate.api.resource import FIELD_MANAGER, GROUP, PLURAL, VERSION
from tollgate.engine.actions import ObjectRef

log = logging.getLogger("tollgate.kube")

ANNOTATION_HASH = "tollgate.dev/applied-hash"

# kind -> (plural, namespaced)
_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "Secret": ("secrets", True),
    "Deployment": ("deployments", True),
    "NetworkPolicy": ("networkpolicies", True),
    "HTTPRoute": ("httproutes", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Lease": ("leases", True),
    "ModelDeployment": (PLURAL, True),
}


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def path_of(ref: ObjectRef) -> str:
    """The REST path of one object."""
    plural, namespaced = _KINDS[ref.kind]
    base = f"/api/{ref.api_version}" if "/" not in ref.api_version else f"/apis/{ref.api_version}"
    if namespaced:
        if not ref.namespace:
            raise ValueError(f"{ref.kind}/{ref.name} needs a namespace")
        return f"{base}/namespaces/{ref.namespace}/{plural}/{ref.name}"
    return f"{base}/{plural}/{ref.name}"


def collection_path_of(ref: ObjectRef) -> str:
    return path_of(ref).rsplit("/", 1)[0]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (409, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError)


# Bounded: a conflict, throttling, a 5xx or a timeout is retried at most 5 times over ~10 s, then the
# error reaches the reconcile loop as a typed error (adapters.errors), which reports it and tries again.
api_retry = retry(
    retry=retry_if_exception(_retryable),
    stop=stop_after_attempt(5),
    wait=wait_exponential_jitter(multiplier=0.2, max=4.0),
    reraise=True,
)


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a desired manifest (without our own hash annotation)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


@dataclass
class WriteCounter:
    """Counts requests that change state; the tests and benchmarks read it."""

    applies: int = 0
    deletes: int = 0
    status_patches: int = 0

    @property
    def writes(self) -> int:
        return self.applies + self.deletes + self.status_patches


class Kube:
    """The operator's only way to write to the API server."""

    def __init__(self, api: client.ApiClient, field_manager: str = FIELD_MANAGER, timeout: float = 10.0):
        self._api = api
        self._field_manager = field_manager
        self._timeout = timeout
        self._applied: dict[ObjectRef, str] = {}
        self._warm = False
        self._lock = threading.Lock()
        self.counter = WriteCounter()

    # -- low level ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
              query: list[tuple[str, str]] | None = None) -> Any:
        """One request, retried (api_retry); failures leave as adapters.errors types, never ApiException."""
        try:
            return self._request(method, path, body, content_type=content_type, query=query)
        except CLIENT_ERRORS as exc:
            raise translate(exc) from exc

    @api_retry
    def _request(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
              query: list[tuple[str, str]] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and content_type and "json" not in content_type:
            body = json.dumps(body)  # JSON is YAML: the apply-patch+yaml body goes as text
        method_, url, headers_, body_, post = self._api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        resp = self._api.call_api(method_, url, headers_, body_, post, _request_timeout=self._timeout)
        resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return json.loads(resp.data) if resp.data else {}

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._call("GET", path_of(ref))
            return obj
        except NotFoundError:
            return None

    def list(self, ref: ObjectRef, label_selector: str) -> list[dict[str, Any]]:
        data = self._call("GET", collection_path_of(ref), query=[("labelSelector", label_selector)])
        items: list[dict[str, Any]] = data.get("items", [])
        return items

    # -- apply ----------------------------------------------------------------------------------
    def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> bool:
        """Server-side apply `obj` unless it is already applied as desired. Returns True if it wrote."""
        ref = ref_of(obj)
        digest = manifest_hash(obj)
        with self._lock:
            known = self._applied.get(ref)
        if known == digest:
            return False
        if known is None and not self._warm:
            live = self.get(ref)
            live_hash = ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_HASH)
            if live is not None and live_hash == digest:
                with self._lock:
                    self._applied[ref] = digest
                return False
        body = json.loads(json.dumps(obj))
        body["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = digest
        self._call("PATCH", path_of(ref), body, content_type="application/apply-patch+yaml",
                   query=[("fieldManager", self._field_manager), ("force", "true" if force else "false")])
        self.counter.applies += 1
        with self._lock:
            self._applied[ref] = digest
        log.info("applied", extra={"kind": ref.kind, "namespace": ref.namespace, "object": ref.name})
        return True

    def is_applied(self, obj: Mapping[str, Any]) -> bool:
        """True when `obj` is known to be live exactly as desired (its applied hash matches)."""
        with self._lock:
            return self._applied.get(ref_of(obj)) == manifest_hash(obj)

    def warm(self, kinds: Iterable[tuple[str, str]], label_selector: str,
             seen: Callable[[str, dict[str, Any]], None] | None = None) -> int:
        """Learn the applied hash of every object we manage with one LIST per kind (cluster-wide).

        After a restart this replaces one GET per object per ModelDeployment (10,000 GETs for 1,000
        ModelDeployments) with a handful of LISTs; an object absent from the lists is then known to
        need applying, so no GET precedes its apply either. `seen(kind, item)` gets every listed object.
        """
        learned: dict[ObjectRef, str] = {}
        for api_version, kind in kinds:
            plural, namespaced = _KINDS[kind]
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                data = self._call("GET", f"{base}/{plural}", query=[("labelSelector", label_selector)])
            except NotFoundError:  # the kind is not served here (e.g. no Gateway API): none of ours
                continue
            for item in data.get("items", []):
                if seen is not None:
                    item.setdefault("apiVersion", api_version)
                    item.setdefault("kind", kind)
                    seen(kind, item)
                meta = item.get("metadata", {})
                digest = (meta.get("annotations") or {}).get(ANNOTATION_HASH)
                if digest:
                    ref = ObjectRef(api_version, kind, meta["name"], meta.get("namespace") if namespaced else None)
                    learned[ref] = digest
        with self._lock:
            for ref, digest in learned.items():
                self._applied.setdefault(ref, digest)
            self._warm = True
        return len(learned)

    def forget(self, ref: ObjectRef) -> None:
        """Drop the cached hash, e.g. when a watch shows the object was changed or deleted."""
        with self._lock:
            self._applied.pop(ref, None)

    def delete(self, ref: ObjectRef, *, propagation: str = "Background") -> bool:
        """Delete if present. Returns True if a delete was sent and accepted."""
        self.forget(ref)
        try:
            self._call("DELETE", path_of(ref), {"propagationPolicy": propagation},
                       content_type="application/json")
        except NotFoundError:
            return False
        self.counter.deletes += 1
        return True

    # -- the ModelDeployment's status ------------------------------------------------------------
    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource (nulls remove fields); returns the object as written."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        out: dict[str, Any] = self._call("PATCH", path, {"status": dict(status)},
                                         content_type="application/merge-patch+json")
        self.counter.status_patches += 1
        out.get("metadata", {}).pop("managedFields", None)  # kept in memory per object: drop the bulk
        return out


    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (routers use it to move traffic without a full apply)."""
        self.forget(ref)
        self._call("PATCH", path_of(ref), dict(patch), content_type="application/merge-patch+json",
                   query=[("fieldManager", self._field_manager)])
        self.counter.applies += 1

    def patch_scale(self, ref: ObjectRef, replicas: int) -> None:
        """Set replicas through the scale subresource (the replicas router's fast path)."""
        self.forget(ref)
        self._call("PATCH", path_of(ref) + "/scale", {"spec": {"replicas": replicas}},
                   content_type="application/merge-patch+json", query=[("fieldManager", self._field_manager)])
        self.counter.applies += 1
